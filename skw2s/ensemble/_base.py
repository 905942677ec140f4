"""The one boosting loop of skw2s: every weak-side ensemble is this loop and a few hooks.

:class:`BaseWeakEnsemble.fit` owns what every ensemble does the same way, as scikit-learn's
``BaseWeightBoosting.fit`` does:

- parameter validation (``_parameter_constraints``) and the reset of fitted state;
- one per-round seed: round ``t`` draws from ``skw2s._infra.validation.round_rng(seed, t)``, first
  its learner's ``random_state`` and then its resampling, so a round depends on
  ``(seed, t, D_t)`` only;
- the ``memory`` store: a round is stored under a key of its learner's class and parameters,
  the training data, how the learner sees the weights, the seed, ``t`` and its input weights
  ``D_t`` (of the ensemble's own parameters only how its learner sees the weights is in the
  key). The finished consecutive rounds of an earlier fit therefore load instead of
  training, ``n_estimators=5`` after ``3`` trains two rounds, and ensembles that share a round
  share its entry: round 1 of :class:`~skw2s.LLMAdaBoostClassifier` is member 1 of
  :class:`~skw2s.UniformEnsembleClassifier` when both draw their data the same way;
- the accept / reject / perfect rules, read from one step record
  (:class:`skw2s.core.weights.BoostStep`): ``alpha is None`` rejects the round (an error on the
  first round, a stop later), ``stop_reason == "perfect"`` keeps it and stops;
- ``history_``, logging and the progress bar; the fitted arrays, cut to the kept rounds;
- ``combine="learned"``: a held-out part of the training data, and mixture weights fitted on
  it (:func:`skw2s.core.weights.fit_mixture_weights`) after boosting;
- ``combine="router"``: the same held-out part, and a gate fitted on it after boosting
  (``_fit_gate``) that gives every question its own expert weights.

The hooks are declared on :class:`BaseWeakEnsemble` (abstract ones raise
``NotImplementedError``, the others have a documented default); what they pass around is a
:class:`FitData` and a :class:`FitContext`. What the loop needs from a learner, its *learner
protocol*, is checked in ``fit`` before any training (:meth:`BaseWeakEnsemble._check_protocol`)
and stated in ``docs/design.md``.

**Where a new boosting variant goes.** A subclass of :class:`BaseClassifierEnsemble` or
:class:`BaseGeneratorEnsemble` (which add the data checks, the draws and the predictions of
their kind of learner) overrides ``_boost(t, weights, incorrect, context)``, the pure weight
step, and nothing else; a variant that changes how a learner sees the weights overrides
``_resampling()`` or ``_draw``. :class:`~skw2s.UniformEnsembleClassifier` is such a subclass.

The learner is used only through public methods (``fit``, ``predict`` ... and, for
generators, the protocol of :class:`~skw2s.LLMGenerator`); the ensemble never sets a
learner's fitted attributes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from numbers import Integral
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from .._infra.cache import TRACKING_PARAMS, fingerprint, get_store
from ..hf.models import with_checkpoints
from ..hf.tracking import training_run
from .._infra.validation import (
    MEMORY,
    RANDOM_STATE,
    VERBOSE,
    Interval,
    reset_fitted_attributes,
    resolve_seed,
    round_rng,
    spawn_seed,
    validate_params,
)
from ..core.random import holdout_rng
from ..core.weights import fit_mixture_weights, router_features, router_targets
from ..exceptions import PARAMETER_HINT, DivergenceError, FirstLearnerError  # noqa: F401

logger = logging.getLogger(__name__)

__all__ = ["BaseWeakEnsemble", "FirstLearnerError", "FitContext", "FitData"]

ROUNDS_NAMESPACE = "rounds-v2"
"""Store namespace of boosting rounds (the key layout of this version; older entries are never
read)."""


@dataclass
class FitData:
    """The validated training data of one fit (what ``_check_data`` and ``_subset`` return).

    Attributes
    ----------
    X : sequence of str, DataFrame or ndarray
        The inputs, in the learner's format.
    y : ndarray or sequence
        The targets as the learner is fitted on them (classifiers: labels; generators: choice
        indices or answer strings).
    n : int
        The number of rows.
    fingerprint : str
        A fingerprint of the data, part of every round's store key.
    y_enc : ndarray of shape (n,) or None
        Classifier ensembles only: the labels as 0 / 1 (1 is ``classes_[1]``).
    sample_weight : ndarray of shape (n,) or None
        Classifier ensembles only: the checked ``sample_weight`` (None: uniform).
    classes : ndarray of shape (2,) or None
        Classifier ensembles only, from ``_check_data``: the two sorted labels, which
        ``_set_target_attributes`` stores as ``classes_``.
    """

    X: Any
    y: Any
    n: int
    fingerprint: str
    y_enc: Any = None
    sample_weight: Any = None
    classes: Any = None


@dataclass
class FitContext:
    """What the steps of one fit need besides the data (what ``_prepare`` returns).

    The base loop reads no field of it; each kind of ensemble subclasses it with its own
    fields (:class:`skw2s.ensemble._classifier.ClassifierContext`,
    :class:`skw2s.ensemble._generator.GeneratorContext`).
    """


def _check_round(entry, prototype, weights):
    """Raise ``ValueError`` unless a stored round holds a fitted learner of the prototype's
    type and one finite mistake indicator in [0, 1] per weight (see
    :meth:`skw2s._infra.cache.Store.load`)."""
    if not isinstance(entry, dict) or not {"learner", "incorrect", "fit_seconds",
                                           "info"} <= entry.keys():
        raise ValueError(f"a round is a dict of learner, incorrect, fit_seconds and info; got "
                         f"{type(entry).__name__}")
    learner = entry["learner"]
    if type(learner) is not type(prototype):
        raise ValueError(f"the learner is a {type(learner).__name__}, not a "
                         f"{type(prototype).__name__}")
    check_is_fitted(learner)
    incorrect = entry["incorrect"]
    if not isinstance(incorrect, np.ndarray) or incorrect.shape != np.shape(weights):
        raise ValueError(f"the mistakes have shape {np.shape(incorrect)}, not "
                         f"{np.shape(weights)}")
    values = incorrect.astype(np.float64)
    if not np.all(np.isfinite(values)) or values.min(initial=0) < 0 or values.max(initial=0) > 1:
        raise ValueError("the mistakes are not all in [0, 1]")
    if not isinstance(entry["info"], dict):
        raise ValueError("info is not a dict")
    float(entry["fit_seconds"])
def fit_router_gate(proba, gold):
    """The gate of ``combine="router"``, fitted on held-out rows.

    Parameters
    ----------
    proba : ndarray of shape (T, m, K)
        Each learner's probabilities of the ``K`` classes (or choices) of the held-out rows.
    gold : ndarray of shape (m,), int
        The gold class (or choice) of each row.

    Returns
    -------
    gate : LogisticRegression or DummyClassifier
        A logistic regression from :func:`skw2s.core.weights.router_features` to the learner that
        gave each gold label the highest probability (:func:`skw2s.core.weights.router_targets`);
        its ``classes_`` are learner indices. When every row points at one learner (one
        learner, or one that is always best) it is a ``DummyClassifier`` that always trusts
        that learner.
    """
    from sklearn.dummy import DummyClassifier
    from sklearn.linear_model import LogisticRegression

    features = router_features(proba)
    targets = router_targets(proba[:, np.arange(proba.shape[1]), np.asarray(gold)])
    gate = (LogisticRegression(max_iter=1000) if len(np.unique(targets)) > 1
            else DummyClassifier(strategy="prior"))
    return gate.fit(features, targets)


class BaseWeakEnsemble(BaseEstimator):
    """Base of the weak-side ensembles: one ``fit`` loop; subclasses write the hooks.

    Every hook the loop calls is declared here, in the order ``fit`` calls it. ``data`` is
    the :class:`FitData` that ``_check_data`` returns, ``context`` the :class:`FitContext`
    that ``_prepare`` returns. Abstract hooks raise ``NotImplementedError``;
    :class:`~skw2s.ensemble._classifier.BaseClassifierEnsemble` and
    :class:`~skw2s.ensemble._generator.BaseGeneratorEnsemble` write all of them but ``_boost``
    and ``_resampling``, which each variant writes.

    - ``_prototype()`` (abstract): the learner (``estimator``, or the default when it is
      None);
    - ``_check_protocol(prototype)``: the learner protocol (``_learner_methods``,
      ``_learner_params``), checked before anything is trained; ``_check_learner(prototype)``:
      a clear error when the learner cannot serve the settings (default: none);
    - ``_check_data(X, y, sample_weight)`` (abstract): the validated :class:`FitData`, with no
      side effect on the ensemble but the input-feature attributes (``n_features_in_``);
      ``_set_target_attributes(data)``: the fitted attributes that describe the targets
      (default: none; classifiers set ``classes_``);
    - ``_subset(data, rows)`` (abstract): the rows of the data, for the held-out part of
      ``combine="learned"`` and ``"router"``;
    - ``_prepare(data, prototype, store)``: what the steps need before round 1 (the
      pre-trained error, lengths ...); returns ``context`` (default: an empty
      :class:`FitContext`);
    - ``_initial_weights(data, context)`` (abstract): ``D_1``;
    - ``_resampling()`` (abstract): whether a learner trains on a weighted draw of the data
      (True) or sees the weights, or all the data (False); part of every round's key;
    - ``_draw(weights, data, context, rng)`` (abstract): how round ``t``'s learner sees
      ``D_t``; returns ``(fit_kwargs, info)``;
    - ``_fit_learner(learner, data, fit_kwargs, context)`` (abstract): train it; then
      ``_check_fitted_learner(learner)`` checks ``_learner_fitted_attributes``;
    - ``_mistakes(learner, data)`` (abstract): its mistakes on the training data, in [0, 1];
    - ``_boost(t, weights, incorrect, context)`` (abstract): the weight step, a
      :class:`skw2s.core.weights.BoostStep`;
    - ``_round_record(entry, data, context)``: extra ``history_`` fields of a round
      (default: none);
    - ``_first_round_error(step, context)``: the message of the error a rejected first round
      raises (default: a generic one);
    - ``_accept(learner, t, kept, context)``: a kept learner, before it joins ``estimators_``
      (default: the learner as it is);
    - ``_finish(data, context, weights)``: extra fitted attributes (default: none);
    - ``_likelihoods(learners, data)`` (abstract): the probability of each held-out gold label
      under each learner, for ``combine="learned"``;
    - ``_fit_gate(learners, data)`` (abstract): the fitted gate of ``combine="router"``
      (:func:`fit_router_gate` on the learners' probabilities of the held-out rows).

    ``_likelihoods`` and ``_fit_gate`` are called only when the ensemble has a ``combine``
    parameter that holds rows out (``_holds_out``).
    """

    _base_constraints = {
        "n_estimators": [Interval(Integral, 1, None, closed="left")],
        "random_state": [RANDOM_STATE],
        "memory": [MEMORY],
        "verbose": VERBOSE,
    }

    _learner_methods = ("fit",)
    """The public methods the loop and the ensemble's inference call on a learner."""

    _learner_params = ()
    """The parameters (``get_params(deep=False)`` keys) the ensemble reads or sets on a
    learner; ``random_state`` is set when the learner has it, and is not required."""

    _learner_fitted_attributes = ()
    """The fitted attributes the ensemble reads on a trained learner."""

    # -- the hooks, in the order fit calls them -----------------------------------------
    def _prototype(self):
        """The unfitted learner every round clones: ``estimator``, or the default learner."""
        raise NotImplementedError

    def _check_protocol(self, prototype):
        """Raise ``TypeError`` naming what the learner lacks of the protocol.

        Checks the methods (``_learner_methods``), scikit-learn's ``get_params`` and
        ``set_params`` (every round clones the learner) and the parameters
        (``_learner_params``). The fitted attributes are checked on each trained learner
        (:meth:`_check_fitted_learner`).
        """
        name = type(prototype).__name__
        missing = [m for m in ("get_params", "set_params", *self._learner_methods)
                   if not callable(getattr(prototype, m, None))]
        if missing:
            raise TypeError(
                f"{type(self).__name__} cannot use {name} as its learner: it has no method "
                f"{', '.join(missing)}. A learner needs {', '.join(self._learner_methods)} and "
                "scikit-learn's get_params / set_params (see 'The learner protocol' in "
                "docs/design.md)."
            )
        params = prototype.get_params(deep=False)
        missing = [p for p in self._learner_params if p not in params]
        if missing:
            raise TypeError(
                f"{type(self).__name__} cannot use {name} as its learner: it has no parameter "
                f"{', '.join(missing)} (get_params). A learner needs the parameters "
                f"{', '.join(self._learner_params)} (see 'The learner protocol' in "
                "docs/design.md)."
            )

    def _check_learner(self, prototype):
        """Raise ``ValueError`` when the learner cannot serve this ensemble's settings."""

    def _check_data(self, X, y, sample_weight):
        """The validated training data, a :class:`FitData`. It sets no fitted attribute but
        the input-feature ones (``n_features_in_``, ``feature_names_in_``)."""
        raise NotImplementedError

    def _set_target_attributes(self, data):
        """Set the fitted attributes that describe the targets (classifiers: ``classes_``);
        by default none."""

    def _subset(self, data, rows):
        """The :class:`FitData` of the given rows (indices into ``data``)."""
        raise NotImplementedError

    def _prepare(self, data, prototype, store):
        """The :class:`FitContext` of this fit: what the steps need before round 1. By default
        an empty one."""
        return FitContext()

    def _initial_weights(self, data, context):
        """``D_1``: the weights of round 1, non-negative, summing to 1."""
        raise NotImplementedError

    def _resampling(self):
        """True when a learner trains on a weighted draw of the data, False when it sees the
        weights (or, for the uniform controls, all the data)."""
        raise NotImplementedError

    def _draw(self, weights, data, context, rng):
        """How round ``t``'s learner sees ``D_t``: ``(fit_kwargs, info)``, where
        ``fit_kwargs`` go to ``_fit_learner`` and ``info`` (a dict) to the round's entry. Draws
        from ``rng`` only (after the learner's ``random_state``)."""
        raise NotImplementedError

    def _fit_learner(self, learner, data, fit_kwargs, context):
        """Train ``learner`` (a fresh clone) on the data as ``fit_kwargs`` say; return it."""
        raise NotImplementedError

    def _check_fitted_learner(self, learner):
        """Raise ``TypeError`` naming the fitted attributes (``_learner_fitted_attributes``) a
        trained learner lacks."""
        missing = [a for a in self._learner_fitted_attributes if not hasattr(learner, a)]
        if missing:
            raise TypeError(
                f"{type(self).__name__} needs the fitted attribute(s) {', '.join(missing)} of "
                f"its learner, which {type(learner).__name__}.fit did not set (see 'The "
                "learner protocol' in docs/design.md)."
            )

    def _mistakes(self, learner, data):
        """The trained learner's mistakes on all the training data: one value in [0, 1] per
        weight of ``D_t``."""
        raise NotImplementedError

    def _boost(self, t, weights, incorrect, context):
        """The weight step of round ``t``: a :class:`skw2s.core.weights.BoostStep` from
        ``D_t`` and the round's mistakes."""
        raise NotImplementedError

    def _round_record(self, entry, data, context):
        """Extra ``history_`` fields of a round (a dict); by default none."""
        return {}

    def _first_round_error(self, step, context):
        """The message of the :class:`FirstLearnerError` a rejected first round raises."""
        return (
            f"The first weak learner of {type(self).__name__} has a weighted error of "
            f"{step.error:.4f} ({step.stop_reason}): it is no better than the rule allows, and "
            "the ensemble cannot be fit. Train the learner longer or with another learning rate "
            f"{PARAMETER_HINT}."
        )

    def _accept(self, learner, t, kept, context):
        """The learner of kept round ``t`` as it joins ``estimators_`` (``kept``: the learners
        kept before it); by default the learner itself."""
        return learner

    def _finish(self, data, context, weights):
        """Set extra fitted attributes after the last round (``weights``: the final ``D``);
        by default none."""

    def _likelihoods(self, learners, data):
        """``(T, m)``: each learner's probability of each held-out gold label or token, for
        ``combine="learned"``."""
        raise NotImplementedError

    def _fit_gate(self, learners, data):
        """The fitted gate of ``combine="router"`` on the held-out data."""
        raise NotImplementedError

    # -- helpers of the loop ------------------------------------------------------------
    def _draw_key(self):
        """How a learner sees ``D_t``, for round keys (from ``_resampling()``)."""
        return "resample" if self._resampling() else "weights"

    def _learned(self):
        return getattr(self, "combine", None) == "learned"

    def _holds_out(self):
        """Whether the combination is fitted on held-out rows (``"learned"``, ``"router"``)."""
        return getattr(self, "combine", None) in ("learned", "router")

    def _per_question(self):
        """Whether every question gets its own expert weights (``"confidence"``,
        ``"router"``)."""
        return getattr(self, "combine", None) in ("confidence", "router")

    # -- fit ----------------------------------------------------------------------------
    def fit(self, X, y, sample_weight=None):
        """Boost at most ``n_estimators`` learners on the training data.

        Parameters
        ----------
        X : sequence of str, DataFrame or array-like
            The training inputs, in the format of the learner.
        y : array-like of shape (n_samples,)
            The training targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Initial weights ``D_1`` of the samples (normalised); None means uniform. Not
            every ensemble accepts them (see the subclass).

        Returns
        -------
        self : object
            The fitted ensemble.

        Raises
        ------
        ValueError
            On invalid parameters or input, or when the first round is rejected (there is no
            learner to keep).
        """
        validate_params(self)
        reset_fitted_attributes(self)
        prototype = self._prototype()
        self._check_protocol(prototype)
        prototype = clone(prototype)
        self._check_learner(prototype)
        data = self._check_data(X, y, sample_weight)
        self._set_target_attributes(data)
        seed = resolve_seed(self.random_state)
        holdout = None
        if self._holds_out():
            data, holdout = self._split_holdout(data, seed)
        store = get_store(self.memory)
        context = self._prepare(data, prototype, store)
        weights = self._initial_weights(data, context)
        key_parts = self._round_key_parts(prototype, data) if store is not None else None

        kept, alphas, errors, history = [], [], [], []
        stop_reason = None
        rounds = tqdm(
            range(1, self.n_estimators + 1), desc="boosting", disable=not self.verbose,
            leave=False,
        )
        for t in rounds:
            try:
                entry, cached = self._load_or_train(store, key_parts, t, seed, prototype, data,
                                                    context, weights)
            except DivergenceError as error:
                raise error.within(f"{type(self).__name__} round {t}") from None
            step = self._boost(t, weights, entry["incorrect"], context)
            record = {
                "round": t,
                "error": float(step.error),
                "alpha": None if step.alpha is None else float(step.alpha),
                "stop_reason": step.stop_reason,
                "fit_seconds": float(entry["fit_seconds"]),
                "cached": cached,
                **self._round_record(entry, data, context),
            }
            history.append(record)
            self._log_round(record)
            if step.alpha is None:
                if not kept:
                    raise FirstLearnerError(self._first_round_error(step, context))
                stop_reason = step.stop_reason
                break
            kept.append(self._accept(entry["learner"], t, kept, context))
            alphas.append(float(step.alpha))
            errors.append(float(step.error))
            weights = step.weights
            if step.stop_reason is not None:
                stop_reason = step.stop_reason
                break
        rounds.close()

        self.estimator_ = prototype
        self.estimators_ = kept
        self.estimator_weights_ = np.asarray(alphas, dtype=np.float64)
        self.estimator_errors_ = np.asarray(errors, dtype=np.float64)
        self.stop_reason_ = stop_reason
        self.history_ = history
        self._finish(data, context, weights)
        if holdout is not None and self._learned():
            self.combination_weights_ = fit_mixture_weights(self._likelihoods(kept, holdout))
        elif holdout is not None:
            self.gate_ = self._fit_gate(kept, holdout)
        logger.info(
            "%s: %d learner(s) kept of %d round(s) run; stop reason: %s",
            type(self).__name__, len(kept), len(history), stop_reason,
        )
        return self

    def _mixture_weights(self, n_learners=None):
        """The weights inference mixes the learners with: the learned ones under
        ``combine="learned"``, else ``estimator_weights_`` (the first ``n_learners``)."""
        k = len(self.estimators_) if n_learners is None else n_learners
        if self._learned():
            w = self.combination_weights_[:k]
            return w if w.sum() > 0 else np.full(k, 1.0 / k)
        return self.estimator_weights_[:k]

    def _split_holdout(self, data, seed):
        """``(training part, held-out part)`` of the data for ``combine="learned"`` or
        ``"router"``."""
        n_hold = int(round(self.validation_fraction * data.n))
        if n_hold < 1 or n_hold >= data.n:
            raise ValueError(
                f"validation_fraction={self.validation_fraction} of {data.n} training rows "
                f"leaves no held-out row (or nothing to train on) for combine={self.combine!r}."
            )
        order = holdout_rng(seed).permutation(data.n)
        hold, train = np.sort(order[:n_hold]), np.sort(order[n_hold:])
        return self._subset(data, train), self._subset(data, hold)

    # -- one round ----------------------------------------------------------------------
    def _round_key_parts(self, prototype, data):
        params = {k: v for k, v in prototype.get_params(deep=True).items()
                  if k not in TRACKING_PARAMS | {"random_state"}}
        seed_key = self.random_state if isinstance(self.random_state, Integral) else None
        parts = (
            ROUNDS_NAMESPACE,
            f"{type(prototype).__module__}.{type(prototype).__qualname__}",
            sorted(params.items(), key=lambda kv: kv[0]),
            self._draw_key(),
            data.fingerprint,
            seed_key,
        )
        return with_checkpoints(parts, prototype)

    def _load_or_train(self, store, key_parts, t, seed, prototype, data, context, weights):
        """Round ``t``'s entry ``{"learner", "incorrect", "fit_seconds", "info"}``, from the
        store when it is there, else trained (and stored)."""
        key = fingerprint(*key_parts, t, weights) if store is not None else None
        if store is not None:
            entry = store.load(ROUNDS_NAMESPACE, key,
                               check=lambda e: _check_round(e, prototype, weights))
            if entry is not None:
                return entry, True
        rng = round_rng(seed, t)
        learner = clone(prototype)
        if "random_state" in learner.get_params(deep=False):
            learner.set_params(random_state=spawn_seed(rng))
        fit_kwargs, info = self._draw(weights, data, context, rng)
        start = time.perf_counter()
        with training_run(f"round{t}"):  # the name its training run logs under
            learner = self._fit_learner(learner, data, fit_kwargs, context)
        fit_seconds = time.perf_counter() - start
        self._check_fitted_learner(learner)
        incorrect = np.asarray(self._mistakes(learner, data), dtype=np.float64)
        entry = {"learner": learner, "incorrect": incorrect, "fit_seconds": fit_seconds,
                 "info": info}
        if store is not None:
            store.save(ROUNDS_NAMESPACE, key, entry)
        return entry, False

    def _log_round(self, record):
        logger.info(
            "Round %d: error=%.4f alpha=%s%s%s",
            record["round"],
            record["error"],
            "rejected" if record["alpha"] is None else f"{record['alpha']:.4f}",
            " (from memory)" if record["cached"] else f" ({record['fit_seconds']:.1f} s)",
            f" -> stop: {record['stop_reason']}" if record["stop_reason"] else "",
        )

    def __sklearn_is_fitted__(self):
        return hasattr(self, "estimators_")
