"""benchmarks/reproduce.py: the shipped configs are valid, and a cell runs and rebuilds
RESULTS.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from skw2s.experiment import load_config


@pytest.fixture(scope="module")
def reproduce(load_benchmark):
    return load_benchmark("reproduce")


def test_every_cell_has_a_valid_config_whose_results_the_report_finds(reproduce):
    for name in reproduce.MAIN + reproduce.ABLATIONS:
        config = load_config(reproduce.config_path(name))
        assert config["name"] == name
        expected = reproduce.RESULTS / ("ablations" if name in reproduce.ABLATIONS else "") / name
        assert (reproduce.ROOT / config["output_dir"]).resolve() == expected.resolve()
        assert config["cache_dir"] is not None  # shared: ablations reuse the main split
        assert len(config["seeds"]) >= 3
    main = load_config(reproduce.config_path("arc-easy-random"))
    # an ablation changes the boosting settings or the weak learner only
    for name in reproduce.ABLATIONS:
        ablation = load_config(reproduce.config_path(name))
        changed = "weak" if name in reproduce.WEAK_VARIANTS else "boost"
        for key in ("dataset", "n_examples", "split_kind", "test_size", "id_test_size", "weak",
                    "strong", "boost"):
            if key != changed:
                assert ablation[key] == main[key], (name, key)
        assert ablation[changed] != main[changed]
        assert ablation["baseline"] == (name in reproduce.WEAK_VARIANTS)


def test_cell_runs_and_tables_are_rebuilt(reproduce, tiny_lm, data_dir, tmp_path):
    configs, results = tmp_path / "configs", tmp_path / "results"
    (configs / "ablations").mkdir(parents=True)
    learner = {"model": tiny_lm, "mode": "full", "n_epochs": 1, "lr": 5e-3, "max_length": 160,
               "device": "cpu"}
    base = {"task": "multiple_choice", "dataset": "quartz", "n_examples": 20, "id_test_size": 2,
            "seeds": [0, 1], "weak": learner, "strong": learner, "boost": {"n_estimators": 2},
            "cache_dir": str(tmp_path / "cache")}
    cells = {"arc-easy-random": ({}, results / "arc-easy-random"),
             "ablations/arc-easy-random-logit": ({"boost": {"n_estimators": 2, "combine": "logit"},
                                                  "baseline": False},
                                                 results / "ablations" / "arc-easy-random-logit")}
    for name, (overrides, out) in cells.items():
        config = {**base, **overrides, "name": Path(name).name, "output_dir": str(out)}
        (configs / f"{name}.yaml").write_text(yaml.safe_dump(config))
    reproduce.run(["arc-easy-random", "arc-easy-random-logit"], [0], data_dir, configs=configs)
    assert (results / "arc-easy-random" / "seed0.json").exists()
    assert not (results / "arc-easy-random" / "seed1.json").exists()  # only the seeds asked for
    assert json.loads((results / "arc-easy-random" / "config.json").read_text())["seeds"] == [0, 1]
    stages = json.loads((results / "ablations" / "arc-easy-random-logit"
                         / "seed0.json").read_text())["stages"]
    assert {s["stage"]: s["cached"] for s in stages}["ceiling"]  # shared with the main cell
    markdown = tmp_path / "RESULTS.md"
    markdown.write_text("intro\n<!-- main:begin -->\nstale table\n<!-- main:end -->\nafter\n")
    reproduce.report(markdown, results)
    text = markdown.read_text()
    assert "stale table" not in text and "after" in text
    assert "| arc-easy-random " in text and "arc-easy-random-logit" in text
    assert "<!-- rounds:begin -->" in text and "<!-- id-ood:begin -->" in text
    assert ("<!-- paper:begin -->" in text
            and "torch" in text.split("<!-- versions:begin -->")[1])
    deltas = (text.split("<!-- ablation-deltas:begin -->")[1]
              .split("<!-- ablation-deltas:end -->")[0])
    assert ("| arc-easy-random-logit " in deltas
            and "ablation - default" in deltas)  # paired on seed 0
    assert (results / "report" / "main" / "results.png").exists()


def test_run_without_data_dir_says_how(reproduce, monkeypatch, capsys):
    monkeypatch.delenv("SKW2S_DATA_DIR", raising=False)
    with pytest.raises(SystemExit) as exc:
        reproduce.main(["run", "--only", "arc-easy-random"])
    assert exc.value.code == 2
    assert "--data-dir" in capsys.readouterr().err
