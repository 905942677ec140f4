"""skw2s: weak-to-strong generalization with boosted ensembles of language models.

Implements EnsemW2S (arXiv 2410.04571) as scikit-learn estimators that wrap Hugging Face
models. ``import skw2s`` is cheap: torch and transformers load when a model is first needed.
"""

from .classifier import LLMClassifier
from .difficulty import DifficultySplitter
from .ensemble import (
    LLMAdaBoostClassifier,
    TokenAdaBoostGenerator,
    UniformEnsembleClassifier,
    UniformEnsembleGenerator,
)
from .generator import LLMGenerator
from .metrics import make_pgr_scorer, pgr_score
from .pipeline import WeakToStrongPipeline

__version__ = "0.1.0"

__all__ = [
    "DifficultySplitter",
    "LLMAdaBoostClassifier",
    "LLMClassifier",
    "LLMGenerator",
    "TokenAdaBoostGenerator",
    "UniformEnsembleClassifier",
    "UniformEnsembleGenerator",
    "WeakToStrongPipeline",
    "__version__",
    "make_pgr_scorer",
    "pgr_score",
]
