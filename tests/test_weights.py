import subprocess
import sys

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from skw2s.core.weights import (
    BoostStep,
    adaboost_decision,
    staged_adaboost_decision,
    adaboost_step,
    check_sample_weight,
    normalize_weights,
    soft_pseudo_labels,
    staged_soft_pseudo_labels,
)

SETTINGS = settings(max_examples=150, deadline=None)


@st.composite
def weights_and_mistakes(draw, min_weight=0.0, allow_zero=True):
    n = draw(st.integers(2, 40))
    elems = st.floats(min_weight, 1.0)
    if allow_zero:
        elems = st.one_of(st.just(0.0), elems)
    w = draw(hnp.arrays(np.float64, n, elements=elems))
    assume(w.sum() > 0)
    incorrect = draw(hnp.arrays(np.bool_, n))
    return w, incorrect


def test_check_sample_weight_errors():
    assert np.allclose(check_sample_weight(None, 4), 0.25)
    for bad, msg in [
        ([1.0, 1.0], "shape"),
        ([1.0, np.nan, 1.0], "NaN"),
        ([1.0, -1.0, 1.0], "negative"),
        ([0.0, 0.0, 0.0], "all zero"),
    ]:
        with pytest.raises(ValueError, match=msg):
            check_sample_weight(bad, 3)
    with pytest.raises(ValueError):
        normalize_weights([0.0, 0.0])


@SETTINGS
@given(weights_and_mistakes(), st.floats(0.1, 2.0))
def test_weights_stay_a_distribution(data, learning_rate):
    w, incorrect = data
    step = adaboost_step(w, incorrect, learning_rate=learning_rate)
    assert isinstance(step, BoostStep)
    new = step.weights
    assert new.dtype == np.float64
    assert np.all(np.isfinite(new)) and np.all(new >= 0)
    assert new.sum() == pytest.approx(1.0)
    assert np.all((new == 0) == (w == 0))
    if step.stop_reason == "error>=1/2":
        assert step.alpha is None
        assert np.allclose(new, w / w.sum())


@SETTINGS
@given(weights_and_mistakes(min_weight=1e-6, allow_zero=False))
def test_misclassified_never_lose_relative_weight(data):
    w, incorrect = data
    assume(incorrect.any() and (~incorrect).any())
    new = adaboost_step(w, incorrect).weights
    old_ratio = np.outer(w[incorrect], 1 / w[~incorrect])
    new_ratio = np.outer(new[incorrect], 1 / new[~incorrect])
    assert np.all(new_ratio >= old_ratio * (1 - 1e-9))


def _alpha_at(eps):
    return adaboost_step([1 - eps, eps], [False, True])


@SETTINGS
@given(st.floats(1e-6, 1 - 1e-6), st.floats(1e-6, 1 - 1e-6))
def test_alpha_sign_and_monotone(e1, e2):
    s1 = _alpha_at(e1)
    assert (s1.alpha is not None and s1.alpha > 0) == (s1.error < 0.5)
    assume(abs(e1 - e2) > 1e-9 and max(e1, e2) < 0.5)
    lo, hi = sorted([e1, e2])
    assert _alpha_at(lo).alpha > _alpha_at(hi).alpha


@pytest.mark.parametrize("tiny", [1e-300, 1e-320])
def test_perfect_and_tiny_weights_are_stable(tiny):
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        step = adaboost_step([1.0, 1.0, 0.0], [False, False, False])
        assert step.stop_reason == "perfect" and np.isfinite(step.alpha) and step.alpha > 0
        assert np.allclose(step.weights, [0.5, 0.5, 0.0])
        step = adaboost_step([tiny, 1.0, 1.0, 0.0], [True, False, False, True])
    assert step.stop_reason is None and np.isfinite(step.alpha)
    new = step.weights
    assert np.all(np.isfinite(new)) and new[0] > 0 and new[3] == 0
    assert new.sum() == pytest.approx(1.0)


@SETTINGS
@given(weights_and_mistakes(min_weight=1e-3, allow_zero=False))
def test_reweighted_error_is_one_half(data):
    w, incorrect = data
    step = adaboost_step(w, incorrect)
    assume(step.stop_reason is None)
    # K = 2 case of (K - 1) / K.
    assert adaboost_step(step.weights, incorrect).error == pytest.approx(0.5)


@settings(max_examples=40, deadline=None)
@given(
    hnp.arrays(np.float64, st.integers(6, 30), elements=st.floats(0.05, 1.0)),
    st.integers(0, 2**31 - 1),
)
def test_matches_sklearn_samme_at_two_classes(w, seed):
    from sklearn.ensemble import AdaBoostClassifier
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(seed)
    n = w.shape[0]
    X = rng.normal(size=(n, 2))
    y = rng.integers(0, 2, n)
    assume(0 < y.sum() < n)
    # No `algorithm` argument: SAMME is the only algorithm in recent sklearn.
    clf = AdaBoostClassifier(
        estimator=DecisionTreeClassifier(max_depth=1), n_estimators=1, random_state=0
    ).fit(X, y, sample_weight=w)
    incorrect = clf.estimators_[0].predict(X) != y
    step = adaboost_step(w, incorrect)
    assume(step.stop_reason is None)
    assert step.error == pytest.approx(clf.estimator_errors_[0])
    # sklearn: alpha_SAMME = log((1 - e) / e) + log(K - 1) = 2 * alpha_ours at K = 2,
    # and its update w * exp(alpha_SAMME * incorrect) equals ours once normalised,
    # since exp(alpha * (2 * incorrect - 1)) = exp(-alpha) * exp(2 * alpha * incorrect).
    alpha_samme = clf.estimator_weights_[0]
    assert alpha_samme == pytest.approx(2 * step.alpha)
    sk_new = w / w.sum() * np.exp(alpha_samme * incorrect)
    np.testing.assert_allclose(step.weights, sk_new / sk_new.sum(), rtol=1e-10)


@SETTINGS
@given(hnp.arrays(np.int8, (3, 7), elements=st.sampled_from([-1, 1])),
       hnp.arrays(np.float64, 3, elements=st.floats(0.01, 5.0)))
def test_decision_of_symmetric_votes(votes, alphas):
    both = np.concatenate([votes, -votes])
    assert np.allclose(adaboost_decision(both, np.concatenate([alphas, alphas])), 0.0)
    expected = sum(a * v for a, v in zip(alphas, votes))
    assert np.allclose(adaboost_decision(votes, alphas), expected)
    with pytest.raises(ValueError):
        adaboost_decision(votes * 0, alphas)
    # The staged sums and the plain one are one computation, in one order: the last stage
    # equals the plain decision bit for bit, whatever the machine's BLAS or thread count.
    staged = list(staged_adaboost_decision(votes, alphas))
    assert len(staged) == len(alphas)
    np.testing.assert_array_equal(staged[-1], adaboost_decision(votes, alphas))
    np.testing.assert_array_equal(staged[0], alphas[0] * votes[0])


@SETTINGS
@given(st.integers(1, 5), st.integers(1, 10), st.data())
def test_soft_pseudo_labels(T, n, data):
    p1 = data.draw(hnp.arrays(np.float64, (T, n), elements=st.floats(0, 1)))
    proba = np.stack([1 - p1, p1], axis=-1)
    alphas = data.draw(hnp.arrays(np.float64, T, elements=st.floats(0.01, 5.0)))
    out = soft_pseudo_labels(proba, alphas)
    assert out.shape == (n, 2)
    assert np.allclose(out.sum(axis=1), 1.0)
    np.testing.assert_allclose(out, np.tensordot(alphas, proba, 1) / alphas.sum())
    staged = list(staged_soft_pseudo_labels(proba, alphas))
    assert len(staged) == T
    np.testing.assert_array_equal(staged[-1], out)
    np.testing.assert_allclose(staged[0], proba[0], atol=1e-12)  # denormals may flush to 0


def test_weight_modules_do_not_import_torch():
    code = (
        "import sys, skw2s.core.weights, skw2s.core.token_weights; "
        "sys.exit('torch' in sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
