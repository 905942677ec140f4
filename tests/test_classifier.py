"""LLMClassifier on the tiny random LM: modes, caching, pickling, bad input."""

from __future__ import annotations

import io
import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

import skw2s.hf.training
from skw2s.hf import features as features_module
from skw2s.estimators.classifier import AUTO_HYPERPARAMETERS, LLMClassifier, clear_cache

TEXTS = ["Q: sky A: blue", "Q: sky A: green", "Q: grass A: green", "Q: grass A: blue"] * 6
LABELS = np.array(["yes", "no", "yes", "no"] * 6)
HEAD = dict(mode="head", lr=0.1, n_epochs=300, device="cpu")


pytestmark = pytest.mark.usefixtures("fresh_feature_cache")


@pytest.fixture
def head_clf(tiny_lm):
    return LLMClassifier(tiny_lm, random_state=0, **HEAD).fit(TEXTS, LABELS)


def test_fit_predict_with_string_labels(head_clf):
    clf = head_clf
    assert list(clf.classes_) == ["no", "yes"] and clf.n_classes_ == 2
    pred = clf.predict(TEXTS)
    assert pred.shape == (len(TEXTS),) and set(pred) <= {"no", "yes"}
    proba = clf.predict_proba(TEXTS)
    assert proba.shape == (len(TEXTS), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    dec = clf.decision_function(TEXTS)
    np.testing.assert_allclose(dec, np.log(proba[:, 1] / proba[:, 0]), rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(pred, clf.classes_[(dec > 0).astype(int)])
    np.testing.assert_array_equal(pred, clf.classes_[proba.argmax(axis=1)])
    assert clf.score(TEXTS, LABELS) == 1.0
    assert clf.head_ is not None and clf.fit_seconds_ > 0


def test_head_mode_matches_sequence_classifier_forward(tiny_lm, head_clf):
    # The feature path (frozen body -> cached features -> head) must give what the full
    # sequence-classification model gives with the same head weights.
    from skw2s.hf.models import load_sequence_classifier

    model, tok = load_sequence_classifier(tiny_lm, device="cpu")
    with torch.no_grad():
        model.score.weight.copy_(head_clf.head_.weight)
        enc = tok(TEXTS[:4], padding=True, return_tensors="pt")
        expected = model(**enc).logits.softmax(-1).double().numpy()
    np.testing.assert_allclose(head_clf.predict_proba(TEXTS[:4]), expected, rtol=1e-4, atol=1e-5)


def test_head_mode_shares_body_and_computes_features_once(tiny_lm, monkeypatch):
    calls = []
    original = skw2s.hf.training.extract_features

    def counting(model, tokenizer, texts, **kwargs):
        calls.append(len(texts))
        return original(model, tokenizer, texts, **kwargs)

    monkeypatch.setattr(skw2s.hf.training, "extract_features", counting)
    a = LLMClassifier(tiny_lm, random_state=0, **HEAD).fit(TEXTS, LABELS)
    assert sum(calls) == len(set(TEXTS))  # 4 unique texts, each computed once
    b = LLMClassifier(tiny_lm, random_state=1, **HEAD).fit(TEXTS[::-1], LABELS[::-1])
    a.predict(TEXTS)
    b.predict_proba(["Q: sky A: blue"])
    assert sum(calls) == len(set(TEXTS))  # nothing recomputed
    assert a.model_ is b.model_
    other_length = LLMClassifier(tiny_lm, random_state=0, max_length=3, **HEAD).fit(TEXTS, LABELS)
    assert sum(calls) == 2 * len(set(TEXTS))  # max_length is part of the feature key
    assert other_length.model_ is a.model_


def test_head_mode_respects_sample_weight(tiny_lm):
    w = (LABELS == "yes").astype(float)
    clf = LLMClassifier(tiny_lm, random_state=0, **HEAD).fit(TEXTS, LABELS, sample_weight=w)
    assert set(clf.predict(TEXTS)) == {"yes"}


def test_seeded_fits_are_reproducible(tiny_lm):
    kw = dict(HEAD, n_epochs=5)
    a = LLMClassifier(tiny_lm, random_state=3, **kw).fit(TEXTS, LABELS).predict_proba(TEXTS)
    b = LLMClassifier(tiny_lm, random_state=3, **kw).fit(TEXTS, LABELS).predict_proba(TEXTS)
    c = LLMClassifier(tiny_lm, random_state=4, **kw).fit(TEXTS, LABELS).predict_proba(TEXTS)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_auto_hyperparameters_depend_on_mode(tiny_lm, monkeypatch):
    seen = {}

    def fake_train_head(model, features, labels, sample_weight=None, *, lr, n_epochs, random_state,
                        **kw):
        seen.update(lr=lr, n_epochs=n_epochs)
        return model

    monkeypatch.setattr(skw2s.hf.training, "train_head", fake_train_head)
    LLMClassifier(tiny_lm, device="cpu").fit(TEXTS, LABELS)
    assert seen == AUTO_HYPERPARAMETERS["head"]
    LLMClassifier(tiny_lm, device="cpu", lr=0.5, n_epochs=7).fit(TEXTS, LABELS)
    assert seen == {"lr": 0.5, "n_epochs": 7}


def test_dataframe_series_and_array_inputs_agree(head_clf):
    expected = head_clf.predict_proba(TEXTS)
    for X in (
        pd.DataFrame({"text": TEXTS}),
        pd.Series(TEXTS),
        np.array(TEXTS, dtype=object),
        np.array(TEXTS)[:, None],
        tuple(TEXTS),
    ):
        np.testing.assert_array_equal(head_clf.predict_proba(X), expected)


@pytest.mark.parametrize("mode", ["head", "lora", "full"])
def test_pickle_roundtrip_stores_safetensors_only(tiny_lm, mode):
    kw = {
        "head": HEAD,
        "lora": dict(mode="lora", lr=1e-2, n_epochs=2, device="cpu"),
        "full": dict(mode="full", lr=1e-2, n_epochs=2, device="cpu"),
    }[mode]
    clf = LLMClassifier(tiny_lm, random_state=0, batch_size=8, **kw).fit(TEXTS, LABELS)
    expected = clf.predict_proba(TEXTS)
    blob = pickle.dumps(clf)
    # No torch-pickled tensor anywhere; the weights are a safetensors file (JSON header).
    assert b"torch._utils" not in blob and b"_rebuild_tensor" not in blob
    assert b'"dtype":"F32"' in blob
    if mode == "head":
        assert len(blob) < 20_000  # the head only: the body is rebuilt from the spec
    elif mode == "lora":
        assert b"adapter_model.safetensors" in blob and b"model.safetensors" not in blob.replace(
            b"adapter_model.safetensors", b""
        )
    else:
        assert b"model.safetensors" in blob
    clear_cache()  # the head-mode body is reloaded from the spec
    restored = pickle.loads(blob)
    np.testing.assert_array_equal(restored.predict_proba(TEXTS), expected)
    np.testing.assert_array_equal(restored.classes_, clf.classes_)
    buffer = io.BytesIO()
    joblib.dump(clf, buffer)
    buffer.seek(0)
    np.testing.assert_array_equal(joblib.load(buffer).predict(TEXTS), clf.predict(TEXTS))


def test_unpickled_head_learners_share_one_body(head_clf):
    blob = pickle.dumps([head_clf, head_clf])
    clear_cache()
    a, b = pickle.loads(blob)
    assert a.model_ is b.model_


def test_unfitted_pickle_and_clone(tiny_lm):
    clf = LLMClassifier(tiny_lm, mode="lora", lr=1e-3)
    assert pickle.loads(pickle.dumps(clf)).get_params() == clf.get_params()
    cloned = clone(clf)
    assert cloned.get_params() == clf.get_params()
    assert "tiny" in repr(clf) and "mode='lora'" in repr(clf)


def test_predict_before_fit_raises(tiny_lm):
    with pytest.raises(NotFittedError):
        LLMClassifier(tiny_lm).predict(TEXTS)


def test_refit_resets_state(tiny_lm, head_clf):
    head_clf.set_params(mode="full", lr=1e-2, n_epochs=1)
    head_clf.fit(TEXTS, np.where(LABELS == "yes", 1, 0))
    assert head_clf.head_ is None and list(head_clf.classes_) == [0, 1]
    assert head_clf.predict(TEXTS).dtype.kind == "i"


BAD_INPUTS = [
    ("empty X", dict(X=[], y=[]), "0 sample"),
    ("len(X) != len(y)", dict(X=TEXTS, y=LABELS[:-1]), "inconsistent numbers of samples"),
    ("one class", dict(X=TEXTS, y=["yes"] * len(TEXTS)), "only one class: 'yes'"),
    (
        "three classes",
        dict(X=TEXTS[:3], y=["a", "b", "c"]),
        "Only binary classification is supported. The type of the target is multiclass",
    ),
    ("continuous y", dict(X=TEXTS[:3], y=[0.1, 0.2, 0.3]), "type of the target is continuous"),
    ("None item", dict(X=TEXTS[:3] + [None], y=[0, 1, 0, 1]), "only strings.*index 3: NoneType"),
    ("NaN item", dict(X=[np.nan] + TEXTS[:3], y=[0, 1, 0, 1]), "only strings.*index 0: float nan"),
    ("int item", dict(X=TEXTS[:3] + [7], y=[0, 1, 0, 1]), "only strings.*index 3: int"),
    ("empty string", dict(X=TEXTS[:3] + [""], y=[0, 1, 0, 1]), "empty string"),
    ("single string", dict(X="Q: sky A: blue", y=[1]), "not a single string"),
    ("two columns", dict(X=pd.DataFrame({"a": TEXTS[:2], "b": TEXTS[:2]}), y=[0, 1]), "2 columns"),
    (
        "NaN weight",
        dict(X=TEXTS, y=LABELS, sample_weight=[np.nan] + [1.0] * 23),
        "sample_weight contains NaN",
    ),
    (
        "negative weight",
        dict(X=TEXTS, y=LABELS, sample_weight=[-1.0] + [1.0] * 23),
        "sample_weight contains negative",
    ),
    (
        "short weight",
        dict(X=TEXTS, y=LABELS, sample_weight=[1.0, 2.0]),
        "sample_weight must have shape",
    ),
    ("y None", dict(X=TEXTS, y=None), "requires y to be passed"),
]


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_raises_value_error(tiny_lm, case):
    _, data, message = case
    clf = LLMClassifier(tiny_lm, **HEAD)
    with pytest.raises(ValueError, match=message):
        clf.fit(data["X"], data["y"], sample_weight=data.get("sample_weight"))


BAD_PARAMS = [
    (
        dict(mode="qlora"),
        r"The 'mode' parameter of LLMClassifier must be a str among "
        r"\{'head', 'lora', 'full'\}. Got 'qlora' instead.",
    ),
    (
        dict(lr=0),
        r"The 'lr' parameter of LLMClassifier must be a float in the range \(0.0, inf\) or a "
        r"str among \{'auto'\}. Got 0 instead.",
    ),
    (dict(n_epochs=1.5), r"'n_epochs' parameter .* must be an int in the range \[1, inf\)"),
    (dict(batch_size=0), r"'batch_size' parameter"),
    (dict(model=""), r"model spec must be a non-empty string"),
    (dict(random_state="seed"),
     r"'random_state' parameter of LLMClassifier must be an int in the range"),
    (dict(lr=float("inf")),
     r"'lr' parameter of LLMClassifier must be a float in the range \(0.0, inf\)"),
    (dict(loss="hinge"), r"'loss' parameter of LLMClassifier must be a str among"),
]


@pytest.mark.parametrize("params, message", BAD_PARAMS)
def test_bad_params_raise_value_error(tiny_lm, params, message):
    clf = LLMClassifier(tiny_lm, device="cpu").set_params(**params)
    with pytest.raises(ValueError, match=message):
        clf.fit(TEXTS, LABELS)


def test_bad_input_at_predict(head_clf):
    with pytest.raises(ValueError, match="only strings"):
        head_clf.predict([1, 2])
    with pytest.raises(ValueError, match="0 sample"):
        head_clf.predict_proba([])


def test_feature_cache_is_bounded(tiny_lm, monkeypatch):
    monkeypatch.setattr(features_module, "FEATURE_CACHE_BYTES", 2 * 32 * 4)  # two rows
    clf = LLMClassifier(tiny_lm, random_state=0, **HEAD).fit(TEXTS, LABELS)
    assert len(features_module._FEATURES) <= 2
    assert features_module._FEATURE_BYTES[0] <= 2 * 32 * 4
    assert clf.score(TEXTS, LABELS) == 1.0  # eviction never loses rows being assembled


# -- answer-score features ---------------------------------------------------------------------
QA_TEXTS = [f"Q: what colour is the {w}? A: {a}" for w, a in
            [("sky", "blue"), ("grass", "green"), ("sun", "yellow and hot"), ("snow", "white")]] * 4
QA_LABELS = np.array([1, 0] * 8)


def test_answer_scores_are_the_lms_own_log_probabilities(tiny_lm):
    import torch

    from skw2s.hf.models import load_causal_lm
    from skw2s.hf.training import ANSWER_SCORE_FEATURES

    clf = LLMClassifier(tiny_lm, head_features="answer_scores", device="cpu", random_state=0)
    clf.fit(QA_TEXTS, QA_LABELS)
    assert clf.head_.in_features == len(ANSWER_SCORE_FEATURES) == 5
    from skw2s.hf.features import _BODIES, features

    feats = features(_BODIES[clf._body_key], QA_TEXTS[:4], max_length=256, batch_size=3, verbose=0,
                      kind="answer_scores", marker=" A: ")
    model, tok = load_causal_lm(tiny_lm, device="cpu")
    for text, row in zip(QA_TEXTS[:4], feats):
        prefix, answer = text.rsplit(" A:", 1)
        ids = tok(prefix + " A:")["input_ids"]
        ans = tok(answer, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([ids + ans])).logits[0]
        logp = torch.log_softmax(logits[len(ids) - 1 : -1], -1)[torch.arange(len(ans)),
                                                                torch.tensor(ans)].numpy()
        np.testing.assert_allclose(row, [logp.mean(), logp.sum(), logp.min(), logp[0],
                                         np.log(len(ans))], rtol=1e-4, atol=1e-4)


def test_answer_scores_head_pickles_and_validates(tiny_lm):
    import pickle

    clf = LLMClassifier(tiny_lm, head_features="answer_scores", device="cpu",
                        random_state=0).fit(QA_TEXTS, QA_LABELS)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_allclose(again.predict_proba(QA_TEXTS), clf.predict_proba(QA_TEXTS),
                               rtol=1e-6)
    with pytest.raises(ValueError, match="needs mode='head', not mode='lora'"):
        LLMClassifier(tiny_lm, mode="lora", head_features="answer_scores").fit(QA_TEXTS, QA_LABELS)
    with pytest.raises(ValueError, match="does not contain it"):
        LLMClassifier(tiny_lm, head_features="answer_scores", answer_marker=" => ",
                      device="cpu").fit(QA_TEXTS, QA_LABELS)
    with pytest.raises(ValueError, match="head_features"):
        LLMClassifier(tiny_lm, head_features="logits").fit(QA_TEXTS, QA_LABELS)
