"""TokenAdaBoostGenerator: Algorithm 1 checked by hand, mixture decoding, memory, pickling."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV

import skw2s.ensemble._generator as tb
import skw2s.hf.training
from skw2s.estimators.generator import LLMGenerator
from skw2s.hf.models import load_causal_lm, load_tokenizer
from skw2s import TokenAdaBoostGenerator, UniformEnsembleGenerator
from skw2s.hf.decoding import (
    answer_token_errors,
    check_shared_vocabulary,
    mixture_generate,
    token_predictions,
)
from skw2s.hf.training import encode_sft

ROWS = [
    ("Question: sky colour?\nAnswer:", ["blue", "green"], 0),
    ("Question: grass colour?\nAnswer:", ["blue", "green"], 1),
    ("Question: boiling water is?\nAnswer:", ["hot", "cold"], 0),
    ("Question: ice is?\nAnswer:", ["hot", "cold"], 1),
    ("Question: plants absorb which gas?\nAnswer:", ["carbon dioxide", "helium"], 0),
    ("Question: the sun is a?\nAnswer:", ["moon", "star"], 1),
    ("Question: water freezes when it gets?\nAnswer:", ["colder", "hotter"], 0),
    ("Question: heavier objects fall?\nAnswer:", ["faster", "at the same rate"], 1),
]
X = pd.DataFrame({"prompt": [r[0] for r in ROWS], "choices": [r[1] for r in ROWS]})
Y = np.array([r[2] for r in ROWS])
ANSWERS = [" " + c[k] for _, c, k in ROWS]


@pytest.fixture(scope="module")
def pre_lm(tiny_lm, tmp_path_factory):
    """A tiny LM 'pre-trained' on other questions of the same format: 0 < eps_pre < 1."""
    prompts = [
        "Question: what do bees make?\nAnswer:", "Question: moon colour?\nAnswer:",
        "Question: is fire hot?\nAnswer:", "Question: what is H2O?\nAnswer:",
        "Question: largest planet?\nAnswer:", "Question: fastest land animal?\nAnswer:",
    ]
    answers = [" honey", " white", " yes", " water", " jupiter", " cheetah"]
    est = LLMGenerator(tiny_lm, lr=1e-2, n_epochs=15, batch_size=8, device="cpu", random_state=0)
    est.fit(prompts, answers)
    path = tmp_path_factory.mktemp("pre-lm")
    est.model_.save_pretrained(path)
    est.tokenizer_.save_pretrained(path)
    return str(path)


def _weak(path, mode="full", **kw):
    params = dict(
        mode=mode, lr={"full": 1e-2, "lora": 5e-2}[mode], n_epochs=10, batch_size=8,
        lora_r=4, device="cpu", max_new_tokens=6,
    )
    params.update(kw)
    return LLMGenerator(path, **params)


@pytest.fixture(scope="module")
def lora_boost(tiny_lm):
    # From a random model eps_pre is 1: a round is rejected only if its expert gets every
    # weighted token wrong, which these settings avoid (checked by the assertions below).
    return TokenAdaBoostGenerator(_weak(tiny_lm, "lora"), n_estimators=3, random_state=0).fit(X, Y)


class _Recorder:
    """Wraps a function and records its calls."""

    def __init__(self, func, hook=None):
        self.func, self.hook, self.calls = func, hook, []

    def __call__(self, *args, **kwargs):
        if self.hook is not None:
            self.hook(self, *args, **kwargs)
        self.calls.append((args, kwargs))
        return self.func(*args, **kwargs)


def _sabotage_rounds(monkeypatch, rounds):
    """Make the experts of the given (1-based) rounds always wrong: argmax becomes <pad>."""
    original = LLMGenerator.fit
    count = {"n": 0}

    def train(self, X, y, sample_weight=None, *, token_weight=None):
        original(self, X, y, sample_weight, token_weight=token_weight)
        if self.n_epochs == 0:  # the zero-shot reference of eps_pre
            return self
        count["n"] += 1
        if count["n"] in rounds:
            with torch.no_grad():
                self.model_.lm_head.weight.zero_()
        return self

    monkeypatch.setattr(LLMGenerator, "fit", train)


# -- sklearn contract -----------------------------------------------------------------------
def test_nested_parameters(tiny_lm):
    params = TokenAdaBoostGenerator(_weak(tiny_lm)).get_params(deep=True)
    assert params["estimator__lr"] == 1e-2


def test_bad_params(tiny_lm):
    with pytest.raises(ValueError, match=r"The 'n_estimators' parameter of TokenAdaBoostGenerator "
                                         r"must be an int in the range \[1, inf\). Got 0 instead."):
        TokenAdaBoostGenerator(_weak(tiny_lm), n_estimators=0).fit(X, Y)
    with pytest.raises(ValueError, match="'combine'"):
        TokenAdaBoostGenerator(_weak(tiny_lm), combine="sum").fit(X, Y)
    with pytest.raises(ValueError, match="'weighting'"):
        TokenAdaBoostGenerator(_weak(tiny_lm), weighting="word").fit(X, Y)
    with pytest.raises(ValueError, match="'window'"):
        TokenAdaBoostGenerator(_weak(tiny_lm), window=0).fit(X, Y)
    with pytest.raises(ValueError, match="must be an object implementing .fit., .token_mistakes., "
                                         ".answer_lengths. and .as_expert. or None"):
        TokenAdaBoostGenerator("smollm2-135m").fit(X, Y)
    with pytest.raises(ValueError, match="'mode'"):
        TokenAdaBoostGenerator(_weak(tiny_lm, mode="full").set_params(mode="qlora")).fit(X, Y)
    with pytest.raises(ValueError, match="memory"):
        TokenAdaBoostGenerator(_weak(tiny_lm), memory=3).fit(X, Y)
    with pytest.raises(NotFittedError):
        TokenAdaBoostGenerator(_weak(tiny_lm)).predict(X)


def test_fitted_attributes_are_documented(lora_boost):
    doc = TokenAdaBoostGenerator.__doc__.split("Attributes\n    ----------")[1]
    doc = doc.split("See Also")[0]
    documented = set(re.findall(r"^    (\w+_) :", doc, flags=re.M))
    fitted = {k for k in vars(lora_boost) if k.endswith("_") and not k.startswith("_")}
    # combination_weights_ exists with combine="learned" only, gate_ with combine="router"
    # only (the fixture mixes by alpha)
    assert lora_boost.combine not in ("learned", "router")
    assert not hasattr(lora_boost, "combination_weights_") and not hasattr(lora_boost, "gate_")
    assert fitted == documented - {"combination_weights_", "gate_"}


# -- Algorithm 1, checked by hand ------------------------------------------------------------
def _manual_incorrect(model, tok, enc, window, weighting):
    incorrect, lengths = answer_token_errors(enc, token_predictions(model, tok, enc))
    starts = np.cumsum(lengths) - lengths
    out = np.empty_like(incorrect)
    for s, k in zip(starts, lengths):
        for j in range(k):
            if weighting == "sample":
                out[s + j] = incorrect[s : s + k].mean()
            else:
                out[s + j] = incorrect[max(s, s + j - window + 1) : s + j + 1].mean()
    return out, lengths


@pytest.mark.parametrize("window, weighting", [(1, "token"), (2, "token"), (1, "sample")])
def test_algorithm_1_by_hand(pre_lm, monkeypatch, window, weighting):
    trained = _Recorder(
        skw2s.hf.training.train_causal_lm,
        hook=lambda rec, model, *a, **k: rec.__dict__.setdefault("init", []).append(
            model.lm_head.weight.detach().clone()
        ),
    )
    monkeypatch.setattr(skw2s.hf.training, "train_causal_lm", trained)
    draws = _Recorder(tb.sample_token_counts)
    monkeypatch.setattr(tb, "sample_token_counts", draws)

    boost = TokenAdaBoostGenerator(
        _weak(pre_lm), n_estimators=2, window=window, weighting=weighting, random_state=0
    ).fit(X, Y)

    pretrained, tok = load_causal_lm(pre_lm, device="cpu")
    enc = encode_sft(tok, list(X["prompt"]), ANSWERS)
    n = sum(ex.n_answer_tokens for ex in enc)

    # eps_pre: D_1-weighted teacher-forced error of the untrained model
    inc0, lengths = _manual_incorrect(pretrained, tok, enc, window, weighting)
    eps_pre = inc0.mean()
    assert 0 < eps_pre < 1
    assert boost.pretrained_error_ == pytest.approx(eps_pre)

    D = np.full(n, 1.0 / n)
    for t, expert in enumerate(boost.estimators_):
        # every round starts from the pre-trained weights
        torch.testing.assert_close(trained.init[t], pretrained.lm_head.weight, rtol=0, atol=0)
        # n tokens drawn with replacement by D_t; the draw counts are the token weights
        (D_arg, n_draws, _), _ = draws.calls[t]
        np.testing.assert_allclose(D_arg, D, rtol=1e-12)
        assert n_draws == n
        weights = trained.calls[t][0][3]
        flat = np.concatenate([np.asarray(w) for w in weights])
        assert flat.sum() == n and np.array_equal(flat, np.round(flat))
        assert boost.history_[t]["n_samples_trained"] == sum(w.sum() > 0 for w in weights)
        assert boost.history_[t]["n_distinct_tokens"] == np.count_nonzero(flat)
        # eps_t, alpha_t and the update, exactly as the paper writes them
        inc, _ = _manual_incorrect(expert.model_, tok, enc, window, weighting)
        eps = float(np.sum(D * inc))
        assert boost.estimator_errors_[t] == pytest.approx(eps)
        alpha = np.log((1 - eps) / eps) + np.log(1 / (1 - eps_pre) - 1)
        assert boost.estimator_weights_[t] == pytest.approx(alpha)
        D = D * np.exp(alpha * inc)
        D /= D.sum()
    np.testing.assert_allclose(boost.token_weights_flat_, D, rtol=1e-9)
    assert [len(w) for w in boost.token_weights_] == lengths.tolist()
    if weighting == "sample":
        assert all(np.allclose(w, w[0]) for w in boost.token_weights_)
    assert len(boost.history_) == len(boost.estimators_) + (boost.stop_reason_ == "error>=eps_pre")


def test_early_stop_is_recorded(pre_lm, monkeypatch):
    _sabotage_rounds(monkeypatch, {2})
    boost = TokenAdaBoostGenerator(_weak(pre_lm), n_estimators=3, random_state=0).fit(X, Y)
    assert boost.stop_reason_ == "error>=eps_pre"
    assert len(boost.estimators_) == 1
    assert boost.estimator_weights_.shape == boost.estimator_errors_.shape == (1,)
    assert len(boost.history_) == 2
    rejected = boost.history_[1]
    assert rejected["alpha"] is None and rejected["stop_reason"] == "error>=eps_pre"
    assert rejected["error"] >= boost.pretrained_error_
    assert boost.score(X, Y) == boost.estimators_[0].score(X, Y)


def test_first_round_worse_than_pretrained_raises(pre_lm, monkeypatch):
    _sabotage_rounds(monkeypatch, {1})
    with pytest.raises(ValueError, match="not below the pre-trained model's error eps_pre"):
        TokenAdaBoostGenerator(_weak(pre_lm), n_estimators=2, random_state=0).fit(X, Y)


def test_experts_must_share_one_vocabulary(tiny_lm, tiny_lm_other_vocab, monkeypatch):
    tok, other = load_tokenizer(tiny_lm), load_tokenizer(tiny_lm_other_vocab)
    check_shared_vocabulary([tok, load_tokenizer(tiny_lm)])
    with pytest.raises(ValueError, match="Experts must share one vocabulary"):
        check_shared_vocabulary([tok, other])
    # an expert whose fit loads a model with another tokenizer is refused before it is mixed
    original = LLMGenerator.fit

    def fit(self, X, y, sample_weight=None, *, token_weight=None):
        if self.n_epochs > 0:  # the rounds' experts; the zero-shot reference keeps its model
            self.model = tiny_lm_other_vocab
        return original(self, X, y, sample_weight, token_weight=token_weight)

    monkeypatch.setattr(LLMGenerator, "fit", fit)
    # (a uniform ensemble without bootstrap: no token weights, whose lengths would differ)
    with pytest.raises(ValueError, match="Experts must share one vocabulary"):
        UniformEnsembleGenerator(_weak(tiny_lm), n_estimators=1, random_state=0).fit(X, Y)


# -- the fitted LoRA ensemble ----------------------------------------------------------------
def test_lora_experts_share_one_base_model(lora_boost):
    from peft import PeftModel

    assert len(lora_boost.estimators_) == 3 and lora_boost.stop_reason_ is None
    shared = lora_boost.estimators_[0].model_
    assert isinstance(shared, PeftModel)
    assert all(e.model_ is shared for e in lora_boost.estimators_)
    # the first learner keeps its own adapter; the others moved theirs onto its base
    assert [e.adapter_name_ for e in lora_boost.estimators_] == ["default", "round2", "round3"]
    assert set(shared.peft_config) == {"default", "round2", "round3"}
    assert np.all(lora_boost.estimator_errors_ < lora_boost.pretrained_error_)
    assert np.all(lora_boost.estimator_weights_ > 0)
    assert lora_boost.token_weights_flat_.sum() == pytest.approx(1.0)
    assert [h["cached"] for h in lora_boost.history_] == [False] * 3
    # the experts really differ (different token draws and seeds)
    errors = lora_boost.estimator_token_errors(X, Y)
    assert errors.shape == (3,)
    assert errors[0] == pytest.approx(lora_boost.estimators_[0].token_error(X, Y))


def test_mixture_generation_and_staged_methods(lora_boost):
    prompts = list(X["prompt"][:4])
    experts = [e.as_expert() for e in lora_boost.estimators_]
    ref = mixture_generate(
        experts, lora_boost.estimator_weights_, lora_boost.tokenizer_, prompts, max_new_tokens=6,
        use_cache=False, batch_size=1,
    )
    assert lora_boost.generate(prompts, return_tokens=True) == ref
    texts = lora_boost.generate(X.iloc[:4])
    assert texts == lora_boost.tokenizer_.batch_decode(ref, skip_special_tokens=True)
    staged = list(lora_boost.staged_generate(prompts))
    assert len(staged) == 3 and staged[-1] == texts
    assert staged[0] == lora_boost.estimators_[0].generate(prompts)
    # multiple choice: lowest mixture NLL, staged variants end where the final ones are
    pred = lora_boost.predict(X)
    assert pred.dtype == np.int64 and pred.shape == (8,)
    staged_pred = list(lora_boost.staged_predict(X))
    assert np.array_equal(staged_pred[-1], pred)
    assert np.array_equal(staged_pred[0], lora_boost.estimators_[0].predict(X))
    proba = lora_boost.predict_proba(X)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    np.testing.assert_allclose(list(lora_boost.staged_predict_proba(X))[-1], proba)
    assert list(lora_boost.staged_score(X, Y))[-1] == lora_boost.score(X, Y)
    assert list(lora_boost.staged_token_error(X, Y))[-1] == pytest.approx(
        lora_boost.token_error(X, Y)
    )
    free_text = list(X["prompt"])
    assert list(lora_boost.staged_score(free_text, ANSWERS))[-1] == pytest.approx(
        1 - lora_boost.token_error(X, Y)
    )
    assert np.array_equal(lora_boost.pseudo_label(X), pred)
    labels = lora_boost.pseudo_label(prompts)
    assert labels.dtype == object and labels.tolist() == texts


def test_logit_combination_differs(lora_boost):
    logit = clone(lora_boost).set_params(combine="logit")
    logit.__dict__.update({k: v for k, v in vars(lora_boost).items() if k.endswith("_")})
    assert not np.allclose(logit.predict_proba(X), lora_boost.predict_proba(X))


def _torch_globals(blob):
    import pickletools

    return [
        arg for _, arg, _ in pickletools.genops(blob)
        if isinstance(arg, str) and re.match(r"torch(\.|$)", arg)
    ]


def test_pickle_roundtrip(lora_boost):
    blob = pickle.dumps(lora_boost)
    assert _torch_globals(blob) == []
    restored = pickle.loads(blob)
    shared = restored.estimators_[0].model_
    assert all(e.model_ is shared for e in restored.estimators_)
    prompts = list(X["prompt"])
    assert restored.generate(prompts, return_tokens=True) == lora_boost.generate(
        prompts, return_tokens=True
    )
    np.testing.assert_allclose(restored.predict_proba(X), lora_boost.predict_proba(X), rtol=1e-5)
    np.testing.assert_array_equal(restored.estimator_weights_, lora_boost.estimator_weights_)


def test_pickle_roundtrip_full_mode(tiny_lm):
    boost = TokenAdaBoostGenerator(_weak(tiny_lm, n_epochs=3), n_estimators=2, random_state=0)
    boost.fit(X, Y)
    blob = pickle.dumps(boost)
    assert _torch_globals(blob) == []
    restored = pickle.loads(blob)
    assert restored.estimators_[0].model_ is not restored.estimators_[1].model_
    prompts = list(X["prompt"])
    assert restored.generate(prompts, return_tokens=True) == boost.generate(
        prompts, return_tokens=True
    )


# -- memory ------------------------------------------------------------------------------------
def test_memory_trains_only_the_new_rounds(tiny_lm, tmp_path, monkeypatch):
    trained = _Recorder(skw2s.hf.training.train_causal_lm)
    monkeypatch.setattr(skw2s.hf.training, "train_causal_lm", trained)
    boost = TokenAdaBoostGenerator(
        _weak(tiny_lm, "lora"), n_estimators=3, random_state=0, memory=tmp_path
    )
    boost.fit(X, Y)
    assert len(trained.calls) == 3
    first = boost.estimator_weights_.copy()
    more = clone(boost).set_params(n_estimators=5).fit(X, Y)
    assert len(trained.calls) == 5  # only 2 more rounds were trained
    assert [h["cached"] for h in more.history_] == [True, True, True, False, False]
    np.testing.assert_array_equal(more.estimator_weights_[:3], first)
    again = clone(more).fit(X, Y)
    assert len(trained.calls) == 5  # everything came from memory
    np.testing.assert_array_equal(again.estimator_weights_, more.estimator_weights_)
    np.testing.assert_array_equal(again.token_weights_flat_, more.token_weights_flat_)
    assert again.generate(list(X["prompt"]), return_tokens=True) == more.generate(
        list(X["prompt"]), return_tokens=True
    )
    # the combination rule only mixes fitted rounds: they are reused
    logit = clone(more).set_params(combine="logit").fit(X, Y)
    assert len(trained.calls) == 5
    np.testing.assert_array_equal(logit.estimator_weights_, more.estimator_weights_)
    # the window changes the weight steps, not a trained round: round 1 is reused
    clone(boost).set_params(n_estimators=1, window=2).fit(X, Y)
    assert len(trained.calls) == 5
    # other learner settings do not reuse the rounds
    clone(boost).set_params(n_estimators=1, estimator__lr=3e-2).fit(X, Y)
    assert len(trained.calls) == 6


def test_grid_search_over_n_estimators_with_memory(tiny_lm, tmp_path):
    boost = TokenAdaBoostGenerator(
        _weak(tiny_lm, "lora"), random_state=0, memory=tmp_path
    )
    search = GridSearchCV(boost, {"n_estimators": [1, 2]}, cv=2).fit(X, Y)
    assert search.best_params_["n_estimators"] in (1, 2)
    assert 0.0 <= search.score(X, Y) <= 1.0


# -- real model ------------------------------------------------------------------------------
@pytest.mark.real_model
def test_two_rounds_on_smollm2_quartz(smollm2_path, data_dir):
    import time

    from skw2s.data.datasets import load_quartz, to_multiple_choice

    X_train, y_train = to_multiple_choice(load_quartz("train", data_dir=data_dir).head(24))
    X_test, y_test = to_multiple_choice(load_quartz("test", data_dir=data_dir).head(24))
    weak = LLMGenerator(
        "smollm2-135m", mode="lora", lr=3e-3, n_epochs=1, batch_size=8, max_length=96,
        lora_r=8, device="auto", random_state=0,
    )
    start = time.perf_counter()
    boost = TokenAdaBoostGenerator(weak, n_estimators=2, random_state=0).fit(X_train, y_train)
    accuracy = list(boost.staged_score(X_test, y_test))
    single = boost.estimators_[0].score(X_test, y_test)
    print(f"\neps_pre = {boost.pretrained_error_:.4f}")
    for h in boost.history_:
        alpha = "rejected" if h["alpha"] is None else f"{h['alpha']:.4f}"
        print(f"round {h['round']}: eps_t = {h['error']:.4f}, alpha_t = {alpha}, "
              f"fit {h['fit_seconds']:.1f} s")
    print(f"option accuracy: single expert {single:.3f}, boosted by round {accuracy}")
    print(f"total {time.perf_counter() - start:.1f} s")
    assert 0 < boost.pretrained_error_ < 1
    assert np.all(boost.estimator_errors_ < boost.pretrained_error_)
    assert np.all(np.isfinite(boost.estimator_weights_)) and np.all(boost.estimator_weights_ > 0)
    assert all(0.0 <= a <= 1.0 for a in accuracy)
