"""The cache store runs no code from its entries: untrusted types, tampered archives, old pickle
entries and crafted decision trees are rejected, through the Store and through `skw2s run`."""

from __future__ import annotations

import copy
import hashlib
import importlib
import io
import json
import os
import pickle
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
import yaml
from sklearn.ensemble import AdaBoostClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

import skw2s
from skw2s._infra import cache as _cache
from skw2s._infra.cache import Store, trusted_types
from skw2s.cli import main


pytestmark = pytest.mark.usefixtures("fresh_warning_memory")


# -- trust -------------------------------------------------------------------------------------
class Opaque:
    """A class of the user's own code: not trusted."""


def test_trusted_types_are_named_classes_and_cover_the_estimators():
    names = trusted_types()
    assert len(names) == len(set(names))
    for name in names:
        module, _, attr = name.rpartition(".")
        assert isinstance(getattr(importlib.import_module(module), attr), type), name
    for cls in (skw2s.LLMClassifier, skw2s.LLMGenerator, skw2s.LLMAdaBoostClassifier,
                skw2s.TokenAdaBoostGenerator, skw2s.DifficultySplitter,
                skw2s.WeakToStrongPipeline):
        assert f"{cls.__module__}.{cls.__name__}" in names
    assert "sklearn.tree._tree.Tree" in names
    assert f"{type(Path()).__module__}.{type(Path()).__name__}" in names
    assert not [n for n in names if n.startswith(("os.", "builtins.", "posix.", "subprocess."))]


def test_save_skips_untrusted_types_with_one_warning_per_type(tmp_path, store_entries,
                                                              store_warnings):
    store = Store(tmp_path)
    name = f"{Opaque.__module__}.Opaque"
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert store.save("ns", "a", {"learner": Opaque()}) is None
        assert store.save("ns", "b", [Opaque()]) is None  # same type: no second warning
    messages = store_warnings(record)
    assert len(messages) == 1
    assert name in messages[0] and "recomputed on the next run" in messages[0]
    assert store_entries(tmp_path) == []
    with pytest.warns(RuntimeWarning, match="getcwd"):  # a function is never stored
        assert store.save("ns", "c", {"callback": os.getcwd}) is None
    with pytest.warns(RuntimeWarning, match="generator"):  # skops cannot describe it
        assert store.save("ns", "d", (x for x in range(3))) is None
    assert store_entries(tmp_path) == []


def _tuple_node(*items):
    """The skops node of a tuple of strings, taken from a real archive."""
    payload = sio.dumps(tuple(items))
    schema = json.loads(zipfile.ZipFile(io.BytesIO(payload)).read("schema.json"))
    return {k: v for k, v in schema.items() if k not in ("protocol", "_skops_version")}


def _archive(root):
    """A skops archive whose object is the node ``root``."""
    reference = json.loads(zipfile.ZipFile(io.BytesIO(sio.dumps(0))).read("schema.json"))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("schema.json", json.dumps(
            dict(root, protocol=reference["protocol"], _skops_version=reference["_skops_version"])
        ))
    return buffer.getvalue()


def _malicious_archives(marker):
    """Archives naming os.system / builtins.eval. The first two would run a command that
    creates ``marker`` if their type were trusted."""
    call = {"__loader__": "ConstructorFromReduceNode"}
    in_dict = json.loads(zipfile.ZipFile(io.BytesIO(sio.dumps({"f": 0}))).read("schema.json"))
    in_dict = {k: v for k, v in in_dict.items() if k not in ("protocol", "_skops_version")}
    as_function = copy.deepcopy(in_dict)
    as_function["content"]["f"] = {"__class__": "system", "__module__": "os",
                                   "__loader__": "FunctionNode"}
    as_type = copy.deepcopy(in_dict)
    as_type["content"]["f"] = {"__class__": "eval", "__module__": "builtins",
                               "__loader__": "TypeNode"}
    return {
        "os.system call": (_archive(dict(call, __class__="system", __module__="os",
                                         content=_tuple_node(f"touch '{marker}'"))), "os.system"),
        "builtins.eval call": (_archive(dict(
            call, __class__="eval", __module__="builtins",
            content=_tuple_node(f"open({str(marker)!r}, 'w').close()"))), "builtins.eval"),
        "os.system function": (_archive(as_function), "os.system"),
        "builtins.eval type": (_archive(as_type), "builtins.eval"),
    }


@pytest.mark.parametrize(
    "case", ["os.system call", "builtins.eval call", "os.system function", "builtins.eval type"]
)
def test_malicious_skops_entry_is_rejected_and_runs_nothing(tmp_path, case, store_warnings):
    marker = tmp_path / "pwned"
    payload, name = _malicious_archives(marker)[case]
    store = Store(tmp_path / "cache")
    path = store.save("pipeline", "key", {"ok": 1})
    path.write_bytes(_cache._frame(payload))  # a valid checksum: tampering, not an accident
    with pytest.warns(RuntimeWarning) as record:
        assert store.load("pipeline", "key") is None
    message = " ".join(store_warnings(record))
    assert name in message and str(path) in message and "does not trust" in message
    assert "Nothing in it was built or run" in message
    assert not marker.exists()
    assert not path.exists()  # removed, so the work is recomputed and stored again
    if case.endswith("call"):
        # The payload is live: trusting its type would have run the command.
        sio.loads(payload, trusted=[name])
        assert marker.exists()


def test_compressed_archive_member_is_rejected(tmp_path):
    # A member that inflates to 20 MB from 20 kB (a real bomb inflates much further): refused
    # before anything is read.
    schema = zipfile.ZipFile(io.BytesIO(sio.dumps(0))).read("schema.json")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("schema.json", schema)
        archive.writestr("bomb.bin", b"\0" * 20_000_000)
    store = Store(tmp_path)
    path = store.save("ns", "key", 0)
    path.write_bytes(_cache._frame(buffer.getvalue()))
    with pytest.warns(RuntimeWarning, match="'schema.json' is compressed; the store writes none"):
        assert store.load("ns", "key") is None
    assert not path.exists()


class _Exploit:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_old_pickle_entries_are_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"learner": _Exploit(f"touch '{marker}'")})
    old = b"skw2s-store-v1\n" + hashlib.sha256(payload).hexdigest().encode() + payload
    store = Store(tmp_path / "cache")
    (tmp_path / "cache" / "pipeline").mkdir(parents=True)
    legacy = tmp_path / "cache" / "pipeline" / "key.pkl"
    legacy.write_bytes(old)  # where the previous format kept it, with its valid checksum
    assert store.load("pipeline", "key") is None
    assert legacy.exists() and not marker.exists()
    current = tmp_path / "cache" / "pipeline" / "key.skops"
    current.write_bytes(old)  # the same bytes under the new name: wrong marker, rejected
    with pytest.warns(RuntimeWarning, match="not in this store's format"):
        assert store.load("pipeline", "key") is None
    assert not marker.exists() and not current.exists()
    pickle.loads(payload)  # the payload is live: unpickling it runs the command
    assert marker.exists()


# -- scikit-learn trees --------------------------------------------------------------------------
def _trees():
    rng = np.random.RandomState(0)
    X = rng.randn(120, 5)
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    return AdaBoostClassifier(DecisionTreeClassifier(max_depth=2), n_estimators=3).fit(X, y), X


def _tampered(model, field, value):
    bad = copy.deepcopy(model)
    tree = bad.estimators_[0].tree_
    state = tree.__getstate__()
    nodes = state["nodes"].copy()
    nodes[field][0] = value
    state["nodes"] = nodes
    tree.__setstate__(state)
    return bad


def test_decision_trees_round_trip(tmp_path):
    model, X = _trees()
    linear = LogisticRegression().fit(X, X[:, 0] > 0)
    store = Store(tmp_path)
    store.save("ns", "key", {"weak": model, "linear": linear})
    back = store.load("ns", "key")
    np.testing.assert_array_equal(back["weak"].predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(back["linear"].predict_proba(X), linear.predict_proba(X))


@pytest.mark.parametrize(
    "field, value, why",
    [("left_child", 10**6, "out of range"), ("right_child", 0, "out of range"),
     ("feature", 99, "out of range"), ("feature", -5, "out of range")],
)
def test_tampered_decision_tree_is_rejected(tmp_path, field, value, why):
    model, _ = _trees()
    store = Store(tmp_path)
    path = store.save("ns", "key", {"weak": _tampered(model, field, value)})
    assert path is not None
    with pytest.warns(RuntimeWarning, match=f"invalid decision tree.*{why}"):
        assert store.load("ns", "key") is None
    assert not path.exists()


def test_tree_without_nodes_is_rejected(tmp_path):
    model, _ = _trees()
    tree = model.estimators_[0].tree_
    state = tree.__getstate__()
    tree.__setstate__(dict(state, node_count=0, nodes=state["nodes"][:0],
                           values=state["values"][:0]))
    store = Store(tmp_path)
    store.save("ns", "key", model)
    with pytest.warns(RuntimeWarning, match="a decision tree has no nodes"):
        assert store.load("ns", "key") is None


def test_tree_with_fewer_features_than_its_estimator_is_rejected(tmp_path):
    model, _ = _trees()
    model.estimators_[0].n_features_in_ = 3
    store = Store(tmp_path)
    store.save("ns", "key", model)
    with pytest.warns(RuntimeWarning, match="expects 3 features but its tree splits on 5"):
        assert store.load("ns", "key") is None



# -- end to end: skw2s run --force on a tampered cache -------------------------------------------
def test_run_force_on_a_tampered_cache_runs_nothing_and_finishes(tiny_lm, tmp_path, data_dir,
                                                                 store_warnings):
    config = {
        "name": "tiny-binary", "task": "binary", "dataset": "sciq", "n_examples": 48,
        "test_size": 0.34, "seeds": [0],
        "weak": {"model": tiny_lm, "mode": "head", "n_epochs": 50, "lr": 0.05, "device": "cpu"},
        "boost": {"n_estimators": 2},
        "strong": {"model": tiny_lm + "[:1]", "mode": "head", "n_epochs": 50, "lr": 0.05,
                   "device": "cpu"},
        "output_dir": str(tmp_path / "run"),
    }
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(config))
    argv = ["run", str(config_path), "--data-dir", str(data_dir)]
    assert main(argv) == 0
    seed_file = tmp_path / "run" / "seed0.json"
    first = json.loads(seed_file.read_text())
    cache = tmp_path / "run" / "cache" / "seed0"
    stages = sorted((cache / "pipeline").glob("*.skops"))
    rounds = sorted((cache / "weak-rounds").rglob("*.skops"))
    assert len(stages) == 7 and len(rounds) == 2  # split, weak, 2 labels, 2 students, ceiling

    # Every finished stage and one weak round replaced by an archive that calls os.system (with
    # a valid checksum), each next to a pickle bomb in the old format and name.
    marker = tmp_path / "pwned"
    payload, _ = _malicious_archives(marker)["os.system call"]
    command = f"touch '{marker}'"
    bomb = pickle.dumps(_Exploit(command))
    for entry in [*stages, rounds[0]]:
        entry.write_bytes(_cache._frame(payload))
        entry.with_suffix(".pkl").write_bytes(
            b"skw2s-store-v1\n" + hashlib.sha256(bomb).hexdigest().encode() + bomb
        )
    with pytest.warns(RuntimeWarning) as record:
        assert main([*argv, "--force"]) == 0
    rejected = [m for m in store_warnings(record) if "os.system" in m]
    assert len(rejected) == 8 and all("Nothing in it was built or run" in m for m in rejected)
    assert {str(p) for p in [*stages, rounds[0]]} == {
        m.split("Ignoring cache entry ")[1].split(": it holds")[0] for m in rejected
    }
    assert not marker.exists()

    # The run finished: the seed was recomputed (same seeds, same result) and the cache healed.
    second = json.loads(seed_file.read_text())
    assert [s["cached"] for s in second["stages"]] == [False] * 7
    # The round entries are named by hash, so which round was tampered depends on the key: that
    # one was refitted, the other still came from the cache.
    assert sorted(r["cached"] for r in second["weak_rounds"]) == [False, True]
    assert [r["accuracy"] for r in second["report"]] == pytest.approx(
        [r["accuracy"] for r in first["report"]], abs=1e-12
    )
    store = Store(cache)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        for entry in stages:
            assert store.load("pipeline", entry.stem) is not None
