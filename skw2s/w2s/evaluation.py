"""Scoring a fitted :class:`~skw2s.WeakToStrongPipeline` on one test set: every model on every
question, each weak side's rounds and disagreement, AUROC, PGR and gap."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.metrics import pgr_score
from .names import (
    BASELINE_STUDENT,
    CASCADE,
    CASCADE_STEP,
    CEILING,
    ENSEMBLE_STUDENT,
    MAIN,
    STUDENT_MODELS,
    WEAK_ENSEMBLE,
    WEAK_ROUND,
    WEAK_SINGLE,
    prediction_name,
)

__all__ = ["add_pgr", "evaluate"]


def evaluate(pipe, X, y, *, test="hard"):
    """The rows of ``pipe.report_``, the per-question predictions and the weak sides'
    disagreement for one test set (see :meth:`WeakToStrongPipeline.evaluate`)."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y)
    classes = getattr(pipe.weak_, "classes_", None)
    binary = classes is not None and len(classes) == 2
    rows, preds, scores, disagreement, members = [], {}, {}, {}, {}

    def add(side, model, loss, rnd, pred, score=None, token_error=np.nan):
        name = prediction_name(side, model, loss)
        preds[name] = np.asarray(pred)
        auroc = np.nan
        if binary and score is not None:
            scores[name] = np.asarray(score, dtype=np.float64)
            if len(np.unique(y)) == 2:
                auroc = float(roc_auc_score(y == classes[1], scores[name]))
        rows.append({"weak_side": side, "model": model, "loss": loss, "round": rnd,
                     "accuracy": float(np.mean(preds[name] == y)), "auroc": auroc,
                     "token_error": token_error})

    for side, weak in [(MAIN, pipe.weak_), *pipe.controls_.items()]:
        out = _round_predictions(weak, X, binary)
        errors = (list(weak.staged_token_error(X, y)) if hasattr(weak, "staged_token_error")
                  else [np.nan] * len(out["staged"]))
        positive = [p[:, 1] for p in out["staged_proba"]] if binary else [None] * len(errors)
        if side == MAIN:
            add(MAIN, WEAK_SINGLE, None, 1, out["staged"][0], positive[0], errors[0])
        for t, pred in enumerate(out["staged"], start=1):
            rows.append({"weak_side": side, "model": WEAK_ROUND, "loss": None, "round": t,
                         "accuracy": float(np.mean(pred == y)), "auroc": np.nan,
                         "token_error": errors[t - 1]})
        add(side, WEAK_ENSEMBLE, None, len(out["staged"]), out["staged"][-1],
            positive[-1], errors[-1])
        members[side] = [np.asarray(m) for m in out["members"]]
        disagreement[(side, test)] = _disagreement(members[side])
    students = [(BASELINE_STUDENT, MAIN, loss, 1, est) for loss, est in pipe.baselines_.items()]
    # the sides derived from "ours" (gold labels mixed in, the cascade) count its rounds
    students += [(ENSEMBLE_STUDENT, side, loss,
                  len(pipe.controls_.get(side, pipe.weak_).estimators_), est)
                 for (side, loss), est in pipe.students_.items()]
    first_loss = next(iter(pipe.students_))[1]
    students += [(CASCADE_STEP, CASCADE, first_loss, k, est)
                 for k, est in enumerate(getattr(pipe, "cascade_steps_", []), start=1)]
    if pipe.ceiling_ is not None:
        students.append((CEILING, MAIN, None, np.nan, pipe.ceiling_))
    for model, side, loss, rnd, est in students:
        score = None
        if binary:
            proba = np.asarray(est.predict_proba(X), dtype=np.float64)
            score = proba[:, list(est.classes_).index(classes[1])]
        add(side, model, loss, rnd, est.predict(X), score, _token_error(est, X, y))
    report = pd.DataFrame(rows)
    report.insert(3, "test", test)
    report.insert(4, "n_test", len(y))
    return (add_pgr(report), {"y": y, "models": preds, "scores": scores, "members": members},
            disagreement)



def _token_error(estimator, X, y):
    return float(estimator.token_error(X, y)) if hasattr(estimator, "token_error") else np.nan


def _round_predictions(weak, X, binary):
    """A weak side's ``round_predictions``; for other ensembles (scikit-learn's), the same from
    their ``staged_*`` methods and ``estimators_``."""
    if hasattr(weak, "round_predictions"):
        return weak.round_predictions(X)
    staged = [np.asarray(p) for p in weak.staged_predict(X)] if hasattr(weak, "staged_predict") \
        else [np.asarray(weak.predict(X))]
    proba = []
    if binary and hasattr(weak, "staged_predict_proba"):
        proba = [np.asarray(p) for p in weak.staged_predict_proba(X)]
    elif binary:
        proba = [np.asarray(weak.predict_proba(X))] * len(staged)
    members = [np.asarray(e.predict(X)) for e in getattr(weak, "estimators_", [])]
    return {"staged": staged, "staged_proba": proba, "members": members}


def _disagreement(members):
    """Mean over pairs of learners (arrays of predictions) of the fraction of rows on which
    they differ (NaN with fewer than two learners)."""
    if len(members) < 2:
        return float("nan")
    pairs = [(a, b) for i, a in enumerate(members) for b in members[i + 1:]]
    return float(np.mean([np.mean(a != b) for a, b in pairs]))


def add_pgr(report):
    """PGR and gap of the students (accuracy and AUROC) against the single weak learner."""
    for column in ("pgr", "gap", "pgr_auroc", "gap_auroc"):
        report[column] = np.nan
    ceiling = report[report.model == CEILING]
    if not len(ceiling):
        return report
    students = report.model.isin(STUDENT_MODELS)
    for metric, suffix in (("accuracy", ""), ("auroc", "_auroc")):
        weak = report.loc[report.model == WEAK_SINGLE, metric].iloc[0]
        top = ceiling[metric].iloc[0]
        if not (np.isfinite(weak) and np.isfinite(top)):
            continue
        report[f"gap{suffix}"] = top - weak
        report.loc[students, f"pgr{suffix}"] = pgr_score(
            weak, report.loc[students, metric].to_numpy(), top
        )
    return report
