"""Data: the question tables (SciQ, QuaRTz, ARC, your own files, the Hub) and the generation inputs.

May import :mod:`skw2s.core` and :mod:`skw2s._infra`; never torch, transformers or a model.
"""
