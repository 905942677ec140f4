"""The weak-to-strong protocol: the pipeline, its stages, difficulty splitting and evaluation.

May import :mod:`skw2s.ensemble` and every layer below it; never the experiment layer.
"""
