"""The layer packages: the import contracts, no private name across packages, and the old
module paths, which still resolve to the moved modules."""

import ast
import importlib
import os
import pathlib
import pickle
import subprocess
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


ROOT = pathlib.Path(__file__).resolve().parents[1]
LAYERS = ("cli", "experiment", "w2s", "ensemble", "estimators", "hf", "data", "_infra", "core")


def test_import_contracts_hold():
    """pyproject.toml's import-linter contracts: every arrow between layer packages points
    down, no circle inside experiment/ and w2s/, and no model library below hf/."""
    pytest.importorskip("importlinter")
    proc = subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports; raise SystemExit("
         "lint_imports(config_filename='pyproject.toml', no_cache=True))"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_every_module_lives_in_a_layer_package():
    top = sorted(p.name for p in (ROOT / "skw2s").iterdir()
                 if p.name != "__pycache__" and (p.is_dir() or p.suffix == ".py"))
    assert top == sorted(["__init__.py", "__main__.py", "_aliases.py", "cli.py", "exceptions.py",
                          "ensemble", "experiment", "w2s",
                          "estimators", "hf", "data", "_infra", "core"])
    for layer in LAYERS[1:]:
        doc = importlib.import_module(f"skw2s.{layer}").__doc__
        assert doc and doc.strip(), f"skw2s/{layer}/__init__.py says what the package is for"


def _private_imports_across_packages():
    found = []
    for path in sorted((ROOT / "skw2s").rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        package = parts[:-1] if parts[-1] != "__init__" else parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = base + (node.module.split(".") if node.module else [])
            else:
                target = (node.module or "").split(".")
            if target[0] != "skw2s":
                continue
            for alias in node.names:
                full = target + [alias.name]
                if len(parts) > 1 and len(full) > 1 and full[1] == parts[1]:
                    continue  # inside one layer package
                private = [p for p in full[1:] if p.startswith("_") and not p.startswith("__")
                           and p not in ("_infra", "_aliases")]
                if private:
                    found.append(f"{'.'.join(parts)}:{node.lineno} imports {'.'.join(full)}")
    return found


def test_no_private_name_crosses_a_layer_package():
    assert _private_imports_across_packages() == []


def _design_tree():
    text = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    blocks = text.split("```")
    return blocks[1], blocks[3]


def test_design_doc_opens_with_the_tree_of_every_package_and_module():
    tree, _ = _design_tree()
    assert tree.lstrip("\n").startswith("skw2s/")
    missing = []
    for path in sorted((ROOT / "skw2s").rglob("*")):
        rel = path.relative_to(ROOT / "skw2s")
        if "__pycache__" in rel.parts or rel.name == "__init__.py":
            continue
        if path.is_dir():
            if f"{rel.name}/" not in tree:
                missing.append(f"{rel}/")
        elif path.suffix == ".py" and rel.name not in tree:
            missing.append(str(rel))
    assert missing == [], "docs/design.md's tree does not list these"


def test_design_doc_arrows_follow_the_layers_contract():
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    layers = next(c for c in config["tool"]["importlinter"]["contracts"]
                  if c["id"] == "layers")["layers"]
    _, arrows = _design_tree()
    assert arrows.strip() == " -> ".join(name.removeprefix("skw2s.") for name in layers)
    assert tuple(name.removeprefix("skw2s.") for name in layers) == LAYERS
