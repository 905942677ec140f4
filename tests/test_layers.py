"""The layer packages: old module paths still resolve to the moved modules."""

import importlib
import pickle
import sys

import pytest

import skw2s
from skw2s import _aliases


@pytest.mark.parametrize("old", sorted(_aliases.OLD_MODULES))
def test_old_module_paths_resolve_to_the_moved_module(old):
    new = _aliases.OLD_MODULES[old]
    assert importlib.import_module(old) is importlib.import_module(new)
    assert sys.modules[old] is sys.modules[new]


def test_old_submodule_paths_and_attributes():
    from skw2s.decoding.generate import mixture_generate
    from skw2s.hf.decoding import generate

    assert mixture_generate is generate.mixture_generate
    assert skw2s.stats is importlib.import_module("skw2s.core.stats")
    with pytest.raises(AttributeError):
        skw2s.no_such_module  # noqa: B018


def test_pickles_naming_old_module_paths_load():
    from skw2s.core.weights import BoostStep

    step = BoostStep(weights=None, alpha=1.0, error=0.25, stop_reason=None)
    data = pickle.dumps(step, protocol=0).replace(b"skw2s.core.weights", b"skw2s._weights")
    assert b"skw2s._weights" in data
    assert pickle.loads(data) == step


def test_public_names_unchanged():
    assert skw2s.__all__ == [
        "DifficultySplitter", "LLMAdaBoostClassifier", "LLMClassifier", "LLMGenerator",
        "TokenAdaBoostGenerator", "UniformEnsembleClassifier", "UniformEnsembleGenerator",
        "WeakToStrongPipeline", "__version__", "make_pgr_scorer", "pgr_score",
    ]
