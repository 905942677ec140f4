"""Inference kernels of the generation estimators: teacher-forced scoring and decoding.

Everything here works on one model or on a weighted mixture of experts (ALGORITHMS.md,
eq. 1) through the same code: a single model is the mixture of one expert. An *expert* is a
causal LM called like a Hugging Face model (``model(input_ids=..., attention_mask=...)``),
or an :class:`AdapterExpert`, one named LoRA adapter of a peft model that holds several, so
that all boosting rounds share one base model in memory.

- :func:`token_predictions` / :func:`token_predictions_mixture`: teacher-forced argmax of every
  answer token, for token errors and ``eps_t``;
- :func:`choice_nll` / :func:`choice_nll_mixture`: negative log-likelihood of each answer
  option, its completion ``" " + choice`` appended to the prompt's tokens;
- :func:`mixture_generate`: batched decoding from the mixture with left padding and KV caches,
  greedy or sampled; the chosen token is fed back to every expert.

Fast paths, each with the plain reference it is tested against (``benchmarks/`` measures them):

- **prompt once** (``share_prompts=True``): teacher-forced scoring groups consecutive examples
  with the same prompt (a question's options). A batch of such questions runs its prompts once
  (left-padded, logits of the last position only), then every option as a continuation of its
  prompt's KV cache, expanded per option (``Cache.batch_select_indices``); options are cut into
  forwards of rows of similar length (:func:`_length_chunks`) so that long options do not pad
  short ones. A batch whose prompts each have one answer (token errors) runs each sequence
  whole, left-padded, with logits only in the answer columns (``logits_to_keep``).
  ``share_prompts=False`` is the plain path: each (prompt, answer) sequence whole,
  right-padded, with logits at every position.
- **one forward for all LoRA experts** (``batch_adapters=True``): experts that are adapters of
  one peft model (:class:`AdapterExpert`) run in one forward over the batch repeated once per
  adapter (expert-major blocks of rows), with one KV cache for the combined batch, so the base
  weights are read once per step instead of once per expert. Plain LoRA ``Linear`` adapters
  are *stacked*: peft's adapters are switched off for the call and a hook on each LoRA layer
  adds every block's own low-rank update with two batched matmuls (``x_e A_e B_e``). Other
  LoRA kinds (DoRA, LoRA bias, embedding adapters) fall back to peft's mixed-adapter batches
  (``adapter_names=[...]``). ``False`` runs the adapters one after the other.
- **cached decoding** (``use_cache=True``): one KV cache per expert (or per shared-base group);
  the prompt pass computes logits at its last position only; the mixture is formed on the
  experts' device and only the chosen tokens go to the CPU; finished rows leave the batch (their
  cache rows are dropped). ``use_cache=False`` recomputes the whole prefix at every step.
- **speculative mixture decoding** (``speculative_k=k``, greedy only): one expert drafts ``k``
  tokens one at a time, the other experts (groups) score the pending token and the draft in one
  forward each (``logits_to_keep=k + 1``), the longest prefix on which the mixture's argmax
  agrees is kept plus the mixture's token at the first disagreement, and the caches are cropped
  back (``Cache.crop``). Rows of a batch accept different lengths: rejected positions stay as
  masked holes. Tested against plain greedy decoding (same tokens). It pays off for separate
  expert models that mostly agree; adapters of one base already share each step's weight reads.

The ``staged=True`` options return the result for the first ``s`` experts, ``s = 1..T``, from a
single pass over the data (each expert runs once per batch).

torch is imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import numbers
import warnings

import numpy as np
from sklearn.utils import check_random_state
from tqdm.auto import tqdm

from .datasets import format_completion
from .training import encode_sft

logger = logging.getLogger(__name__)

__all__ = [
    "AdapterExpert",
    "answer_token_errors",
    "check_shared_vocabulary",
    "choice_nll",
    "choice_nll_mixture",
    "encode_prompts",
    "mixture_generate",
    "token_predictions",
    "token_predictions_mixture",
]


class AdapterExpert:
    """One named adapter of a peft model, called like a model.

    Calling it activates ``adapter_name`` on the shared peft model and runs its forward, so
    several experts can share one base model in memory. The scoring and decoding functions of
    this module go further when ``batch_adapters=True``: the adapters of one peft model run
    together in one mixed-adapter forward.

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
# Batching helpers
# ----------------------------------------------------------------------------
def _pad_rows(rows, value, side):
    import torch

    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), value, dtype=torch.long)
    for i, r in enumerate(rows):
        if len(r):
            if side == "right":
                out[i, : len(r)] = torch.as_tensor(r, dtype=torch.long)
            else:
                out[i, width - len(r) :] = torch.as_tensor(r, dtype=torch.long)
    return out


def _batches(lengths, batch_size):
    """Index batches of rows sorted by length (longest first), to keep padding small."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def _check_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or (
        batch_size < 1
    ):
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}.")
    return int(batch_size)


def _check_prompts_nonempty(encoded):
    for ex in encoded:
        if ex.answer_start < 1:
            raise ValueError(
                "Every prompt needs at least one token (the tokenizer has no BOS token, and a "
                "prompt is empty)."
            )


# ----------------------------------------------------------------------------
# Teacher-forced scoring
# ----------------------------------------------------------------------------
def _mix_stages(scores, a, stages, combine, lean, target):
    """Mixture of the first ``s`` experts for each stage: ``(argmax or None, gold log-prob)``.

    ``scores`` is ``(T, N)`` gold log-probabilities (``lean``) or ``(T, N, V)`` logits.
    """
    import torch

    from ._mixture import mix_log_probs

    out = []
    for s in stages:
        if lean:
            w = torch.as_tensor(a[:s] / a[:s].sum(), dtype=torch.float64, device=scores.device)
            g = torch.logsumexp(torch.log(w)[:, None] + scores[:s].double(), dim=0)
            out.append((None, g.cpu().numpy()))
        else:
            logp = mix_log_probs(scores[:s], a[:s], combine)
            p = logp.argmax(-1).cpu().numpy().astype(np.int64)
            g = logp.gather(-1, target.to(logp.device)[:, None])[:, 0].double().cpu().numpy()
            out.append((p, g))
    return out


def _store(results, preds, gold, members, counts):
    splits = np.cumsum(counts)[:-1]
    for k, (p, g) in enumerate(results):
        for i, gg in zip(members, np.split(g, splits)):
            gold[k][i] = gg
        if p is not None and preds is not None:
            for i, pp in zip(members, np.split(p, splits)):
                preds[k][i] = pp


def _shared_prompts(encoded):
    """Group consecutive examples whose prompt tokens are identical: ``[(prompt, [i, ...])]``."""
    groups = []
    for i, ex in enumerate(encoded):
        prompt = tuple(ex.input_ids[: ex.answer_start])
        if groups and groups[-1][0] == prompt:
            groups[-1][1].append(i)
        else:
            groups.append((prompt, [i]))
    return groups


def _teacher_forced_plain(groups, a, encoded, *, pad_token_id, combine, batch_size, stages, preds,
                          gold, verbose):
    """The plain path: every (prompt, answer) sequence whole, right-padded, all logits."""
    import torch

    device = groups[0].device
    lengths = [len(ex.input_ids) for ex in encoded]
    for idx in tqdm(list(_batches(lengths, batch_size)), desc="scoring", disable=not verbose,
                    leave=False):
        rows = [encoded[i] for i in idx]
        ids = _pad_rows([ex.input_ids for ex in rows], pad_token_id, "right")
        mask = _pad_rows([[1] * len(ex.input_ids) for ex in rows], 0, "right")
        r_idx, c_idx, counts = [], [], []
        for r, ex in enumerate(rows):
            cols = list(range(ex.answer_start - 1, len(ex.input_ids) - 1))
            r_idx += [r] * len(cols)
            c_idx += cols
            counts.append(len(cols))
        r_t, c_t = torch.tensor(r_idx), torch.tensor(c_idx)
        target = ids[r_t, c_t + 1]
        scores = [None] * len(a)
        for g in groups:
            logits, _ = g(ids, mask)
            dev = logits.device
            selected = logits[:, r_t.to(dev), c_t.to(dev)].float().to(device)
            for e, m in enumerate(g.members):
                scores[m] = selected[e]
        results = _mix_stages(torch.stack(scores), a, stages, combine, False, target)
        _store(results, preds, gold, list(idx), counts)


# Cost of one more forward, in padded token positions, when the continuation of a batch's
# options is split into forwards of similar lengths (see _length_chunks).
_FORWARD_COST_TOKENS = 48


def _length_chunks(lengths, overhead=_FORWARD_COST_TOKENS):
    """Split rows into chunks of similar length, minimising padded positions + overhead.

    ``lengths`` are positive; returns lists of row indices, each chunk sorted longest first.
    Rows are sorted by length and cut into contiguous runs by dynamic programming: a chunk
    costs ``rows * longest + overhead``.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    sizes = [lengths[i] for i in order]
    n = len(sizes)
    best, cut = [0.0] + [float("inf")] * n, [0] * (n + 1)
    for j in range(1, n + 1):
        for i in range(j):
            cost = best[i] + (j - i) * sizes[i] + overhead
            if cost < best[j]:
                best[j], cut[j] = cost, i
    chunks, j = [], n
    while j > 0:
        chunks.append(order[cut[j] : j])
        j = cut[j]
    return chunks[::-1]


def _expert_scores(groups, n_experts, run_group, lean, target, device):
    """Scores of every expert for the ``N`` answer tokens of a batch: ``(T, N)`` gold
    log-probabilities (``lean``) or ``(T, N, V)`` logits.

    ``run_group(g)`` yields pieces ``(at, src, logits)``: answer tokens ``at`` are predicted by
    rows ``src`` of ``logits`` ``(k, M, V)``. A lean piece never copies whole rows: the gold
    log-probability is the target's logit minus the row's ``logsumexp``.
    """
    import torch

    n = len(target)
    scores = [None] * n_experts
    for g in groups:
        values = None
        for at, src, logits in run_group(g):
            dev = logits.device
            at, src, tgt = at.to(dev), src.to(dev), target.to(dev)[at.to(dev)]
            if values is None:
                shape = (g.size, n) if lean else (g.size, n, logits.shape[-1])
                values = torch.empty(shape, device=dev, dtype=torch.float32)
            if lean:
                lse = torch.logsumexp(logits.float(), dim=-1)
                values[:, at] = logits[:, src, tgt].float() - lse[:, src]
            else:
                values[:, at] = logits[:, src].float()
        values = values.to(device)
        for e, m in enumerate(g.members):
            scores[m] = values[e]
    return torch.stack(scores)


def _single_pass(batch, encoded, pad_token_id):
    """One prompt, one answer per row: each sequence whole, left-padded, so that all answer
    positions fall in the last ``keep`` columns and only their logits are computed."""
    import torch

    members = [rows[0] for _, rows in batch]
    seqs = [encoded[i].input_ids for i in members]
    ids = _pad_rows(seqs, pad_token_id, "left")
    mask = _pad_rows([[1] * len(x) for x in seqs], 0, "left")
    positions = (mask.cumsum(-1) - 1).clamp_min(0)
    counts = [encoded[i].n_answer_tokens for i in members]
    keep = max(counts) + 1
    # answer token j of row r is predicted by column keep - counts[r] + j - 1 of the tail
    src = torch.tensor([r * keep + keep - c + j - 1 for r, c in enumerate(counts)
                        for j in range(c)])
    target = torch.tensor(
        [t for i in members for t in encoded[i].input_ids[encoded[i].answer_start :]]
    )
    at = torch.arange(len(target))

    def run_group(g):
        logits, _ = g(ids, mask, positions, keep=keep)
        yield at, src, logits.reshape(g.size, -1, logits.shape[-1])

    return members, counts, target, run_group


def _prompt_once(batch, encoded, pad_token_id):
    """Prompts once (left-padded, last position's logits), then every answer as a continuation
    of its prompt's KV cache, in forwards of rows of similar length."""
    import torch

    n = len(batch)
    ids = _pad_rows([p for p, _ in batch], pad_token_id, "left")
    mask = _pad_rows([[1] * len(p) for p, _ in batch], 0, "left")
    positions = (mask.cumsum(-1) - 1).clamp_min(0)
    prompt_len = mask.sum(-1)
    members = [i for _, rows in batch for i in rows]
    owner = [b for b, (_, rows) in enumerate(batch) for _ in rows]
    answers = [encoded[i].input_ids[encoded[i].answer_start :] for i in members]
    counts = [len(x) for x in answers]
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).tolist()
    target = torch.tensor([t for x in answers for t in x])
    # Answer token 0 is predicted by the prompt's last position; token j > 0 by position j - 1
    # of the answer's continuation (the answer's last token is never fed).
    first_at = torch.tensor(offsets)
    first_src = torch.tensor(owner)
    longer = [r for r, c in enumerate(counts) if c > 1]
    chunks = []
    for chunk in _length_chunks([counts[r] - 1 for r in longer]) if longer else []:
        rows = [longer[c] for c in chunk]
        width = counts[rows[0]] - 1
        sel = torch.tensor([owner[r] for r in rows])
        chunks.append({
            "sel": sel,
            "ids": _pad_rows([answers[r][:-1] for r in rows], pad_token_id, "right"),
            "mask": torch.cat(
                [mask[sel], _pad_rows([[1] * (counts[r] - 1) for r in rows], 0, "right")], 1
            ),
            "pos": prompt_len[sel][:, None] + torch.arange(width),
            "at": torch.tensor([offsets[r] + 1 + j for r in rows for j in range(counts[r] - 1)]),
            "src": torch.tensor(
                [q * width + j for q, r in enumerate(rows) for j in range(counts[r] - 1)]
            ),
        })

    def run_group(g):
        first, cache = g(ids, mask, positions, use_cache=bool(chunks), keep=1)
        yield first_at, first_src, first[:, :, -1]
        del first
        for q, c in enumerate(chunks):
            last = q == len(chunks) - 1
            sub = g.select_rows(cache, c["sel"], n, copy=not last)
            cont, _ = g(c["ids"], c["mask"], c["pos"], cache=sub, use_cache=True)
            del sub
            yield c["at"], c["src"], cont.reshape(g.size, -1, cont.shape[-1])
            del cont

    return members, counts, target, run_group


def _teacher_forced_fast(groups, a, encoded, *, pad_token_id, combine, batch_size, stages, preds,
                         gold, verbose):
    """Prompts shared by several answers run once; logits only where answers are predicted."""
    device = groups[0].device
    lean = preds is None and combine == "prob"
    prompts = _shared_prompts(encoded)
    # sort by prompt + longest answer: the padded width of both plans
    widths = [len(p) + max(encoded[i].n_answer_tokens for i in rows) for p, rows in prompts]
    for idx in tqdm(list(_batches(widths, batch_size)), desc="scoring", disable=not verbose,
                    leave=False):
        batch = [prompts[i] for i in idx]
        single = all(len(rows) == 1 for _, rows in batch)
        plan = _single_pass if single else _prompt_once
        members, counts, target, run_group = plan(batch, encoded, pad_token_id)
        scores = _expert_scores(groups, len(a), run_group, lean, target, device)
        results = _mix_stages(scores, a, stages, combine, lean, target)
        _store(results, preds, gold, members, counts)


def _teacher_forced(
    models, alphas, encoded, *, pad_token_id, combine, batch_size, staged, want_preds=True,
    share_prompts=True, batch_adapters=True, verbose=0,
):
    """Teacher-forced argmax and gold log-probability of every answer token.

    Returns ``preds, gold``: one list per stage (``s = 1..T`` when ``staged``, else only
    ``T``) of one int64/float64 array per example. ``preds`` is None when not ``want_preds``
    (then, for ``combine="prob"``, only the gold token's log-probability of each expert is kept).
    """
    import torch

    models, a = _check_experts(models, alphas)
    batch_size = _check_batch_size(batch_size)
    _check_prompts_nonempty(encoded)
    if combine not in ("prob", "logit"):
        raise ValueError(f'combine must be "prob" or "logit", got {combine!r}.')
    stages = list(range(1, len(models) + 1)) if staged else [len(models)]
    preds = [[None] * len(encoded) for _ in stages] if want_preds else None
    gold = [[None] * len(encoded) for _ in stages]
    if not encoded:
        return preds, gold
    groups = _make_groups(models, batch_adapters)
    run = _teacher_forced_fast if share_prompts else _teacher_forced_plain
    with torch.inference_mode(), _sessions(groups):
        run(groups, a, encoded, pad_token_id=pad_token_id, combine=combine,
            batch_size=batch_size, stages=stages, preds=preds, gold=gold, verbose=verbose)
    return preds, gold


def token_predictions(
    model, tokenizer, encoded, *, batch_size=8, share_prompts=True, batch_adapters=True, verbose=0
):
    """Teacher-forced argmax prediction of every answer token.

    Parameters
    ----------
    model : causal LM or AdapterExpert
    tokenizer : transformers tokenizer
        Its pad token pads the batches.
    encoded : list of EncodedExample
        From :func:`skw2s.training.encode_sft`.
    batch_size : int, default=8
        Prompts per batch.
    share_prompts : bool, default=True
        The fast path: logits only at answer positions, and consecutive examples with the same
        prompt run it once (their answers continue from its KV cache). ``False``: the plain
        reference, each sequence whole with logits at every position.
    batch_adapters : bool, default=True
        Run adapters of one peft model in one mixed-adapter forward (see the module notes).
    verbose : int, default=0
        Show a progress bar when positive.

    Returns
    -------
    list of ndarray of int64
        For each example, the predicted id of each of its ``n_answer_tokens`` answer tokens
        (given the gold prefix). Compare with ``input_ids[answer_start:]`` for mistakes.
    """
    preds, _ = _teacher_forced(
        [model], [1.0], encoded, pad_token_id=tokenizer.pad_token_id, combine="prob",
        batch_size=batch_size, staged=False, share_prompts=share_prompts,
        batch_adapters=batch_adapters, verbose=verbose,
    )
    return preds[0]


def token_predictions_mixture(
    models, alphas, tokenizer, encoded, *, combine="prob", batch_size=8, staged=False,
    share_prompts=True, batch_adapters=True, verbose=0,
):
    """Teacher-forced argmax of every answer token under the mixture of ``models``.

    Parameters
    ----------
    models : list of causal LM or AdapterExpert
        Experts over one shared vocabulary.
    alphas : array-like of shape (T,)
        Positive expert weights (normalised inside).
    tokenizer, encoded, batch_size, share_prompts, batch_adapters, verbose
        As in :func:`token_predictions`.
    combine : {"prob", "logit"}, default="prob"
        Mix probabilities (eq. 1) or logits (the paper's ablation).
    staged : bool, default=False
        Return a list over stages ``s = 1..T`` (mixture of the first ``s`` experts).

    Returns
    -------
    list of ndarray, or list over stages of list of ndarray
    """
    preds, _ = _teacher_forced(
        models, alphas, encoded, pad_token_id=tokenizer.pad_token_id, combine=combine,
        batch_size=batch_size, staged=staged, share_prompts=share_prompts,
        batch_adapters=batch_adapters, verbose=verbose,
    )
    return preds if staged else preds[0]


def answer_token_errors(encoded, predictions):
    """Return ``(incorrect, lengths)``: flat 0/1 mistakes and answer lengths of ``encoded``."""
    lengths = np.array([ex.n_answer_tokens for ex in encoded], dtype=np.int64)
    incorrect = np.concatenate(
        [p != np.asarray(ex.input_ids[ex.answer_start :]) for ex, p in zip(encoded, predictions)]
    ).astype(np.float64)
    return incorrect, lengths


def _encode_choices(tokenizer, prompts, choices, max_length):
    if len(prompts) != len(choices):
        raise ValueError(f"Got {len(prompts)} prompts but {len(choices)} lists of choices.")
    flat_prompts, flat_answers, counts = [], [], []
    for p, c in zip(prompts, choices):
        flat_prompts += [p] * len(c)
        flat_answers += [format_completion(option) for option in c]
        counts.append(len(c))
    encoded = encode_sft(
        tokenizer, flat_prompts, flat_answers, max_length=max_length, append_eos=False
    )
    return encoded, counts


def _reduce_nll(gold, encoded, counts, reduction):
    nll = np.array([-g.sum() for g in gold])
    if reduction == "mean":
        nll = nll / np.array([ex.n_answer_tokens for ex in encoded])
    return np.split(nll, np.cumsum(counts)[:-1])


def choice_nll(
    model, tokenizer, prompts, choices, *, reduction="sum", batch_size=8, max_length=512,
    share_prompts=True, batch_adapters=True, verbose=0,
):
    """Negative log-likelihood of each answer option given its prompt.

    The option's completion ``format_completion(choice)`` (``" " + choice``) is tokenised on its
    own and appended to the prompt's tokens, as in training (without EOS). With
    ``share_prompts=True`` the prompts of a batch of questions run once, and all their options
    continue from the prompts' KV cache.

    Parameters
    ----------
    model : causal LM or AdapterExpert
    tokenizer : transformers tokenizer
    prompts : list of str
    choices : list of list of str
        The options of each prompt; the count may differ between prompts.
    reduction : {"sum", "mean"}, default="sum"
        Sum of the option's token NLLs, or their mean (length-normalised).
    batch_size : int, default=8
        Questions per batch (each with all its options); with ``share_prompts=False``,
        (prompt, option) sequences per forward.
    max_length : int, default=512
        Longer prompts are cut from the left, with a warning.
    share_prompts : bool, default=True
        Encode each prompt once and its options as a continuation (the fast path). ``False``:
        the plain reference, one whole sequence per (prompt, option).
    batch_adapters : bool, default=True
        Run adapters of one peft model in one mixed-adapter forward (see the module notes).
    verbose : int, default=0

    Returns
    -------
    list of ndarray of float64
        One array per prompt with one NLL per option.
    """
    return choice_nll_mixture(
        [model], [1.0], tokenizer, prompts, choices, reduction=reduction,
        batch_size=batch_size, max_length=max_length, share_prompts=share_prompts,
        batch_adapters=batch_adapters, verbose=verbose,
    )


def choice_nll_mixture(
    models,
    alphas,
    tokenizer,
    prompts,
    choices,
    *,
    combine="prob",
    reduction="sum",
    batch_size=8,
    max_length=512,
    staged=False,
    share_prompts=True,
    batch_adapters=True,
    verbose=0,
):
    """Negative log-likelihood of each answer option under the mixture of ``models``.

    Parameters as in :func:`choice_nll`, plus ``models``, ``alphas``, ``combine`` and ``staged``
    as in :func:`token_predictions_mixture`.

    Returns
    -------
    list of ndarray, or (``staged``) a list over stages of such lists
    """
    if reduction not in ("sum", "mean"):
        raise ValueError(f'reduction must be "sum" or "mean"; got {reduction!r}.')
    encoded, counts = _encode_choices(tokenizer, prompts, choices, max_length)
    _, gold = _teacher_forced(
        models, alphas, encoded, pad_token_id=tokenizer.pad_token_id, combine=combine,
        batch_size=batch_size, staged=staged, want_preds=False, share_prompts=share_prompts,
        batch_adapters=batch_adapters, verbose=verbose,
    )
    out = [_reduce_nll(g, encoded, counts, reduction) for g in gold]
    return out if staged else out[0]


# ----------------------------------------------------------------------------
# Decoding
# ----------------------------------------------------------------------------
def encode_prompts(tokenizer, prompts, *, max_length=512):
    """Token ids of prompts for decoding: BOS (when the tokenizer has one) + prompt tokens.

    Prompts longer than ``max_length`` tokens keep their last ``max_length`` tokens (cut from
    the left, as in training) and a warning is raised.
    """
    ids = tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    out, truncated = [], 0
    for i, p in enumerate(ids):
        row = bos + list(p)
        if not row:
            raise ValueError(
                f"Prompt {i} is empty and the tokenizer has no BOS token: there is nothing to "
                "condition on. Give every prompt some text."
            )
        if len(row) > max_length:
            truncated += 1
            row = row[len(row) - max_length :]
        out.append(row)
    if truncated:
        warnings.warn(
            f"{truncated} prompt(s) were longer than max_length={max_length} and were "
            "truncated from the left. Raise max_length to keep them whole.",
            UserWarning,
            stacklevel=3,
        )
    return out


def _eos_ids(tokenizer, models, eos_token_id):
    if eos_token_id is None:
        ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
        config = getattr(_hf_model(models[0]), "generation_config", None)
        extra = getattr(config, "eos_token_id", None)
        if extra is not None:
            ids |= set(extra) if isinstance(extra, (list, tuple)) else {int(extra)}
        return ids
    if isinstance(eos_token_id, (list, tuple, set)):
        return {int(i) for i in eos_token_id}
    return {int(eos_token_id)}


def mixture_generate(
    models,
    alphas,
    tokenizer,
    prompts,
    *,
    combine="prob",
    max_new_tokens=32,
    do_sample=False,
    temperature=1.0,
    random_state=None,
    batch_size=8,
    max_length=512,
    use_cache=True,
    batch_adapters=True,
    eos_token_id=None,
    speculative_k=None,
    draft_expert=None,
    verbose=0,
):
    """Decode from the alpha-weighted mixture of experts (ALGORITHMS.md, eq. 1).

    At every step each expert scores the next token; the scores are mixed with
    :func:`skw2s._mixture.mix_log_probs` (``sum_t a_t softmax(h_t)`` over the normalised
    weights, or the mixed logits with ``combine="logit"``); the argmax, or a sample at
    ``temperature``, is appended to the sequence of **every** expert. Prompts are batched with
    left padding; positions come from the attention mask, so padding does not shift them. A row
    that emits an EOS token is finished and leaves the batch; decoding stops when every row is
    finished or ``max_new_tokens`` is reached.

    Parameters
    ----------
    models : list of causal LM or AdapterExpert
        Experts sharing one vocabulary (and ``tokenizer``).
    alphas : array-like of shape (T,)
        Positive expert weights.
    tokenizer : transformers tokenizer
    prompts : list of str
    combine : {"prob", "logit"}, default="prob"
    max_new_tokens : int, default=32
    do_sample : bool, default=False
        Sample from the mixture instead of taking its argmax.
    temperature : float, default=1.0
        Sampling temperature (``softmax(log p / temperature)``); must be > 0.
    random_state : int, RandomState instance or None, default=None
        Seeds the local ``torch.Generator`` used for sampling.
    batch_size : int, default=8
    max_length : int, default=512
        Longer prompts are cut from the left with a warning.
    use_cache : bool, default=True
        Keep KV caches (one per expert, or one per group of adapters that share a base model).
        ``False`` recomputes the whole prefix of every expert at every step: the slow reference
        the cached path is tested against.
    batch_adapters : bool, default=True
        Run the :class:`AdapterExpert` experts of one peft model in one mixed-adapter forward
        per step, with one KV cache for the combined batch. ``False`` runs them one by one.
    eos_token_id : int or list of int, default=None
        Tokens that finish a row; default: the tokenizer's EOS token and the first expert's
        ``generation_config.eos_token_id``. An empty list never stops early.
    speculative_k : int or None, default=None
        Greedy *speculative mixture decoding*: one expert (``draft_expert``) drafts
        ``speculative_k`` tokens greedily, one at a time; every other expert scores the drafted
        block in one forward (one per shared-base adapter group), and the longest prefix on
        which the mixture's argmax equals the draft is kept, plus the mixture's own token at the
        first mismatch (every step yields at least one token). The tokens are those of plain
        greedy decoding (up to floating-point ties between logits computed in blocks rather
        than one position at a time). ``None``: plain decoding. Needs ``use_cache=True`` and
        ``do_sample=False``.
    draft_expert : int or None, default=None
        Index in ``models`` of the drafter; default: the expert with the largest weight.
        Only used with ``speculative_k``.
    verbose : int, default=0

    Returns
    -------
    list of list of int
        The generated token ids of each prompt, without the EOS token.

    Notes
    -----
    Speculative decoding of a batch keeps a per-row acceptance: every row keeps its own
    accepted prefix, the caches are cropped to the longest one, and the positions a shorter row
    rejected stay in the caches as masked holes (attention mask 0, positions from the mask, as
    left padding). Models with sliding-window attention layers instead keep the shortest
    accepted prefix of the batch (no holes, since holes would count towards the window), which
    is still exact but accepts fewer tokens per step. Finished rows leave the batch.

    Speculation trades ``T`` single-token forwards per token for ``k`` drafter forwards plus
    one ``k + 1``-token forward per other expert per step. It is faster when the experts are
    separate models that mostly agree and a step is bound by reading weights (small batches);
    with experts that often disagree, or with LoRA adapters of one base model (whose plain step
    already reads the base weights once for all of them), it can be slower; see
    ``benchmarks/PERFORMANCE.md``.
    """
    import torch

    from ._mixture import mix_log_probs

    models, a = _check_experts(models, alphas)
    batch_size = _check_batch_size(batch_size)
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, numbers.Integral) or (
        max_new_tokens < 1
    ):
        raise ValueError(f"max_new_tokens must be a positive integer; got {max_new_tokens!r}.")
    if do_sample and not (isinstance(temperature, numbers.Real) and temperature > 0):
        raise ValueError(f"temperature must be > 0 when sampling; got {temperature!r}.")
    if combine not in ("prob", "logit"):
        raise ValueError(f'combine must be "prob" or "logit", got {combine!r}.')
    speculative_k, draft_expert = _check_speculative(
        speculative_k, draft_expert, a, do_sample=do_sample, use_cache=use_cache
    )
    eos = _eos_ids(tokenizer, models, eos_token_id)
    eos_t = torch.tensor(sorted(eos), dtype=torch.long)
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        pad_id = min(eos) if eos else 0
    generator = None
    if do_sample:
        seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
        generator = torch.Generator().manual_seed(seed)
    groups = _make_groups(models, batch_adapters)
    alphas_t = torch.as_tensor(a)
    encoded = encode_prompts(tokenizer, prompts, max_length=max_length)
    results = [None] * len(encoded)
    batches = list(_batches([len(e) for e in encoded], batch_size))
    stats = _SpeculativeStats()
    with torch.inference_mode(), _sessions(groups):
        for idx in tqdm(batches, desc="generating", disable=not verbose, leave=False):
            rows = [encoded[i] for i in idx]
            ids = _pad_rows(rows, pad_id, "left")
            mask = _pad_rows([[1] * len(r) for r in rows], 0, "left")
            if speculative_k is not None:
                out = _decode_batch_speculative(
                    groups, alphas_t, ids, mask, combine=combine,
                    max_new_tokens=int(max_new_tokens), eos=eos_t, k=speculative_k,
                    drafter=draft_expert, stats=stats,
                )
            else:
                out = _decode_batch(
                    groups, alphas_t, ids, mask, combine=combine,
                    max_new_tokens=int(max_new_tokens), generator=generator,
                    temperature=temperature, do_sample=do_sample, eos=eos_t,
                    use_cache=use_cache, mix=mix_log_probs,
                )
            for i, toks in zip(idx, out):
                results[i] = toks
    if speculative_k is not None:
        for sink in _STATS_SINKS:
            sink.add(stats)
        if verbose:
            logger.info("speculative decoding: %s", stats.as_dict())
    return results


def _greedy_token(logits, weights, combine):
    """Argmax of the mixture without forming its log-probabilities.

    ``prob``: ``argmax sum_t w_t softmax(l_t)`` (one expert: ``argmax l``); ``logit``:
    ``argmax sum_t w_t l_t`` (``log_softmax`` does not move the argmax).
    """
    import torch

    if logits.shape[0] == 1:
        return logits[0].argmax(-1)
    if combine == "logit":
        return torch.tensordot(weights, logits, dims=1).argmax(-1)
    return torch.tensordot(weights, torch.softmax(logits, dim=-1), dims=1).argmax(-1)


def _decode_batch(
    groups, alphas, ids, mask, *, combine, max_new_tokens, generator, temperature, do_sample,
    eos, use_cache, mix,
):
    import torch

    device = groups[0].device
    n_experts = sum(g.size for g in groups)
    weights = (alphas / alphas.sum()).to(device=device, dtype=torch.float32)
    eos_set = set(eos.tolist())
    positions = (mask.cumsum(-1) - 1).clamp_min(0)
    rows = list(range(ids.shape[0]))  # original row of each live row
    generated = [[] for _ in rows]
    caches = [None] * len(groups)
    step_ids = ids
    for step in range(max_new_tokens):
        if use_cache and step > 0:
            feed_ids, feed_pos = step_ids, positions[:, -1:]
        else:
            feed_ids, feed_pos = ids, positions
        n = feed_ids.shape[0]
        last = None
        for k, g in enumerate(groups):
            logits, cache = g(
                feed_ids, mask, feed_pos, cache=caches[k], use_cache=use_cache, keep=1
            )
            caches[k] = cache
            if last is None:
                last = torch.empty((n_experts, n, logits.shape[-1]), device=device)
            last[g.members] = logits[:, :, -1].to(device=device, dtype=last.dtype)
        if do_sample:
            logp = mix(last, alphas, combine)
            probs = torch.softmax(logp.float() / temperature, dim=-1).cpu()
            token = torch.multinomial(probs, 1, generator=generator)[:, 0]
        else:
            token = _greedy_token(last, weights, combine).cpu()
        is_eos = torch.isin(token, eos)
        for r, t in enumerate(token.tolist()):
            if t not in eos_set:
                generated[rows[r]].append(t)
        if step == max_new_tokens - 1 or bool(is_eos.all()):
            break
        if bool(is_eos.any()):  # finished rows leave the batch, and their cache rows too
            keep = torch.nonzero(~is_eos)[:, 0]
            rows = [rows[r] for r in keep.tolist()]
            ids, mask, positions, token = ids[keep], mask[keep], positions[keep], token[keep]
            for k, g in enumerate(groups):
                if caches[k] is not None:
                    g.select_rows(caches[k], keep, n)
        step_ids = token[:, None]
        ids = torch.cat([ids, step_ids], dim=1)
        mask = torch.cat([mask, torch.ones_like(step_ids)], dim=1)
        positions = torch.cat([positions, positions[:, -1:] + 1], dim=1)
    return generated


# ----------------------------------------------------------------------------
# Speculative mixture decoding
# ----------------------------------------------------------------------------
def _check_speculative(speculative_k, draft_expert, a, *, do_sample, use_cache):
    """Validated ``(k or None, drafter index or None)``."""
    if speculative_k is None:
        if draft_expert is not None:
            raise ValueError(
                f"draft_expert={draft_expert!r} is only used with speculative decoding; pass "
                "speculative_k as well, or leave draft_expert=None."
            )
        return None, None
    if isinstance(speculative_k, bool) or not isinstance(speculative_k, numbers.Integral) or (
        speculative_k < 1
    ):
        raise ValueError(
            f"speculative_k must be None or a positive integer; got {speculative_k!r}."
        )
    if do_sample:
        raise ValueError(
            "speculative_k supports greedy decoding only: pass do_sample=False, or "
            "speculative_k=None to sample."
        )
    if not use_cache:
        raise ValueError(
            "speculative_k needs use_cache=True (it drafts and verifies on KV caches)."
        )
    if draft_expert is None:
        return int(speculative_k), int(np.argmax(a))
    if isinstance(draft_expert, bool) or not isinstance(draft_expert, numbers.Integral) or not (
        0 <= draft_expert < len(a)
    ):
        raise ValueError(
            f"draft_expert must be None or an index into the {len(a)} experts "
            f"(0 <= draft_expert < {len(a)}); got {draft_expert!r}."
        )
    return int(speculative_k), int(draft_expert)


class _SpeculativeStats:
    """Counters of speculative decoding (summed over batches and calls).

    ``row_steps``: verification steps summed over the rows they verified (the prompt pass is
    not one); ``drafted``: drafted tokens offered to those rows; ``accepted``: drafted tokens
    the mixture agreed with and that were kept; ``verify_forwards``: forwards of the expert
    groups (the prompt pass included); ``draft_forwards``: single-token forwards of the drafter
    (a drafter that is a group of its own also feeds its last draft, for its share of the
    verification).
    """

    _FIELDS = ("row_steps", "drafted", "accepted", "verify_forwards", "draft_forwards")

    def __init__(self):
        for f in self._FIELDS:
            setattr(self, f, 0)

    def add(self, other):
        for f in self._FIELDS:
            setattr(self, f, getattr(self, f) + getattr(other, f))

    def as_dict(self):
        out = {f: getattr(self, f) for f in self._FIELDS}
        out["acceptance_rate"] = self.accepted / self.drafted if self.drafted else float("nan")
        out["tokens_per_row_step"] = (
            (self.accepted + self.row_steps) / self.row_steps if self.row_steps else float("nan")
        )
        return out


_STATS_SINKS = []


@contextlib.contextmanager
def _record_speculative_stats():
    """Collect the :class:`_SpeculativeStats` of every speculative ``mixture_generate`` call
    made inside the block (benchmarks read the acceptance rate from it)."""
    stats = _SpeculativeStats()
    _STATS_SINKS.append(stats)
    try:
        yield stats
    finally:
        _STATS_SINKS.remove(stats)


def _has_sliding_layers(cache):
    return any(getattr(layer, "is_sliding", False) for layer in getattr(cache, "layers", ()))


def _prepare_rollback(cache):
    """Let sliding-window layers keep the states a later ``crop`` may need."""
    if _has_sliding_layers(cache) and hasattr(cache, "activate_past_recording"):
        cache.activate_past_recording()


def _crop(cache, remove):
    """Drop the last ``remove`` positions of ``cache`` (a negative ``crop`` argument means "this
    many tokens" in every transformers version that has ``Cache.crop``)."""
    if remove > 0:
        cache.crop(-remove)
    elif _has_sliding_layers(cache):
        cache.crop(0)  # trims a sliding window that recorded its past back to its size


def _decode_batch_speculative(
    groups, alphas, ids, mask, *, combine, max_new_tokens, eos, k, drafter, stats,
):
    """Greedy speculative decoding of one left-padded batch (see :func:`mixture_generate`).

    Invariants at the top of every round: ``ids``/``mask`` hold ``W`` columns, the last one the
    *pending* token (chosen, not yet fed); the groups' caches hold the first ``W - 1`` columns.

    A drafter that is a group of its own (a full model, or an adapter alone) drafts on its
    group's cache: it feeds the pending token and its ``k`` drafts one at a time, and those
    ``k + 1`` logits are its share of the verification (the other groups verify the block in one
    forward). A drafter that is one adapter of a shared-base group drafts on its own cache, cut
    from the group's prompt pass (its block of rows); it holds ``dlen <= W - 1`` columns and
    catches up on the rest, and the whole group verifies the block.
    """
    import torch

    device = groups[0].device
    n_experts = sum(g.size for g in groups)
    weights = (alphas / alphas.sum()).to(device=device, dtype=torch.float32)
    eos_set = set(eos.tolist())
    dj = next(j for j, g in enumerate(groups) if drafter in g.members)
    dgroup = groups[dj]
    solo = dgroup.size == 1
    dmember = None if solo else dgroup.members.index(drafter)
    caches = [None] * len(groups)
    dcache, dlen = None, 0
    rows = list(range(ids.shape[0]))
    generated = [[] for _ in rows]
    positions = (mask.cumsum(-1) - 1).clamp_min(0)

    def mixture_tokens(feed_ids, feed_mask, feed_pos, keep, drafted=None):
        """The mixture's greedy token at each of the last ``keep`` positions: ``(n, keep)``.

        ``drafted``: the solo drafter's logits ``(n, keep, V)``, its group is not run again.
        """
        scores = None
        for j, g in enumerate(groups):
            if drafted is not None and j == dj:
                logits = drafted[None]
            else:
                logits, caches[j] = g(feed_ids, feed_mask, feed_pos, cache=caches[j],
                                      use_cache=True, keep=keep)
                stats.verify_forwards += 1
            if scores is None:
                shape = (n_experts, feed_ids.shape[0], keep, logits.shape[-1])
                scores = torch.empty(shape, device=device)
            scores[g.members] = logits.to(device=device, dtype=scores.dtype)
        return _greedy_token(scores, weights, combine).cpu()

    def emit(r, toks):
        """Append ``toks`` to row ``r`` until EOS or ``max_new_tokens``; True when finished."""
        for t in toks:
            if t in eos_set:
                return True
            generated[r].append(t)
            if len(generated[r]) >= max_new_tokens:
                return True
        return False

    def one(col):
        return torch.ones((col.shape[0], 1), dtype=mask.dtype)

    # prompt pass of every expert: the first token, as in plain decoding
    token = mixture_tokens(ids, mask, positions, 1)[:, 0]
    sliding = any(_has_sliding_layers(c) for c in caches)
    for c in caches:
        _prepare_rollback(c)
    if not solo:  # the drafter's cache: its block of rows of its group's prompt pass
        n = ids.shape[0]
        dcache = _shallow_copy(caches[dj])
        dcache.batch_select_indices(torch.arange(dmember * n, (dmember + 1) * n,
                                                 device=dgroup.device))
        dlen = ids.shape[1]
    finished = [emit(r, [t]) for r, t in zip(rows, token.tolist())]
    ids = torch.cat([ids, token[:, None]], 1)
    mask = torch.cat([mask, one(ids)], 1)
    positions = (mask.cumsum(-1) - 1).clamp_min(0)
    while True:
        keep = [i for i, f in enumerate(finished) if not f]
        if not keep:
            break
        if len(keep) < len(rows):  # finished rows leave the batch, and their cache rows too
            keep_t = torch.tensor(keep)
            n = len(rows)
            for j, g in enumerate(groups):
                g.select_rows(caches[j], keep_t, n)
            if dcache is not None:
                dcache.batch_select_indices(keep_t.to(dgroup.device))
            rows = [rows[i] for i in keep]
            ids, mask, positions = ids[keep_t], mask[keep_t], positions[keep_t]
        n, W = len(rows), ids.shape[1]
        # -- draft ---------------------------------------------------------------------------
        k_eff = min(k, max(max_new_tokens - len(generated[r]) for r in rows) - 1)
        steps, own = [], []
        if solo:  # the pending token and every draft, one at a time, on the group's cache
            feed_ids, feed_mask, feed_pos = ids[:, -1:], mask, positions[:, -1:]
            for i in range(k_eff + 1):
                logits, caches[dj] = dgroup(feed_ids, feed_mask, feed_pos, cache=caches[dj],
                                            use_cache=True, keep=1)
                own.append(logits[0, :, -1])
                if i < k_eff:
                    d = own[-1].argmax(-1)
                    steps.append(d.cpu())
                    feed_ids, feed_pos = d[:, None], feed_pos + 1
                    feed_mask = torch.cat([feed_mask, one(feed_mask)], 1)
            stats.draft_forwards += k_eff + 1
        elif k_eff > 0:  # catch up on the columns the drafter lacks, then draft
            feed_ids, feed_mask, feed_pos = ids[:, dlen:], mask, positions[:, dlen:]
            for _ in range(k_eff):
                logits, dcache = dgroup(feed_ids, feed_mask, feed_pos, cache=dcache,
                                        use_cache=True, keep=1, member=dmember)
                d = logits[0, :, -1].argmax(-1)
                steps.append(d.cpu())
                feed_ids, feed_pos = d[:, None], feed_pos[:, -1:] + 1
                feed_mask = torch.cat([feed_mask, one(feed_mask)], 1)
            stats.draft_forwards += k_eff
            dlen = W + k_eff - 1
        drafts = torch.stack(steps, 1) if steps else torch.empty((n, 0), dtype=torch.long)
        # -- verify: the other experts score the pending token and the drafts in one forward --
        block = torch.cat([ids[:, -1:], drafts], 1)
        block_mask = torch.cat([mask, torch.ones((n, k_eff), dtype=mask.dtype)], 1)
        block_pos = positions[:, -1:] + torch.arange(k_eff + 1)
        best = mixture_tokens(block, block_mask, block_pos, k_eff + 1,
                              drafted=torch.stack(own, 1) if solo else None)
        match = (best[:, :k_eff] == drafts).long().cumprod(1).sum(1)
        if sliding:  # no holes: every row keeps the batch's shortest accepted prefix
            match = match.clamp(max=int(match.min()))
        token = best[torch.arange(n), match]
        finished = [
            emit(r, drafts[i, : match[i]].tolist() + [int(token[i])]) for i, r in enumerate(rows)
        ]
        stats.row_steps += n
        stats.drafted += n * k_eff
        stats.accepted += int(match.sum())
        live = [i for i, f in enumerate(finished) if not f]
        if not live:
            break
        # -- keep the longest accepted prefix of the live rows; shorter rows get masked holes --
        M = int(match[live].max())
        kept = (torch.arange(1, M + 1)[None, :] <= match[:, None]).to(mask.dtype)
        ids = torch.cat([ids, drafts[:, :M], token[:, None]], 1)
        mask = torch.cat([mask, kept, one(mask)], 1)
        positions = (mask.cumsum(-1) - 1).clamp_min(0)
        for c in caches:  # they hold W + k_eff columns; keep W + M
            _crop(c, k_eff - M)
        if dcache is not None and dlen > W + M:
            _crop(dcache, dlen - (W + M))
            dlen = W + M
        elif dcache is not None and sliding:
            _crop(dcache, 0)
    return generated


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
