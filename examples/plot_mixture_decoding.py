"""
Mixture decoding: one expert alone and the boosted mixture
==========================================================

A :class:`~skw2s.TokenAdaBoostGenerator` answers with the mixture of its experts (eq. 1 of the
paper): at every step each expert's next-token distribution is weighted by its ``alpha_t``, the
chosen token is fed back to every expert, and a multiple-choice question is answered by the
option with the lowest negative log-likelihood under the mixture.

Three rounds of LoRA experts of ``smollm2-135m`` (adapters on one shared base) are boosted on
48 ARC-Easy questions, one epoch each. On 24 held-out questions the plot compares, round by
round, the expert of round ``t`` alone with the mixture of experts ``1..t``: teacher-forced
token error on the answer tokens and option accuracy. Then a few answers are decoded both ways.
The slice is tiny so that the script runs on a CPU in a few minutes (the gallery page states the
time this build took); 24 test questions with four options each cannot separate small
differences from noise. ARC-Easy, not QuaRTz: on QuaRTz the pre-trained model's token error is
already low, a second round does not beat it, and boosting keeps one expert, so there is no
mixture to show.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np

from skw2s import LLMGenerator, TokenAdaBoostGenerator
from skw2s.datasets import load_arc, to_multiple_choice

X_train, y_train = to_multiple_choice(load_arc("easy", "train").iloc[:48])
X_test, y_test = to_multiple_choice(load_arc("easy", "test").iloc[:24])

boost = TokenAdaBoostGenerator(
    LLMGenerator("smollm2-135m", mode="lora", lr=3e-3, n_epochs=1, lora_r=8, max_length=128),
    n_estimators=3,
    random_state=0,
).fit(X_train, y_train)
print(f"eps_pre {boost.pretrained_error_:.3f}; kept {len(boost.estimators_)} expert(s), "
      f"alpha_t {np.round(boost.estimator_weights_, 3)}; stop reason {boost.stop_reason_}")
# This page is about mixtures: it stops here, rather than draw one point, if boosting kept a
# single expert (tests/test_gallery.py runs it and checks this).
if len(boost.estimators_) < 2:
    raise RuntimeError(f"boosting kept {len(boost.estimators_)} expert; this example needs 2 or "
                       f"more to show a mixture (stop reason: {boost.stop_reason_})")

# %%
# Scores on the held-out questions. ``estimator_token_errors`` scores each expert alone,
# ``staged_*`` the mixtures of the first ``t`` experts (one pass: the experts' logits are
# computed once and mixed for every ``t``). The "mixture" of the first expert alone is that
# expert.
expert_error = boost.estimator_token_errors(X_test, y_test)
mixture_error = np.array(list(boost.staged_token_error(X_test, y_test)))
mixture_acc = np.array(list(boost.staged_score(X_test, y_test)))
first_acc = mixture_acc[0]
rounds = np.arange(1, len(boost.estimators_) + 1)
for t in rounds:
    print(f"round {t}: token error expert {expert_error[t - 1]:.3f}, mixture "
          f"{mixture_error[t - 1]:.3f} | option accuracy mixture {mixture_acc[t - 1]:.3f}")
print(f"expert 1 alone: option accuracy {first_acc:.3f}")

# %%
fig, (ax_err, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
ax_err.plot(rounds, expert_error, "o", color="tab:grey", label="expert of round t alone")
ax_err.plot(rounds, mixture_error, "-o", color="tab:blue", label="mixture of experts 1..t")
ax_err.set_ylabel("test token error (teacher-forced argmax)")
ax_acc.plot(rounds, mixture_acc, "-o", color="tab:blue", label="mixture of experts 1..t")
ax_acc.plot([1], [first_acc], "o", color="tab:grey", label="expert 1 alone")
chance = float(np.mean([1 / len(c) for c in X_test["choices"]]))
ax_acc.axhline(chance, color="black", linewidth=0.5, label=f"chance ({chance:.2f})")
ax_acc.set_ylabel("test option accuracy (lowest NLL)")
for ax in (ax_err, ax_acc):
    ax.set_xlabel("boosting round t")
    ax.set_xticks(rounds)
    ax.legend(fontsize=8)
fig.suptitle(f"Token-level boosting of smollm2-135m LoRA experts on ARC-Easy "
             f"(48 training / 24 test questions, eps_pre = {boost.pretrained_error_:.3f})")
fig.tight_layout()

# %%
# Free-text decoding: greedy from the first expert alone and from the mixture (the KV-cached
# path; see the user guide's page on mixture decoding). ``speculative_k`` gives the same
# greedy tokens by drafting with one expert and verifying with the others.
prompts = list(X_test["prompt"][:2])
alone = boost.estimators_[0].generate(prompts, max_new_tokens=8)
mixed = boost.generate(prompts, max_new_tokens=8)
speculative = boost.generate(prompts, max_new_tokens=8, speculative_k=2)
for prompt, a, m in zip(prompts, alone, mixed):
    print(prompt.splitlines()[0][:100])
    print(f"    expert 1: {a!r}\n    mixture:  {m!r}")
print("speculative decoding gives the same tokens:", speculative == mixed)
