"""Pickle-friendly snapshots of Hugging Face objects, stored as safetensors.

Fitted estimators hold live models. Their ``__getstate__`` replaces each model by the files
``save_pretrained`` writes (``model.safetensors``, ``config.json``, tokenizer files ...), kept as
bytes, and ``__setstate__`` loads them back with ``from_pretrained``. So a pickle or a
``joblib.dump`` of a fitted estimator never holds pickled tensors: the weights inside it are a
safetensors file, which loads without running code.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["dump_pretrained", "load_pretrained"]


def dump_pretrained(obj) -> dict:
    """Return ``{relative_path: bytes}`` of what ``obj.save_pretrained`` writes (safetensors)."""
    with tempfile.TemporaryDirectory(prefix="skw2s-dump-") as tmp:
        kwargs = {"safe_serialization": True} if hasattr(obj, "num_parameters") else {}
        obj.save_pretrained(tmp, **kwargs)
        files = {}
        for path in sorted(Path(tmp).rglob("*")):
            if path.is_file():
                files[str(path.relative_to(tmp))] = path.read_bytes()
    return files


def load_pretrained(files: dict, loader, **kwargs):
    """Write ``files`` (from :func:`dump_pretrained`) to a temporary directory and call
    ``loader(directory, **kwargs)``, for example ``AutoModelForCausalLM.from_pretrained``."""
    with tempfile.TemporaryDirectory(prefix="skw2s-load-") as tmp:
        for name, data in files.items():
            target = Path(tmp) / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        # Weights may be memory-mapped from these files; on POSIX the mapping outlives the
        # directory's removal, so nothing needs copying.
        return loader(tmp, **kwargs)
