"""Paired comparisons across seeds, from the per-question predictions of ``skw2s run``.

Each ``seed{N}.json`` holds, per test set, every model's prediction on every test question
(``WeakToStrongPipeline.predictions_``). The tables here read them:

- :func:`paired_table`: for each comparison (ours − baseline, ours − the uniform-ensemble
  student, the uniform-ensemble student − baseline, ours − the logconf student, and on the weak
  side ensemble − single and ensemble − control ensemble), the accuracy difference over all
  seeds and questions, its paired bootstrap 95% interval, the t interval on the per-seed
  differences and the McNemar p-value (:mod:`skw2s.stats`);
- :func:`comparison_table`: one row per (weak side, student loss): accuracy and, for binary
  tasks, AUROC and PGR on both, mean ± SEM over seeds;
- :func:`disagreement_table`: how often two learners of a weak side disagree on a test
  question (mean over pairs of learners, mean ± SEM over seeds);
- :func:`diagnostics_table`: beside each student's PGR, why an ensemble helps or not: how
  alike its weak learners' mistakes are (Cohen's kappa on errors) and how closely the student
  follows the weak side that labelled its data.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.metrics import agreement, mean_error_kappa, mean_sem
from ..core.stats import paired_comparison
from ..w2s.names import (
    BASELINE_STUDENT,
    ENSEMBLE_STUDENT,
    MAIN,
    WEAK_ENSEMBLE,
    WEAK_SINGLE,
    prediction_name,
)
from .runs import load_runs, run_names, test_set_label

__all__ = ["comparison_table", "diagnostics_table", "disagreement_table", "load_predictions",
           "paired_table"]


def _seed_order(path):
    """``seed2.json`` before ``seed10.json``: the bootstrap draws seeds in this order."""
    digits = path.stem[len("seed"):]
    return (0, int(digits), "") if digits.isdigit() else (1, 0, path.name)


def _records(directories):
    """``(run name, record)`` of every seed file, named as :func:`skw2s.report.run_names` does."""
    loaded = []
    for directory in directories:
        for path in sorted(Path(directory).glob("seed*.json"), key=_seed_order):
            record = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(record, dict) and "report" in record:
                loaded.append((Path(directory), record))
    first = {}
    for directory, record in loaded:
        first.setdefault(directory, record.get("name", directory.name))
    names = run_names(first)
    return [(names[directory], record) for directory, record in loaded]


def load_predictions(directories):
    """Per run, test set and seed: the gold labels and every model's predictions.

    Parameters
    ----------
    directories : list of str or path-like
        Run directories written by ``skw2s run``.

    Returns
    -------
    predictions : dict
        ``{run: {test: {seed: {"y": ndarray, "models": {name: ndarray}, "test_set": str}}}}``
        (``test_set``: what the test set scores, :func:`skw2s.report.test_set_label`), with
        runs named as :func:`skw2s.report.run_names` does (two directories' seeds are never
        pooled); seed files written before per-question predictions existed are left out.
    """
    out = {}
    for run, record in _records(directories):
        for test, p in (record.get("predictions") or {}).items():
            out.setdefault(run, {}).setdefault(test, {})[record["seed"]] = {
                "y": np.asarray(p["y"]),
                "models": {k: np.asarray(v) for k, v in p["models"].items()},
                "test_set": test_set_label(test, record.get("config")),
            }
    return out


def _first_loss(models):
    for name in models:
        side, model, loss = name.split("/")
        if side == MAIN and model == ENSEMBLE_STUDENT:
            return loss
    return None


def comparisons(models):
    """The default comparisons ``(label, a, b)`` that the names in ``models`` allow."""
    loss = _first_loss(models)
    sides = sorted({n.split("/")[0] for n in models} - {MAIN})
    def student(side):
        return prediction_name(side, ENSEMBLE_STUDENT, loss)

    ours, baseline = student(MAIN), prediction_name(MAIN, BASELINE_STUDENT, loss)
    ensemble, single = prediction_name(MAIN, WEAK_ENSEMBLE), prediction_name(MAIN, WEAK_SINGLE)
    pairs = [(f"{MAIN} − baseline (students)", ours, baseline)]
    pairs += [(f"{MAIN} − {side} (students)", ours, student(side)) for side in sides]
    # does having several weak models help, whatever their weights: each control against one
    pairs += [(f"{side} − baseline (students)", student(side), baseline) for side in sides]
    pairs += [(f"{MAIN} − baseline with {other} (students)", ours, n)
              for n in models for other in [n.split("/")[2]]
              if n.startswith(f"{MAIN}/{BASELINE_STUDENT}/")
              and "logconf" in other and other != loss]
    # two controls against each other (a reweighting AdaBoost against bagging, say)
    pairs += [(f"{a} − {b} (students)", student(a), student(b))
              for i, a in enumerate(sides) for b in sides[i + 1:]]
    pairs += [("ensemble − single (weak)", ensemble, single)]
    pairs += [(f"ensemble − {side} ensemble (weak)", ensemble, prediction_name(side, WEAK_ENSEMBLE))
              for side in sides]
    pairs += [(f"{a} ensemble − {b} ensemble (weak)", prediction_name(a, WEAK_ENSEMBLE),
               prediction_name(b, WEAK_ENSEMBLE))
              for i, a in enumerate(sides) for b in sides[i + 1:]]
    return [(label, a, b) for label, a, b in pairs if a in models and b in models]


def paired_table(directories, *, n_boot=10_000, confidence=0.95):
    """The paired comparisons of every run, pooled over its seeds and test questions.

    Parameters
    ----------
    directories : list of str or path-like
        Run directories written by ``skw2s run``.
    n_boot : int, default=10000
        Bootstrap draws.
    confidence : float, default=0.95
        Level of the intervals.

    Returns
    -------
    table : pandas.DataFrame
        One row per run, test set and comparison: ``test`` (as in the seed files) and
        ``test_set`` (what it scores: ``hard``, or ``all`` the test questions of a random
        split, :func:`skw2s.report.test_set_label`), ``diff`` (accuracy of ``a`` minus ``b``,
        mean over seeds), ``ci_low`` / ``ci_high`` / ``half_width`` (paired bootstrap over
        seeds and questions), ``seed_ci_low`` / ``seed_ci_high`` / ``seed_half_width`` /
        ``seed_sd`` (t interval on the per-seed differences; NaN with one seed),
        ``p_mcnemar``, ``a_only`` / ``b_only`` (questions only one of the two got right),
        ``seeds_a_ahead`` / ``seeds_b_ahead``, ``n_questions`` and ``n_seeds``
        (:func:`skw2s.stats.paired_comparison`).
    """
    rows = []
    for run, tests in load_predictions(directories).items():
        for test, seeds in tests.items():
            first_seed = next(iter(seeds.values()))
            first = first_seed["models"]  # in the order the pipeline wrote them
            common = [n for n in first if all(n in s["models"] for s in seeds.values())]
            for label, a, b in comparisons(common):
                correct_a = [s["models"][a] == s["y"] for s in seeds.values()]
                correct_b = [s["models"][b] == s["y"] for s in seeds.values()]
                stats = paired_comparison(correct_a, correct_b, n_boot=n_boot,
                                          confidence=confidence)
                rows.append({"run": run, "test": test, "test_set": first_seed["test_set"],
                             "comparison": label, "a": a, "b": b, **stats})
    return pd.DataFrame(rows)


def comparison_table(directories):
    """One row per run, test set, weak side and student loss: mean ± SEM over seeds.

    Parameters
    ----------
    directories : list of str or path-like
        Run directories written by ``skw2s run``.

    Returns
    -------
    table : pandas.DataFrame
        ``run``, ``test`` (what the test set scores: :func:`skw2s.report.test_set_label`),
        ``weak_side``, ``loss``, ``seeds``, the weak side's ensemble accuracy, its student's
        accuracy, PGR and (binary tasks) AUROC and AUROC-PGR, and the gap of the run.
    """
    runs = load_runs(directories, all_rows=True)
    if "weak_side" not in runs:
        return pd.DataFrame()
    rows = []
    students = runs[runs.model == ENSEMBLE_STUDENT]
    baselines = runs[runs.model == BASELINE_STUDENT].assign(weak_side="baseline (1 weak)")
    for (run, test, side, loss), group in pd.concat([students, baselines]).groupby(
            ["run", "test", "weak_side", "loss"], sort=False, dropna=False):
        ensemble = runs[(runs.run == run) & (runs.test == test) & (runs.model == WEAK_ENSEMBLE)
                        & (runs.weak_side == side)]
        if side == "baseline (1 weak)":
            ensemble = runs[(runs.run == run) & (runs.test == test) & (runs.model == WEAK_SINGLE)]
        row = {"run": run, "test": group.test_set.iloc[0], "weak_side": side, "loss": loss,
               "seeds": group.seed.nunique(),
               "weak accuracy": _fmt(*mean_sem(ensemble.accuracy)),
               "student accuracy": _fmt(*mean_sem(group.accuracy)),
               "PGR": _fmt(*mean_sem(group.pgr), digits=2),
               "gap": _fmt(*mean_sem(group.gap))}
        if group.auroc.notna().any():
            row["student AUROC"] = _fmt(*mean_sem(group.auroc))
            row["PGR (AUROC)"] = _fmt(*mean_sem(group.pgr_auroc), digits=2)
            row["gap (AUROC)"] = _fmt(*mean_sem(group.gap_auroc))
        rows.append(row)
    return pd.DataFrame(rows)


def disagreement_table(directories):
    """How often two learners of each weak side disagree on a test question.

    Parameters
    ----------
    directories : list of str or path-like
        Run directories written by ``skw2s run``.

    Returns
    -------
    table : pandas.DataFrame
        ``run``, ``test`` (what the test set scores: :func:`skw2s.report.test_set_label`),
        ``weak_side``, ``seeds`` and ``disagreement`` (mean ± SEM over seeds of the mean over
        pairs of learners).
    """
    values = {}
    for run, record in _records(directories):
        for item in record.get("weak_disagreement") or []:
            test = test_set_label(item["test"], record.get("config"))
            values.setdefault((run, test, item["weak_side"]), []).append(item["disagreement"])
    return pd.DataFrame([
        {"run": run, "test": test, "weak_side": side, "seeds": len(v),
         "disagreement": _fmt(*mean_sem(v))}
        for (run, test, side), v in values.items()
    ])


def diagnostics_table(directories):
    """Why an ensemble helps or not, beside each student's PGR, from the stored predictions.

    Parameters
    ----------
    directories : list of str or path-like
        Run directories written by ``skw2s run``.

    Returns
    -------
    table : pandas.DataFrame
        One row per run, test set, weak side and student loss (the single-weak baseline
        included), mean ± SEM over seeds: ``PGR`` of the student; ``error kappa (weak)``, the
        mean over pairs of the weak side's learners of Cohen's kappa on their errors
        (:func:`skw2s.metrics.mean_error_kappa`; "–" with one learner); ``student-weak
        agreement``, the share of test questions on which the student answers as the weak side
        that labelled it (:func:`skw2s.metrics.agreement`); and ``gold labels``, how many gold
        labels the student trained on (0 unless the pipeline's ``gold_fraction`` is set).
        Empty when no seed file holds per-question predictions.
    """
    from .runs import test_set_label

    values = {}
    for run, record in _records(directories):
        if not record.get("predictions"):
            continue  # a seed file without per-question predictions has nothing to compare
        pgr = {(r["test"], r.get("weak_side"), r["model"], r.get("loss")): r.get("pgr")
               for r in record["report"]}
        gold = {row["weak_side"]: row.get("n_gold") or 0 for row in record.get("labels") or []}
        for test, p in (record.get("predictions") or {}).items():
            y, models = np.asarray(p["y"]), {k: np.asarray(v) for k, v in p["models"].items()}
            members = {side: [np.asarray(m) for m in preds]
                       for side, preds in (p.get("members") or {}).items()}
            label = test_set_label(test, record.get("config"))
            for name, pred in models.items():
                side, model, loss = name.split("/")
                if model not in (ENSEMBLE_STUDENT, BASELINE_STUDENT):
                    continue
                weak_name = prediction_name(
                    side, WEAK_ENSEMBLE if model == ENSEMBLE_STUDENT else WEAK_SINGLE)
                kappa = (mean_error_kappa(y, members.get(side, []))
                         if model == ENSEMBLE_STUDENT else float("nan"))
                shown_side = side if model == ENSEMBLE_STUDENT else "baseline (1 weak)"
                key = (run, label, shown_side, loss)
                entry = values.setdefault(key, {"pgr": [], "kappa": [], "agree": [], "gold": []})
                entry["pgr"].append(_as_float(pgr.get((test, side, model, loss))))
                entry["kappa"].append(kappa)
                entry["agree"].append(agreement(pred, models[weak_name])
                                      if weak_name in models else float("nan"))
                entry["gold"].append(float(gold.get(side if model == ENSEMBLE_STUDENT
                                                    else "baseline", 0)))
    return pd.DataFrame([
        {"run": run, "test": test, "weak_side": side, "loss": loss, "seeds": len(v["pgr"]),
         "PGR": _fmt(*mean_sem(v["pgr"]), digits=2),
         "error kappa (weak)": _fmt(*mean_sem(v["kappa"]), digits=2),
         "student-weak agreement": _fmt(*mean_sem(v["agree"])),
         "gold labels": f"{np.mean(v['gold']):.0f}"}
        for (run, test, side, loss), v in values.items()
    ])


def _as_float(value):
    return float("nan") if value is None else float(value)


def _fmt(mean, sem, digits=3):
    if not np.isfinite(mean):
        return "–"
    return f"{mean:.{digits}f}" if not np.isfinite(sem) else f"{mean:.{digits}f} ± {sem:.{digits}f}"
