"""Training a causal LM over the options of multiple-choice questions (a student loss).

SFT (:func:`skw2s.training.train_causal_lm`) trains the chosen option's text. The losses of
:mod:`skw2s.losses` for multiple choice (``choice_xent``, ``choice_logconf``) train each
question's options against one another instead: the model's log-likelihood of every option's
completion (summed over its tokens, or averaged with ``choice_score="mean"``) forms a
distribution over the options, and the loss compares it with the weak label (an option index,
or the weak side's probabilities over the options).

Training goes through the Hugging Face Trainer, so it scales like SFT. torch is imported inside
functions.
"""

from __future__ import annotations

import numpy as np

__all__ = ["train_choice_lm"]


class _ChoiceCollator:
    """A batch of questions: every option of every question as one right-padded row."""

    def __init__(self, pad_id):
        self.pad_id = pad_id

    def __call__(self, items):
        import torch

        from .training import _pad

        seqs = [s for it in items for s in it["seqs"]]
        width = max(len(it["seqs"]) for it in items)
        batch = {
            "input_ids": _pad(seqs, self.pad_id),
            "attention_mask": _pad([[1] * len(s) for s in seqs], 0),
            "answer_mask": _pad([[0] * st + [1] * (len(s) - st)
                                 for it in items for s, st in zip(it["seqs"], it["starts"])], 0),
            "question": torch.tensor([q for q, it in enumerate(items) for _ in it["seqs"]]),
            "option": torch.tensor([k for it in items for k in range(len(it["seqs"]))]),
            "n_options": torch.tensor([len(it["seqs"]) for it in items]),
            "width": torch.tensor(width),
            "labels": torch.tensor([it["label"] for it in items]),
            "sample_weight": torch.tensor([it["weight"] for it in items], dtype=torch.float32),
        }
        if "soft" in items[0]:
            batch["soft_labels"] = _pad([it["soft"] + [0.0] * (width - len(it["soft"]))
                                         for it in items], 0.0).to(torch.float32)
        return batch


def _choice_trainer_class():
    import torch
    from transformers import Trainer

    class ChoiceTrainer(Trainer):
        """Trainer whose loss reads the options' log-likelihoods (``student_loss``)."""

        student_loss = None
        mean_scores = False

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            ids, mask, answer = inputs["input_ids"], inputs["attention_mask"], inputs["answer_mask"]
            outputs = model(input_ids=ids, attention_mask=mask)
            logp = torch.log_softmax(outputs.logits[:, :-1].float(), dim=-1)
            token = logp.gather(-1, ids[:, 1:, None])[..., 0] * answer[:, 1:]
            loglik = token.sum(-1)
            if self.mean_scores:
                loglik = loglik / answer[:, 1:].sum(-1).clamp_min(1)
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


def train_choice_lm(
    model, tokenizer, prompts, choices, labels, loss, *, soft_labels=None, sample_weight=None,
    mode="full", lr=5e-5, n_epochs=1, batch_size=8, max_length=512, choice_score="sum",
    random_state=None, lora_r=16, lora_alpha=None, lora_target_modules=None, verbose=0,
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

    Returns
    -------
    model
        The trained model (a peft model in LoRA mode), in eval mode.
    """
    from .training import _apply_lora, _check_mode, encode_sft

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
    _run(model, rows, tokenizer, loss, choice_score == "mean", lr=lr, n_epochs=n_epochs,
         batch_size=batch_size, random_state=random_state, verbose=verbose)
    model.eval()
    return model


def _run(model, rows, tokenizer, loss, mean_scores, **kwargs):
    import tempfile

    from datasets import Dataset
    from transformers import PrinterCallback

    from .training import _training_args

    with tempfile.TemporaryDirectory(prefix="skw2s-choice-") as tmp:
        args = _training_args(output_dir=tmp, device=model.device, **kwargs)
        trainer = _choice_trainer_class()(
            model=model, args=args, train_dataset=Dataset.from_list(rows),
            data_collator=_ChoiceCollator(tokenizer.pad_token_id),
        )
        trainer.student_loss, trainer.mean_scores = loss, mean_scores
        trainer.remove_callback(PrinterCallback)
        trainer.train()
