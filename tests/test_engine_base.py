"""The boosting engine's contract: every hook ``fit`` calls is declared on the base class."""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest

from skw2s.ensemble._base import BaseWeakEnsemble, FitContext, FitData
from skw2s.ensemble._classifier import BaseClassifierEnsemble, ClassifierContext
from skw2s.ensemble._generator import BaseGeneratorEnsemble, GeneratorContext
from skw2s import (
    LLMAdaBoostClassifier,
    TokenAdaBoostGenerator,
    UniformEnsembleClassifier,
    UniformEnsembleGenerator,
)

ENSEMBLES = [LLMAdaBoostClassifier, UniformEnsembleClassifier, TokenAdaBoostGenerator,
             UniformEnsembleGenerator]


def _called_hooks():
    """The private methods of ``self`` that the loop (``fit`` and the steps it runs) calls."""
    names = set()
    for method in ("fit", "_split_holdout", "_round_key_parts", "_load_or_train"):
        source = inspect.getsource(getattr(BaseWeakEnsemble, method))
        names |= set(re.findall(r"self\.(_[a-z_]+)\(", source))
    return names


def test_every_hook_of_the_loop_is_declared_on_the_base():
    hooks = _called_hooks()
    assert {"_prototype", "_check_data", "_subset", "_initial_weights", "_draw",
            "_fit_learner", "_mistakes", "_boost", "_likelihoods", "_fit_gate"} <= hooks
    undeclared = sorted(h for h in hooks if h not in vars(BaseWeakEnsemble))
    assert undeclared == []


@pytest.mark.parametrize("hook", ["_prototype", "_check_data", "_subset", "_initial_weights",
                                  "_resampling", "_draw", "_fit_learner", "_mistakes",
                                  "_boost", "_likelihoods", "_fit_gate"])
def test_abstract_hooks_raise_and_every_ensemble_writes_them(hook):
    method = getattr(BaseWeakEnsemble, hook)
    n_args = len(inspect.signature(method).parameters) - 1
    with pytest.raises(NotImplementedError):
        method(BaseWeakEnsemble(), *([None] * n_args))
    for cls in ENSEMBLES:
        assert getattr(cls, hook) is not method, f"{cls.__name__} does not write {hook}"


@pytest.mark.parametrize("cls", ENSEMBLES)
def test_one_fit_signature(cls):
    params = list(inspect.signature(cls.fit).parameters)
    assert params == ["self", "X", "y", "sample_weight"]


def test_check_data_has_no_side_effect_on_the_targets():
    ens = LLMAdaBoostClassifier()
    data = ens._check_data(["a b", "c d", "e f"], ["x", "y", "x"], None)
    assert isinstance(data, FitData) and not hasattr(ens, "classes_")
    assert list(data.classes) == ["x", "y"] and list(data.y_enc) == [0, 1, 0]
    ens._set_target_attributes(data)
    assert list(ens.classes_) == ["x", "y"] and ens.n_classes_ == 2
    sub = ens._subset(data, np.array([0, 2]))
    assert sub.n == 2 and list(sub.y) == ["x", "x"]


def test_contexts_are_dataclasses():
    assert issubclass(ClassifierContext, FitContext)
    assert issubclass(GeneratorContext, FitContext)
    context = GeneratorContext(lengths=np.array([2, 3]), tokenizer=None)
    assert context.pretrained_incorrect is None and context.eps_pre is None
    assert BaseClassifierEnsemble._learner_fitted_attributes == ("classes_",)
    assert BaseGeneratorEnsemble._learner_fitted_attributes == ("tokenizer_",)


def test_generator_ensembles_refuse_sample_weight():
    import pandas as pd

    X = pd.DataFrame({"prompt": ["Q?"], "choices": [["a", "b"]]})
    for cls in (TokenAdaBoostGenerator, UniformEnsembleGenerator):
        with pytest.raises(ValueError, match="takes no sample_weight"):
            cls().fit(X, [0], sample_weight=[1.0])
