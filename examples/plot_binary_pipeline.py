"""
The binary weak-to-strong pipeline
==================================

The whole EnsemW2S protocol on binarised SciQ, in one estimator: split the pool into an easy
and a hard half, boost weak classifiers on the easy half
(:class:`~skw2s.LLMAdaBoostClassifier`, Algorithm 2), pseudo-label the hard half with the
ensemble, and train the strong student on those labels. The pipeline also trains the
*baseline* student (on the first weak learner's labels alone) and the *ceiling* (the strong
model on the gold labels), and reports accuracy and PGR.

The weak learners are linear heads on the frozen features of ``smollm2-135m[:6]`` and the strong
model a head on ``smollm2-135m[:12]``: one checkpoint cut to 6 and 12 of its 30 layers, the
binary pair of ``benchmarks/CAPABILITY.md``. To run on a CPU in a few minutes this uses 600
training questions (300 easy, 300 hard) and 300 official test questions, not the 4000 and 1000
of the paired comparison, and one seed: a difference of a few points between two models here is
within noise (``benchmarks/RESULTS.md`` has the powered, paired comparison). The script stops
with an error if the ceiling does not beat the weak learner, since PGR then means nothing.
"""

# %%
# Data and pipeline
# -----------------
import matplotlib.pyplot as plt

from skw2s import LLMAdaBoostClassifier, LLMClassifier, WeakToStrongPipeline
from skw2s.datasets import binarize_sciq, load_sciq, to_classification

X, y = to_classification(binarize_sciq(load_sciq("train").iloc[:600], random_state=0))
X_test, y_test = to_classification(binarize_sciq(load_sciq("test").iloc[:300], random_state=0))

weak = LLMAdaBoostClassifier(
    # 5 full-batch Adam steps: with many more, one learner fits the 300 easy texts exactly
    # (eps_t = 0) and boosting stops after one round
    LLMClassifier("smollm2-135m[:6]", mode="head", n_epochs=5, max_length=96),
    n_estimators=5,
    sampling="reweight",
)
strong = LLMClassifier("smollm2-135m[:12]", mode="head", max_length=96)
pipe = WeakToStrongPipeline(weak=weak, strong=strong, random_state=0)
pipe.fit(X, y, X_test=X_test, y_test=y_test)
print(f"easy (weak training): {len(pipe.easy_indices_)}, hard training: "
      f"{len(pipe.hard_train_indices_)}, test: {len(y_test)}")
print(f"pseudo-labels agree with the gold hard labels on {pipe.pseudo_label_accuracy_:.1%}")

# %%
# The report
# ----------
# One row per model, plus one per boosting round of the weak ensemble (``weak_round``). ``pgr``
# is filled for the two students; ``gap`` is ceiling minus weak single, the room PGR divides by.
report = pipe.report_
print(report.round(3).to_string(index=False))

# %%
# PGR divides by the gap between the ceiling and the weak learner: the page stops here, rather
# than plot a PGR that means nothing, if the ceiling does not beat the weak learner.
accuracy = report.set_index("model")["accuracy"]
if not accuracy["ceiling"] > accuracy["weak_single"]:
    raise RuntimeError(f"the ceiling ({accuracy['ceiling']:.3f}) does not beat the weak learner "
                       f"({accuracy['weak_single']:.3f}): no gap for PGR to measure")

models = ["weak_single", "weak_ensemble", "baseline_student", "ensemble_student", "ceiling"]
labels = ["weak\nsingle", "weak\nensemble", "baseline\nstudent", "ensemble\nstudent", "ceiling"]
rows = report.set_index("model").loc[models]
colors = ["tab:grey", "tab:blue", "tab:orange", "tab:green", "black"]
fig, ax = plt.subplots(figsize=(7.5, 4.2))
bars = ax.bar(labels, rows["accuracy"], color=colors)
for bar, (name, row) in zip(bars, rows.iterrows()):
    label = f"{row['accuracy']:.3f}"
    if name.endswith("student"):
        label += f"\nPGR {row['pgr']:.2f}"
    ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center", va="bottom", fontsize=8)
ax.axhline(0.5, color="black", linewidth=0.5, linestyle="--")
ax.annotate("chance", (len(models) - 0.5, 0.5), ha="right", va="bottom", fontsize=8)
ax.set_ylim(0, 1)
ax.set_ylabel(f"accuracy on {len(y_test)} test questions")
ax.set_title("Weak-to-strong on binarised SciQ (600 training questions, seed 0)")
fig.tight_layout()

# %%
# The student's own interface is the pipeline's: ``pipe.predict`` and ``pipe.score`` are
# the ensemble student's.
print(pipe.predict(X_test[:5]), y_test[:5])
