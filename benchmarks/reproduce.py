"""Reproduce the paper's experiments on the offline models, and rebuild RESULTS.md from them.

Every cell is a ``skw2s run`` config in ``benchmarks/reproduce/`` (the main cells) and
``benchmarks/reproduce/ablations/`` (the ablations, on ARC-Easy). Each writes one
``seed{N}.json`` per seed under ``benchmarks/results/reproduce/``; stages and boosting rounds
are cached under ``benchmarks/results/reproduce/.cache/`` (shared by all cells, not committed),
so an interrupted run resumes where it stopped, and finished seeds are skipped.

Usage::

    python benchmarks/reproduce.py run --data-dir ../shared/data            # every cell, every seed
    python benchmarks/reproduce.py run --data-dir ../shared/data --seeds 0  # one seed of each first
    python benchmarks/reproduce.py run --only arc-easy-random quartz-random
    python benchmarks/reproduce.py report                                  # tables and plots only

``report`` aggregates every ``seed*.json`` (the same code as ``skw2s report``) into
``benchmarks/results/reproduce/report/`` and rewrites the tables of ``benchmarks/RESULTS.md``
between its ``<!-- name:begin -->`` / ``<!-- name:end -->`` markers. Nothing in those tables is
typed by hand.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CONFIGS = HERE / "reproduce"
RESULTS = HERE / "results" / "reproduce"
MARKDOWN = HERE / "RESULTS.md"
MAIN = ["sciq-binary-random", "sciq-binary-easy-hard", "sciq-binary-scores-random",
        "sciq-binary-scores-easy-hard",
        "arc-easy-random", "arc-easy-easy-hard",
        "quartz-random", "quartz-easy-hard"]
# The paper's ablations on ARC-Easy change the boosting settings only; the weak-side variants
# of our own change the weak learner, and keep their baseline student (its first weak learner
# differs too).
WEAK_VARIANTS = ["arc-easy-random-full"]
ABLATIONS = ["arc-easy-random-logit", "arc-easy-random-window2", "arc-easy-random-window4",
             "arc-easy-random-sample"] + WEAK_VARIANTS

logger = logging.getLogger("reproduce")


def config_path(name, configs=CONFIGS):
    for path in (configs / f"{name}.yaml", configs / "ablations" / f"{name}.yaml"):
        if path.exists():
            return path
    raise SystemExit(f"No config named {name!r} in {configs} or {configs / 'ablations'}.")


def run(names, seeds, data_dir, configs=CONFIGS):
    """Run the named cells; with ``seeds``, one seed of every cell before the next seed."""
    from skw2s.experiment import load_config, run_config

    os.chdir(ROOT)  # the configs' output_dir and cache_dir are relative to the repository
    for seed_group in ([[s] for s in seeds] if seeds else [None]):
        for name in names:
            config = load_config(config_path(name, configs))
            logger.info("cell %s, seeds %s", name, seed_group or config["seeds"])
            run_config(config, data_dir=data_dir, seeds=seed_group)


def _run_dirs(names, results):
    dirs = []
    for name in names:
        directory = results / ("ablations" if name in ABLATIONS else "") / name
        if any(directory.glob("seed*.json")):
            dirs.append(directory)
    return dirs


def _replace_block(text, name, block):
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    if begin not in text or end not in text:
        return text + f"\n{begin}\n{block}\n{end}\n"
    return text[: text.index(begin) + len(begin)] + "\n" + block + "\n" + text[text.index(end):]


# The paper's claims (arXiv 2410.04571, and the token-level version 2505.21959), quoted; the
# measured side of the comparison is computed from the runs.
PAPER = {
    "sciq-binary": "student vs. baseline student: +5% on average, up to +14% (binary SciQ)",
    "quartz": "student vs. baseline student: +3.3% on average (easy-hard split)",
    "arc-easy": "student vs. baseline student: +4.4% on average (easy-hard split)",
}


def _mean_sem_text(values, sign=False):
    """``mean ± SEM`` of per-seed values as text (no ± with one seed); ``sign`` adds a "+"."""
    import numpy as np

    from skw2s.core.metrics import mean_sem

    mean, sem = mean_sem(values)
    text = f"{mean:+.3f}" if sign else f"{mean:.3f}"
    return f"{text} ± {sem:.3f}" if np.isfinite(sem) else text


def _paper_table(runs):
    """Measured 'ours - baseline' and how often the student beat the ceiling, per cell."""
    import pandas as pd

    rows = []
    hard = runs[runs.test == "hard"]
    for run, group in hard.groupby("run", sort=False):
        by_seed = group[group.model != "weak_round"].pivot_table(index="seed", columns="model",
                                                                 values="accuracy")
        if not {"ensemble_student", "baseline_student", "ceiling"} <= set(by_seed.columns):
            continue
        diff = by_seed.ensemble_student - by_seed.baseline_student
        claim = next((v for k, v in PAPER.items() if run.startswith(k)), "")
        rows.append({
            "cell": run,
            "paper": claim,
            "measured: ours - baseline": _mean_sem_text(diff, sign=True),
            "seeds with ours > baseline": f"{int((diff > 0).sum())} of {len(diff)}",
            "seeds with ours > ceiling":
                f"{int((by_seed.ensemble_student > by_seed.ceiling).sum())} of {len(diff)}",
            "gap (ceiling - weak)": _mean_sem_text(by_seed.ceiling - by_seed.weak_single),
        })
    return pd.DataFrame(rows)


def _ablation_deltas(runs, default="arc-easy-random"):
    """Each ablation minus the default cell, paired on the seeds both finished (they share the
    split, so the split's seed-to-seed noise cancels): weak ensemble accuracy and token error,
    and the accuracy of the student taught by the ensemble."""
    import pandas as pd

    hard = runs[(runs.test == "hard") & (runs.model != "weak_round")]
    values = {"weak ensemble": ("weak_ensemble", "accuracy"),
              "weak ensemble token error": ("weak_ensemble", "token_error"),
              "ensemble student": ("ensemble_student", "accuracy")}
    tables = {name: hard[hard.model == model].pivot_table(index="seed", columns="run",
                                                          values=column)
              for name, (model, column) in values.items()}
    rows = []
    for run in dict.fromkeys(hard.run):
        if run == default:
            continue
        row = {"ablation": run}
        for name, table in tables.items():
            if run not in table or default not in table:
                continue
            diff = (table[run] - table[default]).dropna()
            row["common seeds"] = len(diff)
            row[f"{name}: ablation - default"] = _mean_sem_text(diff, sign=True)
        rows.append(row)
    return pd.DataFrame(rows).fillna("–")


def _versions(dirs):
    """Machine and package versions recorded in the seed files, one line per distinct set."""
    import json

    seen = {}
    for directory in dirs:
        for path in sorted(directory.glob("seed*.json")):
            versions = json.loads(path.read_text()).get("versions", {})
            seen.setdefault(json.dumps(versions, sort_keys=True), []).append(path.parent.name)
    lines = []
    for key, names in seen.items():
        versions = json.loads(key)
        lines.append("- " + ", ".join(f"{k} {v}" for k, v in versions.items())
                     + f" ({len(names)} seed files: {', '.join(sorted(set(names)))})")
    return "\n".join(lines) or "(no finished seeds yet)"


def _md(frame):
    return frame.to_markdown(index=False) if len(frame) else "(no finished seeds yet)"


def report(markdown=MARKDOWN, results=RESULTS):
    """Rebuild the plots under ``results/report`` and the tables of ``markdown``."""
    from skw2s.experiment.report import write_report
    from skw2s.experiment.report import (aggregate, id_ood_table, load_runs, rounds_table,
                                         summary_table)

    out = results / "report"
    text = markdown.read_text() if markdown.exists() else "# Results\n"
    blocks = {}
    main_dirs, ablation_dirs = _run_dirs(MAIN, results), _run_dirs(ABLATIONS, results)
    if main_dirs:
        write_report(main_dirs, out / "main")
        agg = aggregate(load_runs(main_dirs))
        blocks["main"] = _md(summary_table(agg))
        blocks["rounds"] = _md(rounds_table(agg))
        blocks["id-ood"] = _md(id_ood_table(agg))
        blocks["paper"] = _md(_paper_table(load_runs(main_dirs)))
    if ablation_dirs:
        base = _run_dirs(["arc-easy-random"], results)
        write_report(base + ablation_dirs, out / "ablations")
        agg = aggregate(load_runs(base + ablation_dirs))
        table = summary_table(agg)
        keep = [c for c in ["run", "seeds", "weak_single", "weak_ensemble",
                            "weak_ensemble token error", "baseline_student", "ensemble_student",
                            "ceiling", "pgr_ours", "ensemble - single", "ours - baseline"]
                if c in table]
        blocks["ablations"] = _md(table[keep])
        blocks["ablation-deltas"] = _md(_ablation_deltas(load_runs(base + ablation_dirs)))
        blocks["ablation-rounds"] = _md(rounds_table(agg))
    if main_dirs or ablation_dirs:
        blocks["versions"] = _versions(main_dirs + ablation_dirs)
    for name, block in blocks.items():
        text = _replace_block(text, name, block)
    markdown.write_text(text)
    sys.stdout.write(f"Rebuilt {', '.join(blocks) or 'nothing'} in {markdown} and plots in {out}\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run cells (resumable), then rebuild the report")
    r.add_argument("--data-dir", help="the folder holding sciq/, quartz/, arc_easy/; "
                                      "default: SKW2S_DATA_DIR")
    r.add_argument("--only", nargs="+", help=f"cell names; default: {' '.join(MAIN + ABLATIONS)}")
    r.add_argument("--seeds", nargs="+", type=int,
                   help="run these seeds, each over all cells first")
    r.add_argument("--no-report", action="store_true")
    sub.add_parser("report", help="rebuild RESULTS.md's tables and the plots from the raw JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "run":
        from skw2s.data.datasets import resolve_data_dir

        try:
            data_dir = resolve_data_dir(args.data_dir)
        except FileNotFoundError as exc:
            parser.error(str(exc))
        run(args.only or MAIN + ABLATIONS, args.seeds, str(data_dir.resolve()))
        if args.no_report:
            return
    report()


if __name__ == "__main__":
    main()
