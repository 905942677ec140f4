"""skw2s: weak-to-strong generalization with boosted ensembles of language models.

Implements EnsemW2S (arXiv 2410.04571) as scikit-learn estimators that wrap Hugging Face
models. ``import skw2s`` is cheap: torch and transformers load when a model is first needed.
"""

from . import _aliases  # first: installs the finder of the old module paths
from .estimators.classifier import LLMClassifier
from .w2s.difficulty import DifficultySplitter
from .ensemble import (
    LLMAdaBoostClassifier,
    TokenAdaBoostGenerator,
    UniformEnsembleClassifier,
    UniformEnsembleGenerator,
)
from .estimators.generator import LLMGenerator
from .core.metrics import make_pgr_scorer, pgr_score
from .w2s.pipeline import WeakToStrongPipeline

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


def __getattr__(name):
    # ``skw2s.stats``, ``skw2s.datasets``, ...: the public modules' old paths, imported on use.
    target = _aliases.new_module_name(f"skw2s.{name}")
    if target is None:
        raise AttributeError(f"module 'skw2s' has no attribute {name!r}")
    import importlib

    return importlib.import_module(target)
