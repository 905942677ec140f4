"""
Student losses on weak labels: cross-entropy and logconf
========================================================

How much a student gains from its weak labels depends on how it trains on them. Burns et al.'s
auxiliary-confidence loss (``loss="logconf"``) mixes the weak labels with the student's own
hardened predictions, so a confident student can overrule some weak mistakes; plain
cross-entropy (``loss="xent"``, EnsemW2S's choice) imitates the labels. Here one weak
classifier labels the hard half of 400 binarised SciQ texts, and two students of the same
strong model train on those labels, one per loss, over three seeds of the student.

Tiny slice (a CPU budget of seconds): 100 test questions, so differences of a few points are
noise; the point is the interface.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np

from skw2s import LLMClassifier, pgr_score
from skw2s.datasets import binarize_sciq, load_sciq, to_classification

X, y = to_classification(binarize_sciq(load_sciq("train").iloc[:400], random_state=0))
X, y = np.asarray(X, dtype=object), np.asarray(y)
rng = np.random.default_rng(0)
order = rng.permutation(len(X))
easy, hard_train, test = order[:150], order[150:300], order[300:]

weak = LLMClassifier("smollm2-135m[:6]", mode="head", n_epochs=5, max_length=96,
                     random_state=0).fit(list(X[easy]), y[easy])
weak_labels = weak.predict(list(X[hard_train]))
weak_acc = weak.score(list(X[test]), y[test])
print(f"weak labels agree with gold on {np.mean(weak_labels == y[hard_train]):.1%} "
      f"of the hard training texts; weak test accuracy {weak_acc:.3f}")

# %%
# The ceiling (gold labels) and the two students, each with three seeds.
def student(loss, seed, labels):
    return LLMClassifier("smollm2-135m[:12]", mode="head", max_length=96, loss=loss,
                         random_state=seed).fit(list(X[hard_train]), labels)


seeds = [0, 1, 2]
ceiling = np.mean([student("xent", s, y[hard_train]).score(list(X[test]), y[test]) for s in seeds])
scores = {loss: [student(loss, s, weak_labels).score(list(X[test]), y[test]) for s in seeds]
          for loss in ("xent", "logconf")}
for loss, accs in scores.items():
    print(f"{loss:8s} students: accuracy {np.mean(accs):.3f} (seeds: "
          f"{', '.join(f'{a:.3f}' for a in accs)}), "
          f"PGR {pgr_score(weak_acc, np.mean(accs), ceiling):.2f}")
print(f"ceiling (gold labels): {ceiling:.3f}")

# %%
fig, ax = plt.subplots(figsize=(6.5, 4))
names = ["weak", "xent student", "logconf student", "ceiling"]
means = [weak_acc, np.mean(scores["xent"]), np.mean(scores["logconf"]), ceiling]
ax.bar(names, means, color=["tab:grey", "tab:blue", "tab:orange", "black"])
for i, loss in enumerate(("xent", "logconf"), start=1):
    ax.plot([i] * len(seeds), scores[loss], "o", color="white", markeredgecolor="black",
            label="one student seed" if i == 1 else None)
ax.axhline(0.5, color="black", linewidth=0.5)
ax.set_ylim(0, 1)
ax.set_ylabel(f"accuracy on {len(test)} test texts")
ax.set_title("Students of smollm2-135m[:12] on the labels of smollm2-135m[:6]")
ax.legend(loc="upper left", fontsize=8)
fig.tight_layout()

# %%
# ``loss_params`` sets a loss's hyperparameters, e.g.
# ``LLMClassifier(..., loss="logconf", loss_params={"aux_coef": 0.75, "warmup_frac": 0.2})``;
# soft labels go in through ``fit(X, y, y_proba=...)``. See :mod:`skw2s.losses`.
