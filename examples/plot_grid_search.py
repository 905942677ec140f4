"""
Choosing the number of rounds with GridSearchCV and the PGR scorer
==================================================================

The ensembles are scikit-learn estimators, so ``GridSearchCV`` tunes them. Two things make the
search cheap and meaningful here:

- :func:`~skw2s.make_pgr_scorer` scores a fitted ensemble by PGR between two reference
  accuracies measured beforehand: one weak learner and the strong ceiling, on the same folds;
- ``memory=`` stores each boosting round. Fits that differ only in ``n_estimators`` share their
  rounds, so the grid ``1, 2, 4, 8`` trains 8 rounds per fold, not 15.

Linear heads on frozen ``smollm2-135m[:6]`` features are the weak learners and a head on
``smollm2-135m[:12]`` the ceiling; 300 binarised SciQ texts and 3 folds, so that the search runs
in seconds on a CPU (PGR on 100-text folds is noisy).
"""

# %%
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score

from skw2s import LLMAdaBoostClassifier, LLMClassifier, make_pgr_scorer
from skw2s.datasets import binarize_sciq, load_sciq, to_classification

X, y = to_classification(binarize_sciq(load_sciq("train").iloc[:300], random_state=0))
folds = KFold(3, shuffle=True, random_state=0)
learner = LLMClassifier("smollm2-135m[:6]", mode="head", n_epochs=5, max_length=96,
                        random_state=0)

# %%
# The references, cross-validated on the same folds as the search.
weak_score = cross_val_score(learner, X, y, cv=folds).mean()
ceiling_score = cross_val_score(
    LLMClassifier("smollm2-135m[:12]", mode="head", max_length=96, random_state=0), X, y, cv=folds
).mean()
print(f"one weak learner {weak_score:.3f}, ceiling {ceiling_score:.3f}")
scorer = make_pgr_scorer(weak_score, ceiling_score)

# %%
# The search. The store lives in a temporary directory; each ``.skops`` file in it is one
# trained round.
grid = [1, 2, 4, 8]
with tempfile.TemporaryDirectory() as memory:
    search = GridSearchCV(
        LLMAdaBoostClassifier(learner, sampling="reweight", random_state=0, memory=memory),
        {"n_estimators": grid}, scoring=scorer, cv=folds, refit=False,
    )
    start = time.perf_counter()
    search.fit(X, y)
    seconds = time.perf_counter() - start
    trained = len(list(Path(memory).rglob("*.skops")))
fits_without_memory = folds.get_n_splits() * sum(grid)
print(f"search: {seconds:.1f} s; rounds trained {trained} "
      f"(without memory: {fits_without_memory})")
results = search.cv_results_
for n, mean, std in zip(grid, results["mean_test_score"], results["std_test_score"]):
    print(f"n_estimators={n}: PGR {mean:.2f} ± {std:.2f}")
print("best:", search.best_params_)

# %%
# Boosting can stop early (a round whose weighted error reaches 1/2 is dropped), so the
# largest grid values may train fewer rounds than asked; the count above is what the store
# holds.
fig, (ax_pgr, ax_cost) = plt.subplots(1, 2, figsize=(10, 4))
ax_pgr.errorbar(grid, results["mean_test_score"], yerr=results["std_test_score"], fmt="-o",
                capsize=3)
ax_pgr.axhline(0, color="black", linewidth=0.5)
ax_pgr.set_xscale("log", base=2)
ax_pgr.set_xticks(grid, [str(n) for n in grid])
ax_pgr.set_xlabel("n_estimators")
ax_pgr.set_ylabel("PGR (mean ± std over 3 folds)")
ax_pgr.set_title("PGR of the weak ensemble")
ax_cost.bar(["with memory=", "without"], [trained, fits_without_memory],
            color=["tab:green", "tab:grey"])
ax_cost.set_ylabel("rounds trained by the search")
ax_cost.set_title("Cost of the grid 1, 2, 4, 8 on 3 folds")
fig.tight_layout()
