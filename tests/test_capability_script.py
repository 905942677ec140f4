"""benchmarks/capability.py runs a cell end to end and rebuilds its table (tiny model)."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def capability(load_benchmark):
    return load_benchmark("capability")


@pytest.mark.parametrize("task", ["sciq_binary", "sciq_binary_scores", "quartz"])
def test_cell_and_report(capability, tiny_lm, data_dir, tmp_path, task):
    budget = {
        "n_train": 16,
        "n_test": 12,
        "max_length": 96,
        "mc": {"mode": "full", "lr": 1e-3, "n_epochs": 1, "batch_size": 8, "device": "cpu"},
        "binary": {"mode": "head", "batch_size": 8, "device": "cpu"},
    }
    capability.run_cell(task, tiny_lm, 0, data_dir, tmp_path, budget)
    files = list(tmp_path.glob(f"{task}/*/seed0.json"))
    assert len(files) == 1
    record = json.loads(files[0].read_text())
    assert 0.0 <= record["zero_shot"] <= 1.0 and 0.0 <= record["trained"] <= 1.0
    markdown = tmp_path / "CAPABILITY.md"
    markdown.write_text("intro\n<!-- table:begin -->\nold\n<!-- table:end -->\nafter\n")
    capability.report(tmp_path, markdown)
    text = markdown.read_text()
    assert "old" not in text and "after" in text and f"{record['trained']:.3f}" in text
