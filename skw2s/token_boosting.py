"""TokenAdaBoostGenerator: token-level EnsemW2S-AdaBoost (Algorithm 1) and mixture decoding.

The weight arithmetic is in :mod:`skw2s._token_weights` (numpy only), the expert mixture in
:mod:`skw2s._mixture`, and the batched teacher-forced scoring and decoding in
:mod:`skw2s.scoring`. This module runs the rounds: train a weak expert from the pre-trained
weights on tokens drawn by ``D_t``, measure its weighted token error, weight it, reweight the
tokens; and it answers with the alpha-weighted mixture of the experts (eq. 1).
"""

from __future__ import annotations

import logging

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from . import decoding as scoring
from ._cache import fingerprint, get_store, with_checkpoints
from ._inputs import check_generation_input, check_generation_target
from ._token_weights import (
    initial_token_weights,
    sample_level_weights,
    sample_token_counts,
    smooth_incorrect,
    split_by_lengths,
    token_boost_step,
    weighted_error,
)
from .generator import (
    GenerationMixin,
    LLMGenerator,
    _check_int,
    _check_option,
    _dump_tokenizer,
    _load_tokenizer,
    _pad_proba,
    add_adapter,
    load_full_model,
)
from .decoding import mixture_generate
from .decoding.experts import check_shared_vocabulary

logger = logging.getLogger(__name__)

__all__ = ["TokenAdaBoostGenerator", "check_shared_vocabulary", "mixture_generate"]

_NAMESPACE = "token_boosting"
_CACHE_VERSION = "token-adaboost-v1"


class TokenAdaBoostGenerator(GenerationMixin, BaseEstimator):
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
    estimator : LLMGenerator, default=None
        The weak learner, cloned for each round (its ``random_state`` is replaced by a seed
        drawn from this estimator's ``random_state``). None means ``LLMGenerator()``. Its
        ``batch_size``, ``max_length``, ``max_new_tokens`` and ``choice_score`` also set
        inference. In ``mode="lora"`` all rounds share one base model in memory, each round
        one named adapter (``"round1"``, ``"round2"``, ...).
    n_estimators : int, default=5
        Most boosting rounds; fewer when boosting stops early.
    combine : {"prob", "logit"}, default="prob"
        Mix the experts' probabilities (eq. 1) or their logits (the paper's ablation).
    window : int, default=1
        Sliding window ``L`` of the token mistakes used by ``eps_t`` and the update (see
        :func:`skw2s._token_weights.smooth_incorrect`); 1 is the paper's default.
    weighting : {"token", "sample"}, default="token"
        Token-level weights, or the sample-level ablation (every token of a sentence shares its
        sentence's mean mistake and weight).
    random_state : int, RandomState instance or None, default=None
        Seeds the token draws and each round's training.
    memory : str, path-like, joblib.Memory or None, default=None
        Directory where finished rounds are stored (expert weights, ``alpha_t``, ``eps_t``,
        ``D_{t+1}``). A later fit with the same settings and data loads the consecutive
        finished rounds and trains only the rest, so ``n_estimators=5`` after ``3`` trains 2.
    verbose : int, default=0
        Progress bars (rounds, scoring, decoding) when positive.

    Attributes
    ----------
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
    skw2s.scoring.mixture_generate : The decoder behind ``generate``.

    Notes
    -----
    Input format: see :mod:`skw2s._inputs`. A first round whose error is not below
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

    def __init__(
        self,
        estimator=None,
        *,
        n_estimators=5,
        combine="prob",
        window=1,
        weighting="token",
        random_state=None,
        memory=None,
        verbose=0,
    ):
        self.estimator = estimator
        self.n_estimators = n_estimators
        self.combine = combine
        self.window = window
        self.weighting = weighting
        self.random_state = random_state
        self.memory = memory
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        tags.target_tags.required = True
        return tags

    # -- validation --------------------------------------------------------------------
    def _validate_params(self):
        _check_int(self, "n_estimators")
        _check_int(self, "window")
        _check_option(self, "combine", ("prob", "logit"))
        _check_option(self, "weighting", ("token", "sample"))
        if self.estimator is not None and not isinstance(self.estimator, LLMGenerator):
            raise ValueError(
                f"The 'estimator' parameter of {type(self).__name__} must be an instance of "
                f"LLMGenerator or None. Got {self.estimator!r} instead."
            )
        store = get_store(self.memory)
        est = LLMGenerator() if self.estimator is None else clone(self.estimator)
        est._validate_params()
        return est, store

    def _key_parts(self, est, inputs, answers):
        params = self.get_params(deep=False)
        # ``combine`` only changes how fitted experts are mixed, never a round's fit (each
        # round's error is its own expert's), so fits that differ in it share their rounds.
        for name in ("estimator", "n_estimators", "memory", "verbose", "combine"):
            params.pop(name)
        est_params = est.get_params(deep=False)
        for name in ("verbose", "random_state"):
            est_params.pop(name, None)
        parts = (
            _CACHE_VERSION,
            type(self).__name__,
            sorted(params.items()),
            type(est).__name__,
            sorted(est_params.items(), key=lambda kv: kv[0]),
            list(inputs.prompts),
            list(answers),
        )
        return with_checkpoints(parts, est)

    # -- fitting -----------------------------------------------------------------------
    def fit(self, X, y):
        """Boost weak experts on the easy data ``(X, y)``.

        Parameters
        ----------
        X : DataFrame or list of str
            Prompts, with optional choices (see :mod:`skw2s._inputs`).
        y : array-like of shape (n_samples,)
            Choice indices (with choices) or answer strings.

        Returns
        -------
        self : TokenAdaBoostGenerator
            The fitted estimator.
        """
        est, store = self._validate_params()
        inputs = check_generation_input(X)
        answers, _ = check_generation_target(y, inputs)
        for name in (
            "estimators_", "estimator_weights_", "estimator_errors_", "pretrained_error_",
            "token_weights_", "token_weights_flat_", "stop_reason_", "history_", "tokenizer_",
        ):
            self.__dict__.pop(name, None)

        base = clone(est)._load()
        tokenizer = base.tokenizer_
        encoded = base._encode(inputs.prompts, answers)
        lengths = np.array([ex.n_answer_tokens for ex in encoded], dtype=np.int64)
        n_tokens = int(lengths.sum())
        key_parts = self._key_parts(est, inputs, answers)
        lora = est.mode == "lora"

        D = initial_token_weights(lengths)
        eps_pre = self._pretrained_error(base, encoded, lengths, D, store, key_parts)
        shared = base.model_ if lora else None
        if not lora:
            del base.model_

        rng = check_random_state(self.random_state)
        estimators, alphas, errors, history = [], [], [], []
        stop_reason = None
        loading = store is not None
        for t in tqdm(range(1, self.n_estimators + 1), desc="boosting", disable=not self.verbose,
                      leave=False):
            seed = int(rng.randint(np.iinfo(np.int32).max))
            key = fingerprint(*key_parts, t)
            entry = store.load(_NAMESPACE, key) if loading else None
            cached = entry is not None
            if cached:
                expert = None
            else:
                loading = False
                expert, entry = self._run_round(
                    est, seed, D, eps_pre, encoded, lengths, tokenizer, t
                )
                if store is not None:
                    store.save(_NAMESPACE, key, entry)
            record = dict(entry["record"], cached=cached)
            history.append(record)
            logger.info(
                "Round %d: eps=%.4f (eps_pre=%.4f), alpha=%s, %d distinct tokens drawn%s",
                t, entry["error"], eps_pre,
                "rejected" if entry["alpha"] is None else f"{entry['alpha']:.4f}",
                record["n_distinct_tokens"], " (from memory)" if cached else "",
            )
            if entry["alpha"] is None:
                stop_reason = entry["stop_reason"]
                if not estimators:
                    raise ValueError(
                        f"The first weak expert's token error ({entry['error']:.4f}) is not "
                        f"below the pre-trained model's error eps_pre ({eps_pre:.4f}), so "
                        "boosting cannot start. Train the weak learner longer or with a larger "
                        "learning rate (estimator__n_epochs, estimator__lr)."
                    )
                break
            name = f"round{t}"
            if lora:
                shared = add_adapter(shared, entry["payload"], name)
            if expert is None:  # loaded from memory
                expert = clone(est).set_params(random_state=seed)
                expert.fit_time_ = record["fit_seconds"]
                expert.n_train_tokens_ = record["n_distinct_tokens"]
                if not lora:
                    expert.model_ = load_full_model(entry["payload"], est.device)
            if lora:  # the expert's own copy of the base is dropped: all share `shared`
                expert.model_ = shared
                expert.adapter_name_ = name
            else:
                expert.adapter_name_ = None
            expert.tokenizer_ = tokenizer
            estimators.append(expert)
            alphas.append(entry["alpha"])
            errors.append(entry["error"])
            D = entry["weights"]
            if self.weighting == "sample":
                D = sample_level_weights(D, lengths)
            if entry["stop_reason"] is not None:
                stop_reason = entry["stop_reason"]
                break

        self.estimators_ = estimators
        self.estimator_weights_ = np.asarray(alphas, dtype=np.float64)
        self.estimator_errors_ = np.asarray(errors, dtype=np.float64)
        self.pretrained_error_ = float(eps_pre)
        self.token_weights_flat_ = np.asarray(D, dtype=np.float64)
        self.token_weights_ = split_by_lengths(self.token_weights_flat_, lengths)
        self.stop_reason_ = stop_reason
        self.history_ = history
        self.tokenizer_ = tokenizer
        logger.info(
            "%s: %d expert(s) over %d answer tokens; eps_pre=%.4f; stop reason: %s",
            type(self).__name__, len(estimators), n_tokens, eps_pre, stop_reason,
        )
        return self

    def _smoothed(self, incorrect, lengths):
        return smooth_incorrect(incorrect, lengths, window=self.window, weighting=self.weighting)

    def _pretrained_error(self, base, encoded, lengths, D, store, key_parts):
        key = fingerprint(*key_parts, "pretrained")
        entry = store.load(_NAMESPACE, key) if store is not None else None
        if entry is None:
            preds = scoring.token_predictions(
                base._expert(), base.tokenizer_, encoded, batch_size=base.batch_size,
                verbose=self.verbose,
            )
            incorrect, _ = scoring.answer_token_errors(encoded, preds)
            entry = {"incorrect": incorrect}
            if store is not None:
                store.save(_NAMESPACE, key, entry)
        return weighted_error(D, self._smoothed(entry["incorrect"], lengths))

    def _run_round(self, est, seed, D, eps_pre, encoded, lengths, tokenizer, t):
        """Train and measure the expert of round ``t``; return it and its cache entry."""
        counts = sample_token_counts(D, int(lengths.sum()), np.random.RandomState(seed))
        weights = split_by_lengths(counts.astype(np.float64), lengths)
        expert = clone(est).set_params(random_state=seed)
        expert._load()
        check_shared_vocabulary([tokenizer, expert.tokenizer_])
        expert._train_encoded(encoded, weights)
        preds = scoring.token_predictions(
            expert._expert(), tokenizer, encoded, batch_size=expert.batch_size,
            verbose=self.verbose,
        )
        incorrect, _ = scoring.answer_token_errors(encoded, preds)
        step = token_boost_step(D, self._smoothed(incorrect, lengths), eps_pre)
        record = {
            "round": t,
            "error": float(step.error),
            "alpha": None if step.alpha is None else float(step.alpha),
            "token_accuracy": float(1.0 - incorrect.mean()),
            "n_tokens": int(lengths.sum()),
            "n_distinct_tokens": int(np.count_nonzero(counts)),
            "n_samples_trained": int(sum(w.sum() > 0 for w in weights)),
            "fit_seconds": float(expert.fit_time_),
            "stop_reason": step.stop_reason,
        }
        entry = {
            "alpha": record["alpha"],
            "error": record["error"],
            "stop_reason": step.stop_reason,
            "weights": step.weights,
            "payload": expert._model_payload() if step.alpha is not None else None,
            "record": record,
        }
        return expert, entry

    # -- inference plumbing -----------------------------------------------------------
    def _mixture_parts(self, n_experts=None):
        k = len(self.estimators_) if n_experts is None else n_experts
        experts = [e._expert() for e in self.estimators_[:k]]
        return experts, self.estimator_weights_[:k], self.combine

    def _settings(self):
        first = self.estimators_[0]
        return {
            "batch_size": first.batch_size,
            "max_length": first.max_length,
            "max_new_tokens": first.max_new_tokens,
            "choice_score": first.choice_score,
            "random_state": self.random_state,
        }

    # -- staged and ensemble-specific methods ------------------------------------------
    def staged_generate(
        self, X, *, max_new_tokens=None, do_sample=False, temperature=1.0, random_state=None,
        return_tokens=False, speculative_k=None,
    ):
        """Generate with the mixture of the first ``s`` experts, for ``s = 1 .. T``.

        Parameters as in :meth:`generate`; with ``speculative_k`` each stage drafts with its
        own expert of largest weight.

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

        Yields
        ------
        ndarray of shape (n_samples, max_n_choices)
        """
        check_is_fitted(self)
        inputs = check_generation_input(X, require_choices=True)
        for nll in self._choice_nll(inputs, staged=True):
            yield _pad_proba(nll)

    def staged_score(self, X, y):
        """:meth:`score` of the ensemble after each round.

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
        y : array-like
            As in :meth:`token_error`.

        Returns
        -------
        ndarray of shape (len(estimators_),)
        """
        check_is_fitted(self)
        return np.array([e.token_error(X, y) for e in self.estimators_])

    def pseudo_label(
        self, X, *, do_sample=False, temperature=1.0, max_new_tokens=None, random_state=None
    ):
        """Pseudo-labels for the student: what the mixture answers on ``X``.

        Parameters
        ----------
        X : DataFrame or list of str
            Usually the hard questions.
        do_sample, temperature, max_new_tokens, random_state
            Decoding settings for free-text rows (see :meth:`generate`).

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
    def __getstate__(self):
        state = dict(self.__dict__)
        estimators = state.get("estimators_")
        if estimators:
            shared_lora = estimators[0].adapter_name_ is not None
            state["_skw2s_models"] = [e._model_payload() for e in estimators]
            state["_skw2s_lora"] = shared_lora
            state["estimators_"] = [e._without_model() for e in estimators]
        if "tokenizer_" in state:
            state["_skw2s_tokenizer"] = _dump_tokenizer(state.pop("tokenizer_"))
        return state

    def __setstate__(self, state):
        state = dict(state)
        payloads = state.pop("_skw2s_models", None)
        lora = state.pop("_skw2s_lora", False)
        tokenizer = state.pop("_skw2s_tokenizer", None)
        self.__dict__.update(state)
        if tokenizer is not None:
            self.tokenizer_ = _load_tokenizer(tokenizer)
        if not payloads:
            return
        if lora:
            from .models import load_causal_lm

            first = self.estimators_[0]
            shared, _ = load_causal_lm(first.model, device=first.device, dtype=first.dtype)
            for est, payload in zip(self.estimators_, payloads):
                shared = add_adapter(shared, payload, est.adapter_name_)
            for est in self.estimators_:
                est.model_ = shared
        else:
            for est, payload in zip(self.estimators_, payloads):
                est.model_ = load_full_model(payload, est.device)
        for est in self.estimators_:
            est.tokenizer_ = self.tokenizer_
