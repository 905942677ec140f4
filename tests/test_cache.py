"""skw2s._infra.cache.Store: the skops format, checksums, round trips of fitted estimators, and the
failure policy (a cache that cannot be written or cleaned never ends a run). What the store
refuses to load is tested in test_cache_security.py."""

from __future__ import annotations

import copy
import hashlib
import io
import os
import stat
import zipfile

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.ensemble import AdaBoostClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

import skw2s
from skw2s._infra import cache as _cache
from skw2s._infra.cache import Store
from skw2s.hf.serialization import state_once, states_once
from skw2s.estimators.classifier import LLMClassifier, clear_cache
from skw2s.estimators.generator import LLMGenerator

AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
needs_chmod = pytest.mark.skipif(
    AS_ROOT, reason="running as root: file modes do not stop writes (a simulated variant runs)"
)

TEXTS = ["Q: sky A: blue", "Q: sky A: green", "Q: grass A: green", "Q: grass A: blue"] * 4
LABELS = np.array(["yes", "no", "yes", "no"] * 4)
# Learnable in part (30% of the labels flipped), so that boosting runs every round.
_WORDS = "oxygen nitrogen hydrogen helium carbon iron water sun moon earth".split()
BOOST_TEXTS = [f"Q: {a} {b} A: {c}" for a in _WORDS[:5] for b in _WORDS[5:] for c in _WORDS[:2]]
BOOST_LABELS = np.where(
    np.array([t.endswith("A: oxygen") for t in BOOST_TEXTS])
    ^ (np.random.RandomState(0).rand(len(BOOST_TEXTS)) < 0.3),
    "right", "wrong",
)
PROMPTS = ["Question: sky colour?\nAnswer:", "Question: grass colour?\nAnswer:"] * 2
ANSWERS = [" blue", " green"] * 2


pytestmark = pytest.mark.usefixtures("fresh_warning_memory")


# -- format ------------------------------------------------------------------------------------
def test_builtin_numpy_and_object_arrays_round_trip(tmp_path):
    obj = {
        "texts": np.array(["Q: sky? A: blue", "Q: é ✓", ""], dtype=object),
        "grid": np.array([["a", None], ["b", "c"]], dtype=object),
        "unicode": np.array(["yes", "no"]),
        "weights": np.random.RandomState(0).rand(4, 3),
        "ints": np.arange(5, dtype=np.int64),
        "scalar": np.float64(0.1),
        "alpha": 1 / 3,
        "nan": float("nan"),
        "none": None,
        "flag": True,
        "raw": b"\x00\x01safetensors",
        "nested": [{"round": 1, "cached": False}, (1, "two", 3.5)],
        7: "an int key",
    }
    store = Store(tmp_path)
    path = store.save("ns", "key", obj)
    assert path == tmp_path / "ns" / "key.skops" and path.exists()
    back = store.load("ns", "key")
    assert set(back) == set(obj)
    for name in ("texts", "grid", "unicode", "ints"):
        assert back[name].dtype == obj[name].dtype and back[name].shape == obj[name].shape
        np.testing.assert_array_equal(back[name], obj[name])
    np.testing.assert_array_equal(back["weights"], obj["weights"])  # .npy: bit for bit
    assert back["scalar"] == obj["scalar"] and back["alpha"] == obj["alpha"]
    assert np.isnan(back["nan"]) and back["none"] is None and back["flag"] is True
    assert back["raw"] == obj["raw"] and back[7] == "an int key"
    assert back["nested"] == [{"round": 1, "cached": False}, (1, "two", 3.5)]


def test_paths_round_trip_in_parameters(tmp_path, tiny_lm):
    # ``model`` and ``memory`` parameters may be paths; the rounds that hold them must store.
    from pathlib import Path, PurePosixPath, PureWindowsPath

    learner = LLMClassifier(Path(tiny_lm), mode="head", device="cpu")
    obj = {"learner": learner, "pure": PurePosixPath("a/b"), "windows": PureWindowsPath("C:/x")}
    store = Store(tmp_path)
    assert store.save("ns", "key", obj) is not None
    back = store.load("ns", "key")
    assert back["learner"].model == Path(tiny_lm) and type(back["learner"].model) is type(Path())
    assert back["pure"] == PurePosixPath("a/b") and back["windows"] == PureWindowsPath("C:/x")


def test_entry_is_a_checksummed_skops_archive_without_pickles(tmp_path):
    path = Store(tmp_path).save("ns", "key", {"w": np.ones(3)})
    blob = path.read_bytes()
    assert blob.startswith(b"skw2s-store-v2\n")
    start = len(_cache._MAGIC) + 64
    assert blob[len(_cache._MAGIC) : start] == hashlib.sha256(
        _cache._MAGIC + blob[start:]
    ).hexdigest().encode()
    with zipfile.ZipFile(io.BytesIO(blob[start:])) as archive:
        names = archive.namelist()
        assert "schema.json" in names
        arrays = [n for n in names if n.endswith(".npy")]
        assert len(arrays) == 1
        np.testing.assert_array_equal(
            np.load(io.BytesIO(archive.read(arrays[0])), allow_pickle=False), np.ones(3)
        )


@pytest.mark.parametrize("where", ["marker", "checksum", "archive start", "middle", "last byte"])
def test_any_flipped_byte_is_caught_by_the_checksum(tmp_path, where):
    store = Store(tmp_path)
    path = store.save("ns", "key", {"w": np.arange(100.0)})
    data = bytearray(path.read_bytes())
    start = len(_cache._MAGIC) + 64
    offset = {"marker": 3, "checksum": len(_cache._MAGIC) + 5, "archive start": start,
              "middle": len(data) // 2, "last byte": len(data) - 1}[where]
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.warns(RuntimeWarning, match=r"checksum mismatch.*removed and recomputed") as record:
        assert store.load("ns", "key") is None
    assert str(path) in str(record[0].message)
    assert not path.exists()


def test_truncated_entry_is_discarded(tmp_path):
    store = Store(tmp_path)
    path = store.save("ns", "key", list(range(1000)))
    path.write_bytes(path.read_bytes()[:-100])  # a torn write
    with pytest.warns(RuntimeWarning, match="checksum mismatch"):
        assert store.load("ns", "key") is None
    assert store.load("ns", "key") is None  # gone: absent entries load as None silently


# -- skw2s estimators ----------------------------------------------------------------------------
def _assert_same(a, b, where="entry"):
    """Deep equality of cache entries (arrays exactly, estimators by their parameters)."""
    assert type(a) is type(b), where
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif hasattr(a, "get_params"):
        assert a.get_params() == b.get_params(), where
    else:
        assert a == b or (a != a and b != b), where


@pytest.fixture
def count_state_calls(monkeypatch):
    """Count the snapshots (__getstate__ bodies) and __setstate__ calls of the LLM estimators."""
    calls = {"get": 0, "set": 0}
    for cls in (LLMClassifier, LLMGenerator):
        get, set_ = cls.__getstate__.__wrapped__, cls.__setstate__

        def counting_get(self, _get=get):
            calls["get"] += 1
            return _get(self)

        def counting_set(self, state, _set=set_):
            calls["set"] += 1
            return _set(self, state)

        monkeypatch.setattr(cls, "__getstate__", state_once(counting_get))
        monkeypatch.setattr(cls, "__setstate__", counting_set)
    return calls


@pytest.mark.parametrize("mode", ["head", "lora", "full"])
def test_fitted_classifier_round_trips(tiny_lm, tmp_path, mode, count_state_calls):
    kw = {"head": dict(lr=0.1, n_epochs=100), "lora": dict(lr=1e-2, n_epochs=2),
          "full": dict(lr=1e-2, n_epochs=2)}[mode]
    clf = LLMClassifier(tiny_lm, mode=mode, device="cpu", batch_size=8, random_state=0, **kw)
    clf.fit(TEXTS, LABELS)
    expected = clf.predict_proba(TEXTS)
    store = Store(tmp_path)
    path = store.save("rounds", "key", {"learner": clf, "alpha": 0.5})
    blob = path.read_bytes()
    assert b"_rebuild_tensor" not in blob and b'"dtype":"F32"' in blob  # safetensors inside
    clear_cache()  # head mode: the frozen body is rebuilt from the spec
    back = store.load("rounds", "key")["learner"]
    # skops saves through __getstate__ (it asks once more, via __reduce__: the model is
    # snapshotted once all the same) and rebuilds through __setstate__.
    assert count_state_calls == {"get": 1, "set": 1}
    assert type(back) is LLMClassifier and back.get_params() == clf.get_params()
    # Same weights and the same forward pass: equal up to float32 rounding.
    np.testing.assert_allclose(back.predict_proba(TEXTS), expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(back.predict(TEXTS), clf.predict(TEXTS))
    np.testing.assert_array_equal(back.classes_, clf.classes_)


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_fitted_generator_round_trips(tiny_lm, tmp_path, mode, count_state_calls):
    gen = LLMGenerator(tiny_lm, mode=mode, lr=2e-2, n_epochs=3, batch_size=4, lora_r=4,
                       device="cpu", random_state=0, max_new_tokens=4).fit(PROMPTS, ANSWERS)
    store = Store(tmp_path)
    store.save("rounds", "key", gen)
    back = store.load("rounds", "key")
    # skops saves through __getstate__ (it asks once more, via __reduce__: the model is
    # snapshotted once all the same) and rebuilds through __setstate__.
    assert count_state_calls == {"get": 1, "set": 1}
    assert back.adapter_name_ == gen.adapter_name_
    assert back.generate(PROMPTS, return_tokens=True) == gen.generate(PROMPTS, return_tokens=True)
    np.testing.assert_allclose(
        back.token_error(PROMPTS, ANSWERS), gen.token_error(PROMPTS, ANSWERS), rtol=0, atol=1e-12
    )


def test_states_once_snapshots_each_object_once_inside_the_block():
    class Counted:
        calls = 0

        def __init__(self, value):
            self.value = value

        @state_once
        def __getstate__(self):
            Counted.calls += 1
            return {"value": self.value}

    a, b = Counted(1), Counted(2)
    assert copy.copy(a).value == 1 and a.__getstate__() == {"value": 1}
    assert Counted.calls == 2  # outside the block: every call snapshots
    with states_once():
        assert a.__getstate__() is a.__getstate__() and b.__getstate__() == {"value": 2}
        assert Counted.calls == 4  # a and b once each
    a.value = 3
    assert a.__getstate__() == {"value": 3} and Counted.calls == 5  # the block's memo is gone


def test_saving_an_ensemble_snapshots_each_learner_once(tiny_lm, tmp_path, monkeypatch):
    weak = LLMGenerator(tiny_lm, mode="lora", lr=2e-2, n_epochs=1, batch_size=8, lora_r=4,
                        device="cpu", max_new_tokens=4)
    boost = skw2s.UniformEnsembleGenerator(weak, n_estimators=2, random_state=0)
    boost.fit(PROMPTS, ANSWERS)
    calls = []
    payload = LLMGenerator.model_payload
    monkeypatch.setattr(LLMGenerator, "model_payload",
                        lambda self: calls.append(id(self)) or payload(self))
    store = Store(tmp_path)
    assert store.save("stages", "k", boost) is not None
    assert sorted(calls) == sorted(id(e) for e in boost.estimators_)
    back = store.load("stages", "k")
    assert back.generate(PROMPTS, return_tokens=True) == boost.generate(PROMPTS, return_tokens=True)


@pytest.fixture
def saved_entries(monkeypatch):
    """Every (namespace, key, obj) that a Store writes during the test."""
    seen = []
    original = Store.save

    def recording_save(self, namespace, key, obj):
        seen.append((namespace, key, obj))
        return original(self, namespace, key, obj)

    monkeypatch.setattr(Store, "save", recording_save)
    return seen


def test_boosting_round_entries_round_trip(tiny_lm, tmp_path, saved_entries, fresh_feature_cache):
    weak = LLMClassifier(tiny_lm, mode="head", lr=0.05, n_epochs=30, device="cpu")
    boost = skw2s.LLMAdaBoostClassifier(weak, n_estimators=2, random_state=0, memory=tmp_path)
    boost.fit(BOOST_TEXTS, BOOST_LABELS)
    assert len(saved_entries) == 2
    store = Store(tmp_path)
    for namespace, key, entry in saved_entries:
        back = store.load(namespace, key)
        _assert_same(back, entry)
        np.testing.assert_array_equal(
            back["learner"].predict_proba(BOOST_TEXTS), entry["learner"].predict_proba(BOOST_TEXTS)
        )
    again = clone(boost).fit(BOOST_TEXTS, BOOST_LABELS)
    assert [h["cached"] for h in again.history_] == [True, True]
    np.testing.assert_array_equal(
        again.predict_proba(BOOST_TEXTS), boost.predict_proba(BOOST_TEXTS)
    )


def test_token_boosting_round_entries_round_trip(tiny_lm, tmp_path, saved_entries):
    weak = LLMGenerator(tiny_lm, mode="lora", lr=2e-2, n_epochs=4, batch_size=8, lora_r=4,
                        device="cpu", max_new_tokens=4)
    boost = skw2s.TokenAdaBoostGenerator(weak, n_estimators=2, random_state=0, memory=tmp_path)
    boost.fit(PROMPTS, ANSWERS)
    rounds = [e for e in saved_entries if "learner" in e[2]]
    assert len(rounds) == 2 and len(saved_entries) == 3  # and the pre-trained error
    store = Store(tmp_path)
    for namespace, key, entry in saved_entries:
        _assert_same(store.load(namespace, key), entry)
    again = clone(boost).fit(PROMPTS, ANSWERS)
    assert [h["cached"] for h in again.history_] == [True, True]
    tokens = boost.generate(PROMPTS, return_tokens=True)
    assert again.generate(PROMPTS, return_tokens=True) == tokens
    np.testing.assert_array_equal(again.token_weights_flat_, boost.token_weights_flat_)


# -- failures never end the run -----------------------------------------------------------------
def _permission_error(*args, **kwargs):
    raise PermissionError(13, "Permission denied")


@needs_chmod
def test_read_only_directory_warns_and_goes_on(tmp_path, store_warnings):
    store = Store(tmp_path / "cache")
    store.save("ns", "old", {"w": 1})
    for path in (tmp_path / "cache", tmp_path / "cache" / "ns"):
        path.chmod(0o500)
    try:
        with pytest.warns(RuntimeWarning, match="Permission denied") as record:
            assert store.save("ns", "new", {"w": 2}) is None
            assert store.save("other", "new", {"w": 2}) is None  # mkdir fails too
        message = store_warnings(record)[0]
        assert str(tmp_path / "cache" / "ns" / "new.skops") in message
        assert "Make the directory writable" in message
        assert store.load("ns", "old") == {"w": 1}  # reading still works
        assert [p.name for p in (tmp_path / "cache" / "ns").iterdir()] == ["old.skops"]
    finally:
        for path in (tmp_path / "cache", tmp_path / "cache" / "ns"):
            path.chmod(0o700)


def test_failed_replace_warns_and_leaves_no_temporary_file(tmp_path, monkeypatch, store_entries):
    store = Store(tmp_path)
    monkeypatch.setattr(os, "replace", _permission_error)
    with pytest.warns(RuntimeWarning, match=r"Could not write cache entry .*Permission denied"):
        assert store.save("ns", "key", {"w": 1}) is None
    assert store_entries(tmp_path) == []


def test_location_that_is_a_file_warns_and_goes_on(tmp_path):
    location = tmp_path / "not-a-directory"
    location.write_text("")
    store = Store(location)
    with pytest.warns(RuntimeWarning, match="Could not write cache entry.*NotADirectoryError"):
        assert store.save("ns", "key", {"w": 1}) is None
    assert store.load("ns", "key") is None


@pytest.mark.parametrize("how", [
    pytest.param("chmod", marks=needs_chmod), "simulated",
])
def test_corrupted_entry_that_cannot_be_removed(tmp_path, monkeypatch, how, store_warnings):
    store = Store(tmp_path)
    path = store.save("ns", "key", {"w": 1})
    path.write_bytes(b"garbage")
    if how == "chmod":
        path.parent.chmod(0o500)
    else:
        monkeypatch.setattr(type(path), "unlink", _permission_error)
    try:
        for _ in range(2):  # rejected again, never raised
            with pytest.warns(RuntimeWarning) as record:
                assert store.load("ns", "key") is None
            messages = store_warnings(record)
            assert "checksum mismatch" in messages[0]
            assert f"Could not remove rejected cache entry {path}" in messages[1]
            assert "Permission denied" in messages[1] and "delete it by hand" in messages[1]
    finally:
        path.parent.chmod(0o700)
    assert path.exists()


@pytest.mark.parametrize("how", [
    pytest.param("chmod", marks=needs_chmod), "simulated",
])
def test_unreadable_entry_is_skipped_and_kept(tmp_path, monkeypatch, how):
    store = Store(tmp_path)
    path = store.save("ns", "key", {"w": 1})
    if how == "chmod":
        path.chmod(0)
    else:
        monkeypatch.setattr(_cache, "_read_entry", _permission_error)
    with pytest.warns(RuntimeWarning, match=f"Could not read cache entry {path}.*Make it readable"):
        assert store.load("ns", "key") is None
    assert path.exists()


def _pipe(memory):
    weak = AdaBoostClassifier(DecisionTreeClassifier(max_depth=1), n_estimators=4)
    return skw2s.WeakToStrongPipeline(weak=weak, strong=LogisticRegression(), random_state=0,
                                      memory=str(memory))


@pytest.mark.parametrize("how", [
    pytest.param("chmod", marks=needs_chmod), "a file", "simulated",
])
def test_pipeline_with_unwritable_memory_still_fits(tmp_path, monkeypatch, how):
    rng = np.random.RandomState(0)
    X = rng.randn(120, 5)
    y = (X[:, 0] + 0.2 * rng.randn(120) > 0).astype(int)
    reference = _pipe(tmp_path / "reference").fit(X, y)
    memory = tmp_path / "memory"
    if how == "chmod":
        memory.mkdir(mode=0o500)
    elif how == "a file":
        memory.write_text("")
    else:
        monkeypatch.setattr(os, "replace", _permission_error)
    try:
        with pytest.warns(RuntimeWarning, match="Could not write cache entry"):
            pipe = _pipe(memory).fit(X, y)
    finally:
        if how == "chmod":
            memory.chmod(0o700)
    assert [h["cached"] for h in pipe.history_] == [False] * 7
    assert pipe.report_.equals(reference.report_)
    assert hasattr(pipe, "student_") and pipe.score(X, y) == reference.score(X, y)


def test_token_boosting_with_unwritable_memory_still_fits(tiny_lm, tmp_path):
    memory = tmp_path / "memory"
    memory.write_text("")  # cannot hold directories
    weak = LLMGenerator(tiny_lm, mode="lora", lr=2e-2, n_epochs=2, batch_size=8, lora_r=4,
                        device="cpu", max_new_tokens=3)
    with pytest.warns(RuntimeWarning, match="Could not write cache entry"):
        boost = skw2s.TokenAdaBoostGenerator(
            weak, n_estimators=1, random_state=0, memory=memory
        ).fit(PROMPTS, ANSWERS)
    assert len(boost.estimators_) == 1 and len(boost.generate(PROMPTS[:1])) == 1


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_entry_mode_follows_the_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        path = Store(tmp_path).save("ns", "key", {"w": 1})
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
