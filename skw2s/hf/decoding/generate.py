"""Decoding from a mixture of experts: batched, KV-cached, greedy or sampled.

:func:`mixture_generate` decodes from the alpha-weighted mixture (ALGORITHMS.md, eq. 1) with
left padding and KV caches; the chosen token is fed back to every expert. A single model is
the mixture of one expert.

**Cached decoding** (``use_cache=True``): one KV cache per expert (or per shared-base group of
adapters, :mod:`skw2s.decoding.experts`); the prompt pass computes logits at its last position
only; the mixture is formed on the experts' device and only the chosen tokens go to the CPU;
finished rows leave the batch (their cache rows are dropped). ``use_cache=False`` recomputes
the whole prefix at every step: the plain reference the cached path is tested against.
``speculative_k`` switches to greedy speculative decoding
(:mod:`skw2s.decoding.speculative`).

torch is imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import numbers
import warnings

from tqdm.auto import tqdm

from ...core.random import decoding_seed
from ..distributed import map_batches
from ._batching import _batches, _check_positive_int, _pad_rows
from .experts import (
    _check_experts,
    _hf_model,
    _make_groups,
    _sessions,
    check_shared_vocabulary,
    check_vocabulary_sizes,
)
from .speculative import (
    _check_speculative,
    _decode_batch_speculative,
    _publish_stats,
    _SpeculativeStats,
)

__all__ = ["encode_prompts", "mixture_generate"]


def encode_prompts(tokenizer, prompts, *, max_length=512):
    """Token ids of prompts for decoding: BOS (when the tokenizer has one) + prompt tokens.

    Parameters
    ----------
    tokenizer : transformers tokenizer
    prompts : list of str
    max_length : int, default=512
        Prompts longer than ``max_length`` tokens keep their last ``max_length`` tokens (cut
        from the left, as in training), with a warning.

    Returns
    -------
    list of list of int
        The token ids of each prompt.

    Raises
    ------
    ValueError
        If a prompt is empty and the tokenizer has no BOS token.
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


def _prompt_tokenizer(models, tokenizer):
    """The tokenizer of the prompts, once the experts are known to share its vocabulary."""
    if isinstance(tokenizer, (list, tuple)):
        tokenizers = list(tokenizer)
        if len(tokenizers) != len(models):
            raise ValueError(
                f"Got {len(models)} experts but {len(tokenizers)} tokenizers: give one "
                "tokenizer for all of them, or one per expert."
            )
        check_shared_vocabulary(tokenizers)
        tokenizer = tokenizers[0]
    check_vocabulary_sizes(models, tokenizer)
    return tokenizer


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
    :func:`skw2s.core.mixture.mix_log_probs` (``sum_t a_t softmax(h_t)`` over the normalised
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
    tokenizer : transformers tokenizer, or list of them (one per expert)
        Encodes the prompts (the first of a list). The experts must share its vocabulary: a
        list is compared token by token (:func:`~skw2s.decoding.experts.check_shared_vocabulary`),
        and every expert's vocabulary size must match the others' and hold the tokenizer's
        ids (:func:`~skw2s.decoding.experts.check_vocabulary_sizes`).
    prompts : list of str
    combine : {"prob", "logit", "confidence"}, default="prob"
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
        Show a progress bar over the batches when positive; with ``speculative_k``, also log
        the acceptance counters.

    Returns
    -------
    list of list of int
        The generated token ids of each prompt, without the EOS token.

    Raises
    ------
    ValueError
        If an argument is out of range, or the experts do not share the tokenizer's vocabulary
        (the message names the experts).

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

    from ...core.mixture import check_combine, normalize_alphas

    # every argument is checked here, once, before any model runs
    models, a = _check_experts(models, alphas)
    tokenizer = _prompt_tokenizer(models, tokenizer)
    check_combine(combine)
    batch_size = _check_positive_int("batch_size", batch_size)
    max_new_tokens = _check_positive_int("max_new_tokens", max_new_tokens)
    if do_sample and not (isinstance(temperature, numbers.Real) and temperature > 0):
        raise ValueError(f"temperature must be > 0 when sampling; got {temperature!r}.")
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
        generator = torch.Generator().manual_seed(decoding_seed(random_state))
    groups = _make_groups(models, batch_adapters)
    alphas_t = torch.as_tensor(a)
    # the greedy choice's weights, formed once on the experts' device
    weights = normalize_alphas(a).to(device=groups[0].device, dtype=torch.float32)
    encoded = encode_prompts(tokenizer, prompts, max_length=max_length)
    results = [None] * len(encoded)
    batches = list(_batches([len(e) for e in encoded], batch_size))
    stats = _SpeculativeStats()

    def run(idx):
        rows = [encoded[i] for i in idx]
        ids = _pad_rows(rows, pad_id, "left")
        mask = _pad_rows([[1] * len(r) for r in rows], 0, "left")
        if speculative_k is not None:
            own = _SpeculativeStats()
            out = _decode_batch_speculative(
                groups, weights, ids, mask, combine=combine, max_new_tokens=max_new_tokens,
                eos=eos_t, k=speculative_k, drafter=draft_expert, stats=own,
            )
            return out, own
        out = _decode_batch(
            groups, alphas_t, weights, ids, mask, combine=combine,
            max_new_tokens=max_new_tokens, generator=generator, temperature=temperature,
            do_sample=do_sample, eos=eos_t, use_cache=use_cache,
        )
        return out, None

    with torch.inference_mode(), _sessions(groups):
        if do_sample:  # one generator draws for every batch in turn: every rank runs them all
            done = [run(idx) for idx in tqdm(batches, desc="generating", disable=not verbose,
                                             leave=False)]
        else:
            done = map_batches(run, batches, desc="generating", verbose=verbose)
    for idx, (out, own) in zip(batches, done):
        for i, toks in zip(idx, out):
            results[i] = toks
        if own is not None:
            stats.add(own)
    if speculative_k is not None:
        _publish_stats(stats, verbose)
    return results


def _decode_batch(
    groups, alphas, weights, ids, mask, *, combine, max_new_tokens, generator, temperature,
    do_sample, eos, use_cache,
):
    """Plain (one token per step) decoding of one left-padded batch; ``alphas`` mix a sampled
    step (:func:`~skw2s.core.mixture.sample_tokens`), ``weights`` (normalised, on the first group's
    device) a greedy one (:func:`~skw2s.core.mixture.greedy_tokens`)."""
    import torch

    from ...core.mixture import greedy_tokens, sample_tokens

    device = groups[0].device
    n_experts = sum(g.size for g in groups)
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
            token = sample_tokens(last, alphas, combine, temperature=temperature,
                                  generator=generator)
        else:
            token = greedy_tokens(last, weights, combine).cpu()
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
