"""The single-model estimators: LLMClassifier and LLMGenerator, and the generation mixin.

May import :mod:`skw2s.hf`, :mod:`skw2s.data`, :mod:`skw2s._infra` and :mod:`skw2s.core`.
"""
