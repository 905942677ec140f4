"""Inference spread over processes: the same results as one process, each rank its share."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from skw2s.hf.distributed import inference_counts, map_batches, reset_inference_counts

JOB = Path(__file__).with_name("distributed_job.py")


def test_map_batches_in_one_process_is_the_plain_loop():
    reset_inference_counts()
    out = map_batches(lambda b: [x * 2 for x in b], [[1, 2], [3], [4, 5, 6]])
    assert out == [[2, 4], [6], [8, 10, 12]]
    assert inference_counts() == {"batches": 3, "rows": 6, "calls": 1}
    reset_inference_counts()
    assert inference_counts() == {"batches": 0, "rows": 0, "calls": 0}


def test_resolve_device_gives_each_launched_process_its_own_gpu(monkeypatch):
    import torch

    from skw2s.hf.models import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert resolve_device("auto") == torch.device("cuda", 3)
    assert resolve_device("cuda") == torch.device("cuda", 3)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert resolve_device("auto") == torch.device("cuda")


def _run(cmd, out_dir):
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(JOB.parents[1]), os.environ.get("PYTHONPATH", "")]))
    env.pop("WORLD_SIZE", None)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=out_dir)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.mark.slow
def test_torchrun_with_two_cpu_processes_matches_one_process(tiny_lm, tmp_path):
    _run([sys.executable, str(JOB), tiny_lm, str(tmp_path / "one")], tmp_path)
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
          str(JOB), tiny_lm, str(tmp_path / "two")], tmp_path)
    one = json.loads((tmp_path / "one.0.json").read_text())
    ranks = [json.loads((tmp_path / f"two.{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    for key in ("student_proba", "report", "boost_proba", "nll", "tokens", "preds"):
        for r in ranks:
            assert r[key] == one[key], key  # bit for bit: every batch holds the same rows
    # each rank scored only its share, and the shares add up to what one process scored
    for field in ("batches", "rows"):
        shares = [r["counts"][field] for r in ranks]
        assert sum(shares) == one["counts"][field]
        assert all(0 < s < one["counts"][field] for s in shares)
    assert ranks[0]["counts"]["calls"] == ranks[1]["counts"]["calls"] == one["counts"]["calls"]
