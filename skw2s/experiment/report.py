"""Aggregate per-seed results over seeds and plot them in the style of the paper's figures.

A *run directory* holds one ``seed{N}.json`` per seed, each written by ``skw2s run``: the
pipeline's ``report_`` as records plus the configuration that produced it. This module finds
the run directories in or below a folder (:func:`find_run_dirs`) and turns them into tables
(mean ± standard error of the mean, SEM, over seeds) and PNGs (bars for weak / weak ensemble /
baseline / ours / ceiling, the PGR of both students, and every boosting round);
:func:`write_report` writes them all.

The tables and plots flag what makes a number mean little (:func:`noise_warnings`): a weak or
ceiling model within noise of chance (the plots draw the chance line), and a gap (ceiling −
weak) within noise of zero, which makes PGR a ratio of noise. A run with one seed gets no error
bars: one seed has no spread to show.

The pipeline's two test sets are called ``hard`` and ``easy`` in the data. They are the
out-of-distribution (hard) and in-distribution (easy) questions only for an easy-hard split;
for a random split (the ``split_kind`` of the config each seed file holds) both are random
held-out rows of the student's and the weak side's halves, and tables and plots say so.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.metrics import mean_sem
from ..w2s.names import (
    BASELINE_STUDENT,
    CEILING,
    ENSEMBLE_STUDENT,
    MAIN,
    WEAK_ENSEMBLE,
    WEAK_ROUND,
    WEAK_SINGLE,
)
from ..w2s.names import MODEL_ORDER as _MODEL_ORDER
from .runs import (  # noqa: F401 - public here as before
    CHANCE_OPTIONS,
    TEST_LABELS,
    _test_labels,
    find_run_dirs,
    load_runs,
    run_names,
    test_set_label,
)

logger = logging.getLogger(__name__)

__all__ = [
    "aggregate", "find_run_dirs", "id_ood_table", "load_runs", "noise_warnings", "plot_rounds",
    "plot_summary", "rounds_table", "run_names", "summary_table", "test_set_label", "write_report",
]

MODEL_ORDER = list(_MODEL_ORDER)
MODEL_LABELS = {
    WEAK_SINGLE: "weak (1 learner)",
    WEAK_ENSEMBLE: "weak ensemble",
    BASELINE_STUDENT: "student ← 1 weak",
    ENSEMBLE_STUDENT: "student ← ensemble (ours)",
    CEILING: "ceiling (gold)",
}


SEM_NOTE = "error bars: ± 1 SEM (standard error of the mean over seeds); none for one seed"
NOISE_SE = 2.0
""""Within noise": less than this many standard errors (:func:`noise_warnings`)."""


def aggregate(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard error over seeds of accuracy, token error, PGR and gap, per
    run/test set/model/round (and the run's ``split_kind``, None when unknown; its ``chance``
    level and mean ``n_test`` where ``runs`` has them, else NaN)."""
    rows = []
    runs = runs.copy()
    if "test" not in runs:
        runs["test"] = "hard"
    if "token_error" not in runs:
        runs["token_error"] = np.nan
    split_kinds = (runs.groupby("run", sort=False)["split_kind"].first() if "split_kind" in runs
                   else {})
    runs = pd.concat([runs, _gains(runs)], ignore_index=True)
    # Rounds split the weak ensemble's per-round rows only. Other models are one row per seed
    # even when early stopping left the seeds with ensembles of different sizes; their
    # ``round`` is then the largest ensemble.
    runs["_round_key"] = np.where(runs.model == WEAK_ROUND, runs["round"], -1)
    keys = ["run", "test", "model", "_round_key"]
    for (run, test, model, _), group in runs.groupby(keys, dropna=False, sort=False):
        rnd = group["round"].max()
        row = {"run": run, "test": test, "model": model, "round": rnd,
               "n_seeds": group.seed.nunique(), "split_kind": split_kinds.get(run)}
        for column in ("chance", "n_test"):
            values = group[column].dropna() if column in group else ()
            row[column] = float(np.mean(values)) if len(values) else np.nan
        for column in ("accuracy", "token_error", "pgr", "gap"):
            row[f"{column}_mean"], row[f"{column}_sem"] = mean_sem(group[column])
        rows.append(row)
    return pd.DataFrame(rows)


GAINS = {
    # derived model: (minuend, subtrahend); paired per seed, so the SEM is that of the differences
    "student_gain": (ENSEMBLE_STUDENT, BASELINE_STUDENT),
    "ensemble_gain": (WEAK_ENSEMBLE, WEAK_SINGLE),
}


def _gains(runs):
    """Per-seed differences the paper reports: ensemble student minus baseline student, and
    weak ensemble minus single weak learner (accuracy and token error)."""
    rows = []
    for (run, test, seed), group in runs.groupby(["run", "test", "seed"], sort=False):
        by_model = group[group.model != WEAK_ROUND].set_index("model")
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


def _noise(mean, sem, n_seeds, binomial):
    """A standard error for ``mean``: the larger of the SEM over seeds (two or more) and the
    binomial one of one seed's questions, which the SEM of paired seeds leaves out."""
    values = [v for v in (sem if n_seeds >= 2 else np.nan, binomial) if np.isfinite(v)]
    return max(values) if values else np.nan


def _binomial(accuracies, n_test):
    if not np.isfinite(n_test) or n_test <= 0:
        return np.nan
    return math.sqrt(sum(a * (1 - a) for a in accuracies) / n_test)


def _gap_noise(by_model):
    """``(gap, its standard error)`` of a run's hard test rows, or None without a ceiling."""
    if CEILING not in by_model.index or WEAK_SINGLE not in by_model.index:
        return None
    ceiling, weak = by_model.loc[CEILING], by_model.loc[WEAK_SINGLE]
    binomial = _binomial((ceiling.accuracy_mean, weak.accuracy_mean), ceiling.n_test)
    return ceiling.gap_mean, _noise(ceiling.gap_mean, ceiling.gap_sem, ceiling.n_seeds, binomial)


def _gap_in_noise(by_model):
    gap = _gap_noise(by_model)
    return gap is not None and np.isfinite(gap[0]) and gap[0] < NOISE_SE * np.nan_to_num(gap[1])


def noise_warnings(agg: pd.DataFrame) -> list:
    """What makes a run's numbers mean little, one line each, on the hard test set.

    Parameters
    ----------
    agg : pandas.DataFrame
        Output of :func:`aggregate`.

    Returns
    -------
    warnings : list of str
        A line for each weak model (one learner, ensemble) or ceiling whose accuracy is below
        chance or within ``NOISE_SE`` (2) standard errors above it, and for each gap (ceiling −
        single weak learner) within 2 standard errors of zero, where PGR is a ratio of noise.
        The standard error is the larger of the SEM over seeds (two or more seeds) and the
        binomial standard error of one seed's test questions.
    """
    lines = []
    for run, group in _hard(agg).groupby("run", sort=False):
        by_model = group[group.model != WEAK_ROUND].set_index("model")
        chance = group.chance.dropna() if "chance" in group else ()
        for model in (WEAK_SINGLE, WEAK_ENSEMBLE, CEILING):
            if not len(chance) or model not in by_model.index:
                continue
            r, level = by_model.loc[model], float(chance.iloc[0])
            se = _noise(r.accuracy_mean, r.accuracy_sem, r.n_seeds, _binomial([level], r.n_test))
            if r.accuracy_mean < level + NOISE_SE * np.nan_to_num(se):
                what = ("the strong model does not learn the task, so there is no gap to recover"
                        if model == CEILING else "its labels are no better than a guess")
                where = ("below" if r.accuracy_mean <= level
                         else f"within {NOISE_SE:g} standard errors ({se:.3f}) of")
                lines.append(f"{run}: {MODEL_LABELS[model]} scores {r.accuracy_mean:.3f}, {where} "
                             f"chance ({level:.3f}): {what}.")
        gap = _gap_noise(by_model)
        if _gap_in_noise(by_model):
            lines.append(
                f"{run}: the gap (ceiling − weak) is {gap[0]:.3f} with a standard error of "
                f"{gap[1]:.3f}, within {NOISE_SE:g} standard errors of zero: PGR, a ratio over it, "
                "is noise.")
    return lines


def summary_table(agg: pd.DataFrame) -> pd.DataFrame:
    """One row per run: accuracy of each model and the PGR of both students, as text.

    A PGR whose gap is within noise of zero (:func:`noise_warnings`) is followed by
    ``(gap in noise)``.
    """
    rows = []
    for run, group in _hard(agg).groupby("run", sort=False):
        by_model = group[group.model != WEAK_ROUND].set_index("model")
        row = {"run": run, "seeds": int(group.n_seeds.max())}
        for model in MODEL_ORDER:
            if model in by_model.index:
                r = by_model.loc[model]
                row[model] = _fmt(r.accuracy_mean, r.accuracy_sem)
        for model in (WEAK_SINGLE, WEAK_ENSEMBLE):
            if model in by_model.index and np.isfinite(by_model.loc[model].token_error_mean):
                r = by_model.loc[model]
                row[f"{model} token error"] = _fmt(r.token_error_mean, r.token_error_sem)
        for model, name in ((BASELINE_STUDENT, "pgr_baseline"), (ENSEMBLE_STUDENT, "pgr_ours")):
            if model in by_model.index:
                r = by_model.loc[model]
                row[name] = _fmt(r.pgr_mean, r.pgr_sem, 2)
                if _gap_in_noise(by_model) and np.isfinite(r.pgr_mean):
                    row[name] += " (gap in noise)"
        if CEILING in by_model.index:
            r = by_model.loc[CEILING]
            row["gap (ceiling - weak)"] = _fmt(r.gap_mean, r.gap_sem)
        for model, name in (("ensemble_gain", "ensemble - single"),
                            ("student_gain", "ours - baseline")):
            if model in by_model.index:
                r = by_model.loc[model]
                row[name] = _fmt(r.accuracy_mean, r.accuracy_sem)
        rows.append(row)
    table = pd.DataFrame(rows)
    # Token errors (generators only) next to the accuracies they belong to; "–" where a run
    # has none, rather than NaN.
    order = [c for c in table.columns if "token error" not in c]
    for model in (WEAK_ENSEMBLE, WEAK_SINGLE):
        column = f"{model} token error"
        if column in table:
            order.insert(order.index(WEAK_ENSEMBLE) + 1 if WEAK_ENSEMBLE in order else len(order),
                         column)
    return table[order].fillna("–")


def rounds_table(agg: pd.DataFrame) -> pd.DataFrame:
    """Every boosting round of the weak ensemble (hard test set): accuracy and, for
    generators, token error, mean ± SEM over seeds. Picking the best of these rounds on the
    test set would be optimistic; this table shows them all."""
    rows = []
    for run, group in _hard(agg).groupby("run", sort=False):
        rounds = group[group.model == WEAK_ROUND].sort_values("round")
        for _, r in rounds.iterrows():
            row = {"run": run, "round": int(r["round"]), "seeds": int(r.n_seeds),
                   "accuracy": _fmt(r.accuracy_mean, r.accuracy_sem)}
            if np.isfinite(r.token_error_mean):
                row["token error"] = _fmt(r.token_error_mean, r.token_error_sem)
            rows.append(row)
    return pd.DataFrame(rows).fillna("–")


def id_ood_table(agg: pd.DataFrame) -> pd.DataFrame:
    """Accuracy of each model on both test sets, for the runs that held out easy test rows.

    For an easy-hard split the columns are ``ID (easy)`` and ``OOD (hard)``; for a random split
    (or an unknown one) they are ``weak-side test`` and ``student-side test``, since both are
    random held-out rows, neither easy nor out of distribution.
    """
    rows = []
    if "test" not in agg:
        return pd.DataFrame(rows)
    for run, group in agg.groupby("run", sort=False):
        if "easy" not in set(group.test):
            continue
        labels = _test_labels(group.split_kind.iloc[0] if "split_kind" in group else None)
        for model in MODEL_ORDER:
            row = {"run": run, "model": MODEL_LABELS[model]}
            for test in ("easy", "hard"):
                label = labels[test]
                sel = group[(group.test == test) & (group.model == model)]
                if len(sel):
                    row[label] = _fmt(sel.accuracy_mean.iloc[0], sel.accuracy_sem.iloc[0])
                    if np.isfinite(sel.token_error_mean.iloc[0]):
                        row[f"{label} token error"] = _fmt(sel.token_error_mean.iloc[0],
                                                           sel.token_error_sem.iloc[0])
            if len(row) > 2:
                rows.append(row)
    return pd.DataFrame(rows).fillna("–")


def _save(fig, path) -> Path:
    import matplotlib.pyplot as plt

    # leave the figure's footnote (fig.text at the bottom) about 0.3 inch of its own
    fig.tight_layout(rect=(0, min(0.3 / fig.get_figheight(), 0.1) if fig.texts else 0, 1, 1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _split_kind(agg, run):
    if "split_kind" not in agg:
        return None
    kinds = agg.loc[agg.run == run, "split_kind"]
    return kinds.iloc[0] if len(kinds) else None


def _rounds_figure(agg):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6, 4.3))
    hard = _hard(agg)
    values, chances = [], {}
    for run, group in hard.groupby("run", sort=False):
        rounds = group[group.model == WEAK_ROUND].sort_values("round")
        if len(rounds):
            err = _error_bars(rounds.accuracy_sem, rounds.n_seeds)
            line = ax.errorbar(rounds["round"], rounds.accuracy_mean, yerr=err, marker="o",
                               capsize=3, label=run)
            values += list(rounds.accuracy_mean + (0 if err is None else err))
            values += list(rounds.accuracy_mean - (0 if err is None else err))
            chance = _run_chance(group)
            if np.isfinite(chance):
                chances.setdefault(round(chance, 3), []).append((run, line[0].get_color()))
    for chance, named in chances.items():
        one = len(chances) == 1
        runs = ", ".join(run for run, _ in named) if len(named) <= 2 else f"{len(named)} runs"
        ax.axhline(chance, ls="--", lw=1, color="black" if one else named[0][1],
                   label=f"chance ({chance:.3f})" if one else f"chance ({chance:.3f}): {runs}")
        values.append(chance)
    ax.set_ylim(*_y_range(values))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("boosting round")
    kinds = {_split_kind(agg, run) for run in hard.run}
    where = "hard test questions" if kinds == {"easy_hard"} else "test"
    ax.set_ylabel(f"weak ensemble accuracy ({where})")
    ax.legend(fontsize=7, title="mean ± SEM over seeds (none for one seed)", title_fontsize=7)
    fig.text(0.01, 0.01, SEM_NOTE, fontsize=7)
    return fig


MIN_SPAN = 0.10
"""The least accuracy range a plot's y-axis spans (10 points), so a difference of one question
does not fill the plot."""


def _error_bars(sem, n_seeds):
    """± SEM where two or more seeds give one (0 elsewhere), or None when no point has one."""
    sem = np.where(np.asarray(n_seeds) >= 2, np.nan_to_num(np.asarray(sem, dtype=float)), 0.0)
    return sem if (np.asarray(n_seeds) >= 2).any() else None


def _run_chance(group):
    chance = group.chance.dropna() if "chance" in group else ()
    return float(chance.iloc[0]) if len(chance) else np.nan


def _y_range(values, low=0.0, high=1.0):
    """Limits around ``values``, with a margin, at least ``MIN_SPAN`` wide, within [low, high]."""
    values = [v for v in values if np.isfinite(v)]
    if not values:
        return low, high
    lo, hi = min(values) - 0.03, max(values) + 0.03
    if hi - lo < MIN_SPAN:
        middle = (lo + hi) / 2
        lo, hi = middle - MIN_SPAN / 2, middle + MIN_SPAN / 2
    if lo < low:
        lo, hi = low, max(hi, low + MIN_SPAN)
    if hi > high:
        lo, hi = min(lo, high - MIN_SPAN), high
    return max(lo, low), min(hi, high)


def plot_rounds(agg: pd.DataFrame, path) -> Path:
    """Accuracy of the weak ensemble after each round (± SEM), one line per run; saved as PNG.

    Parameters
    ----------
    agg : pandas.DataFrame
        Output of :func:`aggregate`.
    path : str or path-like
        The PNG to write.

    Returns
    -------
    path : pathlib.Path
    """
    return _save(_rounds_figure(agg), path)


def _summary_figure(agg):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    agg = _hard(agg)
    runs = list(dict.fromkeys(agg.run))
    fig, axes = plt.subplots(2, len(runs), figsize=(4.2 * len(runs), 6.8), squeeze=False)
    colors = ["#9e9e9e", "#616161", "#64b5f6", "#1565c0", "#2e7d32"]
    warned = noise_warnings(agg)
    for col, run in enumerate(runs):
        group = agg[(agg.run == run) & (agg.model != WEAK_ROUND)].set_index("model")
        models = [m for m in MODEL_ORDER if m in group.index]
        ax = axes[0, col]
        means = [group.loc[m, "accuracy_mean"] for m in models]
        err = _error_bars([group.loc[m, "accuracy_sem"] for m in models],
                          [group.loc[m, "n_seeds"] for m in models])
        ax.bar(range(len(models)), means, yerr=err, color=colors[: len(models)], capsize=3)
        ax.set_xticks(range(len(models)), [MODEL_LABELS[m] for m in models], rotation=35,
                      ha="right", fontsize=8)
        chance = _run_chance(agg[agg.run == run])
        if np.isfinite(chance):
            ax.axhline(chance, ls="--", lw=1, color="black", label=f"chance ({chance:.3f})")
            ax.legend(fontsize=7, loc="upper left")
        spread = np.zeros(len(means)) if err is None else err
        ends = list(np.add(means, spread)) + list(np.subtract(means, spread))
        ax.set_ylim(*_y_range(ends + [chance]))
        flags = [w for w in warned if w.startswith(f"{run}: ")]
        title = run
        if any("chance" in w for w in flags):
            title += "\nwarning: weak or ceiling at or near chance"
        ax.set_title(title, fontsize=9)
        hard_questions = _split_kind(agg, run) == "easy_hard"
        ax.set_ylabel("accuracy on hard test questions" if hard_questions else "test accuracy")
        ax = axes[1, col]
        students = [m for m in (BASELINE_STUDENT, ENSEMBLE_STUDENT) if m in group.index]
        pgr = [group.loc[m, "pgr_mean"] for m in students]
        pgr_err = _error_bars([group.loc[m, "pgr_sem"] for m in students],
                              [group.loc[m, "n_seeds"] for m in students])
        ax.bar(range(len(students)), np.nan_to_num(pgr), yerr=pgr_err,
               color=["#64b5f6", "#1565c0"][: len(students)], capsize=3)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xticks(range(len(students)),
                      [{BASELINE_STUDENT: "baseline", ENSEMBLE_STUDENT: MAIN}[m] for m in students])
        gap = group.gap_mean.dropna()
        title = f"PGR (gap ceiling-weak = {gap.iloc[0]:.3f})" if len(gap) else "PGR"
        if _gap_in_noise(group):
            title += "\nwarning: gap within noise, PGR is noise"
        ax.set_title(title, fontsize=9)
    fig.text(0.01, 0.005, f"Bars: mean over seeds; dashed: chance.\n{SEM_NOTE}.", fontsize=7)
    return fig


def plot_summary(agg: pd.DataFrame, path) -> Path:
    """Bars of accuracy (± SEM) per model and a PGR panel, one column per run; saved as PNG.

    Parameters
    ----------
    agg : pandas.DataFrame
        Output of :func:`aggregate`.
    path : str or path-like
        The PNG to write.

    Returns
    -------
    path : pathlib.Path
    """
    return _save(_summary_figure(agg), path)


def write_report(run_dirs, out_dir):
    """Aggregate run directories into tables and plots.

    Parameters
    ----------
    run_dirs : list of str or path-like
        Run directories, or folders with run directories below them (:func:`find_run_dirs`).
    out_dir : str or path-like
        Where ``results.csv`` / ``results.json``, ``summary.csv`` / ``summary.md`` (with the
        lines of :func:`noise_warnings` below the table, each also logged as a warning),
        ``results.png``, and, when there are boosting rounds, ``rounds.md`` / ``rounds.png``,
        and, when easy test rows exist, ``id_ood.md`` go; with per-question predictions also
        ``paired.md`` / ``.csv`` (paired intervals and McNemar p-values), ``comparison.md``
        (one row per weak side and loss), ``disagreement.md`` and ``diagnostics.md`` (error
        agreement of the weak learners and student-weak agreement beside PGR;
        :mod:`skw2s.comparison`).

    Returns
    -------
    summary : pandas.DataFrame
        The :func:`summary_table`.

    Raises
    ------
    FileNotFoundError
        When there are no run results in or below ``run_dirs``.
    """
    out_dir = Path(out_dir)
    runs = load_runs(find_run_dirs(run_dirs))
    out_dir.mkdir(parents=True, exist_ok=True)
    agg = aggregate(runs)
    agg.to_csv(out_dir / "results.csv", index=False)
    (out_dir / "results.json").write_text(agg.to_json(orient="records", indent=2))
    summary = summary_table(agg)
    summary.to_csv(out_dir / "summary.csv", index=False)
    warned = noise_warnings(agg)
    for line in warned:
        logger.warning(line)
    notes = "".join(f"- {line}\n" for line in warned)
    (out_dir / "summary.md").write_text(
        summary.to_markdown(index=False) + "\n" + (f"\nWarnings:\n\n{notes}" if notes else ""))
    plot_summary(agg, out_dir / "results.png")
    rounds = rounds_table(agg)
    if len(rounds):
        (out_dir / "rounds.md").write_text(rounds.to_markdown(index=False) + "\n")
        plot_rounds(agg, out_dir / "rounds.png")
    id_ood = id_ood_table(agg)
    if len(id_ood):
        (out_dir / "id_ood.md").write_text(id_ood.to_markdown(index=False) + "\n")
    from .comparison import (
        comparison_table,
        diagnostics_table,
        disagreement_table,
        paired_table,
    )

    dirs = find_run_dirs(run_dirs)
    for name, table in (("paired", paired_table(dirs)), ("comparison", comparison_table(dirs)),
                        ("disagreement", disagreement_table(dirs)),
                        ("diagnostics", diagnostics_table(dirs))):
        if len(table):
            table.to_csv(out_dir / f"{name}.csv", index=False)
            (out_dir / f"{name}.md").write_text(
                table.to_markdown(index=False, floatfmt=".4g") + "\n")
    logger.debug("Wrote %s/results.csv, summary.md and results.png", out_dir)
    return summary
