"""Shared fixtures: seeds, tiny random-weight models (and LoRA adapters on one), the offline data
directory, the store's test helpers."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """One torch thread for the tiny-model tests and their module fixtures: tiny models gain
    nothing from threads, and on a busy 2-core machine the threads spin-wait."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def _threads(request, _one_torch_thread):
    """All cores for the tests on the real offline models."""
    import torch

    if request.node.get_closest_marker("real_model") is None:
        yield
        return
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    yield
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def load_benchmark():
    """A function that imports ``benchmarks/{name}.py`` (not a package) as a module."""
    import importlib.util

    def load(name):
        path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture
def fresh_feature_cache():
    """Empty the classifiers' in-memory feature cache before and after a test."""
    from skw2s.estimators.classifier import clear_cache

    clear_cache()
    yield
    clear_cache()


@pytest.fixture
def fresh_warning_memory(monkeypatch):
    """Each test sees the store's once-per-type save warnings afresh."""
    from skw2s._infra import cache

    monkeypatch.setattr(cache, "_warned_types", set())


@pytest.fixture(scope="session")
def store_entries():
    """A function: the files under a store directory, sorted."""
    return lambda root: sorted(p for p in Path(root).rglob("*") if p.is_file())


@pytest.fixture(scope="session")
def store_warnings():
    """A function: the messages of the store's warnings (RuntimeWarning) among recorded
    warnings."""
    return lambda record: [str(w.message) for w in record
                           if issubclass(w.category, RuntimeWarning)]


@pytest.fixture(autouse=True)
def _seed():
    random.seed(0)
    np.random.seed(0)
    try:
        import torch

        torch.manual_seed(0)
    except ImportError:  # pragma: no cover
        pass


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory) -> str:
    """Path of a tiny random-weight causal LM (Llama architecture, byte-level BPE)."""
    from skw2s.hf.testing import tiny_causal_lm

    return tiny_causal_lm(tmp_path_factory.mktemp("tiny-lm"))


@pytest.fixture(scope="session")
def tiny_experts(tiny_lm, tmp_path_factory):
    """Three tiny random LMs sharing one tokenizer, loaded: ``(models, tokenizer)``. Tests
    that use them must not modify their weights."""
    from skw2s.hf.models import load_causal_lm
    from skw2s.hf.testing import tiny_causal_lm

    paths = [tiny_lm] + [tiny_causal_lm(tmp_path_factory.mktemp(f"expert{s}"), seed=s)
                         for s in (1, 2)]
    loaded = [load_causal_lm(p, device="cpu") for p in paths]
    return [m for m, _ in loaded], loaded[0][1]


@pytest.fixture(scope="session")
def tiny_lm_other_vocab(tmp_path_factory) -> str:
    """A second tiny LM whose tokenizer has a different vocabulary."""
    from skw2s.hf.testing import tiny_causal_lm

    return tiny_causal_lm(tmp_path_factory.mktemp("tiny-lm-other"), vocab_size=300, seed=1)


@pytest.fixture(scope="module")
def adapters(tiny_lm):
    """One tiny base with three LoRA adapters of different ranks and targets (non-zero B):
    ``(peft model, [AdapterExpert per adapter], tokenizer)``."""
    import torch
    from peft import LoraConfig, get_peft_model

    from skw2s.hf.decoding import AdapterExpert
    from skw2s.hf.models import load_causal_lm

    base, tok = load_causal_lm(tiny_lm, device="cpu")
    configs = {
        "round1": LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
        "round2": LoraConfig(r=2, lora_alpha=8, target_modules=["q_proj", "v_proj", "o_proj"],
                             init_lora_weights=False),
        "round3": LoraConfig(r=4, target_modules=["q_proj"], init_lora_weights=False,
                             use_rslora=True),
    }
    torch.manual_seed(0)
    model = get_peft_model(base, configs["round1"], adapter_name="round1")
    for name in ("round2", "round3"):
        model.add_adapter(name, configs[name])
    model.eval()
    return model, [AdapterExpert(model, n) for n in configs], tok


def _find_data_dir():
    env = os.environ.get("SKW2S_DATA_DIR")
    candidates = [Path(env)] if env else []
    here = Path(__file__).resolve()
    candidates += [here.parents[1].parent / "shared" / "data", here.parents[2] / "shared" / "data"]
    for path in candidates:
        if (path / "sciq" / "train.jsonl").exists():
            return path
    return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The offline QA data (SKW2S_DATA_DIR or ../shared/data); skips when absent."""
    path = _find_data_dir()
    if path is None:
        pytest.skip("offline data not found: set SKW2S_DATA_DIR")
    return path


@pytest.fixture(scope="session")
def smollm2_path() -> str:
    """The converted offline SmolLM2-135M checkpoint; skips when its package is missing."""
    from skw2s.hf.models import resolve_model_path

    try:
        return resolve_model_path("smollm2-135m")
    except ImportError as exc:
        pytest.skip(str(exc))


def pytest_collection_modifyitems(config, items):
    """Skip the tests marked ``cuda`` where no CUDA device is present (``scripts/gpu_check.sh``
    runs them with ``-m cuda`` on a GPU)."""
    marked = [item for item in items if item.get_closest_marker("cuda") is not None]
    if not marked:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in marked:
        item.add_marker(skip)
