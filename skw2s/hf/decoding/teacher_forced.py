"""Teacher-forced scoring: the argmax of every answer token, and the NLL of answer options.

Everything here works on one model or on a weighted mixture of experts (ALGORITHMS.md, eq. 1)
through the same code: a single model is the mixture of one expert.

- :func:`token_predictions` / :func:`token_predictions_mixture`: teacher-forced argmax of every
  answer token, for token errors and ``eps_t``;
- :func:`choice_nll` / :func:`choice_nll_mixture`: negative log-likelihood of each answer
  option, its completion ``" " + choice`` appended to the prompt's tokens.

**Prompt once** (``share_prompts=True``): consecutive examples with the same prompt (a
question's options) are grouped. A batch of such questions runs its prompts once (left-padded,
logits of the last position only), then every option as a continuation of its prompt's KV
cache, expanded per option (``Cache.batch_select_indices``); options are cut into forwards of
rows of similar length (:func:`_length_chunks`) so that long options do not pad short ones. A
batch whose prompts each have one answer (token errors) runs each sequence whole, left-padded,
with logits only in the answer columns (``logits_to_keep``). ``share_prompts=False`` is the
plain path it is tested against: each (prompt, answer) sequence whole, right-padded, with
logits at every position.

The ``staged=True`` options return the result for the first ``s`` experts, ``s = 1..T``, from a
single pass over the data (each expert runs once per batch). With ``verbose`` on, a progress bar
counts the batches.

torch is imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import numpy as np

from ...data.datasets import format_completion
from ..training import encode_sft, warn_truncated_prompts
from ..distributed import map_batches
from ._batching import _batches, _check_positive_int, _pad_rows
from .experts import _check_experts, _make_groups, _sessions

__all__ = [
    "answer_token_errors",
    "choice_nll",
    "choice_nll_mixture",
    "token_predictions",
    "token_predictions_mixture",
]


def _check_prompts_nonempty(encoded):
    for ex in encoded:
        if ex.answer_start < 1:
            raise ValueError(
                "Every prompt needs at least one token (the tokenizer has no BOS token, and a "
                "prompt is empty)."
            )


# ----------------------------------------------------------------------------
# Mixing and storing the scores of a batch
# ----------------------------------------------------------------------------
def _mix_stages(scores, a, stages, combine, lean, target):
    """Mixture of the first ``s`` experts for each stage: ``(argmax or None, gold log-prob)``.

    ``scores`` is ``(T, N)`` gold log-probabilities (``lean``) or ``(T, N, V)`` logits.
    """
    from ...core.mixture import staged_mixtures

    out = []
    for logp in staged_mixtures(scores, a, stages=stages, combine=combine, token=lean):
        if lean:
            out.append((None, logp.cpu().numpy()))
        else:
            p = logp.argmax(-1).cpu().numpy().astype(np.int64)
            g = logp.gather(-1, target.to(logp.device)[:, None])[:, 0].double().cpu().numpy()
            out.append((p, g))
    return out


def _member_gold(scores, lean, target):
    """Each expert's own gold log-probabilities ``[(None, (N,) array)] * T`` of a batch."""
    import torch

    if lean:
        return [(None, row.double().cpu().numpy()) for row in scores]
    logp = torch.log_softmax(scores.float(), dim=-1)
    gathered = logp.gather(-1, target.to(logp.device)[None, :, None].expand(len(scores), -1, 1))
    return [(None, row[:, 0].double().cpu().numpy()) for row in gathered]


def _store(results, preds, gold, members, counts):
    splits = np.cumsum(counts)[:-1]
    for k, (p, g) in enumerate(results):
        for i, gg in zip(members, np.split(g, splits)):
            gold[k][i] = gg
        if p is not None and preds is not None:
            for i, pp in zip(members, np.split(p, splits)):
                preds[k][i] = pp


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
            at, src = at.to(dev), src.to(dev)
            tgt = target.to(dev)[at]
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


# ----------------------------------------------------------------------------
# How a batch runs: its plan
# ----------------------------------------------------------------------------
# A plan ``plan(batch, encoded, pad_token_id)`` returns ``(members, counts, target, run_group)``:
# the examples of the batch, their answer lengths, the flat answer tokens, and the function that
# runs one expert group on the batch (see _expert_scores).
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


def _whole_sequences(batch, encoded, pad_token_id):
    """The plain path: every (prompt, answer) sequence whole, right-padded, all logits."""
    import torch

    rows = [encoded[i] for i in batch]
    ids = _pad_rows([ex.input_ids for ex in rows], pad_token_id, "right")
    mask = _pad_rows([[1] * len(ex.input_ids) for ex in rows], 0, "right")
    width = ids.shape[1]
    # answer token j of row r is predicted by column answer_start - 1 + j of that row
    src, counts = [], []
    for r, ex in enumerate(rows):
        cols = range(ex.answer_start - 1, len(ex.input_ids) - 1)
        src += [r * width + c for c in cols]
        counts.append(len(cols))
    src = torch.tensor(src)
    target = ids.reshape(-1)[src + 1]
    at = torch.arange(len(src))

    def run_group(g):
        logits, _ = g(ids, mask)
        yield at, src, logits.reshape(g.size, -1, logits.shape[-1])

    return list(batch), counts, target, run_group


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


def _plan_batches(encoded, batch_size, share_prompts):
    """The batches of one pass over ``encoded``, each with its plan: ``[(plan, batch)]``."""
    if not share_prompts:
        lengths = [len(ex.input_ids) for ex in encoded]
        return [(_whole_sequences, idx) for idx in _batches(lengths, batch_size)]
    prompts = _shared_prompts(encoded)
    # sort by prompt + longest answer: the padded width of both plans
    widths = [len(p) + max(encoded[i].n_answer_tokens for i in rows) for p, rows in prompts]
    plans = []
    for idx in _batches(widths, batch_size):
        batch = [prompts[i] for i in idx]
        single = all(len(rows) == 1 for _, rows in batch)
        plans.append((_single_pass if single else _prompt_once, batch))
    return plans


# ----------------------------------------------------------------------------
# Teacher-forced scoring
# ----------------------------------------------------------------------------
def _teacher_forced(
    models, alphas, encoded, *, pad_token_id, combine, batch_size, staged, want_preds=True,
    share_prompts=True, batch_adapters=True, verbose=0, desc="scoring", members=False,
):
    """Teacher-forced argmax and gold log-probability of every answer token.

    Returns ``preds, gold``: one list per stage (``s = 1..T`` when ``staged``, else only
    ``T``) of one int64/float64 array per example. ``preds`` is None when not ``want_preds``
    (then, for ``combine="prob"`` on the fast path, only the gold token's log-probability of
    each expert is kept). ``verbose`` shows a progress bar over the batches, named ``desc``.
    With ``members`` (and not ``want_preds``), ``gold`` also holds, after the stages, one list
    per expert of its own gold log-probabilities, from the same forward passes.
    """
    import torch

    from ...core.mixture import check_combine

    models, a = _check_experts(models, alphas)
    batch_size = _check_positive_int("batch_size", batch_size)
    _check_prompts_nonempty(encoded)
    check_combine(combine)
    stages = list(range(1, len(models) + 1)) if staged else [len(models)]
    preds = [[None] * len(encoded) for _ in stages] if want_preds else None
    if members and want_preds:
        raise ValueError("members=True returns gold log-probabilities only (want_preds=False).")
    gold = [[None] * len(encoded) for _ in range(len(stages) + (len(models) if members else 0))]
    if not encoded:
        return preds, gold
    groups = _make_groups(models, batch_adapters)
    device = groups[0].device
    lean = share_prompts and preds is None and combine == "prob"
    batches = _plan_batches(encoded, batch_size, share_prompts)

    def run(item):
        plan, batch = item
        rows, counts, target, run_group = plan(batch, encoded, pad_token_id)
        scores = _expert_scores(groups, len(a), run_group, lean, target, device)
        results = _mix_stages(scores, a, stages, combine, lean, target)
        if members:
            results = results + _member_gold(scores, lean, target)
        return rows, counts, results

    with torch.inference_mode(), _sessions(groups):
        done = map_batches(run, batches, rows=_plan_rows, desc=desc, verbose=verbose)
    for rows, counts, results in done:
        _store(results, preds, gold, rows, counts)
    return preds, gold


def _plan_rows(item):
    """The examples of a planned batch: one per prompt, or several sharing one."""
    plan, batch = item
    return sum(len(rows) for _, rows in batch) if plan is not _whole_sequences else len(batch)


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
        Run adapters of one peft model in one forward (see :mod:`skw2s.decoding.experts`).
    verbose : int, default=0
        Show a progress bar over the batches when positive.

    Returns
    -------
    list of ndarray of int64
        For each example, the predicted id of each of its ``n_answer_tokens`` answer tokens
        (given the gold prefix). Compare with ``input_ids[answer_start:]`` for mistakes.
    """
    return token_predictions_mixture(
        [model], [1.0], tokenizer, encoded, batch_size=batch_size, share_prompts=share_prompts,
        batch_adapters=batch_adapters, verbose=verbose,
    )


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
    tokenizer, encoded
        As in :func:`token_predictions`.
    combine : {"prob", "logit", "confidence"}, default="prob"
        Mix probabilities (eq. 1) or logits (the paper's ablation).
    batch_size : int, default=8
        As in :func:`token_predictions`.
    staged : bool, default=False
        Return a list over stages ``s = 1..T`` (mixture of the first ``s`` experts).
    share_prompts, batch_adapters, verbose
        As in :func:`token_predictions`.

    Returns
    -------
    list of ndarray, or list over stages of list of ndarray
    """
    preds, _ = _teacher_forced(
        models, alphas, encoded, pad_token_id=tokenizer.pad_token_id, combine=combine,
        batch_size=batch_size, staged=staged, share_prompts=share_prompts,
        batch_adapters=batch_adapters, verbose=verbose, desc="token predictions",
    )
    return preds if staged else preds[0]


def expert_gold_log_probs(models, tokenizer, encoded, *, batch_size=8, verbose=0):
    """Each expert's own teacher-forced log-probability of every gold answer token.

    One forward pass per batch and expert group (LoRA experts of one base run together). The
    learned mixture weights of ``combine="learned"`` are fitted on these.

    Parameters
    ----------
    models : sequence of experts
        Causal LMs or :class:`AdapterExpert` sharing one vocabulary.
    tokenizer : transformers tokenizer
    encoded : list of EncodedExample
        From :func:`skw2s.training.encode_sft`.
    batch_size : int, default=8
    verbose : int, default=0
        A progress bar over the batches when positive.

    Returns
    -------
    list over experts of list of ndarray
        ``out[t][i]``: expert ``t``'s log-probabilities of example ``i``'s answer tokens.
    """
    _, gold = _teacher_forced(
        models, np.ones(len(models)), encoded, pad_token_id=tokenizer.pad_token_id,
        combine="prob", batch_size=batch_size, staged=False, want_preds=False, members=True,
        verbose=verbose, desc="expert log-probabilities",
    )
    return gold[1:]


def answer_token_errors(encoded, predictions):
    """Return the flat 0/1 mistakes of ``predictions`` and the answer lengths of ``encoded``.

    Parameters
    ----------
    encoded : list of EncodedExample
        The examples that were scored.
    predictions : list of ndarray of int64
        What :func:`token_predictions` returns for ``encoded``.

    Returns
    -------
    incorrect : ndarray of float64 of shape (sum of lengths,)
        1.0 where the predicted token is not the gold answer token, example after example.
    lengths : ndarray of int64 of shape (n_examples,)
        ``n_answer_tokens`` of each example.
    """
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
        tokenizer, flat_prompts, flat_answers, max_length=max_length, append_eos=False,
        warn=False,
    )
    # a question counts once, however many of its options made it too long
    bounds = np.cumsum([0, *counts])
    cut = sum(any(ex.truncated for ex in encoded[a:b]) for a, b in zip(bounds, bounds[1:]))
    if cut:
        warn_truncated_prompts(cut, max_length, stacklevel=2)
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
    batch_adapters, verbose
        As in :func:`token_predictions`.

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
    members=False,
):
    """Negative log-likelihood of each answer option under the mixture of ``models``.

    Parameters
    ----------
    models : list of causal LM or AdapterExpert
        Experts over one shared vocabulary.
    alphas : array-like of shape (T,)
        Positive expert weights (normalised inside).
    tokenizer, prompts, choices
        As in :func:`choice_nll`.
    combine : {"prob", "logit", "confidence"}, default="prob"
        Mix probabilities (eq. 1) or logits (the paper's ablation).
    reduction : {"sum", "mean"}, default="sum"
        As in :func:`choice_nll`.
    batch_size : int, default=8
        As in :func:`choice_nll`.
    max_length : int, default=512
        As in :func:`choice_nll`.
    staged : bool, default=False
        Return a list over stages ``s = 1..T`` (mixture of the first ``s`` experts).
    share_prompts, batch_adapters, verbose
        As in :func:`choice_nll`.
    members : bool, default=False
        Also return each expert's own NLLs, computed in the same forward passes.

    Returns
    -------
    list of ndarray, or (``staged``) a list over stages of such lists
        One array per prompt with one NLL per option; with ``members`` a pair ``(that,
        [one such list per expert])``.
    """
    if reduction not in ("sum", "mean"):
        raise ValueError(f'reduction must be "sum" or "mean"; got {reduction!r}.')
    encoded, counts = _encode_choices(tokenizer, prompts, choices, max_length)
    _, gold = _teacher_forced(
        models, alphas, encoded, pad_token_id=tokenizer.pad_token_id, combine=combine,
        batch_size=batch_size, staged=staged, want_preds=False, share_prompts=share_prompts,
        batch_adapters=batch_adapters, verbose=verbose, desc="choice NLL", members=members,
    )
    out = [_reduce_nll(g, encoded, counts, reduction) for g in gold]
    n_stages = len(out) - (len(models) if members else 0)
    mixed = out[:n_stages] if staged else out[0]
    return (mixed, out[n_stages:]) if members else mixed
