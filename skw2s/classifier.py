"""LLMClassifier: one fine-tuned language model as a binary text classifier.

The classifier reads the hidden state of the last non-pad token of each text and applies a
linear head (Burns et al., 2023). Three ways to train it (``mode``):

- ``"head"``: the LM body is frozen and only the linear head learns, on features extracted once.
  Every head-mode classifier in a process with the same ``(model, device, dtype)`` shares one
  loaded body, and the features of a text are computed once per ``(body, max_length)`` and kept
  in a bounded in-memory cache (see :func:`clear_cache`). Boosting rounds, cross-validation
  splits and predictions on the same texts therefore pay for the LM forward passes only once.
- ``"lora"``: low-rank adapters on the attention projections plus the head (peft);
- ``"full"``: every weight trains.

torch, transformers and peft are imported inside functions only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from numbers import Integral, Real
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from ._validation import (
    NONE,
    PATH,
    Interval,
    StrOptions,
    _InstanceOf,
    check_binary_target,
    check_sample_weight,
    check_text_input,
    reset_fitted_attributes,
    resolve_seed,
    validate_params,
)

logger = logging.getLogger(__name__)

__all__ = ["LLMClassifier", "clear_cache"]

AUTO_HYPERPARAMETERS = {
    "head": {"lr": 1e-2, "n_epochs": 200},
    "lora": {"lr": 2e-4, "n_epochs": 3},
    "full": {"lr": 5e-5, "n_epochs": 3},
}
"""What ``lr="auto"`` and ``n_epochs="auto"`` mean in each mode."""

FEATURE_CACHE_BYTES = 512 * 2**20
"""Upper bound on the memory held by cached head-mode features (least recently used go first)."""

BODY_CACHE_SIZE = 2
"""How many frozen LM bodies head-mode classifiers keep loaded at once."""

_LOCK = threading.RLock()
_BODIES: OrderedDict = OrderedDict()
_FEATURES: OrderedDict = OrderedDict()
_FEATURE_BYTES = [0]


class _FrozenBody:
    """A loaded, frozen LM body shared by head-mode classifiers."""

    def __init__(self, key, body, tokenizer, hidden_size, head_bias):
        self.key, self.body, self.tokenizer = key, body, tokenizer
        self.hidden_size, self.head_bias = hidden_size, head_bias
        self.lm_head_weight = None


def _body_key(model, device, dtype):
    return (str(model), str(device), str(dtype))


def _frozen_body(model, device, dtype):
    """Return the shared frozen body for ``(model, device, dtype)``, loading it once."""
    from .models import load_sequence_classifier, resolve_device
    from .training import classification_head

    resolved = resolve_device(device)
    key = _body_key(model, resolved, dtype)
    with _LOCK:
        if key in _BODIES:
            _BODIES.move_to_end(key)
            return _BODIES[key]
        start = time.perf_counter()
        seqcls, tokenizer = load_sequence_classifier(
            model, num_labels=2, device=resolved, dtype=dtype
        )
        head = classification_head(seqcls)
        body = seqcls.base_model
        body.requires_grad_(False)
        body.eval()
        entry = _FrozenBody(key, body, tokenizer, head.in_features, head.bias is not None)
        _BODIES[key] = entry
        while len(_BODIES) > BODY_CACHE_SIZE:
            old_key, _ = _BODIES.popitem(last=False)
            _drop_features(old_key)
        logger.info(
            "Loaded frozen body of %s on %s in %.1f s", model, resolved, time.perf_counter() - start
        )
        return entry


def _drop_features(body_key):
    for k in [k for k in _FEATURES if k[0] == body_key]:
        _FEATURE_BYTES[0] -= _FEATURES.pop(k).nbytes


def clear_cache():
    """Forget every cached frozen LM body and every cached head-mode feature.

    Fitted head-mode classifiers keep a reference to their body and still predict; their
    features are recomputed when next needed.
    """
    with _LOCK:
        _BODIES.clear()
        _FEATURES.clear()
        _FEATURE_BYTES[0] = 0


def _lm_head_weight(entry):
    """The LM head of a frozen body's checkpoint (the input embedding when tied), loaded once."""
    if entry.lm_head_weight is not None:
        return entry.lm_head_weight
    weight = None
    config = entry.body.config
    if getattr(config, "tie_word_embeddings", False):
        weight = entry.body.get_input_embeddings().weight
    else:
        from safetensors import safe_open

        from .models import parse_model_spec, resolve_model_path

        directory = resolve_model_path(entry.key[0])
        files = sorted(Path(directory).glob("*.safetensors")) if Path(directory).is_dir() else []
        for path in files:
            with safe_open(str(path), framework="pt") as handle:
                if "lm_head.weight" in handle.keys():
                    weight = handle.get_tensor("lm_head.weight")
                    break
        if weight is None:
            raise ValueError(
                f"head_features='answer_scores' needs the LM head of {parse_model_spec(entry.key[0]).base!r}: "
                "its embeddings are not tied and no lm_head.weight was found in its safetensors files."
            )
        weight = weight.to(entry.body.get_input_embeddings().weight.device)
    entry.lm_head_weight = weight.detach()
    return entry.lm_head_weight


def _extract(entry, texts, *, kind, marker, max_length, batch_size):
    from .training import answer_score_features, extract_features

    if kind == "answer_scores":
        return answer_score_features(
            entry.body, _lm_head_weight(entry), entry.tokenizer, texts, marker=marker,
            batch_size=batch_size, max_length=max_length,
        )
    return extract_features(entry.body, entry.tokenizer, texts, batch_size=batch_size, max_length=max_length)


def _features(entry, texts, *, max_length, batch_size, verbose, kind="last_token", marker=None):
    """Features of ``texts`` (float32, ``(n, d)``), computing only the uncached ones.

    ``kind="last_token"``: the last token's hidden state (``d = hidden size``);
    ``kind="answer_scores"``: the LM's scores of the answer after ``marker``
    (:func:`skw2s.training.answer_score_features`, ``d = 5``).
    """
    found = {}
    tag = (max_length,) if kind == "last_token" else (max_length, kind, marker)
    with _LOCK:
        for text in dict.fromkeys(texts):
            row = _FEATURES.get((entry.key, *tag, text))
            if row is not None:
                _FEATURES.move_to_end((entry.key, *tag, text))
                found[text] = row
    # Longest first, so that each batch holds texts of similar length (little padding).
    missing = sorted((t for t in dict.fromkeys(texts) if t not in found), key=len, reverse=True)
    if missing:
        start = time.perf_counter()
        chunk = max(1, batch_size)
        for i in tqdm(
            range(0, len(missing), chunk), desc="features", disable=not verbose, leave=False
        ):
            part = missing[i : i + chunk]
            feats = _extract(entry, part, kind=kind, marker=marker, max_length=max_length, batch_size=chunk)
            for text, row in zip(part, feats, strict=True):
                found[text] = np.array(row, dtype=np.float32)
        with _LOCK:
            for text in missing:
                key = (entry.key, *tag, text)
                if key not in _FEATURES:
                    _FEATURES[key] = found[text]
                    _FEATURE_BYTES[0] += found[text].nbytes
            while _FEATURE_BYTES[0] > FEATURE_CACHE_BYTES and _FEATURES:
                _FEATURE_BYTES[0] -= _FEATURES.popitem(last=False)[1].nbytes
        logger.info(
            "Extracted features of %d text(s) in %.1f s (%d cached)",
            len(missing),
            time.perf_counter() - start,
            len(found) - len(missing),
        )
    return np.stack([found[t] for t in texts])


@contextmanager
def _single_thread():
    """Run torch on one intra-op thread for the duration (restored after).

    Head training is a few hundred tiny full-batch steps. With two or more threads on a busy
    machine each step waits on the other threads: measured on 2 shared cores, 200 Adam steps on
    600 x 576 features took 17 s with 2 threads and 0.1 s with 1. The setting is process-wide,
    so the head of two classifiers fitted in parallel threads may briefly run single-threaded.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _head_logits(head, features):
    weight = head.weight.detach().double().cpu().numpy()
    logits = np.asarray(features, dtype=np.float64) @ weight.T
    if head.bias is not None:
        logits += head.bias.detach().double().cpu().numpy()
    return logits


def _model_logits(model, tokenizer, texts, *, max_length, batch_size, verbose):
    """Logits of a sequence-classification model, batched by length, in input order."""
    import torch

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
    out = np.empty((len(texts), 2), dtype=np.float64)
    with torch.no_grad():
        for start in tqdm(
            range(0, len(order), batch_size), desc="predict", disable=not verbose, leave=False
        ):
            idx = order[start : start + batch_size]
            enc = tokenizer(
                [texts[i] for i in idx],
                truncation=True,
                max_length=max_length,
                padding=True,
                return_tensors="pt",
            ).to(model.device)
            logits = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
            out[idx] = logits.float().cpu().numpy()
    return out


def _is_peft(model):
    return hasattr(model, "peft_config")


class LLMClassifier(ClassifierMixin, BaseEstimator):
    """A language model fine-tuned as a binary text classifier.

    The hidden state of the last non-pad token of each text feeds a linear head with two
    outputs (Burns et al., 2023). ``mode`` chooses what trains: the head alone on frozen
    features (``"head"``, the default: seconds on a CPU once features exist), LoRA adapters
    plus the head (``"lora"``), or every weight (``"full"``). Training is weighted by
    ``sample_weight``, so the classifier serves as a weak learner of
    :class:`~skw2s.LLMAdaBoostClassifier`.

    Parameters
    ----------
    model : str or path-like, default="smollm2-135m"
        Model spec: an offline alias (``"smollm2-135m"``, ``"gemma3-270m"``), a local
        directory written by ``save_pretrained`` or a Hugging Face Hub id, optionally with a
        layer slice ``"name[:k]"`` (see :func:`skw2s.models.parse_model_spec`). Loaded in
        ``fit``.
    mode : {"head", "lora", "full"}, default="head"
        ``"head"`` freezes the LM and trains only the linear head (full-batch Adam on cached
        features; cheapest, and the default for CPU-only machines). ``"lora"`` trains LoRA
        adapters on the attention projections and the head. ``"full"`` trains every weight.
    lr : float or "auto", default="auto"
        Learning rate. ``"auto"`` is 1e-2 in head mode, 2e-4 in lora mode and 5e-5 in full
        mode (the public EnsemW2S code used 5e-5 for gpt2); see ``AUTO_HYPERPARAMETERS``.
    n_epochs : int or "auto", default="auto"
        Passes over the training data (lora, full). In head mode each epoch is one full-batch
        Adam step, so ``"auto"`` is 200 there and 3 (the paper's binary setting) otherwise.
    batch_size : int, default=8
        Batch size of training (lora, full) and of every forward pass (features, prediction).
    max_length : int, default=256
        Texts are truncated to this many tokens.
    lora_r : int, default=16
        LoRA rank (``mode="lora"``).
    lora_alpha : float, default=None
        LoRA scaling; None means ``2 * lora_r``.
    head_features : {"last_token", "answer_scores"}, default="last_token"
        What the head reads in head mode. ``"last_token"``: the hidden state of the last
        token (Burns et al.). ``"answer_scores"``: the frozen LM's own scores of the answer,
        the text after the last ``answer_marker``: the mean, sum and minimum log-probability
        of its tokens, the first token's, and the log of its length
        (:func:`skw2s.training.answer_score_features`), so the head starts from what the LM
        head knows (a zero-shot reader thresholds the mean log-probability) instead of a probe
        of its hidden states.
    answer_marker : str, default=" A: "
        With ``head_features="answer_scores"``: the string before the answer in each text
        (``" A: "`` for :func:`skw2s.datasets.format_classification` texts).
    device : str, default="auto"
        ``"auto"`` means ``cuda`` when present, else CPU; or ``"cpu"``, ``"cuda:1"`` ...
    dtype : str, default="auto"
        Weight dtype: ``"auto"`` is float32 on CPU and bfloat16 on GPU.
    random_state : int, RandomState instance or None, default=None
        Seeds the head's initialisation and the Trainer (data order, LoRA init). None draws a
        seed from numpy's global generator, so repeated fits differ.
    verbose : int, default=0
        Show progress bars (feature extraction, training, prediction) when positive.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
        The two labels, sorted (``np.unique(y)``); ``classes_[1]`` is the positive class of
        :meth:`decision_function`.
    n_classes_ : int
        Always 2.
    model_ : transformers.PreTrainedModel
        In head mode the frozen LM body (shared with every head-mode classifier of the same
        ``model``, ``device`` and ``dtype`` in this process); otherwise the trained
        sequence-classification model (a peft model in lora mode).
    tokenizer_ : transformers.PreTrainedTokenizerBase
        The model's tokenizer, with a pad token and right padding.
    head_ : torch.nn.Linear or None
        The trained linear head in head mode (float32, on CPU); None in lora and full modes,
        where the head is part of ``model_``.
    fit_seconds_ : float
        Wall-clock time of the last ``fit``.

    See Also
    --------
    LLMAdaBoostClassifier : AdaBoost (Algorithm 2 of EnsemW2S) over LLMClassifier learners.

    Notes
    -----
    **Pickling.** ``pickle`` and ``joblib.dump`` of a fitted classifier hold no pickled
    tensors: ``__getstate__`` stores the weights as safetensors bytes and only what cannot be
    rebuilt from the ``model`` spec. Head mode stores the head's weights alone (a few KB) and
    rebuilds the frozen body from the spec when unpickled; lora mode stores the adapter files
    (``adapter_model.safetensors``, written by peft's ``save_pretrained``, which include the
    head) and rebuilds the base model from the spec; full mode stores the whole model as
    ``save_pretrained`` writes it. The tokenizer is always reloaded from the spec. The
    ``device`` *parameter* is stored, so a classifier fitted on a GPU with ``device="auto"``
    unpickles on a CPU-only machine. The spec must therefore still resolve where the pickle is
    loaded.

    References
    ----------
    .. [1] Burns et al. (2023). Weak-to-Strong Generalization: Eliciting Strong Capabilities
       With Weak Supervision. arXiv:2312.09390.
    .. [2] EnsemW2S (2024). arXiv:2410.04571.

    Examples
    --------
    >>> from skw2s import LLMClassifier
    >>> X = ["Q: What do plants absorb? A: carbon dioxide", "Q: What do plants absorb? A: gold"]
    >>> y = ["right", "wrong"]
    >>> clf = LLMClassifier("smollm2-135m", mode="head", random_state=0)  # doctest: +SKIP
    >>> clf.fit(X, y).predict(X)  # doctest: +SKIP
    array(['right', 'wrong'], dtype='<U5')
    """

    def __init__(
        self,
        model="smollm2-135m",
        *,
        mode="head",
        lr="auto",
        n_epochs="auto",
        batch_size=8,
        max_length=256,
        lora_r=16,
        lora_alpha=None,
        head_features="last_token",
        answer_marker=" A: ",
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
        self.lora_r = lora_r
        self.lora_alpha = lora_alpha
        self.head_features = head_features
        self.answer_marker = answer_marker
        self.device = device
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose

    _parameter_constraints = {
        "model": [PATH],
        "mode": [StrOptions(("head", "lora", "full"))],
        "lr": [Interval(Real, 0, None, closed="neither"), StrOptions(("auto",))],
        "n_epochs": [Interval(Integral, 1, None, closed="left"), StrOptions(("auto",))],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_length": [Interval(Integral, 1, None, closed="left")],
        "lora_r": [Interval(Integral, 1, None, closed="left")],
        "lora_alpha": [Interval(Real, 0, None, closed="neither"), NONE],
        "head_features": [StrOptions(("last_token", "answer_scores"))],
        "answer_marker": [_InstanceOf((str,), "a str")],
        "verbose": [Interval(Integral, 0, None, closed="left"), _InstanceOf((bool,), "a bool")],
    }

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        tags.classifier_tags.multi_class = False
        return tags

    def __sklearn_is_fitted__(self):
        return hasattr(self, "model_")

    # ------------------------------------------------------------------ fitting
    def _hyperparameters(self):
        auto = AUTO_HYPERPARAMETERS[self.mode]
        lr = auto["lr"] if self.lr == "auto" else float(self.lr)
        n_epochs = auto["n_epochs"] if self.n_epochs == "auto" else int(self.n_epochs)
        return lr, n_epochs

    def fit(self, X, y, sample_weight=None):
        """Fine-tune the model on texts ``X`` with binary labels ``y``.

        Parameters
        ----------
        X : sequence of str or one-column DataFrame of shape (n_samples,)
            The texts.
        y : array-like of shape (n_samples,)
            Two distinct labels of any type.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative per-example weights of the loss (rescaled internally; zero-weight
            examples do not train). None means uniform.

        Returns
        -------
        self : LLMClassifier
            The fitted classifier.
        """
        validate_params(self, self._parameter_constraints)
        if self.head_features != "last_token" and self.mode != "head":
            raise ValueError(
                f"head_features={self.head_features!r} reads features from a frozen LM: it needs "
                f"mode='head', not mode={self.mode!r}."
            )
        if self.head_features == "answer_scores" and not self.answer_marker.strip():
            raise ValueError("The 'answer_marker' parameter of LLMClassifier must not be blank.")
        texts = check_text_input(X, estimator=self)
        classes, y_enc = check_binary_target(y, len(texts), estimator=self)
        weights = check_sample_weight(sample_weight, len(texts))
        seed = resolve_seed(self.random_state)
        lr, n_epochs = self._hyperparameters()
        reset_fitted_attributes(self, private=("_fitted", "_body_key"))
        start = time.perf_counter()
        if self.mode == "head":
            self._fit_head(texts, y_enc, weights, lr=lr, n_epochs=n_epochs, seed=seed)
        else:
            self._fit_model(texts, y_enc, weights, lr=lr, n_epochs=n_epochs, seed=seed)
        self.classes_ = classes
        self.n_classes_ = 2
        self._fitted = {
            "mode": self.mode,
            "model": str(self.model),
            "dtype": str(self.dtype),
            "max_length": int(self.max_length),
            "head_features": self.head_features,
            "answer_marker": self.answer_marker,
        }
        self.fit_seconds_ = time.perf_counter() - start
        logger.info(
            "Fitted LLMClassifier(%s, mode=%s) on %d texts in %.1f s",
            self.model,
            self.mode,
            len(texts),
            self.fit_seconds_,
        )
        return self

    def _new_head(self, entry, kind):
        import torch

        from .training import ANSWER_SCORE_FEATURES

        width = entry.hidden_size if kind == "last_token" else len(ANSWER_SCORE_FEATURES)
        return torch.nn.Linear(width, 2, bias=entry.head_bias or kind != "last_token", dtype=torch.float32)

    def _fit_head(self, texts, y_enc, weights, *, lr, n_epochs, seed):
        import torch

        from .training import train_head

        entry = _frozen_body(self.model, self.device, self.dtype)
        features = _features(
            entry,
            texts,
            max_length=self.max_length,
            batch_size=self.batch_size,
            verbose=self.verbose,
            kind=self.head_features,
            marker=self.answer_marker,
        )
        head = self._new_head(entry, self.head_features)
        # train_head finds the head as the `score` attribute of the module it is given.
        with _single_thread():
            train_head(
                torch.nn.ModuleDict({"score": head}),
                features,
                y_enc,
                weights,
                lr=lr,
                n_epochs=n_epochs,
                random_state=seed,
            )
        head.requires_grad_(False)
        self._body_key = entry.key
        self.model_, self.tokenizer_, self.head_ = entry.body, entry.tokenizer, head

    def _fit_model(self, texts, y_enc, weights, *, lr, n_epochs, seed):
        from .models import load_sequence_classifier
        from .training import train_classifier

        model, tokenizer = load_sequence_classifier(
            self.model, num_labels=2, device=self.device, dtype=self.dtype
        )
        model = train_classifier(
            model,
            tokenizer,
            texts,
            y_enc,
            weights,
            mode=self.mode,
            lr=lr,
            n_epochs=n_epochs,
            batch_size=self.batch_size,
            max_length=self.max_length,
            random_state=seed,
            lora_r=self.lora_r,
            lora_alpha=self.lora_alpha,
            verbose=self.verbose,
        )
        model.eval()
        self.model_, self.tokenizer_, self.head_ = model, tokenizer, None

    # --------------------------------------------------------------- prediction
    def _logits(self, X):
        check_is_fitted(self)
        texts = check_text_input(X, estimator=self)
        fitted = self._fitted
        if self.head_ is not None:
            # The shared body's key, so the features cached during fit are reused.
            with _LOCK:
                entry = _BODIES.get(self._body_key)
            if entry is None or entry.body is not self.model_:
                entry = _FrozenBody(
                    self._body_key,
                    self.model_,
                    self.tokenizer_,
                    self.head_.in_features,
                    self.head_.bias is not None,
                )
            features = _features(
                entry,
                texts,
                max_length=fitted["max_length"],
                batch_size=self.batch_size,
                verbose=self.verbose,
                kind=fitted.get("head_features", "last_token"),
                marker=fitted.get("answer_marker"),
            )
            return _head_logits(self.head_, features)
        return _model_logits(
            self.model_,
            self.tokenizer_,
            texts,
            max_length=fitted["max_length"],
            batch_size=self.batch_size,
            verbose=self.verbose,
        )

    def decision_function(self, X):
        """Log-odds of the positive class ``classes_[1]``: ``logit_1 - logit_0``.

        Parameters
        ----------
        X : sequence of str or one-column DataFrame of shape (n_samples,)
            The texts.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Positive values predict ``classes_[1]``.
        """
        logits = self._logits(X)
        return logits[:, 1] - logits[:, 0]

    def predict_proba(self, X):
        """Class probabilities: the softmax of the head's two logits.

        Parameters
        ----------
        X : sequence of str or one-column DataFrame of shape (n_samples,)
            The texts.

        Returns
        -------
        proba : ndarray of shape (n_samples, 2)
            Columns follow ``classes_``; rows sum to 1.
        """
        logits = self._logits(X)
        logits = logits - logits.max(axis=1, keepdims=True)
        proba = np.exp(logits)
        return proba / proba.sum(axis=1, keepdims=True)

    def predict(self, X):
        """Predicted labels: the class with the larger logit (ties go to ``classes_[0]``).

        Parameters
        ----------
        X : sequence of str or one-column DataFrame of shape (n_samples,)
            The texts.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        score = self.decision_function(X)
        return self.classes_[(score > 0).astype(int)]

    # ---------------------------------------------------------------- pickling
    def __getstate__(self):
        state = super().__getstate__()
        if "model_" not in state:
            return state
        state = dict(state)
        model, head = state.pop("model_"), state.pop("head_")
        state.pop("tokenizer_", None)
        if head is not None:
            from safetensors.torch import save

            tensors = {name: p.detach().cpu().contiguous() for name, p in head.state_dict().items()}
            payload = {"format": "head", "head": save(tensors)}
        else:
            from ._serialization import dump_pretrained

            payload = {
                "format": "lora" if _is_peft(model) else "full",
                "files": dump_pretrained(model),
            }
        state["_skw2s_weights"] = payload
        return state

    def __setstate__(self, state):
        payload = state.pop("_skw2s_weights", None)
        super().__setstate__(state)
        if payload is not None:
            self._restore(payload)

    def _restore(self, payload):
        from ._serialization import load_pretrained
        from .models import _resolve_dtype, load_sequence_classifier, load_tokenizer, resolve_device

        fitted = self._fitted
        kind = payload["format"]
        if kind == "head":
            import torch
            from safetensors.torch import load

            entry = _frozen_body(fitted["model"], self.device, fitted["dtype"])
            head = self._new_head(entry, fitted.get("head_features", "last_token"))
            head.load_state_dict({k: v.to(torch.float32) for k, v in load(payload["head"]).items()})
            head.requires_grad_(False)
            self.model_, self.tokenizer_, self.head_ = entry.body, entry.tokenizer, head
            self._body_key = entry.key
        elif kind == "lora":
            from peft import PeftModel

            base, tokenizer = load_sequence_classifier(
                fitted["model"], num_labels=2, device=self.device, dtype=fitted["dtype"]
            )
            model = load_pretrained(payload["files"], lambda d: PeftModel.from_pretrained(base, d))
            model.to(base.device)
            model.eval()
            self.model_, self.tokenizer_, self.head_ = model, tokenizer, None
        elif kind == "full":
            from transformers import AutoModelForSequenceClassification

            device = resolve_device(self.device)
            model = load_pretrained(
                payload["files"],
                AutoModelForSequenceClassification.from_pretrained,
                dtype=_resolve_dtype(fitted["dtype"], device),
            )
            model.to(device)
            model.eval()
            self.model_, self.tokenizer_, self.head_ = model, load_tokenizer(fitted["model"]), None
        else:  # pragma: no cover - written by a newer version
            raise ValueError(f"Unknown serialized weight format {kind!r}.")
