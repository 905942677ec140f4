"""LLMGenerator: one causal LM fine-tuned on answers (SFT), as a scikit-learn estimator.

The input format (``X``: a frame with ``prompt`` and optional ``choices``, or prompt strings;
``y``: choice indices or answer strings) is documented once, in :mod:`skw2s._inputs`. The
inference methods (``generate``, ``predict``, ``predict_proba``, ``score``, ``token_error``)
live in :class:`GenerationMixin` and run a *mixture of experts* through
:mod:`skw2s.scoring`; a single fine-tuned model is the mixture of one expert, so
:class:`~skw2s.TokenAdaBoostGenerator` reuses exactly the same code.
"""

from __future__ import annotations

import contextlib
import json
import logging
import numbers
import time

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from . import decoding as scoring
from ._inputs import check_generation_input, check_generation_target
from .training import encode_sft

logger = logging.getLogger(__name__)

__all__ = ["GenerationMixin", "LLMGenerator"]

MODES = ("full", "lora")
CHOICE_SCORES = ("sum", "mean")


# ----------------------------------------------------------------------------
# Parameter checks, in scikit-learn's wording
# ----------------------------------------------------------------------------
def _check_int(est, name, low=1, allow_none=False):
    value = getattr(est, name)
    if allow_none and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        none = " or None" if allow_none else ""
        raise ValueError(
            f"The {name!r} parameter of {type(est).__name__} must be an int in the range "
            f"[{low}, inf){none}. Got {value!r} instead."
        )


def _check_positive_real(est, name):
    value = getattr(est, name)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(
            f"The {name!r} parameter of {type(est).__name__} must be a float in the range "
            f"(0, inf). Got {value!r} instead."
        )


def _check_option(est, name, options):
    value = getattr(est, name)
    if not isinstance(value, str) or value not in options:
        allowed = ", ".join(repr(o) for o in options)
        raise ValueError(
            f"The {name!r} parameter of {type(est).__name__} must be a str among "
            f"{{{allowed}}}. Got {value!r} instead."
        )


def _seed_from(random_state):
    """An int seed drawn from ``check_random_state(random_state)``."""
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


@contextlib.contextmanager
def _seeded_torch(seed, device):
    """Seed torch's global generators inside the block and restore them afterwards.

    peft initialises LoRA matrices from the global generator, and the Trainer reseeds it; the
    fork keeps both effects away from the caller.
    """
    import torch

    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


# ----------------------------------------------------------------------------
# Snapshots of fitted models (safetensors bytes, no pickled tensors)
# ----------------------------------------------------------------------------
def _json_default(obj):
    if isinstance(obj, set):
        return sorted(obj)
    if hasattr(obj, "value"):
        return obj.value
    return str(obj)


def dump_adapter(model, adapter_name):
    """``{"kind": "lora", "config": json, "weights": safetensors bytes}`` of one adapter."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save

    state = get_peft_model_state_dict(model, adapter_name=adapter_name, save_embedding_layers=False)
    state = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    config = json.dumps(model.peft_config[adapter_name].to_dict(), default=_json_default)
    return {"kind": "lora", "config": config, "weights": save(state)}


def add_adapter(model, payload, adapter_name):
    """Add the adapter in ``payload`` to ``model`` under ``adapter_name``.

    ``model`` is a plain causal LM (it is wrapped into a peft model) or a peft model that
    already holds other adapters. Returns the peft model, in eval mode.
    """
    from peft import PeftConfig, PeftModel, get_peft_model, set_peft_model_state_dict
    from safetensors.torch import load

    config = PeftConfig.from_peft_type(**json.loads(payload["config"]))
    config.inference_mode = True
    if isinstance(model, PeftModel):
        model.add_adapter(adapter_name, config)
    else:
        model = get_peft_model(model, config, adapter_name=adapter_name)
    state = load(payload["weights"])
    result = set_peft_model_state_dict(model, state, adapter_name=adapter_name)
    missing = [k for k in getattr(result, "unexpected_keys", []) if adapter_name in k]
    if missing:
        raise ValueError(f"Adapter weights do not fit the model: unexpected keys {missing[:3]}.")
    model.eval()
    return model


def dump_full_model(model):
    """``{"kind": "full", "files": {...}, "dtype": str}``: a whole model as safetensors files."""
    from ._serialization import dump_pretrained

    dtype = str(model.dtype).split(".")[-1]
    return {"kind": "full", "files": dump_pretrained(model), "dtype": dtype}


def load_full_model(payload, device):
    """Load a model saved by :func:`dump_full_model` onto ``device`` (eval mode)."""
    from transformers import AutoModelForCausalLM

    from ._serialization import load_pretrained
    from .models import resolve_device

    model = load_pretrained(
        payload["files"], AutoModelForCausalLM.from_pretrained, dtype=payload["dtype"]
    )
    model.to(resolve_device(device))
    model.eval()
    return model


def _dump_tokenizer(tokenizer):
    from ._serialization import dump_pretrained

    return {"files": dump_pretrained(tokenizer), "padding_side": tokenizer.padding_side}


def _load_tokenizer(payload):
    from transformers import AutoTokenizer

    from ._serialization import load_pretrained

    tokenizer = load_pretrained(payload["files"], AutoTokenizer.from_pretrained)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token if tokenizer.eos_token else tokenizer.unk_token
    tokenizer.padding_side = payload["padding_side"]
    return tokenizer


def _pad_proba(nll_rows):
    """Softmax over ``-nll`` per row, padded with 0 to the widest row."""
    width = max(len(r) for r in nll_rows)
    out = np.zeros((len(nll_rows), width))
    for i, r in enumerate(nll_rows):
        z = -np.asarray(r, dtype=np.float64)
        z = np.exp(z - z.max())
        out[i, : len(r)] = z / z.sum()
    return out


# ----------------------------------------------------------------------------
# Inference shared by LLMGenerator and TokenAdaBoostGenerator
# ----------------------------------------------------------------------------
class GenerationMixin:
    """Inference methods of the generation estimators, written once for a mixture of experts.

    A subclass provides ``_mixture_parts()`` returning ``(experts, alphas, combine)``,
    ``_settings()`` returning ``batch_size``, ``max_length``, ``max_new_tokens``,
    ``choice_score`` and ``random_state``, and the fitted ``tokenizer_``. A single model is the
    mixture of one expert. The ``staged=True`` option of the private helpers returns one result
    per prefix of the experts (the ensemble's ``staged_*`` methods).
    """

    def _choice_nll(self, inputs, *, staged=False):
        experts, alphas, combine = self._mixture_parts()
        s = self._settings()
        return scoring.choice_nll_mixture(
            experts, alphas, self.tokenizer_, inputs.prompts, inputs.choices, combine=combine,
            reduction=s["choice_score"], batch_size=s["batch_size"], max_length=s["max_length"],
            staged=staged, verbose=getattr(self, "verbose", 0),
        )

    def _token_mistakes(self, X, y, *, staged=False):
        """Flat 0/1 mistakes of teacher-forced argmax on the answers of ``(X, y)``."""
        inputs = check_generation_input(X)
        answers, _ = check_generation_target(y, inputs)
        s = self._settings()
        encoded = encode_sft(self.tokenizer_, inputs.prompts, answers, max_length=s["max_length"])
        experts, alphas, combine = self._mixture_parts()
        preds = scoring.token_predictions_mixture(
            experts, alphas, self.tokenizer_, encoded, combine=combine,
            batch_size=s["batch_size"], staged=staged,
            verbose=getattr(self, "verbose", 0),
        )
        stages = preds if staged else [preds]
        return [scoring.answer_token_errors(encoded, p)[0] for p in stages]

    def _generate_tokens(self, prompts, experts, alphas, combine, *, max_new_tokens, do_sample,
                         temperature, random_state, speculative_k=None, draft_expert=None):
        s = self._settings()
        return scoring.mixture_generate(
            experts, alphas, self.tokenizer_, prompts, combine=combine,
            max_new_tokens=s["max_new_tokens"] if max_new_tokens is None else max_new_tokens,
            do_sample=do_sample, temperature=temperature,
            random_state=s["random_state"] if random_state is None else random_state,
            batch_size=s["batch_size"], max_length=s["max_length"],
            speculative_k=speculative_k, draft_expert=draft_expert,
            verbose=getattr(self, "verbose", 0),
        )

    def _decode(self, tokens, return_tokens):
        if return_tokens:
            return tokens
        return self.tokenizer_.batch_decode(tokens, skip_special_tokens=True)

    def generate(
        self, X, *, max_new_tokens=None, do_sample=False, temperature=1.0, random_state=None,
        return_tokens=False, speculative_k=None, draft_expert=None,
    ):
        """Generate an answer for each prompt (choices, when present, are ignored).

        Parameters
        ----------
        X : DataFrame or list of str
            Prompts in the generation input format (see :mod:`skw2s._inputs`).
        max_new_tokens : int, default=None
            Most tokens to generate per prompt; default: the ``max_new_tokens`` setting.
        do_sample : bool, default=False
            Sample instead of taking the argmax (greedy).
        temperature : float, default=1.0
            Sampling temperature.
        random_state : int, RandomState instance or None, default=None
            Seeds sampling; default: the estimator's ``random_state``.
        return_tokens : bool, default=False
            Return token ids instead of decoded strings.
        speculative_k : int or None, default=None
            Greedy speculative mixture decoding: one expert drafts ``speculative_k`` tokens and
            the mixture verifies them in one forward per expert; the tokens are those of plain
            greedy decoding (see :func:`skw2s.scoring.mixture_generate`). Needs
            ``do_sample=False``. Useful for an ensemble; a single model gains nothing.
        draft_expert : int or None, default=None
            Index of the drafting expert; default: the one with the largest weight.

        Returns
        -------
        list of str, or list of list of int
            The generated continuation of each prompt, without the EOS token.
        """
        check_is_fitted(self)
        inputs = check_generation_input(X)
        experts, alphas, combine = self._mixture_parts()
        tokens = self._generate_tokens(
            inputs.prompts, experts, alphas, combine, max_new_tokens=max_new_tokens,
            do_sample=do_sample, temperature=temperature, random_state=random_state,
            speculative_k=speculative_k, draft_expert=draft_expert,
        )
        return self._decode(tokens, return_tokens)

    def predict(self, X):
        """Predict the answer of each row.

        Parameters
        ----------
        X : DataFrame or list of str
            Generation input (see :mod:`skw2s._inputs`).

        Returns
        -------
        ndarray of shape (n_samples,)
            With choices: the index of the choice with the lowest NLL (int64). Without: the
            greedy generated text (object array of str).
        """
        check_is_fitted(self)
        inputs = check_generation_input(X)
        if inputs.has_choices:
            return np.array([int(np.argmin(r)) for r in self._choice_nll(inputs)], dtype=np.int64)
        return np.array(self.generate(inputs.prompts), dtype=object)

    def predict_proba(self, X):
        """Probability of each choice: a softmax over the choices' negative NLLs.

        Parameters
        ----------
        X : DataFrame
            Multiple-choice input with a ``choices`` column.

        Returns
        -------
        ndarray of shape (n_samples, max_n_choices)
            Row ``i`` holds the probabilities of its choices in order; when rows have different
            numbers of choices, the missing entries are 0 (each row still sums to 1).
        """
        check_is_fitted(self)
        inputs = check_generation_input(X, require_choices=True)
        return _pad_proba(self._choice_nll(inputs))

    def score(self, X, y):
        """Option accuracy (multiple choice) or token accuracy (free text).

        Parameters
        ----------
        X : DataFrame or list of str
            Generation input.
        y : array-like
            Choice indices (with choices) or answer strings.

        Returns
        -------
        float
            With choices: the fraction of rows whose correct choice has the lowest NLL.
            Without: the fraction of answer tokens (EOS included) that the teacher-forced
            argmax gets right.
        """
        check_is_fitted(self)
        inputs = check_generation_input(X)
        if inputs.has_choices:
            _, indices = check_generation_target(y, inputs)
            return float(np.mean(self.predict(X) == indices))
        return 1.0 - self.token_error(X, y)

    def token_error(self, X, y):
        """Teacher-forced token error on the answers of ``(X, y)``.

        Parameters
        ----------
        X : DataFrame or list of str
            Generation input.
        y : array-like
            Choice indices (the answer is the correct choice's completion) or answer strings.

        Returns
        -------
        float
            The fraction of answer tokens (EOS included), over all rows, whose argmax
            prediction given the gold prefix is wrong.
        """
        check_is_fitted(self)
        return float(np.mean(self._token_mistakes(X, y)[0]))


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
        Learning rate (linear decay, no warm-up).
    n_epochs : int, default=5
        Training epochs (the paper's SFT setting).
    batch_size : int, default=8
        Batch size for training and for inference. Multiple-choice scoring takes this many
        questions per batch, each with all its options (the prompt runs once per question; see
        :mod:`skw2s.scoring`).
    max_length : int, default=512
        Most tokens of prompt + answer; longer prompts are cut from the left with a warning.
    max_new_tokens : int, default=32
        Most tokens generated per prompt by ``generate`` and free-text ``predict``.
    choice_score : {"sum", "mean"}, default="sum"
        Rank choices by the summed NLL of their tokens, or by the mean (length-normalised).
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

    Attributes
    ----------
    model_ : transformers.PreTrainedModel or peft.PeftModel
        The fine-tuned model (a peft model in LoRA mode). Inside a
        :class:`~skw2s.TokenAdaBoostGenerator` in LoRA mode, all rounds share one peft model.
    tokenizer_ : transformers tokenizer
        The model's tokenizer, with a pad token.
    adapter_name_ : str or None
        The LoRA adapter of this estimator inside ``model_`` (None in full mode).
    n_train_tokens_ : int
        Number of answer tokens with a positive weight in the last fit.
    fit_time_ : float
        Seconds spent training in the last fit.

    See Also
    --------
    TokenAdaBoostGenerator : Boosted mixture of such generators (EnsemW2S, Algorithm 1).

    Notes
    -----
    Input format: see :mod:`skw2s._inputs`. A fitted estimator pickles its weights as
    safetensors (LoRA: the adapter only; the base is reloaded from ``model``).

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
        lora_r=16,
        lora_alpha=None,
        lora_target_modules=None,
        device="auto",
        dtype="auto",
        random_state=None,
        verbose=0,
    ):
        self.model = model
        self.mode = mode
        self.lr = lr
        self.n_epochs = n_epochs
        self.batch_size = batch_size
        self.max_length = max_length
        self.max_new_tokens = max_new_tokens
        self.choice_score = choice_score
        self.lora_r = lora_r
        self.lora_alpha = lora_alpha
        self.lora_target_modules = lora_target_modules
        self.device = device
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        tags.target_tags.required = True
        return tags

    # -- fitting -----------------------------------------------------------------
    def _validate_params(self):
        from .models import parse_model_spec

        parse_model_spec(self.model)
        _check_option(self, "mode", MODES)
        _check_option(self, "choice_score", CHOICE_SCORES)
        _check_positive_real(self, "lr")
        for name in ("n_epochs", "batch_size", "max_new_tokens", "lora_r"):
            _check_int(self, name)
        _check_int(self, "max_length", low=2)
        if self.lora_alpha is not None:
            _check_positive_real(self, "lora_alpha")

    def _load(self):
        """Load the pre-trained model and tokenizer into ``model_`` / ``tokenizer_``."""
        from .models import load_causal_lm

        self.model_, self.tokenizer_ = load_causal_lm(self.model, device=self.device, dtype=self.dtype)
        self.adapter_name_ = None
        return self

    def _encode(self, prompts, answers):
        return encode_sft(self.tokenizer_, prompts, answers, max_length=self.max_length)

    def _train_encoded(self, encoded, token_weights=None):
        """Fine-tune the loaded pre-trained ``model_`` on ``encoded`` with per-token weights."""
        from .training import train_causal_lm

        seed = _seed_from(self.random_state)
        n_tokens = sum(
            ex.n_answer_tokens if token_weights is None else int(np.count_nonzero(w))
            for ex, w in zip(encoded, token_weights or [None] * len(encoded))
        )
        start = time.perf_counter()
        with _seeded_torch(seed, self.model_.device):
            self.model_ = train_causal_lm(
                self.model_,
                self.tokenizer_,
                encoded,
                token_weights,
                mode=self.mode,
                lr=self.lr,
                n_epochs=self.n_epochs,
                batch_size=self.batch_size,
                random_state=seed,
                lora_r=self.lora_r,
                lora_alpha=self.lora_alpha,
                lora_target_modules=self.lora_target_modules,
                verbose=self.verbose,
            )
        self.fit_time_ = time.perf_counter() - start
        self.n_train_tokens_ = int(n_tokens)
        self.adapter_name_ = "default" if self.mode == "lora" else None
        logger.info(
            "%s: trained on %d answer tokens in %.1f s", type(self).__name__, n_tokens,
            self.fit_time_,
        )
        return self

    def fit(self, X, y, sample_weight=None):
        """Fine-tune the model on ``(X, y)``.

        Parameters
        ----------
        X : DataFrame or list of str
            Prompts, with optional choices (see :mod:`skw2s._inputs`).
        y : array-like of shape (n_samples,)
            Choice indices (with choices) or answer strings.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each example, given to each of its answer tokens. Rows with
            weight 0 are left out.

        Returns
        -------
        self : LLMGenerator
            The fitted estimator.
        """
        self._validate_params()
        inputs = check_generation_input(X)
        answers, _ = check_generation_target(y, inputs)
        weights = None
        if sample_weight is not None:
            w = np.asarray(sample_weight, dtype=np.float64)
            if w.shape != (len(inputs),) or not np.all(np.isfinite(w)) or np.any(w < 0):
                raise ValueError(
                    f"sample_weight must be finite, non-negative and of shape ({len(inputs)},); "
                    f"got shape {w.shape}."
                )
            if not np.any(w > 0):
                raise ValueError("sample_weight is all zero: there is nothing to train on.")
        self._load()
        encoded = self._encode(inputs.prompts, answers)
        if sample_weight is not None:
            weights = [np.full(ex.n_answer_tokens, wi) for ex, wi in zip(encoded, w)]
        return self._train_encoded(encoded, weights)

    # -- inference plumbing --------------------------------------------------------
    def _expert(self):
        if self.adapter_name_ is not None:
            return scoring.AdapterExpert(self.model_, self.adapter_name_)
        return self.model_

    def _mixture_parts(self):
        return [self._expert()], np.ones(1), "prob"

    def _settings(self):
        return {
            "batch_size": self.batch_size,
            "max_length": self.max_length,
            "max_new_tokens": self.max_new_tokens,
            "choice_score": self.choice_score,
            "random_state": self.random_state,
        }

    # -- pickling ------------------------------------------------------------------
    def _model_payload(self):
        """The fitted weights as safetensors bytes (LoRA: this estimator's adapter only)."""
        if self.adapter_name_ is not None:
            return dump_adapter(self.model_, self.adapter_name_)
        return dump_full_model(self.model_)

    def _without_model(self):
        """A shallow copy with the fitted model and tokenizer removed."""
        other = object.__new__(type(self))
        other.__dict__.update(
            {k: v for k, v in self.__dict__.items() if k not in ("model_", "tokenizer_")}
        )
        return other

    def __getstate__(self):
        state = dict(self.__dict__)
        if "model_" in state:
            state["_skw2s_model"] = self._model_payload()
            state["_skw2s_tokenizer"] = _dump_tokenizer(state["tokenizer_"])
            del state["model_"], state["tokenizer_"]
        return state

    def __setstate__(self, state):
        state = dict(state)
        payload = state.pop("_skw2s_model", None)
        tokenizer = state.pop("_skw2s_tokenizer", None)
        self.__dict__.update(state)
        if payload is None:
            return
        if payload["kind"] == "lora":
            from .models import load_causal_lm

            base, _ = load_causal_lm(self.model, device=self.device, dtype=self.dtype)
            self.model_ = add_adapter(base, payload, self.adapter_name_)
        else:
            self.model_ = load_full_model(payload, self.device)
        self.tokenizer_ = _load_tokenizer(tokenizer)
