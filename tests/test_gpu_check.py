"""The GPU check's dry run on the CPU: the same code as on a GPU, on tiny models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"


@pytest.mark.slow
def test_gpu_check_dry_run_on_cpu_passes_every_part(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable)
    proc = subprocess.run(["bash", str(SCRIPT), "--device", "cpu", "--quick", "--out",
                           str(tmp_path)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    record = json.loads((tmp_path / "gpu_check_quick_cpu.json").read_text())
    assert record["ok"] and record["device"] == "cpu" and record["quick"]
    assert set(record["parts"]) == {"tests", "correctness", "speed", "launch"}
    for part in record["parts"].values():
        assert part["ok"], part
    # the tests part ran the tests marked cuda (all skipped here)
    counts = record["parts"]["tests"]["counts"]
    assert counts["tests"] >= 11 and counts["skipped"] == counts["tests"]
    names = {c["name"] for c in record["parts"]["correctness"]["checks"]}
    assert any("pipeline" in n for n in names) and any("speculative" in n for n in names)
    speed = {c["name"]: c for c in record["parts"]["speed"]["checks"]}
    assert speed["P1 cached mixture vs sum of generate"]["ratio"] > 0
    sft = speed["SFT step efficiency (tiny, batch 4)"]
    assert sft["stats"]["useful_flops"] > 0 and sft["efficiency"] > 0 and sft["stats"]["steps"] == 3
    launch = record["parts"]["launch"]["checks"]
    assert [c["world_size"] for c in launch] == [1, 1]
    assert record["versions"]["torch"] and "command" in record
    assert "all parts passed" in proc.stdout


def test_gpu_check_refuses_a_missing_wheel_folder(tmp_path):
    proc = subprocess.run(["bash", str(SCRIPT), "--wheels", str(tmp_path / "none")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "no wheel folder" in proc.stderr


def test_a_failing_check_is_recorded_and_the_next_one_runs(load_benchmark):
    gpu_check = load_benchmark("gpu_check")
    checks = gpu_check.Checks()
    checks.run("breaks", lambda: 1 / 0)
    checks.run("works", lambda: {"value": 3})
    assert [r["ok"] for r in checks.rows] == [False, True]
    assert "ZeroDivisionError" in checks.rows[0]["error"] and not checks.ok


def test_probabilities_may_flip_only_on_near_ties(load_benchmark):
    import numpy as np

    gpu_check = load_benchmark("gpu_check")
    cpu = np.array([[0.9, 0.1], [0.5004, 0.4996]])
    tie_flip = gpu_check._compare_probs("x", np.array([[0.9, 0.1], [0.4996, 0.5004]]), cpu)
    assert tie_flip["ok"] and tie_flip["argmax_flips"] == 1 and tie_flip["near_ties"] == 1
    far = gpu_check._compare_probs("x", np.array([[0.1, 0.9], [0.5004, 0.4996]]), cpu)
    assert not far["ok"]


def test_the_performance_page_shows_the_committed_gpu_records(load_benchmark):
    gpu_check = load_benchmark("gpu_check")
    results = ROOT / "benchmarks" / "results" / "gpu"
    table = gpu_check.gpu_table([results / "gpu_check_cuda.json",
                                 results / "gpu_check_cuda_launch.json"])
    page = (ROOT / "benchmarks" / "PERFORMANCE.md").read_text()
    block = page.split("<!-- gpu:begin -->\n")[1].split("\n<!-- gpu:end -->")[0]
    assert block == table
    assert "| launch | accelerate launch --num_processes 1 |" in table and "NVIDIA" in table
