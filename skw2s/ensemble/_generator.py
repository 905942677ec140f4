"""What the generator ensembles share: data, token draws, LoRA sharing and mixture inference.

The boosting loop is :class:`skw2s.ensemble._base.BaseWeakEnsemble`; the weight steps are in
the subclasses (:class:`~skw2s.TokenAdaBoostGenerator`,
:class:`~skw2s.UniformEnsembleGenerator`). Inference is
:class:`skw2s.estimators.generation_mixin.GenerationMixin` over the mixture of the kept learners
(eq. 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.utils.validation import check_is_fitted

from .._infra.cache import TRACKING_PARAMS, fingerprint
from ..estimators.generation_mixin import GenerationMixin, pad_proba
from ..data.inputs import check_generation_input, check_generation_target
from ..hf.serialization import state_once
from ..core.token_weights import initial_token_weights, sample_token_counts, split_by_lengths
from .._infra.validation import NONE, HasMethods, Interval, StrOptions, take_rows
from ..hf.decoding import check_shared_vocabulary
from ..core import weights as _weights
from ._base import ROUNDS_NAMESPACE, BaseWeakEnsemble, FitContext, FitData, fit_router_gate

__all__ = ["BaseGeneratorEnsemble", "GeneratorContext"]

LEARNER_PROTOCOL = ("fit", "token_mistakes", "answer_lengths", "as_expert")
"""The public methods a generator ensemble calls on its learner (see :class:`~skw2s.LLMGenerator`
and ``docs/design.md``)."""

LEARNER_PARAMS = ("n_epochs", "batch_size", "max_length", "max_new_tokens", "choice_score")
"""The learner parameters a generator ensemble reads or sets: ``n_epochs`` (set to 0 for the
zero-shot reference) and the inference settings (:meth:`BaseGeneratorEnsemble._settings`)."""


@dataclass
class GeneratorContext(FitContext):
    """The context of a generator ensemble's fit.

    Attributes
    ----------
    lengths : ndarray of shape (n_samples,)
        Every training answer's length in tokens (EOS included).
    tokenizer : tokenizer
        The zero-shot reference learner's ``tokenizer_``; every round's learner must share
        its vocabulary.
    pretrained_incorrect : ndarray of shape (n_tokens,) or None
        The zero-shot reference's token mistakes, when the ensemble uses them
        (``_uses_pretrained_error``); else None.
    eps_pre : float or None
        :class:`~skw2s.TokenAdaBoostGenerator` only: the pre-trained model's ``D_1``-weighted
        (smoothed) token error; else None.
    """

    lengths: Any
    tokenizer: Any
    pretrained_incorrect: Any = None
    eps_pre: Any = None


class BaseGeneratorEnsemble(GenerationMixin, BaseWeakEnsemble):
    """A weighted mixture of causal-LM experts, fitted by the one boosting loop.

    Subclasses write ``_boost`` (the weight step over answer tokens) and ``_resampling``.
    This class gives the data checks, the zero-shot reference learner (``n_epochs=0``: the
    answer lengths, the tokenizer and, when ``_uses_pretrained_error``, its token mistakes),
    the token draws (``n`` tokens with replacement by ``D_t``, as counts), the sharing of one
    base model by LoRA learners, and the mixture inference with its ``staged_*`` methods.
    """

    _parameter_constraints = {
        **BaseWeakEnsemble._base_constraints,
        "estimator": [HasMethods(LEARNER_PROTOCOL), NONE],
        "combine": [StrOptions(("prob", "logit", "learned", "confidence", "router"))],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
    }
    _uses_pretrained_error = False
    _learner_methods = LEARNER_PROTOCOL
    _learner_params = LEARNER_PARAMS
    _learner_fitted_attributes = ("tokenizer_",)

    def _prototype(self):
        from ..estimators.generator import LLMGenerator

        return LLMGenerator() if self.estimator is None else self.estimator

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        tags.target_tags.required = True
        return tags

    # -- the hooks of the boosting loop ---------------------------------------------------
    def _check_data(self, X, y, sample_weight):
        if sample_weight is not None:
            raise ValueError(
                f"{type(self).__name__} weights answer tokens, starting uniform; it takes no "
                "sample_weight."
            )
        inputs = check_generation_input(X)
        answers, _ = check_generation_target(y, inputs)
        return FitData(
            X=X, y=y, n=len(inputs), fingerprint=fingerprint(list(inputs.prompts), list(answers))
        )

    def _subset(self, data, rows):
        X, y = take_rows(data.X, rows), take_rows(np.asarray(data.y, dtype=object), rows)
        inputs = check_generation_input(X)
        answers, _ = check_generation_target(y, inputs)
        return FitData(
            X=X, y=y, n=len(rows), fingerprint=fingerprint(list(inputs.prompts), list(answers))
        )

    def _prepare(self, data, prototype, store):
        zero = clone(prototype).set_params(n_epochs=0).fit(data.X, data.y)
        self._check_fitted_learner(zero)
        context = GeneratorContext(
            lengths=zero.answer_lengths(data.X, data.y), tokenizer=zero.tokenizer_,
        )
        if self._uses_pretrained_error:
            params = {k: v for k, v in prototype.get_params(deep=True).items()
                      if k not in TRACKING_PARAMS | {"random_state", "n_epochs"}}
            key = fingerprint(ROUNDS_NAMESPACE, "pretrained", type(prototype).__qualname__,
                              sorted(params.items()), data.fingerprint)
            n_tokens = int(np.sum(context.lengths))

            def check(stored):
                incorrect = stored.get("incorrect") if isinstance(stored, dict) else None
                if not isinstance(incorrect, np.ndarray) or incorrect.shape != (n_tokens,):
                    raise ValueError(f"the pretrained mistakes are not {n_tokens} values")

            entry = (store.load(ROUNDS_NAMESPACE, key, check=check) if store is not None
                     else None)
            if entry is None:
                entry = {"incorrect": np.asarray(zero.token_mistakes(data.X, data.y), dtype=float)}
                if store is not None:
                    store.save(ROUNDS_NAMESPACE, key, entry)
            context.pretrained_incorrect = entry["incorrect"]
        return context

    def _initial_weights(self, data, context):
        return initial_token_weights(context.lengths)

    def _draw(self, weights, data, context, rng):
        lengths = context.lengths
        if not self._resampling():
            return {}, {"n_distinct_tokens": int(lengths.sum()), "n_samples_trained": data.n}
        counts = sample_token_counts(weights, int(lengths.sum()), rng)
        token_weight = split_by_lengths(counts.astype(np.float64), lengths)
        info = {
            "n_distinct_tokens": int(np.count_nonzero(counts)),
            "n_samples_trained": int(sum(w.sum() > 0 for w in token_weight)),
        }
        return {"token_weight": token_weight}, info

    def _fit_learner(self, learner, data, fit_kwargs, context):
        learner.fit(data.X, data.y, **fit_kwargs)
        check_shared_vocabulary([context.tokenizer, learner.tokenizer_])
        return learner

    def _mistakes(self, learner, data):
        return learner.token_mistakes(data.X, data.y)

    def _round_record(self, entry, data, context):
        return {
            "token_accuracy": float(1.0 - np.mean(entry["incorrect"])),
            "n_tokens": int(context.lengths.sum()),
            **entry["info"],
        }

    def _accept(self, learner, t, kept, context):
        if kept and hasattr(learner, "share_base_with"):
            learner.share_base_with(kept[0], f"round{t}")
        return learner

    def _finish(self, data, context, weights):
        self.tokenizer_ = context.tokenizer
        self.token_weights_flat_ = np.asarray(weights, dtype=np.float64)
        self.token_weights_ = split_by_lengths(self.token_weights_flat_, context.lengths)

    # -- inference plumbing -----------------------------------------------------------
    def _mixture_parts(self, n_experts=None):
        k = len(self.estimators_) if n_experts is None else n_experts
        experts = [e.as_expert() for e in self.estimators_[:k]]
        combine = "prob" if self.combine in ("learned", "router") else self.combine
        return experts, self._mixture_weights(k), combine

    # -- combine="router": per-question weights over the experts' own choice scores ----
    def _member_choice_proba(self, learners, inputs):
        """``(T, n, C)``: each expert's own probabilities of the choices (0 past a row's
        choices), from one pass in which each expert runs once."""
        from ..hf import decoding

        s = self._settings()
        _, members = decoding.choice_nll_mixture(
            [e.as_expert() for e in learners], np.ones(len(learners)), self.tokenizer_,
            inputs.prompts, inputs.choices, reduction=s["choice_score"],
            batch_size=s["batch_size"], max_length=s["max_length"], members=True,
            verbose=self.verbose,
        )
        return np.stack([pad_proba(m) for m in members])

    def _fit_gate(self, learners, data):
        inputs = check_generation_input(data.X)
        if not inputs.has_choices:
            raise ValueError(
                'combine="router" weighs the experts per multiple-choice question, but the '
                "training data have no choices column. Use combine=\"confidence\" (per token) "
                'or "learned" for free-text answers.'
            )
        _, gold = check_generation_target(data.y, inputs)
        return fit_router_gate(self._member_choice_proba(learners, inputs), gold)

    def _choice_nll(self, inputs, *, staged=False):
        if self.combine != "router":
            return super()._choice_nll(inputs, staged=staged)
        nll, _ = self._routed_choice_nll(inputs)
        return nll if staged else nll[-1]

    def _routed_choice_nll(self, inputs):
        """``combine="router"``: ``-log`` of ``sum_t w_t(x) p_t(choice | x)`` per stage, and the
        experts' own choice probabilities."""
        proba = self._member_choice_proba(self.estimators_, inputs)
        features = _weights.router_features(proba)
        n_experts = proba.shape[0]
        out = []
        for t in range(1, n_experts + 1):
            w = _weights.gate_weights(self.gate_, features, n_experts, t)
            mixed = _weights.mix_per_question(proba[:t], w)
            with np.errstate(divide="ignore"):
                out.append([-np.log(mixed[i, :len(c)]) for i, c in enumerate(inputs.choices)])
        return out, proba

    def question_weights(self, X):
        """Every multiple-choice question's weights over the experts (``combine="router"``).

        Parameters
        ----------
        X : DataFrame
            Multiple-choice input (with a ``choices`` column).

        Returns
        -------
        weights : ndarray of shape (n_samples, n_experts)
            The gate's probabilities that each expert is the one to trust; rows sum to 1.

        Raises
        ------
        ValueError
            With another ``combine`` (``"confidence"`` weighs tokens, not questions).
        """
        check_is_fitted(self)
        if self.combine != "router":
            raise ValueError(
                f'question_weights needs combine="router"; this ensemble has '
                f"combine={self.combine!r}, whose weights do not depend on the question alone."
            )
        inputs = check_generation_input(X, require_choices=True)
        proba = self._member_choice_proba(self.estimators_, inputs)
        return _weights.gate_weights(self.gate_, _weights.router_features(proba), proba.shape[0])

    def _likelihoods(self, learners, data):
        """Each expert's probability of every held-out gold answer token (teacher forced)."""
        from ..hf import decoding
        from ..hf.training import encode_sft

        inputs = check_generation_input(data.X)
        answers, _ = check_generation_target(data.y, inputs)
        s = self._settings()
        encoded = encode_sft(self.tokenizer_, inputs.prompts, answers, max_length=s["max_length"],
                             warn=False)
        gold = decoding.expert_gold_log_probs(
            [e.as_expert() for e in learners], self.tokenizer_, encoded,
            batch_size=s["batch_size"], verbose=self.verbose,
        )
        return np.exp(np.stack([np.concatenate(g) for g in gold]))

    def _settings(self):
        params = self.estimators_[0].get_params(deep=False)
        return {
            "batch_size": params["batch_size"],
            "max_length": params["max_length"],
            "max_new_tokens": params["max_new_tokens"],
            "choice_score": params["choice_score"],
            "random_state": self.random_state,
        }

    # -- staged and ensemble-specific methods ------------------------------------------
    def staged_generate(
        self, X, *, max_new_tokens=None, do_sample=False, temperature=1.0, random_state=None,
        return_tokens=False, speculative_k=None,
    ):
        """Generate with the mixture of the first ``s`` experts, for ``s = 1 .. T``.

        Parameters
        ----------
        X : DataFrame or list of str
            Prompts in the generation input format.
        max_new_tokens : int, default=None
            Most tokens per prompt; default: the learners' ``max_new_tokens``.
        do_sample : bool, default=False
            Sample instead of greedy decoding.
        temperature : float, default=1.0
            Sampling temperature.
        random_state : int, RandomState instance or None, default=None
            Seeds sampling; default: the ensemble's ``random_state``.
        return_tokens : bool, default=False
            Yield token ids instead of strings.
        speculative_k : int or None, default=None
            Greedy speculative decoding (see :meth:`generate`); each stage drafts with its own
            expert of largest weight.

        Yields
        ------
        list of str, or list of list of int
            The generations of each stage.
        """
        check_is_fitted(self)
        inputs = check_generation_input(X)
        for s in range(1, len(self.estimators_) + 1):
            experts, alphas, combine = self._mixture_parts(s)
            tokens = self._generate_tokens(
                inputs.prompts, experts, alphas, combine, max_new_tokens=max_new_tokens,
                do_sample=do_sample, temperature=temperature, random_state=random_state,
                speculative_k=speculative_k,
            )
            yield self._decode(tokens, return_tokens)

    def staged_predict(self, X):
        """:meth:`predict` of the ensemble after each round.

        Parameters
        ----------
        X : DataFrame or list of str
            Generation input.

        Yields
        ------
        ndarray of shape (n_samples,)
            Choice indices (multiple choice, from one pass in which each expert runs once) or
            generated texts.
        """
        check_is_fitted(self)
        inputs = check_generation_input(X)
        if not inputs.has_choices:
            for texts in self.staged_generate(inputs.prompts):
                yield np.array(texts, dtype=object)
            return
        for nll in self._choice_nll(inputs, staged=True):
            yield np.array([int(np.argmin(r)) for r in nll], dtype=np.int64)

    def staged_predict_proba(self, X):
        """:meth:`predict_proba` of the ensemble after each round.

        Parameters
        ----------
        X : DataFrame
            Multiple-choice input.

        Yields
        ------
        ndarray of shape (n_samples, max_n_choices)
        """
        check_is_fitted(self)
        inputs = check_generation_input(X, require_choices=True)
        for nll in self._choice_nll(inputs, staged=True):
            yield pad_proba(nll)

    def staged_score(self, X, y):
        """:meth:`score` of the ensemble after each round.

        Parameters
        ----------
        X : DataFrame or list of str
            Generation input.
        y : array-like
            Choice indices or answer strings.

        Yields
        ------
        float
            Option accuracy (multiple choice) or token accuracy (free text).
        """
        check_is_fitted(self)
        inputs = check_generation_input(X)
        if inputs.has_choices:
            _, indices = check_generation_target(y, inputs)
            for pred in self.staged_predict(X):
                yield float(np.mean(pred == indices))
            return
        for error in self.staged_token_error(X, y):
            yield 1.0 - error

    def staged_token_error(self, X, y):
        """:meth:`token_error` of the ensemble after each round (each expert runs once).

        Parameters
        ----------
        X : DataFrame or list of str
            Generation input.
        y : array-like
            Choice indices or answer strings.

        Yields
        ------
        float
        """
        check_is_fitted(self)
        for mistakes in self._token_mistakes(X, y, staged=True):
            yield float(np.mean(mistakes))

    def estimator_token_errors(self, X, y):
        """Token error of each expert on its own (not mixed).

        Parameters
        ----------
        X : DataFrame or list of str
            Generation input.
        y : array-like
            Choice indices or answer strings, as in :meth:`token_error`.

        Returns
        -------
        errors : ndarray of shape (n_experts,)
            One per expert of ``estimators_``, in round order.
        """
        check_is_fitted(self)
        return np.array([e.token_error(X, y) for e in self.estimators_])

    def round_predictions(self, X):
        """Every round's prediction and every expert's own, from one pass over the experts.

        Parameters
        ----------
        X : DataFrame
            Multiple-choice input (with a ``choices`` column).

        Returns
        -------
        out : dict
            ``"staged"``: :meth:`staged_predict`'s choice indices after each round;
            ``"staged_proba"``: :meth:`staged_predict_proba`'s; ``"members"``: each expert's
            own choice (alone, not mixed). Each expert runs once per batch for all of them.
        """
        from ..hf import decoding

        check_is_fitted(self)
        inputs = check_generation_input(X, require_choices=True)

        def argmin(nll):
            return np.array([int(np.argmin(r)) for r in nll], dtype=np.int64)

        if self.combine == "router":
            staged, proba = self._routed_choice_nll(inputs)
            return {"staged": [argmin(n) for n in staged],
                    "staged_proba": [pad_proba(n) for n in staged],
                    "members": [p.argmax(1).astype(np.int64) for p in proba]}
        experts, alphas, combine = self._mixture_parts()
        s = self._settings()
        staged, members = decoding.choice_nll_mixture(
            experts, alphas, self.tokenizer_, inputs.prompts, inputs.choices, combine=combine,
            reduction=s["choice_score"], batch_size=s["batch_size"], max_length=s["max_length"],
            staged=True, members=True, verbose=self.verbose,
        )
        return {"staged": [argmin(n) for n in staged],
                "staged_proba": [pad_proba(n) for n in staged],
                "members": [argmin(n) for n in members]}

    def pseudo_label(
        self, X, *, do_sample=False, temperature=1.0, max_new_tokens=None, random_state=None
    ):
        """Pseudo-labels for the student: what the mixture answers on ``X``.

        Parameters
        ----------
        X : DataFrame or list of str
            Usually the hard questions.
        do_sample : bool, default=False
            Sample free-text answers instead of greedy decoding.
        temperature : float, default=1.0
            Sampling temperature.
        max_new_tokens : int, default=None
            Most tokens per free-text answer.
        random_state : int, RandomState instance or None, default=None
            Seeds sampling.

        Returns
        -------
        ndarray of shape (n_samples,)
            With choices: the index of the choice with the lowest mixture NLL, a valid ``y``
            for a student's ``fit``. Without: the generated answers (object array of str).
        """
        check_is_fitted(self)
        inputs = check_generation_input(X)
        if inputs.has_choices:
            return self.predict(X)
        texts = self.generate(
            inputs.prompts, max_new_tokens=max_new_tokens, do_sample=do_sample,
            temperature=temperature, random_state=random_state,
        )
        return np.array(texts, dtype=object)

    # -- pickling ----------------------------------------------------------------------
    @state_once
    def __getstate__(self):
        from ..hf.serialization import dump_tokenizer

        state = dict(self.__dict__)
        if "tokenizer_" in state:
            state["tokenizer_"] = dump_tokenizer(state["tokenizer_"])
        return state

    def __setstate__(self, state):
        from ..hf.serialization import load_tokenizer

        state = dict(state)
        if isinstance(state.get("tokenizer_"), dict):
            state["tokenizer_"] = load_tokenizer(state["tokenizer_"])
        self.__dict__.update(state)
        learners = self.__dict__.get("estimators_") or []
        for t, learner in enumerate(learners[1:], start=2):
            if hasattr(learner, "share_base_with"):  # one base model in memory again
                learner.share_base_with(learners[0],
                                        getattr(learner, "adapter_name_", None) or f"round{t}")
