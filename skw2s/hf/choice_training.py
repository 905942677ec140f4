"""Training a causal LM over the options of multiple-choice questions (a student loss).

SFT (:func:`skw2s.training.train_causal_lm`) trains the chosen option's text. The losses of
:mod:`skw2s.losses` for multiple choice (``choice_xent``, ``choice_logconf``) train each
question's options against one another instead: the model's log-likelihood of every option's
completion (summed over its tokens, or averaged with ``choice_score="mean"``) forms a
distribution over the options, and the loss compares it with the weak label (an option index,
or the weak side's probabilities over the options).

Training goes through the Hugging Face Trainer, so it scales like SFT.

**Prompt once** (``share_prompts=True``, the default): the options of a question share its
prompt, so a batch runs each distinct prompt once (left-padded, the logits of its last position
only, which predict every option's first token), keeps its KV cache, expands the cache to the
options (``Cache.batch_select_indices``, an indexing that gradients flow back through) and runs
every option's tokens but its last as the continuation, in forwards of options of similar length
(the helpers of :mod:`skw2s.decoding.teacher_forced`, which scores options the same way), with
logits only at the option positions. Gradients reach the prompt's positions through the cache,
so the option log-likelihoods and their gradients are those of the plain path
(``share_prompts=False``: every option as a whole right-padded sequence, logits everywhere),
up to float rounding; the tests compare the two.

torch is imported inside functions.
"""

from __future__ import annotations

import numpy as np

__all__ = ["train_choice_lm"]


def _prompt_once_batch(encoded, pad_id):
    """The tensors of the prompt-once forwards of a batch's options (``encoded``, flat)."""
    import torch

    from .decoding._batching import _pad_rows
    from .decoding.teacher_forced import _length_chunks, _shared_prompts

    groups = _shared_prompts(encoded)
    owner = torch.zeros(len(encoded), dtype=torch.long)
    for g, (_, rows) in enumerate(groups):
        owner[rows] = g
    prompts = [list(p) for p, _ in groups]
    mask = _pad_rows([[1] * len(p) for p in prompts], 0, "left")
    prompt_len = mask.sum(-1)
    answers = [ex.input_ids[ex.answer_start :] for ex in encoded]
    longer = [r for r, a in enumerate(answers) if len(a) > 1]
    chunks = []
    # an option's token j > 0 is predicted by its position j - 1 in the continuation
    for chunk in _length_chunks([len(answers[r]) - 1 for r in longer]) if longer else []:
        rows = [longer[c] for c in chunk]
        width = len(answers[rows[0]]) - 1
        chunks.append({
            "rows": torch.tensor(rows),
            "input_ids": _pad_rows([answers[r][:-1] for r in rows], pad_id, "right"),
            "attention_mask": _pad_rows([[1] * (len(answers[r]) - 1) for r in rows], 0, "right"),
            "positions": prompt_len[owner[rows]][:, None] + torch.arange(width),
            "target": _pad_rows([answers[r][1:] for r in rows], pad_id, "right"),
        })
    return {
        "input_ids": _pad_rows(prompts, pad_id, "left"),
        "attention_mask": mask,
        "positions": (mask.cumsum(-1) - 1).clamp_min(0),
        "owner": owner,
        "first_target": torch.tensor([a[0] for a in answers]),
        "chunks": chunks,
    }


class _ChoiceCollator:
    """A batch of questions: every option of every question as one right-padded row (the plain
    path), or, with ``share_prompts``, the prompt-once forwards (:func:`_prompt_once_batch`)."""

    def __init__(self, pad_id, share_prompts=True):
        self.pad_id = pad_id
        self.share_prompts = share_prompts

    def __call__(self, items):
        import torch

        from .decoding.teacher_forced import _shared_prompts
        from .training import EncodedExample, _pad

        seqs = [s for it in items for s in it["seqs"]]
        encoded = [EncodedExample(list(s), st)
                   for it in items for s, st in zip(it["seqs"], it["starts"])]
        width = max(len(it["seqs"]) for it in items)
        n_answer = [ex.n_answer_tokens for ex in encoded]
        n_prompts = len(_shared_prompts(encoded))
        batch = {
            "question": torch.tensor([q for q, it in enumerate(items) for _ in it["seqs"]]),
            "option": torch.tensor([k for it in items for k in range(len(it["seqs"]))]),
            "n_options": torch.tensor([len(it["seqs"]) for it in items]),
            "n_answer": torch.tensor(n_answer),
            "width": torch.tensor(width),
            "labels": torch.tensor([it["label"] for it in items]),
            "sample_weight": torch.tensor([it["weight"] for it in items], dtype=torch.float32),
            # the tokens whose output predicts one: each prompt once, every option's but its last
            "useful_tokens": torch.tensor(
                sum(len(p) for p, _ in _shared_prompts(encoded)) + sum(n_answer) - len(n_answer)
            ),
            # the distinct positions whose logits the loss reads: each prompt's last position
            # (it predicts every option's first token), every option token but its last
            "loss_rows": torch.tensor(n_prompts + sum(n_answer) - len(n_answer)),
        }
        if self.share_prompts:
            batch["shared"] = _prompt_once_batch(encoded, self.pad_id)
        else:
            batch["input_ids"] = _pad(seqs, self.pad_id)
            batch["attention_mask"] = _pad([[1] * len(s) for s in seqs], 0)
            batch["answer_mask"] = _pad([[0] * ex.answer_start + [1] * ex.n_answer_tokens
                                         for ex in encoded], 0)
        if "soft" in items[0]:
            batch["soft_labels"] = _pad([it["soft"] + [0.0] * (width - len(it["soft"]))
                                         for it in items], 0.0).to(torch.float32)
        return batch


def _plain_logliks(model, inputs):
    """Each option's summed log-likelihood from whole right-padded sequences (plain path)."""
    import torch

    ids, mask, answer = inputs["input_ids"], inputs["attention_mask"], inputs["answer_mask"]
    outputs = model(input_ids=ids, attention_mask=mask)
    logp = torch.log_softmax(outputs.logits[:, :-1].float(), dim=-1)
    token = logp.gather(-1, ids[:, 1:, None])[..., 0] * answer[:, 1:]
    counts = {"tokens": int(mask.sum()), "padded_tokens": int(mask.numel()),
              "projected_rows": int(outputs.logits.shape[0] * outputs.logits.shape[1])}
    return token.sum(-1), answer[:, 1:].sum(-1), outputs, counts


def _gold_log_probs(logits, target):
    """``log_softmax(logits)[target]`` per row, in float32, without a log-softmax of all rows."""
    import torch

    logits = logits.float()
    return logits.gather(-1, target[:, None])[:, 0] - torch.logsumexp(logits, dim=-1)


def _shared_logliks(model, shared, *, masked):
    """Each option's summed log-likelihood from the prompt-once forwards (with gradients)."""
    import torch

    from .decoding.experts import _forward_params, _output_cache, _shallow_copy
    from .training import logits_at, unwrap_model

    params = _forward_params(type(unwrap_model(model)))
    cache_kwarg = "cache" if "cache" in params else "past_key_values"
    chunks = shared["chunks"]
    prompt_mask, owner = shared["attention_mask"], shared["owner"]
    kwargs = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
    outputs = model(input_ids=shared["input_ids"], attention_mask=prompt_mask,
                    position_ids=shared["positions"], use_cache=bool(chunks), **kwargs)
    # every option's first token, from its prompt's last position (the log-normaliser once
    # per prompt)
    last = outputs.logits[:, -1].float()
    target = shared["first_target"]
    loglik = last[owner, target] - torch.logsumexp(last, dim=-1)[owner]
    counts = {"tokens": int(prompt_mask.sum()), "padded_tokens": int(prompt_mask.numel()),
              "projected_rows": int(outputs.logits.shape[0] * outputs.logits.shape[1])}
    cache = _output_cache(outputs) if chunks else None
    for q, c in enumerate(chunks):
        rows, mask = c["rows"], c["attention_mask"]
        sub = cache if q == len(chunks) - 1 else _shallow_copy(cache)
        sub.batch_select_indices(owner[rows])
        keep = mask.bool()
        logits, _, projected = logits_at(
            model, keep, masked=masked, input_ids=c["input_ids"],
            attention_mask=torch.cat([prompt_mask[owner[rows]], mask], dim=1),
            position_ids=c["positions"], use_cache=True, **{cache_kwarg: sub},
        )
        token_rows = rows[:, None].expand_as(keep)[keep]
        loglik = loglik.index_add(0, token_rows, _gold_log_probs(logits, c["target"][keep]))
        counts["tokens"] += int(mask.sum())
        counts["padded_tokens"] += int(mask.numel())
        counts["projected_rows"] += projected
        del sub
    return loglik, outputs, counts


def choice_log_likelihoods(model, inputs, *, masked="auto"):
    """Each option's summed token log-likelihood for a batch of :class:`_ChoiceCollator`.

    Parameters
    ----------
    model : causal LM
        Possibly peft- or DDP-wrapped; gradients flow when it trains.
    inputs : dict
        A collated batch, with ``shared`` (prompt once) or ``input_ids`` (plain path).
    masked : {"auto", "mask", "columns"}, bool or None, default="auto"
        How the model computes logits at some positions only (see
        :func:`skw2s.training.logits_at`).

    Returns
    -------
    loglik : torch.Tensor of shape (n_options,)
        Float32, in the batch's option order.
    n_tokens : torch.Tensor of shape (n_options,)
        Each option's scored tokens.
    outputs : ModelOutput
        The output of the (first) forward.
    counts : dict
        The batch's :class:`skw2s.hf.efficiency.TrainingStats` counts.
    """
    if "shared" in inputs:
        loglik, outputs, counts = _shared_logliks(model, inputs["shared"], masked=masked)
        n_tokens = inputs["n_answer"]
    else:
        loglik, n_tokens, outputs, counts = _plain_logliks(model, inputs)
    counts["useful_tokens"] = int(inputs["useful_tokens"])
    counts["loss_rows"] = int(inputs["loss_rows"])
    return loglik, n_tokens, outputs, counts


def _choice_trainer_class():
    import torch

    from .training import _trainer_base

    class ChoiceTrainer(_trainer_base()):
        """Trainer whose loss reads the options' log-likelihoods (``student_loss``)."""

        student_loss = None
        mean_scores = False

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loglik, n_tokens, outputs, counts = choice_log_likelihoods(model, inputs)
            self.count(counts)
            if self.mean_scores:
                loglik = loglik / n_tokens.clamp_min(1)
            n_questions = len(inputs["labels"])
            table = torch.full((n_questions, int(inputs["width"])), float("-inf"),
                               device=loglik.device, dtype=loglik.dtype)
            table[inputs["question"], inputs["option"]] = loglik
            soft = inputs.get("soft_labels")
            step_frac = min(1.0, self.state.global_step / max(1, self.state.max_steps))
            weight = inputs["sample_weight"]
            loss = self.student_loss(
                table, inputs["labels"] if soft is None else soft, sample_weight=weight,
                step_frac=step_frac, reduction="sum",
            ) / weight.numel()
            return (loss, outputs) if return_outputs else loss

    return ChoiceTrainer


def _lengths(rows, share_prompts):
    """The length that groups questions into batches: the prompt's when it runs once (its
    forward is most of a batch's work), else the longest prompt + option."""
    if share_prompts:
        return [max(r["starts"]) for r in rows]
    return [max(len(s) for s in r["seqs"]) for r in rows]


def train_choice_lm(
    model, tokenizer, prompts, choices, labels, loss, *, soft_labels=None, sample_weight=None,
    mode="full", lr=5e-5, n_epochs=1, batch_size=8, max_length=512, choice_score="sum",
    random_state=None, lora_r=16, lora_alpha=None, lora_target_modules=None, verbose=0,
    share_prompts=True, group_by_length=True, report_to="none", logging_steps=None,
    run_name=None,
):
    """Fine-tune a causal LM with a loss over the options of multiple-choice questions.

    Parameters
    ----------
    model, tokenizer
        A causal LM and its tokenizer.
    prompts : sequence of str
        One prompt per question.
    choices : sequence of sequence of str
        Each question's options; the completion of option ``c`` is ``" " + c``.
    labels : array-like of shape (n,)
        The (weak) label of each question: an option index.
    loss : skw2s.losses.Loss
        A choice loss (``choice_xent``, ``choice_logconf``).
    soft_labels : array-like of shape (n, max_n_options), default=None
        Probabilities over each question's options (0 beyond its last option); the loss trains
        on them instead of ``labels``.
    sample_weight : array-like of shape (n,), default=None
        Non-negative weight of each question (rescaled to mean 1; 0 leaves it out).
    mode : {"full", "lora"}, default="full"
    lr, n_epochs, batch_size, random_state
        Optimisation settings (linear decay, no warm-up); ``batch_size`` counts questions.
    max_length : int, default=512
        Most tokens of prompt + option (the prompt is cut from the left).
    choice_score : {"sum", "mean"}, default="sum"
        An option's score: its summed token log-likelihood, or the mean (as in inference).
    lora_r, lora_alpha, lora_target_modules
        LoRA settings (``mode="lora"``).
    verbose : int, default=0
        The Trainer's progress bar when positive.
    share_prompts : bool, default=True
        Run each prompt once and its options as the continuation of its KV cache (see the
        module docstring); False: every option as a whole sequence (the plain path).
    group_by_length : bool, default=True
        Batch questions of similar length (their prompt's with ``share_prompts``, else their
        longest prompt + option), as :func:`skw2s.training.train_causal_lm` does; False:
        random batches.
    report_to, logging_steps, run_name
        Trackers and the run's name, as in :func:`skw2s.training.train_causal_lm`.

    Returns
    -------
    model
        The trained model (a peft model in LoRA mode), in eval mode.
    """
    from .decoding.teacher_forced import _check_prompts_nonempty
    from .training import _apply_lora, _check_mode, _run_trainer, encode_sft

    _check_mode(mode, ("full", "lora"))
    n = len(prompts)
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (n,) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError("sample_weight must be finite, non-negative, one per question, not all 0.")
    w = w / w.mean()
    rows = []
    for i, (prompt, options) in enumerate(zip(prompts, choices)):
        if w[i] <= 0:
            continue
        encoded = encode_sft(tokenizer, [prompt] * len(options), [" " + c for c in options],
                             max_length=max_length, append_eos=False, warn=False)
        if share_prompts:
            _check_prompts_nonempty(encoded)
        row = {"seqs": [list(e.input_ids) for e in encoded],
               "starts": [e.answer_start for e in encoded],
               "label": int(labels[i]), "weight": float(w[i])}
        if soft_labels is not None:
            row["soft"] = [float(v) for v in np.asarray(soft_labels[i])[: len(options)]]
        rows.append(row)
    if mode == "lora":
        model = _apply_lora(model, task_type="CAUSAL_LM", lora_r=lora_r, lora_alpha=lora_alpha,
                            target_modules=lora_target_modules)
    model.train()
    _run_trainer(
        model, rows, _ChoiceCollator(tokenizer.pad_token_id, share_prompts=share_prompts),
        trainer_class=_choice_trainer_class(),
        trainer_attrs={"student_loss": loss, "mean_scores": choice_score == "mean"},
        lengths=_lengths(rows, share_prompts) if group_by_length else None,
        lr=lr, n_epochs=n_epochs, batch_size=batch_size, random_state=random_state,
        verbose=verbose, report_to=report_to, logging_steps=logging_steps, run_name=run_name,
    )
    return model
