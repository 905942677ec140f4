"""Replaced weights are noticed (issue 29, §1): the checkpoint fingerprint hashes the content of
the weight files, so other weights of the same size saved over a checkpoint with the old mtime
kept (``cp -p``, ``rsync -a``, ``touch -r``) are neither taken from the cache of a later run
(fresh process) nor from the in-process body and feature cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from skw2s import LLMClassifier
from skw2s.hf.models import checkpoint_fingerprint
from skw2s.hf.testing import tiny_causal_lm

ROOT = Path(__file__).resolve().parents[1]
WORDS = "oxygen nitrogen hydrogen helium carbon iron water sun moon earth".split()
TEXTS = [f"Q: {a} {b} A: {c}" for a in WORDS[:5] for b in WORDS[5:] for c in WORDS[:2]]
LABELS = np.array([(i // 3) % 2 for i in range(len(TEXTS))])

pytestmark = pytest.mark.usefixtures("fresh_feature_cache")


@pytest.fixture
def two_checkpoints(tmp_path):
    """A checkpoint and other weights of the same shapes (the same file size)."""
    first = Path(tiny_causal_lm(tmp_path / "model", seed=0))
    other = Path(tiny_causal_lm(tmp_path / "other", seed=7))
    old, new = first / "model.safetensors", other / "model.safetensors"
    assert old.stat().st_size == new.stat().st_size
    assert old.read_bytes() != new.read_bytes()
    return first, other


def _overwrite_keeping_mtime(target: Path, source: Path):
    """Write ``source``'s bytes over ``target`` in place, then set the old mtime back."""
    stat = target.stat()
    with open(target, "r+b") as handle:
        handle.write(source.read_bytes())
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    after = target.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        stat.st_size, stat.st_mtime_ns, stat.st_ino)


def test_the_fingerprint_changes_with_the_content_not_only_size_and_mtime(two_checkpoints):
    first, other = two_checkpoints
    before = checkpoint_fingerprint(str(first))
    assert checkpoint_fingerprint(str(first)) == before  # stable
    _overwrite_keeping_mtime(first / "model.safetensors", other / "model.safetensors")
    assert checkpoint_fingerprint(str(first)) != before


def test_the_in_process_body_cache_sees_replaced_weights(two_checkpoints):
    first, other = two_checkpoints
    head = dict(mode="head", lr=0.05, n_epochs=30, device="cpu", random_state=0)
    old = LLMClassifier(str(first), **head).fit(TEXTS, LABELS).predict_proba(TEXTS[:4])
    _overwrite_keeping_mtime(first / "model.safetensors", other / "model.safetensors")
    replaced = LLMClassifier(str(first), **head).fit(TEXTS, LABELS).predict_proba(TEXTS[:4])
    fresh = LLMClassifier(str(other), **head).fit(TEXTS, LABELS).predict_proba(TEXTS[:4])
    np.testing.assert_allclose(replaced, fresh, atol=1e-6)
    assert not np.allclose(replaced, old)


SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from skw2s import LLMAdaBoostClassifier, LLMClassifier
    words = "oxygen nitrogen hydrogen helium carbon iron water sun moon earth".split()
    X = [f"Q: {a} {b} A: {c}" for a in words[:5] for b in words[5:] for c in words[:2]]
    y = np.array([(i // 3) % 2 for i in range(len(X))])
    learner = LLMClassifier(sys.argv[1], mode="head", lr=0.05, n_epochs=30, device="cpu")
    boost = LLMAdaBoostClassifier(learner, n_estimators=2, memory=sys.argv[2], random_state=0)
    boost.fit(X, y)
    json.dump({"proba": boost.predict_proba(X[:4]).tolist(),
               "cached": [h["cached"] for h in boost.history_]}, open(sys.argv[3], "w"))
    """
)


@pytest.mark.slow
def test_stored_rounds_are_not_reused_after_the_weights_were_replaced(two_checkpoints, tmp_path):
    first, other = two_checkpoints
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONHASHSEED"}
    env.update(OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))

    def run(model, memory, name):
        out = tmp_path / f"{name}.json"
        done = subprocess.run([sys.executable, str(script), str(model), str(memory), str(out)],
                              env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(out.read_text())

    memory = tmp_path / "memory"
    old = run(first, memory, "old")
    assert run(first, memory, "again")["cached"] == [True] * len(old["cached"])
    _overwrite_keeping_mtime(first / "model.safetensors", other / "model.safetensors")
    replaced = run(first, memory, "replaced")
    fresh = run(first, tmp_path / "fresh-memory", "fresh")
    assert not any(replaced["cached"])
    np.testing.assert_allclose(replaced["proba"], fresh["proba"], atol=1e-6)
    assert not np.allclose(replaced["proba"], old["proba"])
