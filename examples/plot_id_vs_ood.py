"""
In distribution and out of distribution
=======================================

With an easy/hard split, the weak side never trains on anything like the hard test questions:
they are *out of distribution* (OOD) for it. ``WeakToStrongPipeline(id_test_size=...)`` also
holds out part of the easy half, an *in-distribution* (ID) test set, and scores every model on
both. This script rates 400 binarised SciQ texts with a :class:`~skw2s.DifficultySplitter`,
then runs the pipeline and compares the two test sets. The slice is tiny so that it runs on a
CPU in a minute or two (less when the features of the earlier gallery examples are cached);
with 40 to 80 test questions per set, differences of a few points
are noise.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np

from skw2s import DifficultySplitter, LLMAdaBoostClassifier, LLMClassifier, WeakToStrongPipeline
from skw2s.datasets import binarize_sciq, load_sciq, to_classification

X, y = to_classification(binarize_sciq(load_sciq("train").iloc[:400], random_state=0))

learner = LLMClassifier("smollm2-135m[:6]", mode="head", n_epochs=5, max_length=96)
pipe = WeakToStrongPipeline(
    weak=LLMAdaBoostClassifier(learner, n_estimators=5, sampling="reweight"),
    strong=LLMClassifier("smollm2-135m[:12]", mode="head", max_length=96),
    splitter=DifficultySplitter(learner, n_splits=3),
    test_size=0.4,      # of the hard half: OOD test questions
    id_test_size=0.2,   # of the easy half: ID test questions
    random_state=0,
).fit(X, y)
print(f"easy training {len(pipe.easy_indices_)}, ID test {len(pipe.id_test_indices_)}, "
      f"hard training {len(pipe.hard_train_indices_)}, OOD test {len(pipe.test_indices_)}")

# %%
# ``report_`` has a ``test`` column: ``"easy"`` for the ID rows, ``"hard"`` for the OOD rows.
models = ["weak_single", "weak_ensemble", "baseline_student", "ensemble_student", "ceiling"]
table = pipe.report_[pipe.report_.model.isin(models)].pivot(
    index="model", columns="test", values="accuracy").loc[models]
print(table.round(3))

# %%
fig, ax = plt.subplots(figsize=(7.5, 4))
x = np.arange(len(models))
ax.bar(x - 0.2, table["easy"], width=0.4, color="tab:green",
       label=f"ID: easy held-out ({len(pipe.id_test_indices_)})")
ax.bar(x + 0.2, table["hard"], width=0.4, color="tab:red",
       label=f"OOD: hard test ({len(pipe.test_indices_)})")
ax.axhline(0.5, color="black", linewidth=0.5)
ax.set_xticks(x, models)
ax.set_ylim(0, 1)
ax.set_ylabel("accuracy")
ax.set_title("Easy/hard split of 400 binarised SciQ texts: ID vs OOD accuracy")
ax.legend(loc="upper left", fontsize=8)
fig.tight_layout()

# %%
# The hard questions are, by construction, the ones a held-out small model got wrong, so expect
# the weak side to score lower on them than on the easy held-out rows (the table shows by how
# much in this run). The students and the ceiling train on the hard half itself, so for them
# the easy rows are the unfamiliar ones.
