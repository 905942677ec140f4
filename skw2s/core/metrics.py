"""Performance gap recovered (PGR) and helpers to report it.

PGR (Burns et al. 2023) measures how much of the gap between the weak supervisor and the strong
ceiling a student recovers::

    PGR = (acc(student) - acc(weak)) / (acc(ceiling) - acc(weak))

It is undefined when the ceiling equals the weak score, and it can be huge or negative when
the gap is small: always report the accuracies beside it.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["agreement", "error_kappa", "make_pgr_scorer", "mean_error_kappa", "mean_sem",
           "pgr_score"]


def pgr_score(weak, student, ceiling):
    """Performance gap recovered by ``student`` between ``weak`` and ``ceiling``.

    Parameters
    ----------
    weak, student, ceiling : float or array-like
        Scores (accuracies) of the weak supervisor, the weak-to-strong student and the strong
        ceiling trained on gold labels. Arrays are broadcast element-wise.

    Returns
    -------
    pgr : float or ndarray
        NaN, with a warning, where ``ceiling <= weak``: there is no gap to recover (a
        negative gap would flip the sign of every PGR).

    Examples
    --------
    >>> round(pgr_score(0.6, 0.7, 0.8), 6)
    0.5
    """
    weak, student, ceiling = (np.asarray(v, dtype=np.float64) for v in (weak, student, ceiling))
    gap = ceiling - weak
    undefined = np.isclose(gap, 0.0, rtol=0.0, atol=1e-12) | (gap < 0)
    if np.any(undefined):
        which = "below" if np.any(gap < -1e-12) else "equal to"
        warnings.warn(
            f"PGR is undefined where the ceiling is {which} the weak score (no gap to recover); "
            "returning NaN there. Report the accuracies instead, or pick a weaker weak model.",
            stacklevel=2,
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        pgr = np.where(undefined, np.nan, (student - weak) / np.where(undefined, 1.0, gap))
    return float(pgr) if pgr.ndim == 0 else pgr


def make_pgr_scorer(weak_score, ceiling_score):
    """A scorer ``scorer(estimator, X, y) -> PGR`` for ``GridSearchCV`` and ``cross_val_score``.

    The reference scores must be known in advance (for example measured once on the same
    evaluation data). The student's score is ``estimator.score(X, y)``.

    Parameters
    ----------
    weak_score, ceiling_score : float
        Accuracy of the weak supervisor and of the strong ceiling.

    Returns
    -------
    scorer : callable
    """
    for name, value in (("weak_score", weak_score), ("ceiling_score", ceiling_score)):
        if not np.isfinite(value):
            raise ValueError(f"{name} must be a finite number; got {value!r}.")

    def pgr_scorer(estimator, X, y):
        return pgr_score(weak_score, estimator.score(X, y), ceiling_score)

    pgr_scorer.weak_score = weak_score
    pgr_scorer.ceiling_score = ceiling_score
    return pgr_scorer


def error_kappa(y, predictions):
    """How alike the mistakes of several models are: Cohen's kappa of every pair's errors.

    The error indicators ``pred != y`` of two models are compared with
    :func:`sklearn.metrics.cohen_kappa_score`, which corrects their agreement for the
    agreement two models with the same error rates would reach by chance: 0 means their
    mistakes fall independently, 1 that they make the same mistakes, negative that they
    avoid each other's. Ensembles and weak-to-strong students gain more from supervisors whose
    mistakes differ.

    Parameters
    ----------
    y : array-like of shape (n,)
        Gold labels.
    predictions : sequence of array-like of shape (n,)
        The models' predictions.

    Returns
    -------
    kappa : ndarray of shape (T, T)
        Symmetric; the diagonal is 1. NaN for a pair where one model is right everywhere or
        wrong everywhere (kappa is undefined when an error indicator does not vary).

    Raises
    ------
    ValueError
        If a prediction's length differs from ``y``'s.

    Examples
    --------
    >>> y = [0, 0, 1, 1]
    >>> error_kappa(y, [[1, 0, 0, 1], [1, 0, 0, 1]])[0, 1]
    np.float64(1.0)
    """
    from sklearn.metrics import cohen_kappa_score

    y = np.asarray(y)
    errors = []
    for p in predictions:
        p = np.asarray(p)
        if p.shape != y.shape:
            raise ValueError(f"Every prediction must have the shape of y {y.shape}; got {p.shape}.")
        errors.append((p != y).astype(np.int64))
    out = np.eye(len(errors))
    for i in range(len(errors)):
        for j in range(i + 1, len(errors)):
            a, b = errors[i], errors[j]
            if a.min() == a.max() or b.min() == b.max():
                value = np.nan
            else:
                value = cohen_kappa_score(a, b)
            out[i, j] = out[j, i] = value
    return out


def mean_error_kappa(y, predictions):
    """The mean of :func:`error_kappa` over the pairs of models (NaN with fewer than two, or
    when no pair's kappa is defined).

    Parameters
    ----------
    y : array-like of shape (n,)
        Gold labels.
    predictions : sequence of array-like of shape (n,)
        The models' predictions.

    Returns
    -------
    float
    """
    if len(predictions) < 2:
        return float("nan")
    kappa = error_kappa(y, predictions)
    pairs = kappa[np.triu_indices(len(predictions), k=1)]
    pairs = pairs[np.isfinite(pairs)]
    return float(pairs.mean()) if pairs.size else float("nan")


def agreement(a, b):
    """The share of rows on which two models give the same answer.

    Weak-to-student agreement is this between a student and the weak side that labelled its
    data: 1 means the student imitates its supervisor, and the student's gain over it can only
    come from the rows where they differ (its misfit on the weak labels).

    Parameters
    ----------
    a, b : array-like of shape (n,)
        Predictions.

    Returns
    -------
    float
        NaN for empty input.
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"Predictions of different shapes: {a.shape} and {b.shape}.")
    return float(np.mean(a == b)) if a.size else float("nan")


def mean_sem(values):
    """Mean and standard error of the mean (``nan`` SEM for fewer than two finite values).

    Parameters
    ----------
    values : array-like of float
        The values, for example one score per seed; non-finite values are left out.

    Returns
    -------
    mean : float
        NaN when no value is finite.
    sem : float
        ``std(ddof=1) / sqrt(n)`` over the ``n`` finite values; NaN when ``n < 2``.
    """
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return float("nan"), float("nan")
    sem = float(arr.std(ddof=1) / np.sqrt(arr.size)) if arr.size > 1 else float("nan")
    return float(arr.mean()), sem
