"""A diverged fit never answers (issue 29, §1): a non-finite training loss or non-finite
weights stop the fit with a DivergenceError naming the estimator, the stage and the
hyperparameters to lower; a NaN learner inside AdaBoost is an error, not "no better than
chance"; a pipeline fails in the stage that diverged, before later stages spend compute."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from skw2s import LLMAdaBoostClassifier, LLMClassifier, LLMGenerator, WeakToStrongPipeline
from skw2s.exceptions import DivergenceError

WORDS = "oxygen nitrogen hydrogen helium carbon iron water sun moon earth".split()
TEXTS = [f"Q: {a} {b} A: {c}" for a in WORDS[:5] for b in WORDS[5:] for c in WORDS[:2]]
LABELS = np.array([i % 2 for i in range(len(TEXTS))])

pytestmark = pytest.mark.usefixtures("fresh_feature_cache")


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_a_diverged_fit_raises_naming_estimator_and_hyperparameters(tiny_lm, mode):
    clf = LLMClassifier(tiny_lm, mode=mode, lr=1e30, n_epochs=2, batch_size=8, device="cpu",
                        random_state=0)
    with pytest.raises(DivergenceError, match=rf"LLMClassifier\(model='.*', mode='{mode}'\) "
                                              r"diverged: the training loss is nan at step \d+\. "
                                              r"Lower .*lr=1e\+30, n_epochs=2"):
        clf.fit(TEXTS, LABELS)
    with pytest.raises(NotFittedError):  # nothing is left to answer from
        check_is_fitted(clf)


def test_head_mode_divergence_is_caught(tiny_lm):
    clf = LLMClassifier(tiny_lm, mode="head", lr=1e37, n_epochs=5, device="cpu", random_state=0)
    with pytest.raises(DivergenceError, match=r"mode='head'\) diverged: .*lr=1e\+37"):
        clf.fit(TEXTS, LABELS)


def test_a_model_with_nan_weights_does_not_answer(tiny_lm):
    import torch

    clf = LLMClassifier(tiny_lm, mode="full", lr=1e-3, n_epochs=1, device="cpu",
                        random_state=0).fit(TEXTS[:8], LABELS[:8])
    with torch.no_grad():
        next(clf.model_.parameters()).fill_(float("nan"))
    for method in (clf.predict, clf.predict_proba, clf.decision_function):
        with pytest.raises(DivergenceError, match=r"non-finite logits for 2 of 2 text"):
            method(TEXTS[:2])


def test_the_last_step_blowing_the_weights_up_is_caught(tiny_lm, monkeypatch):
    # the loss every step computes is finite; the last update makes a weight infinite
    import torch

    step = torch.optim.AdamW.step

    def blow_up(self, *args, **kwargs):
        out = step(self, *args, **kwargs)
        with torch.no_grad():
            self.param_groups[0]["params"][0].view(-1)[0] = float("inf")
        return out

    monkeypatch.setattr(torch.optim.AdamW, "step", blow_up)
    clf = LLMClassifier(tiny_lm, mode="full", lr=1e-3, n_epochs=1, batch_size=64,
                        device="cpu", random_state=0)
    with pytest.raises(DivergenceError, match=r"diverged: the weights of .* became non-finite "
                                              r"in training\. Lower .*lr=0\.001, n_epochs=1"):
        clf.fit(TEXTS, LABELS)
    with pytest.raises(NotFittedError):
        check_is_fitted(clf)


def test_a_diverged_generator_raises(tiny_lm):
    import pandas as pd

    X = pd.DataFrame({"prompt": ["Question: sky?\nAnswer:", "Question: grass?\nAnswer:"] * 4,
                      "choices": [["blue", "green"]] * 8})
    gen = LLMGenerator(tiny_lm, mode="full", lr=1e30, n_epochs=3, batch_size=2, device="cpu",
                       random_state=0)
    with pytest.raises(DivergenceError, match=r"LLMGenerator\(model=.*\) diverged: .*lr=1e\+30"):
        gen.fit(X, [0, 1] * 4)


def test_a_nan_learner_in_adaboost_is_an_error_not_chance(tiny_lm):
    boost = LLMAdaBoostClassifier(LLMClassifier(tiny_lm, mode="full", lr=1e30, n_epochs=2,
                                                batch_size=8, device="cpu"), n_estimators=2,
                                  random_state=0)
    with pytest.raises(DivergenceError) as info:
        boost.fit(TEXTS, LABELS)
    assert str(info.value).startswith("LLMAdaBoostClassifier round 1: LLMClassifier(")
    assert "no better than chance" not in str(info.value)


def test_the_pipeline_fails_in_the_stage_that_diverged(tiny_lm):
    head = dict(mode="head", lr=0.05, n_epochs=20, device="cpu")
    pipe = WeakToStrongPipeline(LLMClassifier(tiny_lm, **head),
                                LLMClassifier(tiny_lm, mode="full", lr=1e30, n_epochs=2,
                                              batch_size=8, device="cpu"),
                                baseline=False, ceiling=True, random_state=0)
    with pytest.raises(DivergenceError, match=r"^stage student\[ours,xent\]: LLMClassifier.* "
                                              r"diverged: .*lr=1e\+30"):
        pipe.fit(TEXTS, LABELS)
    # the failing stage is the last that ran: the ceiling never trained
    assert [h["stage"] for h in pipe.history_] == ["split", "weak[ours]", "labels[ours]"]
