"""Snapshots of Hugging Face objects as safetensors bytes, for pickling and the cache.

Fitted estimators hold live models. Their ``__getstate__`` replaces each model by the files
``save_pretrained`` writes (``model.safetensors``, ``config.json``, tokenizer files ...), kept as
bytes, and ``__setstate__`` loads them back with ``from_pretrained``. So a pickle or a
``joblib.dump`` of a fitted estimator never holds pickled tensors: the weights inside it are a
safetensors file, which loads without running code.

skops (the cache's format) asks an object for its state twice: once through ``__reduce__``,
whose answer it only inspects, and once through ``__getstate__``. Inside :func:`states_once`
the estimators' ``__getstate__`` (wrapped by :func:`state_once`) snapshot each model once.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from .._infra.states import state_once, states_once

__all__ = [
    "add_adapter",
    "dump_adapter",
    "dump_full_model",
    "dump_pretrained",
    "dump_tokenizer",
    "load_full_model",
    "load_pretrained",
    "load_tokenizer",
    "state_once",
    "states_once",
]



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


_UNSAFE_WEIGHT_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".npy", ".py")


def load_pretrained(files: dict, loader, **kwargs):
    """Write ``files`` (from :func:`dump_pretrained`) to a temporary directory and call
    ``loader(directory, **kwargs)``, for example ``AutoModelForCausalLM.from_pretrained``.

    Raises
    ------
    ValueError
        If a file is a pickle-based weight file or code (``.bin``, ``.pt``, ``.py`` ...): a
        snapshot of skw2s holds safetensors and JSON only, so anything else was not written by
        it and is not loaded.
    """
    unsafe = sorted(name for name in files if name.lower().endswith(_UNSAFE_WEIGHT_SUFFIXES))
    if unsafe or any(".." in name or name.startswith("/") for name in files):
        raise ValueError(
            f"Refusing to load a model snapshot with the file(s) {unsafe or sorted(files)}: "
            "skw2s snapshots hold safetensors weights and JSON/tokenizer files only."
        )
    with tempfile.TemporaryDirectory(prefix="skw2s-load-") as tmp:
        for name, data in files.items():
            target = Path(tmp) / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        # Weights may be memory-mapped from these files; on POSIX the mapping outlives the
        # directory's removal, so nothing needs copying.
        return loader(tmp, **kwargs)


def _json_default(obj):
    if isinstance(obj, set):
        return sorted(obj)
    if hasattr(obj, "value"):
        return obj.value
    return str(obj)


def dump_adapter(model, adapter_name):
    """``{"kind": "lora", "config": json, "weights": safetensors bytes}`` of one adapter."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save

    state = get_peft_model_state_dict(model, adapter_name=adapter_name, save_embedding_layers=False)
    state = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    config = json.dumps(model.peft_config[adapter_name].to_dict(), default=_json_default)
    return {"kind": "lora", "config": config, "weights": save(state)}


def add_adapter(model, payload, adapter_name):
    """Add the adapter in ``payload`` to ``model`` under ``adapter_name``.

    ``model`` is a plain causal LM (it is wrapped into a peft model) or a peft model that
    already holds other adapters. Returns the peft model, in eval mode.
    """
    from peft import PeftConfig, PeftModel, get_peft_model, set_peft_model_state_dict
    from safetensors.torch import load

    from .training import quiet_peft

    config = PeftConfig.from_peft_type(**json.loads(payload["config"]))
    config.inference_mode = True
    with quiet_peft():
        if isinstance(model, PeftModel):
            model.add_adapter(adapter_name, config)
        else:
            model = get_peft_model(model, config, adapter_name=adapter_name)
    state = load(payload["weights"])
    result = set_peft_model_state_dict(model, state, adapter_name=adapter_name)
    missing = [k for k in getattr(result, "unexpected_keys", []) if adapter_name in k]
    if missing:
        raise ValueError(f"Adapter weights do not fit the model: unexpected keys {missing[:3]}.")
    model.eval()
    return model


def dump_full_model(model):
    """``{"kind": "full", "files": {...}, "dtype": str}``: a whole model as safetensors files."""
    dtype = str(model.dtype).split(".")[-1]
    return {"kind": "full", "files": dump_pretrained(model), "dtype": dtype}


def load_full_model(payload, device):
    """Load a model saved by :func:`dump_full_model` onto ``device`` (eval mode)."""
    from transformers import AutoModelForCausalLM

    from .models import resolve_device

    model = load_pretrained(
        payload["files"], AutoModelForCausalLM.from_pretrained, dtype=payload["dtype"],
        use_safetensors=True,
    )
    model.to(resolve_device(device))
    model.eval()
    return model


def dump_tokenizer(tokenizer):
    """``{"files": {...}, "padding_side": str}``: a tokenizer as the files it saves."""
    return {"files": dump_pretrained(tokenizer), "padding_side": tokenizer.padding_side}


def load_tokenizer(payload):
    """Load a tokenizer saved by :func:`dump_tokenizer`, with a pad token."""
    from transformers import AutoTokenizer

    tokenizer = load_pretrained(payload["files"], AutoTokenizer.from_pretrained)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token if tokenizer.eos_token else tokenizer.unk_token
    tokenizer.padding_side = payload["padding_side"]
    return tokenizer
