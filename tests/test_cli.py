"""The skw2s command: config validation, runs on tiny models, report, demo's data check."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from skw2s.cli import main
from skw2s.experiment import ConfigError, load_config, run_config


def _config(tiny_lm, tmp_path, **overrides):
    config = {
        "name": "tiny-binary",
        "task": "binary",
        "dataset": "sciq",
        "n_examples": 48,
        "test_size": 0.34,
        "seeds": [0, 1],
        "weak": {"model": tiny_lm, "mode": "head", "n_epochs": 50, "lr": 0.05, "device": "cpu"},
        "boost": {"n_estimators": 2},
        "strong": {"model": tiny_lm + "[:1]", "mode": "head", "n_epochs": 50, "lr": 0.05, "device": "cpu"},
        "output_dir": str(tmp_path / "run"),
    }
    config.update(overrides)
    return config


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"colour": "red"}, r"Unknown key\(s\) \['colour'\] in the config"),
        ({"task": "regression"}, "Bad value 'regression' for 'task'. Allowed: binary, multiple_choice"),
        ({"dataset": "mmlu"}, "Bad value 'mmlu' for 'dataset'"),
        ({"split_kind": "by_length"}, "Bad value 'by_length' for 'split_kind'"),
        ({"dataset": "quartz"}, "task 'binary' is built from SciQ"),
        ({"seeds": []}, "'seeds' must be"),
        ({"weak": {"model": "x", "learning_rat": 1}}, r"Unknown key\(s\) \['learning_rat'\] in 'weak'. Allowed: .*lr"),
        ({"boost": {"n_rounds": 3}}, r"Unknown key\(s\) \['n_rounds'\] in 'boost'. Allowed: .*n_estimators"),
        ({"split_kind": "easy_hard", "difficulty": {"folds": 3}}, r"Unknown key\(s\) \['folds'\] in 'difficulty'"),
    ],
)
def test_bad_config_names_key_and_allowed_values(tiny_lm, tmp_path, overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config(_config(tiny_lm, tmp_path, **overrides))


def test_config_file_roundtrip(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("task: multiple_choice\ndataset: quartz\nseeds: 3\n")
    config = load_config(path)
    assert config["name"] == "exp" and config["seeds"] == [3]
    assert config["output_dir"].endswith("exp")


def test_run_and_report_binary(tiny_lm, tmp_path, data_dir):
    config = load_config(_config(tiny_lm, tmp_path))
    out = run_config(config, data_dir=data_dir)
    for name in ["seed0.json", "seed1.json", "results.csv", "summary.md", "results.png", "config.json"]:
        assert (out / name).exists(), name
    record = json.loads((out / "seed0.json").read_text())
    models = {row["model"] for row in record["report"]}
    assert {"weak_single", "weak_ensemble", "baseline_student", "ensemble_student", "ceiling"} <= models
    assert record["n_test"] > 0 and "versions" in record
    results = pd.read_csv(out / "results.csv")
    assert set(results.n_seeds) == {2}
    # `skw2s report` rebuilds the same table from the raw JSON
    before = (out / "results.csv").read_text()
    (out / "results.csv").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "results.csv").read_text() == before
    # finished seeds are skipped when the run starts again
    mtime = (out / "seed0.json").stat().st_mtime_ns
    run_config(config, data_dir=data_dir)
    assert (out / "seed0.json").stat().st_mtime_ns == mtime


def test_run_multiple_choice_easy_hard(tiny_lm, tmp_path, data_dir):
    config = load_config(
        _config(
            tiny_lm,
            tmp_path,
            name="tiny-quartz",
            task="multiple_choice",
            dataset="quartz",
            n_examples=24,
            seeds=[0],
            split_kind="easy_hard",
            difficulty={"n_splits": 2},
            weak={"model": tiny_lm, "mode": "full", "n_epochs": 3, "lr": 5e-3, "max_length": 160, "device": "cpu"},
            strong={"model": tiny_lm, "mode": "full", "n_epochs": 2, "lr": 5e-3, "max_length": 160, "device": "cpu"},
            boost={"n_estimators": 2},
        )
    )
    out = run_config(config, data_dir=data_dir)
    record = json.loads((out / "seed0.json").read_text())
    assert record["n_easy"] == 12
    assert any(row["model"] == "ensemble_student" for row in record["report"])


def test_id_test_rows_shared_cache_and_round_tables(tiny_lm, tmp_path, data_dir):
    def mc_config(name, **boost):
        return load_config(_config(
            tiny_lm, tmp_path, name=name, task="multiple_choice", dataset="quartz", n_examples=24,
            seeds=[0], id_test_size=3, cache_dir=str(tmp_path / "shared-cache"),
            output_dir=str(tmp_path / name),
            weak={"model": tiny_lm, "mode": "full", "n_epochs": 2, "lr": 5e-3, "max_length": 160, "device": "cpu"},
            strong={"model": tiny_lm, "mode": "full", "n_epochs": 1, "lr": 5e-3, "max_length": 160, "device": "cpu"},
            boost={"n_estimators": 2, **boost},
        ))

    out = run_config(mc_config("main"), data_dir=data_dir)
    record = json.loads((out / "seed0.json").read_text())
    assert record["n_id_test"] == 3 and record["n_easy"] == 9
    assert {row["test"] for row in record["report"]} == {"hard", "easy"}
    assert all(0 <= row["token_error"] <= 1 for row in record["report"])
    for name in ["rounds.md", "rounds.png", "id_ood.md"]:
        assert (out / name).exists(), name
    assert "token error" in (out / "summary.md").read_text()
    assert "ID (easy)" in (out / "id_ood.md").read_text()
    # an ablation of the weak side reuses the split and the ceiling from the shared cache
    ablation = run_config(mc_config("ablation", weighting="sample"), data_dir=data_dir)
    stages = {s["stage"]: s["cached"] for s in json.loads((ablation / "seed0.json").read_text())["stages"]}
    assert stages["split"] and stages["ceiling"] and not stages["weak"]
    # one report over several run directories
    assert main(["report", str(out), str(ablation), "--output-dir", str(tmp_path / "both")]) == 0
    summary = pd.read_csv(tmp_path / "both" / "summary.csv")
    assert summary.run.tolist() == ["main", "ablation"]


def test_demo_without_data_dir_says_how(monkeypatch, capsys):
    monkeypatch.delenv("SKW2S_DATA_DIR", raising=False)
    with pytest.raises(SystemExit) as exc:
        main(["demo"])
    assert exc.value.code == 2
    assert "--data-dir" in capsys.readouterr().err


def test_report_without_results(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["report", str(tmp_path)])
    assert "No seed*.json" in capsys.readouterr().err


def test_demo_config_is_valid_and_uses_the_measured_pair():
    from skw2s.experiment import DEMO_CONFIG

    config = load_config(DEMO_CONFIG)
    assert config["weak"]["model"] == "smollm2-135m[:6]" and config["strong"]["model"] == "smollm2-135m[:12]"
    assert config["id_test_size"] and len(config["seeds"]) >= 3
