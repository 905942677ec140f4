"""
AdaBoost rounds and weights on binarised SciQ
=============================================

EnsemW2S, binary setting (Algorithm 2): weak classifiers are boosted with AdaBoost, and after
every round the ensemble's test accuracy is compared with one learner's. Each round trains a
new linear head on the frozen features of ``smollm2-135m[:6]``, weighted by ``D_t``; its
weighted training error ``eps_t`` gives its vote weight ``alpha_t = 1/2 log((1 - eps_t) / eps_t)``.

Head mode computes the features of every text once (one forward pass of the 6-layer model per
text) and shares them between rounds, so ten rounds cost little more than one. This runs on
300 training and 200 test questions so that it takes seconds on a CPU.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.base import clone

from skw2s import LLMAdaBoostClassifier, LLMClassifier
from skw2s.datasets import binarize_sciq, load_sciq, to_classification

X_train, y_train = to_classification(binarize_sciq(load_sciq("train").iloc[:300], random_state=0))
X_test, y_test = to_classification(binarize_sciq(load_sciq("test").iloc[:200], random_state=0))

learner = LLMClassifier("smollm2-135m[:6]", mode="head", n_epochs=5, max_length=96,
                        random_state=0)
single = clone(learner).fit(X_train, y_train)
single_acc = single.score(X_test, y_test)
print(f"one learner, uniform weights: test accuracy {single_acc:.3f}")

boost = LLMAdaBoostClassifier(learner, n_estimators=10, sampling="reweight", random_state=0)
boost.fit(X_train, y_train)
print(f"{len(boost.estimators_)} rounds kept; stop reason: {boost.stop_reason_}")

# %%
# Round by round: each learner alone, the weighted vote of rounds ``1..t`` (``predict``) and
# the soft pseudo-label (the alpha-weighted mean of the learners' probabilities,
# ``predict_proba``).
vote_acc = list(boost.staged_score(X_test, y_test))
soft_acc = [np.mean(boost.classes_[p.argmax(axis=1)] == y_test)
            for p in boost.staged_predict_proba(X_test)]
learner_acc = [est.score(X_test, y_test) for est in boost.estimators_]
rounds = np.arange(1, len(vote_acc) + 1)
for t in range(len(rounds)):
    print(f"round {rounds[t]:2d}: eps {boost.estimator_errors_[t]:.3f}  "
          f"alpha {boost.estimator_weights_[t]:.3f} | learner {learner_acc[t]:.3f}  "
          f"vote {vote_acc[t]:.3f}  soft {soft_acc[t]:.3f}")

# %%
fig, (ax_acc, ax_w) = plt.subplots(1, 2, figsize=(11, 4.2))
ax_acc.axhline(single_acc, color="grey", linestyle="--", label="one learner (uniform weights)")
ax_acc.plot(rounds, learner_acc, "x", color="black", label="learner of round t alone")
ax_acc.plot(rounds, vote_acc, "-o", color="tab:blue", label="ensemble: weighted vote")
ax_acc.plot(rounds, soft_acc, "-s", color="tab:orange", label="ensemble: soft label")
ax_acc.axhline(0.5, color="black", linewidth=0.5)
ax_acc.set_ylabel(f"accuracy on {len(X_test)} SciQ test questions")
ax_acc.set_title("Accuracy after each round")
ax_acc.legend(fontsize=8)
ax_w.bar(rounds - 0.2, boost.estimator_weights_, width=0.4, color="tab:purple",
         label="alpha_t (vote weight)")
ax_w.bar(rounds + 0.2, boost.estimator_errors_, width=0.4, color="tab:cyan",
         label="eps_t (weighted training error)")
ax_w.axhline(0.5, color="black", linewidth=0.5)
ax_w.set_title("Weights and errors of the rounds")
ax_w.legend(fontsize=8)
for ax in (ax_acc, ax_w):
    ax.set_xlabel("boosting round t")
    ax.set_xticks(rounds)
fig.suptitle("AdaBoost of smollm2-135m[:6] heads on binarised SciQ (300 training questions)")
fig.tight_layout()

# %%
# ``history_`` keeps the record of every round, rejected ones included:
print(boost.history_[0])
