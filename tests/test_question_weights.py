"""Per-question expert weights of the classifier ensembles: ``combine="confidence"`` (each
learner's own confidence times its alpha) and ``combine="router"`` (a gate fitted on held-out
rows)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV

from skw2s import LLMAdaBoostClassifier, LLMClassifier, UniformEnsembleClassifier
from skw2s.core import weights as _weights

WORDS = "oxygen nitrogen hydrogen helium carbon iron water sun moon earth".split()
TEXTS = [f"Q: {a} {b} A: {c}" for a in WORDS[:5] for b in WORDS[5:] for c in WORDS[:2]]
LABELS = np.array([t.endswith("oxygen") ^ (i % 4 == 0) for i, t in enumerate(TEXTS)]).astype(int)

pytestmark = pytest.mark.usefixtures("fresh_feature_cache")


def _head(lm):
    return LLMClassifier(lm, mode="head", lr=0.05, n_epochs=100, device="cpu")


def _members(ens, X):
    return np.stack([e.predict_proba(X) for e in ens.estimators_])


# -- the pure arithmetic --------------------------------------------------------------------
def test_confidence_weights_are_alpha_times_confidence_normalised():
    proba = np.array([[[0.9, 0.1], [0.5, 0.5]], [[0.4, 0.6], [0.2, 0.8]]])  # (T=2, n=2, K=2)
    w = _weights.confidence_weights(proba, [1.0, 2.0])
    np.testing.assert_allclose(w, [[0.9 / (0.9 + 1.2), 1.2 / 2.1], [0.5 / 2.1, 1.6 / 2.1]])
    np.testing.assert_allclose(w.sum(1), 1)
    mixed = _weights.mix_per_question(proba, w)
    np.testing.assert_allclose(mixed[0], w[0, 0] * proba[0, 0] + w[0, 1] * proba[1, 0])
    np.testing.assert_allclose(mixed.sum(1), 1)
    with pytest.raises(ValueError, match="shape"):
        _weights.mix_per_question(proba, w.T[:, :1])


def test_gate_weights_give_unseen_experts_zero_and_renormalise_a_prefix():
    features = np.zeros((3, 2))
    gate = DummyClassifier(strategy="prior").fit(features, [2, 2, 2])  # only expert 2 chosen
    np.testing.assert_array_equal(_weights.gate_weights(gate, features, 3), [[0, 0, 1]] * 3)
    # the first two experts were never chosen: their prefix falls back to uniform
    np.testing.assert_array_equal(_weights.gate_weights(gate, features, 3, 2), [[0.5, 0.5]] * 3)
    np.testing.assert_array_equal(_weights.router_targets([[0.2, 0.9], [0.7, 0.9]]), [1, 0])


# -- the ensembles ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted(tiny_lm):
    return {
        combine: LLMAdaBoostClassifier(_head(tiny_lm), n_estimators=3, combine=combine,
                                       validation_fraction=0.25, random_state=0
                                       ).fit(TEXTS, LABELS)
        for combine in ("confidence", "router")
    }


@pytest.mark.parametrize("combine", ["confidence", "router"])
def test_per_question_mixture_shapes_and_weights(fitted, combine):
    ens = fitted[combine]
    T = len(ens.estimators_)
    w = ens.question_weights(TEXTS)
    assert w.shape == (len(TEXTS), T) and np.all(w >= 0)
    np.testing.assert_allclose(w.sum(1), 1, rtol=1e-12)
    members = _members(ens, TEXTS)
    expected = np.einsum("nt,tnk->nk", w, members)
    proba = ens.predict_proba(TEXTS)
    np.testing.assert_allclose(proba, expected, rtol=1e-10)
    np.testing.assert_array_equal(ens.predict(TEXTS), ens.classes_[proba.argmax(1)])
    staged = list(ens.staged_predict_proba(TEXTS))
    assert len(staged) == T and np.array_equal(staged[-1], proba)
    np.testing.assert_allclose(staged[0], members[0], rtol=1e-12)  # one learner: its own
    rounds = ens.round_predictions(TEXTS)
    np.testing.assert_array_equal(rounds["staged_proba"][-1], proba)
    np.testing.assert_array_equal(rounds["staged"][-1], ens.predict(TEXTS))
    if combine == "confidence":
        conf = members.max(2).T * ens.estimator_weights_
        np.testing.assert_allclose(w, conf / conf.sum(1, keepdims=True), rtol=1e-12)
    else:
        assert isinstance(ens.gate_, (LogisticRegression, DummyClassifier))
        assert not hasattr(ens, "combination_weights_")


@pytest.mark.parametrize("combine", ["confidence", "router"])
def test_pickle_and_clone_keep_the_per_question_mixture(fitted, combine):
    ens = fitted[combine]
    again = pickle.loads(pickle.dumps(ens))
    np.testing.assert_array_equal(again.predict_proba(TEXTS), ens.predict_proba(TEXTS))
    assert clone(ens).get_params()["combine"] == combine


def test_one_expert_is_that_expert(tiny_lm):
    for combine in ("confidence", "router"):
        ens = UniformEnsembleClassifier(_head(tiny_lm), n_estimators=1, combine=combine,
                                        validation_fraction=0.25, random_state=0
                                        ).fit(TEXTS, LABELS)
        np.testing.assert_array_equal(ens.question_weights(TEXTS), np.ones((len(TEXTS), 1)))
        np.testing.assert_allclose(ens.predict_proba(TEXTS),
                                   ens.estimators_[0].predict_proba(TEXTS), rtol=1e-12)
        if combine == "router":  # one expert: the gate saw one class
            assert isinstance(ens.gate_, DummyClassifier)


def test_gate_that_sees_one_class_trusts_that_learner():
    # identical members tie on every held-out row; the first wins every row, so the gate sees
    # one class and gives it all the weight
    X = np.arange(40, dtype=float).reshape(-1, 1)
    y = (np.arange(40) % 3 == 0).astype(int)
    ens = UniformEnsembleClassifier(DummyClassifier(strategy="prior"), n_estimators=3,
                                    combine="router", validation_fraction=0.25,
                                    random_state=0).fit(X, y)
    assert isinstance(ens.gate_, DummyClassifier)
    np.testing.assert_array_equal(ens.question_weights(X), np.tile([1.0, 0.0, 0.0], (40, 1)))


def test_question_weights_need_a_per_question_combine_and_router_needs_held_out_rows():
    X = np.arange(20, dtype=float).reshape(-1, 1)
    y = np.arange(20) % 2
    vote = UniformEnsembleClassifier(LogisticRegression(), n_estimators=2).fit(X, y)
    with pytest.raises(ValueError, match='needs combine="confidence" or "router"'):
        vote.question_weights(X)
    with pytest.raises(ValueError, match="combine='router'"):
        UniformEnsembleClassifier(LogisticRegression(), n_estimators=2, combine="router",
                                  validation_fraction=0.01).fit(X, y)


def test_router_in_grid_search():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    y = (X[:, 0] + 0.5 * rng.normal(size=60) > 0).astype(int)
    ens = UniformEnsembleClassifier(LogisticRegression(), n_estimators=3, bootstrap=True,
                                    random_state=0)
    search = GridSearchCV(ens, {"combine": ["vote", "confidence", "router"]}, cv=2).fit(X, y)
    assert search.best_params_["combine"] in ("vote", "confidence", "router")


# Same seed, same numbers in a fresh process: tests/test_determinism.py fits both options.


# -- the generator: per-token confidence weights ------------------------------------------------
def test_generator_confidence_mixture_scores_choices_and_generates(tiny_lm):
    import pandas as pd

    from skw2s import LLMGenerator, UniformEnsembleGenerator

    X = pd.DataFrame({"prompt": [f"Question: is {w} a gas?\nAnswer:" for w in WORDS[:6]],
                      "choices": [["yes", "no"]] * 3 + [["yes", "no", "maybe"]] * 3})
    y = np.array([0, 0, 0, 1, 1, 1])
    gen = LLMGenerator(tiny_lm, mode="lora", lr=5e-2, n_epochs=1, batch_size=4, lora_r=4,
                       device="cpu", max_length=48, max_new_tokens=3)
    ens = UniformEnsembleGenerator(gen, n_estimators=2, combine="confidence",
                                   random_state=0).fit(X, y)
    proba = ens.predict_proba(X)
    assert proba.shape == (6, 3)
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-6)
    assert np.all(proba[:3, 2] == 0)  # two-choice rows have no third option
    assert len(ens.generate(list(X.prompt))) == 6
    one = UniformEnsembleGenerator(gen, n_estimators=1, combine="confidence",
                                   random_state=0).fit(X, y)
    np.testing.assert_allclose(one.predict_proba(X), one.estimators_[0].predict_proba(X),
                               rtol=1e-5, atol=1e-7)


def test_generator_router_weighs_multiple_choice_questions(tiny_lm):
    import pandas as pd

    from skw2s import LLMGenerator, TokenAdaBoostGenerator

    X = pd.DataFrame({"prompt": [f"Question: is {a} {b} a gas?\nAnswer:"
                                 for a in WORDS[:4] for b in WORDS[4:7]],
                      "choices": [["yes", "no"]] * 6 + [["yes", "no", "maybe"]] * 6})
    y = np.array([0, 1] * 3 + [2, 1, 0] * 2)
    gen = LLMGenerator(tiny_lm, mode="lora", lr=5e-2, n_epochs=1, batch_size=4, lora_r=4,
                       device="cpu", max_length=48, max_new_tokens=2)
    ens = TokenAdaBoostGenerator(gen, n_estimators=2, combine="router", validation_fraction=0.34,
                                 random_state=0).fit(X, y)
    T = len(ens.estimators_)
    w = ens.question_weights(X)
    assert w.shape == (12, T) and np.all(w >= 0)
    np.testing.assert_allclose(w.sum(1), 1, rtol=1e-12)
    own = np.stack([e.predict_proba(X) for e in ens.estimators_])
    proba = ens.predict_proba(X)
    np.testing.assert_allclose(proba, np.einsum("nt,tnk->nk", w, own), rtol=1e-5, atol=1e-8)
    rounds = ens.round_predictions(X)
    np.testing.assert_array_equal(rounds["staged"][-1], ens.predict(X))
    assert len(ens.generate(list(X.prompt[:2]))) == 2  # free text: the alpha mixture
    with pytest.raises(ValueError, match="no choices column"):
        clone(ens).fit(list(X.prompt), ["yes"] * 12)
