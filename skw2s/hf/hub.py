"""Hub side of model-spec checks: is a name in the local Hugging Face cache, or on the Hub?

One request at most, with a timeout and no retries, and none at all when offline mode is set.
Errors say what a spec can be and suggest the closest offline alias.
"""

from __future__ import annotations

import difflib
import os

from .offline import OFFLINE_ALIASES


def spec_forms() -> str:
    """The forms a model spec can take, for error messages."""
    return (
        f"an offline alias ({', '.join(OFFLINE_ALIASES)}), a .gguf file, a local directory "
        "written by save_pretrained, or a Hugging Face Hub id such as 'EleutherAI/pythia-70m'"
    )


def did_you_mean(name: str) -> str:
    """Suggest the offline alias closest to ``name`` (or to its part after the last "/")."""
    best, best_ratio = None, 0.6
    for candidate in dict.fromkeys((name.lower(), name.rsplit("/", 1)[-1].lower())):
        for alias in OFFLINE_ALIASES:
            ratio = difflib.SequenceMatcher(None, candidate, alias).ratio()
            if ratio >= best_ratio:
                best, best_ratio = alias, ratio
    return f"Did you mean {best!r}? " if best else ""


_HUB_CONFIRMED: set = set()


def _hub_offline() -> bool:
    import huggingface_hub.constants

    truthy = {"1", "ON", "YES", "TRUE"}
    env = any(
        os.environ.get(name, "").strip().upper() in truthy
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )
    return env or bool(huggingface_hub.constants.HF_HUB_OFFLINE)


def _in_local_hub_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def check_hub_id(repo_id: str, *, timeout: float) -> None:
    """Raise a clear ValueError unless ``repo_id`` is a well-formed Hub id that is cached
    locally or, outside offline mode, found by one Hub request of at most ``timeout`` s."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise ValueError(
            f"Model spec {repo_id!r} is not a valid Hub id ({exc}). {did_you_mean(repo_id)}"
            f"A model spec is {spec_forms()}."
        ) from exc
    if repo_id in _HUB_CONFIRMED or _in_local_hub_cache(repo_id):
        return
    if _hub_offline():
        raise ValueError(
            f"Model spec {repo_id!r} is not an offline alias, not a local path, and not in the "
            f"local Hugging Face cache; the Hub is not asked because HF_HUB_OFFLINE or "
            f"TRANSFORMERS_OFFLINE is set. {did_you_mean(repo_id)}A model spec is {spec_forms()}."
        )
    _hub_lookup(repo_id, timeout)
    _HUB_CONFIRMED.add(repo_id)


def _hub_lookup(repo_id: str, timeout: float) -> None:
    """One request to the Hub for ``repo_id``'s model info: no retries, a short timeout."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    hint = f"{did_you_mean(repo_id)}A model spec is {spec_forms()}."
    try:
        HfApi().model_info(repo_id, timeout=timeout)
    except GatedRepoError as exc:
        raise ValueError(
            f"Model spec {repo_id!r} is a gated Hub model that this machine may not download: "
            "log in with `hf auth login` and accept the model's terms on its Hub page."
        ) from exc
    except RepositoryNotFoundError as exc:
        raise ValueError(
            f"Model spec {repo_id!r} is not an offline alias, not a local path, and no model "
            f"of that name is on the Hugging Face Hub. {hint}"
        ) from exc
    except Exception as exc:  # network failures: DNS, refused connection, timeout, HTTP 5xx
        raise ValueError(
            f"Model spec {repo_id!r} is not an offline alias or a local path, and the Hugging "
            f"Face Hub could not be asked about it ({exc.__class__.__name__}: {exc}). {hint} "
            "If the model is in the local cache, set HF_HUB_OFFLINE=1."
        ) from exc
