"""Infrastructure: parameter validation and the store of finished rounds and stages.

May import :mod:`skw2s.core`; knows no model, no dataset and no estimator.
"""
