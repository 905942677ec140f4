"""The weak-side ensembles: one boosting loop (``_base``), its binary-classifier and generator
halves (``_classifier``, ``_generator``), and one small module per variant.

=========================================  =============================================
:class:`~skw2s.LLMAdaBoostClassifier`      binary AdaBoost (Algorithm 2), ``adaboost.py``
:class:`~skw2s.TokenAdaBoostGenerator`     token-level EnsemW2S (Algorithm 1),
                                           ``token_adaboost.py``
:class:`~skw2s.UniformEnsembleClassifier`  the uniform controls (T learners, equal
:class:`~skw2s.UniformEnsembleGenerator`   weights, optional bagging), ``uniform.py``
=========================================  =============================================
"""

from .adaboost import LLMAdaBoostClassifier
from .token_adaboost import TokenAdaBoostGenerator
from .uniform import UniformEnsembleClassifier, UniformEnsembleGenerator

__all__ = [
    "LLMAdaBoostClassifier",
    "TokenAdaBoostGenerator",
    "UniformEnsembleClassifier",
    "UniformEnsembleGenerator",
]
