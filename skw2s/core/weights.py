"""Binary AdaBoost weight arithmetic (ALGORITHMS.md, Algorithm 2).

Pure numpy: no model and no torch in here, so every step is cheap to test.
Labels live in {-1, +1} inside the math; a learner's mistakes are passed as
a boolean/0-1 ``incorrect`` array.
"""

import warnings
from dataclasses import dataclass

import numpy as np

EPS = 1e-10
"""The one clipping bound of the weight math: errors (binary ``eps_t``, token ``eps_t`` and
``eps_pre``) are clipped to ``[EPS, 1 - EPS]`` before taking logs, so a perfect learner gets a
large finite weight (``1/2 log((1 - EPS) / EPS)`` is about 11.5) instead of an infinite one."""

_FLOOR = np.finfo(np.float64).tiny
"""Positive weights are never allowed to underflow below this (about 2.2e-308)."""


def check_sample_weight(sample_weight, n):
    """Validate sample weights and return them as float64.

    Parameters
    ----------
    sample_weight : array-like of shape (n,) or None
        Non-negative weights; None means uniform weights ``1/n``.
    n : int
        Expected number of samples.

    Returns
    -------
    ndarray of shape (n,), float64
        A copy of the weights (not normalised unless ``sample_weight`` is None).

    Raises
    ------
    ValueError
        If the weights have the wrong shape or length, contain NaN or inf,
        are negative, or are all zero.
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}.")
    if sample_weight is None:
        return np.full(n, 1.0 / n)
    w = np.array(sample_weight, dtype=np.float64)
    if w.ndim != 1 or w.shape[0] != n:
        raise ValueError(f"sample_weight must have shape ({n},), got {w.shape}.")
    if not np.all(np.isfinite(w)):
        raise ValueError("sample_weight contains NaN or inf.")
    if np.any(w < 0):
        raise ValueError("sample_weight contains negative values.")
    if not np.any(w > 0):
        raise ValueError("sample_weight is all zero.")
    return w


def normalize_weights(w):
    """Scale weights so that they sum to 1.

    Parameters
    ----------
    w : array-like
        Non-negative weights.

    Returns
    -------
    ndarray, float64
        ``w / w.sum()``.

    Raises
    ------
    ValueError
        If the sum is not finite and positive.
    """
    w = np.asarray(w, dtype=np.float64)
    total = w.sum()
    if not (np.isfinite(total) and total > 0):
        raise ValueError(f"Weights cannot be normalised: their sum is {total}.")
    return w / total


def _as_distribution(w):
    """Normalise non-negative ``w`` without overflow, keeping positives >= ``_FLOOR``."""
    pos = w > 0
    new = w / w.max()
    new /= new.sum()
    new[pos] = np.maximum(new[pos], _FLOOR)
    return new


def weighted_error(w, incorrect):
    """Return ``sum(w * incorrect) / sum(w)`` computed without overflow."""
    w = w / w.max()
    return float(np.clip(np.dot(w, incorrect) / w.sum(), 0.0, 1.0))


def _check_incorrect(incorrect):
    """Validate a 1-D mistake indicator (or soft mistake) with values in [0, 1]."""
    inc = np.asarray(incorrect, dtype=np.float64)
    if inc.ndim != 1:
        raise ValueError(f"incorrect must be 1-D, got shape {inc.shape}.")
    if not np.all((inc >= 0) & (inc <= 1)):
        raise ValueError("incorrect must lie in [0, 1] (0 = right, 1 = wrong).")
    return inc


def _reweight(w, log_factor):
    """Return ``w * exp(log_factor)`` normalised, computed in log space.

    Weights that are zero stay exactly zero; positive weights stay at least
    ``_FLOOR``. Returns None if the result is not a finite distribution.
    """
    pos = w > 0
    logw = np.full(w.shape, -np.inf)
    logw[pos] = np.log(w[pos]) + log_factor[pos]
    logw -= logw[pos].max()
    new = np.exp(logw)
    total = new.sum()
    if not (np.isfinite(total) and total > 0):
        return None
    new /= total
    new[pos] = np.maximum(new[pos], _FLOOR)
    new[~pos] = 0.0
    return new


@dataclass(frozen=True)
class BoostStep:
    """The result of one boosting round's weight step: the one step record of every ensemble.

    Attributes
    ----------
    weights : ndarray
        The weights for the next round (normalised, float64): one per sample (binary
        AdaBoost) or one per answer token (token-level EnsemW2S).
    alpha : float or None
        The learner's weight; None when the round is rejected (the learner is discarded).
    error : float
        The learner's weighted error, before clipping.
    stop_reason : str or None
        None to continue; ``"perfect"`` (error 0: learner kept, stop); ``"error>=1/2"`` or
        ``"error>=eps_pre"`` (round rejected, stop); ``"non-finite weights"`` (rejected).
    """

    weights: np.ndarray
    alpha: float | None
    error: float
    stop_reason: str | None


def adaboost_step(sample_weight, incorrect, *, learning_rate=1.0):
    """Run the weight arithmetic of one binary AdaBoost round.

    ``eps = sum(D * incorrect) / sum(D)``,
    ``alpha = learning_rate * 1/2 * log((1 - eps_c) / eps_c)`` with ``eps_c``
    clipped to ``[EPS, 1 - EPS]``, and ``D' = D * exp(-alpha * y * h) / Z``,
    i.e. ``D * exp(+alpha)`` on mistakes and ``D * exp(-alpha)`` elsewhere.

    Parameters
    ----------
    sample_weight : array-like of shape (n,)
        Current non-negative weights ``D_t``.
    incorrect : array-like of shape (n,)
        1 (or True) where the learner is wrong, 0 where it is right.
    learning_rate : float, default=1.0
        Positive shrinkage applied to ``alpha``.

    Returns
    -------
    BoostStep
        Next weights, ``alpha``, the error and why to stop (if at all). A
        rejected round (``error >= 1/2``) returns the input weights normalised.

    Warns
    -----
    RuntimeWarning
        If the updated weights stop being finite (``stop_reason`` is
        ``"non-finite weights"`` and the input weights are returned).
    """
    inc = _check_incorrect(incorrect)
    w = check_sample_weight(sample_weight, inc.shape[0])
    if not (np.isfinite(learning_rate) and learning_rate > 0):
        raise ValueError(f"learning_rate must be finite and > 0, got {learning_rate}.")
    w = _as_distribution(w)
    error = weighted_error(w, inc)
    if error >= 0.5:
        return BoostStep(w, None, error, "error>=1/2")
    eps_c = np.clip(error, EPS, 1 - EPS)
    alpha = float(learning_rate * 0.5 * np.log((1 - eps_c) / eps_c))
    new = _reweight(w, alpha * (2 * inc - 1))
    if new is None:
        warnings.warn("Sample weights are not finite; stopping.", RuntimeWarning, stacklevel=2)
        return BoostStep(w, None, error, "non-finite weights")
    return BoostStep(new, alpha, error, "perfect" if error == 0 else None)


def _check_votes_alphas(votes, alphas, ndim):
    """Validate stacked per-round outputs against a 1-D ``alphas`` of length T."""
    votes = np.asarray(votes, dtype=np.float64)
    alphas = np.asarray(alphas, dtype=np.float64)
    if votes.ndim != ndim or alphas.ndim != 1 or votes.shape[0] != alphas.shape[0]:
        raise ValueError(
            f"Expected a {ndim}-D array with one row per alpha, got shapes "
            f"{votes.shape} and {alphas.shape}."
        )
    if not np.all(np.isfinite(alphas)) or np.any(alphas < 0) or not np.any(alphas > 0):
        raise ValueError("alphas must be finite, non-negative and not all zero.")
    return votes, alphas


def adaboost_decision(votes, alphas):
    """Return the AdaBoost decision function ``sum_t alpha_t * h_t(x)``.

    Parameters
    ----------
    votes : array-like of shape (T, n)
        Per-round predictions in {-1, +1}.
    alphas : array-like of shape (T,)
        Learner weights.

    Returns
    -------
    ndarray of shape (n,)
        Positive values predict +1, negative values -1.
    """
    for score in staged_adaboost_decision(votes, alphas):
        pass
    return score


def staged_adaboost_decision(votes, alphas):
    """Yield ``sum_{s<=t} alpha_s * h_s(x)`` for ``t = 1..T``.

    The sum is accumulated round by round in one fixed order, elementwise (no BLAS dot
    product, whose summation order depends on the machine and the thread count), so the last
    value equals :func:`adaboost_decision` bit for bit everywhere.

    Parameters
    ----------
    votes : array-like of shape (T, n)
        Per-round predictions in {-1, +1}.
    alphas : array-like of shape (T,)
        Learner weights.

    Yields
    ------
    ndarray of shape (n,)
        The decision function of the first ``t`` rounds.
    """
    votes, alphas = _check_votes_alphas(votes, alphas, 2)
    if not np.all(np.abs(votes) == 1):
        raise ValueError("votes must be in {-1, +1}.")
    score = np.zeros(votes.shape[1])
    for a, v in zip(alphas, votes):
        score = score + a * v
        yield score


def staged_soft_pseudo_labels(proba, alphas):
    """Yield the soft pseudo-labels of each prefix ``t = 1..T`` of the ensemble.

    Parameters
    ----------
    proba : array-like of shape (T, n, 2)
        Per-round class probabilities.
    alphas : array-like of shape (T,)
        Learner weights.

    Yields
    ------
    ndarray of shape (n, 2)
        ``sum_{s<=t} alpha_s p_s / sum_{s<=t} alpha_s``, rows summing to 1.
    """
    proba, alphas = _check_votes_alphas(proba, alphas, 3)
    if proba.shape[2] != 2 or not np.all(np.isfinite(proba)) or np.any(proba < 0):
        raise ValueError("proba must have shape (T, n, 2) with finite, non-negative values.")
    acc = np.zeros(proba.shape[1:])
    for a, p in zip(alphas, proba):
        acc += a * p
        total = acc.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            yield np.where(total > 0, acc / total, 0.5)


def soft_pseudo_labels(proba, alphas):
    """Return the alpha-weighted mean of the rounds' class probabilities.

    Parameters
    ----------
    proba : array-like of shape (T, n, 2)
        Per-round class probabilities.
    alphas : array-like of shape (T,)
        Learner weights.

    Returns
    -------
    ndarray of shape (n, 2)
        Normalised ``sum_t alpha_t p_t``; rows sum to 1 (a row whose
        weighted mass is zero becomes ``[0.5, 0.5]``).
    """
    for out in staged_soft_pseudo_labels(proba, alphas):
        pass
    return out


def fit_mixture_weights(likelihoods, *, n_iter=500, tol=1e-12):
    """Global mixture weights of fixed experts, fitted by maximum likelihood on held-out data.

    Maximises ``sum_i log(sum_t w_t L[t, i])`` over the simplex with the EM update
    ``w_t <- mean_i w_t L[t, i] / sum_s w_s L[s, i]``. The objective is concave in ``w``, so EM
    converges to the global maximum. This is the learned combination of
    ``combine="learned"`` (RAVEN's learned global weights; EnsemW2S names it as future work).

    Parameters
    ----------
    likelihoods : array-like of shape (T, m)
        ``L[t, i]``: the probability expert ``t`` gives the gold label (a class, or an answer
        token under teacher forcing) of held-out item ``i``. Non-negative and finite.
    n_iter : int, default=500
        Most EM iterations.
    tol : float, default=1e-12
        Stop when no weight moves by more than this.

    Returns
    -------
    ndarray of shape (T,)
        Non-negative weights that sum to 1, starting from (and, when the experts are
        indistinguishable, staying at) uniform weights.

    Raises
    ------
    ValueError
        If ``likelihoods`` is not a non-empty 2-D array of finite non-negative values, or an
        item has likelihood 0 under every expert.
    """
    L = np.asarray(likelihoods, dtype=np.float64)
    if L.ndim != 2 or L.shape[0] == 0 or L.shape[1] == 0:
        raise ValueError(f"likelihoods must be a non-empty 2-D array (T, m); got shape {L.shape}.")
    if not np.all(np.isfinite(L)) or np.any(L < 0):
        raise ValueError("likelihoods must be finite and non-negative.")
    if np.any(L.sum(axis=0) <= 0):
        raise ValueError("Some held-out item has likelihood 0 under every expert.")
    L = L / L.max(axis=0, keepdims=True)  # per-item scale cancels in the responsibilities
    w = np.full(L.shape[0], 1.0 / L.shape[0])
    for _ in range(int(n_iter)):
        mix = w @ L
        new = w * (L / mix).mean(axis=1)
        new /= new.sum()
        done = np.max(np.abs(new - w)) <= tol
        w = new
        if done:
            break
    return w


def confidence_weights(proba, alphas):
    """Per-question expert weights from each expert's own confidence, times its alpha.

    ``w_t(x) = alpha_t c_t(x) / sum_s alpha_s c_s(x)`` with ``c_t(x) = max_k p_t(k | x)``, the
    probability expert ``t`` gives its own answer (``combine="confidence"``). No training.

    Parameters
    ----------
    proba : array-like of shape (T, n, K)
        Each expert's class probabilities.
    alphas : array-like of shape (T,)
        Non-negative global weights of the experts, not all zero.

    Returns
    -------
    ndarray of shape (n, T)
        Non-negative weights; every row sums to 1 (a row where every weighted confidence is
        zero gets ``alphas`` normalised).

    Raises
    ------
    ValueError
        If ``proba`` is not a finite non-negative (T, n, K) array with one row per alpha.
    """
    proba, alphas = _check_votes_alphas(proba, alphas, 3)
    if not np.all(np.isfinite(proba)) or np.any(proba < 0):
        raise ValueError("proba must hold finite, non-negative probabilities.")
    raw = alphas[:, None] * proba.max(axis=2)  # (T, n)
    total = raw.sum(axis=0, keepdims=True)
    fallback = np.broadcast_to((alphas / alphas.sum())[:, None], raw.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(total > 0, raw / total, fallback)
    return np.ascontiguousarray(w.T)


def mix_per_question(proba, weights):
    """Return ``sum_t w_t(x) p_t(x)``: the mixture of experts under per-question weights.

    Parameters
    ----------
    proba : array-like of shape (T, n, K)
        Each expert's class probabilities.
    weights : array-like of shape (n, T)
        Per-question expert weights, each row summing to 1 (:func:`confidence_weights`, or a
        router's output).

    Returns
    -------
    ndarray of shape (n, K)
        Rows sum to 1 when the experts' rows do. The sum over experts runs in one fixed order,
        elementwise, so the result does not depend on the machine's BLAS.

    Raises
    ------
    ValueError
        If the shapes do not match.
    """
    proba = np.asarray(proba, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    if proba.ndim != 3 or weights.shape != (proba.shape[1], proba.shape[0]):
        raise ValueError(
            f"weights must have shape (n, T) = {(proba.shape[1], proba.shape[0])} for proba "
            f"of shape {proba.shape}; got {weights.shape}."
        )
    out = np.zeros(proba.shape[1:])
    for t in range(proba.shape[0]):
        out = out + weights[:, t:t + 1] * proba[t]
    return out


def router_features(proba):
    """The gate's features of ``combine="router"``: every expert's log-odds of each class.

    Parameters
    ----------
    proba : array-like of shape (T, n, K)
        Each expert's class probabilities.

    Returns
    -------
    ndarray of shape (n, T * K)
        ``log p_t(k | x)`` clipped at ``log 1e-6``, centred per expert and question (the
        log-odds against the geometric mean of the classes), experts side by side.
    """
    proba = np.asarray(proba, dtype=np.float64)
    logp = np.log(np.clip(proba, 1e-6, None))
    logp = logp - logp.mean(axis=2, keepdims=True)
    return np.ascontiguousarray(np.transpose(logp, (1, 0, 2)).reshape(proba.shape[1], -1))


def router_targets(likelihoods):
    """The gate's training targets: for every held-out item, the expert that gave its gold
    label the highest probability (the first of tied experts).

    Parameters
    ----------
    likelihoods : array-like of shape (T, m)
        ``L[t, i]``, the probability expert ``t`` gives the gold label of item ``i``.

    Returns
    -------
    ndarray of shape (m,), int64
        Expert indices in ``[0, T)``.
    """
    L = np.asarray(likelihoods, dtype=np.float64)
    if L.ndim != 2 or L.size == 0:
        raise ValueError(f"likelihoods must be a non-empty 2-D array (T, m); got shape {L.shape}.")
    return np.argmax(L, axis=0).astype(np.int64)


def gate_weights(gate, features, n_experts, n_first=None):
    """Per-question expert weights from a fitted gate (``combine="router"``).

    Parameters
    ----------
    gate : fitted classifier
        Trained on :func:`router_features` to predict :func:`router_targets`; its
        ``classes_`` are expert indices. Experts it never saw as a target get weight 0.
    features : ndarray of shape (n, n_features)
        :func:`router_features` of the questions.
    n_experts : int
        ``T``.
    n_first : int, default=None
        Keep the first ``n_first`` experts only (a staged prediction) and renormalise; a row
        left with no weight becomes uniform over them.

    Returns
    -------
    ndarray of shape (n, n_first or T)
        Non-negative; every row sums to 1.
    """
    k = n_experts if n_first is None else int(n_first)
    w = np.zeros((features.shape[0], n_experts))
    w[:, np.asarray(gate.classes_, dtype=np.int64)] = gate.predict_proba(features)
    w = w[:, :k]
    total = w.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, w / np.where(total > 0, total, 1.0), 1.0 / k)
