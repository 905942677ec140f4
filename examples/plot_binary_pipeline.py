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
binary pair of ``benchmarks/CAPABILITY.md``. To run on a CPU in a few minutes this uses
400 questions, not the 2000 of the reproduction, so the differences between models below are
within the noise of 80 test questions.
"""

# %%
# Data and pipeline
# -----------------
import matplotlib.pyplot as plt

from skw2s import LLMAdaBoostClassifier, LLMClassifier, WeakToStrongPipeline
from skw2s.datasets import binarize_sciq, load_sciq, to_classification

X, y = to_classification(binarize_sciq(load_sciq("train").iloc[:400], random_state=0))

weak = LLMAdaBoostClassifier(
    # 5 full-batch Adam steps: with many more, one learner fits the 200 easy texts exactly
    # (eps_t = 0) and boosting stops after one round
    LLMClassifier("smollm2-135m[:6]", mode="head", n_epochs=5, max_length=96),
    n_estimators=5,
    sampling="reweight",
)
strong = LLMClassifier("smollm2-135m[:12]", mode="head", max_length=96)
pipe = WeakToStrongPipeline(weak=weak, strong=strong, test_size=0.4, random_state=0)
pipe.fit(X, y)
print(f"easy (weak training): {len(pipe.easy_indices_)}, hard training: "
      f"{len(pipe.hard_train_indices_)}, hard test: {len(pipe.test_indices_)}")
print(f"pseudo-labels agree with the gold hard labels on {pipe.pseudo_label_accuracy_:.1%}")

# %%
# The report
# ----------
# One row per model, plus one per boosting round of the weak ensemble (``weak_round``). ``pgr``
# is filled for the two students; ``gap`` is ceiling minus weak single, the room PGR divides by.
report = pipe.report_
print(report.round(3).to_string(index=False))

# %%
models = ["weak_single", "weak_ensemble", "baseline_student", "ensemble_student", "ceiling"]
rows = report.set_index("model").loc[models]
colors = ["tab:grey", "tab:blue", "tab:orange", "tab:green", "black"]
fig, ax = plt.subplots(figsize=(7.5, 4))
bars = ax.bar(models, rows["accuracy"], color=colors)
for bar, (name, row) in zip(bars, rows.iterrows()):
    label = f"{row['accuracy']:.3f}"
    if name.endswith("student"):
        label += f"\nPGR {row['pgr']:.2f}"
    ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center", va="bottom", fontsize=8)
ax.axhline(0.5, color="black", linewidth=0.5)
ax.set_ylim(0, 1)
ax.set_ylabel(f"accuracy on {len(pipe.test_indices_)} hard test questions")
ax.set_title("Weak-to-strong on binarised SciQ (400 questions, seed 0)")
fig.tight_layout()

# %%
# The student's own interface is the pipeline's: ``pipe.predict`` and ``pipe.score`` are
# the ensemble student's.
hard_test = [X[i] for i in pipe.test_indices_]
print(pipe.predict(hard_test[:5]), y[pipe.test_indices_[:5]])
