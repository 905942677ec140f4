"""
Token weights of token-level boosting, as a heat map
====================================================

In the generation setting (EnsemW2S Algorithm 1) AdaBoost's weights live on answer *tokens*:
every answer token of every easy question starts with weight ``1/n``; after each round the
tokens the new expert predicts wrongly (teacher-forced argmax) are up-weighted by
``exp(alpha_t)``, and the next expert trains on ``n`` tokens drawn by those weights.
``TokenAdaBoostGenerator.token_weights_`` holds the final weights, one array per question over
its answer tokens (the EOS token included).

The experts are LoRA adapters of ``smollm2-135m`` on one shared base, fine-tuned on 16 ARC-Easy
questions for 2 rounds. The slice is this small so that the script runs on a CPU in a few
minutes (the gallery page states the time this build took); the weights it shows are those
of that run.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np

from skw2s import LLMGenerator, TokenAdaBoostGenerator
from skw2s.datasets import format_completion, load_arc, to_multiple_choice
from skw2s.training import encode_sft

X, y = to_multiple_choice(load_arc("easy", "train").iloc[:16])
print(X["prompt"][0], "->", X["choices"][0][y[0]])

boost = TokenAdaBoostGenerator(
    LLMGenerator("smollm2-135m", mode="lora", lr=2e-3, n_epochs=2, lora_r=8, max_length=96),
    n_estimators=2,
    random_state=0,
).fit(X, y)
print(f"eps_pre {boost.pretrained_error_:.3f}; eps_t {np.round(boost.estimator_errors_, 3)}; "
      f"alpha_t {np.round(boost.estimator_weights_, 3)}; stop reason {boost.stop_reason_}")

# %%
# The answer tokens, as training saw them: ``" " + correct choice`` and EOS, tokenised on
# their own (:func:`skw2s.training.encode_sft`).
answers = [format_completion(choices[label]) for choices, label in zip(X["choices"], y)]
encoded = encode_sft(boost.tokenizer_, list(X["prompt"]), answers)
tokens = [boost.tokenizer_.convert_ids_to_tokens(ex.input_ids[ex.answer_start:]) for ex in encoded]
weights = boost.token_weights_
assert [len(t) for t in tokens] == [len(w) for w in weights]
n_tokens = sum(len(w) for w in weights)

# %%
# Weights relative to uniform (``n * D``; 1 is the starting weight). Tokens the experts keep
# getting wrong stand out; EOS, the last token of each row, is usually easy.
width = max(len(w) for w in weights)
grid = np.full((len(weights), width), np.nan)
for i, w in enumerate(weights):
    grid[i, : len(w)] = n_tokens * w
fig, ax = plt.subplots(figsize=(11, 6))
image = ax.imshow(grid, cmap="magma_r", aspect="auto", vmin=0)
for i, row in enumerate(tokens):
    for j, tok in enumerate(row):
        text = "EOS" if j == len(row) - 1 else tok.replace("Ġ", "·")
        shade = grid[i, j] > 0.6 * np.nanmax(grid)
        ax.text(j, i, text[:9], ha="center", va="center", fontsize=7,
                color="white" if shade else "black")
ax.set_xlabel("answer token position")
ax.set_ylabel("training question")
ax.set_yticks(range(len(weights)))
ax.set_title(f"Token weights n*D after {len(boost.estimators_)} round(s) of token-level boosting "
             f"(16 ARC-Easy answers, n = {n_tokens} tokens)")
fig.colorbar(image, ax=ax, label="weight relative to uniform")
fig.tight_layout()

# %%
# The weights sum to one over all answer tokens:
print(f"sum of D: {boost.token_weights_flat_.sum():.6f}; "
      f"largest relative weight {np.nanmax(grid):.2f}, smallest {np.nanmin(grid):.2f}")
