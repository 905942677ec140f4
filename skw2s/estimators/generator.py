"""LLMGenerator: one causal LM fine-tuned on answers (SFT), as a scikit-learn estimator.

The input format (``X``: a frame with ``prompt`` and optional ``choices``, or prompt strings;
``y``: choice indices or answer strings) is documented once, in :mod:`skw2s.data.inputs`. The
inference methods live in :class:`skw2s.estimators.generation_mixin.GenerationMixin`, shared with
the generator ensembles.
"""

from __future__ import annotations

import logging
import time
from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from ..hf import decoding
from .generation_mixin import GenerationMixin
from ..data.inputs import check_generation_input, check_generation_target
from ..hf.serialization import state_once
from ..hf.tracking import drop_tracking_defaults, restore_tracking_defaults
from .._infra.validation import (
    LOGGING_STEPS,
    NONE,
    PATH,
    POSITIVE_FINITE,
    POSITIVE_INT,
    RANDOM_STATE,
    REPORT_TO,
    VERBOSE,
    Interval,
    StrOptions,
    InstanceOf,
    reset_fitted_attributes,
    resolve_seed,
    validate_params,
)
from ..exceptions import DivergenceError, diverged
from ..hf.training import encode_sft

logger = logging.getLogger(__name__)

__all__ = ["LLMGenerator"]


# ----------------------------------------------------------------------------
# LLMGenerator
# ----------------------------------------------------------------------------
class LLMGenerator(GenerationMixin, BaseEstimator):
    """A causal LM fine-tuned on answers, with the loss on answer tokens only.

    ``fit`` loads ``model``, appends each answer (plus EOS) to its prompt and trains with the
    cross-entropy of the answer tokens (:func:`skw2s.training.train_causal_lm`), fully or with
    LoRA. Multiple-choice rows are answered by the choice with the lowest NLL; free-text rows
    by generation.

    Parameters
    ----------
    model : str, default="smollm2-135m"
        Model spec: offline alias, local directory or Hub id, optionally with a layer slice
        ``"[:k]"`` (see :func:`skw2s.models.parse_model_spec`).
    mode : {"full", "lora"}, default="full"
        Fine-tune every parameter, or LoRA adapters on the attention projections.
    lr : float, default=5e-5
        Learning rate (linear decay, no warm-up); finite and positive.
    n_epochs : int, default=5
        Training epochs (the paper's SFT setting). 0 keeps the pre-trained weights: ``fit``
        only loads the model, a zero-shot reference (boosting measures ``eps_pre`` with it).
    batch_size : int, default=8
        Batch size for training and for inference. Multiple-choice scoring takes this many
        questions per batch, each with all its options (the prompt runs once per question; see
        :mod:`skw2s.decoding`).
    max_length : int, default=512
        Most tokens of prompt + answer; longer prompts are cut from the left with a warning.
    max_new_tokens : int, default=32
        Most tokens generated per prompt by ``generate`` and free-text ``predict``.
    choice_score : {"sum", "mean"}, default="sum"
        Rank choices by the summed NLL of their tokens, or by the mean (length-normalised).
    loss : {"sft", "choice_xent", "choice_logconf"}, default="sft"
        The training loss. ``"sft"``: cross-entropy of the answer's tokens (the chosen
        option's text, or the answer string). ``"choice_xent"`` and ``"choice_logconf"``
        (multiple choice only; :mod:`skw2s.losses`): a loss over each question's options,
        scored as inference scores them (``choice_score``), on the hard label or on soft
        labels given to ``fit`` as ``y_proba``; ``"choice_logconf"`` adds the student's own
        hardened choice, the auxiliary-confidence loss of Burns et al. for multiple choice.
    loss_params : dict, default=None
        Hyperparameters of the loss, e.g. ``{"aux_coef": 0.75}``.
    lora_r : int, default=16
        LoRA rank (``mode="lora"``).
    lora_alpha : float, default=None
        LoRA scaling numerator; None means ``2 * lora_r``.
    lora_target_modules : tuple of str, default=None
        Modules that get adapters; None means the attention projections.
    device : str, default="auto"
        ``"auto"`` is ``cuda`` when present, else CPU.
    dtype : str, default="auto"
        ``"auto"`` is float32 on CPU and bfloat16 on GPU.
    random_state : int, RandomState instance or None, default=None
        Seeds training (data order, LoRA initialisation) and, by default, sampling.
    verbose : int, default=0
        Show progress bars when positive.
    report_to : str or list of str, default="none"
        Experiment trackers the training loop logs to, as the Trainer's ``report_to``
        (``"mlflow"``, ``"wandb"``, ``"tensorboard"``, a list of them, or ``"all"``);
        ``"none"`` logs to none. The run is named by the stage and round that trains it inside
        :class:`~skw2s.WeakToStrongPipeline` and the ensembles (``"weak[ours]/round2"``),
        else by this class's name (see :mod:`skw2s.hf.tracking`). Not part of any cache key.
    logging_steps : int, default=None
        With a tracker, log the loss every this many steps; None: about 50 logs per training
        run. Not part of any cache key.

    Attributes
    ----------
    model_ : transformers.PreTrainedModel or peft.PeftModel
        The fine-tuned model (a peft model in LoRA mode). Inside an ensemble in LoRA mode,
        the learners share one peft model (see :meth:`share_base_with`).
    tokenizer_ : transformers tokenizer
        The model's tokenizer, with a pad token.
    adapter_name_ : str or None
        The LoRA adapter of this estimator inside ``model_`` (None in full mode, and with
        ``n_epochs=0``).
    n_train_tokens_ : int
        Number of answer tokens with a positive weight in the last fit (0 with
        ``n_epochs=0``).
    fit_time_ : float
        Seconds spent training in the last fit.

    See Also
    --------
    TokenAdaBoostGenerator : Boosted mixture of such generators (EnsemW2S, Algorithm 1).

    Notes
    -----
    Input format: see :mod:`skw2s.data.inputs`. A fitted estimator pickles its weights as
    safetensors (LoRA: the adapter only; the base is reloaded from ``model``).

    **Learner protocol.** The ensembles (:class:`~skw2s.TokenAdaBoostGenerator`,
    :class:`~skw2s.UniformEnsembleGenerator`) use only public methods of their learner, so any
    estimator that offers them can be one: ``fit(X, y, token_weight=...)``,
    :meth:`token_mistakes`, :meth:`answer_lengths`, :meth:`as_expert`, the ``tokenizer_``
    attribute, the parameters ``n_epochs`` (0 for a zero-shot fit), ``batch_size``,
    ``max_length``, ``max_new_tokens`` and ``choice_score``, and optionally
    :meth:`share_base_with`. The protocol in full is "The learner protocol" in
    ``docs/design.md``; the ensembles check it in ``fit`` before any training.

    Examples
    --------
    >>> import pandas as pd
    >>> from skw2s import LLMGenerator
    >>> X = pd.DataFrame({"prompt": ["Question: Is ice cold?\\nAnswer:"],
    ...                   "choices": [["yes", "no"]]})
    >>> gen = LLMGenerator("smollm2-135m", mode="lora", lr=1e-4, n_epochs=1)
    >>> gen.fit(X, [0]).predict(X)  # doctest: +SKIP
    array([0])
    """

    _parameter_constraints = {
        "model": [PATH],
        "mode": [StrOptions(("full", "lora"))],
        "lr": [POSITIVE_FINITE],
        "n_epochs": [Interval(Integral, 0, None, closed="left")],
        "batch_size": [POSITIVE_INT],
        "max_length": [Interval(Integral, 2, None, closed="left")],
        "max_new_tokens": [POSITIVE_INT],
        "choice_score": [StrOptions(("sum", "mean"))],
        "loss": [StrOptions(("sft", "choice_xent", "choice_logconf"))],
        "loss_params": [InstanceOf((dict,), "a dict"), NONE],
        "lora_r": [POSITIVE_INT],
        "lora_alpha": [POSITIVE_FINITE, NONE],
        "lora_target_modules": [InstanceOf((tuple, list), "a tuple of str"), NONE],
        "device": [InstanceOf((str,), "a str")],
        "dtype": [InstanceOf((str,), "a str")],
        "random_state": [RANDOM_STATE],
        "verbose": VERBOSE,
        "report_to": REPORT_TO,
        "logging_steps": LOGGING_STEPS,
    }

    def __init__(
        self,
        model="smollm2-135m",
        *,
        mode="full",
        lr=5e-5,
        n_epochs=5,
        batch_size=8,
        max_length=512,
        max_new_tokens=32,
        choice_score="sum",
        loss="sft",
        loss_params=None,
        lora_r=16,
        lora_alpha=None,
        lora_target_modules=None,
        device="auto",
        dtype="auto",
        random_state=None,
        verbose=0,
        report_to="none",
        logging_steps=None,
    ):
        self.model = model
        self.mode = mode
        self.lr = lr
        self.n_epochs = n_epochs
        self.batch_size = batch_size
        self.max_length = max_length
        self.max_new_tokens = max_new_tokens
        self.choice_score = choice_score
        self.loss = loss
        self.loss_params = loss_params
        self.lora_r = lora_r
        self.lora_alpha = lora_alpha
        self.lora_target_modules = lora_target_modules
        self.device = device
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose
        self.report_to = report_to
        self.logging_steps = logging_steps

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        tags.target_tags.required = True
        return tags

    def __sklearn_is_fitted__(self):
        return hasattr(self, "model_")

    # -- fitting -----------------------------------------------------------------
    def _validate(self):
        from ..hf.models import parse_model_spec

        validate_params(self)
        parse_model_spec(self.model)

    def _row_weights(self, encoded, sample_weight, token_weight):
        """Per-token training weights of each row, or None for all ones."""
        n = len(encoded)
        w = None
        if sample_weight is not None:
            w = np.asarray(sample_weight, dtype=np.float64)
            if w.shape != (n,) or not np.all(np.isfinite(w)) or np.any(w < 0):
                raise ValueError(
                    f"sample_weight must be finite, non-negative and of shape ({n},); "
                    f"got shape {w.shape}."
                )
            if not np.any(w > 0):
                raise ValueError("sample_weight is all zero: there is nothing to train on.")
        if w is None and token_weight is None:
            return None
        if token_weight is not None and len(token_weight) != n:
            raise ValueError(
                f"token_weight must hold one array per row ({n}); got {len(token_weight)}."
            )
        weights = []
        for i, ex in enumerate(encoded):
            row = np.ones(ex.n_answer_tokens)
            if token_weight is not None:
                row = np.asarray(token_weight[i], dtype=np.float64)
                if row.shape != (ex.n_answer_tokens,):
                    raise ValueError(
                        f"token_weight[{i}] has shape {row.shape}; row {i} has "
                        f"{ex.n_answer_tokens} answer tokens (see answer_lengths)."
                    )
            weights.append(row * (1.0 if w is None else w[i]))
        return weights

    def fit(self, X, y, sample_weight=None, *, token_weight=None, y_proba=None):
        """Fine-tune the model on ``(X, y)``.

        Parameters
        ----------
        X : DataFrame or list of str
            Prompts, with optional choices (see :mod:`skw2s.data.inputs`).
        y : array-like of shape (n_samples,)
            Choice indices (with choices) or answer strings.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each example, given to each of its answer tokens. Rows with
            weight 0 are left out.
        token_weight : sequence of array-like, default=None
            One non-negative weight per answer token of each row (of the lengths
            :meth:`answer_lengths` gives), for example how often boosting drew the token;
            multiplies ``sample_weight``. Tokens of weight 0 do not train. SFT only.
        y_proba : array-like of shape (n_samples, max_n_choices), default=None
            Soft labels over each question's options (0 beyond its last one), for a choice
            loss; for example an ensemble's ``predict_proba``.

        Returns
        -------
        self : LLMGenerator
            The fitted estimator.

        Raises
        ------
        ValueError
            On invalid parameters, input or weights. A fit that fails leaves the estimator
            unfitted (no fitted attribute survives from an earlier fit).
        """
        from ..hf.models import check_max_length, load_causal_lm
        from ..hf.training import seeded_torch, train_causal_lm

        self._validate()
        reset_fitted_attributes(self)
        inputs = check_generation_input(X)
        answers, indices = check_generation_target(y, inputs)
        loss = self._choice_loss(inputs, indices, y_proba, token_weight)
        model, tokenizer = load_causal_lm(self.model, device=self.device, dtype=self.dtype)
        check_max_length(model, self.max_length, str(self.model))
        encoded = encode_sft(tokenizer, inputs.prompts, answers, max_length=self.max_length)
        weights = self._row_weights(encoded, sample_weight, token_weight)
        start = time.perf_counter()
        adapter, n_tokens = None, 0
        if self.n_epochs > 0:
            seed = resolve_seed(self.random_state)
            n_tokens = sum(
                ex.n_answer_tokens if weights is None else int(np.count_nonzero(wt))
                for ex, wt in zip(encoded, weights or [None] * len(encoded))
            )
            common = dict(mode=self.mode, lr=self.lr, n_epochs=self.n_epochs,
                          batch_size=self.batch_size, random_state=seed, lora_r=self.lora_r,
                          lora_alpha=self.lora_alpha, lora_target_modules=self.lora_target_modules,
                          verbose=self.verbose, report_to=self.report_to,
                          logging_steps=self.logging_steps, run_name=type(self).__name__)
            with seeded_torch(seed, model.device):
                try:
                    if loss is None:
                        model = train_causal_lm(model, tokenizer, encoded, weights, **common)
                    else:
                        from ..hf.choice_training import train_choice_lm

                        model = train_choice_lm(
                            model, tokenizer, inputs.prompts, inputs.choices, indices, loss,
                            soft_labels=y_proba, sample_weight=sample_weight,
                            max_length=self.max_length, choice_score=self.choice_score,
                            **common,
                        )
                except DivergenceError as error:
                    name = f"{type(self).__name__}(model={str(self.model)!r}, mode={self.mode!r})"
                    raise diverged(error, name, lr=self.lr, n_epochs=self.n_epochs) from None
            adapter = "default" if self.mode == "lora" else None
        # Fitted attributes only now, so that a fit that fails leaves none behind.
        self.model_, self.tokenizer_, self.adapter_name_ = model, tokenizer, adapter
        self.fit_time_ = time.perf_counter() - start
        self.n_train_tokens_ = int(n_tokens)
        if self.n_epochs > 0:
            logger.info(
                "%s: trained on %d answer tokens in %.1f s", type(self).__name__, n_tokens,
                self.fit_time_,
            )
        else:  # a zero-shot reference (n_epochs=0): loaded, nothing trained
            logger.debug("%s: loaded %s untrained (n_epochs=0)", type(self).__name__, self.model)
        return self

    def _choice_loss(self, inputs, indices, y_proba, token_weight):
        """The :class:`skw2s.losses.Loss` of a choice loss (checked against the input), or None
        for SFT."""
        if self.loss == "sft":
            if y_proba is not None:
                raise ValueError(
                    "y_proba (soft labels over the options) needs a choice loss: set "
                    "loss='choice_xent' or 'choice_logconf'; SFT trains the answer's text."
                )
            return None
        if not inputs.has_choices:
            raise ValueError(
                f"loss={self.loss!r} trains over each question's options: X needs a 'choices' "
                "column (multiple choice). Use loss='sft' for free-text answers."
            )
        if token_weight is not None:
            raise ValueError(f"token_weight weighs SFT answer tokens; loss={self.loss!r} has none.")
        from ..hf.losses import check_labels, get_loss

        loss = get_loss(self.loss, **(self.loss_params or {}))
        if y_proba is not None:
            width = max(len(c) for c in inputs.choices)
            soft = np.asarray(y_proba, dtype=np.float64)
            if soft.shape != (len(inputs), width):
                raise ValueError(
                    f"y_proba must have shape ({len(inputs)}, {width}); got {soft.shape}.")
        check_labels(loss, indices if y_proba is None else np.asarray(y_proba, dtype=np.float64))
        return loss

    # -- the learner protocol of the ensembles ----------------------------------------
    def as_expert(self):
        """The fitted model as an expert of a mixture (:mod:`skw2s.decoding`).

        Returns
        -------
        expert : transformers model or skw2s.decoding.AdapterExpert
            The model, or its LoRA adapter inside a shared peft model.
        """
        check_is_fitted(self)
        if self.adapter_name_ is not None:
            return decoding.AdapterExpert(self.model_, self.adapter_name_)
        return self.model_

    def share_base_with(self, other, adapter_name):
        """Move this estimator's LoRA adapter onto ``other``'s base model in memory.

        Ensembles of LoRA learners call it so that every learner is one named adapter of one
        peft model: the base weights are held once, and the decoding fast paths run all
        adapters in one forward. Full-mode estimators, and those without an adapter, are left
        as they are.

        Parameters
        ----------
        other : LLMGenerator
            A fitted LoRA estimator of the same base model, whose ``model_`` receives the
            adapter.
        adapter_name : str
            The adapter's name inside the shared model; must be new there.

        Returns
        -------
        self : LLMGenerator
        """
        from ..hf.serialization import add_adapter, dump_adapter

        check_is_fitted(self)
        if self.adapter_name_ is None or other is self:
            return self
        if getattr(other, "adapter_name_", None) is None or other.model != self.model:
            raise ValueError(
                "share_base_with needs another fitted LoRA estimator of the same model spec; "
                f"got {other!r}."
            )
        payload = dump_adapter(self.model_, self.adapter_name_)
        self.model_ = add_adapter(other.model_, payload, adapter_name)
        self.adapter_name_ = adapter_name
        return self

    # -- inference plumbing --------------------------------------------------------
    def _mixture_parts(self):
        return [self.as_expert()], np.ones(1), "prob"

    def _settings(self):
        return {
            "batch_size": self.batch_size,
            "max_length": self.max_length,
            "max_new_tokens": self.max_new_tokens,
            "choice_score": self.choice_score,
            "random_state": self.random_state,
        }

    # -- pickling ------------------------------------------------------------------
    def model_payload(self):
        """The fitted weights as safetensors bytes (LoRA: this estimator's adapter only).

        Returns
        -------
        payload : dict
            ``{"kind": "lora", ...}`` or ``{"kind": "full", ...}`` (see
            :mod:`skw2s.hf.serialization`).
        """
        from ..hf.serialization import dump_adapter, dump_full_model

        check_is_fitted(self)
        if self.adapter_name_ is not None:
            return dump_adapter(self.model_, self.adapter_name_)
        return dump_full_model(self.model_)

    @state_once
    def __getstate__(self):
        from ..hf.serialization import dump_tokenizer

        state = drop_tracking_defaults(dict(self.__dict__))
        if "model_" in state:
            state["_skw2s_model"] = self.model_payload()
            state["_skw2s_tokenizer"] = dump_tokenizer(state["tokenizer_"])
            del state["model_"], state["tokenizer_"]
        return state

    def __setstate__(self, state):
        from ..hf.serialization import add_adapter, load_full_model, load_tokenizer

        state = restore_tracking_defaults(state)
        payload = state.pop("_skw2s_model", None)
        tokenizer = state.pop("_skw2s_tokenizer", None)
        self.__dict__.update(state)
        if payload is None:
            return
        if payload["kind"] == "lora":
            from ..hf.models import load_causal_lm

            base, _ = load_causal_lm(self.model, device=self.device, dtype=self.dtype)
            self.model_ = add_adapter(base, payload, self.adapter_name_)
        else:
            self.model_ = load_full_model(payload, self.device)
        self.tokenizer_ = load_tokenizer(tokenizer)
