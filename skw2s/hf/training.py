"""Fine-tuning core: weighted supervised training of causal LMs and classifiers.

Training goes through Hugging Face :class:`~transformers.Trainer`, so ``accelerate launch`` or
``torchrun`` scale it to several processes or GPUs with no code of ours. What we add is the loss:

- **causal LM (SFT)**: cross-entropy on answer tokens only. Each answer token carries a
  non-negative weight (a count: a token sampled twice by boosting counts twice; zero masks it
  out). The batch loss is ``sum(w * ce) / sum(w)``.
- **classification**: cross-entropy of the last-non-pad-token head, weighted per example. The
  weights are rescaled to mean 1 over the training set, and the batch loss is
  ``sum(w * ce) / batch_size``.

Modes:

- ``"full"``: every parameter trains;
- ``"lora"``: low-rank adapters (peft) on the attention projections; a classifier's head trains
  too. The returned model is a ``peft`` model; call ``merge_and_unload()`` for a plain one;
- ``"head"`` (classification only): the LM is frozen; features of the last non-pad token are
  extracted once and the linear head is trained on them (full batch, Adam). This bypasses
  ``Trainer``: it is a few milliseconds of work once the features exist.

Where the work goes:

- **answer-only logits** (``answer_only=True``, the default of :func:`train_causal_lm`): the SFT
  loss reads the vocabulary projection at the positions that predict an answer token of
  non-zero weight only, and the batch's last column (which predicts nothing) is not fed. The
  model is called with those positions as a boolean
  ``logits_to_keep`` mask, so it applies its own head and any logit post-processing (Gemma's
  soft-capping) to those rows alone, and the cross-entropy runs in float32 on them. A model
  whose ``forward`` does not take such a mask gets its full logits, and the rows are picked
  from those (the same numbers, the old cost). ``False`` is the plain path the tests compare
  with: logits at every position, a float32 copy of them all.
- **length-grouped batches** (``group_by_length=True``, the default of every training
  function): each epoch, the rows are shuffled, cut into pools of up to 50 batches (at most a
  quarter of the data, so that batches still mix), sorted by length inside a pool and cut into
  batches, and the batches are shuffled. The order comes from
  :func:`skw2s.core.random.batch_order_rng` (seed and epoch), so a seed gives the same batches
  in every process. ``False`` is the Trainer's random sampler.

Every run's counts (tokens, padding, projected rows, useful FLOPs: see
:mod:`skw2s.hf.efficiency`) and its loss curve are logged and handed to open
:func:`skw2s.hf.efficiency.collect_training_stats` blocks. A run is named by the open
:func:`skw2s.hf.tracking.training_run` blocks and reports to the trackers ``report_to`` names
(none by default); the Trainer's metric dictionaries go to the logger, never to stdout.

The Trainer seeds torch globally from ``random_state`` (it calls ``transformers.set_seed``), so a
seeded fit is reproducible on the same machine and device.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass

import numpy as np

from ..core.random import batch_order_rng, torch_seed
from ..exceptions import DivergenceError

logger = logging.getLogger(__name__)

__all__ = [
    "MODES",
    "EncodedExample",
    "encode_sft",
    "extract_features",
    "seeded_torch",
    "train_causal_lm",
    "train_classifier",
    "train_head",
]

MODES = ("full", "lora", "head")
DEFAULT_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass
class EncodedExample:
    """One prompt+answer sequence: ``input_ids`` and the index where the answer starts."""

    input_ids: list
    answer_start: int
    truncated: bool = False

    @property
    def n_answer_tokens(self) -> int:
        return len(self.input_ids) - self.answer_start


def encode_sft(tokenizer, prompts, answers, *, max_length=512, append_eos=True, warn=True):
    """Tokenise prompt/answer pairs for teacher-forced training or scoring.

    The answer is tokenised on its own and appended to the prompt's tokens, so the answer
    token boundaries do not depend on the prompt. When the pair is longer than
    ``max_length`` the prompt is cut from the left (its end stays next to the answer) and a
    warning is raised once. An answer that alone exceeds ``max_length - 1`` is cut from the
    right.

    Parameters
    ----------
    tokenizer : transformers tokenizer
    prompts, answers : sequence of str
    max_length : int, default=512
    append_eos : bool, default=True
        Append the EOS token to each answer, so that the model learns to stop.

    Returns
    -------
    list of EncodedExample
    """
    if len(prompts) != len(answers):
        raise ValueError(f"Got {len(prompts)} prompts but {len(answers)} answers.")
    prompt_ids = tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(list(answers), add_special_tokens=False)["input_ids"]
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    out, truncated = [], 0
    for i, (p, a) in enumerate(zip(prompt_ids, answer_ids)):
        a = list(a) + ([tokenizer.eos_token_id] if append_eos else [])
        if not a:
            raise ValueError(f"Answer {i} is empty: every example needs at least one answer token.")
        a = a[: max_length - 1]
        p = bos + list(p)
        room = max_length - len(a)
        cut = len(p) > room
        if cut:
            truncated += 1
            p = p[len(p) - room :]
        out.append(EncodedExample(p + a, len(p), cut))
    if truncated and warn:
        warn_truncated_prompts(truncated, max_length, stacklevel=2)
    return out


def warn_truncated_prompts(n_prompts, max_length, *, stacklevel=2):
    """The warning that ``n_prompts`` prompts (questions, not (prompt, option) pairs) were
    cut from the left to fit ``max_length`` with their answer."""
    warnings.warn(
        f"{n_prompts} prompt(s) were longer than max_length={max_length} with their answer "
        "and were truncated from the left. Raise max_length to keep them whole.",
        stacklevel=stacklevel + 1,
    )


def _pad(sequences, value, side="right"):
    import torch

    width = max(len(s) for s in sequences)
    rows = []
    for s in sequences:
        fill = [value] * (width - len(s))
        rows.append(list(s) + fill if side == "right" else fill + list(s))
    return torch.tensor(rows)


class _SFTCollator:
    def __init__(self, pad_id):
        self.pad_id = pad_id

    def __call__(self, items):
        import torch

        ids = _pad([it["input_ids"] for it in items], self.pad_id)
        mask = _pad([[1] * len(it["input_ids"]) for it in items], 0)
        weights = _pad([it["token_weight"] for it in items], 0.0).to(torch.float32)
        return {"input_ids": ids, "attention_mask": mask, "token_weight": weights}


class _ClsCollator:
    def __init__(self, pad_id):
        self.pad_id = pad_id

    def __call__(self, items):
        import torch

        batch = {
            "input_ids": _pad([it["input_ids"] for it in items], self.pad_id),
            "attention_mask": _pad([[1] * len(it["input_ids"]) for it in items], 0),
            "labels": torch.tensor([it["label"] for it in items]),
            "sample_weight": torch.tensor([it["weight"] for it in items], dtype=torch.float32),
        }
        if "soft" in items[0]:
            batch["soft_labels"] = torch.tensor([it["soft"] for it in items], dtype=torch.float32)
        return batch


class LengthGroupedSampler:
    """Row indices in batches of rows of similar length, in a seeded random order.

    Each epoch: shuffle the rows, cut them into pools of ``pool`` batches, sort each pool by
    length (longest first, ties in shuffled order) and cut it into batches, then shuffle the
    full batches; a last short batch stays last, so that the data loader's batches are these
    batches. ``pool`` is ``min(50, n_rows // (4 * batch_size))``, at least 1 (as the Trainer's
    ``group_by_length``): at least four pools, so that what a batch holds still varies between
    epochs and seeds.

    Parameters
    ----------
    lengths : sequence of int
        The length of each row (the tokens it puts through the model).
    batch_size : int
        Rows per batch.
    seed : int
        With the epoch, the seed of :func:`skw2s.core.random.batch_order_rng`.
    """

    def __init__(self, lengths, batch_size, seed):
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.epoch = 0

    def __len__(self):
        return len(self.lengths)

    def set_epoch(self, epoch):
        """The epoch whose order the next iteration gives (the Trainer sets it)."""
        self.epoch = int(epoch)

    def __iter__(self):
        rng = batch_order_rng(self.seed, self.epoch)
        self.epoch += 1  # a caller that never sets the epoch still gets a new order each time
        return iter(length_grouped_order(self.lengths, self.batch_size, rng).tolist())


def length_grouped_order(lengths, batch_size, rng):
    """The row order of one epoch of :class:`LengthGroupedSampler`, drawn from ``rng``."""
    lengths = np.asarray(lengths, dtype=np.int64)
    n = len(lengths)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    pool = batch_size * max(1, min(50, n // (4 * batch_size)))
    order = rng.permutation(n)
    batches = []
    for start in range(0, n, pool):
        rows = order[start : start + pool]
        rows = rows[np.argsort(-lengths[rows], kind="stable")]
        batches += [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
    full = [b for b in batches if len(b) == batch_size]
    short = [b for b in batches if len(b) < batch_size]  # at most one: the last pool's tail
    full = [full[i] for i in rng.permutation(len(full))]
    return np.concatenate(full + short)


def padding_fraction(lengths, batches):
    """The share of padding in ``batches`` (lists of row indices) of rows of ``lengths``, each
    padded to its longest row: 0 when every row of a batch has the same length."""
    lengths = np.asarray(lengths, dtype=np.int64)
    real = sum(int(lengths[b].sum()) for b in batches)
    padded = sum(len(b) * int(lengths[b].max()) for b in batches if len(b))
    return 1.0 - real / padded if padded else 0.0


@functools.lru_cache(maxsize=64)
def _logit_selection(model_type):
    """How ``model_type.forward`` can compute logits at some positions only (see
    :func:`logit_selection`)."""
    import inspect

    try:
        params = inspect.signature(model_type.forward).parameters
    except (TypeError, ValueError):  # pragma: no cover - an unusual forward
        return None
    if "logits_to_keep" not in params:
        return None
    name = getattr(model_type.forward, "__module__", None) or ""
    if hasattr(sys.modules.get(name), "slice_logits_to_keep"):
        return "mask"
    # transformers' own models take a 1-D tensor of positions (the same for every row) in every
    # 5.x release; only later ones take a boolean mask
    return "columns" if name.startswith("transformers.models.") else None


def unwrap_model(model):
    """The transformers model inside a DDP and/or peft wrapper."""
    import torch

    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        model = model.module
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    return model


def logit_selection(model):
    """How ``model`` (possibly peft- or DDP-wrapped) can compute logits at some positions only.

    Returns
    -------
    {"mask", "columns", None}
        ``"mask"``: its ``logits_to_keep`` takes a boolean ``(batch, length)`` mask and returns
        the kept rows as ``(n_kept, vocab)`` (transformers' ``slice_logits_to_keep``);
        ``"columns"``: it takes a 1-D tensor of positions, kept in every row (transformers 5.x
        before masks); None: neither is known, every logit is computed.
    """
    return _logit_selection(type(unwrap_model(model)))


def takes_logit_mask(model):
    """Whether ``model`` (possibly peft- or DDP-wrapped) computes logits only at the positions
    of a boolean ``logits_to_keep`` mask, returning them as ``(n_kept, vocab)``."""
    return logit_selection(model) == "mask"


_FELL_BACK = set()


def _fall_back(model, got, expected):
    _FELL_BACK.add(type(unwrap_model(model)))
    logger.warning(
        "%s returned logits of shape %s for logits_to_keep (expected %s); computing all logits "
        "for this model type instead.", type(unwrap_model(model)).__name__, got, expected,
    )


def logits_at(model, keep, *, masked="auto", **inputs):
    """Logits of the positions where ``keep`` (a ``(batch, length)`` bool tensor) is True.

    ``masked`` says how the model selects positions (:func:`logit_selection`; ``"auto"`` asks
    it): with ``"mask"`` (or True) the model computes only those rows; with ``"columns"``, the
    columns that hold one in some row, for every row; with None (or False), or when the model
    returns another shape, all of them. The rows are taken from what it computed.

    Returns
    -------
    logits : torch.Tensor of shape (keep.sum(), vocab)
        Row-major order over ``keep``.
    outputs : ModelOutput
        The model's output.
    projected : int
        Rows the vocabulary projection was applied to.
    """
    how = logit_selection(model) if masked == "auto" else "mask" if masked is True else masked
    how = how or None
    n = int(keep.sum())
    if how is not None and type(unwrap_model(model)) not in _FELL_BACK:
        if how == "mask":
            outputs = model(**inputs, logits_to_keep=keep)
            if tuple(outputs.logits.shape[:-1]) == (n,):
                return outputs.logits, outputs, n
            _fall_back(model, tuple(outputs.logits.shape), (n,))
        else:
            columns = keep.any(0).nonzero()[:, 0]
            outputs = model(**inputs, logits_to_keep=columns)
            expected = (keep.shape[0], len(columns))
            if tuple(outputs.logits.shape[:-1]) == expected:
                return outputs.logits[keep[:, columns]], outputs, expected[0] * expected[1]
            _fall_back(model, tuple(outputs.logits.shape), expected)
    outputs = model(**inputs)
    return outputs.logits[keep], outputs, int(keep.numel())


def sft_loss(model, input_ids, attention_mask, token_weight, *, answer_only=True,
             masked="auto"):
    """The weighted SFT loss ``sum(w * ce) / sum(w)`` of a right-padded batch.

    Parameters
    ----------
    model : causal LM
        Possibly peft- or DDP-wrapped.
    input_ids, attention_mask : torch.Tensor of shape (batch, length)
    token_weight : torch.Tensor of shape (batch, length)
        The weight of each token as a target (0 on prompt tokens and padding).
    answer_only : bool, default=True
        Project onto the vocabulary only the positions that predict a token of non-zero
        weight (see :func:`logits_at`); False is the plain path (every position, in float32).
    masked : {"auto", "mask", "columns"}, bool or None, default="auto"
        How the model computes logits at some positions only (:func:`logit_selection`, which
        ``"auto"`` asks; True is ``"mask"``, False or None: all of them).

    Returns
    -------
    loss : torch.Tensor
        A scalar.
    outputs : ModelOutput
        The model's output.
    counts : dict
        ``tokens``, ``padded_tokens``, ``useful_tokens``, ``projected_rows`` and ``loss_rows``
        of the batch (see :class:`skw2s.hf.efficiency.TrainingStats`).
    """
    import torch

    w = token_weight[:, 1:]
    target = input_ids[:, 1:]
    n_rows = int((attention_mask.sum(-1) > 0).sum())
    useful = int(attention_mask.sum()) - n_rows  # every row's last token predicts nothing
    if answer_only and input_ids.shape[1] > 1:
        # The last column predicts nothing: it is not fed (causal attention, right padding:
        # no other position reads it).
        used = w > 0
        ids, mask = input_ids[:, :-1], attention_mask[:, :-1]
        logits, outputs, projected = logits_at(
            model, used, masked=masked, input_ids=ids, attention_mask=mask
        )
        w, target = w[used], target[used]
        ce = torch.nn.functional.cross_entropy(logits.float(), target, reduction="none")
    else:
        mask = attention_mask
        outputs = model(input_ids=input_ids, attention_mask=attention_mask)
        logits = outputs.logits[:, :-1].float()
        projected = int(outputs.logits.shape[0] * outputs.logits.shape[1])
        ce = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)), target.reshape(-1), reduction="none"
        ).view_as(w)
    loss = (ce * w).sum() / w.sum().clamp_min(1e-12)
    counts = {"tokens": int(mask.sum()), "padded_tokens": int(mask.numel()),
              "useful_tokens": useful, "projected_rows": projected,
              "loss_rows": int((token_weight[:, 1:] > 0).sum())}
    return loss, outputs, counts


def _trainer_base():
    """A Trainer that draws length-grouped batches (``lengths`` set), counts its work and stops
    at the first non-finite loss with a :class:`~skw2s.exceptions.DivergenceError`."""
    from transformers import Trainer

    from .efficiency import TrainingStats, useful_flops

    class CountingTrainer(Trainer):
        """Trainer with length-grouped batches and training statistics.

        ``lengths`` (one per row; None: the Trainer's random order) and ``param_counts``
        (:func:`skw2s.hf.efficiency.parameter_counts`) are set after construction; ``stats``
        sums the counts :meth:`count` gets from the loss, ``losses`` holds each step's loss.
        """

        lengths = None
        param_counts = None

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.stats = TrainingStats()
            self.losses = []

        def _get_train_sampler(self, *args, **kwargs):
            if self.lengths is None:
                return super()._get_train_sampler(*args, **kwargs)
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            return LengthGroupedSampler(self.lengths, self._train_batch_size, seed)

        def training_step(self, model, inputs, *args, **kwargs):
            # Checked before the optimizer applies the step, so a NaN never reaches the weights
            # (this costs one device synchronisation per step).
            loss = super().training_step(model, inputs, *args, **kwargs)
            value = float(loss.float().mean())
            if not math.isfinite(value):
                raise DivergenceError(
                    f"the training loss is {value} at step {self.state.global_step + 1}"
                )
            self.losses.append(value)  # the saved loss curve (skw2s.hf.tracking.loss_curve)
            return loss

        def count(self, counts):
            """Add one batch's ``counts`` (a dict of :class:`TrainingStats` fields)."""
            s = self.stats
            s.steps += 1
            for name, value in counts.items():
                setattr(s, name, getattr(s, name) + value)
            if self.param_counts is not None:
                s.useful_flops += useful_flops(
                    self.param_counts, counts["useful_tokens"], counts["loss_rows"]
                )

    return CountingTrainer


def _weighted_trainer_class():
    import torch

    class WeightedTrainer(_trainer_base()):
        """Trainer whose loss uses per-token (SFT) or per-example (classification) weights.

        ``student_loss`` (a :class:`skw2s.losses.Loss`, set after construction) replaces the
        classification cross-entropy: it gets the batch's logits, its labels (soft ones when
        the batch has them), the weights and the training progress ``step_frac``.
        ``answer_only`` selects the SFT loss's path (see :func:`sft_loss`).
        """

        student_loss = None
        answer_only = True

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            inputs = dict(inputs)
            if "token_weight" in inputs:
                loss, outputs, counts = sft_loss(
                    model, inputs["input_ids"], inputs["attention_mask"], inputs["token_weight"],
                    answer_only=self.answer_only,
                )
            else:
                weight = inputs.pop("sample_weight")
                labels = inputs.pop("labels")
                soft = inputs.pop("soft_labels", None)
                outputs = model(**inputs)
                if self.student_loss is None:
                    ce = torch.nn.functional.cross_entropy(
                        outputs.logits.float(), labels, reduction="none"
                    )
                    loss = (ce * weight).sum() / weight.numel()
                else:
                    step_frac = min(1.0, self.state.global_step / max(1, self.state.max_steps))
                    loss = self.student_loss(
                        outputs.logits.float(), labels if soft is None else soft,
                        sample_weight=weight, step_frac=step_frac, reduction="sum",
                    ) / weight.numel()
                mask = inputs["attention_mask"]
                tokens = int(mask.sum())
                counts = {"tokens": tokens, "padded_tokens": int(mask.numel()),
                          "useful_tokens": tokens, "projected_rows": int(mask.numel()),
                          "loss_rows": int(weight.numel())}
            self.count(counts)
            return (loss, outputs) if return_outputs else loss

    return WeightedTrainer


def _training_args(*, lr, n_epochs, batch_size, random_state, device, verbose, output_dir,
                   report_to="none", logging_steps=None, run_name=None, total_steps=1):
    from transformers import TrainingArguments

    from .tracking import logging_interval, reports

    seed = torch_seed(random_state)
    tracked = reports(report_to)
    return TrainingArguments(
        output_dir=output_dir,
        learning_rate=lr,
        num_train_epochs=n_epochs,
        per_device_train_batch_size=batch_size,
        lr_scheduler_type="linear",
        warmup_steps=0,
        weight_decay=0.0,
        seed=seed,
        data_seed=seed,
        report_to=report_to if tracked else "none",
        run_name=run_name,
        save_strategy="no",
        # the Trainer logs (to the trackers) only when one is named; the saved loss curve
        # does not need it (CountingTrainer.losses)
        logging_strategy="steps" if tracked else "no",
        logging_steps=logging_interval(logging_steps, total_steps),
        logging_first_step=tracked,
        disable_tqdm=not verbose,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        use_cpu=str(device) == "cpu",
    )


def _quiet_progress_callback():
    """The Trainer's progress bar without the metric dictionaries it writes to stdout at each
    log and at the end of training (they go to the logger, see :func:`_run_trainer`)."""
    from transformers import ProgressCallback

    class QuietProgressCallback(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            pass

    return QuietProgressCallback


def _route_tensorboard(trainer, run_name):
    """Point the Trainer's TensorBoard callback (if any) at the run's own folder
    (:func:`skw2s.hf.tracking.tensorboard_dir`): its default lies in the Trainer's output
    directory, a temporary one here."""
    from .tracking import tensorboard_dir

    for callback in trainer.callback_handler.callbacks:
        if type(callback).__name__ == "TensorBoardCallback":
            callback.logging_dir = tensorboard_dir(run_name)


@contextlib.contextmanager
def quiet_peft():
    """Silence the one warning peft triggers on every adapter it creates: it reads
    transformers' deprecated ``is_gradient_checkpointing`` (a FutureWarning that says nothing
    about the user's code). Every other warning still shows."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.* is deprecated",
                                category=FutureWarning)
        yield


def _apply_lora(model, *, task_type, lora_r, lora_alpha, target_modules):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=lora_r,
        lora_alpha=lora_alpha if lora_alpha is not None else 2 * lora_r,
        lora_dropout=0.0,
        target_modules=list(target_modules or DEFAULT_LORA_TARGETS),
        task_type=task_type,
    )
    with quiet_peft():
        return get_peft_model(model, config)


def _output_head(model):
    """The output head of a (possibly peft-wrapped) causal LM or sequence classifier."""
    hf = unwrap_model(model)
    get = getattr(hf, "get_output_embeddings", None)
    head = get() if callable(get) else None
    return head if head is not None else classification_head(hf)


def _run_trainer(model, dataset, collator, *, trainer_class=None, trainer_attrs=None,
                 lengths=None, run_name=None, **kwargs):
    """Train ``model`` on the rows ``dataset`` with a Trainer of ``trainer_class`` (default:
    the weighted one), ``trainer_attrs`` set on it; ``lengths`` (one per row) groups the
    batches by length (None: random batches). The run is named
    :func:`~skw2s.hf.tracking.current_run_name` (``run_name`` outside any
    :func:`~skw2s.hf.tracking.training_run` block); ``kwargs`` are the Trainer's settings
    (:func:`_training_args`: ``report_to``, ``logging_steps``...). Returns the run's
    :class:`~skw2s.hf.efficiency.TrainingStats`, its loss curve included."""
    from datasets import Dataset
    from transformers import PrinterCallback, ProgressCallback

    from .efficiency import matmul_rate, parameter_counts, publish
    from .tracking import current_run_name, loss_curve

    run = current_run_name(run_name or "train")
    total_steps = math.ceil(len(dataset) / kwargs["batch_size"]) * math.ceil(kwargs["n_epochs"])
    with tempfile.TemporaryDirectory(prefix="skw2s-train-") as tmp:
        args = _training_args(output_dir=tmp, device=model.device, run_name=run,
                              total_steps=total_steps, **kwargs)
        trainer = (trainer_class or _weighted_trainer_class())(
            model=model,
            args=args,
            train_dataset=Dataset.from_list(dataset),
            data_collator=collator,
        )
        for name, value in (trainer_attrs or {}).items():
            setattr(trainer, name, value)
        trainer.lengths = None if lengths is None else list(lengths)
        trainer.param_counts = parameter_counts(unwrap_model(model), _output_head(model))
        # metrics go to the logger (and the trackers), never to stdout
        trainer.remove_callback(PrinterCallback)
        if trainer.pop_callback(ProgressCallback) is not None:
            trainer.add_callback(_quiet_progress_callback())
        _route_tensorboard(trainer, run)
        start = time.perf_counter()
        result = trainer.train()
        check_finite_weights(model)
        stats = trainer.stats
        stats.seconds, stats.runs = time.perf_counter() - start, 1
        stats.loss_curves = [{"run": run, "points": loss_curve(trainer.losses)}]
        # the device's own rate in the body's dtype (a bfloat16 GPU model: its bfloat16 rate)
        dtype = unwrap_model(model).get_input_embeddings().weight.dtype
        stats.peak_flops = stats.seconds * matmul_rate(device=model.device, dtype=dtype)
    model.eval()
    publish(stats)
    logger.info("Training finished: %s; %s", result.metrics, stats.as_dict())
    return stats


def check_finite_weights(model):
    """Raise :class:`~skw2s.exceptions.DivergenceError` naming the first trainable parameter
    of ``model`` with a NaN or infinite value (a last step can blow the weights up with a
    finite loss)."""
    import torch

    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.requires_grad and not bool(torch.isfinite(param).all()):
                raise DivergenceError(f"the weights of {name} became non-finite in training")


@contextlib.contextmanager
def seeded_torch(seed, device=None):
    """Seed torch's global generators inside the block and restore them afterwards.

    Everything random in a fit happens inside it: a new classification head and LoRA matrices
    are initialised from torch's global generator, and the Trainer reseeds it. So the same
    ``random_state`` gives bit-identical weights in a fresh process, whatever the caller did
    to torch's generator before, and the caller's generator is left as it was.

    Parameters
    ----------
    seed : int
        The fit's seed.
    device : torch.device or str, default=None
        A CUDA device also gets its generator forked and seeded.
    """
    import torch

    devices = []
    if device is not None and torch.device(device).type == "cuda":
        devices = [torch.device(device).index or 0]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(torch_seed(seed))
        yield


def _check_mode(mode, allowed):
    if mode not in allowed:
        raise ValueError(f"Unknown mode {mode!r}: use one of {', '.join(map(repr, allowed))}.")


def _fit_rows(
    model, rows, collator, *, task_type, mode, lr, n_epochs, batch_size, random_state,
    lora_r, lora_alpha, lora_target_modules, verbose, trainer_attrs=None, group_by_length=True,
    **tracking,
):
    """Add LoRA adapters when asked, then train ``model`` on ``rows`` with the Trainer
    (``tracking``: ``report_to``, ``logging_steps``, ``run_name`` of :func:`_run_trainer`)."""
    if mode == "lora":
        model = _apply_lora(
            model,
            task_type=task_type,
            lora_r=lora_r,
            lora_alpha=lora_alpha,
            target_modules=lora_target_modules,
        )
    model.train()
    _run_trainer(
        model, rows, collator, lr=lr, n_epochs=n_epochs, batch_size=batch_size,
        random_state=random_state, verbose=verbose, trainer_attrs=trainer_attrs,
        lengths=[len(r["input_ids"]) for r in rows] if group_by_length else None, **tracking,
    )
    return model


def train_causal_lm(
    model,
    tokenizer,
    encoded,
    token_weights=None,
    *,
    mode="full",
    lr=5e-5,
    n_epochs=1,
    batch_size=8,
    random_state=None,
    lora_r=16,
    lora_alpha=None,
    lora_target_modules=None,
    verbose=0,
    answer_only=True,
    group_by_length=True,
    report_to="none",
    logging_steps=None,
    run_name=None,
):
    """Supervised fine-tuning with the loss on (weighted) answer tokens only.

    Parameters
    ----------
    model : transformers causal LM
    tokenizer : transformers tokenizer
    encoded : list of EncodedExample
        From :func:`encode_sft`.
    token_weights : list of array-like, optional
        One non-negative weight per answer token of each example (``n_answer_tokens`` long);
        a count of how often boosting drew the token, or any weight. Zero excludes a token;
        examples whose weights are all zero are dropped. Default: all ones.
    mode : {"full", "lora"}, default="full"
    lr, n_epochs, batch_size, random_state
        Optimisation settings (linear decay, no warm-up).
    lora_r, lora_alpha, lora_target_modules
        LoRA settings (``mode="lora"``); ``lora_alpha`` defaults to ``2 * lora_r``.
    verbose : int, default=0
        Show the Trainer's progress bar when positive.
    answer_only : bool, default=True
        Compute the vocabulary projection and the cross-entropy only at the positions that
        predict an answer token of non-zero weight (the same loss; see the module docstring).
        False: at every position (the plain path).
    group_by_length : bool, default=True
        Batch rows of similar length (seeded, see :class:`LengthGroupedSampler`); False: the
        Trainer's random batches.
    report_to : str or list of str, default="none"
        The trackers the Trainer logs to (``"mlflow"``, ``"wandb"``, ``"tensorboard"``...);
        ``"none"``: none, and the Trainer logs nothing. See :mod:`skw2s.hf.tracking`.
    logging_steps : int, default=None
        With a tracker, log every this many steps; None: about 50 logs per run.
    run_name : str, default=None
        The run's name outside any :func:`skw2s.hf.tracking.training_run` block (None:
        ``"train"``); inside one, the block's name.

    Returns
    -------
    model
        The trained model (a ``peft`` model in LoRA mode), in eval mode.
    """
    _check_mode(mode, ("full", "lora"))
    rows = []
    for i, ex in enumerate(encoded):
        w = np.ones(ex.n_answer_tokens) if token_weights is None else np.asarray(token_weights[i])
        if w.shape != (ex.n_answer_tokens,):
            raise ValueError(
                f"token_weights[{i}] has shape {w.shape}; expected ({ex.n_answer_tokens},)."
            )
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError(f"token_weights[{i}] must be finite and non-negative.")
        if w.sum() == 0:
            continue
        full = [0.0] * ex.answer_start + [float(v) for v in w]
        rows.append({"input_ids": list(ex.input_ids), "token_weight": full})
    if not rows:
        raise ValueError("No answer token has a positive weight: nothing to train on.")
    return _fit_rows(
        model, rows, _SFTCollator(tokenizer.pad_token_id), task_type="CAUSAL_LM", mode=mode, lr=lr,
        n_epochs=n_epochs, batch_size=batch_size, random_state=random_state, lora_r=lora_r,
        lora_alpha=lora_alpha, lora_target_modules=lora_target_modules, verbose=verbose,
        trainer_attrs={"answer_only": answer_only}, group_by_length=group_by_length,
        report_to=report_to, logging_steps=logging_steps, run_name=run_name,
    )


def _tokenize_texts(tokenizer, texts, max_length):
    return tokenizer(list(texts), truncation=True, max_length=max_length, add_special_tokens=True)[
        "input_ids"
    ]


def train_classifier(
    model,
    tokenizer,
    texts,
    labels,
    sample_weight=None,
    *,
    mode="full",
    lr=5e-5,
    n_epochs=1,
    batch_size=8,
    max_length=256,
    random_state=None,
    lora_r=16,
    lora_alpha=None,
    lora_target_modules=None,
    verbose=0,
    loss=None,
    soft_labels=None,
    group_by_length=True,
    report_to="none",
    logging_steps=None,
    run_name=None,
):
    """Fine-tune a sequence-classification LM with per-example weights.

    ``labels`` are integer class indices. ``sample_weight`` (default: ones) is rescaled to
    mean 1; examples with zero weight are dropped. ``mode="head"`` trains only the head on
    frozen features (see :func:`train_head`). ``loss`` (a :class:`skw2s.losses.Loss`; None is
    the plain weighted cross-entropy) is the student loss, given ``soft_labels`` (``(n, 2)``
    probabilities) instead of ``labels`` when they are passed. Other parameters (and
    ``group_by_length``, ``report_to``, ``logging_steps``, ``run_name``) as in
    :func:`train_causal_lm`; head mode has no Trainer and reports to no tracker (its loss
    curve is still collected). Returns the trained model in eval mode.
    """
    _check_mode(mode, MODES)
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (n,) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError("sample_weight must be finite, non-negative, one per example, not all 0.")
    if mode == "head":
        features = extract_features(
            model, tokenizer, texts, batch_size=batch_size, max_length=max_length
        )
        return train_head(
            model, features, labels, w, lr=lr, n_epochs=n_epochs, random_state=random_state,
            loss=loss, soft_labels=soft_labels, run_name=run_name,
        )
    w = w / w.mean()
    ids = _tokenize_texts(tokenizer, texts, max_length)
    rows = []
    for i in range(n):
        if w[i] > 0:
            row = {"input_ids": list(ids[i]), "label": int(labels[i]), "weight": float(w[i])}
            if soft_labels is not None:
                row["soft"] = [float(v) for v in soft_labels[i]]
            rows.append(row)
    return _fit_rows(
        model, rows, _ClsCollator(tokenizer.pad_token_id), task_type="SEQ_CLS", mode=mode, lr=lr,
        n_epochs=n_epochs, batch_size=batch_size, random_state=random_state, lora_r=lora_r,
        lora_alpha=lora_alpha, lora_target_modules=lora_target_modules, verbose=verbose,
        trainer_attrs={"student_loss": loss}, group_by_length=group_by_length,
        report_to=report_to, logging_steps=logging_steps, run_name=run_name,
    )


def classification_head(model):
    """The linear head of a sequence-classification model (``score`` or ``classifier``)."""
    for name in ("score", "classifier"):
        head = getattr(model, name, None)
        if head is not None:
            return head
    raise ValueError(f"{type(model).__name__} has no `score` or `classifier` head.")


def extract_features(model, tokenizer, texts, *, batch_size=16, max_length=256):
    """Hidden state of the last non-pad token of each text, from the frozen model's body.

    Returns a float32 numpy array of shape ``(len(texts), hidden_size)``: exactly what the
    model's linear head sees.
    """
    import torch

    body = model.base_model
    ids = _tokenize_texts(tokenizer, texts, max_length)
    out = []
    with torch.no_grad():
        for start in range(0, len(ids), batch_size):
            chunk = ids[start : start + batch_size]
            input_ids = _pad(chunk, tokenizer.pad_token_id).to(model.device)
            mask = _pad([[1] * len(c) for c in chunk], 0).to(model.device)
            hidden = body(input_ids=input_ids, attention_mask=mask).last_hidden_state
            last = mask.sum(dim=1) - 1
            rows = torch.arange(len(chunk), device=hidden.device)
            out.append(hidden[rows, last].float().cpu())
    return torch.cat(out).numpy()


ANSWER_SCORE_FEATURES = ("mean_logprob", "sum_logprob", "min_logprob", "first_logprob",
                         "log_n_tokens")
"""The features ``answer_score_features`` returns, in order."""


def answer_score_features(body, lm_head_weight, tokenizer, texts, *, marker, batch_size=16,
                          max_length=256):
    """The LM's own scores of each text's answer: what a zero-shot reader of the LM would use.

    Each text is cut at the last ``marker`` (for ``"Q: {question} A: {answer}"`` texts,
    ``" A: "``); the answer is the part after it. Teacher-forced under the frozen body and the
    LM head ``lm_head_weight`` (``(vocab, hidden)``), the answer tokens' log-probabilities give
    the features named in :data:`ANSWER_SCORE_FEATURES`: their mean, sum and minimum, the first
    token's, and the log of the answer's token count.

    Returns a float32 array of shape ``(len(texts), 5)``.
    """
    import torch

    keep = marker.rstrip()
    rows = []
    for text in texts:
        cut = text.rfind(marker)
        if cut < 0:
            raise ValueError(
                f"head_features='answer_scores' reads the answer after the marker {marker!r}, "
                f"but the text {text[:80]!r} does not contain it. Set answer_marker to the "
                "string that precedes the answer in your texts."
            )
        prefix = tokenizer(text[: cut + len(keep)], add_special_tokens=True)["input_ids"]
        answer = tokenizer(text[cut + len(keep):], add_special_tokens=False)["input_ids"]
        if not answer:
            raise ValueError(f"The text {text[:80]!r} has an empty answer after {marker!r}.")
        ids = (prefix + answer)[-max_length:]
        n_answer = min(len(answer), len(ids) - 1)
        rows.append((ids, n_answer))
    weight_t = lm_head_weight.float().T  # converted once, not once per text
    out = np.zeros((len(texts), len(ANSWER_SCORE_FEATURES)), dtype=np.float32)
    device = lm_head_weight.device
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            input_ids = _pad([ids for ids, _ in chunk], tokenizer.pad_token_id).to(device)
            mask = _pad([[1] * len(ids) for ids, _ in chunk], 0).to(device)
            hidden = body(input_ids=input_ids, attention_mask=mask).last_hidden_state
            # every answer position of the batch at once; the values come back to the CPU once
            row_of = [i for i, (_, n_answer) in enumerate(chunk) for _ in range(n_answer)]
            col_of = [len(ids) - n_answer - 1 + j for ids, n_answer in chunk
                      for j in range(n_answer)]
            r = torch.tensor(row_of, device=device)
            c = torch.tensor(col_of, device=device)
            logits = hidden[r, c].float() @ weight_t
            targets = input_ids[r, c + 1]
            logp = torch.log_softmax(logits, dim=-1).gather(1, targets[:, None])[:, 0]
            splits = np.cumsum([n_answer for _, n_answer in chunk])[:-1]
            for i, lp in enumerate(np.split(logp.cpu().numpy(), splits)):
                n_answer = chunk[i][1]
                out[start + i] = (lp.mean(), lp.sum(), lp.min(), lp[0], np.log(n_answer))
    return out


def train_head(model, features, labels, sample_weight=None, *, lr=1e-2, n_epochs=100,
               random_state=None, loss=None, soft_labels=None, run_name=None):
    """Train the model's linear head on precomputed features with a weighted loss.

    Full-batch Adam for ``n_epochs`` steps, seeded through a local generator; the head is
    updated in place (the rest of the model is untouched) and the model is returned. ``loss``
    (a :class:`skw2s.losses.Loss`; None is the weighted cross-entropy) is called on the whole
    batch with ``step_frac = step / n_epochs``, on ``soft_labels`` when they are given. The
    loss curve goes to open :func:`skw2s.hf.efficiency.collect_training_stats` blocks, named
    as :func:`_run_trainer` names a run (``run_name`` outside any
    :func:`skw2s.hf.tracking.training_run` block, default ``"train_head"``); no other count.
    """
    import torch

    from .efficiency import TrainingStats, publish
    from .tracking import current_run_name, loss_curve

    head = classification_head(model)
    x = torch.as_tensor(np.asarray(features), dtype=torch.float32, device=head.weight.device)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long, device=head.weight.device)
    w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    w = torch.as_tensor(w / w.sum(), dtype=torch.float32, device=head.weight.device)
    generator = torch.Generator().manual_seed(torch_seed(random_state))
    with torch.no_grad():
        init = torch.randn(head.weight.shape, generator=generator) * 0.01
        head.weight.copy_(init.to(head.weight))
        if head.bias is not None:
            head.bias.zero_()
    params = [p for p in head.parameters()]
    original = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(params, lr=lr)
    scale = x.std().clamp_min(1e-6)
    target = y if soft_labels is None else torch.as_tensor(
        np.asarray(soft_labels, dtype=np.float32), device=head.weight.device
    )
    losses = []
    try:
        for step in range(int(n_epochs)):
            optimizer.zero_grad()
            logits = torch.nn.functional.linear(x / scale, head.weight, head.bias)
            if loss is None:
                value = (torch.nn.functional.cross_entropy(logits, y, reduction="none") * w).sum()
            else:
                value = loss(logits, target, sample_weight=w, step_frac=step / int(n_epochs),
                             reduction="sum")
            losses.append(float(value.detach()))
            if not math.isfinite(losses[-1]):
                raise DivergenceError(f"the training loss is {losses[-1]} at step {step + 1}")
            value.backward()
            optimizer.step()
        with torch.no_grad():
            head.weight.div_(scale)
        if not all(bool(torch.isfinite(p).all()) for p in params):
            raise DivergenceError("the head's weights became non-finite in training")
    finally:
        for p, flag in zip(params, original):
            p.requires_grad_(flag)
    name = current_run_name(run_name or "train_head")
    publish(TrainingStats(loss_curves=[{"run": name, "points": loss_curve(losses)}]))
    model.eval()
    return model
