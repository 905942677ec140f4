"""Pure math: boosting weight steps, token weights, mixtures, metrics and paired statistics.

May import numpy, scipy and torch tensors only; never another skw2s package.
"""
