"""Paired comparisons of two models on the same test questions (pure numpy).

A comparison of EnsemW2S with a baseline is paired: the two students answer the same questions,
in the same seeds, and differ only in their labels (common random numbers). The statistics here
work on the per-question correctness of the two models, one array per seed:

- :func:`paired_bootstrap`: the mean difference in accuracy and a percentile interval from a
  two-level bootstrap (seeds with replacement, then questions with replacement within each
  drawn seed);
- :func:`mcnemar`: the exact two-sided McNemar test on the discordant pairs, pooled over seeds;
- :func:`paired_comparison`: both, with the counts.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["mcnemar", "paired_bootstrap", "paired_comparison"]


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
        ``P(X <= min(n01, n10)) * 2`` (capped at 1) for ``X ~ Binomial(n01 + n10, 1/2)``; 1.0
        when the two never disagree.
    n_a_only, n_b_only : int
        Questions only ``a`` got right, and only ``b``.
    """
    a, b = _check_pairs(correct_a, correct_b)
    x, y = np.concatenate(a), np.concatenate(b)
    n10 = int(np.sum((x == 1) & (y == 0)))
    n01 = int(np.sum((x == 0) & (y == 1)))
    n = n10 + n01
    if n == 0:
        return 1.0, n10, n01
    k = min(n10, n01)
    # log-space binomial tail, exact for any n
    logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2)
            for i in range(k + 1)]
    top = max(logs)
    tail = math.exp(top) * sum(math.exp(v - top) for v in logs)
    return float(min(1.0, 2 * tail)), n10, n01


def paired_comparison(correct_a, correct_b, **kwargs):
    """:func:`paired_bootstrap` and :func:`mcnemar` of ``a`` against ``b``, as one dict.

    Parameters
    ----------
    correct_a, correct_b : list of array-like of shape (n_questions,)
        Per seed, 0/1 correctness of the two models on the same questions.
    **kwargs
        Passed to :func:`paired_bootstrap`.

    Returns
    -------
    dict
        ``diff``, ``ci_low``, ``ci_high``, ``half_width`` (the larger distance from ``diff`` to
        a bound), ``p_mcnemar``, ``a_only``, ``b_only``, ``seeds_a_ahead`` (seeds in which
        ``a``'s accuracy is above ``b``'s), ``seeds_b_ahead``, ``n_questions`` and ``n_seeds``.

    Notes
    -----
    :func:`mcnemar` pools the questions of every seed as independent pairs, so it ignores how
    much a whole seed moves; the bootstrap interval resamples seeds as well, and the seed
    counts show the seed-level picture directly.
    """
    a, b = _check_pairs(correct_a, correct_b)
    mean, low, high = paired_bootstrap(a, b, **kwargs)
    p, n10, n01 = mcnemar(a, b)
    per_seed = np.array([x.mean() - y.mean() for x, y in zip(a, b)])
    return {
        "diff": mean, "ci_low": low, "ci_high": high,
        "half_width": max(mean - low, high - mean), "p_mcnemar": p,
        "a_only": n10, "b_only": n01,
        "seeds_a_ahead": int(np.sum(per_seed > 0)), "seeds_b_ahead": int(np.sum(per_seed < 0)),
        "n_questions": int(sum(x.size for x in a)), "n_seeds": len(a),
    }
