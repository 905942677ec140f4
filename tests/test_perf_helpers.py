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
    assert (perf.result_name("decoding", SimpleNamespace(quick=False, threads=1), cpu)
            == "decoding_full_cpu")


def test_training_benchmark_figures_come_from_its_runs(load_benchmark):
    bench = load_benchmark("bench_training")

    def run(seconds, rate, flops=100.0):
        stats = {"seconds": seconds, "useful_flops": flops, "tokens": 8, "padded_tokens": 10,
                 "padding": 0.2, "projected_rows": 4, "loss_rows": 4}
        return {"stats": stats, "rate": rate}

    runs = {"before": [run(4.0, 10.0), run(8.0, 5.0), run(4.0, 20.0)],
            "after": [run(1.0, 10.0), run(4.0, 5.0), run(2.0, 20.0)]}
    rows = {r["case"]: r for r in bench.summarise(runs, {"after": "before"})}
    # efficiency: median over repeats of flops / (seconds x that repeat's rate)
    assert rows["after"]["efficiency"] == "5.00"  # 10, 5, 2.5
    assert rows["before"]["efficiency"] == "2.50"  # 2.5, 2.5, 1.25
    assert rows["after"]["best repeat"] == "10.00"
    # speedup: median of the per-repeat time ratios (4, 2, 2), not a ratio of medians
    assert rows["after"]["speedup"] == "2.00x" and rows["before"]["speedup"] == ""
    assert rows["after"]["padding"] == "20.0%"


def test_training_benchmark_padding_of_random_and_grouped_batches(load_benchmark):
    import numpy as np

    bench = load_benchmark("bench_training")
    lengths = np.random.default_rng(0).integers(10, 100, size=400)
    padding = bench.paired_padding(lengths, 8, epochs=2)
    assert 0 <= padding["grouped"] < 0.5 * padding["random"]
