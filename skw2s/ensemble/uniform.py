"""The multi-teacher controls: T weak learners with independent seeds and equal weights.

Does boosting's weighting beat simply having T weak models? These ensembles answer it. Each is
one small subclass of the boosting loop: its weight step keeps ``D`` uniform and gives every
learner the weight 1, so round ``t`` differs from round 1 only by its seed (and, with
``bootstrap=True``, by its draw of the data: bagging).

Pairing. Round ``t`` of any skw2s ensemble draws from ``default_rng([seed, t - 1])``, and
round 1 of a boosting ensemble sees uniform weights, so member 1 of a uniform ensemble is
round 1 of the boosting ensemble with the same learner and seed when both draw the data the
same way: ``bootstrap=True`` with ``LLMAdaBoostClassifier(sampling="resample")`` or
:class:`~skw2s.TokenAdaBoostGenerator`, ``bootstrap=False`` with
``LLMAdaBoostClassifier(sampling="reweight")``. With a shared ``memory`` they share the
stored round.
"""

from __future__ import annotations

import numpy as np

from .._infra.validation import InstanceOf
from ..core.weights import BoostStep, weighted_error
from ._classifier import BaseClassifierEnsemble
from ._generator import BaseGeneratorEnsemble

__all__ = ["UniformEnsembleClassifier", "UniformEnsembleGenerator"]

_BOOL = [InstanceOf((bool, np.bool_), "a bool")]


def _uniform_step(weights, incorrect):
    """Weight 1 for every learner and ``D`` left as it is (uniform): no boosting."""
    return BoostStep(weights, 1.0, weighted_error(weights, np.asarray(incorrect, float)), None)


class UniformEnsembleClassifier(BaseClassifierEnsemble):
    """The uniform control of :class:`~skw2s.LLMAdaBoostClassifier`: T classifiers, equal weights.

    Every member trains on the same data with its own seed (or, with ``bootstrap=True``, on a
    uniform resample of it: bagging). :meth:`predict` is the majority vote and
    :meth:`predict_proba` the mean of the members' probabilities.

    Parameters
    ----------
    estimator : estimator object, default=None
        The learner, cloned for every member (with the member's own ``random_state``). None
        means ``LLMClassifier()``.
    n_estimators : int, default=10
        Number of members (all are kept).
    bootstrap : bool, default=False
        Train each member on ``m`` rows drawn with replacement (bagging) instead of on all the
        rows. ``True`` pairs member 1 with round 1 of ``LLMAdaBoostClassifier(sampling=
        "resample")``; ``False`` with ``sampling="reweight"``.
    combine : {"vote", "learned", "confidence", "router"}, default="vote"
        ``"vote"``: equal weights. ``"learned"``: global weights fitted on a held-out
        ``validation_fraction`` of the data. ``"confidence"``: per question, each member's
        weight is its own confidence (all ``alpha_t`` are 1). ``"router"``: per question,
        from a gate fitted on the held-out rows. See :class:`~skw2s.LLMAdaBoostClassifier`.
    validation_fraction : float, default=0.1
        Held-out share of the data with ``combine="learned"`` or ``"router"`` (unused
        otherwise).
    random_state : int, RandomState instance or None, default=None
        Member ``t`` draws its learner's seed (and its bootstrap rows) from
        ``numpy.random.default_rng([seed, t - 1])``.
    memory : str, path-like, joblib.Memory or None, default=None
        Where finished members are stored, keyed as boosting rounds are (so a member shared
        with a boosting ensemble is trained once).
    verbose : int, default=0
        Progress bar over members when positive.

    Attributes
    ----------
    estimator_ : estimator object
        The unfitted prototype.
    estimators_ : list of estimators
        The fitted members.
    estimator_weights_ : ndarray of shape (n_estimators,)
        All ones.
    estimator_errors_ : ndarray of shape (n_estimators,)
        Each member's (unweighted) training error.
    combination_weights_ : ndarray of shape (n_estimators,)
        With ``combine="learned"`` only: the learned weights.
    gate_ : LogisticRegression or DummyClassifier
        With ``combine="router"`` only: the fitted gate (its ``classes_`` are member indices).
    classes_ : ndarray of shape (2,)
        The two labels, sorted.
    n_classes_ : int
        Always 2.
    stop_reason_ : None
        Always None: every member is kept.
    history_ : list of dict
        One dict per member: ``round``, ``error``, ``alpha`` (1.0), ``stop_reason``,
        ``train_accuracy``, ``fit_seconds`` and ``cached``.
    n_features_in_ : int
        Only for learners that take numeric 2-D input.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Only for numeric input given as a DataFrame with string column names.

    See Also
    --------
    LLMAdaBoostClassifier : The boosted ensemble this one controls for.
    sklearn.ensemble.BaggingClassifier : Bagging of numeric estimators.
    """

    _parameter_constraints = {**BaseClassifierEnsemble._parameter_constraints, "bootstrap": _BOOL}

    def __init__(self, estimator=None, *, n_estimators=10, bootstrap=False, combine="vote",
                 validation_fraction=0.1, random_state=None, memory=None, verbose=0):
        self.estimator = estimator
        self.n_estimators = n_estimators
        self.bootstrap = bootstrap
        self.combine = combine
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.memory = memory
        self.verbose = verbose

    def _resampling(self):
        return bool(self.bootstrap)

    def _passes_weights(self):
        return False

    def _boost(self, t, weights, incorrect, context):
        return _uniform_step(weights, incorrect)


class UniformEnsembleGenerator(BaseGeneratorEnsemble):
    """The uniform control of :class:`~skw2s.TokenAdaBoostGenerator`: T experts, equal weights.

    Every member is fine-tuned from the pre-trained weights with its own seed, on all answer
    tokens (or, with ``bootstrap=True``, on ``n`` tokens drawn uniformly with replacement, as
    round 1 of token boosting draws them). Answers come from the equal-weight mixture (eq. 1).

    Parameters
    ----------
    estimator : LLMGenerator or compatible estimator, default=None
        The learner, cloned for every member. None means ``LLMGenerator()``.
    n_estimators : int, default=5
        Number of members (all are kept).
    bootstrap : bool, default=False
        Draw each member's training tokens with replacement (token-level bagging). ``True``
        pairs member 1 with round 1 of :class:`~skw2s.TokenAdaBoostGenerator`.
    combine : {"prob", "logit", "learned", "confidence", "router"}, default="prob"
        Mix the experts' probabilities (eq. 1) or their logits with equal weights; or
        ``"learned"``: probabilities by global weights fitted on a held-out
        ``validation_fraction`` of the data; or ``"confidence"``: probabilities weighted at
        every token step by each expert's own confidence there; or ``"router"`` (multiple
        choice): per question, by a gate fitted on the held-out rows (see
        :class:`~skw2s.TokenAdaBoostGenerator`).
    validation_fraction : float, default=0.1
        Held-out share of the data with ``combine="learned"`` or ``"router"`` (unused
        otherwise).
    random_state : int, RandomState instance or None, default=None
        Member ``t`` draws its learner's seed (and its token draw) from
        ``numpy.random.default_rng([seed, t - 1])``.
    memory : str, path-like, joblib.Memory or None, default=None
        Where finished members are stored, keyed as boosting rounds are.
    verbose : int, default=0
        Progress bars when positive.

    Attributes
    ----------
    estimator_ : estimator object
        The unfitted prototype.
    estimators_ : list of LLMGenerator
        The fitted members; in LoRA mode they share one base model.
    estimator_weights_ : ndarray of shape (n_estimators,)
        All ones.
    estimator_errors_ : ndarray of shape (n_estimators,)
        Each member's token error on the training answers.
    combination_weights_ : ndarray of shape (n_estimators,)
        With ``combine="learned"`` only: the learned weights.
    gate_ : LogisticRegression or DummyClassifier
        With ``combine="router"`` only: the fitted gate (its ``classes_`` are expert indices).
    token_weights_ : list of ndarray
        The (uniform) token weights, one array per training example.
    token_weights_flat_ : ndarray of shape (n_tokens,)
        The same, concatenated.
    stop_reason_ : None
        Always None: every member is kept.
    history_ : list of dict
        One dict per member, with the keys of :class:`~skw2s.TokenAdaBoostGenerator`'s.
    tokenizer_ : transformers tokenizer
        The members' shared tokenizer.

    See Also
    --------
    TokenAdaBoostGenerator : The boosted ensemble this one controls for.
    """

    _parameter_constraints = {**BaseGeneratorEnsemble._parameter_constraints, "bootstrap": _BOOL}

    def __init__(self, estimator=None, *, n_estimators=5, bootstrap=False, combine="prob",
                 validation_fraction=0.1, random_state=None, memory=None, verbose=0):
        self.estimator = estimator
        self.n_estimators = n_estimators
        self.bootstrap = bootstrap
        self.combine = combine
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.memory = memory
        self.verbose = verbose

    def _resampling(self):
        return bool(self.bootstrap)

    def _boost(self, t, weights, incorrect, context):
        return _uniform_step(weights, incorrect)
