"""Bad input gets a clear error or warning, and a failed fit leaves nothing half-fitted (the rows
of docs/bad-inputs.md that live in the estimators; the config rows are in test_cli.py, the file
rows in test_datasets.py and test_load_table.py, the model rows in test_model_specs.py)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from skw2s import (
    DifficultySplitter,
    LLMAdaBoostClassifier,
    LLMClassifier,
    LLMGenerator,
    WeakToStrongPipeline,
    pgr_score,
)

WORDS = "oxygen nitrogen hydrogen helium carbon iron water sun moon earth".split()
TEXTS = [f"Q: {a} {b} A: {c}" for a in WORDS[:5] for b in WORDS[5:] for c in WORDS[:2]]
LABELS = np.array([t.endswith("oxygen") ^ (i % 4 == 0) for i, t in enumerate(TEXTS)]).astype(int)
MC = pd.DataFrame({"prompt": ["Question: sky colour?\nAnswer:", "Question: grass colour?\nAnswer:"],
                   "choices": [["blue", "green"], ["blue", "green"]]})

pytestmark = pytest.mark.usefixtures("fresh_feature_cache")


@pytest.mark.parametrize("cls", [LLMClassifier, LLMGenerator])
def test_an_infinite_learning_rate_is_rejected(tiny_lm, cls):
    with pytest.raises(ValueError, match=rf"The 'lr' parameter of {cls.__name__} must be a "
                                         r"float in the range \(0.0, inf\).* Got inf instead."):
        cls(tiny_lm, lr=float("inf"), device="cpu").fit(
            TEXTS if cls is LLMClassifier else MC, LABELS if cls is LLMClassifier else [0, 1]
        )


@pytest.mark.parametrize("mode", ["head", "lora"])
def test_texts_longer_than_max_length_keep_their_answer_and_warn(tiny_lm, mode):
    long = ["Q: " + "very " * 60 + f"long question {i}? A: {a}" for i, a in
            enumerate(["oxygen", "nitrogen"] * 6)]
    y = np.array([1, 0] * 6)
    clf = LLMClassifier(tiny_lm, mode=mode, lr=0.05, n_epochs=50 if mode == "head" else 1,
                        max_length=16, device="cpu", random_state=0)
    with pytest.warns(UserWarning, match=r"12 of 12 text\(s\) are longer than max_length=16 "
                                         r"tokens.*cut from the left, keeping their end"):
        clf.fit(long, y)
    # the answer survives the cut: the two answers give two different feature rows / logits
    scores = clf.decision_function(long[:2])
    assert scores[0] != scores[1]
    assert clf.tokenizer_.truncation_side == "left"


def test_pgr_is_nan_with_a_warning_for_a_negative_gap():
    with pytest.warns(UserWarning, match="ceiling is below the weak score"):
        assert np.isnan(pgr_score(0.7, 0.8, 0.6))
    with pytest.warns(UserWarning, match="ceiling is equal to the weak score"):
        assert np.isnan(pgr_score(0.7, 0.8, 0.7))
    out = pgr_score(0.6, np.array([0.7, 0.5]), 0.8)
    np.testing.assert_allclose(out, [0.5, -0.5])


def test_a_tiny_test_set_gets_a_warning(tiny_lm):
    head = dict(mode="head", lr=0.05, n_epochs=100, device="cpu")
    pipe = WeakToStrongPipeline(LLMAdaBoostClassifier(LLMClassifier(tiny_lm, **head),
                                                      n_estimators=1),
                                LLMClassifier(tiny_lm, **head), test_size=1, random_state=0)
    with pytest.warns(UserWarning, match="The 'hard' test set has only 1 question"):
        pipe.fit(TEXTS, LABELS)


def test_a_failed_fit_leaves_the_generator_unfitted(tiny_lm, monkeypatch):
    est = LLMGenerator(tiny_lm, lr=1e-2, n_epochs=1, device="cpu", random_state=0).fit(MC, [0, 1])
    check_is_fitted(est)

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr("skw2s.hf.training.train_causal_lm", broken)
    with pytest.raises(RuntimeError, match="out of memory"):
        est.fit(MC, [0, 1])
    with pytest.raises(NotFittedError):  # not the base model answering as if trained
        est.predict(MC)
    assert not [k for k in vars(est) if k.endswith("_")]


def test_a_failed_fit_leaves_the_classifier_unfitted(tiny_lm, monkeypatch):
    est = LLMClassifier(tiny_lm, mode="lora", lr=1e-2, n_epochs=1, device="cpu").fit(TEXTS, LABELS)

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("skw2s.hf.training.train_classifier", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        est.fit(TEXTS, LABELS)
    with pytest.raises(NotFittedError):
        est.predict(TEXTS)


def test_lora_fits_emit_no_peft_deprecation_warning(tiny_lm):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        LLMGenerator(tiny_lm, mode="lora", lr=1e-2, n_epochs=1, lora_r=4,
                     device="cpu").fit(MC, [0, 1])
    assert not [w for w in caught if "is_gradient_checkpointing" in str(w.message)]


def test_difficulty_splitter_rates_new_rows_by_its_rule():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.RandomState(0)
    X = rng.randn(120, 3)
    y = (X[:, 0] > 0).astype(int)
    cv = DifficultySplitter(LogisticRegression(), n_splits=3, random_state=0).fit(X, y)
    assert len(cv.estimators_) == 3
    new = cv.rate(X[:10], y[:10])
    expected = np.mean([1 - m.predict_proba(X[:10])[np.arange(10), y[:10]]
                        for m in cv.estimators_], 0)
    np.testing.assert_allclose(new, expected)
    with pytest.raises(ValueError, match="give y"):
        cv.rate(X[:10])
    by_value = DifficultySplitter(difficulty=lambda X: X[:, 1]).fit(X)
    np.testing.assert_array_equal(by_value.rate(X[:5]), X[:5, 1])
    assert not by_value.estimators_
    fixed = DifficultySplitter(difficulty=X[:, 1]).fit(X)
    with pytest.raises(ValueError, match="pass a callable"):
        fixed.rate(X[:5])
    with pytest.raises(ValueError, match="'easy_fraction' parameter of DifficultySplitter must be"):
        DifficultySplitter(difficulty=X[:, 1], easy_fraction=1.5).fit(X)
