"""benchmarks/paired.py report: its RESULTS.md blocks come from the seed files, not from a hand.

Runs on two committed seeds of the paired SciQ cell and one seed of the methods run, copied into
a temporary folder, and checks the "ours − baseline" cell against the accuracies recomputed here
from the per-question predictions.
"""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PAIRED = ROOT / "benchmarks" / "results" / "paired" / "sciq-binary-random"
METHODS = ROOT / "benchmarks" / "results" / "methods" / "sciq-binary-methods"


def _block(text, name):
    return text.split(f"<!-- {name}:begin -->")[1].split(f"<!-- {name}:end -->")[0]


@pytest.fixture
def copied(tmp_path):
    if not (PAIRED / "seed1.json").exists() or not (METHODS / "seed0.json").exists():
        pytest.skip("the committed paired results are not in this checkout")
    results, methods = tmp_path / "paired", tmp_path / "methods"
    (results / PAIRED.name).mkdir(parents=True)
    (methods / METHODS.name).mkdir(parents=True)
    for seed in (0, 1):
        shutil.copy(PAIRED / f"seed{seed}.json", results / PAIRED.name)
    shutil.copy(METHODS / "seed0.json", methods / METHODS.name)
    markdown = tmp_path / "RESULTS.md"
    markdown.write_text("# R\n\nkept\n\n<!-- paired-main:begin -->\nold\n<!-- paired-main:end -->\n\n"
                        "<!-- methods-main:begin -->\n<!-- methods-main:end -->\n\ntail kept\n")
    return results, methods, markdown


def test_report_blocks_are_recomputed_from_the_predictions(copied, load_benchmark):
    results, methods, markdown = copied
    load_benchmark("paired").report(markdown=markdown, results=results, methods=methods)
    text = markdown.read_text()
    assert text.startswith("# R\n\nkept\n") and "tail kept" in text and "\nold\n" not in text
    for name in ("paired-rows", "paired-disagreement", "paired-compute", "methods-rows", "methods-compute"):
        assert f"<!-- {name}:begin -->" in text, name  # missing blocks are appended

    diffs = []
    for seed in (0, 1):
        p = json.loads((results / PAIRED.name / f"seed{seed}.json").read_text())["predictions"]["hard"]
        y, models = np.asarray(p["y"]), p["models"]
        diffs.append(np.mean(np.asarray(models["ours/ensemble_student/xent"]) == y)
                     - np.mean(np.asarray(models["ours/baseline_student/xent"]) == y))
    row = next(line for line in _block(text, "paired-main").splitlines()
               if "ours − baseline (students)" in line)
    cells = [c.strip() for c in row.split("|")]
    assert cells[4] == f"{100 * np.mean(diffs):+.1f}"
    low, high = map(float, re.findall(r"[+-]\d+\.\d", cells[5]))
    assert low < 100 * np.mean(diffs) < high
    assert cells[-2] == "2000 (2 seeds)"
    assert cells[-3] == f"{sum(d > 0 for d in diffs)} / {sum(d < 0 for d in diffs)}"

    methods_main = _block(text, "methods-main")
    assert "sciq-binary-methods" in methods_main and "ours − learned (students)" in methods_main
    assert "(1 seeds)" in methods_main
    compute = _block(text, "paired-compute")
    assert "| sciq-binary-random |" in compute and "sciq-binary-methods" not in compute
    assert "| sciq-binary-methods |" in _block(text, "methods-compute")


def test_seeds_needed_is_not_read_from_one_seed(load_benchmark):
    paired = load_benchmark("paired")
    assert paired.seeds_needed(0.010, 1) == "unknown from 1 seed"
    assert paired.seeds_needed(0.030, 1) == "unknown from 1 seed"
    assert paired.seeds_needed(0.015, 5) == "met"
    assert paired.seeds_needed(0.029, 5) == "about 19"  # 5 x (2.9 / 1.5)^2 = 18.7, off an integer
