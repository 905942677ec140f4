import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from skw2s.core.weights import BoostStep
from skw2s.core.token_weights import (
    initial_token_weights,
    sample_level_weights,
    sample_token_counts,
    smooth_incorrect,
    split_by_lengths,
    token_alpha,
    token_boost_step,
    weighted_error,
)

SETTINGS = settings(max_examples=150, deadline=None)


@st.composite
def token_data(draw, allow_zero=True):
    lengths = draw(hnp.arrays(np.int64, st.integers(1, 8), elements=st.integers(1, 6)))
    n = int(lengths.sum())
    elems = st.floats(1e-6, 1.0)
    if allow_zero:
        elems = st.one_of(st.just(0.0), elems)
    D = draw(hnp.arrays(np.float64, n, elements=elems))
    assume(D.sum() > 0)
    incorrect = draw(hnp.arrays(np.bool_, n))
    return lengths, D, incorrect


@SETTINGS
@given(token_data(), st.floats(0.0, 1.0))
def test_weights_stay_a_distribution(data, eps_pre):
    lengths, D, incorrect = data
    step = token_boost_step(D, incorrect, eps_pre)
    assert isinstance(step, BoostStep)
    new = step.weights
    assert new.shape == D.shape and np.all(np.isfinite(new)) and np.all(new >= 0)
    assert new.sum() == pytest.approx(1.0)
    assert np.all((new == 0) == (D == 0))
    assert (step.alpha is None) == (step.stop_reason == "error>=eps_pre")
    assert initial_token_weights(lengths) == pytest.approx(np.full(len(D), 1 / len(D)))


@SETTINGS
@given(token_data(allow_zero=False), st.floats(0.0, 1.0))
def test_update_is_the_paper_formula(data, eps_pre):
    _, D, incorrect = data
    step = token_boost_step(D, incorrect, eps_pre)
    eps = weighted_error(D, incorrect)
    assert step.error == pytest.approx(eps)
    if eps >= eps_pre:
        assert step.alpha is None and step.stop_reason == "error>=eps_pre"
        np.testing.assert_allclose(step.weights, D / D.sum())
        return
    assume(step.alpha is not None)
    assert step.alpha == pytest.approx(token_alpha(eps, eps_pre))
    expected = D * np.exp(step.alpha * incorrect)
    np.testing.assert_allclose(step.weights, expected / expected.sum(), rtol=1e-9)
    assert step.stop_reason == ("perfect" if eps == 0 else None)


@SETTINGS
@given(st.floats(1e-6, 1 - 1e-6), st.floats(1e-6, 1 - 1e-6))
def test_alpha_positive_iff_better_than_pretrained(eps, eps_pre):
    assume(abs(eps - eps_pre) > 1e-12)
    alpha = token_alpha(eps, eps_pre)
    assert (alpha > 0) == (eps < eps_pre)
    expected = np.log((1 - eps) / eps) + np.log(1 / (1 - eps_pre) - 1)
    assert alpha == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_perfect_round_and_zero_weights_have_no_nan():
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        step = token_boost_step([0.5, 0.0, 0.5], [0, 1, 0], 0.3)
        assert step.stop_reason == "perfect" and np.isfinite(step.alpha)
        np.testing.assert_array_equal(step.weights, [0.5, 0.0, 0.5])
        assert token_boost_step([1.0, 1.0], [1, 0], 0.0).stop_reason == "error>=eps_pre"
        assert np.isfinite(token_alpha(0.0, 1.0)) and np.isfinite(token_alpha(1.0, 0.0))


def test_sampled_counts_match_weights():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    D = rng.random(50) ** 3
    D[[3, 17]] = 0.0
    n_draws = 200_000
    counts = sample_token_counts(D, n_draws, random_state=0)
    assert counts.sum() == n_draws and np.all(counts[[3, 17]] == 0)
    pos = D > 0
    expected = n_draws * D[pos] / D.sum()
    pvalue = scipy_stats.chisquare(counts[pos], expected).pvalue
    assert pvalue > 1e-4
    for rs in (None, 1, np.random.RandomState(1), np.random.default_rng(1)):
        assert sample_token_counts(D, 10, random_state=rs).sum() == 10
    np.testing.assert_array_equal(
        sample_token_counts(D, 100, random_state=5), sample_token_counts(D, 100, random_state=5)
    )


@SETTINGS
@given(token_data())
def test_window_one_equals_token_weighting(data):
    lengths, _, incorrect = data
    np.testing.assert_array_equal(smooth_incorrect(incorrect, lengths), incorrect)


def test_window_stays_inside_its_sample():
    inc = np.array([1, 0, 0, 1, 1, 0])
    out = smooth_incorrect(inc, [3, 3], window=2)
    np.testing.assert_allclose(out, [1, 0.5, 0, 1, 1, 0.5])
    out = smooth_incorrect(inc, [3, 3], window=10)
    np.testing.assert_allclose(out, [1, 1 / 2, 1 / 3, 1, 1, 2 / 3])
    for kwargs in ({"window": 0}, {"window": 1.5}, {"weighting": "word"}):
        with pytest.raises(ValueError):
            smooth_incorrect(inc, [3, 3], **kwargs)


@SETTINGS
@given(token_data(), st.integers(1, 4), st.floats(0.0, 1.0))
def test_sample_weighting_gives_equal_weight_within_a_sample(data, window, eps_pre):
    lengths, D, incorrect = data
    D = sample_level_weights(D, lengths)
    assume(D.sum() > 0)
    inc = smooth_incorrect(incorrect, lengths, window=window, weighting="sample")
    for _ in range(2):
        D = token_boost_step(D, inc, eps_pre).weights
        shares = sample_level_weights(D, lengths)
        for part, share in zip(split_by_lengths(D, lengths), split_by_lengths(shares, lengths)):
            np.testing.assert_allclose(part, part[0], rtol=1e-12)
            np.testing.assert_allclose(part, share, rtol=1e-12)


@SETTINGS
@given(token_data())
def test_split_and_sample_shares(data):
    lengths, D, _ = data
    parts = split_by_lengths(D, lengths)
    assert [len(p) for p in parts] == list(lengths)
    np.testing.assert_array_equal(np.concatenate(parts), D)
    spread = sample_level_weights(D, lengths)
    for p, s in zip(parts, split_by_lengths(spread, lengths)):
        assert s.sum() == pytest.approx(p.sum()) and np.allclose(s, s[0])
    with pytest.raises(ValueError):
        split_by_lengths(D[:-1], lengths)
