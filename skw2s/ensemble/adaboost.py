"""LLMAdaBoostClassifier: binary AdaBoost over language-model classifiers (EnsemW2S, Algorithm 2).

The boosting loop, the store and the predictions are shared with the other ensembles
(:mod:`skw2s.ensemble._base`, :mod:`skw2s.ensemble._classifier`); this module is the weight
step, :func:`skw2s.core.weights.adaboost_step`.
"""

from __future__ import annotations

from numbers import Real

from ..core import weights as _weights
from .._infra.validation import Interval, StrOptions
from ._classifier import BaseClassifierEnsemble

__all__ = ["LLMAdaBoostClassifier"]


class LLMAdaBoostClassifier(BaseClassifierEnsemble):
    """Binary AdaBoost over fine-tuned language-model classifiers (EnsemW2S, Algorithm 2).

    Starting from ``D_1 = 1/m`` (or the normalised ``sample_weight``), each round ``t`` trains
    a clone of ``estimator`` on the easy data weighted by ``D_t`` (by resampling or by a
    weighted loss, see ``sampling``), measures its weighted error
    ``eps_t = sum_i D_t(i) [h_t(x_i) != y_i]`` on the full training data, gives it the weight
    ``alpha_t = 1/2 log((1 - eps_t) / eps_t)`` and updates
    ``D_{t+1}(i) ~ D_t(i) exp(-alpha_t y_i h_t(x_i))`` (labels and votes in {-1, +1}; the
    arithmetic is :func:`skw2s.core.weights.adaboost_step`). Boosting stops early when a round's
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
    combine : {"vote", "learned", "confidence", "router"}, default="vote"
        How the learners are mixed. ``"vote"``: by ``alpha_t`` (Algorithm 2).
        ``"learned"``: by global weights fitted on a held-out ``validation_fraction`` of the
        training data after boosting (maximum likelihood of the held-out labels under the
        mixture of the learners' probabilities; RAVEN's learned weights), stored in
        ``combination_weights_``; the rounds train on the rest.
        ``"confidence"``: per question, by ``alpha_t c_t(x)`` normalised over the learners,
        where ``c_t(x)`` is the probability learner ``t`` gives its own answer; no training
        (see Notes). ``"router"``: per question, by a gate fitted on the held-out
        ``validation_fraction`` after boosting: a logistic regression from the learners'
        log-odds to the learner that gave each held-out label the highest probability
        (co-supervised learning's routing to the teacher most likely to be right); stored in
        ``gate_``. :meth:`question_weights` returns the weights of either.
    validation_fraction : float, default=0.1
        The held-out share of the training data with ``combine="learned"`` or ``"router"``
        (unused otherwise).
    random_state : int, RandomState instance or None, default=None
        Seeds the ensemble. Round ``t`` draws its learner's ``random_state`` and then its
        resampling indices from ``numpy.random.default_rng([seed, t - 1])``, so a round does
        not depend on ``n_estimators`` or on other rounds. None draws the seed from numpy's
        global generator.
    memory : str, path-like, joblib.Memory or None, default=None
        Where to store finished rounds. A round is stored under a fingerprint of the weak
        learner's class and parameters (``verbose`` and ``random_state`` aside: the round
        seeds it), ``sampling``, the training data, the seed, the round index and the round's
        input weights ``D_t``. A later fit with the same settings loads those rounds instead of
        training them: fitting ``n_estimators=5`` after ``3`` trains 2 learners, and
        ``GridSearchCV`` over ``n_estimators`` costs about one fit of the largest value per
        split. Other ensembles that run the same round share it (round 1 is member 1 of a
        :class:`~skw2s.UniformEnsembleClassifier` with ``bootstrap`` matching ``sampling``).
        With ``random_state=None`` a fit reuses whatever rounds are stored (each is a valid
        draw); set an int to make fits reproducible.
    verbose : int, default=0
        Show a progress bar over rounds when positive. Per-round metrics are logged (logger
        ``skw2s.ensemble``) and always recorded in ``history_``.

    Attributes
    ----------
    estimator_ : estimator object
        The unfitted prototype every learner was cloned from.
    combination_weights_ : ndarray of shape (n_rounds,)
        With ``combine="learned"`` only: the learned mixture weights (they sum to 1).
    gate_ : LogisticRegression or DummyClassifier
        With ``combine="router"`` only: the fitted gate; its ``classes_`` are learner indices
        (a ``DummyClassifier`` when every held-out row pointed at one learner).
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
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of the features seen in ``fit``; only set for numeric input given as a
        DataFrame with string column names.

    See Also
    --------
    LLMClassifier : The default weak learner.
    UniformEnsembleClassifier : The control: T learners with equal weights.
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

    **Per-question weights.** ``combine="confidence"`` follows the idea of Dynamic Logits
    Fusion [3]_, which re-weights the experts at every step instead of once; it differs in
    that DLF chooses a step's weights by a small optimisation against a larger model, while
    here each learner's weight is its own confidence times its ``alpha_t``, with nothing
    fitted. ``combine="router"`` follows co-supervised learning [4]_, which sends each example
    to the teacher most likely to be right; here the choice is soft (the gate's probabilities
    weight the learners) and the gate sees only the learners' outputs.

    References
    ----------
    .. [1] EnsemW2S: Can an Ensemble of LLMs be Leveraged to Obtain a Stronger LLM?
       arXiv:2410.04571, Appendix F, Algorithm 2.
    .. [2] Freund and Schapire (1997). A decision-theoretic generalization of on-line
       learning and an application to boosting.
    .. [3] Fan et al. (2024). On Giant's Shoulders: Effortless Weak to Strong by Dynamic
       Logits Fusion. NeurIPS 2024.
    .. [4] Liu and Alahi (2024). Co-Supervised Learning: Improving Weak-to-Strong
       Generalization with Hierarchical Mixture of Experts. arXiv:2402.15505.

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

    _parameter_constraints = {
        **BaseClassifierEnsemble._parameter_constraints,
        "sampling": [StrOptions(("resample", "reweight"))],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(
        self,
        estimator=None,
        *,
        n_estimators=10,
        sampling="resample",
        learning_rate=1.0,
        combine="vote",
        validation_fraction=0.1,
        random_state=None,
        memory=None,
        verbose=0,
    ):
        self.estimator = estimator
        self.n_estimators = n_estimators
        self.sampling = sampling
        self.learning_rate = learning_rate
        self.combine = combine
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.memory = memory
        self.verbose = verbose

    def _resampling(self):
        return self.sampling == "resample"

    def _boost(self, t, weights, incorrect, context):
        return _weights.adaboost_step(weights, incorrect, learning_rate=self.learning_rate)

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
        return super().fit(X, y, sample_weight=sample_weight)
