"""TokenAdaBoostGenerator: token-level EnsemW2S-AdaBoost (Algorithm 1) and mixture decoding.

The boosting loop, the store, the token draws and the mixture inference are shared with the
other generator ensembles (:mod:`skw2s.ensemble._base`, :mod:`skw2s.ensemble._generator`);
this module is the weight step, :func:`skw2s.core.token_weights.token_boost_step`, with the
paper's window and sample-level ablations.
"""

from __future__ import annotations

from numbers import Integral

from ..core.token_weights import (
    sample_level_weights,
    smooth_incorrect,
    token_boost_step,
    weighted_error,
)
from .._infra.validation import Interval, StrOptions
from ._base import PARAMETER_HINT
from ._generator import BaseGeneratorEnsemble

__all__ = ["TokenAdaBoostGenerator"]


class TokenAdaBoostGenerator(BaseGeneratorEnsemble):
    """Token-level EnsemW2S-AdaBoost: a boosted mixture of weak causal LMs (Algorithm 1).

    Each easy example ``i`` has an answer of ``k_i`` tokens (EOS included), ``n = sum k_i``,
    and every answer token a weight ``D_t(i, j)``, starting uniform. ``eps_pre`` is the
    ``D_1``-weighted teacher-forced argmax error of the untrained, pre-trained model. Round
    ``t``:

    1. draw ``n`` tokens with replacement by ``D_t`` and re-assemble them into their sentences
       under a label mask (a token drawn twice counts twice; sentences with no drawn token
       are left out);
    2. train a new expert ``h_t`` from the **pre-trained** weights on those tokens;
    3. ``eps_t = sum D_t * [argmax h_t(x_i, y_i^{<j}) != y_i^j]`` on all easy tokens;
    4. stop when ``eps_t >= eps_pre`` (the round is dropped and the reason recorded);
    5. ``alpha_t = log((1 - eps_t) / eps_t) + log(eps_pre / (1 - eps_pre))``;
    6. ``D_{t+1} = D_t * exp(alpha_t * [wrong]) / Z_t`` (correct tokens keep their weight).

    Answers come from the mixture ``sum_t alpha_t softmax(h_t) / sum_t alpha_t`` (eq. 1):
    decoded greedily or by sampling, each chosen token fed back to every expert; for multiple
    choice, the choice with the lowest NLL under the mixture wins.

    Parameters
    ----------
    estimator : LLMGenerator or compatible estimator, default=None
        The weak learner, cloned for each round (its ``random_state`` is replaced by a seed
        drawn from this estimator's ``random_state``). None means ``LLMGenerator()``. Any
        estimator with the learner protocol of :class:`~skw2s.LLMGenerator` works. Its
        ``batch_size``, ``max_length``, ``max_new_tokens`` and ``choice_score`` also set
        inference. In ``mode="lora"`` all rounds share one base model in memory, each round
        one named adapter (:meth:`LLMGenerator.share_base_with`).
    n_estimators : int, default=5
        Most boosting rounds; fewer when boosting stops early.
    combine : {"prob", "logit", "learned", "confidence", "router"}, default="prob"
        Mix the experts' probabilities (eq. 1) or their logits (the paper's ablation), by
        ``alpha_t``; or ``"learned"``: mix probabilities by global weights fitted on a held-out
        ``validation_fraction`` of the easy data after boosting (maximum likelihood of its gold
        answer tokens under the mixture; RAVEN's learned weights, which the EnsemW2S paper
        names as future work), stored in ``combination_weights_``; the rounds train on the rest.
        ``"confidence"``: mix probabilities with every token step's own weights, each
        expert's ``alpha_t`` times its confidence at that step (the probability of its own
        most likely next token), normalised; no training. It follows Dynamic Logits Fusion's
        per-step re-weighting (Fan et al., NeurIPS 2024) without its optimisation against a
        larger model (:func:`skw2s.core.mixture.confidence_step_weights`).
        ``"router"`` (multiple choice only): per question, the experts' own choice
        probabilities mixed by a gate fitted on the held-out ``validation_fraction`` after
        boosting (a logistic regression from the experts' choice log-probabilities to the
        expert that gave the gold choice the highest probability; co-supervised learning's
        routing, arXiv:2402.15505), stored in ``gate_``; free-text generation and token
        errors then use the ``"prob"`` mixture by ``alpha_t``.
    window : int, default=1
        Sliding window ``L`` of the token mistakes used by ``eps_t`` and the update (see
        :func:`skw2s.core.token_weights.smooth_incorrect`); 1 is the paper's default.
    weighting : {"token", "sample"}, default="token"
        Token-level weights, or the sample-level ablation (every token of a sentence shares its
        sentence's mean mistake and weight).
    validation_fraction : float, default=0.1
        The held-out share of the easy data with ``combine="learned"`` or ``"router"`` (unused
        otherwise).
    random_state : int, RandomState instance or None, default=None
        Seeds the ensemble. Round ``t`` draws its learner's ``random_state`` and then its
        token draw from ``numpy.random.default_rng([seed, t - 1])``.
    memory : str, path-like, joblib.Memory or None, default=None
        Directory where finished rounds are stored (each expert and its token mistakes),
        keyed by the learner, the data, the seed, the round index and the round's input
        weights ``D_t``. A later fit with the same settings and data loads the consecutive
        finished rounds and trains only the rest, so ``n_estimators=5`` after ``3`` trains 2.
        ``combine``, ``window`` and ``weighting`` change no trained round, only the steps
        between them, so fits that differ in them share every round they reach with the
        same weights (round 1 always).
    verbose : int, default=0
        Progress bars (rounds, scoring, decoding) when positive.

    Attributes
    ----------
    estimator_ : estimator object
        The unfitted prototype every learner was cloned from.
    combination_weights_ : ndarray of shape (n_rounds,)
        With ``combine="learned"`` only: the learned mixture weights (they sum to 1).
    gate_ : LogisticRegression or DummyClassifier
        With ``combine="router"`` only: the fitted gate; its ``classes_`` are expert indices.
    estimators_ : list of LLMGenerator
        The accepted experts, in round order. In LoRA mode they share one ``model_`` (a peft
        model) and differ by ``adapter_name_``.
    estimator_weights_ : ndarray of shape (n_rounds,)
        ``alpha_t`` of each accepted expert (cut to ``len(estimators_)``).
    estimator_errors_ : ndarray of shape (n_rounds,)
        ``eps_t`` of each accepted expert (the ``D_t``-weighted token error).
    pretrained_error_ : float
        ``eps_pre``: the ``D_1``-weighted token error of the untrained model.
    token_weights_ : list of ndarray
        The final token weights ``D`` (after the last accepted round's update), one array per
        training example, of its answer length. They sum to 1 over all examples.
    token_weights_flat_ : ndarray of shape (n_tokens,)
        The same weights, concatenated.
    stop_reason_ : str or None
        Why boosting stopped before ``n_estimators`` rounds: ``"error>=eps_pre"`` (that round
        was dropped), ``"perfect"`` (error 0; that expert is kept) or
        ``"non-finite weights"``; None when every round ran.
    history_ : list of dict
        One entry per round that ran, rejected rounds included, with keys ``round``,
        ``error`` (``eps_t``), ``alpha`` (None when rejected), ``token_accuracy`` (unweighted,
        on the easy data), ``n_tokens``, ``n_distinct_tokens`` (tokens drawn at least once),
        ``n_samples_trained``, ``fit_seconds``, ``stop_reason`` and ``cached`` (loaded from
        ``memory``).
    tokenizer_ : transformers tokenizer
        The experts' shared tokenizer.

    See Also
    --------
    LLMGenerator : The weak learner.
    UniformEnsembleGenerator : The control: T experts with equal weights.
    skw2s.decoding.mixture_generate : The decoder behind ``generate``.

    Notes
    -----
    Input format: see :mod:`skw2s.data.inputs`. A first round whose error is not below
    ``eps_pre`` raises a ``ValueError``: there is no expert to mix. Pickles hold the experts'
    weights as safetensors (LoRA: the adapters only; the base model is reloaded from its spec).

    References
    ----------
    .. [1] A. Agrawal et al., "EnsemW2S: Enhancing Weak-to-Strong Generalization with Large
       Language Model Ensembles", arXiv:2410.04571.

    Examples
    --------
    >>> from skw2s import LLMGenerator, TokenAdaBoostGenerator
    >>> from skw2s.datasets import load_quartz, to_multiple_choice
    >>> X, y = to_multiple_choice(load_quartz("train").head(64))  # doctest: +SKIP
    >>> boost = TokenAdaBoostGenerator(
    ...     LLMGenerator("smollm2-135m", mode="lora", lr=2e-4, n_epochs=1),
    ...     n_estimators=3, random_state=0)
    >>> boost.fit(X, y).estimator_weights_  # doctest: +SKIP
    array([...])
    >>> boost.generate(["Question: Is ice cold?\\nAnswer:"])  # doctest: +SKIP
    [' yes']
    """

    _parameter_constraints = {
        **BaseGeneratorEnsemble._parameter_constraints,
        "window": [Interval(Integral, 1, None, closed="left")],
        "weighting": [StrOptions(("token", "sample"))],
    }
    _uses_pretrained_error = True

    def __init__(
        self,
        estimator=None,
        *,
        n_estimators=5,
        combine="prob",
        window=1,
        weighting="token",
        validation_fraction=0.1,
        random_state=None,
        memory=None,
        verbose=0,
    ):
        self.estimator = estimator
        self.n_estimators = n_estimators
        self.combine = combine
        self.window = window
        self.weighting = weighting
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.memory = memory
        self.verbose = verbose

    def _resampling(self):
        return True

    def _smoothed(self, incorrect, lengths):
        return smooth_incorrect(incorrect, lengths, window=self.window, weighting=self.weighting)

    def _prepare(self, data, prototype, store):
        context = super()._prepare(data, prototype, store)
        D_1 = self._initial_weights(data, context)
        context.eps_pre = weighted_error(
            D_1, self._smoothed(context.pretrained_incorrect, context.lengths)
        )
        return context

    def _boost(self, t, weights, incorrect, context):
        step = token_boost_step(weights, self._smoothed(incorrect, context.lengths),
                                context.eps_pre)
        if step.alpha is not None and self.weighting == "sample":
            step = type(step)(sample_level_weights(step.weights, context.lengths), step.alpha,
                              step.error, step.stop_reason)
        return step

    def _first_round_error(self, step, context):
        return (
            f"The first weak expert's token error ({step.error:.4f}) is not below the "
            f"pre-trained model's error eps_pre ({context.eps_pre:.4f}), so boosting cannot "
            "start. Train the weak learner longer or with a larger learning rate "
            f"{PARAMETER_HINT}."
        )

    def _finish(self, data, context, weights):
        super()._finish(data, context, weights)
        self.pretrained_error_ = float(context.eps_pre)

    def fit(self, X, y, sample_weight=None):
        """Boost weak experts on the easy data ``(X, y)``.

        Parameters
        ----------
        X : DataFrame or list of str
            Prompts, with optional choices (see :mod:`skw2s.data.inputs`).
        y : array-like of shape (n_samples,)
            Choice indices (with choices) or answer strings.
        sample_weight : None, default=None
            Must be None: the ensemble weights answer tokens, starting uniform. The parameter
            is there so that every ensemble's ``fit`` has one signature.

        Returns
        -------
        self : TokenAdaBoostGenerator
            The fitted estimator.

        Raises
        ------
        ValueError
            On invalid parameters or input, or when the first expert's token error is not
            below ``eps_pre``.
        """
        return super().fit(X, y, sample_weight=sample_weight)
