"""LLMAdaBoostClassifier: Algorithm 2 wiring, staged outputs, early stops, memory, pickling."""

from __future__ import annotations

import logging
import pickle
import time

from pathlib import Path

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.tree import DecisionTreeClassifier

from skw2s.core import weights as _weights
from skw2s import LLMAdaBoostClassifier
from skw2s.estimators.classifier import LLMClassifier, clear_cache

WORDS = "oxygen nitrogen hydrogen helium carbon iron water sun moon earth".split()
TEXTS = [f"Q: {a} {b} A: {c}" for a in WORDS[:5] for b in WORDS[5:] for c in WORDS[:2]]
# The answer decides the label ("oxygen" is right), with 30% of the labels flipped: a linear head
# on the tiny model's features learns some of it and never all, so boosting runs every round.
_FLIPPED = np.random.RandomState(0).rand(len(TEXTS)) < 0.3
LABELS = np.where(np.array([t.endswith("A: oxygen") for t in TEXTS]) ^ _FLIPPED, "right", "wrong")


def weak_llm(path, **kw):
    """A deliberately weak head-mode learner: ~0.6 training accuracy on TEXTS/LABELS."""
    return LLMClassifier(path, mode="head", lr=0.05, n_epochs=30, device="cpu", **kw)


pytestmark = pytest.mark.usefixtures("fresh_feature_cache")


@pytest.fixture
def count_llm_fits(monkeypatch):
    """Count real calls of LLMClassifier.fit (clones share the class, so all are seen)."""
    calls = []
    original = LLMClassifier.fit

    def counting_fit(self, X, y, sample_weight=None):
        calls.append(len(X))
        return original(self, X, y, sample_weight=sample_weight)

    monkeypatch.setattr(LLMClassifier, "fit", counting_fit)
    return calls


@pytest.fixture
def boosted(tiny_lm):
    return LLMAdaBoostClassifier(weak_llm(tiny_lm), n_estimators=4, random_state=0).fit(
        TEXTS, LABELS
    )


# --------------------------------------------------------------------------- stubs
class RecordingTree(DecisionTreeClassifier):
    """A decision stump that remembers what it was trained on."""

    def fit(self, X, y, sample_weight=None, check_input=True):
        self.fit_X_ = np.array(X, copy=True)
        self.fit_sample_weight_ = None if sample_weight is None else np.array(sample_weight)
        return super().fit(X, y, sample_weight=sample_weight, check_input=check_input)


class ScriptedLearner(ClassifierMixin, BaseEstimator):
    """Numeric stub: column 0 of X holds the true label (0/1). The k-th fit of any clone takes
    ``script[k]`` = rows it gets wrong, or (rows, confidence); so each round's mistakes are known.
    ``predict_proba`` gives its predicted class the confidence (default 0.9)."""

    script: list = []
    n_fits = [0]

    def __init__(self, random_state=None):
        self.random_state = random_state

    def fit(self, X, y, sample_weight=None):
        self.classes_ = np.unique(y)
        k = type(self).n_fits[0]
        type(self).n_fits[0] += 1
        entry = type(self).script[k]
        rows, self.confidence_ = entry if isinstance(entry, tuple) else (entry, 0.9)
        self.wrong_ = np.asarray(rows, dtype=int)
        return self

    def predict(self, X):
        pred = np.asarray(X)[:, 0].astype(int)
        pred[self.wrong_] = 1 - pred[self.wrong_]
        return pred

    def predict_proba(self, X):
        pred = self.predict(X)
        c = self.confidence_
        return np.column_stack([1 - pred, pred]) * (2 * c - 1) + (1 - c)


def scripted(script):
    ScriptedLearner.script = script
    ScriptedLearner.n_fits = [0]
    return ScriptedLearner()


def numeric_data(n=40, seed=0):
    """Column 0 is the label itself (for ScriptedLearner); the others are noisy features."""
    rng = np.random.RandomState(seed)
    y = rng.randint(2, size=n)
    X = np.column_stack([y, rng.normal(size=n), y + rng.normal(scale=1.5, size=n)])
    return X, y


def noisy_data(n=40, seed=0):
    """Features no stump separates perfectly, so boosting runs all its rounds."""
    X, y = numeric_data(n, seed)
    return X[:, 1:], y


# --------------------------------------------------------------------- text usage
def test_fit_predict_shapes_and_classes(boosted):
    b = boosted
    T = len(b.estimators_)
    assert T == 4 and b.stop_reason_ is None
    assert list(b.classes_) == ["right", "wrong"] and b.n_classes_ == 2
    assert b.estimator_weights_.shape == b.estimator_errors_.shape == (T,)
    assert np.all(b.estimator_weights_ > 0) and np.all(b.estimator_errors_ < 0.5)
    assert [h["round"] for h in b.history_] == [1, 2, 3, 4]
    assert set(b.history_[0]) == {
        "round",
        "error",
        "alpha",
        "stop_reason",
        "train_accuracy",
        "fit_seconds",
        "cached",
    }
    assert all(isinstance(e, LLMClassifier) for e in b.estimators_)
    pred = b.predict(TEXTS)
    assert pred.shape == (len(TEXTS),) and set(pred) <= {"right", "wrong"}
    proba = b.predict_proba(TEXTS)
    assert proba.shape == (len(TEXTS), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_outputs_follow_algorithm_2(boosted):
    b = boosted
    votes = np.stack([np.where(e.predict(TEXTS) == "wrong", 1.0, -1.0) for e in b.estimators_])
    dec = b.decision_function(TEXTS)
    np.testing.assert_allclose(dec, b.estimator_weights_ @ votes)
    np.testing.assert_array_equal(b.predict(TEXTS), np.where(dec > 0, "wrong", "right"))
    probas = np.stack([e.predict_proba(TEXTS) for e in b.estimators_])
    expected = np.tensordot(b.estimator_weights_, probas, axes=1) / b.estimator_weights_.sum()
    np.testing.assert_allclose(b.predict_proba(TEXTS), expected)
    np.testing.assert_array_equal(b.pseudo_label(TEXTS), b.predict(TEXTS))
    np.testing.assert_allclose(b.pseudo_label(TEXTS, soft=True), b.predict_proba(TEXTS))
    # The errors were measured on the full data with the chained weights D_t.
    D = np.full(len(TEXTS), 1 / len(TEXTS))
    for t, est in enumerate(b.estimators_):
        step = _weights.adaboost_step(D, est.predict(TEXTS) != LABELS)
        assert step.error == pytest.approx(b.estimator_errors_[t])
        assert step.alpha == pytest.approx(b.estimator_weights_[t])
        assert b.history_[t]["train_accuracy"] == pytest.approx(
            np.mean(est.predict(TEXTS) == LABELS)
        )
        D = step.weights


def test_staged_outputs_end_with_the_plain_ones(boosted):
    b = boosted
    staged = {
        "decision_function": list(b.staged_decision_function(TEXTS)),
        "predict": list(b.staged_predict(TEXTS)),
        "predict_proba": list(b.staged_predict_proba(TEXTS)),
    }
    for name, values in staged.items():
        assert len(values) == len(b.estimators_)
        # Exact: the plain outputs are the last stage of the same sums, computed in the same
        # order (skw2s.core.weights.staged_adaboost_decision / staged_soft_pseudo_labels). A BLAS
        # dot product here once differed by 2.2e-16 on another machine.
        np.testing.assert_array_equal(values[-1], getattr(b, name)(TEXTS))
    scores = list(b.staged_score(TEXTS, LABELS))
    assert len(scores) == len(b.estimators_) and scores[-1] == b.score(TEXTS, LABELS)
    # Round 1 of the ensemble is its first learner alone.
    np.testing.assert_array_equal(staged["predict"][0], b.estimators_[0].predict(TEXTS))


def test_learners_are_seeded_per_round(tiny_lm):
    est = weak_llm(tiny_lm)
    a = LLMAdaBoostClassifier(est, n_estimators=2, random_state=5).fit(TEXTS, LABELS)
    b = LLMAdaBoostClassifier(est, n_estimators=4, random_state=5).fit(TEXTS, LABELS)
    # A round depends on (seed, t), not on n_estimators: the first rounds coincide.
    np.testing.assert_array_equal(a.estimator_weights_, b.estimator_weights_[:2])
    seeds = [e.random_state for e in b.estimators_]
    assert len(set(seeds)) == len(seeds) and est.random_state is None
    c = LLMAdaBoostClassifier(est, n_estimators=2, random_state=6).fit(TEXTS, LABELS)
    assert not np.array_equal(a.estimator_weights_, c.estimator_weights_)


# ------------------------------------------------------------------ sampling modes
def _chain(b, X, y, D):
    """Replay the weight chain with the fitted learners; yields (t, D_t)."""
    for t, est in enumerate(b.estimators_):
        yield t, D
        D = _weights.adaboost_step(D, est.predict(X) != y).weights


def test_reweight_passes_scaled_weights_and_chains_adaboost_step():
    X, y = noisy_data()
    sw = np.ones(len(y))
    sw[:5] = 0.0
    b = LLMAdaBoostClassifier(
        RecordingTree(max_depth=1), n_estimators=5, sampling="reweight", random_state=0
    ).fit(X, y, sample_weight=sw)
    assert len(b.estimators_) == 5
    D1 = sw / sw.sum()
    for t, D in _chain(b, X, y, D1):
        est = b.estimators_[t]
        np.testing.assert_array_equal(est.fit_X_, X)
        np.testing.assert_allclose(est.fit_sample_weight_, D * len(y))  # mean 1
        assert np.all(est.fit_sample_weight_[:5] == 0)  # zero weights stay zero
        step = _weights.adaboost_step(D, est.predict(X) != y)
        assert b.estimator_weights_[t] == pytest.approx(step.alpha)
        assert b.estimator_errors_[t] == pytest.approx(step.error)
        # The learner is exactly a stump fitted with those weights.
        ref = DecisionTreeClassifier(max_depth=1, random_state=est.random_state).fit(
            X, y, D * len(y)
        )
        np.testing.assert_array_equal(ref.predict(X), est.predict(X))


def test_resample_draws_by_weight_and_measures_error_on_all_data():
    X, y = noisy_data()
    sw = np.ones(len(y))
    sw[:5] = 0.0
    b = LLMAdaBoostClassifier(
        RecordingTree(max_depth=1), n_estimators=5, sampling="resample", random_state=0
    ).fit(X, y, sample_weight=sw)
    assert len(b.estimators_) == 5
    for t, D in _chain(b, X, y, sw / sw.sum()):
        est = b.estimators_[t]
        assert est.fit_sample_weight_ is None
        # Round t draws its learner's seed, then m indices by D_t, from default_rng([seed, t]).
        rng = np.random.default_rng([0, t])
        assert est.random_state == rng.integers(np.iinfo(np.int32).max)
        idx = rng.choice(len(y), size=len(y), replace=True, p=D)
        np.testing.assert_array_equal(est.fit_X_, X[idx])
        assert not set(idx) & set(range(5))  # zero-weight samples are never drawn
        step = _weights.adaboost_step(D, est.predict(X) != y)
        assert b.estimator_errors_[t] == pytest.approx(step.error)
        assert b.estimator_weights_[t] == pytest.approx(step.alpha)


def test_resample_and_reweight_differ_but_both_learn(tiny_lm):
    results = {}
    for sampling in ("resample", "reweight"):
        b = LLMAdaBoostClassifier(
            weak_llm(tiny_lm), n_estimators=3, sampling=sampling, random_state=0
        ).fit(TEXTS, LABELS)
        results[sampling] = b.estimator_errors_
        assert b.estimator_errors_[0] < 0.5
    assert not np.array_equal(results["resample"], results["reweight"])


# -------------------------------------------------------------------- early stops
def test_perfect_learner_is_kept_and_stops():
    X, y = numeric_data(n=20)
    b = LLMAdaBoostClassifier(scripted([[], []]), n_estimators=5, random_state=0).fit(X, y)
    assert b.stop_reason_ == "perfect" and len(b.estimators_) == 1
    assert b.estimator_errors_[0] == 0 and np.isfinite(b.estimator_weights_[0])
    assert [h["stop_reason"] for h in b.history_] == ["perfect"]
    np.testing.assert_array_equal(b.predict(X), y)


def test_round_with_error_above_half_is_rejected():
    X, y = numeric_data(n=20)
    # Round 1 errs on 2 rows; round 2 errs on all but one row (weighted error > 1/2).
    b = LLMAdaBoostClassifier(
        scripted([[0, 1], list(range(1, 20))]), n_estimators=5, random_state=0
    ).fit(X, y)
    assert b.stop_reason_ == "error>=1/2"
    assert len(b.estimators_) == 1 and b.estimator_weights_.shape == b.estimator_errors_.shape == (
        1,
    )
    assert b.estimator_errors_[0] == pytest.approx(0.1)
    assert [h["stop_reason"] for h in b.history_] == [None, "error>=1/2"]
    assert b.history_[1]["alpha"] is None and b.history_[1]["error"] > 0.5


def test_first_round_no_better_than_chance_raises():
    X, y = numeric_data(n=20)
    with pytest.raises(ValueError, match=r"first weak learner .* weighted error of 0.5500 >= 1/2"):
        LLMAdaBoostClassifier(scripted([list(range(11))]), random_state=0).fit(X, y)


def test_failed_refit_leaves_no_stale_state():
    X, y = numeric_data(n=20)
    b = LLMAdaBoostClassifier(scripted([[0], [1]]), n_estimators=2, random_state=0).fit(X, y)
    assert len(b.estimators_) == 2
    ScriptedLearner.script, ScriptedLearner.n_fits = [list(range(15))], [0]
    with pytest.raises(ValueError, match="first weak learner"):
        b.fit(X, y)
    assert not hasattr(b, "estimators_")
    with pytest.raises(NotFittedError):
        b.predict(X)


def test_verbose_shows_progress(tiny_lm, capsys):
    LLMAdaBoostClassifier(
        weak_llm(tiny_lm, verbose=1), n_estimators=2, verbose=1, random_state=0
    ).fit(TEXTS, LABELS)
    assert "boosting" in capsys.readouterr().err


def test_all_rounds_run_gives_no_stop_reason():
    X, y = numeric_data(n=20)
    b = LLMAdaBoostClassifier(scripted([[0], [1], [2]]), n_estimators=3, random_state=0).fit(X, y)
    assert b.stop_reason_ is None and len(b.estimators_) == 3


def test_predict_and_proba_argmax_can_differ():
    # Rows 1-3: two unsure learners vote right, one confident learner votes wrong. The vote
    # (predict) follows the alphas; the soft mean (predict_proba) follows the confident one.
    X, y = numeric_data(n=20)
    script = [([0], 0.51), ([1, 2, 3], 0.99), ([4, 5, 6], 0.51)]
    b = LLMAdaBoostClassifier(scripted(script), n_estimators=3, random_state=0).fit(X, y)
    assert len(b.estimators_) == 3
    pred, soft = b.predict(X), b.predict_proba(X)
    np.testing.assert_array_equal(pred[1:4], y[1:4])
    np.testing.assert_array_equal(soft[1:4].argmax(axis=1), 1 - y[1:4])
    np.testing.assert_array_equal(pred[7:], soft[7:].argmax(axis=1))


# ------------------------------------------------------------------------- memory
def test_memory_fit_3_then_5_trains_only_2(tiny_lm, tmp_path, count_llm_fits, caplog):
    est = weak_llm(tiny_lm)
    b3 = LLMAdaBoostClassifier(est, n_estimators=3, random_state=0, memory=tmp_path).fit(
        TEXTS, LABELS
    )
    assert len(count_llm_fits) == 3 and b3.stop_reason_ is None
    with caplog.at_level(logging.INFO, logger="skw2s.ensemble"):
        b5 = clone(b3).set_params(n_estimators=5).fit(TEXTS, LABELS)
    assert len(count_llm_fits) == 5  # only rounds 4 and 5 were trained
    assert [h["cached"] for h in b5.history_] == [True, True, True, False, False]
    assert "from memory" in caplog.text
    # Resuming gives the same ensemble as a fresh 5-round fit.
    fresh = LLMAdaBoostClassifier(est, n_estimators=5, random_state=0).fit(TEXTS, LABELS)
    np.testing.assert_allclose(b5.estimator_weights_, fresh.estimator_weights_)
    np.testing.assert_array_equal(b5.predict_proba(TEXTS), fresh.predict_proba(TEXTS))
    # Refitting the same settings trains nothing; other data or learner settings miss.
    count_llm_fits.clear()
    clone(b3).fit(TEXTS, LABELS)
    assert len(count_llm_fits) == 0
    clone(b3).set_params(estimator__lr=0.04).fit(TEXTS, LABELS)
    assert len(count_llm_fits) == 3
    clone(b3).fit(TEXTS[:-1], LABELS[:-1])
    assert len(count_llm_fits) == 6


def test_memory_misses_when_a_local_checkpoint_changes_in_place(tmp_path, count_llm_fits):
    import os
    import shutil

    from skw2s.hf.testing import tiny_causal_lm

    model = tiny_causal_lm(tmp_path / "model")
    boost = LLMAdaBoostClassifier(weak_llm(model), n_estimators=2, random_state=0,
                                  memory=tmp_path / "mem")
    boost.fit(TEXTS, LABELS)
    assert len(count_llm_fits) == 2
    clone(boost).fit(TEXTS, LABELS)
    assert len(count_llm_fits) == 2  # unchanged checkpoint: every round from memory
    # the same path now holds other weights (saved over the old ones)
    other = tiny_causal_lm(tmp_path / "other", seed=1)
    for item in Path(other).iterdir():
        shutil.copy(item, Path(model) / item.name)
        os.utime(Path(model) / item.name, ns=(1, 1))
    clear_cache()
    clone(boost).fit(TEXTS, LABELS)
    assert len(count_llm_fits) == 4  # retrained, not reused


def test_checkpoint_fingerprints_only_for_local_directories(tiny_lm, tmp_path):
    from skw2s.hf.models import checkpoints
    from skw2s.hf.models import checkpoint_fingerprint

    assert checkpoint_fingerprint("smollm2-135m[:6]") is None
    assert checkpoint_fingerprint("org/some-model") is None
    assert checkpoint_fingerprint(tiny_lm) == checkpoint_fingerprint(tiny_lm + "[:1]")
    assert checkpoints(LLMAdaBoostClassifier(weak_llm("smollm2-135m"))) == ()
    found = checkpoints(LLMAdaBoostClassifier(weak_llm(tiny_lm)))
    assert [name for name, _ in found] == ["estimator__model"]


def test_memory_ignores_corrupted_round(tiny_lm, tmp_path, count_llm_fits):
    est = weak_llm(tiny_lm)

    def fit(n_estimators):
        return LLMAdaBoostClassifier(
            est, n_estimators=n_estimators, random_state=0, memory=tmp_path
        ).fit(TEXTS, LABELS)

    def entries():
        return set(tmp_path.rglob("*.skops"))

    # Find round 2's entry by what a 2-round fit adds to a 1-round one (file times can tie).
    fit(1)
    first = entries()
    fit(2)
    (second,) = entries() - first
    ref = fit(3)
    assert len(entries()) == 3
    second.write_bytes(b"garbage")
    count_llm_fits.clear()
    again = clone(ref).fit(TEXTS, LABELS)
    assert len(count_llm_fits) == 1  # the corrupted round 2 is retrained, rounds 1 and 3 reloaded
    assert [h["cached"] for h in again.history_] == [True, False, True]
    np.testing.assert_allclose(again.estimator_weights_, ref.estimator_weights_)


def test_grid_search_over_rounds_costs_one_largest_fit_per_split(tiny_lm, tmp_path, count_llm_fits):
    grid = {"n_estimators": [1, 3, 5]}
    est = weak_llm(tiny_lm)
    cv = StratifiedKFold(2)
    search = GridSearchCV(
        LLMAdaBoostClassifier(est, random_state=0, memory=tmp_path), grid, cv=cv, refit=False
    ).fit(TEXTS, LABELS)
    with_memory = len(count_llm_fits)
    count_llm_fits.clear()
    plain = GridSearchCV(LLMAdaBoostClassifier(est, random_state=0), grid, cv=cv, refit=False)
    plain.fit(TEXTS, LABELS)
    without_memory = len(count_llm_fits)
    # Expected costs, from the rounds each fit runs (a rejected round is run, then stored).
    rounds = {
        n: [
            len(
                LLMAdaBoostClassifier(est, n_estimators=n, random_state=0)
                .fit([TEXTS[i] for i in train], LABELS[train])
                .history_
            )
            for train, _ in cv.split(TEXTS, LABELS)
        ]
        for n in grid["n_estimators"]
    }
    assert min(rounds[5]) >= 4  # a round may be rejected (error >= 1/2): it still cost a fit
    assert with_memory == sum(rounds[5])  # one 5-round fit per split
    assert without_memory == sum(sum(r) for r in rounds.values())
    assert with_memory <= without_memory - 2 * (1 + 3)
    np.testing.assert_allclose(
        search.cv_results_["mean_test_score"], plain.cv_results_["mean_test_score"]
    )


def test_grid_search_smoke_with_refit(tiny_lm):
    search = GridSearchCV(
        LLMAdaBoostClassifier(weak_llm(tiny_lm), n_estimators=2, random_state=0),
        {"estimator__lr": [0.05, 0.1]},
        cv=2,
        error_score="raise",
    ).fit(TEXTS, LABELS)
    assert search.best_params_["estimator__lr"] in (0.05, 0.1)
    assert search.predict(TEXTS).shape == (len(TEXTS),)


# ------------------------------------------------------------------ sklearn contract
def test_get_params_deep_clone_set_params(tiny_lm):
    b = LLMAdaBoostClassifier(weak_llm(tiny_lm), n_estimators=3)
    params = b.get_params(deep=True)
    assert params["estimator__lr"] == 0.05 and params["estimator__mode"] == "head"
    b.set_params(estimator__lr=0.2, sampling="reweight")
    assert b.estimator.lr == 0.2 and b.sampling == "reweight"
    cloned = clone(b)
    assert cloned.estimator is not b.estimator and cloned.get_params()["estimator__lr"] == 0.2


def test_pickle_roundtrip_without_torch_tensors(boosted, tmp_path):
    import joblib

    expected = boosted.predict_proba(TEXTS)
    blob = pickle.dumps(boosted)
    assert b"torch._utils" not in blob and b"_rebuild_tensor" not in blob
    assert blob.count(b'"dtype":"F32"') >= len(boosted.estimators_)  # one safetensors head each
    clear_cache()
    restored = pickle.loads(blob)
    # Features are recomputed in other batches after clear_cache: equal up to float rounding.
    np.testing.assert_allclose(restored.predict_proba(TEXTS), expected, rtol=1e-6)
    np.testing.assert_allclose(restored.decision_function(TEXTS), boosted.decision_function(TEXTS))
    np.testing.assert_array_equal(restored.estimator_weights_, boosted.estimator_weights_)
    assert len({id(e.model_) for e in restored.estimators_}) == 1  # one shared frozen body
    joblib.dump(boosted, tmp_path / "boost.joblib")
    np.testing.assert_array_equal(
        joblib.load(tmp_path / "boost.joblib").predict(TEXTS), boosted.predict(TEXTS)
    )


def test_numeric_learner_sets_n_features_in():
    X, y = numeric_data()
    X = np.column_stack([X, X[:, :1]])
    b = LLMAdaBoostClassifier(
        DecisionTreeClassifier(max_depth=1), n_estimators=3, random_state=0
    ).fit(X, y)
    assert b.n_features_in_ == 4
    with pytest.raises(
        ValueError, match="X has 2 features, but LLMAdaBoostClassifier is expecting 4"
    ):
        b.predict(X[:, :2])


# ----------------------------------------------------------------------- bad input
BAD_INPUTS = [
    ("empty X", dict(X=[], y=[]), "0 sample"),
    ("len(X) != len(y)", dict(X=TEXTS, y=LABELS[:-1]), "inconsistent numbers of samples"),
    ("one class", dict(X=TEXTS, y=["right"] * len(TEXTS)), "only one class"),
    (
        "three classes",
        dict(X=TEXTS[:3], y=[0, 1, 2]),
        "Only binary classification is supported. The type of the target is multiclass.",
    ),
    ("non-string item", dict(X=TEXTS[:3] + [3.5], y=[0, 1, 0, 1]), "only strings"),
    (
        "NaN weight",
        dict(X=TEXTS, y=LABELS, sample_weight=np.r_[np.nan, np.ones(len(TEXTS) - 1)]),
        "sample_weight contains NaN",
    ),
    (
        "negative weight",
        dict(X=TEXTS, y=LABELS, sample_weight=np.r_[-1.0, np.ones(len(TEXTS) - 1)]),
        "sample_weight contains negative",
    ),
]


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_raises_value_error(tiny_lm, case):
    _, data, message = case
    b = LLMAdaBoostClassifier(weak_llm(tiny_lm), n_estimators=2)
    with pytest.raises(ValueError, match=message):
        b.fit(data["X"], data["y"], sample_weight=data.get("sample_weight"))


class NoWeightLearner(ClassifierMixin, BaseEstimator):
    def fit(self, X, y):
        return self

    def predict(self, X):
        return np.zeros(len(X))

    def predict_proba(self, X):
        return np.full((len(X), 2), 0.5)


BAD_PARAMS = [
    (
        dict(sampling="bootstrap"),
        r"The 'sampling' parameter of LLMAdaBoostClassifier must be a str among "
        r"\{'resample', 'reweight'\}. Got 'bootstrap' instead.",
    ),
    (
        dict(n_estimators=0),
        r"The 'n_estimators' parameter of LLMAdaBoostClassifier must be an int in the range "
        r"\[1, inf\). Got 0 instead.",
    ),
    (
        dict(learning_rate=-1.0),
        r"'learning_rate' parameter .* must be a float in the range \(0.0, inf\)",
    ),
    (
        dict(estimator="tree"),
        r"'estimator' parameter .* must be an object implementing 'fit', 'predict' and "
        r"'predict_proba' or None",
    ),
    (dict(memory=3), r"'memory' parameter of LLMAdaBoostClassifier must be a str, a path-like, "
     r"a joblib.Memory or None. Got 3 instead"),
    (dict(random_state="x"), r"'random_state' parameter of LLMAdaBoostClassifier must be an int "
     r"in the range \[0, 4294967295\]"),
    (
        dict(estimator=NoWeightLearner(), sampling="reweight"),
        r"NoWeightLearner.fit does not accept sample_weight",
    ),
]


@pytest.mark.parametrize("params, message", BAD_PARAMS)
def test_bad_params_raise_value_error(tiny_lm, params, message):
    b = LLMAdaBoostClassifier(weak_llm(tiny_lm)).set_params(**params)
    with pytest.raises(ValueError, match=message):
        b.fit(TEXTS, LABELS)


def test_unknown_learner_mode_raises(tiny_lm):
    b = LLMAdaBoostClassifier(weak_llm(tiny_lm).set_params(mode="qlora"))
    with pytest.raises(ValueError, match="'mode' parameter of LLMClassifier"):
        b.fit(TEXTS, LABELS)


# --------------------------------------------------------------------- real model
@pytest.mark.real_model
def test_two_rounds_on_real_smollm2_sciq(smollm2_path, data_dir):
    from skw2s.data.datasets import binarize_sciq, load_sciq, to_classification

    X_train, y_train = to_classification(
        binarize_sciq(load_sciq("train", data_dir).iloc[:200], random_state=0)
    )
    X_test, y_test = to_classification(
        binarize_sciq(load_sciq("test", data_dir).iloc[:100], random_state=0)
    )
    start = time.perf_counter()
    single = LLMClassifier("smollm2-135m", mode="head", batch_size=16, random_state=0)
    b = LLMAdaBoostClassifier(single, n_estimators=2, random_state=0).fit(X_train, y_train)
    single_acc = clone(single).fit(X_train, y_train).score(X_test, y_test)
    staged = list(b.staged_score(X_test, y_test))
    print(
        f"\nsmollm2-135m head, SciQ 200 train / 100 test: single learner {single_acc:.3f}, "
        f"boosted by round {[round(s, 3) for s in staged]}, train errors "
        f"{np.round(b.estimator_errors_, 3).tolist()}, {time.perf_counter() - start:.0f} s"
    )
    assert len(b.estimators_) >= 1 and b.estimator_errors_[0] < 0.5
    assert all(0.0 <= s <= 1.0 for s in staged) and staged[-1] == b.score(X_test, y_test)
    assert b.predict_proba(X_test).shape == (100, 2)
