"""An on-disk store of finished work: boosting rounds, pipeline stages.

``memory`` parameters of skw2s estimators take a directory (or a ``joblib.Memory``, whose
location is used). Each finished unit of work is stored under a key that fingerprints
everything it depends on (estimator parameters, data, seed, round index), so that

- a fit that was interrupted, even by ``kill -9``, resumes from its last finished unit;
- fitting ``n_estimators=5`` after ``3`` on the same data trains only 2 new rounds, which makes
  ``GridSearchCV`` over ``n_estimators`` cost about one fit of the largest value.

Format
------
An entry is the file ``LOCATION/NAMESPACE/KEY.skops``: the line ``skw2s-store-v2``, the
SHA-256 (64 hex digits) of everything else in the file (that line and the archive), then a
`skops <https://skops.readthedocs.io>`_ archive (``skops.io``). The archive describes objects
in JSON (types by name, attributes) and keeps arrays as ``.npy`` files read with
``allow_pickle=False`` and bytes (the safetensors weights that skw2s estimators'
``__getstate__`` produce) as plain files. Nothing in it is unpickled. Entries of the pickle
format of earlier versions (``KEY.pkl``, marker ``skw2s-store-v1``) are never read, so they
are recomputed; they can be deleted.

Trust
-----
skops rebuilds only the types it is told to trust, and the store trusts an explicit list
(:func:`trusted_types`):

- what skops trusts by default: builtin scalars and containers, numpy arrays, dtypes, ufuncs
  and random states, and scikit-learn's public estimators;
- skw2s's own classes: the estimator classes exported by :mod:`skw2s` and the plain data
  classes in ``_SKW2S_DATA_TYPES``. They are rebuilt through their ``__setstate__``, which
  loads the stored safetensors weights and reloads base models from the ``model`` spec with
  ``trust_remote_code=False``;
- ``sklearn.tree._tree.Tree``, the node storage of decision trees (AdaBoost of stumps, random
  forests). skops leaves it out of its defaults because scikit-learn indexes its node arrays
  without bounds checks, so the store checks the node indices and features of every tree it
  loads before handing the entry out;
- :mod:`pathlib`'s path classes, since ``model`` and ``memory`` parameters accept paths; a
  path is built from its string parts and nothing else.

An entry that names any other type (``os.system``, ``builtins.eval``, a class of the user's
script ...) is rejected before anything in it is built: a ``RuntimeWarning`` names the types
and the file, the entry is removed and its work recomputed. :meth:`Store.save` checks the same
rule and skips, with one warning per type, an object that could never load.

Failures
--------
The store never ends a run, since the work it would lose is already done. Writes are atomic:
an entry is written to a temporary file in its directory, flushed with ``fsync`` and moved into
place with ``os.replace``. A write or a removal that fails (read-only directory, full disk,
another user's files) warns with a ``RuntimeWarning`` that names the path and the OS error, and
the run goes on; :meth:`Store.save` then returns ``None``. :meth:`Store.load` returns ``None``
for an entry that is absent, unreadable, corrupted, untrusted or fails to rebuild, and never
raises for it. Entries are created with mode ``0o666 & ~umask``, like any file the user writes,
so a cache shared through group permissions stays readable by the group.

The store reads regular files only: an entry that is a symbolic link (to ``/dev/zero``, say)
or a FIFO is removed without being read, and no entry larger than :data:`MAX_ENTRY_BYTES` is
read or written. Temporary files of writes killed half-way are removed the first time a
process uses their directory, once they are older than :data:`STALE_TMP_SECONDS`.

What the checksum protects against, and what not
------------------------------------------------
The SHA-256 has no key. It catches accidents: a truncated or partly written file, bit rot, a
file of another format or version. It does not authenticate: whoever can write the cache
directory can write an entry with a valid checksum. What such an entry can do is bounded by
the trusted types (nothing outside them is built, so no code runs) and by the checks every
caller passes to :meth:`Store.load`: a pipeline stage or a boosting round verifies the type,
fitted state, shapes, row counts and index ranges of what it loaded, and treats a mismatch
like corruption (warning, removal, recomputation), so a forged entry cannot crash every
rerun. A forged entry that passes those checks (a fitted estimator of the right type trained
on other data) is used: keep the cache directory writable by trusted users only.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import io
import logging
import os
import pathlib
import re
import secrets
import stat
import warnings
import zipfile
from pathlib import Path

import joblib
import numpy as np

from .states import states_once

logger = logging.getLogger(__name__)

__all__ = [
    "TRACKING_PARAMS",
    "Store",
    "fingerprint",
    "get_store",
    "is_tracking_param",
    "trust_types",
    "trusted_types",
]

_MAGIC = b"skw2s-store-v2\n"
_DIGEST_SIZE = 64  # hex digits of a SHA-256
_SUFFIX = ".skops"

# Types, beyond skops's defaults, that the package registers with trust_types (skw2s/__init__.py:
# its estimator classes and plain data classes, by their current and their old module paths).
_TRUSTED: list[str] = []
# scikit-learn types beyond skops's defaults. Tree is checked after loading (_check_trees).
_SKLEARN_EXTRA_TYPES = ("sklearn.tree._tree.Tree",)
# Paths, which ``model`` and ``memory`` parameters accept: built from their string parts only.
_PATH_TYPES = (pathlib.PurePosixPath, pathlib.PureWindowsPath, pathlib.PosixPath,
               pathlib.WindowsPath)

_warned_types: set[str] = set()


TRACKING_PARAMS = frozenset({"verbose", "report_to", "logging_steps"})
"""Estimator parameters that change what a fit shows or where it logs, never what it
computes: cache keys leave them out (:func:`is_tracking_param`), so that switching a tracker on
reuses cached work."""


def is_tracking_param(name) -> bool:
    """Whether the ``get_params`` name ``name`` (``"estimator__verbose"`` too) is one of
    :data:`TRACKING_PARAMS`."""
    return str(name).rsplit("__", 1)[-1] in TRACKING_PARAMS


def fingerprint(*parts) -> str:
    """A stable hash of ``parts`` (estimator parameters, arrays, data frames, strings)."""
    return joblib.hash(parts)


def trust_types(*names: str) -> None:
    """Let store entries hold the types ``names`` (``module.Class``, as skops records them)."""
    _TRUSTED.extend(name for name in names if name not in _TRUSTED)


def trusted_types() -> tuple[str, ...]:
    """The types, beyond skops's defaults, that store entries may hold.

    Returns
    -------
    names : tuple of str
        Fully qualified type names as skops records them (``module.Class``): those registered
        with :func:`trust_types` (``skw2s/__init__.py`` registers the classes it exports, found
        from the classes themselves, and skw2s's plain data classes, each also by its module
        path before the layer packages), ``sklearn.tree._tree.Tree``
        and :mod:`pathlib`'s path classes (``model`` and ``memory`` parameters may be paths).
        Never a function and never a whole module.
    """
    paths = tuple(f"{cls.__module__}.{cls.__name__}" for cls in _PATH_TYPES)
    return (*_TRUSTED, *_SKLEARN_EXTRA_TYPES, *paths)


def _warn(message, depth=0):
    # Point at the code calling Store.load/save: _warn <- a Store helper (``depth`` more
    # helpers) <- Store.load/save <- caller.
    warnings.warn(message, RuntimeWarning, stacklevel=4 + depth)


def _digest(payload) -> bytes:
    h = hashlib.sha256(_MAGIC)
    h.update(payload)
    return h.hexdigest().encode()


def _frame(payload: bytes) -> bytes:
    """The file content of an entry whose skops archive is ``payload``."""
    return _MAGIC + _digest(payload) + payload


def _untrusted(payload) -> list[str]:
    """Types named in a skops archive that the store does not trust (nothing is built)."""
    import skops.io as sio

    return sorted(set(sio.get_untrusted_types(data=payload)) - set(trusted_types()))


def _check_archive(payload):
    """Raise ``ValueError`` for a compressed member: the store writes them stored as they are,
    and a crafted compressed member could inflate to any size when read."""
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        for info in archive.infolist():
            if info.compress_type != zipfile.ZIP_STORED:
                raise ValueError(
                    f"archive member {info.filename!r} is compressed; the store writes none"
                )


def _check_trees(obj):
    """Raise ``ValueError`` when ``obj`` holds a decision tree whose node arrays point outside
    themselves: scikit-learn follows them without bounds checks."""
    from sklearn.base import BaseEstimator
    from sklearn.tree._tree import Tree

    seen, todo = set(), [obj]
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, Tree):
            _check_tree(item)
        elif isinstance(item, dict):
            todo.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            todo.extend(item)
        elif isinstance(item, np.ndarray):
            if item.dtype == object:
                todo.extend(item.ravel().tolist())
        elif isinstance(item, BaseEstimator) or (
            dataclasses.is_dataclass(item) and not isinstance(item, type)
        ):
            attrs = vars(item)
            tree = attrs.get("tree_")
            expected = attrs.get("n_features_in_")
            if isinstance(tree, Tree) and expected is not None and expected != tree.n_features:
                raise ValueError(
                    f"a {type(item).__name__} expects {expected} features but its "
                    f"tree splits on {tree.n_features}"
                )
            todo.extend(attrs.values())


def _check_tree(tree):
    n = tree.node_count  # Tree.__setstate__ caps it at the number of nodes it was given
    if n < 1:  # predict starts at node 0
        raise ValueError("a decision tree has no nodes")
    left, right, feature = tree.children_left, tree.children_right, tree.feature
    leaf = left == -1
    nodes = np.arange(n)
    # Children come after their parent (as scikit-learn builds them): in range and acyclic.
    inner_ok = (
        (left > nodes) & (left < n) & (right > nodes) & (right < n)
        & (feature >= 0) & (feature < tree.n_features)
    )
    if not np.all(np.where(leaf, right == -1, inner_ok)):
        raise ValueError("a decision tree has node indices or features out of range")


class Store:
    """Atomic, checksummed store of finished work in a directory (skops format).

    Parameters
    ----------
    location : str or path-like
        The directory; created on the first write. ``~`` is expanded.

    Notes
    -----
    See the module docstring for the file format, the types an entry may hold, and the
    failure policy: no method raises for an unwritable directory or a bad entry.
    """

    def __init__(self, location):
        self.location = Path(location).expanduser()

    def __repr__(self):
        return f"Store({str(self.location)!r})"

    def _path(self, namespace: str, key: str) -> Path:
        return self.location / namespace / f"{key}{_SUFFIX}"

    def load(self, namespace: str, key: str, check=None):
        """Return the object stored under ``namespace/key``, or ``None``.

        ``None`` also when the entry cannot be read, is not a regular file (a symbolic link,
        a FIFO, a device), is larger than :data:`MAX_ENTRY_BYTES`, or is corrupted, untrusted,
        fails to rebuild or fails ``check``; such an entry is removed (when it can be) so that
        its work is recomputed.

        Parameters
        ----------
        namespace, key : str
            The entry's directory and name, as given to :meth:`save`.
        check : callable, default=None
            Called with the rebuilt object; raising (any exception, its message says what is
            wrong) marks the entry as not holding what the caller stored there: the checksum
            has no key, so whoever can write the cache can write a well-formed entry of
            trusted types with the wrong content.

        Returns
        -------
        obj : object or None
            The stored object.
        """
        import skops.io as sio
        from skops.io.exceptions import UntrustedTypesFoundException

        path = self._path(namespace, key)
        self._clean_stale_temporaries(path.parent)
        try:
            blob = _read_entry(path, max_entry_bytes())
        except (FileNotFoundError, NotADirectoryError):  # absent (save warns about the latter)
            return None
        except _NotAnEntry as exc:
            return self._reject(path, str(exc))
        except OSError as exc:
            self._warn_os("Could not read cache entry", path, exc, "Make it readable")
            return None
        start = len(_MAGIC) + _DIGEST_SIZE
        payload = blob[start:]
        if not blob.startswith(_MAGIC) or blob[len(_MAGIC) : start] != _digest(payload):
            return self._reject(
                path, "is corrupted or not in this store's format (checksum mismatch)"
            )
        try:
            _check_archive(payload)
            obj = sio.loads(payload, trusted=list(trusted_types()))
        except UntrustedTypesFoundException:
            try:
                names = ", ".join(_untrusted(payload))
            except Exception:  # noqa: BLE001 - the listing is only for the message
                names = "unknown"
            return self._reject(
                path,
                f"holds types the store does not trust ({names}). Nothing in it was built or "
                "run. skw2s never writes such entries: check who can write to the cache "
                "directory",
            )
        except Exception as exc:  # noqa: BLE001 - any failure means: recompute
            return self._reject(path, f"could not be rebuilt ({type(exc).__name__}: {exc})")
        try:
            _check_trees(obj)
        except Exception as exc:  # noqa: BLE001 - ValueError names the fault
            return self._reject(path, f"holds an invalid decision tree ({exc})")
        if check is not None:
            try:
                check(obj)
            except Exception as exc:  # noqa: BLE001 - any mismatch means: recompute
                return self._reject(path, f"does not hold what was stored under its key ({exc})")
        return obj

    _cleaned: set = set()

    @classmethod
    def _clean_stale_temporaries(cls, directory):
        """Remove, once per directory and process, the temporary files of writes that were
        killed half-way (``.KEY-<12 random characters>.tmp`` older than :data:`STALE_TMP_SECONDS`; a
        write in progress elsewhere keeps its file's mtime fresh)."""
        import time

        if directory in cls._cleaned:
            return
        cls._cleaned.add(directory)
        try:
            candidates = list(directory.glob(".*.tmp"))
        except OSError:
            return
        now = time.time()
        for tmp in candidates:
            if not _TMP_NAME.fullmatch(tmp.name):
                continue
            try:
                info = tmp.lstat()
                if now - info.st_mtime > STALE_TMP_SECONDS:
                    tmp.unlink()
                    logger.info("Removed %s, left by a write that did not finish", tmp)
            except OSError as exc:
                logger.debug("Could not remove stale temporary file %s: %s", tmp, exc)

    def save(self, namespace: str, key: str, obj):
        """Store ``obj`` atomically under ``namespace/key``.

        Parameters
        ----------
        namespace, key : str
            The entry's directory (under the store's location) and name.
        obj : object
            What to store: skw2s and scikit-learn estimators, numpy arrays, builtin
            containers and scalars (see :func:`trusted_types`).

        Returns
        -------
        path : Path or None
            The entry's path, or ``None`` when nothing was written: ``obj`` holds a type that
            would not load, or the directory is not writable. Either case warns.
        """
        path = self._path(namespace, key)
        payload = self._serialize(obj, path)
        if payload is None:
            return None
        limit = max_entry_bytes()
        if len(payload) + len(_MAGIC) + _DIGEST_SIZE > limit:
            _warn(f"Not storing {path}: its {len(payload)} bytes exceed the bound on entries "
                  f"({limit} bytes, {_LIMIT_VARIABLE}); this work will be recomputed next time.")
            return None
        self._clean_stale_temporaries(path.parent)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_atomic(path, (_MAGIC, _digest(payload), payload))
        except OSError as exc:
            self._warn_os("Could not write cache entry", path, exc, "Make the directory writable")
            return None
        return path

    @staticmethod
    def _serialize(obj, path):
        import skops.io as sio

        try:
            with states_once():
                payload = sio.dumps(obj)
            untrusted = _untrusted(payload)
        except Exception as exc:  # noqa: BLE001 - not storable: recompute next time
            kind = f"{type(obj).__module__}.{type(obj).__qualname__}"
            untrusted = [f"{kind} ({type(exc).__name__}: {exc})"]
        if not untrusted:
            return payload
        new = [name for name in untrusted if name not in _warned_types]
        _warned_types.update(untrusted)
        message = (
            f"Not storing {path}: it holds {', '.join(untrusted)}, which the cache cannot "
            "store or would refuse to load. Entries may hold skw2s and scikit-learn estimators, "
            "numpy arrays and builtin types; this work will be recomputed on the next run. Use "
            "estimators made of those types to make it resumable."
        )
        if new:
            _warn(message)
        else:
            logger.debug(message)
        return None

    @staticmethod
    def _reject(path, reason):
        _warn(f"Ignoring cache entry {path}: it {reason}. It will be removed and recomputed.")
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            Store._warn_os(
                "Could not remove rejected cache entry", path, exc,
                "It will be rejected again on every run until it is deleted; delete it by hand "
                "or make its directory writable",
                depth=1,
            )
        return None

    @staticmethod
    def _warn_os(what, path, exc, fix, depth=0):
        _warn(
            f"{what} {path} ({type(exc).__name__}: {exc}); the run goes on and this work will "
            f"be recomputed next time. {fix}, or pass another memory directory.",
            depth,
        )


MAX_ENTRY_BYTES = 32 * 2**30
"""The largest entry the store writes or reads (the environment variable
``SKW2S_CACHE_MAX_ENTRY_BYTES`` overrides it): a bound on the memory one load can take."""

STALE_TMP_SECONDS = 3600
"""Age (by mtime) after which a temporary file of an unfinished write is removed."""

_LIMIT_VARIABLE = "SKW2S_CACHE_MAX_ENTRY_BYTES"
_TMP_NAME = re.compile(r"\..+-[0-9a-f]{12}\.tmp")


def max_entry_bytes() -> int:
    """:data:`MAX_ENTRY_BYTES`, or the value of ``SKW2S_CACHE_MAX_ENTRY_BYTES`` when set."""
    value = os.environ.get(_LIMIT_VARIABLE)
    if not value:
        return MAX_ENTRY_BYTES
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{_LIMIT_VARIABLE}={value!r} is not a number of bytes.") from None


class _NotAnEntry(Exception):
    """A path that is not a regular file of a readable size: removed, never read."""


def _read_entry(path: Path, limit: int) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them.

    A symbolic link is refused without being followed (``/dev/zero`` would read until memory
    runs out), and so is anything else that is not a regular file: opening a FIFO does not
    block (``O_NONBLOCK``) and it is refused before any read.
    """
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise _NotAnEntry("is a symbolic link, not a file the store wrote")
    if not stat.S_ISREG(info.st_mode):
        raise _NotAnEntry("is not a regular file (a FIFO, socket or device)")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    flags |= getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # replaced by a link since the lstat
            raise _NotAnEntry("is a symbolic link, not a file the store wrote") from None
        raise
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise _NotAnEntry("is not a regular file (a FIFO, socket or device)")
        if info.st_size > limit:
            raise _NotAnEntry(f"has {info.st_size} bytes, more than the bound on entries "
                              f"({limit}, {_LIMIT_VARIABLE})")
        blob = handle.read(min(info.st_size, limit) + 1)
    if len(blob) > limit:
        raise _NotAnEntry(f"has more than the bound on entries ({limit} bytes, {_LIMIT_VARIABLE})")
    return blob


def _write_atomic(path: Path, chunks):
    """Write ``chunks`` to ``path`` through a temporary file and ``os.replace``.

    The temporary file is opened with mode 0o666, which the umask reduces as for any new file
    (``tempfile.mkstemp`` would make it 0o600, unreadable to the rest of a group).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(16):
        tmp = path.with_name(f".{path.stem}-{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"no free temporary name next to {path}")
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass  # the error that brought us here is the one to report
        raise


def get_store(memory):
    """Turn a ``memory`` parameter into a :class:`Store`.

    Parameters
    ----------
    memory : None, str, path-like, joblib.Memory or Store
        ``None`` (or a ``joblib.Memory`` without a location) for no store; a directory; a
        ``joblib.Memory``, whose ``location/skw2s`` is used.

    Returns
    -------
    store : Store or None

    Raises
    ------
    ValueError
        If ``memory`` is of another type.
    """
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
