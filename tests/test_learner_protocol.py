"""Third-party learners written only from "The learner protocol" in docs/design.md.

Neither learner below imports anything of skw2s: a small numpy classifier for the classifier
ensembles, and a causal LM (a tiny random one from :mod:`skw2s.hf.testing`) trained with a few
full-batch steps for the generator ensembles. The missing-piece tests check that ``fit`` names
what a learner lacks before anything is trained.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin

from skw2s import (
    LLMAdaBoostClassifier,
    TokenAdaBoostGenerator,
    UniformEnsembleClassifier,
    UniformEnsembleGenerator,
)


# -- a classifier learner -------------------------------------------------------------------
class CentroidClassifier(ClassifierMixin, BaseEstimator):
    """Weighted nearest centroid on numeric 2-D input; probabilities from the distances."""

    def __init__(self, temperature=1.0, random_state=None):
        self.temperature = temperature
        self.random_state = random_state

    def fit(self, X, y, sample_weight=None):
        X, y = np.asarray(X, dtype=float), np.asarray(y)
        w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, float)
        self.classes_ = np.unique(y)
        self.centroids_ = np.stack([
            np.average(X[y == c], axis=0, weights=w[y == c] + 1e-12) for c in self.classes_
        ])
        return self

    def predict_proba(self, X):
        d = ((np.asarray(X, dtype=float)[:, None, :] - self.centroids_[None]) ** 2).sum(-1)
        logits = -d / self.temperature
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X):
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def _numeric_data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    y = np.where(X[:, 0] + 0.8 * rng.normal(size=60) > 0, "yes", "no")
    return X, y


@pytest.mark.parametrize("ensemble", [
    LLMAdaBoostClassifier(CentroidClassifier(), n_estimators=3, random_state=0),
    LLMAdaBoostClassifier(CentroidClassifier(), n_estimators=3, sampling="reweight",
                          random_state=0),
    LLMAdaBoostClassifier(CentroidClassifier(), n_estimators=3, combine="router",
                          validation_fraction=0.3, random_state=0),
    UniformEnsembleClassifier(CentroidClassifier(), n_estimators=2, bootstrap=True,
                              random_state=0),
], ids=["resample", "reweight", "router", "uniform"])
def test_a_third_party_classifier_learner(ensemble):
    X, y = _numeric_data()
    ensemble.fit(X, y)
    assert 1 <= len(ensemble.estimators_) <= ensemble.n_estimators
    assert list(ensemble.classes_) == ["no", "yes"]
    proba = ensemble.predict_proba(X)
    assert proba.shape == (60, 2) and np.allclose(proba.sum(axis=1), 1)
    assert np.mean(ensemble.predict(X) == y) > 0.6


class _NoProba(BaseEstimator):
    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


class _NoClasses(CentroidClassifier):
    def fit(self, X, y, sample_weight=None):
        super().fit(X, y, sample_weight)
        del self.classes_
        self.labels_ = np.unique(y)
        return self

    def predict_proba(self, X):
        return np.full((len(X), 2), 0.5)

    def predict(self, X):
        return self.labels_[np.argmax(self.predict_proba(X), axis=1)]


def test_a_classifier_learner_without_a_method_is_named():
    X, y = _numeric_data()
    with pytest.raises(ValueError, match="it has no method 'predict_proba'"):
        LLMAdaBoostClassifier(_NoProba()).fit(X, y)


def test_a_classifier_learner_without_a_fitted_attribute_is_named():
    X, y = _numeric_data()
    with pytest.raises(TypeError, match="fitted attribute.* classes_ .*_NoClasses.fit"):
        LLMAdaBoostClassifier(_NoClasses(), n_estimators=2).fit(X, y)


# -- a generator learner --------------------------------------------------------------------
ROWS = [
    ("Question: sky colour?\nAnswer:", ["blue", "green"], 0),
    ("Question: grass colour?\nAnswer:", ["blue", "green"], 1),
    ("Question: boiling water is?\nAnswer:", ["hot", "cold"], 0),
    ("Question: ice is?\nAnswer:", ["hot", "cold"], 1),
    ("Question: the sun is a?\nAnswer:", ["moon", "star"], 1),
    ("Question: the moon is?\nAnswer:", ["bright", "dark"], 0),
]
X_MC = pd.DataFrame({"prompt": [r[0] for r in ROWS], "choices": [r[1] for r in ROWS]})
Y_MC = np.array([r[2] for r in ROWS])


class StepsGenerator(BaseEstimator):
    """A causal LM trained by a few full-batch Adam steps on token-weighted answer tokens."""

    def __init__(self, model=None, n_epochs=20, lr=3e-2, batch_size=8, max_length=64,
                 max_new_tokens=4, choice_score="sum", random_state=None):
        self.model = model
        self.n_epochs = n_epochs
        self.lr = lr
        self.batch_size = batch_size
        self.max_length = max_length
        self.max_new_tokens = max_new_tokens
        self.choice_score = choice_score
        self.random_state = random_state

    def _rows(self, X, y):
        """Per example: (prompt ids, answer ids with EOS)."""
        out = []
        for prompt, choices, k in zip(X["prompt"], X["choices"], y):
            p = self.tokenizer_(prompt)["input_ids"]
            a = self.tokenizer_(" " + choices[int(k)])["input_ids"] + [self.tokenizer_.eos_token_id]
            out.append((p, a))
        return out

    def _answer_logits(self, p, a):
        import torch

        ids = torch.tensor([p + a])
        logits = self.model_(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0]
        return logits[len(p) - 1:len(p) + len(a) - 1]

    def fit(self, X, y, token_weight=None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer_ = AutoTokenizer.from_pretrained(self.model)
        self.model_ = AutoModelForCausalLM.from_pretrained(self.model).float().eval()
        rows = self._rows(X, y)
        if token_weight is None:
            token_weight = [np.ones(len(a)) for _, a in rows]
        if self.n_epochs > 0:
            torch.manual_seed(0 if self.random_state is None else self.random_state)
            optimizer = torch.optim.Adam(self.model_.parameters(), lr=self.lr)
            self.model_.train()
            for _ in range(self.n_epochs):
                optimizer.zero_grad()
                loss = 0.0
                for (p, a), w in zip(rows, token_weight):
                    nll = torch.nn.functional.cross_entropy(
                        self._answer_logits(p, a), torch.tensor(a), reduction="none")
                    loss = loss + (nll * torch.tensor(w, dtype=torch.float32)).sum()
                (loss / sum(float(np.sum(w)) for w in token_weight)).backward()
                optimizer.step()
            self.model_.eval()
        return self

    def answer_lengths(self, X, y):
        return np.array([len(a) for _, a in self._rows(X, y)])

    def token_mistakes(self, X, y):
        import torch

        out = []
        with torch.no_grad():
            for p, a in self._rows(X, y):
                pred = self._answer_logits(p, a).argmax(-1).numpy()
                out.append((pred != np.array(a)).astype(float))
        return np.concatenate(out)

    def token_error(self, X, y):
        return float(np.mean(self.token_mistakes(X, y)))

    def as_expert(self):
        return self.model_


@pytest.mark.parametrize("make", [
    lambda lm: UniformEnsembleGenerator(StepsGenerator(lm), n_estimators=2, bootstrap=True,
                                        random_state=0),
    lambda lm: TokenAdaBoostGenerator(StepsGenerator(lm), n_estimators=2, random_state=0),
], ids=["uniform", "token-adaboost"])
def test_a_third_party_generator_learner(make, tiny_lm):
    ensemble = make(tiny_lm).fit(X_MC, Y_MC)
    assert 1 <= len(ensemble.estimators_) <= 2
    assert ensemble.tokenizer_ is not None
    pred = ensemble.predict(X_MC)
    assert pred.shape == (len(ROWS),) and set(pred) <= {0, 1}
    assert ensemble.predict_proba(X_MC).shape == (len(ROWS), 2)
    assert ensemble.estimator_token_errors(X_MC, Y_MC).shape == (len(ensemble.estimators_),)


class _NoEpochs(StepsGenerator):
    def __init__(self, model=None, batch_size=8, max_length=64, max_new_tokens=4,
                 choice_score="sum"):
        self.model = model
        self.batch_size = batch_size
        self.max_length = max_length
        self.max_new_tokens = max_new_tokens
        self.choice_score = choice_score


def test_a_generator_learner_without_a_parameter_is_named(tiny_lm, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("the learner was fitted before its protocol was checked")

    monkeypatch.setattr(_NoEpochs, "fit", no_training)
    with pytest.raises(TypeError, match="no parameter n_epochs"):
        UniformEnsembleGenerator(_NoEpochs(tiny_lm)).fit(X_MC, Y_MC)


def test_a_generator_learner_without_a_tokenizer_is_named(tiny_lm, monkeypatch):
    original = StepsGenerator.fit

    def fit_then_forget(self, X, y, token_weight=None):
        original(self, X, y, token_weight)
        self.vocab_ = self.__dict__.pop("tokenizer_")
        return self

    monkeypatch.setattr(StepsGenerator, "fit", fit_then_forget)
    with pytest.raises(TypeError, match="tokenizer_"):
        UniformEnsembleGenerator(StepsGenerator(tiny_lm, n_epochs=0)).fit(X_MC, Y_MC)
