"""LLMAdaBoostClassifier: binary AdaBoost over language-model classifiers (EnsemW2S, Algorithm 2).

The weight arithmetic lives in :mod:`skw2s._weights`; this module trains the learners, feeds
their mistakes to :func:`~skw2s._weights.adaboost_step`, stores finished rounds in the
``memory`` store and combines the learners' outputs.
"""

from __future__ import annotations

import logging
import time
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.metrics import accuracy_score
from sklearn.utils import get_tags
from sklearn.utils.validation import check_is_fitted, has_fit_parameter, validate_data
from tqdm.auto import tqdm

from . import _weights
from ._cache import fingerprint, get_store, with_checkpoints
from ._validation import (
    NONE,
    HasMethods,
    Interval,
    StrOptions,
    _InstanceOf,
    check_binary_target,
    check_sample_weight,
    check_text_input,
    reset_fitted_attributes,
    resolve_seed,
    take_rows,
    validate_params,
)
from .classifier import LLMClassifier

logger = logging.getLogger(__name__)

__all__ = ["LLMAdaBoostClassifier"]

_MEMORY_VERSION = "LLMAdaBoostClassifier/v1"
_REJECTED = ("error>=1/2", "non-finite weights")
_MAX_REDRAWS = 20


def _n_samples(X):
    return len(X) if isinstance(X, list) else X.shape[0]


class LLMAdaBoostClassifier(ClassifierMixin, BaseEstimator):
    """Binary AdaBoost over fine-tuned language-model classifiers (EnsemW2S, Algorithm 2).

    Starting from ``D_1 = 1/m`` (or the normalised ``sample_weight``), each round ``t`` trains
    a clone of ``estimator`` on the easy data weighted by ``D_t`` (by resampling or by a
    weighted loss, see ``sampling``), measures its weighted error
    ``eps_t = sum_i D_t(i) [h_t(x_i) != y_i]`` on the full training data, gives it the weight
    ``alpha_t = 1/2 log((1 - eps_t) / eps_t)`` and updates
    ``D_{t+1}(i) ~ D_t(i) exp(-alpha_t y_i h_t(x_i))`` (labels and votes in {-1, +1}; the
    arithmetic is :func:`skw2s._weights.adaboost_step`). Boosting stops early when a round's
    error reaches 1/2 (the round is rejected; on the first round this raises) or is 0 (the
    perfect learner is kept).

    Parameters
    ----------
    estimator : estimator object, default=None
        The weak learner, cloned for every round. It needs ``fit``, ``predict`` and
        ``predict_proba``; with ``sampling="reweight"`` its ``fit`` must accept
        ``sample_weight``. None means ``LLMClassifier()`` (``smollm2-135m`` in head mode).
        If it has a ``random_state`` parameter, each round sets it from this ensemble's seed
        stream.
    n_estimators : int, default=10
        Maximum number of boosting rounds (the paper's binary setting). Boosting may stop
        earlier; see ``stop_reason_``.
    sampling : {"resample", "reweight"}, default="resample"
        How a learner sees ``D_t``. ``"resample"``: it trains, unweighted, on ``m`` indices
        drawn with replacement with probabilities ``D_t`` (a draw missing a class is redrawn).
        ``"reweight"``: it trains on all the data with ``sample_weight = m * D_t`` (mean 1).
        Either way ``eps_t`` is measured on all the training data, weighted by ``D_t``.
    learning_rate : float, default=1.0
        Shrinkage of ``alpha_t``; 1.0 is Algorithm 2 as published.
    random_state : int, RandomState instance or None, default=None
        Seeds the ensemble. Round ``t`` draws its resampling indices and its learner's
        ``random_state`` from a generator seeded with ``(seed, t)``, so a round does not depend
        on ``n_estimators``. None draws the seed from numpy's global generator.
    memory : str, path-like, joblib.Memory or None, default=None
        Where to store finished rounds. A round is stored under a fingerprint of this class,
        every parameter but ``n_estimators``, ``memory`` and ``verbose``, the weak learner's
        parameters (``verbose`` aside), the training data, the round index and the round's
        input weights ``D_t``. A later fit with the same settings loads those rounds instead of
        training them: fitting ``n_estimators=5`` after ``3`` trains 2 learners, and
        ``GridSearchCV`` over ``n_estimators`` costs about one fit of the largest value per
        split. With ``random_state=None`` a fit reuses whatever rounds are stored (each is a
        valid draw); set an int to make fits reproducible.
    verbose : int, default=0
        Show a progress bar over rounds when positive. Per-round metrics are logged (logger
        ``skw2s.boosting``) and always recorded in ``history_``.

    Attributes
    ----------
    estimator_ : estimator object
        The unfitted prototype every learner was cloned from.
    estimators_ : list of estimators
        The fitted learners, one per kept round. Its length may be below ``n_estimators``.
    estimator_weights_ : ndarray of shape (n_rounds,)
        ``alpha_t`` of each kept learner (cut to ``len(estimators_)``, not zero-padded as in
        scikit-learn's ``AdaBoostClassifier``).
    estimator_errors_ : ndarray of shape (n_rounds,)
        ``eps_t`` of each kept learner: its ``D_t``-weighted training error.
    classes_ : ndarray of shape (2,)
        The two labels, sorted; ``classes_[1]`` is the +1 vote.
    n_classes_ : int
        Always 2.
    stop_reason_ : str or None
        Why boosting stopped before ``n_estimators`` rounds: ``"perfect"`` (a learner made no
        weighted mistake; it was kept), ``"error>=1/2"`` (a learner was no better than chance;
        it was discarded), ``"non-finite weights"`` (discarded), or None when every round ran.
    history_ : list of dict
        One dict per round run or loaded, the rejected one included: ``round`` (1-based),
        ``error``, ``alpha`` (None when rejected), ``stop_reason``, ``train_accuracy``
        (unweighted accuracy of the learner on the training data), ``fit_seconds`` (training
        time when it was trained) and ``cached`` (loaded from ``memory``).
    n_features_in_ : int
        Number of features seen in ``fit``; only set when the weak learner takes numeric 2-D
        input (text input has no features).
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen in ``fit``; only set for numeric input given as a
        DataFrame with string column names.

    See Also
    --------
    LLMClassifier : The default weak learner.
    sklearn.ensemble.AdaBoostClassifier : The same algorithm (SAMME, K = 2) for numeric data.

    Notes
    -----
    **Three outputs.** :meth:`decision_function` is ``sum_t alpha_t h_t(x)`` with hard votes
    ``h_t`` in {-1, +1}; :meth:`predict` is its sign (Algorithm 2; a tie goes to
    ``classes_[0]``). :meth:`predict_proba` is the *soft pseudo-label* of EnsemW2S: the
    alpha-weighted mean ``sum_t alpha_t p_t(x) / sum_t alpha_t`` of the learners' own
    ``predict_proba``. It is a convex combination of the learners' probabilities, not a
    calibrated AdaBoost probability, and since it averages soft scores while ``predict``
    counts hard votes, ``predict`` and the argmax of ``predict_proba`` can differ.
    :meth:`pseudo_label` returns either for a student.

    **Pickling.** The ensemble pickles its learners; an :class:`LLMClassifier` learner stores
    its weights as safetensors bytes (only the head in head mode, only the adapters in lora
    mode, rebuilding the rest from the model spec), so a ``pickle`` or ``joblib.dump`` holds
    no pickled tensors. The ``memory`` store uses the same pickles.

    References
    ----------
    .. [1] EnsemW2S: Can an Ensemble of LLMs be Leveraged to Obtain a Stronger LLM?
       arXiv:2410.04571, Appendix F, Algorithm 2.
    .. [2] Freund and Schapire (1997). A decision-theoretic generalization of on-line
       learning and an application to boosting.

    Examples
    --------
    >>> from skw2s import LLMAdaBoostClassifier, LLMClassifier
    >>> from skw2s.datasets import binarize_sciq, load_sciq, to_classification
    >>> X, y = to_classification(binarize_sciq(load_sciq()[:300], random_state=0))  # doctest: +SKIP
    >>> boost = LLMAdaBoostClassifier(LLMClassifier("smollm2-135m", mode="head"),
    ...                               n_estimators=5, random_state=0)
    >>> boost.fit(X, y).staged_score(X, y)  # doctest: +SKIP
    <generator object ...>
    >>> soft = boost.pseudo_label(X, soft=True)  # doctest: +SKIP
    """

    def __init__(
        self,
        estimator=None,
        *,
        n_estimators=10,
        sampling="resample",
        learning_rate=1.0,
        random_state=None,
        memory=None,
        verbose=0,
    ):
        self.estimator = estimator
        self.n_estimators = n_estimators
        self.sampling = sampling
        self.learning_rate = learning_rate
        self.random_state = random_state
        self.memory = memory
        self.verbose = verbose

    _parameter_constraints = {
        "estimator": [HasMethods(("fit", "predict", "predict_proba")), NONE],
        "n_estimators": [Interval(Integral, 1, None, closed="left")],
        "sampling": [StrOptions(("resample", "reweight"))],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "verbose": [Interval(Integral, 0, None, closed="left"), _InstanceOf((bool,), "a bool")],
    }

    def _prototype(self):
        return LLMClassifier() if self.estimator is None else self.estimator

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        sub = get_tags(self._prototype()).input_tags
        tags.input_tags.string = sub.string
        tags.input_tags.two_d_array = sub.two_d_array
        tags.input_tags.allow_nan = sub.allow_nan
        tags.input_tags.sparse = False
        tags.classifier_tags.multi_class = False
        return tags

    def __sklearn_is_fitted__(self):
        return hasattr(self, "estimators_")

    def _text_input(self):
        tags = get_tags(self._prototype()).input_tags
        return tags.string and not tags.two_d_array

    def _check_X(self, X, *, reset):
        if self._text_input():
            return check_text_input(X, estimator=self)
        allow_nan = get_tags(self._prototype()).input_tags.allow_nan
        return validate_data(self, X, reset=reset, ensure_all_finite=not allow_nan)

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y, sample_weight=None):
        """Boost ``n_estimators`` (at most) learners on the easy training data.

        Parameters
        ----------
        X : sequence of str or one-column DataFrame of shape (n_samples,)
            The texts (or a numeric array when the weak learner takes one).
        y : array-like of shape (n_samples,)
            Two distinct labels of any type.
        sample_weight : array-like of shape (n_samples,), default=None
            Initial weights ``D_1`` (normalised); None means ``1/m``. Zero-weight samples
            are never drawn and never count in ``eps_t``.

        Returns
        -------
        self : LLMAdaBoostClassifier
            The fitted ensemble.

        Raises
        ------
        ValueError
            On invalid parameters or input, or when the first learner's weighted error is
            at least 1/2 (nothing better than chance to keep).
        """
        validate_params(self, self._parameter_constraints)
        reset_fitted_attributes(self)
        prototype = clone(self._prototype())
        store = get_store(self.memory)
        if self.sampling == "reweight" and not has_fit_parameter(prototype, "sample_weight"):
            raise ValueError(
                f"sampling='reweight' passes the boosting weights as sample_weight, but "
                f"{type(prototype).__name__}.fit does not accept sample_weight. Use "
                "sampling='resample'."
            )
        X = self._check_X(X, reset=True)
        n = _n_samples(X)
        classes, y_enc = check_binary_target(y, n, estimator=self)
        y_arr = classes[y_enc]
        weights = check_sample_weight(sample_weight, n)
        D = _weights.normalize_weights(np.ones(n) if weights is None else weights)
        base_seed = resolve_seed(self.random_state)
        prefix = self._memory_prefix(prototype, X, y_arr, weights) if store is not None else None

        estimators, alphas, errors, history = [], [], [], []
        stop_reason = None
        progress = tqdm(
            range(self.n_estimators), desc="boosting", disable=not self.verbose, leave=False
        )
        with progress as rounds:
            for t in rounds:
                entry, from_memory = self._load_or_run_round(
                    store, prefix, t, prototype, X, y_arr, y_enc, D, base_seed
                )
                record = dict(entry["history"], cached=from_memory)
                history.append(record)
                self._log_round(record, from_memory)
                if entry["stop_reason"] in _REJECTED:
                    if not estimators:
                        raise ValueError(
                            f"The first weak learner of {type(self).__name__} has a weighted "
                            f"error of {entry['error']:.4f} >= 1/2 ({entry['stop_reason']}): it "
                            "is no better than chance and the ensemble cannot be fit. Train the "
                            "learner longer or with another learning rate."
                        )
                    stop_reason = entry["stop_reason"]
                    break
                estimators.append(entry["learner"])
                alphas.append(entry["alpha"])
                errors.append(entry["error"])
                D = entry["sample_weight"]
                if entry["stop_reason"] == "perfect":
                    stop_reason = "perfect"
                    break

        self.estimator_ = prototype
        self.estimators_ = estimators
        self.estimator_weights_ = np.asarray(alphas, dtype=np.float64)
        self.estimator_errors_ = np.asarray(errors, dtype=np.float64)
        self.classes_ = classes
        self.n_classes_ = 2
        self.stop_reason_ = stop_reason
        self.history_ = history
        if stop_reason is not None:
            logger.info("Boosting stopped after %d round(s): %s", len(history), stop_reason)
        return self

    def _load_or_run_round(self, store, prefix, t, prototype, X, y, y_enc, D, base_seed):
        """Round ``t`` from the memory store when there, else trained (and stored)."""
        if store is None:
            return self._boost_round(t, prototype, X, y, y_enc, D, base_seed), False
        key = fingerprint(prefix, t, D)
        entry = store.load(_MEMORY_VERSION, key)
        if entry is not None:
            return entry, True
        entry = self._boost_round(t, prototype, X, y, y_enc, D, base_seed)
        try:
            store.save(_MEMORY_VERSION, key, entry)
        except OSError as exc:
            warnings.warn(
                f"Could not store boosting round {t + 1} in memory ({exc}); it will be "
                "recomputed next time. Check the memory directory.",
                RuntimeWarning,
                stacklevel=3,
            )
        return entry, False

    def _memory_prefix(self, prototype, X, y, weights):
        params = {
            k: v
            for k, v in self.get_params(deep=False).items()
            if k not in ("estimator", "n_estimators", "memory", "verbose")
        }
        learner_params = {
            k: v for k, v in prototype.get_params(deep=True).items() if k != "verbose"
        }
        data = fingerprint(X, y, weights)
        parts = (
            _MEMORY_VERSION,
            type(self).__qualname__,
            params,
            f"{type(prototype).__module__}.{type(prototype).__qualname__}",
            learner_params,
            data,
        )
        return with_checkpoints(parts, prototype)

    def _log_round(self, record, from_memory):
        logger.info(
            "Round %d: error=%.4f alpha=%s train accuracy=%.3f%s%s",
            record["round"],
            record["error"],
            "rejected" if record["alpha"] is None else f"{record['alpha']:.4f}",
            record["train_accuracy"],
            " (from memory)" if from_memory else f" ({record['fit_seconds']:.1f} s)",
            f" -> stop: {record['stop_reason']}" if record["stop_reason"] else "",
        )

    def _resample(self, rng, D, y_enc):
        n = len(D)
        for _ in range(_MAX_REDRAWS):
            idx = rng.choice(n, size=n, replace=True, p=D)
            if len(np.unique(y_enc[idx])) == 2:
                return idx
        # Weights concentrated on one class: swap in the heaviest sample of the missing class.
        missing = 1 - y_enc[idx[0]]
        candidates = np.flatnonzero((y_enc == missing) & (D > 0))
        if len(candidates) == 0:
            raise ValueError(
                "Every sample of one class has zero weight: a resampled training set cannot "
                "hold both classes. Give both classes positive sample_weight."
            )
        idx[0] = candidates[np.argmax(D[candidates])]
        warnings.warn(
            f"{_MAX_REDRAWS} weighted draws held a single class; one sample of the other class "
            "was swapped in. The boosting weights are very concentrated: try fewer rounds or "
            "sampling='reweight'.",
            RuntimeWarning,
            stacklevel=3,
        )
        return idx

    def _boost_round(self, t, prototype, X, y, y_enc, D, base_seed):
        """Train round ``t``'s learner on ``D`` and run the weight step; returns its entry."""
        rng = np.random.default_rng([base_seed, t])
        learner = clone(prototype)
        if "random_state" in learner.get_params(deep=False):
            learner.set_params(random_state=int(rng.integers(np.iinfo(np.int32).max)))
        start = time.perf_counter()
        if self.sampling == "resample":
            idx = self._resample(rng, D, y_enc)
            learner.fit(take_rows(X, idx), y[idx])
        else:
            learner.fit(X, y, sample_weight=D * len(D))
        fit_seconds = time.perf_counter() - start
        pred = np.asarray(learner.predict(X))
        incorrect = pred != y
        step = _weights.adaboost_step(D, incorrect, learning_rate=self.learning_rate)
        kept = step.stop_reason not in _REJECTED
        return {
            "learner": learner if kept else None,
            "alpha": step.alpha,
            "error": step.error,
            "sample_weight": step.sample_weight,
            "stop_reason": step.stop_reason,
            "history": {
                "round": t + 1,
                "error": step.error,
                "alpha": step.alpha,
                "stop_reason": step.stop_reason,
                "train_accuracy": float(np.mean(~incorrect)),
                "fit_seconds": fit_seconds,
            },
        }

    # --------------------------------------------------------------- prediction
    def _prepare(self, X):
        check_is_fitted(self)
        return self._check_X(X, reset=False)

    def _votes(self, X):
        """Yield each learner's hard votes in {-1, +1} (+1 means ``classes_[1]``)."""
        for learner in self.estimators_:
            yield np.where(np.asarray(learner.predict(X)) == self.classes_[1], 1.0, -1.0)

    def _proba(self, X):
        """Stacked learner probabilities, shape (T, n, 2), columns in ``classes_`` order."""
        out = []
        for learner in self.estimators_:
            proba = np.asarray(learner.predict_proba(X), dtype=np.float64)
            cols = [list(learner.classes_).index(c) for c in self.classes_]
            out.append(proba[:, cols])
        return np.stack(out)

    def decision_function(self, X):
        """The AdaBoost score ``sum_t alpha_t h_t(x)`` with hard votes ``h_t`` in {-1, +1}.

        Parameters
        ----------
        X : sequence of str or one-column DataFrame of shape (n_samples,)
            The texts.

        Returns
        -------
        score : ndarray of shape (n_samples,)
            Positive values predict ``classes_[1]``. Not normalised by ``sum_t alpha_t``.
        """
        X = self._prepare(X)
        return _weights.adaboost_decision(np.stack(list(self._votes(X))), self.estimator_weights_)

    def staged_decision_function(self, X):
        """Yield :meth:`decision_function` of the first ``t = 1, 2, ...`` learners.

        Parameters
        ----------
        X : sequence of str or one-column DataFrame of shape (n_samples,)
            The texts.

        Yields
        ------
        score : ndarray of shape (n_samples,)
            The last equals :meth:`decision_function`.
        """
        X = self._prepare(X)
        yield from _weights.staged_adaboost_decision(
            np.stack(list(self._votes(X))), self.estimator_weights_
        )

    def predict(self, X):
        """Weighted-vote prediction: the sign of :meth:`decision_function` (Algorithm 2).

        It can differ from the argmax of :meth:`predict_proba`, which averages soft scores.

        Parameters
        ----------
        X : sequence of str or one-column DataFrame of shape (n_samples,)
            The texts.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Labels from ``classes_``; a zero score gives ``classes_[0]``.
        """
        score = self.decision_function(X)
        return self.classes_.take((score > 0).astype(int))

    def staged_predict(self, X):
        """Yield :meth:`predict` of the first ``t = 1, 2, ...`` learners.

        Parameters
        ----------
        X : sequence of str or one-column DataFrame of shape (n_samples,)
            The texts.

        Yields
        ------
        y_pred : ndarray of shape (n_samples,)
            The last equals :meth:`predict`.
        """
        for score in self.staged_decision_function(X):
            yield self.classes_.take((score > 0).astype(int))

    def predict_proba(self, X):
        """Soft pseudo-labels: the alpha-weighted mean of the learners' probabilities.

        ``sum_t alpha_t p_t(x) / sum_t alpha_t``, where ``p_t`` is learner ``t``'s
        ``predict_proba``. This is the soft label EnsemW2S gives a student. It is a convex
        combination of the learners' probabilities, not a calibrated AdaBoost probability,
        and its argmax can differ from :meth:`predict` (a weighted vote of hard labels).

        Parameters
        ----------
        X : sequence of str or one-column DataFrame of shape (n_samples,)
            The texts.

        Returns
        -------
        proba : ndarray of shape (n_samples, 2)
            Columns follow ``classes_``; rows sum to 1.
        """
        X = self._prepare(X)
        return _weights.soft_pseudo_labels(self._proba(X), self.estimator_weights_)

    def staged_predict_proba(self, X):
        """Yield :meth:`predict_proba` of the first ``t = 1, 2, ...`` learners.

        Parameters
        ----------
        X : sequence of str or one-column DataFrame of shape (n_samples,)
            The texts.

        Yields
        ------
        proba : ndarray of shape (n_samples, 2)
            The last equals :meth:`predict_proba`.
        """
        X = self._prepare(X)
        yield from _weights.staged_soft_pseudo_labels(self._proba(X), self.estimator_weights_)

    def staged_score(self, X, y, sample_weight=None):
        """Yield the accuracy of :meth:`staged_predict` after each round.

        The paper plots the best round; report every round, since choosing it on test data
        is optimistic.

        Parameters
        ----------
        X : sequence of str or one-column DataFrame of shape (n_samples,)
            The texts.
        y : array-like of shape (n_samples,)
            True labels.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the accuracy.

        Yields
        ------
        score : float
            The last equals :meth:`score`.
        """
        for y_pred in self.staged_predict(X):
            yield accuracy_score(y, y_pred, sample_weight=sample_weight)

    def pseudo_label(self, X, *, soft=False):
        """Pseudo-labels for a strong student trained on hard questions ``X``.

        Parameters
        ----------
        X : sequence of str or one-column DataFrame of shape (n_samples,)
            The (hard) texts to label.
        soft : bool, default=False
            False: hard labels, the weighted vote (:meth:`predict`). True: soft labels, the
            normalised alpha-weighted sum of the rounds' probabilities (:meth:`predict_proba`).

        Returns
        -------
        labels : ndarray of shape (n_samples,) or (n_samples, 2)
            Labels from ``classes_``, or probabilities with columns in ``classes_`` order.
        """
        return self.predict_proba(X) if soft else self.predict(X)
