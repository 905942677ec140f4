"""What the binary classifier ensembles share: data checks, draws, combination and predictions.

The boosting loop is :class:`skw2s.ensemble._base.BaseWeakEnsemble`; the weight steps are in
the subclasses (:class:`~skw2s.LLMAdaBoostClassifier`,
:class:`~skw2s.UniformEnsembleClassifier`).
"""

from __future__ import annotations

import warnings
from numbers import Real
from dataclasses import dataclass

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.metrics import accuracy_score
from sklearn.utils import get_tags
from sklearn.utils.validation import check_is_fitted, has_fit_parameter, validate_data

from ..core import weights as _weights
from .._infra.cache import fingerprint
from .._infra.validation import (
    NONE,
    HasMethods,
    Interval,
    StrOptions,
    check_binary_target,
    check_sample_weight,
    check_text_input,
    take_rows,
)
from ._base import PARAMETER_HINT, BaseWeakEnsemble, FitContext, FitData, fit_router_gate

__all__ = ["BaseClassifierEnsemble", "ClassifierContext"]

_MAX_REDRAWS = 20

LEARNER_METHODS = ("fit", "predict", "predict_proba")
"""The public methods a classifier ensemble calls on its learner (see ``docs/design.md``)."""


@dataclass
class ClassifierContext(FitContext):
    """The context of a classifier ensemble's fit.

    Attributes
    ----------
    takes_weights : bool
        Whether the learner's ``fit`` accepts ``sample_weight``.
    """

    takes_weights: bool


def _n_samples(X):
    return len(X) if isinstance(X, list) else X.shape[0]


class BaseClassifierEnsemble(ClassifierMixin, BaseWeakEnsemble):
    """A weighted ensemble of binary classifiers, fitted by the one boosting loop.

    Subclasses write ``_boost`` (the weight step) and ``_resampling``. This class gives the
    data checks, the draws (a weighted resample, or the weights as ``sample_weight``), the
    learned combination, and every prediction method:

    - :meth:`decision_function` ``sum_t w_t h_t(x)`` with hard votes ``h_t`` in {-1, +1}, and
      :meth:`predict` its sign (Algorithm 2);
    - :meth:`predict_proba`, the soft pseudo-label ``sum_t w_t p_t(x) / sum_t w_t``;
    - their ``staged_*`` versions over the first ``t`` learners.

    ``w_t`` is ``estimator_weights_``, or ``combination_weights_`` with ``combine="learned"``,
    where :meth:`predict` is the argmax of :meth:`predict_proba` (the probability mixture the
    weights were fitted for) and :meth:`decision_function` its log-odds. With
    ``combine="confidence"`` or ``"router"`` every question ``x`` has its own weights
    ``w_t(x)`` (:meth:`question_weights`), and :meth:`predict` and :meth:`decision_function`
    read the mixture ``sum_t w_t(x) p_t(x)`` the same way.
    """

    _parameter_constraints = {
        **BaseWeakEnsemble._base_constraints,
        "estimator": [HasMethods(LEARNER_METHODS), NONE],
        "combine": [StrOptions(("vote", "learned", "confidence", "router"))],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
    }
    _learner_methods = LEARNER_METHODS
    _learner_fitted_attributes = ("classes_",)

    def _prototype(self):
        from ..estimators.classifier import LLMClassifier

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

    def _text_input(self):
        tags = get_tags(self._prototype()).input_tags
        return tags.string and not tags.two_d_array

    def _check_X(self, X, *, reset):
        if self._text_input():
            return check_text_input(X, estimator=self)
        allow_nan = get_tags(self._prototype()).input_tags.allow_nan
        return validate_data(self, X, reset=reset, ensure_all_finite=not allow_nan)

    # -- the hooks of the boosting loop ---------------------------------------------------
    def _check_data(self, X, y, sample_weight):
        X = self._check_X(X, reset=True)
        n = _n_samples(X)
        classes, y_enc = check_binary_target(y, n, estimator=self)
        weights = check_sample_weight(sample_weight, n)
        return FitData(
            X=X, y=classes[y_enc], y_enc=y_enc, n=n, sample_weight=weights,
            fingerprint=fingerprint(X, classes[y_enc], weights), classes=classes,
        )

    def _set_target_attributes(self, data):
        self.classes_ = data.classes
        self.n_classes_ = 2

    def _subset(self, data, rows):
        X, y = take_rows(data.X, rows), data.y[rows]
        weights = None if data.sample_weight is None else data.sample_weight[rows]
        return FitData(
            X=X, y=y, y_enc=data.y_enc[rows], n=len(rows), sample_weight=weights,
            fingerprint=fingerprint(X, y, weights), classes=data.classes,
        )

    def _check_learner(self, prototype):
        if not self._resampling() and self._passes_weights() and not has_fit_parameter(
            prototype, "sample_weight"
        ):
            raise ValueError(
                f"{type(self).__name__} passes the boosting weights as sample_weight, but "
                f"{type(prototype).__name__}.fit does not accept sample_weight. Use "
                "sampling='resample'."
            )

    def _prepare(self, data, prototype, store):
        return ClassifierContext(takes_weights=has_fit_parameter(prototype, "sample_weight"))

    def _passes_weights(self):
        """Whether a learner that sees the weights must accept ``sample_weight``."""
        return True

    def _initial_weights(self, data, context):
        n = data.n
        return _weights.normalize_weights(
            np.ones(n) if data.sample_weight is None else data.sample_weight
        )

    def _draw(self, weights, data, context, rng):
        if self._resampling():
            return {"rows": self._resample(rng, weights, data.y_enc)}, {}
        if context.takes_weights:
            return {"sample_weight": weights * data.n}, {}
        return {}, {}

    def _fit_learner(self, learner, data, fit_kwargs, context):
        if "rows" in fit_kwargs:
            rows = fit_kwargs["rows"]
            return learner.fit(take_rows(data.X, rows), data.y[rows])
        return learner.fit(data.X, data.y, **fit_kwargs)

    def _mistakes(self, learner, data):
        return np.asarray(learner.predict(data.X)) != data.y

    def _round_record(self, entry, data, context):
        return {"train_accuracy": float(1.0 - np.mean(entry["incorrect"]))}

    def _fit_gate(self, learners, data):
        return fit_router_gate(self._proba_of(learners, data.X), data.y_enc)

    def _question_weights_of(self, proba, n_first=None):
        """Per-question weights ``(n, t)`` of the first ``t`` learners, from all learners'
        stacked probabilities ``proba`` (T, n, 2)."""
        t = proba.shape[0] if n_first is None else n_first
        if self.combine == "confidence":
            return _weights.confidence_weights(proba[:t], self.estimator_weights_[:t])
        features = _weights.router_features(proba)
        return _weights.gate_weights(self.gate_, features, proba.shape[0], t)

    def question_weights(self, X):
        """Every question's weights over the learners (``combine="confidence"`` or
        ``"router"``).

        Parameters
        ----------
        X : sequence of str or one-column DataFrame of shape (n_samples,)
            The texts.

        Returns
        -------
        weights : ndarray of shape (n_samples, n_learners)
            Non-negative; every row sums to 1. ``"confidence"``: ``alpha_t c_t(x)``
            normalised, with ``c_t(x)`` the probability learner ``t`` gives its own answer.
            ``"router"``: the gate's probabilities that each learner is the one to trust.

        Raises
        ------
        ValueError
            With another ``combine``, whose weights do not depend on the question.
        """
        if not self._per_question():
            raise ValueError(
                f'question_weights needs combine="confidence" or "router"; this ensemble has '
                f"combine={self.combine!r}, whose weights are the same for every question."
            )
        X = self._prepare_X(X)
        return self._question_weights_of(self._proba_of(self.estimators_, X))

    def _likelihoods(self, learners, data):
        proba = self._proba_of(learners, data.X)
        return np.clip(proba[:, np.arange(data.n), data.y_enc], 1e-12, None)

    def _first_round_error(self, step, context):
        return (
            f"The first weak learner of {type(self).__name__} has a weighted error of "
            f"{step.error:.4f} >= 1/2 ({step.stop_reason}): it is no better than chance and the "
            "ensemble cannot be fit. Train the learner longer or with another learning rate "
            f"{PARAMETER_HINT}."
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
            stacklevel=5,
        )
        return idx

    # -- prediction -------------------------------------------------------------------
    def _prepare_X(self, X):
        check_is_fitted(self)
        return self._check_X(X, reset=False)

    def _votes(self, X):
        """Stacked hard votes in {-1, +1}, shape (T, n) (+1 means ``classes_[1]``)."""
        return np.stack([
            np.where(np.asarray(learner.predict(X)) == self.classes_[1], 1.0, -1.0)
            for learner in self.estimators_
        ])

    def _proba_of(self, learners, X):
        """Stacked learner probabilities, shape (T, n, 2), columns in ``classes_`` order."""
        out = []
        for learner in learners:
            proba = np.asarray(learner.predict_proba(X), dtype=np.float64)
            cols = [list(learner.classes_).index(c) for c in self.classes_]
            out.append(proba[:, cols])
        return np.stack(out)

    def _staged_scores(self, X):
        """Yield the decision function of each prefix of the learners."""
        if self._learned() or self._per_question():
            for proba in self._staged_proba(X):
                with np.errstate(divide="ignore"):
                    yield np.log(proba[:, 1]) - np.log(proba[:, 0])
            return
        yield from _weights.staged_adaboost_decision(self._votes(X), self._mixture_weights())

    def _staged_proba(self, X):
        proba = self._proba_of(self.estimators_, X)
        if self._per_question():
            for t in range(1, len(self.estimators_) + 1):
                yield _weights.mix_per_question(proba[:t], self._question_weights_of(proba, t))
            return
        if self._learned():
            for t in range(1, len(self.estimators_) + 1):
                yield _weights.soft_pseudo_labels(proba[:t], self._mixture_weights(t))
            return
        yield from _weights.staged_soft_pseudo_labels(proba, self._mixture_weights())

    def decision_function(self, X):
        """The ensemble's score ``sum_t w_t h_t(x)``, with hard votes ``h_t`` in {-1, +1}.

        Parameters
        ----------
        X : sequence of str or one-column DataFrame of shape (n_samples,)
            The texts (or a numeric array when the learner takes one).

        Returns
        -------
        score : ndarray of shape (n_samples,)
            Positive values predict ``classes_[1]``. Not normalised by ``sum_t w_t``. With
            ``combine="learned"``: the log-odds of :meth:`predict_proba`.
        """
        X = self._prepare_X(X)
        for score in self._staged_scores(X):
            pass
        return score

    def staged_decision_function(self, X):
        """Yield :meth:`decision_function` of the first ``t = 1, 2, ...`` learners.

        Parameters
        ----------
        X : sequence of str or one-column DataFrame of shape (n_samples,)
            The texts.

        Yields
        ------
        score : ndarray of shape (n_samples,)
            The last equals :meth:`decision_function` (the same sums, in the same order).
        """
        X = self._prepare_X(X)
        yield from self._staged_scores(X)

    def predict(self, X):
        """Weighted-vote prediction: the sign of :meth:`decision_function` (Algorithm 2).

        It can differ from the argmax of :meth:`predict_proba`, which averages soft scores
        (except with ``combine="learned"``, where both read the probability mixture).

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
        """Soft pseudo-labels: the weighted mean of the learners' probabilities.

        ``sum_t w_t p_t(x) / sum_t w_t``, where ``p_t`` is learner ``t``'s ``predict_proba``.
        This is the soft label EnsemW2S gives a student: a convex combination of the
        learners' probabilities, not a calibrated AdaBoost probability.

        Parameters
        ----------
        X : sequence of str or one-column DataFrame of shape (n_samples,)
            The texts.

        Returns
        -------
        proba : ndarray of shape (n_samples, 2)
            Columns follow ``classes_``; rows sum to 1.
        """
        X = self._prepare_X(X)
        for proba in self._staged_proba(X):
            pass
        return proba

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
        X = self._prepare_X(X)
        yield from self._staged_proba(X)

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

    def round_predictions(self, X):
        """Every round's prediction and every learner's own, from one pass over the learners.

        Parameters
        ----------
        X : sequence of str or one-column DataFrame of shape (n_samples,)
            The texts.

        Returns
        -------
        out : dict
            ``"staged"``: a list of :meth:`staged_predict`'s arrays (the ensemble of the first
            ``t`` learners); ``"staged_proba"``: the same for :meth:`staged_predict_proba`;
            ``"members"``: each learner's own ``predict``. The last stage equals
            :meth:`predict` and :meth:`predict_proba`.
        """
        X = self._prepare_X(X)
        votes = self._votes(X)
        proba = self._proba_of(self.estimators_, X)
        members = [self.classes_.take((v > 0).astype(int)) for v in votes]
        if self._per_question():
            staged_proba = [
                _weights.mix_per_question(proba[:t], self._question_weights_of(proba, t))
                for t in range(1, len(self.estimators_) + 1)
            ]
            scores = [np.log(p[:, 1]) - np.log(p[:, 0]) for p in staged_proba]
        elif self._learned():
            staged_proba = [_weights.soft_pseudo_labels(proba[:t], self._mixture_weights(t))
                            for t in range(1, len(self.estimators_) + 1)]
            scores = [np.log(p[:, 1]) - np.log(p[:, 0]) for p in staged_proba]
        else:
            staged_proba = list(_weights.staged_soft_pseudo_labels(proba, self._mixture_weights()))
            scores = list(_weights.staged_adaboost_decision(votes, self._mixture_weights()))
        staged = [self.classes_.take((s > 0).astype(int)) for s in scores]
        return {"staged": staged, "staged_proba": staged_proba, "members": members}

    def pseudo_label(self, X, *, soft=False):
        """Pseudo-labels for a strong student trained on hard questions ``X``.

        Parameters
        ----------
        X : sequence of str or one-column DataFrame of shape (n_samples,)
            The (hard) texts to label.
        soft : bool, default=False
            False: hard labels (:meth:`predict`). True: soft labels, the weighted mean of the
            learners' probabilities (:meth:`predict_proba`).

        Returns
        -------
        labels : ndarray of shape (n_samples,) or (n_samples, 2)
            Labels from ``classes_``, or probabilities with columns in ``classes_`` order.
        """
        return self.predict_proba(X) if soft else self.predict(X)
