"""Experts and the groups of experts that run in one forward.

An *expert* is a causal LM called like a Hugging Face model
(``model(input_ids=..., attention_mask=...)``), or an :class:`AdapterExpert`, one named LoRA
adapter of a peft model that holds several, so that all boosting rounds share one base model in
memory. Experts are mixed index by index over the vocabulary, so they must share one:
:func:`check_shared_vocabulary` compares their tokenizers, :func:`check_vocabulary_sizes` the
sizes of their embeddings.

**One forward for all LoRA experts** (``batch_adapters=True`` in the scoring and decoding
functions): experts that are adapters of one peft model run in one forward over the batch
repeated once per adapter (expert-major blocks of rows), with one KV cache for the combined
batch, so the base weights are read once per step instead of once per expert. Plain LoRA
``Linear`` adapters are *stacked*: peft's adapters are switched off for the call and a hook on
each LoRA layer adds every block's own low-rank update with two batched matmuls
(``x_e A_e B_e``). Other LoRA kinds (DoRA, LoRA bias, embedding adapters) fall back to peft's
mixed-adapter batches (``adapter_names=[...]``). ``False`` runs the adapters one after the
other.

torch and peft are imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import functools
import numbers

import numpy as np

__all__ = ["AdapterExpert", "check_shared_vocabulary", "check_vocabulary_sizes"]


class AdapterExpert:
    """One named adapter of a peft model, called like a model.

    Calling it activates ``adapter_name`` on the shared peft model and runs its forward, so
    several experts can share one base model in memory. The scoring and decoding functions of
    :mod:`skw2s.decoding` go further when ``batch_adapters=True``: the adapters of one peft model
    run together in one mixed-adapter forward.

    Parameters
    ----------
    model : peft.PeftModel
        A peft model holding the adapter.
    adapter_name : str
        Name of the adapter to activate.
    """

    def __init__(self, model, adapter_name):
        self.model = model
        self.adapter_name = adapter_name

    def __repr__(self):
        return f"AdapterExpert({type(self.model).__name__}, adapter_name={self.adapter_name!r})"

    @property
    def device(self):
        """The device of the underlying model."""
        return self.model.device

    def __call__(self, **kwargs):
        if getattr(self.model, "active_adapter", None) != self.adapter_name:
            self.model.set_adapter(self.adapter_name)
        return self.model(**kwargs)


# ----------------------------------------------------------------------------
# Experts and expert groups
# ----------------------------------------------------------------------------
def _check_experts(models, alphas):
    models = list(models)
    if not models:
        raise ValueError("At least one expert is required.")
    a = np.asarray(alphas, dtype=np.float64).reshape(-1)
    if a.shape[0] != len(models):
        raise ValueError(f"Got {len(models)} experts but {a.shape[0]} weights (alphas).")
    if not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise ValueError(f"Expert weights (alphas) must be finite and > 0; got {a.tolist()}.")
    return models, a


def _hf_model(model):
    """The transformers model behind an expert (through AdapterExpert and peft wrappers)."""
    base = model.model if isinstance(model, AdapterExpert) else model
    if hasattr(base, "get_base_model"):
        base = base.get_base_model()
    return base


@functools.lru_cache(maxsize=64)
def _forward_params(model_type):
    import inspect

    return frozenset(inspect.signature(model_type.forward).parameters)


def _output_cache(output):
    for name in ("cache", "past_key_values"):
        value = getattr(output, name, None)
        if value is not None:
            return value
    raise ValueError("The model returned no KV cache although use_cache=True was asked for.")


def _supports_mixed_batch(model):
    """Whether ``model`` is a peft LoRA model that can run several adapters in one batch."""
    try:
        from peft import PeftModel
        from peft.utils import PeftType
    except ImportError:  # pragma: no cover - peft is a dependency
        return False
    if not isinstance(model, PeftModel) or model.training:
        return False
    return all(cfg.peft_type == PeftType.LORA for cfg in model.peft_config.values())


def _stacked_lora_layers(model, names):
    """The LoRA layers of ``model`` that hold any of ``names``, when all of them are plain
    LoRA ``Linear`` layers (unmerged, no DoRA or other variant, no LoRA bias); else None."""
    from peft.tuners.lora.layer import Linear as LoraLinear
    from peft.tuners.lora.layer import LoraLayer

    layers = []
    for module in model.modules():
        if not isinstance(module, LoraLayer):
            continue
        present = [
            n for n in names
            if n in module.lora_A or n in getattr(module, "lora_embedding_A", {})
        ]
        if not present:
            continue
        if not isinstance(module, LoraLinear) or module.merged:
            return None
        for n in present:
            if (
                n not in module.lora_A
                or module.use_dora.get(n, False)
                or n in getattr(module, "lora_variant", {})
                or module.lora_B[n].bias is not None
            ):
                return None
        layers.append(module)
    return layers or None


def _stack_lora_weights(module, names):
    """``A (k, in, r)`` and ``B (k, r, out)`` (scaling folded in) of ``names`` in one layer;
    zeros for an adapter the layer does not hold, ranks zero-padded to the largest."""
    import torch

    present = [n for n in names if n in module.lora_A]
    ref = module.lora_A[present[0]].weight
    rank = max(module.lora_A[n].weight.shape[0] for n in present)
    n_in = ref.shape[1]
    n_out = module.lora_B[present[0]].weight.shape[0]
    A = torch.zeros((len(names), n_in, rank), dtype=ref.dtype, device=ref.device)
    B = torch.zeros((len(names), rank, n_out), dtype=ref.dtype, device=ref.device)
    for e, n in enumerate(names):
        if n in module.lora_A:
            a, b = module.lora_A[n].weight, module.lora_B[n].weight
            A[e, :, : a.shape[0]] = a.detach().T
            B[e, : a.shape[0], :] = (b.detach() * module.scaling[n]).T
    return A, B


def _stacked_lora_hook(module, args, kwargs, output, *, A, B, group=None):
    """Add each block's own adapter to a LoRA layer's base output: rows ``e * n ..`` of the
    combined batch go through adapter ``e`` (two batched matmuls for all adapters).

    While ``group.only`` is set to a member's position ``e``, the batch is one block that goes
    through adapter ``e`` alone (a speculative drafter that is one of the group's adapters).
    """
    import torch

    e = None if group is None else group.only
    if e is not None:
        A, B = A[e : e + 1], B[e : e + 1]
    x = args[0] if args else kwargs["x"]
    k = A.shape[0]
    xk = x.reshape(k, -1, x.shape[-1]).to(A.dtype)
    delta = torch.bmm(torch.bmm(xk, A), B)
    return output + delta.reshape(output.shape).to(output.dtype)


class _ExpertGroup:
    """Experts that run in one forward: one model, or several LoRA adapters of one peft model.

    Called with a batch of ``n`` rows, it returns logits of shape ``(k, n, L, V)`` for its ``k``
    experts and the KV cache of the combined batch (``k * n`` rows, expert-major: rows
    ``e * n .. (e + 1) * n - 1`` belong to the group's ``e``-th expert).

    Adapters run ``"stacked"`` when every LoRA layer is a plain LoRA ``Linear``: inside
    :meth:`session` the peft model's adapters are disabled and a forward hook on each LoRA
    layer adds ``x_e A_e B_e`` to block ``e`` with two batched matmuls. Otherwise they run as a
    peft mixed-adapter batch (``adapter_names=[...]``, one gather/scatter per adapter and layer).
    """

    def __init__(self, model, members, adapter_names=None):
        self.model = model
        self.members = list(members)
        self.adapter_names = adapter_names
        self.mode = None if adapter_names is None else "peft"
        self._stacked_layers = None
        self._in_session = False
        self.only = None  # a member's position: the stacked hooks apply its adapter alone
        params = _forward_params(type(_hf_model(model)))
        self.cache_kwarg = "cache" if "cache" in params else "past_key_values"
        self.keeps_logits = "logits_to_keep" in params

    def finalize(self):
        """Choose how the adapters run, once all members are known."""
        if self.adapter_names is not None:
            self._stacked_layers = _stacked_lora_layers(self.model, self.adapter_names)
            if self._stacked_layers is not None:
                self.mode = "stacked"

    @property
    def size(self):
        return len(self.members)

    @property
    def device(self):
        return self.model.device

    @contextlib.contextmanager
    def session(self):
        """Hold the stacked adapters in place (hooks on, peft's own adapters off) while inside."""
        if self.mode != "stacked":
            yield self
            return
        from functools import partial

        handles = []
        with self.model.disable_adapter():
            try:
                for module in self._stacked_layers:
                    A, B = _stack_lora_weights(module, self.adapter_names)
                    handles.append(module.register_forward_hook(
                        partial(_stacked_lora_hook, A=A, B=B, group=self), with_kwargs=True
                    ))
                self._in_session = True
                yield self
            finally:
                self._in_session = False
                for handle in handles:
                    handle.remove()

    def __call__(self, ids, mask, positions=None, *, cache=None, use_cache=False, keep=0,
                 member=None):
        """Logits ``(k, n, L', V)`` and the cache; ``keep > 0`` computes only the last ``keep``
        positions' logits (``logits_to_keep``).

        ``member``: run the group's ``member``-th expert alone (``k = 1``, a cache of ``n``
        rows), e.g. a speculative drafter that is one adapter of a shared base.
        """
        if self.mode == "stacked" and not self._in_session:
            raise RuntimeError("Stacked LoRA experts must be called inside their session().")
        if member is not None and self.size > 1:
            return self._call_member(member, ids, mask, positions, cache=cache,
                                     use_cache=use_cache, keep=keep)
        k, n, dev = self.size, ids.shape[0], self.device

        def rep(t):
            t = t.to(dev)
            return t.repeat(k, 1) if k > 1 else t

        kwargs = {"input_ids": rep(ids), "attention_mask": rep(mask), "use_cache": use_cache}
        if positions is not None:
            kwargs["position_ids"] = rep(positions)
        if cache is not None:
            kwargs[self.cache_kwarg] = cache
        if keep and self.keeps_logits:
            kwargs["logits_to_keep"] = keep
        if self.mode == "peft":
            kwargs["adapter_names"] = [name for name in self.adapter_names for _ in range(n)]
        output = self.model(**kwargs)
        logits = output.logits[:, -keep:] if keep else output.logits
        logits = logits.reshape(k, n, *logits.shape[1:])
        return logits, (_output_cache(output) if use_cache else None)

    def _call_member(self, member, ids, mask, positions, **kwargs):
        names, mode = self.adapter_names, self.mode
        if mode == "stacked":
            self.only = member
        else:  # a peft mixed batch of one adapter
            self.adapter_names = [names[member]]
        self.members, saved = [self.members[member]], self.members
        try:
            return self(ids, mask, positions, **kwargs)
        finally:
            self.only, self.adapter_names, self.members = None, names, saved

    def select_rows(self, cache, rows, n, *, copy=False):
        """Keep (and repeat) the batch ``rows`` of a combined cache of ``k * n`` rows.

        In place, or on a shallow copy (``copy=True``) that leaves ``cache`` as it was.
        """
        import torch

        if self.size > 1:
            rows = torch.cat([rows + e * n for e in range(self.size)])
        same = rows.numel() == self.size * n and bool((rows == torch.arange(rows.numel())).all())
        if copy:
            cache = _shallow_copy(cache)
        if not same:
            cache.batch_select_indices(rows.to(self.device))
        return cache


@contextlib.contextmanager
def _sessions(groups):
    with contextlib.ExitStack() as stack:
        for g in groups:
            stack.enter_context(g.session())
        yield groups


def _shallow_copy(cache):
    """A cache whose layer objects are new but share their tensors with ``cache``.

    Selecting rows or appending tokens replaces a layer's tensors rather than writing into
    them, so the copy can be changed without touching the original.
    """
    import copy

    layers = getattr(cache, "layers", None)
    if layers is None:  # an older cache layout: copy it whole
        return copy.deepcopy(cache)
    other = copy.copy(cache)
    other.layers = [copy.copy(layer) for layer in layers]
    return other


def _make_groups(models, batch_adapters):
    """Group the experts that can share a forward (adapters of one peft LoRA model)."""
    groups, shared = [], {}
    for i, m in enumerate(models):
        if batch_adapters and isinstance(m, AdapterExpert) and _supports_mixed_batch(m.model):
            group = shared.get(id(m.model))
            if group is not None:
                group.members.append(i)
                group.adapter_names.append(m.adapter_name)
                continue
            group = _ExpertGroup(m.model, [i], [m.adapter_name])
            shared[id(m.model)] = group
        else:
            group = _ExpertGroup(m, [i])
        groups.append(group)
    for g in groups:  # one adapter alone: activate it instead of a mixed batch
        if g.adapter_names is not None and g.size == 1:
            g.model = models[g.members[0]]
            g.adapter_names, g.mode = None, None
        g.finalize()
    return groups


# ----------------------------------------------------------------------------
# One vocabulary
# ----------------------------------------------------------------------------
def check_shared_vocabulary(tokenizers):
    """Check that all experts' tokenizers have one and the same vocabulary.

    The mixture (eq. 1) adds the experts' next-token distributions index by index, which only
    means something when every index is the same token for every expert.

    Parameters
    ----------
    tokenizers : sequence of transformers tokenizers
        The experts' tokenizers; the first is the reference.

    Raises
    ------
    ValueError
        If any tokenizer's ``get_vocab()`` differs from the first one's.
    """
    tokenizers = list(tokenizers)
    if not tokenizers:
        return
    reference = tokenizers[0].get_vocab()
    for i, tok in enumerate(tokenizers[1:], start=1):
        vocab = tok.get_vocab()
        if vocab != reference:
            differing = len(set(vocab.items()) ^ set(reference.items()))
            raise ValueError(
                f"Experts must share one vocabulary: the tokenizer of expert {i} "
                f"({len(vocab)} tokens) differs from that of expert 0 ({len(reference)} "
                f"tokens; {differing} (token, id) pairs differ). Build every weak expert from "
                "the same base model or tokenizer; only the strong student may use another one."
            )


def _embedding_rows(module):
    weight = getattr(module, "weight", None)
    return None if weight is None or weight.ndim != 2 else int(weight.shape[0])


def _vocabulary_size(model):
    """How many token ids an expert can both read and score: the smaller of its input and
    output embedding sizes, else ``config.vocab_size``; None when it tells neither."""
    hf = _hf_model(model)
    sizes = []
    for getter in ("get_input_embeddings", "get_output_embeddings"):
        get = getattr(hf, getter, None)
        rows = _embedding_rows(get()) if callable(get) else None
        if rows is not None:
            sizes.append(rows)
    if sizes:
        return min(sizes)
    config = getattr(hf, "config", None)
    if hasattr(config, "get_text_config"):
        config = config.get_text_config()
    size = getattr(config, "vocab_size", None)
    return int(size) if isinstance(size, numbers.Integral) else None


def _describe(model):
    """A short name of an expert for error messages (never the whole module tree)."""
    if isinstance(model, AdapterExpert):
        return repr(model)
    path = getattr(getattr(model, "config", None), "name_or_path", None)
    return type(model).__name__ + (f" {path!r}" if path else "")


def check_vocabulary_sizes(models, tokenizer):
    """Check that all experts score one vocabulary that holds every id of ``tokenizer``.

    The mixture adds the experts' next-token distributions index by index, and every expert
    reads the prompt's token ids and each chosen token. This compares sizes only; to compare
    the vocabularies themselves, pass the experts' tokenizers to
    :func:`check_shared_vocabulary`.

    Parameters
    ----------
    models : sequence of causal LM or AdapterExpert
        The experts. An expert's size is the smaller of its input and output embedding sizes
        (``config.vocab_size`` when it has no embeddings to read); an expert that tells neither
        is not checked.
    tokenizer : transformers tokenizer
        The tokenizer of the prompts; ``len(tokenizer)`` ids must fit every expert.

    Raises
    ------
    ValueError
        If the experts' sizes differ, or one is smaller than ``len(tokenizer)``; the message
        names every expert and its size.
    """
    models = list(models)
    n_tokens = len(tokenizer)
    sizes = {i: s for i, s in enumerate(_vocabulary_size(m) for m in models) if s is not None}
    if len(set(sizes.values())) > 1 or any(s < n_tokens for s in sizes.values()):
        listed = "; ".join(
            f"expert {i} ({_describe(models[i])}): {s} tokens" for i, s in sizes.items()
        )
        raise ValueError(
            f"Experts must share one vocabulary that holds the tokenizer's {n_tokens} tokens; "
            f"their vocabulary sizes are: {listed}. Build every expert from the same base "
            "model or tokenizer (give one tokenizer per expert to compare the vocabularies "
            "themselves)."
        )
