"""Inference kernels of the generation estimators: teacher-forced scoring and decoding.

Everything here works on one model or on a weighted mixture of experts (ALGORITHMS.md, eq. 1)
through the same code: a single model is the mixture of one expert. An *expert* is a causal LM
called like a Hugging Face model, or an :class:`AdapterExpert`, one named LoRA adapter of a
peft model that holds several. The mixture formulas themselves are in :mod:`skw2s.core.mixture`
(pure torch); these modules run the models.

- :mod:`~skw2s.decoding.experts`: :class:`AdapterExpert`, the vocabulary checks, and the groups
  of experts that run in one forward (all LoRA adapters of one base, stacked);
- :mod:`~skw2s.decoding.teacher_forced`: :func:`token_predictions` /
  :func:`token_predictions_mixture` (teacher-forced argmax of every answer token) and
  :func:`choice_nll` / :func:`choice_nll_mixture` (NLL of each answer option), with the prompt
  of a question run once for all its options;
- :mod:`~skw2s.decoding.generate`: :func:`mixture_generate`, batched decoding from the mixture
  with left padding and KV caches, greedy or sampled, and :func:`encode_prompts`;
- :mod:`~skw2s.decoding.speculative`: greedy speculative mixture decoding
  (``mixture_generate(..., speculative_k=k)``).

Every fast path has a plain reference behind a switch (``share_prompts``, ``batch_adapters``,
``use_cache``, ``speculative_k``) that the tests compare it with; ``benchmarks/`` measures
them. torch is imported inside the functions, so importing this package is cheap.
"""

from .experts import AdapterExpert, check_shared_vocabulary
from .generate import encode_prompts, mixture_generate
from .teacher_forced import (
    answer_token_errors,
    choice_nll,
    choice_nll_mixture,
    expert_gold_log_probs,
    token_predictions,
    token_predictions_mixture,
)

__all__ = [
    "AdapterExpert",
    "answer_token_errors",
    "check_shared_vocabulary",
    "choice_nll",
    "choice_nll_mixture",
    "encode_prompts",
    "expert_gold_log_probs",
    "mixture_generate",
    "token_predictions",
    "token_predictions_mixture",
]
