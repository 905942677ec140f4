"""Capability matrix: how strong is each candidate weak or strong model, before and after training?

A weak-to-strong result means something only when the weak model is really weaker than the
strong one *after training*. This script measures, for every (model, task, seed) cell:

- **zero-shot accuracy** on a fixed test slice;
- **accuracy after one fixed training budget** on a seeded training slice.

Tasks and what "zero-shot" and "trained" mean for each:

- ``sciq_binary``: binarised SciQ (Burns et al.). Zero-shot: the mean NLL of the answer
  given ``Question: ...\\nAnswer:``, thresholded at its median over the test slice (the test
  labels are balanced, so the median is the natural threshold). Trained:
  :class:`~skw2s.LLMClassifier` in ``head`` mode (frozen LM, linear head on the last token).
- ``sciq_binary_scores``: the same data and zero-shot score; trained: ``LLMClassifier`` in
  head mode with ``head_features="answer_scores"``, a logistic head on the LM's own
  log-probabilities of the answer (mean, sum, min, first token, length).
- ``sciq_mc``, ``quartz``, ``arc_easy``: multiple choice. Zero-shot: option-NLL accuracy (the
  choice with the lowest summed NLL). Trained: :class:`~skw2s.LLMGenerator` with LoRA SFT
  (budget below), then option-NLL accuracy.

Rows are the offline models, including SmolLM2-135M cut to its first k layers (``[:k]``).

Each cell is written to ``OUT/{task}/{model}/seed{N}.json`` as soon as it finishes, and cells
that exist are skipped, so the run resumes after an interruption. ``--report`` rebuilds
``benchmarks/CAPABILITY.md``'s table (mean ± SEM over seeds) from those files.

Usage::

    python benchmarks/capability.py --data-dir ../shared/data --seeds 0 1 2
    python benchmarks/capability.py --report
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

logger = logging.getLogger("capability")

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "capability"
MODELS = [
    "smollm2-135m[:6]", "smollm2-135m[:12]", "smollm2-135m[:18]", "smollm2-135m[:24]",
    "smollm2-135m", "gemma3-270m",
]
TASKS = ["sciq_binary", "sciq_binary_scores", "sciq_mc", "quartz", "arc_easy"]
BUDGET = {
    "n_train": 256,
    "n_test": 200,
    "max_length": 160,
    "mc": {"mode": "lora", "lora_r": 16, "lr": 3e-4, "n_epochs": 1, "batch_size": 8},
    "binary": {"mode": "head", "batch_size": 16},
}


def _slug(model):
    return model.replace("[:", "-L").replace("]", "").replace("/", "_")


def _task_data(task, data_dir, seed, budget):
    from skw2s.data.datasets import (binarize_sciq, load_dataset, to_classification,
                                     to_multiple_choice)

    name = {"sciq_binary": "sciq", "sciq_binary_scores": "sciq", "sciq_mc": "sciq"}.get(task, task)
    train = load_dataset(name, "train", data_dir=data_dir)
    test = (load_dataset(name, "test", data_dir=data_dir).iloc[: budget["n_test"]]
            .reset_index(drop=True))
    rows = np.random.RandomState(seed).choice(len(train), budget["n_train"], replace=False)
    train = train.iloc[np.sort(rows)].reset_index(drop=True)
    if task.startswith("sciq_binary"):
        tr = binarize_sciq(train, random_state=seed)
        te = binarize_sciq(test, random_state=0)
        return to_classification(tr), to_classification(te), te
    return to_multiple_choice(train), to_multiple_choice(test), None


def _zero_shot(task, model_spec, test, test_frame, budget):
    import torch

    from skw2s.hf.models import load_causal_lm
    from skw2s.hf.decoding import choice_nll

    model, tok = load_causal_lm(model_spec, device="auto")
    if task.startswith("sciq_binary"):
        prompts = [f"Question: {q}\nAnswer:" for q in test_frame.question]
        nll = choice_nll(model, tok, prompts, [[a] for a in test_frame.answer_text],
                         reduction="mean", batch_size=16, max_length=budget["max_length"])
        score = -np.array([n[0] for n in nll])
        pred = (score > np.median(score)).astype(int)
        acc = float(np.mean(pred == test[1]))
    else:
        X, y = test
        nll = choice_nll(model, tok, X.prompt.tolist(), X.choices.tolist(), batch_size=16,
                         max_length=budget["max_length"])
        acc = float(np.mean([int(np.argmin(n)) == t for n, t in zip(nll, y)]))
    del model
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return acc


def _trained(task, model_spec, train, test, seed, budget):
    from skw2s import LLMClassifier, LLMGenerator

    if task.startswith("sciq_binary"):
        features = "answer_scores" if task == "sciq_binary_scores" else "last_token"
        est = LLMClassifier(model_spec, max_length=budget["max_length"], random_state=seed,
                            head_features=features, **budget["binary"])
    else:
        est = LLMGenerator(model_spec, max_length=budget["max_length"], random_state=seed,
                           **budget["mc"])
    start = time.perf_counter()
    est.fit(*train)
    fit_seconds = time.perf_counter() - start
    return float(est.score(*test)), fit_seconds


def run_cell(task, model_spec, seed, data_dir, out, budget, zero_shot_only=False):
    target = out / task / _slug(model_spec) / f"seed{seed}.json"
    if target.exists():
        logger.info("skip %s (exists)", target)
        return
    train, test, test_frame = _task_data(task, data_dir, seed, budget)
    start = time.perf_counter()
    zero = _zero_shot(task, model_spec, test, test_frame, budget)
    trained, fit_seconds = (None, None) if zero_shot_only else _trained(
        task, model_spec, train, test, seed, budget)
    record = {
        "task": task, "model": model_spec, "seed": seed, "zero_shot": zero, "trained": trained,
        "fit_seconds": fit_seconds, "seconds": time.perf_counter() - start, "budget": budget,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2))
    os.replace(tmp, target)
    logger.info("%s %s seed %d: zero-shot %.3f, trained %s (%.0f s)", task, model_spec, seed, zero,
                "not run" if trained is None else f"{trained:.3f}", record["seconds"])


def report(out, path):
    from skw2s.core.metrics import mean_sem

    records = [json.loads(p.read_text()) for p in sorted(out.glob("*/*/seed*.json"))]
    if not records:
        raise SystemExit(f"no results under {out}")
    df = pd.DataFrame(records)
    lines = []
    for column, title in (("zero_shot", "Zero-shot accuracy"),
                          ("trained", "Accuracy after the training budget")):
        lines += [f"### {title}", "", "| model | " + " | ".join(TASKS) + " |",
                  "|---" * (len(TASKS) + 1) + "|"]
        for model in ([m for m in MODELS if m in set(df.model)]
                      + sorted(set(df.model) - set(MODELS))):
            cells = []
            for task in TASKS:
                vals = df[(df.model == model) & (df.task == task)][column].dropna()
                if len(vals) == 0:
                    cells.append("–")
                    continue
                mean, sem = mean_sem(vals)
                cells.append(f"{mean:.3f}" + (f" ± {sem:.3f}" if np.isfinite(sem) else "")
                             + f" (n={len(vals)})")
            lines.append(f"| `{model}` | " + " | ".join(cells) + " |")
        lines.append("")
    table = "\n".join(lines)
    text = path.read_text() if path.exists() else ""
    begin, end = "<!-- table:begin -->", "<!-- table:end -->"
    if begin in text and end in text:
        text = text[: text.index(begin) + len(begin)] + "\n" + table + "\n" + text[text.index(end):]
    else:
        text += f"\n{begin}\n{table}\n{end}\n"
    path.write_text(text)
    sys.stdout.write(table + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", help="the folder holding sciq/, quartz/, arc_easy/; "
                                           "default: SKW2S_DATA_DIR")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--tasks", nargs="+", default=TASKS, choices=TASKS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--report", action="store_true", help="only rebuild CAPABILITY.md's table")
    parser.add_argument("--zero-shot-only", action="store_true",
                        help="measure zero-shot accuracy only (for models too slow to train here)")
    parser.add_argument("--markdown", type=Path, default=HERE / "CAPABILITY.md")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if not args.report:
        from skw2s.data.datasets import resolve_data_dir

        try:
            data_dir = resolve_data_dir(args.data_dir)
        except FileNotFoundError as exc:
            parser.error(str(exc))
        for seed in args.seeds:
            for task in args.tasks:
                for model in args.models:
                    run_cell(task, model, seed, data_dir, args.out, BUDGET, args.zero_shot_only)
    report(args.out, args.markdown)


if __name__ == "__main__":
    main()
