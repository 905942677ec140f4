"""The module paths skw2s had before its layer packages, mapped to where each module lives now.

``import skw2s.classifier``, ``from skw2s.datasets import load_sciq`` and pickles whose classes
were saved under an old path keep working: :class:`_AliasFinder` answers an old name with the
module now at the new path (the same module object, so there is never a second copy).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

#: old module path -> new module path (a package maps its submodules too)
OLD_MODULES = {
    "skw2s._weights": "skw2s.core.weights",
    "skw2s._token_weights": "skw2s.core.token_weights",
    "skw2s._mixture": "skw2s.core.mixture",
    "skw2s.stats": "skw2s.core.stats",
    "skw2s.metrics": "skw2s.core.metrics",
    "skw2s._validation": "skw2s._infra.validation",
    "skw2s._cache": "skw2s._infra.cache",
    "skw2s.datasets": "skw2s.data.datasets",
    "skw2s._tables": "skw2s.data.tables",
    "skw2s._files": "skw2s.data.files",
    "skw2s._hub_datasets": "skw2s.data.hub",
    "skw2s._inputs": "skw2s.data.inputs",
    "skw2s.models": "skw2s.hf.models",
    "skw2s._offline": "skw2s.hf.offline",
    "skw2s._hub_models": "skw2s.hf.hub",
    "skw2s.training": "skw2s.hf.training",
    "skw2s._choice_training": "skw2s.hf.choice_training",
    "skw2s._features": "skw2s.hf.features",
    "skw2s._serialization": "skw2s.hf.serialization",
    "skw2s._distributed": "skw2s.hf.distributed",
    "skw2s._efficiency": "skw2s.hf.efficiency",
    "skw2s.testing": "skw2s.hf.testing",
    "skw2s.decoding": "skw2s.hf.decoding",
    "skw2s.losses": "skw2s.hf.losses",
    "skw2s.classifier": "skw2s.estimators.classifier",
    "skw2s.generator": "skw2s.estimators.generator",
    "skw2s._generation": "skw2s.estimators.generation_mixin",
    "skw2s.pipeline": "skw2s.w2s.pipeline",
    "skw2s._evaluation": "skw2s.w2s.evaluation",
    "skw2s.difficulty": "skw2s.w2s.difficulty",
    "skw2s.report": "skw2s.experiment.report",
    "skw2s.comparison": "skw2s.experiment.comparison",
}


def new_module_name(name: str) -> str | None:
    """The current path of the module that was ``name`` (``None`` when ``name`` never moved)."""
    for old, new in OLD_MODULES.items():
        if name == old or name.startswith(old + "."):
            return new + name[len(old):]
    return None


def old_names(qualified: str) -> list[str]:
    """The names ``module.Class`` had under the old module paths (for trust lists of archives
    written before the move)."""
    module, _, attr = qualified.rpartition(".")
    return [old + module[len(new):] + "." + attr for old, new in OLD_MODULES.items()
            if module == new or module.startswith(new + ".")]


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec):
        return None  # a placeholder, replaced in exec_module

    def exec_module(self, module):
        # The import system returns whatever sits in sys.modules under the name after
        # exec_module, so the old name resolves to the very module at the new path.
        sys.modules[module.__name__] = importlib.import_module(self.target)


class _AliasFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if not fullname.startswith("skw2s."):
            return None
        new = new_module_name(fullname)
        if new is None:
            return None
        return importlib.util.spec_from_loader(fullname, _AliasLoader(new))


def install() -> None:
    """Put the finder first on :data:`sys.meta_path` (once), before the path finder could load
    a second copy of a moved package's submodule under its old name."""
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _AliasFinder())


install()
