"""The extended methods config (benchmarks/methods/sciq-binary-methods-extended.yaml) runs end to
end on a tiny model and budget, and its report has every row the paired table needs."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from skw2s.experiment.comparison import diagnostics_table, paired_table
from skw2s.experiment import load_config, run_config

CONFIG = (Path(__file__).resolve().parents[1] / "benchmarks" / "methods"
          / "sciq-binary-methods-extended.yaml")
ROWS = ["ours", "uniform", "learned", "router", "confidence", "ours+gold", "cascade"]


def test_extended_methods_config_dry_run(tiny_lm, tmp_path, data_dir):
    raw = yaml.safe_load(CONFIG.read_text())
    assert len(raw["seeds"]) >= 5 and raw["gold_fraction"] == 0.1 and len(raw["cascade"]) == 1
    tiny = {"model": tiny_lm, "mode": "head", "n_epochs": 30, "lr": 0.05, "device": "cpu",
            "max_length": 64, "batch_size": 16}
    raw.update(n_examples=64, n_test=30, seeds=[0], weak=tiny,
               strong={**tiny, "model": tiny_lm + "[:1]"}, cascade=[{"model": tiny_lm}],
               output_dir=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"))
    config = load_config(raw)
    out = run_config(config, data_dir=data_dir)
    record = json.loads((out / "seed0.json").read_text())
    # the dry run's plan lists the stages the run ran, the gold side's and the cascade's too
    from skw2s.experiment._plan import _stages

    assert [name for name, _ in _stages(config)] == [s["stage"] for s in record["stages"]]
    models = record["predictions"]["hard"]["models"]
    for side in ROWS:
        for loss in ("xent", "logconf"):
            assert f"{side}/ensemble_student/{loss}" in models
    assert {row["weak_side"]: row["n_gold"] for row in record["labels"]}["ours+gold"] == 3
    assert any(row["model"] == "cascade_step" for row in record["report"])
    comparisons = set(paired_table([out]).comparison)
    for side in ROWS[1:]:
        assert f"{side} − baseline (students)" in comparisons
    for side in ("cascade", "confidence", "learned", "ours+gold", "router"):
        assert f"{side} − uniform (students)" in comparisons
    assert "ours − uniform (students)" in comparisons
    diagnostics = diagnostics_table([out]).set_index(["weak_side", "loss"])
    assert diagnostics.loc[("ours+gold", "xent"), "gold labels"] == "3"
    for side in ("ours", "uniform", "router"):  # several learners: a kappa on their errors
        assert diagnostics.loc[(side, "xent"), "error kappa (weak)"] != "–"
    assert (out / "diagnostics.md").exists()
