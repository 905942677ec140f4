"""A cache entry can neither hang, nor exhaust memory, nor crash every rerun (issue 29, §2).

Each fault runs end to end in a fresh process, under a timeout (a hang fails the test instead
of hanging the suite): an entry replaced by a FIFO or a symbolic link to ``/dev/zero`` is
removed unread; a forged entry with a valid checksum and trusted types but the wrong content
(a split indexing row 10**6, a ``DummyClassifier`` as the weak stage, the string ``'hello'``
as a boosting round) is discarded and recomputed, and the next run finds the cache healed;
the temporary files of writes killed half-way are removed once stale."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier

from skw2s._infra import cache as _cache
from skw2s._infra.cache import Store

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import json, sys, warnings
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier
    from skw2s import LLMAdaBoostClassifier, WeakToStrongPipeline
    rng = np.random.RandomState(0)
    X = rng.randn(200, 5)
    y = (X[:, 0] + 0.5 * X[:, 1] + 0.2 * rng.randn(200) > 0).astype(int)
    weak = LLMAdaBoostClassifier(DecisionTreeClassifier(max_depth=1), n_estimators=3)
    pipe = WeakToStrongPipeline(weak, LogisticRegression(), random_state=0, memory=sys.argv[1])
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        pipe.fit(X, y)
    json.dump({"report": pipe.report_["accuracy"].tolist(),
               "cached": {h["stage"]: h["cached"] for h in pipe.history_},
               "rounds": [r["cached"] for r in pipe.weak_.history_],
               "warnings": [str(w.message) for w in record
                            if issubclass(w.category, RuntimeWarning)]},
              open(sys.argv[2], "w"))
    """
)


def _fit(script, memory, out):
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, str(script), str(memory), str(out)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """One fit in a fresh process: its result and its filled cache."""
    root = tmp_path_factory.mktemp("first")
    script = root / "fit.py"
    script.write_text(SCRIPT)
    return script, root / "memory", _fit(script, root / "memory", root / "first.json")


@pytest.fixture
def run(first_run, tmp_path):
    """``(fit, memory, first)``: ``fit(name)`` reruns in a fresh process on ``memory``, a copy
    of the first run's cache; ``first`` is the first run's result."""
    script, cache, first = first_run
    memory = tmp_path / "memory"
    shutil.copytree(cache, memory)
    return (lambda name: _fit(script, memory, tmp_path / f"{name}.json")), memory, first


def _stage_entries(memory):
    """``{kind: path}`` of the pipeline's entries, told apart by what they hold."""
    store, found = Store(memory), {}
    for path in sorted((memory / "pipeline").glob("*.skops")):
        value = store.load("pipeline", path.stem)
        if isinstance(value, dict) and "easy" in value:
            found["split"] = path
        elif isinstance(value, dict) and "hard" in value:
            found.setdefault("labels", path)
        elif type(value).__name__ == "LLMAdaBoostClassifier":
            found["weak"] = path
        else:
            found.setdefault("student", path)
    return found


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_an_entry_that_is_a_fifo_or_a_link_to_dev_zero_is_removed_unread(run, kind):
    fit, memory, first = run
    path = _stage_entries(memory)["split"]
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    second = fit("second")  # the timeout of `run` turns a hang into a failure
    why = "not a regular file" if kind == "fifo" else "is a symbolic link"
    assert [m for m in second["warnings"] if str(path) in m and why in m]
    assert second["cached"]["split"] is False and second["report"] == first["report"]
    assert path.is_file() and not path.is_symlink()  # recomputed and stored again


def test_an_entry_over_the_size_bound_is_not_read(tmp_path, monkeypatch):
    store = Store(tmp_path)
    path = store.save("ns", "key", {"w": np.zeros(100)})
    monkeypatch.setenv("SKW2S_CACHE_MAX_ENTRY_BYTES", "64")
    with pytest.warns(RuntimeWarning, match=r"has \d+ bytes, more than the bound on entries "
                                            r"\(64, SKW2S_CACHE_MAX_ENTRY_BYTES\)"):
        assert store.load("ns", "key") is None
    assert not path.exists()
    with pytest.warns(RuntimeWarning, match="exceed the bound on entries"):
        assert store.save("ns", "key", {"w": np.zeros(100)}) is None


def test_forged_entries_are_discarded_recomputed_and_healed(run):
    fit, memory, first = run
    entries = _stage_entries(memory)
    store = Store(memory)
    split = store.load("pipeline", entries["split"].stem)
    split["hard_train"] = np.array([10**6])
    forged = {
        entries["split"]: split,
        entries["weak"]: DummyClassifier().fit([[0]], [0]),
        entries["labels"]: {"hard": np.zeros(3), "proba": None, "confidence": np.ones(3)},
    }
    rounds = sorted((memory / "weak-rounds").rglob("*.skops"))
    assert rounds
    forged[rounds[0]] = "hello"
    for path, value in forged.items():  # written by the store itself: valid checksums
        assert store.save(path.parent.relative_to(memory).as_posix(), path.stem, value) == path
    second = fit("second")
    rejected = [m for m in second["warnings"] if "does not hold what was stored" in m]
    assert {m.split("Ignoring cache entry ")[1].split(": it")[0] for m in rejected} >= {
        str(entries["split"]), str(entries["weak"]), str(entries["labels"])}
    assert second["report"] == first["report"]
    assert second["cached"]["split"] is False and second["cached"]["weak[ours]"] is False
    assert False in second["rounds"]
    # healed: every entry now holds what its key says, and loads without a warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert _stage_entries(memory).keys() == entries.keys()
        for path in sorted(memory.rglob("*.skops")):
            assert store.load(path.parent.relative_to(memory).as_posix(), path.stem) is not None


def test_stale_temporary_files_of_killed_writes_are_removed(tmp_path):
    store = Store(tmp_path)
    directory = tmp_path / "ns"
    directory.mkdir()
    stale = directory / ".0123abcd-0123456789ab.tmp"  # the name _write_atomic gives
    fresh = directory / ".4567cdef-ba9876543210.tmp"
    other = directory / "notes.tmp"
    for path in (stale, fresh, other):
        path.write_bytes(b"\0" * 1000)
    old = time.time() - _cache.STALE_TMP_SECONDS - 60
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    assert store.save("ns", "key", {"w": 1}) is not None
    assert not stale.exists()
    assert fresh.exists()  # may be a write in progress in another process
    assert other.exists()  # not a name the store writes
