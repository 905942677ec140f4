"""Paired comparisons of two models on the same test questions (numpy, and scipy.stats lazily).

A comparison of EnsemW2S with a baseline is paired: the two students answer the same questions,
in the same seeds, and differ only in their labels (common random numbers). The statistics here
work on the per-question correctness of the two models, one array per seed:

- :func:`paired_bootstrap`: the mean difference in accuracy and a percentile interval from a
  two-level bootstrap (seeds with replacement, then questions with replacement within each
  drawn seed);
- :func:`seed_interval`: a Student t interval on the per-seed differences in accuracy. With few
  seeds the bootstrap over seeds redraws only a handful of values and cannot see how much a
  whole seed moves; this interval can, and it is the wider one when seeds disagree;
- :func:`seeds_for_half_width`: how many seeds a t interval of a given half-width needs, from
  the seed-level spread;
- :func:`mcnemar`: the exact two-sided McNemar test on the discordant pairs, pooled over seeds;
- :func:`paired_comparison`: all of these, with the counts.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "mcnemar", "paired_bootstrap", "paired_comparison", "seed_interval", "seeds_for_half_width",
]


def _check_pairs(a, b):
    """Two equally long lists of equally shaped 0/1 arrays, one pair per seed."""
    if len(a) != len(b) or len(a) == 0:
        raise ValueError(f"Give one array per seed for both models; got {len(a)} and {len(b)}.")
    out_a, out_b = [], []
    for i, (x, y) in enumerate(zip(a, b)):
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if x.ndim != 1 or x.shape != y.shape or x.size == 0:
            raise ValueError(
                f"Seed {i}: the two models must be scored on the same questions; got shapes "
                f"{x.shape} and {y.shape}."
            )
        if not (np.isin(x, (0, 1)).all() and np.isin(y, (0, 1)).all()):
            raise ValueError(f"Seed {i}: correctness must be 0/1 (or boolean) per question.")
        out_a.append(x)
        out_b.append(y)
    return out_a, out_b


def paired_bootstrap(correct_a, correct_b, *, n_boot=10_000, confidence=0.95, random_state=0):
    """Mean accuracy difference ``a - b`` and its paired bootstrap interval.

    Parameters
    ----------
    correct_a, correct_b : list of array-like of shape (n_questions,)
        Per seed, whether each model got each question right (0/1); the same questions, in the
        same order, for both models.
    n_boot : int, default=10000
        Bootstrap draws.
    confidence : float, default=0.95
        Level of the percentile interval.
    random_state : int, default=0
        Seeds the draws (the interval is reproducible).

    Returns
    -------
    mean : float
        The difference of the two accuracies, averaged over seeds (each seed weighs its
        questions equally).
    low, high : float
        The interval's bounds. With one seed only the questions are resampled.
    """
    a, b = _check_pairs(correct_a, correct_b)
    diffs = [x - y for x, y in zip(a, b)]
    mean = float(np.mean([d.mean() for d in diffs]))
    rng = np.random.default_rng(random_state)
    n_seeds = len(diffs)
    draws = np.empty(n_boot)
    for k in range(n_boot):
        seeds = rng.integers(n_seeds, size=n_seeds) if n_seeds > 1 else [0]
        draws[k] = np.mean([diffs[s][rng.integers(len(diffs[s]), size=len(diffs[s]))].mean()
                            for s in seeds])
    tail = (1 - confidence) / 2
    low, high = np.quantile(draws, [tail, 1 - tail])
    return mean, float(low), float(high)


def mcnemar(correct_a, correct_b):
    """Exact two-sided McNemar test of ``a`` against ``b``, pooled over seeds.

    Parameters
    ----------
    correct_a, correct_b : list of array-like of shape (n_questions,)
        Per seed, 0/1 correctness of the two models on the same questions.

    Returns
    -------
    p_value : float
        The two-sided exact binomial test of ``min(n01, n10)`` in ``n01 + n10`` trials at 1/2
        (:func:`scipy.stats.binomtest`); 1.0 when the two never disagree.
    n_a_only, n_b_only : int
        Questions only ``a`` got right, and only ``b``.
    """
    from scipy.stats import binomtest

    a, b = _check_pairs(correct_a, correct_b)
    x, y = np.concatenate(a), np.concatenate(b)
    n10 = int(np.sum((x == 1) & (y == 0)))
    n01 = int(np.sum((x == 0) & (y == 1)))
    if n10 + n01 == 0:
        return 1.0, n10, n01
    p = binomtest(min(n10, n01), n10 + n01, 0.5, alternative="two-sided").pvalue
    return float(min(1.0, p)), n10, n01


def _per_seed(a, b):
    return np.array([x.mean() - y.mean() for x, y in zip(a, b)])


def seed_interval(correct_a, correct_b, *, confidence=0.95):
    """Student t interval on the per-seed differences in accuracy ``a - b``.

    Each seed gives one difference (the two accuracies on its questions); the interval is
    ``mean ± t_{(1+confidence)/2, n-1} * sd / sqrt(n)`` over the ``n`` seeds. It treats a seed
    as the unit, so it sees the seed-to-seed spread that a bootstrap over three or four seeds
    underestimates, at the price of ignoring how many questions each seed has.

    Parameters
    ----------
    correct_a, correct_b : list of array-like of shape (n_questions,)
        Per seed, 0/1 correctness of the two models on the same questions.
    confidence : float, default=0.95
        Level of the interval.

    Returns
    -------
    low, high : float
        The interval's bounds; NaN with one seed, where the seed-level spread is unknown.
    sd : float
        The sample standard deviation of the per-seed differences (``ddof=1``); NaN with one
        seed.
    """
    from scipy.stats import t

    a, b = _check_pairs(correct_a, correct_b)
    per_seed = _per_seed(a, b)
    n = len(per_seed)
    if n < 2:
        return math.nan, math.nan, math.nan
    sd = float(np.std(per_seed, ddof=1))
    half = float(t.ppf((1 + confidence) / 2, n - 1)) * sd / math.sqrt(n)
    mean = float(per_seed.mean())
    return mean - half, mean + half, sd


def seeds_for_half_width(sd, half_width, *, confidence=0.95, max_seeds=100_000):
    """The fewest seeds whose t interval would be at most ``half_width`` on each side.

    The smallest ``n >= 2`` with ``t_{(1+confidence)/2, n-1} * sd / sqrt(n) <= half_width``,
    taking the seed-level standard deviation ``sd`` as known (the extrapolation of
    :func:`seed_interval`).

    Parameters
    ----------
    sd : float
        Standard deviation of the per-seed differences.
    half_width : float
        The half-width wanted, in the units of ``sd``.
    confidence : float, default=0.95
        Level of the interval.
    max_seeds : int, default=100000
        Give up above this many seeds.

    Returns
    -------
    n_seeds : int or None
        The number of seeds; None when ``sd`` is not finite or more than ``max_seeds`` would
        be needed.
    """
    from scipy.stats import t

    if not np.isfinite(sd) or half_width <= 0:
        return None
    q = (1 + confidence) / 2
    for n in range(2, max_seeds + 1):
        if t.ppf(q, n - 1) * sd / math.sqrt(n) <= half_width:
            return n
    return None


def paired_comparison(correct_a, correct_b, **kwargs):
    """:func:`paired_bootstrap`, :func:`seed_interval` and :func:`mcnemar` of ``a`` against ``b``.

    Parameters
    ----------
    correct_a, correct_b : list of array-like of shape (n_questions,)
        Per seed, 0/1 correctness of the two models on the same questions.
    **kwargs
        Passed to :func:`paired_bootstrap`; its ``confidence`` sets the level of the t
        interval too.

    Returns
    -------
    dict
        ``diff``, ``ci_low``, ``ci_high``, ``half_width`` (of the bootstrap interval: the
        larger distance from ``diff`` to a bound), ``seed_ci_low``, ``seed_ci_high``,
        ``seed_half_width`` and ``seed_sd`` (the t interval on the per-seed differences and
        their standard deviation; NaN with one seed), ``p_mcnemar``, ``a_only``, ``b_only``,
        ``seeds_a_ahead`` (seeds in which ``a``'s accuracy is above ``b``'s),
        ``seeds_b_ahead``, ``n_questions`` and ``n_seeds``.

    Notes
    -----
    :func:`mcnemar` pools the questions of every seed as independent pairs, so it ignores how
    much a whole seed moves. The bootstrap resamples seeds as well, but with three or four
    seeds it redraws only that many values and underestimates the seed-to-seed spread; the t
    interval on the per-seed differences does not. Judge a target on the wider of the two.
    """
    a, b = _check_pairs(correct_a, correct_b)
    mean, low, high = paired_bootstrap(a, b, **kwargs)
    seed_low, seed_high, sd = seed_interval(a, b, confidence=kwargs.get("confidence", 0.95))
    p, n10, n01 = mcnemar(a, b)
    per_seed = _per_seed(a, b)
    return {
        "diff": mean, "ci_low": low, "ci_high": high,
        "half_width": max(mean - low, high - mean),
        "seed_ci_low": seed_low, "seed_ci_high": seed_high,
        "seed_half_width": (seed_high - seed_low) / 2, "seed_sd": sd, "p_mcnemar": p,
        "a_only": n10, "b_only": n01,
        "seeds_a_ahead": int(np.sum(per_seed > 0)), "seeds_b_ahead": int(np.sum(per_seed < 0)),
        "n_questions": int(sum(x.size for x in a)), "n_seeds": len(a),
    }
