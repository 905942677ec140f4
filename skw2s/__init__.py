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
from ._infra.cache import trust_types as _trust_types

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

# Store entries (skw2s._infra.cache) may hold these classes, by their current module paths and
# the paths they had before the layer packages (entries written by older versions).
_DATA_TYPES = (
    "skw2s.data.inputs.GenerationInput",
    "skw2s.experiment._data._GradeOf",
    "skw2s.core.weights.BoostStep",
    "skw2s.hf.models.ModelSpec",
    "skw2s.hf.training.EncodedExample",
)
_EXPORTED = sorted(f"{obj.__module__}.{obj.__name__}" for obj in map(globals().get, __all__)
                   if isinstance(obj, type) and obj.__module__.split(".")[0] == "skw2s")
_trust_types(*_EXPORTED, *_DATA_TYPES,
             *(old for name in (*_EXPORTED, *_DATA_TYPES) for old in _aliases.old_names(name)))
del _DATA_TYPES, _EXPORTED


def __getattr__(name):
    # ``skw2s.stats``, ``skw2s.datasets``, ...: the public modules' old paths, imported on use.
    target = _aliases.new_module_name(f"skw2s.{name}")
    if target is None:
        raise AttributeError(f"module 'skw2s' has no attribute {name!r}")
    import importlib

    return importlib.import_module(target)
