"""LLMGenerator: SFT on answers, choice scoring, generation, sklearn contract, pickling."""

from __future__ import annotations

import pickle
import pickletools
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV

from skw2s.estimators.generator import LLMGenerator
from skw2s.hf.decoding import choice_nll

X_MC = pd.DataFrame(
    {
        "prompt": [
            "Question: sky colour?\nAnswer:",
            "Question: grass colour?\nAnswer:",
            "Question: boiling water is?\nAnswer:",
            "Question: is the sun cold?\nAnswer:",
        ],
        "choices": [["blue", "green"], ["blue", "green"], ["hot", "cold", "warm"], ["yes", "no"]],
    }
)
Y_MC = np.array([0, 1, 0, 1])
X_TEXT = ["Question: sky colour?\nAnswer:", "Question: grass colour?\nAnswer:"] * 2
Y_TEXT = [" blue", " green"] * 2


def _gen(path, **kw):
    params = dict(mode="full", lr=1e-2, n_epochs=8, batch_size=4, device="cpu", random_state=0)
    params.update(kw)
    return LLMGenerator(path, **params)


@pytest.fixture(scope="module")
def fitted_mc(tiny_lm):
    return _gen(tiny_lm, n_epochs=40).fit(X_MC, Y_MC)


@pytest.fixture(scope="module")
def fitted_lora(tiny_lm):
    # random_state=0 happens to leave this tiny model's token error at 1.0 after 8 steps
    return _gen(tiny_lm, mode="lora", lr=5e-2, lora_r=4, random_state=1).fit(X_MC, Y_MC)


def torch_globals(blob):
    """Strings in a pickle stream that name a torch module (a pickled tensor needs them)."""
    return [
        arg for _, arg, _ in pickletools.genops(blob)
        if isinstance(arg, str) and re.match(r"torch(\.|$)", arg)
    ]


# -- sklearn contract --------------------------------------------------------------------
def test_fitted_attributes_are_documented(fitted_mc):
    doc = LLMGenerator.__doc__.split("Attributes\n    ----------")[1].split("See Also")[0]
    documented = set(re.findall(r"^    (\w+_) :", doc, flags=re.M))
    fitted = {k for k in vars(fitted_mc) if k.endswith("_") and not k.startswith("_")}
    assert fitted == documented


def test_not_fitted_and_bad_params(tiny_lm):
    with pytest.raises(NotFittedError):
        LLMGenerator(tiny_lm).predict(X_MC)
    with pytest.raises(ValueError, match=r"The 'mode' parameter of LLMGenerator must be a str "
                                         r"among \{'full', 'lora'\}. Got 'qlora' instead."):
        _gen(tiny_lm, mode="qlora").fit(X_MC, Y_MC)
    with pytest.raises(ValueError, match=r"The 'n_epochs' parameter of LLMGenerator must be an "
                                         r"int in the range \[0, inf\). Got -1 instead."):
        _gen(tiny_lm, n_epochs=-1).fit(X_MC, Y_MC)
    with pytest.raises(ValueError, match=r"The 'lr' parameter of LLMGenerator must be a float in "
                                         r"the range \(0.0, inf\). Got inf instead."):
        _gen(tiny_lm, lr=float("inf")).fit(X_MC, Y_MC)
    with pytest.raises(ValueError, match="'choice_score'"):
        _gen(tiny_lm, choice_score="max").fit(X_MC, Y_MC)
    with pytest.raises(ValueError, match="'lr'"):
        _gen(tiny_lm, lr=-1.0).fit(X_MC, Y_MC)


# -- multiple choice -----------------------------------------------------------------------
def test_fit_multiple_choice_learns_training_answers(fitted_mc, tiny_lm):
    assert fitted_mc.score(X_MC, Y_MC) == 1.0
    pred = fitted_mc.predict(X_MC)
    assert pred.dtype == np.int64 and pred.tolist() == Y_MC.tolist()
    untrained = LLMGenerator(tiny_lm, device="cpu", n_epochs=0).fit(X_MC, Y_MC)
    assert fitted_mc.token_error(X_MC, Y_MC) < untrained.token_error(X_MC, Y_MC)
    assert fitted_mc.n_train_tokens_ > 0 and fitted_mc.fit_time_ > 0


def test_predict_proba_pads_rows_with_fewer_choices(fitted_mc):
    proba = fitted_mc.predict_proba(X_MC)
    assert proba.shape == (4, 3)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    assert (proba[[0, 1, 3], 2] == 0).all()
    assert proba.argmax(1).tolist() == fitted_mc.predict(X_MC).tolist()
    with pytest.raises(ValueError, match="multiple-choice input"):
        fitted_mc.predict_proba(list(X_MC["prompt"]))


def test_choice_score_mean_is_length_normalised(fitted_mc):
    est = clone(fitted_mc).set_params(choice_score="mean")
    est.__dict__.update({k: v for k, v in vars(fitted_mc).items() if k.endswith("_")})
    nll = choice_nll(
        fitted_mc.model_, fitted_mc.tokenizer_, list(X_MC["prompt"]), list(X_MC["choices"]),
        reduction="mean",
    )
    expected = [np.exp(-r) / np.exp(-r).sum() for r in nll]
    proba = est.predict_proba(X_MC)
    for row, exp in zip(proba, expected):
        np.testing.assert_allclose(row[: len(exp)], exp, rtol=1e-5)
    assert not np.allclose(proba, fitted_mc.predict_proba(X_MC))


def test_lora_mode(fitted_lora, tiny_lm):
    from peft import PeftModel

    assert isinstance(fitted_lora.model_, PeftModel)
    assert fitted_lora.adapter_name_ == "default"
    untrained = LLMGenerator(tiny_lm, device="cpu", n_epochs=0).fit(X_MC, Y_MC)
    assert fitted_lora.token_error(X_MC, Y_MC) < untrained.token_error(X_MC, Y_MC)


def test_fit_is_seeded(tiny_lm):
    a = _gen(tiny_lm, mode="lora", lr=5e-2, n_epochs=1, lora_r=4).fit(X_MC, Y_MC)
    b = _gen(tiny_lm, mode="lora", lr=5e-2, n_epochs=1, lora_r=4).fit(X_MC, Y_MC)
    np.testing.assert_array_equal(a.predict_proba(X_MC), b.predict_proba(X_MC))


# -- free text ------------------------------------------------------------------------------
def test_free_text_generation_and_token_accuracy(tiny_lm):
    est = _gen(tiny_lm, n_epochs=40, max_new_tokens=6).fit(X_TEXT, Y_TEXT)
    assert est.generate(X_TEXT[:2]) == [" blue", " green"]
    pred = est.predict(X_TEXT[:2])
    assert pred.dtype == object and pred.tolist() == [" blue", " green"]
    tokens = est.generate(X_TEXT[:2], return_tokens=True)
    assert tokens[0] == est.tokenizer_(" blue", add_special_tokens=False)["input_ids"]
    assert est.score(X_TEXT, Y_TEXT) == pytest.approx(1.0 - est.token_error(X_TEXT, Y_TEXT))
    assert est.score(X_TEXT, Y_TEXT) == 1.0
    swapped = [" green", " blue"] * 2
    assert est.score(X_TEXT, swapped) < 1.0  # the first answer token is now wrong
    sampled = est.generate(X_TEXT[:2], do_sample=True, temperature=5.0, random_state=0)
    assert sampled == est.generate(X_TEXT[:2], do_sample=True, temperature=5.0, random_state=0)
    assert len(est.generate(X_TEXT[:1], max_new_tokens=1, return_tokens=True)[0]) <= 1


def test_sample_weight_zero_rows_are_left_out(tiny_lm):
    est = _gen(tiny_lm, n_epochs=15, max_new_tokens=4)
    est.fit(X_TEXT[:2], [" blue", " blue"], sample_weight=[1.0, 0.0])
    n_blue = len(est.tokenizer_(" blue", add_special_tokens=False)["input_ids"]) + 1
    assert est.n_train_tokens_ == n_blue
    with pytest.raises(ValueError, match="all zero"):
        est.fit(X_TEXT[:2], Y_TEXT[:2], sample_weight=[0.0, 0.0])
    with pytest.raises(ValueError, match="sample_weight must be finite"):
        est.fit(X_TEXT[:2], Y_TEXT[:2], sample_weight=[1.0])


# -- bad input --------------------------------------------------------------------------------
def test_bad_input_errors_and_warnings(tiny_lm, fitted_mc):
    est = _gen(tiny_lm, n_epochs=1)
    with pytest.raises(ValueError, match="Answer 1 is empty"):
        est.fit(X_TEXT[:2], [" blue", ""])
    with pytest.raises(ValueError, match="must be a list of strings"):
        est.fit(X_MC.assign(choices="blue"), Y_MC)
    with pytest.raises(ValueError, match=r"y\[2\] = 3 is out of range"):
        est.fit(X_MC, [0, 1, 3, 0])
    with pytest.raises(ValueError, match="prompt"):
        est.fit(pd.DataFrame({"question": ["a"]}), [" b"])
    long_prompt = ["word " * 100 + "Answer:"]
    with pytest.warns(UserWarning, match="truncated from the left"):
        _gen(tiny_lm, n_epochs=1, max_length=24).fit(long_prompt, [" blue"])
    with pytest.warns(UserWarning, match="truncated from the left"):
        clone(fitted_mc).set_params(max_length=24).fit(long_prompt, [" blue"]).generate(
            long_prompt, max_new_tokens=2
        )
    with pytest.raises(ValueError, match="out of range"):
        fitted_mc.score(X_MC, [0, 5, 0, 0])


# -- pickling, search, device ---------------------------------------------------------------
@pytest.mark.parametrize("fixture", ["fitted_mc", "fitted_lora"])
def test_pickle_roundtrip_has_no_pickled_tensors(fixture, request):
    est = request.getfixturevalue(fixture)
    blob = pickle.dumps(est)
    assert torch_globals(blob) == []
    restored = pickle.loads(blob)
    assert restored.adapter_name_ == est.adapter_name_
    assert restored.generate(X_TEXT, return_tokens=True, max_new_tokens=5) == est.generate(
        X_TEXT, return_tokens=True, max_new_tokens=5
    )
    np.testing.assert_allclose(restored.predict_proba(X_MC), est.predict_proba(X_MC), rtol=1e-5)
    # the unfitted estimator pickles as its parameters
    assert pickle.loads(pickle.dumps(clone(est))).get_params() == clone(est).get_params()


def test_grid_search_works(tiny_lm):
    X = pd.concat([X_MC] * 2, ignore_index=True)
    y = np.concatenate([Y_MC] * 2)
    search = GridSearchCV(_gen(tiny_lm, n_epochs=2), {"lr": [1e-4, 1e-2]}, cv=2)
    search.fit(X, y)
    assert search.best_params_["lr"] in (1e-4, 1e-2)
    assert 0.0 <= search.score(X, y) <= 1.0


def test_device_auto_picks_cuda_when_present(tiny_lm):
    est = LLMGenerator(tiny_lm, device="auto", n_epochs=0).fit(X_MC, Y_MC)
    assert est.model_.device.type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.cuda
def test_fit_and_generate_on_cuda(tiny_lm):
    est = LLMGenerator(tiny_lm, device="cuda", lr=1e-2, n_epochs=2, random_state=0)
    est.fit(X_MC, Y_MC)
    assert est.model_.device.type == "cuda"
    assert est.predict(X_MC).shape == (4,)
    assert len(est.generate(X_TEXT[:2], max_new_tokens=3)) == 2


def test_import_is_lazy():
    code = (
        "import sys, skw2s.estimators.generator, skw2s.hf.decoding, skw2s.ensemble; "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
