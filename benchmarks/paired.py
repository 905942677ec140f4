"""The paired, powered EnsemW2S comparison: run its cells, and rebuild its RESULTS.md tables.

Every cell is a ``skw2s run`` config in ``benchmarks/paired/``. Each writes one
``seed{N}.json`` per seed under ``benchmarks/results/paired/<cell>/``, with every model's
prediction on every test question; stages and boosting rounds are cached under
``benchmarks/results/paired/.cache/`` (not committed), so an interrupted run resumes where it
stopped, and finished seeds are skipped.

Usage::

    python benchmarks/paired.py run --data-dir ../shared/data             # every cell, in order
    python benchmarks/paired.py run --data-dir ../shared/data --only arc-easy-random
    python benchmarks/paired.py report                                   # tables only

``report`` writes ``benchmarks/results/paired/report/`` (the tables of ``skw2s report``, with
``paired.md``) and rewrites the blocks of ``benchmarks/RESULTS.md`` between the markers
``<!-- paired-*:begin -->`` / ``<!-- paired-*:end -->``: the paired intervals (bootstrap and t
on the per-seed differences) and McNemar p-values, one row per weak side and loss, the weak
learners' disagreement, the compute each cell took and would need, one row per seed, and the
cost and results by training path (also ``report/cost_by_path.md``), how closely a cell that
reruns another's design (``REPLICATES``) repeats its answers at the same seeds; and
the ``<!-- methods-*:begin -->`` blocks from the runs under ``benchmarks/results/methods/``
(the standard w2s methods, ``benchmarks/methods/*.yaml``). Nothing in those blocks is typed
by hand. The prose between ``<!-- paired-findings:begin -->`` and
``<!-- paired-findings:end -->`` is, and ``tests/test_paired_script.py`` checks that every
number in it appears in one of these blocks.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CONFIGS = HERE / "paired"
RESULTS = HERE / "results" / "paired"
# the standard w2s methods side by side (benchmarks/methods/)
METHODS = HERE / "results" / "methods"
MARKDOWN = HERE / "RESULTS.md"
CELLS = ["sciq-binary-random", "sciq-binary-easy-hard", "arc-easy-random", "arc-easy-easy-hard",
         "sciq-binary-reweight"]
REPLICATES = [("sciq-binary-random", "sciq-binary-reweight")]
"""Cells that share a design and seed numbers: the second reruns the first's weak sides and
students (it adds a weak side), so the same seed should give the same answers when the code
and versions have not changed in between."""
TARGET = 0.015  # the wider 95% interval of ours - baseline: at most 1.5 points on each side

logger = logging.getLogger("paired")


def run(names, data_dir, configs=CONFIGS):
    """Run the named cells, each to its last seed, in order."""
    from skw2s.experiment import load_config, run_config

    os.chdir(ROOT)  # the configs' output_dir and cache_dir are relative to the repository
    for name in names:
        config = load_config(configs / f"{name}.yaml")
        logger.info("cell %s, seeds %s", name, config["seeds"])
        run_config(config, data_dir=data_dir, verbose=1)


def _dirs(results, names=CELLS):
    return [results / n for n in names if any((results / n).glob("seed*.json"))]


def _md(frame):
    return frame.to_markdown(index=False, floatfmt=".3f") if len(frame) else "(no results yet)"


def _pct(x):
    return f"{100 * x:+.1f}"


def _interval(low, high):
    return f"[{_pct(low)}, {_pct(high)}]"


def paired_block(table):
    """The paired comparisons, in points: the bootstrap and the seed-level t interval side by side.

    ``test`` says which test questions a row scores (``hard``, or ``all`` the test questions of
    a random split). The two intervals answer the same question in two ways: the two-level
    bootstrap (seeds, then questions) and a t interval on the per-seed differences, which sees
    the seed-to-seed spread that a bootstrap over a few seeds underestimates. With one seed
    the t interval is undefined ("1 seed").
    """
    import pandas as pd

    if not len(table):
        return "(no results yet)"
    rows = []
    for _, r in table.iterrows():
        one = not np.isfinite(r.seed_half_width)
        rows.append({
            "cell": r.run, "test": r.test_set, "comparison": r.comparison,
            "diff (points)": _pct(r["diff"]),
            "95% CI, bootstrap": _interval(r.ci_low, r.ci_high),
            "95% CI, t on seeds": ("n/a (1 seed)" if one
                                   else _interval(r.seed_ci_low, r.seed_ci_high)),
            "half-width: bootstrap / t": f"{100 * r.half_width:.1f} / "
                                         + ("n/a" if one else f"{100 * r.seed_half_width:.1f}"),
            "McNemar p": f"{r.p_mcnemar:.3g}",
            "only a / only b": f"{int(r.a_only)} / {int(r.b_only)}",
            "seeds a ahead / b ahead": f"{int(r.seeds_a_ahead)} / {int(r.seeds_b_ahead)}",
            "questions x seeds": f"{int(r.n_questions)} ({int(r.n_seeds)} seeds)",
        })
    # the cells are formatted strings: keep "+2.7" from being read back as a number
    return pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True)


def seeds_needed(half_width, seed_half_width, seed_sd, n_seeds):
    """Whether the target is met on the wider interval, and else how many seeds it would need.

    Parameters
    ----------
    half_width, seed_half_width : float
        Half-widths of the bootstrap and of the t interval on the per-seed differences.
    seed_sd : float
        Standard deviation of the per-seed differences.
    n_seeds : int
        Seeds so far.

    Returns
    -------
    status : str
        ``"met"``, ``"about N"`` or ``"unknown from 1 seed"``: with one seed neither interval
        sees how much a whole seed moves.
    n : int or None
        The seeds needed when not met: the larger of the t extrapolation (the smallest n with
        ``t_{0.975, n-1} * seed_sd / sqrt(n) <= TARGET``) and the bootstrap's, by
        1/sqrt(seeds); None when met or unknown.
    """
    from skw2s.core.stats import seeds_for_half_width

    if n_seeds < 2 or not np.isfinite(seed_half_width):
        return "unknown from 1 seed", None
    if max(half_width, seed_half_width) <= TARGET:
        return "met", None
    by_t = seeds_for_half_width(seed_sd, TARGET) or n_seeds
    by_bootstrap = math.ceil(n_seeds * (half_width / TARGET) ** 2)
    n = max(by_t, by_bootstrap, n_seeds + 1)
    return f"about {n}", n


def compute_block(dirs, table):
    """CPU time per seed and per cell, measured; the target judged on the wider interval.

    ``table`` is the :func:`skw2s.experiment.comparison.paired_table` of ``dirs`` that the main
    block shows, so the half-widths here are the ones printed there. The last column prices the
    seeds still missing at the mean measured CPU time of a seed (the 2 x wall bound where no
    seed of the cell measured it). The CPU time is that of the runs that wrote the seed files:
    the stages they loaded from a cache (an earlier run's), counted in the last column, cost
    nothing there, so a cell with some has cost more than its CPU hours say.
    """
    import pandas as pd

    rows = []
    for d in dirs:
        records = [json.loads(p.read_text()) for p in sorted(d.glob("seed*.json"))]
        seconds = [r["seconds"] for r in records]
        # CPU time where the seed file records it, else the bound 2 cores x wall
        cpu = [r.get("cpu_seconds", 2 * r["seconds"]) for r in records]
        measured = [r["cpu_seconds"] for r in records if "cpu_seconds" in r]
        row = {"cell": d.name, "seeds": len(records),
               "wall hours per seed (2 cores)": f"{np.mean(seconds) / 3600:.2f}",
               "CPU hours": f"{sum(cpu) / 3600:.1f}",
               "CPU time measured": f"{len(measured)} of {len(records)} seeds"}
        main = table[(table.run == d.name) & (table.test == "hard")
                     & (table.comparison == "ours − baseline (students)")]
        if len(main):
            r = main.iloc[0]
            one = not np.isfinite(r.seed_half_width)
            seed_level = "n/a" if one else f"{100 * r.seed_half_width:.1f}"
            row["half-width: bootstrap / t (points)"] = f"{100 * r.half_width:.1f} / {seed_level}"
            status, n = seeds_needed(r.half_width, r.seed_half_width, r.seed_sd, len(records))
            row["±1.5 points, on the wider"] = "not met" if n is not None else status
            row["seeds for ±1.5 points"] = status if n is not None else "–"
            if n is None:
                row["CPU hours for the missing seeds"] = "–"
            elif measured:
                row["CPU hours for the missing seeds"] = (
                    f"about {(n - len(records)) * np.mean(measured) / 3600:.1f}")
            else:
                row["CPU hours for the missing seeds"] = (
                    f"at most {(n - len(records)) * np.mean(cpu) / 3600:.1f} (2 x wall)")
        stages = [s for r in records for s in r.get("stages") or []]
        row["stages loaded from a cache"] = (
            f"{sum(bool(s.get('cached')) for s in stages)} of {len(stages)}" if stages else "–")
        rows.append(row)
    if not rows:
        return "(no results yet)"
    return pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True)


def training_path(record):
    """``"fast"`` for a seed trained on the fast paths of issue 26, else ``"plain"``.

    Answer-only logits, length-grouped batches and choice training that reads each prompt once
    came with the per-stage training records (``useful_flops``, ``train_seconds``), so a seed
    file that has them was trained on those paths; the seed files name no path themselves.
    """
    return "fast" if "useful_flops" in record else "plain"


def cost_block(dirs):
    """Cost and results by training path, for every cell with seeds on both paths.

    One row per cell and path: each seed's measured CPU seconds, the mean CPU and wall hours per
    seed and their ratio to the plain path's, the students' hard-test accuracy (mean ± SEM over
    seeds) with ours − baseline, and each seed's training efficiency where its file records it
    (useful FLOPs / (training seconds x the matmul rate timed in that run, also shown)). The fast
    row adds the change in ours − baseline against the plain seeds, with a Welch 95% t interval
    over the two groups' per-seed differences: whether the cheaper training moved the result
    beyond seed-to-seed noise.
    """
    import pandas as pd
    from scipy.stats import ttest_ind

    from skw2s.metrics import mean_sem

    def sem(x):
        return mean_sem(x)[1]

    rows = []
    for d in dirs:
        groups = {}
        for path in sorted(d.glob("seed*.json"), key=lambda p: int(p.stem[4:])):
            record = json.loads(path.read_text())
            p = record["predictions"]["hard"]
            y, models = np.asarray(p["y"]), p["models"]
            loss = next(n.split("/")[2] for n in models if n.startswith("ours/ensemble_student/"))
            ours = np.mean(np.asarray(models[f"ours/ensemble_student/{loss}"]) == y)
            base = np.mean(np.asarray(models[f"ours/baseline_student/{loss}"]) == y)
            groups.setdefault(training_path(record), []).append(
                (record.get("cpu_seconds"), record["seconds"], ours, base,
                 record.get("efficiency"), record.get("matmul_flops_per_second")))
        if len(groups) < 2 or any(c is None for g in groups.values() for c, *_ in g):
            continue  # one path only, or a seed without measured CPU time: nothing to compare
        plain = np.array(groups["plain"], dtype=float)
        for name in ("plain", "fast"):
            g = np.array(groups[name], dtype=float)
            cpu, wall, ours, base, efficiency, rate = g.T
            diff = 100 * (ours - base)
            row = {"cell": d.name, "training path": name, "seeds": str(len(g)),
                   "CPU seconds per seed": ", ".join(f"{c:.0f}" for c in cpu),
                   "CPU hours per seed": f"{cpu.mean() / 3600:.2f}",
                   "CPU vs plain": f"{cpu.mean() / plain[:, 0].mean():.2f}",
                   "wall hours per seed": f"{wall.mean() / 3600:.2f}",
                   "wall vs plain": f"{wall.mean() / plain[:, 1].mean():.2f}",
                   "ours (students)": f"{ours.mean():.3f} ± {sem(ours):.3f}",
                   "baseline (students)": f"{base.mean():.3f} ± {sem(base):.3f}",
                   "ours − baseline (points)": f"{_pct(diff.mean() / 100)} ± {sem(diff):.1f}",
                   "training efficiency per seed (matmul rate)": "–" if np.isnan(efficiency).all()
                   else ", ".join(f"{e:.2f}" for e in efficiency)
                   + f" ({', '.join(sorted({f'{r / 1e9:.0f}' for r in rate}))} GFLOP/s)",
                   "change vs plain, Welch 95% CI": "–"}
            if name == "fast":
                before = 100 * (plain[:, 2] - plain[:, 3])
                ci = ttest_ind(diff, before, equal_var=False).confidence_interval(0.95)
                row["change vs plain, Welch 95% CI"] = (
                    f"{_pct((diff.mean() - before.mean()) / 100)} "
                    f"{_interval(ci.low / 100, ci.high / 100)}")
            rows.append(row)
    if not rows:
        return "(no cell has seeds on both training paths)"
    return pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True)


def _accuracies(answers, y):
    return ", ".join(f"{np.mean(np.asarray(a) == y):.3f}" for a in answers) or "–"


def _alphas(rounds):
    """The kept rounds' alphas, and each rejected round with its weighted error."""
    kept = [f"{r['alpha']:.2f}" for r in rounds if r.get("alpha") is not None]
    rejected = [f"round {r['round']} rejected (error {r['error']:.2f})" for r in rounds
                if r.get("alpha") is None]
    return "; ".join([", ".join(kept)] + rejected)


def seeds_block(dirs):
    """One row per seed: what the findings cite seed by seed, read from the seed files.

    The test questions, ours − baseline, AdaBoost's alphas (and its rejected rounds), the
    accuracy of each AdaBoost round and uniform member alone where the seed file keeps their
    answers (``members``), the weak ensemble, the ceiling, and the wall and CPU hours.
    """
    import pandas as pd

    rows = []
    for d in dirs:
        for path in sorted(d.glob("seed*.json"), key=lambda p: int(p.stem[4:])):
            record = json.loads(path.read_text())
            p = record["predictions"]["hard"]
            y, models, members = np.asarray(p["y"]), p["models"], p.get("members") or {}
            loss = next(n.split("/")[2] for n in models if n.startswith("ours/ensemble_student/"))

            def acc(name):
                return np.mean(np.asarray(models[name]) == y)

            cpu = record.get("cpu_seconds")
            rows.append({
                "cell": d.name, "seed": str(record["seed"]), "test questions": str(len(y)),
                "ours − baseline (points)": _pct(acc(f"ours/ensemble_student/{loss}")
                                                 - acc(f"ours/baseline_student/{loss}")),
                "AdaBoost alphas": _alphas(record["weak_rounds"]),
                "AdaBoost rounds alone": _accuracies(members.get("ours", []), y),
                "uniform members alone": _accuracies(members.get("uniform", []), y),
                "weak ensemble": f"{acc('ours/weak_ensemble/-'):.3f}",
                "ceiling": f"{acc('ours/ceiling/-'):.3f}",
                "wall hours": f"{record['seconds'] / 3600:.2f}",
                "CPU hours": (f"{cpu / 3600:.2f}" if cpu is not None
                              else f"{2 * record['seconds'] / 3600:.2f} (2 x wall)"),
            })
    if not rows:
        return "(no results yet)"
    return pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True)


def _mean_sem(x):
    from skw2s.metrics import mean_sem

    return "{:.3f} ± {:.3f}".format(*mean_sem(x))


def replication_block(results, pairs=REPLICATES):
    """Whether a cell that reruns another's design gives the same answers at the same seed.

    One row per model the two cells share: over the seeds both ran, the fraction of test
    questions on which the two runs answer the same (mean, lowest and highest seed), each run's
    accuracy (mean ± SEM over those seeds), and the training paths and transformers versions the
    seed files record. Identical runs agree on every question; a change of code or versions in
    between shows up as agreement below 1.
    """
    import pandas as pd

    rows = []
    for first, second in pairs:
        seeds = sorted({int(p.stem[4:]) for p in (results / first).glob("seed*.json")}
                       & {int(p.stem[4:]) for p in (results / second).glob("seed*.json")})
        if not seeds:
            continue
        records = [(json.loads((results / first / f"seed{s}.json").read_text()),
                    json.loads((results / second / f"seed{s}.json").read_text())) for s in seeds]
        a0, b0 = (r["predictions"]["hard"]["models"] for r in records[0])
        for model in [m for m in a0 if m in b0]:
            agree, acc_a, acc_b = [], [], []
            for a, b in records:
                pa, pb = a["predictions"]["hard"], b["predictions"]["hard"]
                if pa["ids"] != pb["ids"]:
                    raise ValueError(f"{first} and {second} scored different test questions at "
                                     f"seed {a['seed']}: they are not reruns of one design")
                y = np.asarray(pa["y"])
                xa, xb = np.asarray(pa["models"][model]), np.asarray(pb["models"][model])
                agree.append(np.mean(xa == xb))
                acc_a.append(np.mean(xa == y))
                acc_b.append(np.mean(xb == y))

            rows.append({
                "cells": f"{first} / {second}", "model": model, "seeds": str(len(seeds)),
                "same answers (mean, lowest-highest)":
                    f"{np.mean(agree):.3f} ({min(agree):.3f}-{max(agree):.3f})",
                "accuracy, first cell / second cell": f"{_mean_sem(acc_a)} / {_mean_sem(acc_b)}",
                "training paths": " / ".join(
                    ", ".join(sorted({training_path(r[i]) for r in records})) for i in (0, 1)),
                "transformers": " / ".join(
                    ", ".join(sorted({r[i]["versions"].get("transformers", "?") for r in records}))
                    for i in (0, 1)),
            })
    if not rows:
        return "(no cells share seeds)"
    return pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True)


def _replace_block(text, name, block):
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    if begin not in text or end not in text:
        return text + f"\n{begin}\n{block}\n{end}\n"
    return text[: text.index(begin) + len(begin)] + "\n" + block + "\n" + text[text.index(end):]


def report(markdown=MARKDOWN, results=RESULTS, methods=METHODS):
    """Rebuild ``results/paired/report/``, the paired blocks of RESULTS.md and its methods blocks.

    The methods blocks (``methods-main``, ``methods-rows``, ``methods-compute``,
    ``methods-diagnostics``) come from the runs under
    ``methods`` (``skw2s run benchmarks/methods/<name>.yaml``), read the same way.
    """
    from skw2s.experiment.comparison import (
        comparison_table,
        diagnostics_table,
        disagreement_table,
        paired_table,
    )
    from skw2s.experiment.report import write_report

    dirs = _dirs(results)
    if not dirs:
        raise SystemExit(
            f"No results under {results}: run `python benchmarks/paired.py run` first.")
    write_report(dirs, results / "report")
    table = paired_table(dirs)
    blocks = {
        "paired-main": paired_block(table),
        "paired-rows": _md(comparison_table(dirs)),
        "paired-disagreement": _md(disagreement_table(dirs)),
        "paired-compute": compute_block(dirs, table),
        "paired-seeds": seeds_block(dirs),
        "paired-cost": cost_block(dirs),
        "paired-replication": replication_block(results),
    }
    (results / "report" / "cost_by_path.md").write_text(blocks["paired-cost"] + "\n")
    method_dirs = (_dirs(methods, sorted(p.name for p in methods.iterdir())) if methods.is_dir()
                   else [])
    if method_dirs:
        method_table = paired_table(method_dirs)
        blocks["methods-main"] = paired_block(method_table)
        blocks["methods-rows"] = _md(comparison_table(method_dirs))
        blocks["methods-compute"] = compute_block(method_dirs, method_table)
        blocks["methods-diagnostics"] = _md(diagnostics_table(method_dirs))
    text = markdown.read_text() if markdown.exists() else "# Results\n"
    for name, block in blocks.items():
        text = _replace_block(text, name, block)
    markdown.write_text(text)
    logger.info("Rewrote the paired blocks of %s", markdown)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the cells (resumable)")
    r.add_argument("--data-dir", default=os.environ.get("SKW2S_DATA_DIR"))
    r.add_argument("--only", nargs="+", choices=CELLS, help=f"default: {' '.join(CELLS)}")
    sub.add_parser("report", help="rebuild the tables")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "run":
        from skw2s.data.datasets import resolve_data_dir

        run(args.only or CELLS, str(Path(resolve_data_dir(args.data_dir)).resolve()))
    else:
        report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
