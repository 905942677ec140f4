"""benchmarks/_perf.py: result files of runs with different settings do not overwrite each other."""

from __future__ import annotations

from types import SimpleNamespace

import torch


def test_result_names_keep_modes_devices_and_thread_counts_apart(load_benchmark):
    perf = load_benchmark("_perf")
    cpu = torch.device("cpu")
    names = {
        perf.result_name("decoding", SimpleNamespace(quick=quick, threads=threads), device)
        for quick in (True, False)
        for threads in (1, 2)
        for device in (cpu, torch.device("cuda"))
    }
    assert len(names) == 8
    # the 1-thread record keeps the name the committed results use
    assert perf.result_name("decoding", SimpleNamespace(quick=False, threads=1), cpu) == "decoding_full_cpu"
