"""
Why an ensemble helps, or not: weak-learner diversity and student misfit beside PGR
===================================================================================

Two cheap diagnostics read the predictions a fitted :class:`~skw2s.WeakToStrongPipeline`
already keeps (``predictions_``), and say something PGR alone does not:

- **error kappa** (:func:`skw2s.metrics.mean_error_kappa`): Cohen's kappa of every pair of weak
  learners' *mistakes*, corrected for chance. Near 1, the learners make the same mistakes and an
  ensemble of them is one learner again; near 0, their mistakes fall independently and a vote
  can correct them.
- **student-weak agreement** (:func:`skw2s.metrics.agreement`): the share of test questions on
  which the student answers as the weak side that labelled its data. A student at 1 imitates
  its supervisor; whatever it gains over it comes from the questions where they differ.

This example boosts weak linear heads on ``smollm2-135m[:6]`` with AdaBoost
(:class:`~skw2s.LLMAdaBoostClassifier`) and, as the control, bags the same learner
(:class:`~skw2s.UniformEnsembleClassifier`); both label the hard half for a head on
``smollm2-135m[:12]``. It uses 600 binarised SciQ training questions and 300 official test
questions, one seed: on this budget a difference of a few points is within noise. The paired,
seeded comparison of these and more weak sides is ``benchmarks/methods/`` (see
``benchmarks/RESULTS.md``), whose report prints the same diagnostics beside PGR.
"""

# %%
# The pipeline, with a bagging control beside AdaBoost
# ----------------------------------------------------
import matplotlib.pyplot as plt
import numpy as np

from skw2s import (
    LLMAdaBoostClassifier,
    LLMClassifier,
    UniformEnsembleClassifier,
    WeakToStrongPipeline,
)
from skw2s.datasets import binarize_sciq, load_sciq, to_classification
from skw2s.metrics import agreement, mean_error_kappa

X, y = to_classification(binarize_sciq(load_sciq("train").iloc[:600], random_state=0))
X_test, y_test = to_classification(binarize_sciq(load_sciq("test").iloc[:300], random_state=0))

# 5 full-batch Adam steps: with many more, one head fits the 300 easy texts exactly and
# boosting stops after one round
learner = LLMClassifier("smollm2-135m[:6]", mode="head", n_epochs=5, max_length=96)
pipe = WeakToStrongPipeline(
    weak=LLMAdaBoostClassifier(learner, n_estimators=4, sampling="reweight"),
    strong=LLMClassifier("smollm2-135m[:12]", mode="head", max_length=96),
    controls=[("uniform", UniformEnsembleClassifier(learner, n_estimators=4, bootstrap=True))],
    random_state=0,
).fit(X, y, X_test=X_test, y_test=y_test)

# %%
# The diagnostics, from the stored predictions
# --------------------------------------------
# ``members`` holds each weak learner's own answers, in round order; ``models`` every model's.
[test] = pipe.predictions_
p = pipe.predictions_[test]
y_true, models, members = np.asarray(p["y"]), p["models"], p["members"]
report = pipe.report_.set_index(["weak_side", "model"])

rows = []
for side in ("ours", "uniform"):
    if len(members[side]) < 2:  # this page compares ensembles: it needs 2 learners a side
        raise RuntimeError(f"the {side} side kept {len(members[side])} learner(s); error kappa "
                           "needs 2 or more")
    rows.append({
        "weak side": side,
        "learners": len(members[side]),
        "error kappa": mean_error_kappa(y_true, members[side]),
        "weak accuracy": report.loc[(side, "weak_ensemble"), "accuracy"],
        "student-weak agreement": agreement(models[f"{side}/ensemble_student/xent"],
                                            models[f"{side}/weak_ensemble/-"]),
        "student accuracy": report.loc[(side, "ensemble_student"), "accuracy"],
        "PGR": report.loc[(side, "ensemble_student"), "pgr"],
    })
rows.append({
    "weak side": "baseline (1 learner)", "learners": 1, "error kappa": np.nan,
    "weak accuracy": report.loc[("ours", "weak_single"), "accuracy"],
    "student-weak agreement": agreement(models["ours/baseline_student/xent"],
                                        models["ours/weak_single/-"]),
    "student accuracy": report.loc[("ours", "baseline_student"), "accuracy"],
    "PGR": report.loc[("ours", "baseline_student"), "pgr"],
})
ceiling = report.loc[("ours", "ceiling"), "accuracy"]
for row in rows:
    print(" | ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                     for k, v in row.items()))
print(f"ceiling {ceiling:.3f}")

# %%
# Error kappa of each weak side's learners, and PGR against the student's agreement with its
# weak side. The two ensembles' kappas say how much their learners differ; a student far below
# agreement 1 has not just copied its labels.
fig, (ax_k, ax_p) = plt.subplots(1, 2, figsize=(9, 3.8))
ensembles = rows[:2]
ax_k.bar([r["weak side"] for r in ensembles], [r["error kappa"] for r in ensembles],
         color=["tab:blue", "tab:orange"])
for i, r in enumerate(ensembles):
    ax_k.annotate(f"{r['error kappa']:.2f}", (i, r["error kappa"]), ha="center", va="bottom",
                  fontsize=8)
ax_k.axhline(0, color="black", linewidth=0.5)
ax_k.set_ylabel("error kappa of the weak learners\n(mean over pairs)")
ax_k.set_title("How alike the weak learners' mistakes are", fontsize=10)

colors = {"ours": "tab:blue", "uniform": "tab:orange", "baseline (1 learner)": "tab:grey"}
for r in rows:
    ax_p.scatter(r["student-weak agreement"], r["PGR"], color=colors[r["weak side"]], s=40,
                 label=f"{r['weak side']} (student {r['student accuracy']:.3f})")
ax_p.axhline(0, color="black", linewidth=0.5)
ax_p.set_xlabel("student-weak agreement on the test questions")
ax_p.set_ylabel("PGR")
ax_p.set_title(f"PGR and misfit (ceiling {ceiling:.3f})", fontsize=10)
ax_p.legend(fontsize=7, loc="best")
fig.tight_layout()
