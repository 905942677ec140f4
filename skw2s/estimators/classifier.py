"""LLMClassifier: one fine-tuned language model as a binary text classifier.

The classifier reads the hidden state of the last non-pad token of each text and applies a
linear head (Burns et al., 2023). Three ways to train it (``mode``):

- ``"head"``: the LM body is frozen and only the linear head learns, on features extracted once
  and shared through :mod:`skw2s.hf.features` (see :func:`clear_cache`), so boosting rounds,
  cross-validation splits and predictions on the same texts pay for the LM forward passes
  once.
- ``"lora"``: low-rank adapters on the attention projections plus the head (peft);
- ``"full"``: every weight trains.

torch, transformers and peft are imported inside functions only.
"""

from __future__ import annotations

import logging
import time
import warnings
from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from ..hf import features as _features
from ..hf.features import clear_cache
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
    check_binary_target,
    check_sample_weight,
    check_text_input,
    reset_fitted_attributes,
    resolve_seed,
    validate_params,
)
from ..exceptions import DivergenceError, diverged

logger = logging.getLogger(__name__)

__all__ = ["LLMClassifier", "clear_cache"]

AUTO_HYPERPARAMETERS = {
    "head": {"lr": 1e-2, "n_epochs": 200},
    "lora": {"lr": 2e-4, "n_epochs": 3},
    "full": {"lr": 5e-5, "n_epochs": 3},
}
"""What ``lr="auto"`` and ``n_epochs="auto"`` mean in each mode."""

def _is_peft(model):
    return hasattr(model, "peft_config")


def _check_soft_labels(y_proba, n):
    """Soft labels as float64 ``(n, 2)`` rows of probabilities, or None."""
    if y_proba is None:
        return None
    try:
        soft = np.asarray(y_proba, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            "y_proba must be numeric: probabilities of shape (n_samples, 2).") from None
    if soft.shape != (n, 2):
        raise ValueError(
            f"y_proba must have shape ({n}, 2), one row per text; got {soft.shape}.")
    if (not np.all(np.isfinite(soft)) or np.any(soft < 0)
            or not np.allclose(soft.sum(1), 1, atol=1e-3)):
        raise ValueError(
            "y_proba must hold probabilities: finite, non-negative rows that sum to 1.")
    return soft


def _warn_long_texts(tokenizer, texts, max_length, kind="last_token"):
    """Warn when texts are longer than ``max_length`` tokens: they are cut from the left, so
    the end of each text (the answer of a ``"Q: ... A: ..."`` text) is kept."""
    if kind != "last_token":  # answer scores keep the answer and cut the prefix themselves
        return
    lengths = [len(ids) for ids in tokenizer(list(texts), add_special_tokens=True)["input_ids"]]
    long = sum(n > max_length for n in lengths)
    if long:
        warnings.warn(
            f"{long} of {len(texts)} text(s) are longer than max_length={max_length} tokens (the "
            f"longest has {max(lengths)}); they are cut from the left, keeping their end (the "
            "answer). Raise max_length to keep them whole.",
            UserWarning,
            stacklevel=4,
        )


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
    loss : {"xent", "logconf", "product", "kl", "window", "entropy"}, default="xent"
        The training loss, for a student trained on weak labels (:mod:`skw2s.losses`):
        ``"xent"`` the (weighted) cross-entropy on hard labels, or on soft ones when ``fit``
        gets ``y_proba``; ``"logconf"`` the auxiliary-confidence loss of Burns et al. (its
        warmup is a linear ramp, see :func:`skw2s.losses.logconf`); ``"product"`` (soft labels
        only); ``"kl"``, ``"window"`` and ``"entropy"`` as in EleutherAI's w2s. Every mode
        takes every loss.
    loss_params : dict, default=None
        Hyperparameters of the loss, e.g. ``{"aux_coef": 0.75}`` for ``"logconf"``, or
        ``{"radius": "midweak"}`` for ``"window"`` (the radius is then computed from the soft
        labels of the training set, as EleutherAI does).
    device : str, default="auto"
        ``"auto"`` means ``cuda`` when present, else CPU; or ``"cpu"``, ``"cuda:1"`` ...
    dtype : str, default="auto"
        Weight dtype: ``"auto"`` is float32 on CPU and bfloat16 on GPU.
    random_state : int, RandomState instance or None, default=None
        Seeds the head's initialisation and the Trainer (data order, LoRA init). None draws a
        seed from numpy's global generator, so repeated fits differ.
    verbose : int, default=0
        Show progress bars (feature extraction, training, prediction) when positive.
    report_to : str or list of str, default="none"
        Experiment trackers the training loop logs to, as the Trainer's ``report_to``
        (``"mlflow"``, ``"wandb"``, ``"tensorboard"``, a list of them, or ``"all"``);
        ``"none"`` logs to none. The run is named by the stage and round that trains it inside
        :class:`~skw2s.WeakToStrongPipeline` and the ensembles (``"weak[ours]/round2"``),
        else by this class's name (see :mod:`skw2s.hf.tracking`). Not part of any cache key.
        Head mode trains without the Trainer and reports to no tracker (its loss curve is
        still saved, see :func:`skw2s.hf.efficiency.collect_training_stats`).
    logging_steps : int, default=None
        With a tracker, log the loss every this many steps; None: about 50 logs per training
        run. Not part of any cache key.

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
        loss="xent",
        loss_params=None,
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
        self.lora_r = lora_r
        self.lora_alpha = lora_alpha
        self.head_features = head_features
        self.answer_marker = answer_marker
        self.loss = loss
        self.loss_params = loss_params
        self.device = device
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose
        self.report_to = report_to
        self.logging_steps = logging_steps

    _parameter_constraints = {
        "model": [PATH],
        "mode": [StrOptions(("head", "lora", "full"))],
        "lr": [POSITIVE_FINITE, StrOptions(("auto",))],
        "n_epochs": [Interval(Integral, 1, None, closed="left"), StrOptions(("auto",))],
        "batch_size": [POSITIVE_INT],
        "max_length": [POSITIVE_INT],
        "lora_r": [POSITIVE_INT],
        "lora_alpha": [POSITIVE_FINITE, NONE],
        "head_features": [StrOptions(("last_token", "answer_scores"))],
        "answer_marker": [InstanceOf((str,), "a str")],
        "loss": [StrOptions(("xent", "logconf", "product", "kl", "window", "entropy"))],
        "loss_params": [InstanceOf((dict,), "a dict"), NONE],
        "device": [InstanceOf((str,), "a str")],
        "dtype": [InstanceOf((str,), "a str")],
        "random_state": [RANDOM_STATE],
        "verbose": VERBOSE,
        "report_to": REPORT_TO,
        "logging_steps": LOGGING_STEPS,
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

    def fit(self, X, y, sample_weight=None, *, y_proba=None):
        """Fine-tune the model on texts ``X`` with binary labels ``y``.

        Parameters
        ----------
        X : sequence of str or one-column DataFrame of shape (n_samples,)
            The texts.
        y : array-like of shape (n_samples,)
            Two distinct labels of any type (hard labels; they define ``classes_``).
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative per-example weights of the loss (rescaled internally; zero-weight
            examples do not train). None means uniform.
        y_proba : array-like of shape (n_samples, 2), default=None
            Soft labels (for example an ensemble's ``predict_proba``), columns in ``classes_``
            order; the loss trains on them instead of ``y``. Needed by ``loss="product"``.

        Returns
        -------
        self : LLMClassifier
            The fitted classifier.

        Raises
        ------
        ValueError
            On invalid parameters, input, weights or soft labels, or a loss that cannot take
            the labels given. A fit that fails leaves no fitted attribute behind.
        """
        validate_params(self)
        if self.head_features != "last_token" and self.mode != "head":
            raise ValueError(
                f"head_features={self.head_features!r} reads features from a frozen LM: it needs "
                f"mode='head', not mode={self.mode!r}."
            )
        if self.head_features == "answer_scores" and not self.answer_marker.strip():
            raise ValueError("The 'answer_marker' parameter of LLMClassifier must not be blank.")
        reset_fitted_attributes(self, private=("_fitted", "_body_key"))
        texts = check_text_input(X, estimator=self)
        classes, y_enc = check_binary_target(y, len(texts), estimator=self)
        weights = check_sample_weight(sample_weight, len(texts))
        soft = _check_soft_labels(y_proba, len(texts))
        loss = self._student_loss(y_enc, soft)
        seed = resolve_seed(self.random_state)
        lr, n_epochs = self._hyperparameters()
        start = time.perf_counter()
        fit = self._fit_head if self.mode == "head" else self._fit_model
        try:
            model, tokenizer, head, body_key = fit(
                texts, y_enc, weights, lr=lr, n_epochs=n_epochs, seed=seed, loss=loss, soft=soft
            )
        except DivergenceError as error:
            raise diverged(error, self._name(), lr=lr, n_epochs=n_epochs) from None
        # Fitted attributes only now, so that a fit that fails leaves none behind.
        self.model_, self.tokenizer_, self.head_ = model, tokenizer, head
        if body_key is not None:
            self._body_key = body_key
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
            "Fitted LLMClassifier(%s, mode=%s, loss=%s) on %d texts in %.1f s",
            self.model, self.mode, self.loss, len(texts), self.fit_seconds_,
        )
        return self

    def _name(self):
        return f"LLMClassifier(model={str(self.model)!r}, mode={self.mode!r})"

    def _student_loss(self, y_enc, soft):
        """The :class:`skw2s.losses.Loss` to train with, or None for the plain weighted
        cross-entropy on hard labels (the default, computed as it always was)."""
        if self.loss == "xent" and soft is None and not self.loss_params:
            return None
        from ..hf.losses import check_labels, get_loss, midweak_radius

        params = dict(self.loss_params or {})
        if params.get("radius") == "midweak":
            if soft is None:
                raise ValueError(
                    "loss_params={'radius': 'midweak'} is the median confidence of the soft weak "
                    "labels: pass them to fit as y_proba."
                )
            params["radius"] = midweak_radius(soft)
        loss = get_loss(self.loss, **params)
        check_labels(loss, y_enc if soft is None else soft)
        return loss

    def _new_head(self, entry, kind):
        import torch

        from ..hf.training import ANSWER_SCORE_FEATURES

        width = entry.hidden_size if kind == "last_token" else len(ANSWER_SCORE_FEATURES)
        return torch.nn.Linear(width, 2, bias=entry.head_bias or kind != "last_token",
                               dtype=torch.float32)

    def _fit_head(self, texts, y_enc, weights, *, lr, n_epochs, seed, loss, soft):
        import torch

        from ..hf.models import check_max_length
        from ..hf.training import train_head

        entry = _features.frozen_body(self.model, self.device, self.dtype)
        check_max_length(entry.body, self.max_length, str(self.model))
        _warn_long_texts(entry.tokenizer, texts, self.max_length, self.head_features)
        features = _features.features(
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
        with _features.single_thread():
            train_head(
                torch.nn.ModuleDict({"score": head}),
                features,
                y_enc,
                weights,
                lr=lr,
                n_epochs=n_epochs,
                random_state=seed,
                loss=loss,
                soft_labels=soft,
                run_name=type(self).__name__,
            )
        head.requires_grad_(False)
        return entry.body, entry.tokenizer, head, entry.key

    def _fit_model(self, texts, y_enc, weights, *, lr, n_epochs, seed, loss, soft):
        from ..hf.models import check_max_length, load_sequence_classifier, resolve_device
        from ..hf.training import seeded_torch, train_classifier

        # The new classification head (and the LoRA matrices) are initialised from torch's
        # generator: seeding it here, before loading, makes the fit the same in every process.
        with seeded_torch(seed, resolve_device(self.device)):
            model, tokenizer = load_sequence_classifier(
                self.model, num_labels=2, device=self.device, dtype=self.dtype
            )
            tokenizer.truncation_side = "left"
            check_max_length(model, self.max_length, str(self.model))
            _warn_long_texts(tokenizer, texts, self.max_length)
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
                loss=loss,
                soft_labels=soft,
                report_to=self.report_to,
                logging_steps=self.logging_steps,
                run_name=type(self).__name__,
            )
        model.eval()
        return model, tokenizer, None, None

    # --------------------------------------------------------------- prediction
    def _logits(self, X):
        check_is_fitted(self)
        texts = check_text_input(X, estimator=self)
        fitted = self._fitted
        if self.head_ is not None:
            # The shared body's key, so the features cached during fit are reused.
            entry = _features.registered_body(self._body_key, self.model_, self.tokenizer_,
                                              self.head_)
            _warn_long_texts(self.tokenizer_, texts, fitted["max_length"],
                             fitted.get("head_features", "last_token"))
            features = _features.features(
                entry,
                texts,
                max_length=fitted["max_length"],
                batch_size=self.batch_size,
                verbose=self.verbose,
                kind=fitted.get("head_features", "last_token"),
                marker=fitted.get("answer_marker"),
            )
            return self._check_finite(_features.head_logits(self.head_, features))
        _warn_long_texts(self.tokenizer_, texts, fitted["max_length"])
        return self._check_finite(_features.model_logits(
            self.model_,
            self.tokenizer_,
            texts,
            max_length=fitted["max_length"],
            batch_size=self.batch_size,
            verbose=self.verbose,
        ))

    def _check_finite(self, logits):
        """``logits``, or a :class:`DivergenceError` when any is NaN or infinite: a model
        whose outputs are not numbers never answers."""
        bad = ~np.isfinite(np.asarray(logits))
        if bad.any():
            rows = int(bad.any(axis=-1).sum()) if bad.ndim > 1 else int(bad.sum())
            raise DivergenceError(
                f"{self._name()} gives non-finite logits for {rows} of {len(logits)} text(s): "
                "its weights diverged (or overflow in its dtype). Refit it with a lower lr."
            )
        return logits

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
    @state_once
    def __getstate__(self):
        state = drop_tracking_defaults(super().__getstate__())
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
            from ..hf.serialization import dump_pretrained

            payload = {
                "format": "lora" if _is_peft(model) else "full",
                "files": dump_pretrained(model),
            }
        state["_skw2s_weights"] = payload
        return state

    def __setstate__(self, state):
        state = restore_tracking_defaults(state)
        payload = state.pop("_skw2s_weights", None)
        super().__setstate__(state)
        if payload is not None:
            self._restore(payload)

    def _restore(self, payload):
        from ..hf.serialization import load_pretrained
        from ..hf.models import (resolve_dtype, load_sequence_classifier, load_tokenizer,
                                 resolve_device)

        fitted = self._fitted
        kind = payload["format"]
        if kind == "head":
            import torch
            from safetensors.torch import load

            entry = _features.frozen_body(fitted["model"], self.device, fitted["dtype"])
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
            from ..hf.training import quiet_peft

            with quiet_peft():
                model = load_pretrained(payload["files"],
                                        lambda d: PeftModel.from_pretrained(base, d))
            model.to(base.device)
            model.eval()
            tokenizer.truncation_side = "left"
            self.model_, self.tokenizer_, self.head_ = model, tokenizer, None
        elif kind == "full":
            from transformers import AutoModelForSequenceClassification

            device = resolve_device(self.device)
            model = load_pretrained(
                payload["files"],
                AutoModelForSequenceClassification.from_pretrained,
                dtype=resolve_dtype(fitted["dtype"], device),
                use_safetensors=True,
            )
            model.to(device)
            model.eval()
            tokenizer = load_tokenizer(fitted["model"])
            tokenizer.truncation_side = "left"
            self.model_, self.tokenizer_, self.head_ = model, tokenizer, None
        else:  # pragma: no cover - written by a newer version
            raise ValueError(f"Unknown serialized weight format {kind!r}.")
