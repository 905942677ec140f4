"""What a training run computes that it needs to, and how fast: useful FLOPs and efficiency.

**The counting rule** (the one the training statistics, the pipeline's ``history_``, the seed
files of ``benchmarks/paired.py`` and ``benchmarks/bench_training.py`` all use). A linear map
with ``P`` weights applied to ``n`` rows costs ``2 P n`` FLOPs forward; backward, the gradient
of its input costs ``2 P n`` again and, when its weights train, their gradient another ``2 P n``.
So a training step costs

- the **body** (every parameter but the input embeddings and the output head) on every useful
  token: ``(4 B + 2 B_trained) * tokens``. Useful tokens are the real (unpadded) tokens whose
  output predicts a token, each read once: every token of an SFT sequence but its last; for a
  choice loss, each question's prompt once and every option's tokens but its last (a plain path
  that reads the prompt once per option does more work, not more useful work);
- the **output head** (the vocabulary projection of a causal LM, the linear head of a
  classifier) on every position whose output a loss term reads: ``(4 H + 2 H_trained) * rows``,
  the positions that predict an answer token of non-zero weight in SFT; for a choice loss each
  prompt's last position (it predicts every option's first token) and every option token but
  its last; one row per example of a classifier.

``B_trained`` and ``H_trained`` count the weights that train: all of them in full fine-tuning
(``6 N`` per token, the usual rule), the adapters only with LoRA (``4 N`` plus the adapters: the
frozen weights still pass gradients down, but need none of their own). Input embeddings are a
lookup, not a product, and are not counted. Attention scores (``Q K^T`` and their product with
``V``) are not counted either: at the sequence lengths of our tasks (under 200 tokens) they are
a few percent of the body, so the rule slightly understates the useful work.

**Efficiency** is useful FLOPs / (seconds x the matmul rate of the device the run trained on,
in its weights' dtype): :func:`matmul_rate` times a square product there (on a CPU, float32
with torch's current thread count; on a GPU, bfloat16 for a bfloat16 model), once per process,
device, dtype and thread count. A run records that rate times its seconds as ``peak_flops``, so
runs on different devices add up. 1.0 would be a run doing nothing but its useful products at
the speed of one large product.

torch is imported inside the functions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import time

logger = logging.getLogger(__name__)

__all__ = [
    "TrainingStats",
    "collect_training_stats",
    "matmul_rate",
    "parameter_counts",
    "publish",
]


@dataclasses.dataclass(eq=False)
class TrainingStats:
    """Counts of one or more training runs (see the module docstring for the counting rule).

    Attributes
    ----------
    runs : int
        Training runs counted.
    seconds : float
        Wall seconds inside the Trainer's training loop.
    steps : int
        Batches.
    tokens : int
        Real (unpadded) tokens fed to the model, prompts repeated per option included.
    padded_tokens : int
        Token positions fed to the model, padding included.
    useful_tokens : int
        The tokens whose output predicts a token, each read once (the rule's ``tokens``).
    projected_rows : int
        Rows the output head was applied to.
    loss_rows : int
        Distinct positions whose output a loss term reads (the rule's ``rows``).
    useful_flops : float
        FLOPs by the counting rule.
    peak_flops : float
        What the devices could have done in ``seconds``: each run's seconds times the
        :func:`matmul_rate` of its device and dtype (0 when the runs did not record it).
    loss_curves : list of dict
        One per run, in order: ``{"run": its name, "points": [[step, loss], ...]}``, at most
        :data:`skw2s.hf.tracking.MAX_POINTS` points (see :mod:`skw2s.hf.tracking`). Not in
        :meth:`as_dict`.
    """

    runs: int = 0
    seconds: float = 0.0
    steps: int = 0
    tokens: int = 0
    padded_tokens: int = 0
    useful_tokens: int = 0
    projected_rows: int = 0
    loss_rows: int = 0
    useful_flops: float = 0.0
    peak_flops: float = 0.0
    loss_curves: list = dataclasses.field(default_factory=list)

    def add(self, other):
        """Add the counts of ``other`` to these (and its loss curves after these), in place;
        returns ``self``."""
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))
        return self

    @property
    def padding(self):
        """The share of fed token positions that are padding (0 when nothing was fed)."""
        return 1.0 - self.tokens / self.padded_tokens if self.padded_tokens else 0.0

    def efficiency(self, rate=None):
        """Useful FLOPs / (seconds x ``rate``).

        ``rate`` defaults to the runs' own devices: useful FLOPs / ``peak_flops``, or, where the
        runs did not record it, this process's CPU :func:`matmul_rate`. Returns None when no
        time was spent training.
        """
        if self.seconds <= 0 or not self.useful_flops:
            return None
        if rate is None and self.peak_flops > 0:
            return self.useful_flops / self.peak_flops
        return self.useful_flops / (self.seconds * (matmul_rate() if rate is None else rate))

    def as_dict(self):
        """The counts as a dict, with ``padding`` added (the loss curves left out)."""
        counts = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                  if f.name != "loss_curves"}
        return {**counts, "padding": self.padding}


def _linear_weights(module):
    """The weights (and bias) of an output head as ``[(parameter, trains)]``: the module's own,
    or those of the copy peft trains (``modules_to_save``), not the frozen original too."""
    saved = getattr(module, "modules_to_save", None)
    if saved is not None:
        active = getattr(module, "active_adapter", None)
        active = active[0] if isinstance(active, (list, tuple)) else active
        if active in saved:
            module = saved[active]
    return list(module.parameters())


def parameter_counts(model, head):
    """Parameters of ``model`` by the counting rule's parts.

    Parameters
    ----------
    model : torch.nn.Module
        The trained model (a peft model counts its adapters in the body).
    head : torch.nn.Module
        Its output head (``get_output_embeddings()``, or a classifier's ``score``).

    Returns
    -------
    dict
        ``body``, ``body_trained``, ``head`` and ``head_trained``: numbers of weights.
    """
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    head_params = _linear_weights(head)
    skip = {id(p) for p in head.parameters()}
    if embeddings is not None:
        skip |= {id(p) for p in embeddings.parameters()}
    seen, body, body_trained = set(), 0, 0
    for p in model.parameters():
        if id(p) in seen or id(p) in skip:
            continue
        seen.add(id(p))
        body += p.numel()
        body_trained += p.numel() if p.requires_grad else 0
    return {
        "body": body,
        "body_trained": body_trained,
        "head": sum(p.numel() for p in head_params),
        "head_trained": sum(p.numel() for p in head_params if p.requires_grad),
    }


def useful_flops(counts, tokens, rows):
    """FLOPs of a training step by the counting rule: ``counts`` from
    :func:`parameter_counts`, ``tokens`` useful tokens, ``rows`` loss rows."""
    body = 4 * counts["body"] + 2 * counts["body_trained"]
    head = 4 * counts["head"] + 2 * counts["head_trained"]
    return float(body) * tokens + float(head) * rows


@functools.lru_cache(maxsize=8)
def _matmul_rate(threads, size, repeats, device, dtype):
    import torch

    device, dtype = torch.device(device), getattr(torch, dtype)
    generator = torch.Generator(device=device).manual_seed(0)  # not the global generator
    a = torch.rand((size, size), generator=generator, device=device).to(dtype)
    b = torch.rand((size, size), generator=generator, device=device).to(dtype)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    a @ b  # warm-up
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - start)
    rate = 2.0 * size**3 / best
    logger.info("%s %s matmul rate (%d thread(s)): %.1f GFLOP/s", device, dtype, threads,
                rate / 1e9)
    return rate


def matmul_rate(size=None, repeats=3, *, device="cpu", dtype=None, cached=True):
    """FLOP/s of a square matrix product on ``device`` in ``dtype``.

    The best of ``repeats`` timed products after one warm-up, at torch's current thread count.
    Measured once per process, device, dtype, thread count and size unless ``cached=False``
    (the benchmarks time it beside every repeat).

    Parameters
    ----------
    size : int, default=None
        The matrices' side; default 2048 on a CPU, 8192 on a GPU (a product large enough to
        reach the chip's rate).
    repeats : int, default=3
        Timed products; the fastest counts.
    device : str or torch.device, default="cpu"
    dtype : str or torch.dtype, default=None
        float32 when None; a GPU's rate for a bfloat16 model is the bfloat16 one.
    cached : bool, default=True
        Reuse this process's earlier measurement for the same arguments and thread count.

    Returns
    -------
    float
        FLOPs per second (``2 size^3`` per product).
    """
    import torch

    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    dtype = str(dtype or torch.float32).replace("torch.", "")
    if size is None:
        size = 8192 if device.type == "cuda" else 2048
    if not cached:
        _matmul_rate.cache_clear()
    return _matmul_rate(torch.get_num_threads(), int(size), int(repeats), str(device), dtype)


_COLLECTORS = []


@contextlib.contextmanager
def collect_training_stats():
    """Sum the statistics of every training run in this process while inside the block.

    Blocks may nest; each gets every run that finishes inside it.

    Yields
    ------
    TrainingStats
        Filled in as runs finish.
    """
    stats = TrainingStats()
    _COLLECTORS.append(stats)
    try:
        yield stats
    finally:
        _COLLECTORS.remove(stats)


def publish(stats):
    """Hand a finished run's ``stats`` to every open :func:`collect_training_stats` block."""
    for collector in _COLLECTORS:
        collector.add(stats)
