"""Difficulty ratings and the easy/hard split (appendix E of the paper).

Each example's difficulty is the error a model makes on it when it was *not* trained on it:
n-fold cross-validation over the labelled pool, one clone of the estimator per fold. The folds
are independent and run in parallel with joblib. Low difficulty is easy (weak training data),
high difficulty is hard (student training data and the test set).
"""

from __future__ import annotations

import logging
from numbers import Integral, Real

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.model_selection import KFold
from sklearn.utils.validation import check_is_fitted

from .._infra.cache import fingerprint
from ..hf.tracking import current_run_name, training_run
from .._infra.validation import (
    NONE,
    RANDOM_STATE,
    HasMethods,
    Interval,
    resolve_seed,
    take_rows,
    validate_params,
)
from ..core.random import fold_rng, threshold_tie_rng, tie_order_rng

logger = logging.getLogger(__name__)

__all__ = ["DifficultySplitter", "per_example_error"]


def per_example_error(estimator, X, y):
    """Each example's error under a fitted estimator, in [0, 1].

    Uses, in order of preference, the estimator's ``sample_error(X, y)``; ``1 - p(gold)`` from
    ``predict_proba`` (the gold column is found through ``classes_`` when the estimator has it,
    else ``y`` is the column index, as for multiple-choice generators); or the 0/1 error of
    ``predict``.
    """
    if hasattr(estimator, "sample_error"):
        return np.asarray(estimator.sample_error(X, y), dtype=np.float64)
    y = np.asarray(y)
    if hasattr(estimator, "predict_proba"):
        proba = np.asarray(estimator.predict_proba(X), dtype=np.float64)
        if hasattr(estimator, "classes_"):
            column = np.searchsorted(estimator.classes_, y)
        else:
            column = y.astype(np.int64)
        return 1.0 - proba[np.arange(len(y)), column]
    return (np.asarray(estimator.predict(X)) != y).astype(np.float64)


def _fold_error(estimator, X, y, train, test, run_name):
    with training_run(run_name, whole=True):  # a joblib worker does not see the caller's name
        model = clone(estimator).fit(take_rows(X, train), take_rows(y, train))
    return test, per_example_error(model, take_rows(X, test), take_rows(y, test)), model


class _Difficulty:
    def is_satisfied_by(self, value):
        return value is None or callable(value) or hasattr(value, "__len__")

    def __str__(self):
        return "an array-like, a callable or None"


class DifficultySplitter(TransformerMixin, BaseEstimator):
    """Rate each example's difficulty by cross-validation and split the pool into easy and hard.

    Parameters
    ----------
    estimator : estimator object, default=None
        Cloned and fitted once per fold; an example's difficulty is the error of the fold model
        that did not see it (see :func:`per_example_error`). Not needed when ``difficulty`` is
        given.
    n_splits : int, default=5
        Number of cross-validation folds.
    easy_fraction : float, default=0.5
        Share of the pool rated easy by :meth:`split` (the least difficult examples).
    difficulty : array-like or callable, default=None
        Precomputed difficulty instead of cross-validation: an array with one value per row,
        or a callable ``difficulty(X) -> array`` (for example ARC's school grade looked up by
        question id, or external ratings). Higher is harder.
    n_jobs : int, default=None
        Folds run in parallel with joblib (``None`` means 1).
    random_state : int, RandomState instance or None, default=None
        Seeds the fold assignment and the tie-breaking of equal difficulties.

    Attributes
    ----------
    difficulty_ : ndarray of shape (n_samples,)
        The difficulty of each row seen in ``fit``.
    estimators_ : list of estimators
        The fitted fold models (cross-validated difficulty only; empty otherwise):
        :meth:`rate` averages their errors on new rows.
    threshold_ : float
        Rows with difficulty above it are hard (ties are split at random, seeded).
    tie_hard_fraction_ : float
        The share of the fitted rows at ``threshold_`` that :meth:`split` calls hard (0 when
        no tie crosses the threshold). :meth:`hard_mask` splits new rows at the threshold by
        the same share, so a coarse difficulty (ARC's school grade) divides a test set like
        the pool.
    easy_mask_ : ndarray of bool, shape (n_samples,)
        True for the rows :meth:`split` calls easy.
    n_features_in_ : int
        Always 1 (the rows are texts); set for scikit-learn compatibility.

    Examples
    --------
    >>> import numpy as np
    >>> splitter = DifficultySplitter(difficulty=np.array([3, 1, 2, 0]))
    >>> easy, hard = splitter.fit(["a", "b", "c", "d"]).split()
    >>> easy.tolist(), hard.tolist()
    ([1, 3], [0, 2])
    """

    def __init__(
        self,
        estimator=None,
        *,
        n_splits=5,
        easy_fraction=0.5,
        difficulty=None,
        n_jobs=None,
        random_state=None,
    ):
        self.estimator = estimator
        self.n_splits = n_splits
        self.easy_fraction = easy_fraction
        self.difficulty = difficulty
        self.n_jobs = n_jobs
        self.random_state = random_state

    _parameter_constraints = {
        "estimator": [HasMethods(("fit",)), NONE],
        "n_splits": [Interval(Integral, 2, None, closed="left")],
        "easy_fraction": [Interval(Real, 0, 1, closed="neither")],
        "difficulty": [_Difficulty()],
        "n_jobs": [Interval(Integral, None, None, closed="neither"), NONE],
        "random_state": [RANDOM_STATE],
    }

    def _validate(self, n):
        validate_params(self)
        if self.difficulty is None:
            if self.estimator is None:
                raise ValueError(
                    "DifficultySplitter needs an 'estimator' to rate difficulty by "
                    "cross-validation, or a precomputed 'difficulty'."
                )
            if self.n_splits > n:
                raise ValueError(
                    f"Cannot make n_splits={self.n_splits} folds out of {n} examples: "
                    "lower n_splits or give more data."
                )
        easy = int(round(self.easy_fraction * n))
        if easy == 0 or easy == n:
            raise ValueError(
                f"easy_fraction={self.easy_fraction} of {n} examples leaves the "
                f"{'easy' if easy == 0 else 'hard'} side empty."
            )

    def fit(self, X, y=None):
        """Rate the difficulty of every row of ``X`` (labels ``y`` needed for cross-validation).

        Parameters
        ----------
        X : list of str, ndarray or DataFrame
            The labelled pool, in the input format of ``estimator``.
        y : array-like of shape (n_samples,), default=None
            Labels of ``X``; required unless ``difficulty`` is precomputed.

        Returns
        -------
        self : DifficultySplitter
        """
        n = len(X)
        if n == 0:
            raise ValueError("DifficultySplitter needs at least one example; got an empty X.")
        self._validate(n)
        for name in [k for k in vars(self) if k.endswith("_") and not k.startswith("__")]:
            delattr(self, name)
        self.estimators_ = []
        if self.difficulty is not None:
            values = self.difficulty(X) if callable(self.difficulty) else self.difficulty
            difficulty = np.asarray(values, dtype=np.float64).reshape(-1)
            if difficulty.shape != (n,) or not np.all(np.isfinite(difficulty)):
                raise ValueError(
                    f"The precomputed difficulty must hold one finite number per row ({n}); "
                    f"got shape {difficulty.shape}."
                )
        else:
            if y is None or len(y) != n:
                raise ValueError("Cross-validated difficulty needs labels y, one per row of X.")
            folds = KFold(self.n_splits, shuffle=True, random_state=fold_rng(self.random_state))
            logger.info("Rating difficulty of %d examples with %d folds", n, self.n_splits)
            name = current_run_name(type(self).__name__)
            results = Parallel(n_jobs=self.n_jobs)(
                delayed(_fold_error)(self.estimator, X, y, train, test, f"{name}/fold{k}")
                for k, (train, test) in enumerate(folds.split(np.zeros(n)), start=1)
            )
            difficulty = np.empty(n, dtype=np.float64)
            for test, err, _ in results:
                difficulty[test] = err
            self.estimators_ = [model for _, _, model in results]
        self.difficulty_ = difficulty
        rng = tie_order_rng(self.random_state)
        order = np.lexsort((rng.permutation(n), difficulty))  # ties broken at random
        n_easy = int(round(self.easy_fraction * n))
        self.easy_mask_ = np.zeros(n, dtype=bool)
        self.easy_mask_[order[:n_easy]] = True
        self.threshold_ = float(difficulty[order[n_easy - 1]])
        self.tie_hard_fraction_ = float(np.mean(~self.easy_mask_[difficulty == self.threshold_]))
        self.n_features_in_ = 1
        self._fit_fingerprint = fingerprint(len(X), _row_keys(X))
        return self

    def transform(self, X):
        """The difficulty of each row, shape ``(n_samples, 1)``; no row is added or dropped.

        Difficulty is cross-validated on the fitted data, so ``X`` must be the data seen in
        ``fit``.

        Parameters
        ----------
        X : list of str, ndarray or DataFrame
            The data seen in ``fit``.

        Returns
        -------
        difficulty : ndarray of shape (n_samples, 1)
        """
        check_is_fitted(self)
        if fingerprint(len(X), _row_keys(X)) != self._fit_fingerprint:
            raise ValueError(
                "DifficultySplitter.transform rates only the data it was fitted on "
                "(difficulty is cross-validated); call fit_transform on new data."
            )
        return self.difficulty_.reshape(-1, 1)

    def rate(self, X, y=None):
        """The difficulty of new rows by the fitted rule, comparable with ``threshold_``.

        A callable ``difficulty`` is called on ``X``; a cross-validated difficulty is the mean
        error of the fold models (``estimators_``) on ``(X, y)``. Rows above ``threshold_``
        are hard by the same rule that split the pool, so a separate test set (for example a
        dataset's official test split) can be divided like the pool.

        Parameters
        ----------
        X : sequence of str or DataFrame
            New rows.
        y : array-like of shape (n_samples,), default=None
            Their labels (needed for a cross-validated difficulty).

        Returns
        -------
        ndarray of shape (n_samples,)

        Raises
        ------
        ValueError
            If the difficulty was a precomputed array (it rates the fitted rows only), or
            ``y`` is missing for a cross-validated one.
        """
        check_is_fitted(self)
        if self.difficulty is not None:
            if not callable(self.difficulty):
                raise ValueError(
                    "A precomputed difficulty array rates only the rows it was given; pass a "
                    "callable difficulty(X) to rate new rows."
                )
            values = np.asarray(self.difficulty(X), dtype=np.float64).reshape(-1)
            if values.shape != (len(X),) or not np.all(np.isfinite(values)):
                raise ValueError(f"difficulty(X) must give one finite number per row ({len(X)}).")
            return values
        if y is None or len(y) != len(X):
            raise ValueError(
                "A cross-validated difficulty rates new rows from their labels: give y.")
        return np.mean([per_example_error(m, X, np.asarray(y)) for m in self.estimators_], axis=0)

    def fit_transform(self, X, y=None, **fit_params):
        return self.fit(X, y).difficulty_.reshape(-1, 1)

    def hard_mask(self, X, y=None, random_state=None):
        """Which new rows are hard by the rule that split the pool.

        A row is hard when :meth:`rate` puts it above ``threshold_``. A row exactly at the
        threshold is hard with probability ``tie_hard_fraction_``, the share of the pool's rows
        at the threshold that went hard. Without that, a coarse difficulty with many ties (ARC's
        grade takes 7 values) would put every tied test row on the easy side, however many of
        the pool's tied rows went hard.

        Parameters
        ----------
        X : sequence of str or DataFrame
            New rows.
        y : array-like of shape (n_samples,), default=None
            Their labels (needed for a cross-validated difficulty).
        random_state : int, RandomState instance or None, default=None
            Seeds the draw for the tied rows; None uses the splitter's ``random_state`` (a
            stream apart from the one that broke the pool's ties).

        Returns
        -------
        ndarray of bool, shape (n_samples,)
        """
        check_is_fitted(self)
        values = self.rate(X, y)
        mask = values > self.threshold_
        ties = np.flatnonzero(values == self.threshold_)
        if len(ties) and self.tie_hard_fraction_ > 0.0:
            seed = resolve_seed(self.random_state if random_state is None else random_state)
            rng = threshold_tie_rng(seed)
            mask[ties] = rng.random(len(ties)) < self.tie_hard_fraction_
        return mask

    def split(self, X=None, y=None):
        """Return ``(easy_indices, hard_indices)`` of the fitted rows, each sorted.

        Parameters
        ----------
        X : None
            Ignored: the split is of the rows seen in ``fit``.
        y : None
            Ignored.

        Returns
        -------
        easy_indices, hard_indices : ndarray of int
        """
        check_is_fitted(self)
        return np.flatnonzero(self.easy_mask_), np.flatnonzero(~self.easy_mask_)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.requires_fit = True
        return tags


def _row_keys(X):
    if isinstance(X, pd.DataFrame):
        return pd.util.hash_pandas_object(X.astype(str), index=False).to_numpy()
    return [str(x) for x in (X.tolist() if isinstance(X, np.ndarray) else X)]
