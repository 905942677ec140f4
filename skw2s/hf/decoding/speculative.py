"""Greedy speculative mixture decoding (``mixture_generate(..., speculative_k=k)``).

One expert drafts ``k`` tokens one at a time, the other experts (groups) score the pending
token and the draft in one forward each (``logits_to_keep=k + 1``), the longest prefix on which
the mixture's argmax agrees is kept plus the mixture's token at the first disagreement, and the
caches are cropped back (``Cache.crop``). Rows of a batch accept different lengths: rejected
positions stay as masked holes. Tested against plain greedy decoding (same tokens). It pays off
for separate expert models that mostly agree; adapters of one base already share each step's
weight reads.

torch is imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import logging
import numbers

import numpy as np

from .experts import _shallow_copy

logger = logging.getLogger(__name__)


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


def _publish_stats(stats, verbose):
    """Add one call's counters to every open :func:`_record_speculative_stats` block."""
    for sink in _STATS_SINKS:
        sink.add(stats)
    if verbose:
        logger.info("speculative decoding: %s", stats.as_dict())


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
    groups, weights, ids, mask, *, combine, max_new_tokens, eos, k, drafter, stats,
):
    """Greedy speculative decoding of one left-padded batch (see
    :func:`skw2s.decoding.mixture_generate`); ``weights`` are the normalised expert weights on
    the first group's device (as in :func:`skw2s.core.mixture.greedy_tokens`).

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

    from ...core.mixture import greedy_tokens

    device = groups[0].device
    n_experts = sum(g.size for g in groups)
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
        return greedy_tokens(scores, weights, combine).cpu()

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
                    steps.append(d)
                    feed_ids, feed_pos = d[:, None], feed_pos + 1
                    feed_mask = torch.cat([feed_mask, one(feed_mask)], 1)
            stats.draft_forwards += k_eff + 1
        elif k_eff > 0:  # catch up on the columns the drafter lacks, then draft
            feed_ids, feed_mask, feed_pos = ids[:, dlen:], mask, positions[:, dlen:]
            for _ in range(k_eff):
                logits, dcache = dgroup(feed_ids, feed_mask, feed_pos, cache=dcache,
                                        use_cache=True, keep=1, member=dmember)
                d = logits[0, :, -1].argmax(-1)
                steps.append(d)
                feed_ids, feed_pos = d[:, None], feed_pos[:, -1:] + 1
                feed_mask = torch.cat([feed_mask, one(feed_mask)], 1)
            stats.draft_forwards += k_eff
            dlen = W + k_eff - 1
        # the drafts stay on the drafter's device while it drafts; they come back at once here
        drafts = (torch.stack(steps, 1).cpu() if steps
                  else torch.empty((n, 0), dtype=torch.long))
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
