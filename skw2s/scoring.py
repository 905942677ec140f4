"""Inference kernels of the generation estimators: teacher-forced scoring and decoding.

Everything here works on one model or on a weighted mixture of experts (ALGORITHMS.md,
eq. 1) through the same code: a single model is the mixture of one expert. An *expert* is a
causal LM called like a Hugging Face model (``model(input_ids=..., attention_mask=...)``),
or an :class:`AdapterExpert`, one named LoRA adapter of a peft model that holds several, so
that all boosting rounds share one base model in memory.

- :func:`token_predictions` / :func:`token_predictions_mixture`: teacher-forced argmax of every
  answer token (right padding, one padded forward per batch), for token errors and ``eps_t``;
- :func:`choice_nll` / :func:`choice_nll_mixture`: negative log-likelihood of each answer
  option, its completion ``" " + choice`` appended to the prompt's tokens;
- :func:`mixture_generate`: batched decoding from the mixture with left padding and one KV
  cache per expert, greedy or sampled; the chosen token is fed back to every expert.
  ``use_cache=False`` is the plain reference that recomputes the whole prefix at every step.

The ``staged=True`` options return the result for the first ``s`` experts, ``s = 1..T``, from a
single pass over the data (each expert runs once per batch).

torch is imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

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
    several experts can share one base model in memory and still keep their own KV caches.

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


def _device(expert):
    return expert.device


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


def _teacher_forced(models, alphas, encoded, *, pad_token_id, combine, batch_size, staged, verbose):
    """Teacher-forced argmax and gold log-probability of every answer token.

    Returns ``preds, gold``: one list per stage (``s = 1..T`` when ``staged``, else only
    ``T``) of one float64/int64 array per example.
    """
    import torch

    from ._mixture import mix_log_probs

    models, a = _check_experts(models, alphas)
    batch_size = _check_batch_size(batch_size)
    stages = list(range(1, len(models) + 1)) if staged else [len(models)]
    preds = [[None] * len(encoded) for _ in stages]
    gold = [[None] * len(encoded) for _ in stages]
    device = _device(models[0])
    lengths = [len(ex.input_ids) for ex in encoded]
    batches = list(_batches(lengths, batch_size))
    with torch.inference_mode():
        for idx in tqdm(batches, desc="scoring", disable=not verbose, leave=False):
            rows = [encoded[i] for i in idx]
            ids = _pad_rows([ex.input_ids for ex in rows], pad_token_id, "right")
            mask = _pad_rows([[1] * len(ex.input_ids) for ex in rows], 0, "right")
            r_idx, c_idx, counts = [], [], []
            for r, ex in enumerate(rows):
                if ex.answer_start < 1:
                    raise ValueError(
                        "Every prompt needs at least one token (the tokenizer has no BOS "
                        "token, and a prompt is empty)."
                    )
                cols = list(range(ex.answer_start - 1, len(ex.input_ids) - 1))
                r_idx += [r] * len(cols)
                c_idx += cols
                counts.append(len(cols))
            r_t, c_t = torch.tensor(r_idx), torch.tensor(c_idx)
            target = ids[r_t, c_t + 1].to(device)
            selected = []
            for model in models:
                dev = _device(model)
                logits = model(input_ids=ids.to(dev), attention_mask=mask.to(dev)).logits
                selected.append(logits[r_t.to(dev), c_t.to(dev)].float().to(device))
            stacked = torch.stack(selected)
            splits = np.cumsum(counts)[:-1]
            for k, s in enumerate(stages):
                logp = mix_log_probs(stacked[:s], a[:s], combine)
                p = logp.argmax(-1).cpu().numpy()
                g = logp.gather(-1, target[:, None])[:, 0].double().cpu().numpy()
                for i, pp, gg in zip(idx, np.split(p, splits), np.split(g, splits)):
                    preds[k][i] = pp.astype(np.int64)
                    gold[k][i] = gg
    return preds, gold


def token_predictions(model, tokenizer, encoded, *, batch_size=8, verbose=0):
    """Teacher-forced argmax prediction of every answer token.

    Parameters
    ----------
    model : causal LM or AdapterExpert
    tokenizer : transformers tokenizer
        Its pad token pads the batches (right padding).
    encoded : list of EncodedExample
        From :func:`skw2s.training.encode_sft`.
    batch_size : int, default=8
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
        batch_size=batch_size, staged=False, verbose=verbose,
    )
    return preds[0]


def token_predictions_mixture(
    models, alphas, tokenizer, encoded, *, combine="prob", batch_size=8, staged=False, verbose=0
):
    """Teacher-forced argmax of every answer token under the mixture of ``models``.

    Parameters
    ----------
    models : list of causal LM or AdapterExpert
        Experts over one shared vocabulary.
    alphas : array-like of shape (T,)
        Positive expert weights (normalised inside).
    tokenizer, encoded, batch_size, verbose
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
        batch_size=batch_size, staged=staged, verbose=verbose,
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
    if reduction not in ("sum", "mean"):
        raise ValueError(f'reduction must be "sum" or "mean"; got {reduction!r}.')
    nll = np.array([-g.sum() for g in gold])
    if reduction == "mean":
        nll = nll / np.array([ex.n_answer_tokens for ex in encoded])
    return np.split(nll, np.cumsum(counts)[:-1])


def choice_nll(
    model, tokenizer, prompts, choices, *, reduction="sum", batch_size=8, max_length=512, verbose=0
):
    """Negative log-likelihood of each answer option given its prompt.

    The option's completion ``format_completion(choice)`` (``" " + choice``) is tokenised on its
    own and appended to the prompt's tokens, as in training (without EOS). All (prompt, option)
    sequences of a batch run in one padded forward.

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
        Sequences per forward.
    max_length : int, default=512
        Longer prompts are cut from the left, with a warning.
    verbose : int, default=0

    Returns
    -------
    list of ndarray of float64
        One array per prompt with one NLL per option.
    """
    return choice_nll_mixture(
        [model], [1.0], tokenizer, prompts, choices, reduction=reduction,
        batch_size=batch_size, max_length=max_length, verbose=verbose,
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
    verbose=0,
):
    """Negative log-likelihood of each answer option under the mixture of ``models``.

    Parameters as in :func:`choice_nll`, plus ``models``, ``alphas``, ``combine`` and ``staged``
    as in :func:`token_predictions_mixture`.

    Returns
    -------
    list of ndarray, or (``staged``) a list over stages of such lists
    """
    encoded, counts = _encode_choices(tokenizer, prompts, choices, max_length)
    _, gold = _teacher_forced(
        models, alphas, encoded, pad_token_id=tokenizer.pad_token_id, combine=combine,
        batch_size=batch_size, staged=staged, verbose=verbose,
    )
    out = [_reduce_nll(g, encoded, counts, reduction) for g in gold]
    return out if staged else out[0]


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
        first = models[0].model if isinstance(models[0], AdapterExpert) else models[0]
        config = getattr(first, "generation_config", None)
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
    eos_token_id=None,
    verbose=0,
):
    """Decode from the alpha-weighted mixture of experts (ALGORITHMS.md, eq. 1).

    At every step each expert scores the next token; the scores are mixed with
    :func:`skw2s._mixture.mix_log_probs` (``sum_t a_t softmax(h_t)`` over the normalised
    weights, or the mixed logits with ``combine="logit"``); the argmax, or a sample at
    ``temperature``, is appended to the sequence of **every** expert. Prompts are batched with
    left padding; positions come from the attention mask, so padding does not shift them. A row
    that emits an EOS token is finished: it receives pad tokens, masked out, until every row is
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
        Keep one KV cache per expert. ``False`` recomputes the whole prefix of every expert at
        every step: the slow reference the cached path is tested against.
    eos_token_id : int or list of int, default=None
        Tokens that finish a row; default: the tokenizer's EOS token and the first expert's
        ``generation_config.eos_token_id``.
    verbose : int, default=0

    Returns
    -------
    list of list of int
        The generated token ids of each prompt, without the EOS token.
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
    eos = _eos_ids(tokenizer, models, eos_token_id)
    eos_t = torch.tensor(sorted(eos), dtype=torch.long)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(eos))
    generator = None
    if do_sample:
        seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
        generator = torch.Generator().manual_seed(seed)
    encoded = encode_prompts(tokenizer, prompts, max_length=max_length)
    results = [None] * len(encoded)
    batches = list(_batches([len(e) for e in encoded], batch_size))
    with torch.inference_mode():
        for idx in tqdm(batches, desc="generating", disable=not verbose, leave=False):
            rows = [encoded[i] for i in idx]
            ids = _pad_rows(rows, pad_id, "left")
            mask = _pad_rows([[1] * len(r) for r in rows], 0, "left")
            out = _decode_batch(
                models, a, ids, mask, combine=combine, max_new_tokens=int(max_new_tokens),
                generator=generator, temperature=temperature, do_sample=do_sample,
                eos=eos_t, pad_id=pad_id, use_cache=use_cache, mix=mix_log_probs,
            )
            for i, toks in zip(idx, out):
                results[i] = toks
    return results


def _cache_kwarg(model):
    """The forward keyword of the KV cache: ``cache`` (transformers >= 5.2x) or the older
    ``past_key_values``."""
    import inspect

    base = model.model if isinstance(model, AdapterExpert) else model
    if hasattr(base, "get_base_model"):
        base = base.get_base_model()
    params = inspect.signature(type(base).forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _output_cache(output):
    for name in ("cache", "past_key_values"):
        value = getattr(output, name, None)
        if value is not None:
            return value
    raise ValueError("The model returned no KV cache although use_cache=True was asked for.")


def _decode_batch(
    models, a, ids, mask, *, combine, max_new_tokens, generator, temperature, do_sample,
    eos, pad_id, use_cache, mix,
):
    import torch

    n = ids.shape[0]
    positions = (mask.cumsum(-1) - 1).clamp_min(0)
    finished = torch.zeros(n, dtype=torch.bool)
    generated = [[] for _ in range(n)]
    caches = [None] * len(models)

    def forward(k, model, step_ids, step_mask, step_pos):
        dev = _device(model)
        kwargs = dict(
            input_ids=step_ids.to(dev),
            attention_mask=step_mask.to(dev),
            position_ids=step_pos.to(dev),
            use_cache=use_cache,
        )
        if use_cache and caches[k] is not None:
            kwargs[_cache_kwarg(model)] = caches[k]
        output = model(**kwargs)
        if use_cache:
            caches[k] = _output_cache(output)
        return output.logits[:, -1].float()

    step_ids = ids
    for step in range(max_new_tokens):
        feed_ids = step_ids if use_cache or step == 0 else ids
        feed_pos = positions if not use_cache or step == 0 else positions[:, -1:]
        last = [forward(k, m, feed_ids, mask, feed_pos).cpu() for k, m in enumerate(models)]
        logp = mix(torch.stack(last), a, combine)
        if do_sample:
            probs = torch.softmax(logp / temperature, dim=-1)
            token = torch.multinomial(probs, 1, generator=generator)[:, 0]
        else:
            token = logp.argmax(-1)
        token = torch.where(finished, torch.full_like(token, pad_id), token)
        is_eos = torch.isin(token, eos)
        for r in torch.nonzero(~finished & ~is_eos)[:, 0].tolist():
            generated[r].append(int(token[r]))
        active = ~finished
        finished = finished | is_eos
        if bool(finished.all()) or step == max_new_tokens - 1:
            break
        step_ids = token[:, None]
        ids = torch.cat([ids, step_ids], dim=1)
        mask = torch.cat([mask, active.long()[:, None]], dim=1)
        positions = torch.cat([positions, positions[:, -1:] + 1], dim=1)
    return generated
