"""skw2s: weak-to-strong generalization with boosted ensembles of language models.

Implements EnsemW2S (arXiv 2410.04571) as scikit-learn estimators that wrap Hugging Face
models. ``import skw2s`` is cheap: torch and transformers load when a model is first needed.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
