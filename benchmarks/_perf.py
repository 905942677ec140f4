"""Shared helpers of the performance benchmarks (``bench_*.py``): machine facts, interleaved
timing, cheap experts, tables and JSON results.

Every figure the benchmarks report is a ratio against a baseline measured in the same run:
the candidates and their baselines are timed in alternation (the order rotates every repeat),
and a ratio is the median of the per-repeat ratios, so that a slow spell of a shared machine
hits both sides of a ratio alike.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "performance"
QUICK_RESULTS = RESULTS / "quick"  # --quick smoke runs; not committed (.gitignore)
QUICK_PROMPTS = [
    "Question: Which gas do plants absorb from the air to make food?\nAnswer:",
    "Question: What happens to water when it is cooled below zero degrees?\nAnswer:",
    "Question: Which planet is closest to the sun?\nAnswer:",
    "Question: A student drops a ball. Which force pulls the ball to the ground?\nAnswer:",
    "Question: Which part of a plant takes in water from the soil?\nAnswer:",
    "Question: What is the main source of energy for the water cycle?\nAnswer:",
    "Question: Which tool is best to measure the mass of a rock?\nAnswer:",
    "Question: Which of these is a renewable resource used to make electricity?\nAnswer:",
]
QUICK_CHOICES = [
    ["carbon dioxide", "oxygen", "nitrogen", "helium"],
    ["it freezes into ice", "it boils", "it evaporates", "it melts"],
    ["Mercury", "Venus", "Earth", "Mars"],
    ["gravity", "friction", "magnetism", "electricity"],
    ["the roots", "the leaves", "the flower", "the seeds"],
    ["the sun", "the moon", "wind", "the ocean"],
    ["a balance", "a ruler", "a thermometer", "a graduated cylinder"],
    ["wind", "coal", "natural gas", "oil"],
]


# ----------------------------------------------------------------------------
# Setup
# ----------------------------------------------------------------------------
def setup(threads, device):
    """Fix torch's thread count and resolve the device; return ``(torch.device, threads)``."""
    import torch

    from skw2s.hf.models import resolve_device

    torch.set_num_threads(threads)
    return resolve_device(device), threads


def machine_info(device, threads):
    """Machine, device and library versions, for the header of every result."""
    import peft
    import sklearn
    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if device.type == "cuda" else None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=HERE.parent, capture_output=True,
            text=True, check=False,
        ).stdout.strip() or None
        dirty = bool(subprocess.run(
            ["git", "status", "--porcelain", "--", "skw2s"], cwd=HERE.parent, capture_output=True,
            text=True, check=False,
        ).stdout.strip())
    except OSError:
        commit, dirty = None, None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": threads,
        "device": str(device),
        "gpu": gpu,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "sklearn": sklearn.__version__,
        "skw2s_commit": commit,
        "skw2s_dirty": dirty,
        "command": " ".join([Path(sys.executable).name] + sys.argv),
    }


def print_header(title, info):
    print(f"\n== {title} ==")
    print(f"command : {info['command']}")
    gpu = f" / {info['gpu']}" if info["gpu"] else ""
    print(f"machine : {info['cpu']}, {info['cores']} cores, {info['torch_threads']} torch "
          f"thread(s), device {info['device']}{gpu}; load average {info['load_average']}")
    print(f"versions: python {info['python']}, torch {info['torch']}, transformers "
          f"{info['transformers']}, peft {info['peft']}, skw2s {info['skw2s_commit']}"
          f"{' (+local changes)' if info['skw2s_dirty'] else ''}")


# ----------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------
def tiny_model(n_layers=4, hidden_size=128):
    """A random tiny causal LM in a temporary directory (quick mode)."""
    from skw2s.hf.testing import tiny_causal_lm

    directory = tempfile.mkdtemp(prefix="skw2s-bench-")
    return tiny_causal_lm(directory, seed=0, n_layers=n_layers, hidden_size=hidden_size)


def load(spec, device):
    from skw2s.hf.models import load_causal_lm

    return load_causal_lm(spec, device=str(device))


def lora_experts(base, n_experts, *, r=16, seed=0):
    """``n_experts`` LoRA adapters ``round1..`` on one base model, with random non-zero ``B``.

    The same kind of peft model a fitted ``TokenAdaBoostGenerator(mode="lora")`` holds (one
    base, one adapter per round, default target modules); no training, since only speed and
    memory are measured. Returns ``(peft_model, [AdapterExpert, ...])``.
    """
    import torch
    from peft import LoraConfig, get_peft_model

    from skw2s.hf.decoding import AdapterExpert
    from skw2s.hf.training import DEFAULT_LORA_TARGETS

    config = LoraConfig(
        r=r, lora_alpha=2 * r, lora_dropout=0.0, target_modules=list(DEFAULT_LORA_TARGETS),
        init_lora_weights=False,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = get_peft_model(base, config, adapter_name="round1")
        for t in range(2, n_experts + 1):
            model.add_adapter(f"round{t}", config)
        with torch.no_grad():  # keep the adapters small: outputs stay those of a language model
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.mul_(0.05)
    model.eval()
    return model, [AdapterExpert(model, f"round{t}") for t in range(1, n_experts + 1)]


def full_copies(model, n_experts, seed=0):
    """``n_experts`` full copies of ``model`` (the first is ``model``), each slightly perturbed."""
    import copy

    import torch

    experts = [model]
    gen = torch.Generator().manual_seed(seed)
    for _ in range(n_experts - 1):
        other = copy.deepcopy(model)
        with torch.no_grad():
            w = other.get_output_embeddings().weight
            w.add_(1e-3 * torch.randn(w.shape, generator=gen).to(w.device, w.dtype))
        experts.append(other.eval())
    return experts


# ----------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------
def arc_questions(n, data_dir=None):
    """``(prompts, choices, source)``: the first ``n`` ARC-Easy test questions, or built-in
    science questions of the same format when the offline data is absent."""
    try:
        from skw2s.data.datasets import load_arc, to_multiple_choice

        X, _ = to_multiple_choice(load_arc("easy", "test", data_dir=data_dir))
        X = X.iloc[:n]
        return X.prompt.tolist(), [list(c) for c in X.choices], "ARC-Easy test"
    except Exception:  # noqa: BLE001 - any missing data: fall back to the built-in questions
        reps = -(-n // len(QUICK_PROMPTS))
        return (QUICK_PROMPTS * reps)[:n], (QUICK_CHOICES * reps)[:n], "built-in ARC-like"


# ----------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------
def _sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(fns, *, repeats, device, warmup=True, log=print):
    """Time every callable of ``fns`` ``repeats`` times, alternating, rotating the order.

    ``warmup``: True runs every callable once untimed first; a dict of callables runs those
    instead (cheaper stand-ins that touch the same code); False skips it.
    Returns ``({name: [seconds, ...]}, {name: last result})``.
    """
    names = list(fns)
    times = {k: [] for k in names}
    results = {}
    if warmup:
        for k in names:
            results[k] = (warmup[k] if isinstance(warmup, dict) else fns[k])()
        _sync(device)
    for rep in range(repeats):
        order = names[rep % len(names):] + names[: rep % len(names)]
        for k in order:
            _sync(device)
            start = time.perf_counter()
            results[k] = fns[k]()
            _sync(device)
            times[k].append(time.perf_counter() - start)
        log(f"  repeat {rep + 1}/{repeats}: "
            + ", ".join(f"{k} {times[k][-1]:.3f}s" for k in names))
    return times, results


def ratio(times, num, den):
    """Median over repeats of ``time(num) / time(den)``, where each side may be a list of names
    whose times add up."""
    num = [num] if isinstance(num, str) else num
    den = [den] if isinstance(den, str) else den
    n = np.sum([times[k] for k in num], axis=0)
    d = np.sum([times[k] for k in den], axis=0)
    return float(np.median(n / d))


def median(times, name):
    return float(np.median(times[name]))


# ----------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------
def print_table(rows, columns):
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths))
    print(line)
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(w) for c, w in zip(columns, widths)))


def verdict(value, target, *, at_least=False, quick=False):
    """``met``/``MISSED`` against ``target``; quick runs (tiny models, where fixed per-call
    overheads dominate) are smoke tests and get no verdict."""
    if quick:
        return "n/a (quick run)"
    ok = value >= target if at_least else value <= target
    return f"{'met' if ok else 'MISSED'} ({'>=' if at_least else '<='} {target:g})"


def results_dir(args):
    """Where a run's JSON goes: ``--out`` when given, else ``results/performance/`` for full
    runs and ``results/performance/quick/`` (ignored by git) for ``--quick`` smoke runs, so a
    quick run never overwrites the committed records."""
    if getattr(args, "out", None):
        return Path(args.out)
    return QUICK_RESULTS if getattr(args, "quick", False) else RESULTS


def write_json(name, payload, args):
    """Write ``payload`` as ``{name}.json`` in :func:`results_dir` of ``args``."""
    out = results_dir(args)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=str))
    print(f"raw numbers: {path}")
    return path


def default_data_dir():
    """``SKW2S_DATA_DIR`` (through :func:`skw2s.data.datasets.resolve_data_dir`), else
    ``../shared/data`` beside the checkout when it exists."""
    from skw2s.data.datasets import resolve_data_dir

    found = resolve_data_dir(None, required=False)
    if found is not None:
        return str(found)
    shared = HERE.parents[1] / "shared" / "data"
    return str(shared) if shared.exists() else None


def common_arguments(parser, *, default_model="smollm2-135m"):
    parser.add_argument("--quick", action="store_true",
                        help="tiny random model, small sizes: about a minute, a smoke test")
    parser.add_argument("--model", default=default_model, help="model spec (non-quick mode)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 is steadier on a shared machine)")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--data-dir", default=default_data_dir())
    parser.add_argument("--out", default=None,
                        help=f"JSON folder (default {RESULTS}; with --quick {QUICK_RESULTS})")
    return parser


def result_name(prefix, args, device):
    mode = "quick" if args.quick else "full"
    name = f"{prefix}_{mode}_{device.type}"
    # runs with other thread counts go beside the 1-thread record, not over it
    return name if getattr(args, "threads", 1) == 1 else f"{name}_{args.threads}threads"
