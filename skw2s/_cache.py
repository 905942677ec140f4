"""An on-disk store of finished work: boosting rounds, pipeline stages.

``memory`` parameters of skw2s estimators take a directory (or a ``joblib.Memory``, whose
location is used). Each finished unit of work is stored under a key that fingerprints
everything it depends on (estimator parameters, data, seed, round index), so that

- a fit that was interrupted, even by ``kill -9``, resumes from its last finished unit;
- fitting ``n_estimators=5`` after ``3`` on the same data trains only 2 new rounds, which makes
  ``GridSearchCV`` over ``n_estimators`` cost about one fit of the largest value.

Writes are atomic: an entry is written to a temporary file in the same directory and moved into
place with ``os.replace``. Each entry carries a SHA-256 of its payload; an entry that fails the
check or does not unpickle is logged, removed and recomputed, never trusted.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import tempfile
from pathlib import Path

import joblib

logger = logging.getLogger(__name__)

__all__ = ["Store", "checkpoints", "fingerprint", "get_store", "with_checkpoints"]

_MAGIC = b"skw2s-store-v1\n"


def fingerprint(*parts) -> str:
    """A stable hash of ``parts`` (estimator parameters, arrays, data frames, strings)."""
    return joblib.hash(parts)


def checkpoints(*estimators):
    """Fingerprints of the local checkpoint directories the estimators' ``model`` parameters
    name (nested estimators included), for cache keys: a checkpoint overwritten in place then
    changes the key instead of reusing stale work. Empty when every model is an offline alias
    or a Hub id, so that those keys stay what they were.
    """
    from .models import checkpoint_fingerprint

    found = []
    for est in estimators:
        if not hasattr(est, "get_params"):
            continue
        for name, value in sorted(est.get_params(deep=True).items()):
            if (name == "model" or name.endswith("__model")) and isinstance(value, (str, os.PathLike)):
                digest = checkpoint_fingerprint(value)
                if digest is not None:
                    found.append((name, digest))
    return tuple(found)


def with_checkpoints(parts, *estimators):
    """``parts`` with the estimators' :func:`checkpoints` appended when there are any, so keys
    that name only aliases and Hub ids stay what they were."""
    found = checkpoints(*estimators)
    return (*parts, found) if found else tuple(parts)


class Store:
    """Atomic, checksummed pickle store in a directory."""

    def __init__(self, location):
        self.location = Path(location).expanduser()

    def __repr__(self):
        return f"Store({str(self.location)!r})"

    def _path(self, namespace: str, key: str) -> Path:
        return self.location / namespace / f"{key}.pkl"

    def load(self, namespace: str, key: str):
        """Return the stored object, or ``None`` when absent or corrupted (then removed)."""
        path = self._path(namespace, key)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return None
        digest, payload = blob[len(_MAGIC) : len(_MAGIC) + 64], blob[len(_MAGIC) + 64 :]
        try:
            if not blob.startswith(_MAGIC) or hashlib.sha256(payload).hexdigest().encode() != digest:
                raise ValueError("checksum mismatch")
            return pickle.loads(payload)
        except Exception as exc:  # noqa: BLE001 - any failure means: recompute
            logger.warning("Discarding corrupted cache entry %s (%s); it will be recomputed.", path, exc)
            path.unlink(missing_ok=True)
            return None

    def save(self, namespace: str, key: str, obj) -> Path:
        """Store ``obj`` atomically under ``namespace/key``; returns the entry's path."""
        path = self._path(namespace, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        blob = _MAGIC + hashlib.sha256(payload).hexdigest().encode() + payload
        fd, tmp = tempfile.mkstemp(prefix=f".{key}-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(blob)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path


def get_store(memory):
    """``None`` -> ``None``; a path or a ``joblib.Memory`` -> a :class:`Store`."""
    if memory is None:
        return None
    if isinstance(memory, Store):
        return memory
    if isinstance(memory, joblib.Memory):
        if memory.location is None:
            return None
        return Store(Path(memory.location) / "skw2s")
    if isinstance(memory, (str, os.PathLike)):
        return Store(memory)
    raise ValueError(
        f"'memory' must be None, a directory path or a joblib.Memory; got {type(memory).__name__}."
    )
