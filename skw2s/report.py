"""Aggregate per-seed results over seeds and plot them in the style of the paper's figures.

A *run directory* holds one ``seed{N}.json`` per seed, each written by ``skw2s run``: the
pipeline's ``report_`` as records plus the configuration that produced it. This module turns a
set of run directories into one table (mean ± standard error over seeds) and one PNG (bars for
weak / weak ensemble / baseline / ours / ceiling, and the PGR of both students).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .metrics import mean_sem

logger = logging.getLogger(__name__)

__all__ = ["aggregate", "load_runs", "plot_summary", "summary_table"]

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
            frame["run"] = record.get("name", directory.name)
            frame["seed"] = record["seed"]
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def aggregate(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard error over seeds of accuracy, PGR and gap, per run/model/round."""
    rows = []
    keys = ["run", "model", "round"]
    for (run, model, rnd), group in runs.groupby(keys, dropna=False, sort=False):
        row = {"run": run, "model": model, "round": rnd, "n_seeds": group.seed.nunique()}
        for column in ("accuracy", "pgr", "gap"):
            row[f"{column}_mean"], row[f"{column}_sem"] = mean_sem(group[column])
        rows.append(row)
    return pd.DataFrame(rows)


def _fmt(mean, sem, digits=3):
    if not np.isfinite(mean):
        return "n/a"
    if not np.isfinite(sem):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {sem:.{digits}f}"


def summary_table(agg: pd.DataFrame) -> pd.DataFrame:
    """One row per run: accuracy of each model and the PGR of both students, as text."""
    rows = []
    for run, group in agg.groupby("run", sort=False):
        by_model = group[group.model != "weak_round"].set_index("model")
        row = {"run": run, "seeds": int(group.n_seeds.max())}
        for model in MODEL_ORDER:
            if model in by_model.index:
                r = by_model.loc[model]
                row[model] = _fmt(r.accuracy_mean, r.accuracy_sem)
        for model, name in (("baseline_student", "pgr_baseline"), ("ensemble_student", "pgr_ours")):
            if model in by_model.index:
                r = by_model.loc[model]
                row[name] = _fmt(r.pgr_mean, r.pgr_sem, 2)
        if "ceiling" in by_model.index:
            r = by_model.loc["ceiling"]
            row["gap (ceiling - weak)"] = _fmt(r.gap_mean, r.gap_sem)
        rows.append(row)
    return pd.DataFrame(rows)


def plot_summary(agg: pd.DataFrame, path) -> Path:
    """Bars of accuracy (± SEM) per model and a PGR panel, one column per run; saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
        ax.set_xticks(range(len(students)), ["baseline", "ours"])
        gap = group.gap_mean.dropna()
        ax.set_title(f"PGR (gap ceiling-weak = {gap.iloc[0]:.3f})" if len(gap) else "PGR", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
