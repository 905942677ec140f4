"""
Easy and hard questions by cross-validated difficulty
=====================================================

The easy-to-hard split of EnsemW2S (appendix E of the paper): every question of the pool is
rated by the error of a small model that did **not** see it in training (``n_splits``-fold
cross-validation), and the least difficult half goes to the weak side.
:class:`~skw2s.DifficultySplitter` does this for any estimator; here the rater is a linear
head on the frozen features of ``smollm2-135m[:6]`` (the first 6 of SmolLM2-135M's 30 layers),
on 300 binarised SciQ texts. This is a tiny slice, chosen so that the script runs in seconds
on a CPU.
"""

# %%
# The data: SciQ, binarised as in Burns et al. Each question is paired with its correct answer
# (label 1) or a random distractor (label 0), as ``"Q: {question} A: {answer}"``. The loaders
# read the folder named by ``SKW2S_DATA_DIR``.
import matplotlib.pyplot as plt
import numpy as np

from skw2s import DifficultySplitter, LLMClassifier
from skw2s.datasets import binarize_sciq, load_sciq, to_classification

X, y = to_classification(binarize_sciq(load_sciq("train").iloc[:300], random_state=0))
print(f"{len(X)} texts, {y.mean():.0%} positive")
print(X[0])

# %%
# Rate the difficulty: 3 folds, each a clone of the rater fitted on the other two. A text's
# difficulty is ``1 - p(gold label)`` under the fold model that did not train on it.
rater = LLMClassifier("smollm2-135m[:6]", mode="head", n_epochs=5, max_length=96,
                      random_state=0)
splitter = DifficultySplitter(rater, n_splits=3, easy_fraction=0.5, random_state=0).fit(X, y)
easy, hard = splitter.split()
print(f"easy: {len(easy)} texts, hard: {len(hard)}; threshold {splitter.threshold_:.3f}")

# %%
# The two halves. The threshold sits at the median difficulty; the hard half holds the texts
# the rater gets confidently wrong.
fig, ax = plt.subplots(figsize=(7, 4))
bins = np.linspace(0, 1, 31)
ax.hist(splitter.difficulty_[easy], bins=bins, color="tab:green", alpha=0.8,
        label="easy (weak side)")
ax.hist(splitter.difficulty_[hard], bins=bins, color="tab:red", alpha=0.8,
        label="hard (student and test)")
ax.axvline(splitter.threshold_, color="black", linestyle="--", linewidth=1, label="threshold")
ax.set_xlabel("difficulty: 1 - p(gold) under the held-out fold model")
ax.set_ylabel("texts")
ax.set_title("Cross-validated difficulty of 300 binarised SciQ texts (smollm2-135m[:6] head)")
ax.legend()
fig.tight_layout()

# %%
# The easiest and the hardest texts, with their gold labels:
order = np.argsort(splitter.difficulty_)
for name, rows in (("easiest", order[:3]), ("hardest", order[-3:])):
    print(name)
    for i in rows:
        print(f"  {splitter.difficulty_[i]:.3f}  label {y[i]}  {X[i][:90]}")

# %%
# :class:`~skw2s.WeakToStrongPipeline` takes the splitter as ``splitter=`` and trains the weak
# side on ``easy`` and the student on ``hard``
# (see :ref:`sphx_glr_auto_examples_plot_id_vs_ood.py`).
# A precomputed rating (ARC's school grade, human ratings) goes in as
# ``DifficultySplitter(difficulty=values)``.
