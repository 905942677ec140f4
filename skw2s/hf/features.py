"""The LM forward passes of classifiers: frozen bodies, the feature cache, logits (a leaf).

Every head-mode :class:`~skw2s.LLMClassifier` in a process with the same ``(model, device,
dtype)`` shares one loaded, frozen body, and the features of a text are computed once per
``(body, max_length, kind)`` and kept in a bounded in-memory cache (:func:`clear_cache` empties
it). Boosting rounds, cross-validation splits and predictions on the same texts therefore pay
for the LM forward passes once.

torch and transformers are imported inside functions only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .distributed import map_batches

logger = logging.getLogger(__name__)

__all__ = ["BODY_CACHE_SIZE", "FEATURE_CACHE_BYTES", "FrozenBody", "clear_cache", "features",
           "frozen_body", "head_logits", "model_logits", "registered_body", "single_thread"]

FEATURE_CACHE_BYTES = 512 * 2**20
"""Upper bound on the memory held by cached head-mode features (least recently used go first)."""

BODY_CACHE_SIZE = 2
"""How many frozen LM bodies head-mode classifiers keep loaded at once."""

_LOCK = threading.RLock()
_BODIES: OrderedDict = OrderedDict()
_FEATURES: OrderedDict = OrderedDict()
_FEATURE_BYTES = [0]


class FrozenBody:
    """A loaded, frozen LM body shared by head-mode classifiers."""

    def __init__(self, key, body, tokenizer, hidden_size, head_bias):
        self.key, self.body, self.tokenizer = key, body, tokenizer
        self.hidden_size, self.head_bias = hidden_size, head_bias
        self.lm_head_weight = None


def _body_key(model, device, dtype):
    """The spec, device, dtype and, for a local checkpoint, its content fingerprint: a
    checkpoint overwritten while the process runs is loaded again, and its features
    recomputed, instead of answering from the old weights."""
    from .models import checkpoint_fingerprint

    return (str(model), str(device), str(dtype), checkpoint_fingerprint(model))


def frozen_body(model, device, dtype):
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
        tokenizer.truncation_side = "left"  # a long text keeps its end (the answer)
        head = classification_head(seqcls)
        body = seqcls.base_model
        body.requires_grad_(False)
        body.eval()
        entry = FrozenBody(key, body, tokenizer, head.in_features, head.bias is not None)
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
                "head_features='answer_scores' needs the LM head of "
                f"{parse_model_spec(entry.key[0]).base!r}: its embeddings are not tied and no "
                "lm_head.weight was found in its safetensors files."
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
    return extract_features(entry.body, entry.tokenizer, texts, batch_size=batch_size,
                            max_length=max_length)


def features(entry, texts, *, max_length, batch_size, verbose, kind="last_token", marker=None):
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
        parts = [missing[i : i + chunk] for i in range(0, len(missing), chunk)]
        done = map_batches(
            lambda part: _extract(entry, part, kind=kind, marker=marker, max_length=max_length,
                                  batch_size=chunk),
            parts, desc="features", verbose=verbose,
        )
        for part, feats in zip(parts, done):
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


def registered_body(key, model, tokenizer, head):
    """The shared body entry under ``key`` when it still holds ``model``, else a private entry
    for it: so a fitted classifier reuses the features cached during its fit, and one whose
    body was evicted from the cache still predicts."""
    with _LOCK:
        entry = _BODIES.get(key)
    if entry is None or entry.body is not model:
        entry = FrozenBody(key, model, tokenizer, head.in_features, head.bias is not None)
    return entry


@contextmanager
def single_thread():
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


def head_logits(head, features):
    """``features @ W.T + b`` of a linear head, in float64."""
    weight = head.weight.detach().double().cpu().numpy()
    logits = np.asarray(features, dtype=np.float64) @ weight.T
    if head.bias is not None:
        logits += head.bias.detach().double().cpu().numpy()
    return logits


def model_logits(model, tokenizer, texts, *, max_length, batch_size, verbose):
    """Logits of a sequence-classification model, batched by length, in input order."""
    import torch

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
    batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]

    def run(idx):
        enc = tokenizer(
            [texts[i] for i in idx],
            truncation=True,
            max_length=max_length,
            padding=True,
            return_tensors="pt",
        ).to(model.device)
        logits = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
        return logits.float().cpu().numpy()

    out = np.empty((len(texts), 2), dtype=np.float64)
    with torch.no_grad():
        for idx, logits in zip(batches, map_batches(run, batches, desc="predict",
                                                     verbose=verbose)):
            out[idx] = logits
    return out
