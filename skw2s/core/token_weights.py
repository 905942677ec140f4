"""Token-level EnsemW2S-AdaBoost weight arithmetic (ALGORITHMS.md, Algorithm 1).

Pure numpy. The answer tokens of all samples are flattened into one array of
length ``n = sum(lengths)``; ``lengths[i] = k_i >= 1`` marks the sentence
boundaries.
"""

import numbers
import warnings

import numpy as np

from .random import check_random_state
from .weights import (
    EPS,
    BoostStep,
    _as_distribution,
    _check_incorrect,
    _reweight,
    weighted_error as _weighted_error,
    check_sample_weight,
)



def _check_lengths(lengths):
    """Return ``lengths`` as a 1-D int64 array of positive sentence lengths."""
    arr = np.asarray(lengths)
    if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError("lengths must be a non-empty 1-D array of integers.")
    if np.any(arr < 1):
        raise ValueError("Every sample must have at least one token (lengths >= 1).")
    return arr.astype(np.int64)


def _check_flat(values, lengths, name):
    """Check that a flat per-token array matches ``sum(lengths)``."""
    if values.shape[0] != lengths.sum():
        raise ValueError(
            f"{name} has {values.shape[0]} tokens but sum(lengths) = {lengths.sum()}."
        )


def initial_token_weights(lengths):
    """Return the uniform initial token weights ``D_1(i, j) = 1/n``.

    Parameters
    ----------
    lengths : array-like of int, shape (m,)
        Number of answer tokens of each sample (each >= 1).

    Returns
    -------
    ndarray of shape (sum(lengths),), float64
    """
    n = int(_check_lengths(lengths).sum())
    return np.full(n, 1.0 / n)


def smooth_incorrect(incorrect, lengths, *, window=1, weighting="token"):
    """Turn per-token mistakes into the wrongness used by the weight update.

    Parameters
    ----------
    incorrect : array-like of shape (n,)
        1 (or True) where the argmax token is wrong, 0 where it is right.
    lengths : array-like of int, shape (m,)
        Tokens per sample; ``sum(lengths) == n``.
    window : int, default=1
        Sliding window ``L``: token ``j`` gets the mean indicator of the last
        ``L`` tokens of its own sample ending at ``j`` (fewer at the sample
        start). ``window=1`` returns the indicators unchanged.
    weighting : {"token", "sample"}, default="token"
        ``"sample"``: every token gets its sample's mean indicator (the
        window is then irrelevant), so tokens of a sample that start with
        equal weights keep equal weights.

    Returns
    -------
    ndarray of shape (n,), float64, values in [0, 1]
    """
    if isinstance(window, bool) or not isinstance(window, numbers.Integral) or window < 1:
        raise ValueError(f"window must be an integer >= 1, got {window!r}.")
    if weighting not in ("token", "sample"):
        raise ValueError(f'weighting must be "token" or "sample", got {weighting!r}.')
    lengths = _check_lengths(lengths)
    inc = _check_incorrect(incorrect)
    _check_flat(inc, lengths, "incorrect")
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    csum = np.concatenate([[0.0], np.cumsum(inc)])
    if weighting == "sample":
        ends = starts + np.repeat(lengths, lengths)
        return (csum[ends] - csum[starts]) / (ends - starts)
    j = np.arange(inc.shape[0])
    lo = np.maximum(starts, j - int(window) + 1)
    return (csum[j + 1] - csum[lo]) / (j + 1 - lo)


def sample_level_weights(D, lengths):
    """Spread each sample's total weight evenly over its tokens.

    Used with ``weighting="sample"`` so that every token of a sample carries
    the same weight, its sample's share divided by the sample length.

    Parameters
    ----------
    D : array-like of shape (n,)
        Token weights.
    lengths : array-like of int, shape (m,)
        Tokens per sample.

    Returns
    -------
    ndarray of shape (n,), float64
        Same per-sample totals as ``D``, constant within each sample.
    """
    lengths = _check_lengths(lengths)
    D = check_sample_weight(D, int(lengths.sum()))
    share = np.add.reduceat(D, np.cumsum(lengths) - lengths)
    return np.repeat(share / lengths, lengths)


def weighted_error(D, incorrect):
    """Return the weighted token error ``sum(D * incorrect) / sum(D)``.

    Parameters
    ----------
    D : array-like of shape (n,)
        Non-negative token weights.
    incorrect : array-like of shape (n,)
        Wrongness of each token in [0, 1].

    Returns
    -------
    float
    """
    inc = _check_incorrect(incorrect)
    return _weighted_error(check_sample_weight(D, inc.shape[0]), inc)


def token_alpha(eps, eps_pre):
    """Return the EnsemW2S learner weight.

    ``alpha = log((1 - eps) / eps) + log(eps_pre / (1 - eps_pre))``, which is
    ``log((1 - eps)/eps) + log(1/(1 - eps_pre) - 1)``: SAMME's ``log(K - 1)``
    prior with the pre-trained model's error in place of random guessing.

    Parameters
    ----------
    eps : float
        Weighted error of the new weak model.
    eps_pre : float
        Weighted error of the pre-trained model.

    Returns
    -------
    float
        Positive exactly when ``eps < eps_pre`` (for values inside
        ``[EPS, 1 - EPS]``; both are clipped to that range first).
    """
    e, ep = np.clip([eps, eps_pre], EPS, 1 - EPS)
    return float((np.log(ep) - np.log1p(-ep)) - (np.log(e) - np.log1p(-e)))


def token_boost_step(D, incorrect, eps_pre):
    """Run the weight arithmetic of one EnsemW2S-AdaBoost round.

    ``D_{t+1} = D_t * exp(alpha * incorrect) / Z`` exactly as in the paper
    (correct tokens are not scaled down), computed in log space.

    Parameters
    ----------
    D : array-like of shape (n,)
        Current token weights.
    incorrect : array-like of shape (n,)
        Wrongness of each token in [0, 1] (see :func:`smooth_incorrect`).
    eps_pre : float
        Weighted error of the pre-trained model, in [0, 1].

    Returns
    -------
    BoostStep
        A rejected round (``error >= eps_pre``, or ``alpha <= 0`` after
        clipping) returns the input weights normalised and ``alpha=None``.
    """
    if not 0 <= eps_pre <= 1:
        raise ValueError(f"eps_pre must lie in [0, 1], got {eps_pre}.")
    inc = _check_incorrect(incorrect)
    w = check_sample_weight(D, inc.shape[0])
    w = _as_distribution(w)
    error = _weighted_error(w, inc)
    alpha = token_alpha(error, eps_pre)
    if error >= eps_pre or alpha <= 0:
        return BoostStep(w, None, error, "error>=eps_pre")
    new = _reweight(w, alpha * inc)
    if new is None:
        warnings.warn("Token weights are not finite; stopping.", RuntimeWarning, stacklevel=2)
        return BoostStep(w, None, error, "non-finite weights")
    return BoostStep(new, alpha, error, "perfect" if error == 0 else None)


def sample_token_counts(D, n_draws, random_state=None):
    """Draw tokens with replacement with probabilities ``D``.

    Parameters
    ----------
    D : array-like of shape (n,)
        Non-negative token weights (normalised internally).
    n_draws : int
        Number of draws (the paper uses ``n``).
    random_state : int, RandomState, Generator or None, default=None
        Seed or generator (int and None behave as in sklearn).

    Returns
    -------
    ndarray of shape (n,), int64
        How often each token was drawn; a token drawn twice counts 2.
    """
    if isinstance(n_draws, bool) or not isinstance(n_draws, numbers.Integral) or n_draws < 0:
        raise ValueError(f"n_draws must be a non-negative integer, got {n_draws!r}.")
    D = np.asarray(D, dtype=np.float64)
    if D.ndim != 1:
        raise ValueError(f"D must be 1-D, got shape {D.shape}.")
    p = check_sample_weight(D, D.shape[0])
    p /= p.max()
    p /= p.sum()
    rng = check_random_state(random_state, allow_generator=True)
    return rng.multinomial(int(n_draws), p).astype(np.int64)


def split_by_lengths(flat, lengths):
    """Split a flat per-token array back into one array per sample.

    Parameters
    ----------
    flat : array-like of shape (n, ...)
        Per-token values.
    lengths : array-like of int, shape (m,)
        Tokens per sample; ``sum(lengths) == n``.

    Returns
    -------
    list of ndarray
        ``m`` arrays, the i-th of length ``lengths[i]``.
    """
    lengths = _check_lengths(lengths)
    flat = np.asarray(flat)
    _check_flat(flat, lengths, "flat")
    return np.split(flat, np.cumsum(lengths)[:-1])
