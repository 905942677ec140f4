"""Aggregate per-seed results over seeds and plot them in the style of the paper's figures.

A *run directory* holds one ``seed{N}.json`` per seed, each written by ``skw2s run``: the
pipeline's ``report_`` as records plus the configuration that produced it. This module turns a
set of run directories into one table (mean ± standard error over seeds) and one PNG (bars for
weak / weak ensemble / baseline / ours / ceiling, and the PGR of both students).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from .metrics import mean_sem

logger = logging.getLogger(__name__)

__all__ = [
    "aggregate", "id_ood_table", "load_runs", "plot_rounds", "plot_summary", "rounds_table", "summary_table",
    "write_report",
]

MODEL_ORDER = ["weak_single", "weak_ensemble", "baseline_student", "ensemble_student", "ceiling"]
MODEL_LABELS = {
    "weak_single": "weak (1 learner)",
    "weak_ensemble": "weak ensemble",
    "baseline_student": "student ← 1 weak",
    "ensemble_student": "student ← ensemble (ours)",
    "ceiling": "ceiling (gold)",
}


def load_runs(directories) -> pd.DataFrame:
    """All ``seed*.json`` rows of the given run directories as one long DataFrame."""
    frames = []
    for directory in directories:
        directory = Path(directory)
        files = sorted(directory.glob("seed*.json"))
        if not files:
            raise FileNotFoundError(f"No seed*.json results in {directory}: run `skw2s run` first.")
        for path in files:
            record = json.loads(path.read_text())
            frame = pd.DataFrame(record["report"])
            if "test" not in frame:  # results written before the in-distribution test existed
                frame["test"] = "hard"
            for column in ("accuracy", "token_error", "pgr", "gap"):  # JSON null -> NaN
                frame[column] = pd.to_numeric(frame.get(column, np.nan), errors="coerce").astype(float)
            frame["run"] = record.get("name", directory.name)
            frame["seed"] = record["seed"]
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def aggregate(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard error over seeds of accuracy, token error, PGR and gap, per
    run/test set/model/round."""
    rows = []
    runs = runs.copy()
    if "test" not in runs:
        runs["test"] = "hard"
    if "token_error" not in runs:
        runs["token_error"] = np.nan
    runs = pd.concat([runs, _gains(runs)], ignore_index=True)
    # Rounds split the weak ensemble's per-round rows only. Other models are one row per seed
    # even when early stopping left the seeds with ensembles of different sizes; their
    # ``round`` is then the largest ensemble.
    runs["_round_key"] = np.where(runs.model == "weak_round", runs["round"], -1)
    keys = ["run", "test", "model", "_round_key"]
    for (run, test, model, _), group in runs.groupby(keys, dropna=False, sort=False):
        rnd = group["round"].max()
        row = {"run": run, "test": test, "model": model, "round": rnd, "n_seeds": group.seed.nunique()}
        for column in ("accuracy", "token_error", "pgr", "gap"):
            row[f"{column}_mean"], row[f"{column}_sem"] = mean_sem(group[column])
        rows.append(row)
    return pd.DataFrame(rows)


GAINS = {
    # derived model: (minuend, subtrahend); paired per seed, so the SEM is that of the differences
    "student_gain": ("ensemble_student", "baseline_student"),
    "ensemble_gain": ("weak_ensemble", "weak_single"),
}


def _gains(runs):
    """Per-seed differences the paper reports: ensemble student minus baseline student, and
    weak ensemble minus single weak learner (accuracy and token error)."""
    rows = []
    for (run, test, seed), group in runs.groupby(["run", "test", "seed"], sort=False):
        by_model = group[group.model != "weak_round"].set_index("model")
        for name, (a, b) in GAINS.items():
            if a in by_model.index and b in by_model.index:
                rows.append({
                    "run": run, "test": test, "seed": seed, "model": name, "round": np.nan,
                    "accuracy": by_model.loc[a, "accuracy"] - by_model.loc[b, "accuracy"],
                    "token_error": by_model.loc[a, "token_error"] - by_model.loc[b, "token_error"],
                    "pgr": np.nan, "gap": np.nan,
                })
    return pd.DataFrame(rows, columns=runs.columns) if rows else runs.iloc[:0]


def _hard(agg):
    return agg[agg.test == "hard"] if "test" in agg else agg


def _fmt(mean, sem, digits=3):
    if not np.isfinite(mean):
        return "n/a"
    if not np.isfinite(sem):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {sem:.{digits}f}"


def summary_table(agg: pd.DataFrame) -> pd.DataFrame:
    """One row per run: accuracy of each model and the PGR of both students, as text."""
    rows = []
    for run, group in _hard(agg).groupby("run", sort=False):
        by_model = group[group.model != "weak_round"].set_index("model")
        row = {"run": run, "seeds": int(group.n_seeds.max())}
        for model in MODEL_ORDER:
            if model in by_model.index:
                r = by_model.loc[model]
                row[model] = _fmt(r.accuracy_mean, r.accuracy_sem)
        for model in ("weak_single", "weak_ensemble"):
            if model in by_model.index and np.isfinite(by_model.loc[model].token_error_mean):
                r = by_model.loc[model]
                row[f"{model} token error"] = _fmt(r.token_error_mean, r.token_error_sem)
        for model, name in (("baseline_student", "pgr_baseline"), ("ensemble_student", "pgr_ours")):
            if model in by_model.index:
                r = by_model.loc[model]
                row[name] = _fmt(r.pgr_mean, r.pgr_sem, 2)
        if "ceiling" in by_model.index:
            r = by_model.loc["ceiling"]
            row["gap (ceiling - weak)"] = _fmt(r.gap_mean, r.gap_sem)
        for model, name in (("ensemble_gain", "ensemble - single"), ("student_gain", "ours - baseline")):
            if model in by_model.index:
                r = by_model.loc[model]
                row[name] = _fmt(r.accuracy_mean, r.accuracy_sem)
        rows.append(row)
    table = pd.DataFrame(rows)
    # Token errors (generators only) next to the accuracies they belong to; "–" where a run
    # has none, rather than NaN.
    order = [c for c in table.columns if "token error" not in c]
    for model in ("weak_ensemble", "weak_single"):
        column = f"{model} token error"
        if column in table:
            order.insert(order.index("weak_ensemble") + 1 if "weak_ensemble" in order else len(order), column)
    return table[order].fillna("–")


def rounds_table(agg: pd.DataFrame) -> pd.DataFrame:
    """Every boosting round of the weak ensemble (hard test set): accuracy and, for
    generators, token error, mean ± SEM over seeds. Picking the best of these rounds on the
    test set would be optimistic; this table shows them all."""
    rows = []
    for run, group in _hard(agg).groupby("run", sort=False):
        rounds = group[group.model == "weak_round"].sort_values("round")
        for _, r in rounds.iterrows():
            row = {"run": run, "round": int(r["round"]), "seeds": int(r.n_seeds),
                   "accuracy": _fmt(r.accuracy_mean, r.accuracy_sem)}
            if np.isfinite(r.token_error_mean):
                row["token error"] = _fmt(r.token_error_mean, r.token_error_sem)
            rows.append(row)
    return pd.DataFrame(rows).fillna("–")


def id_ood_table(agg: pd.DataFrame) -> pd.DataFrame:
    """Accuracy of each model on the in-distribution (easy) and out-of-distribution (hard)
    test questions, for the runs that held out easy test rows."""
    rows = []
    if "test" not in agg:
        return pd.DataFrame(rows)
    for run, group in agg.groupby("run", sort=False):
        if "easy" not in set(group.test):
            continue
        for model in MODEL_ORDER:
            row = {"run": run, "model": MODEL_LABELS[model]}
            for test, label in (("easy", "ID (easy)"), ("hard", "OOD (hard)")):
                sel = group[(group.test == test) & (group.model == model)]
                if len(sel):
                    row[label] = _fmt(sel.accuracy_mean.iloc[0], sel.accuracy_sem.iloc[0])
                    if np.isfinite(sel.token_error_mean.iloc[0]):
                        row[f"{label} token error"] = _fmt(sel.token_error_mean.iloc[0], sel.token_error_sem.iloc[0])
            if len(row) > 2:
                rows.append(row)
    return pd.DataFrame(rows).fillna("–")


def _save(fig, path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_rounds(agg: pd.DataFrame, path) -> Path:
    """Accuracy of the weak ensemble after each round (± SEM), one line per run; saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for run, group in _hard(agg).groupby("run", sort=False):
        rounds = group[group.model == "weak_round"].sort_values("round")
        if len(rounds):
            ax.errorbar(rounds["round"], rounds.accuracy_mean, yerr=np.nan_to_num(rounds.accuracy_sem),
                        marker="o", capsize=3, label=run)
    ax.set_xlabel("boosting round")
    ax.set_ylabel("weak ensemble accuracy (hard test)")
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_summary(agg: pd.DataFrame, path) -> Path:
    """Bars of accuracy (± SEM) per model and a PGR panel, one column per run; saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    agg = _hard(agg)
    runs = list(dict.fromkeys(agg.run))
    fig, axes = plt.subplots(2, len(runs), figsize=(4.2 * len(runs), 6.5), squeeze=False)
    colors = ["#9e9e9e", "#616161", "#64b5f6", "#1565c0", "#2e7d32"]
    for col, run in enumerate(runs):
        group = agg[(agg.run == run) & (agg.model != "weak_round")].set_index("model")
        models = [m for m in MODEL_ORDER if m in group.index]
        ax = axes[0, col]
        means = [group.loc[m, "accuracy_mean"] for m in models]
        sems = [np.nan_to_num(group.loc[m, "accuracy_sem"]) for m in models]
        ax.bar(range(len(models)), means, yerr=sems, color=colors[: len(models)], capsize=3)
        ax.set_xticks(range(len(models)), [MODEL_LABELS[m] for m in models], rotation=35, ha="right", fontsize=8)
        low = min(means) - 0.1
        ax.set_ylim(max(0.0, low), min(1.0, max(means) + 0.08))
        ax.set_title(run, fontsize=9)
        ax.set_ylabel("test accuracy (hard questions)")
        ax = axes[1, col]
        students = [m for m in ("baseline_student", "ensemble_student") if m in group.index]
        pgr = [group.loc[m, "pgr_mean"] for m in students]
        pgr_sem = [np.nan_to_num(group.loc[m, "pgr_sem"]) for m in students]
        ax.bar(range(len(students)), np.nan_to_num(pgr), yerr=pgr_sem, color=["#64b5f6", "#1565c0"][: len(students)], capsize=3)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xticks(range(len(students)), [{"baseline_student": "baseline", "ensemble_student": "ours"}[m] for m in students])
        gap = group.gap_mean.dropna()
        ax.set_title(f"PGR (gap ceiling-weak = {gap.iloc[0]:.3f})" if len(gap) else "PGR", fontsize=9)
    return _save(fig, path)


def write_report(run_dirs, out_dir):
    """Aggregate ``run_dirs`` into ``out_dir``: results.csv, summary.csv/.md, results.png, and
    rounds.md / rounds.png (every boosting round) and id_ood.md (when easy test rows exist)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = load_runs(run_dirs)
    agg = aggregate(runs)
    agg.to_csv(out_dir / "results.csv", index=False)
    (out_dir / "results.json").write_text(agg.to_json(orient="records", indent=2))
    summary = summary_table(agg)
    summary.to_csv(out_dir / "summary.csv", index=False)
    (out_dir / "summary.md").write_text(summary.to_markdown(index=False) + "\n")
    plot_summary(agg, out_dir / "results.png")
    rounds = rounds_table(agg)
    if len(rounds):
        (out_dir / "rounds.md").write_text(rounds.to_markdown(index=False) + "\n")
        plot_rounds(agg, out_dir / "rounds.png")
    id_ood = id_ood_table(agg)
    if len(id_ood):
        (out_dir / "id_ood.md").write_text(id_ood.to_markdown(index=False) + "\n")
    sys.stdout.write(summary.to_string(index=False) + "\n")
    sys.stdout.write(f"Wrote {out_dir}/results.csv, summary.md and results.png\n")
    return summary
