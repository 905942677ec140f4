"""The skw2s command: config validation, runs on tiny models, report, demo's data check."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml

from skw2s.cli import main
from skw2s.experiment import ConfigError, load_config, load_task_data, run_config


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
        "strong": {"model": tiny_lm + "[:1]", "mode": "head", "n_epochs": 50, "lr": 0.05,
                   "device": "cpu"},
        "output_dir": str(tmp_path / "run"),
    }
    config.update(overrides)
    return config


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"colour": "red"}, r"Unknown key\(s\) \['colour'\] in the config"),
        ({"task": "regression"},
         "Bad value 'regression' for 'task'. Allowed: binary, multiple_choice"),
        ({"dataset": "mmlu"}, "Bad value 'mmlu' for 'dataset'"),
        ({"split_kind": "by_length"}, "Bad value 'by_length' for 'split_kind'"),
        ({"dataset": "quartz"}, "task 'binary' is built from SciQ"),
        ({"seeds": []}, "'seeds' must be"),
        ({"weak": {"model": "x", "learning_rat": 1}},
         r"Unknown key\(s\) \['learning_rat'\] in 'weak'. Allowed: .*lr"),
        ({"boost": {"n_rounds": 3}},
         r"Unknown key\(s\) \['n_rounds'\] in 'boost'. Allowed: .*n_estimators"),
        ({"split_kind": "easy_hard", "difficulty": {"folds": 3}},
         r"Unknown key\(s\) \['folds'\] in 'difficulty'"),
        ({"cascade_folds": 1}, r"'cascade_folds' must be an int >= 2; got 1"),
        ({"cascade_folds": "3"}, r"'cascade_folds' must be an int >= 2"),
    ],
)
def test_bad_config_names_key_and_allowed_values(tiny_lm, tmp_path, overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config(_config(tiny_lm, tmp_path, **overrides))


def test_cascade_folds_reach_the_pipeline_and_the_plan(tiny_lm, tmp_path):
    from skw2s.experiment import build_pipeline
    from skw2s.experiment._plan import _stages

    config = load_config(_config(tiny_lm, tmp_path, cascade=[{"model": tiny_lm}],
                                 cascade_folds=3))
    assert build_pipeline(config, seed=0).cascade_folds == 3
    folds = [name for name, _ in _stages(config) if name.startswith("cascade[1]/")]
    assert folds == ["cascade[1]/fold1", "cascade[1]/fold2", "cascade[1]/fold3"]
    default = load_config(_config(tiny_lm, tmp_path, cascade=[{"model": tiny_lm}]))
    assert default["cascade_folds"] == 2 and build_pipeline(default, seed=0).cascade_folds == 2


def test_config_file_roundtrip(tiny_lm, tmp_path):
    # Model specs are checked when a config loads, so the test names a real local checkpoint (a
    # made-up name would send the check to the Hub, which CI cannot reach).
    path = tmp_path / "exp.yaml"
    path.write_text(
        f"task: multiple_choice\ndataset: quartz\nseeds: 3\nweak: {{model: '{tiny_lm}'}}\n"
        f"strong: {{model: '{tiny_lm}[:1]'}}\nboost:\n"
    )
    config = load_config(path)
    assert config["name"] == "exp" and config["seeds"] == [3]
    assert config["output_dir"].endswith("exp")
    assert config["boost"] == {}  # an empty optional section means the defaults


def test_run_and_report_binary(tiny_lm, tmp_path, data_dir, capsys):
    path = tmp_path / "binary.yaml"
    path.write_text(yaml.safe_dump(_config(tiny_lm, tmp_path)))
    assert main(["run", str(path), "--data-dir", str(data_dir), "--quiet"]) == 0
    config = load_config(path)
    out = tmp_path / "run"
    printed = capsys.readouterr()
    wrote = [line for line in (printed.out + printed.err).splitlines() if "Wrote" in line]
    assert (len(wrote) == 1 and wrote[0].startswith(f"Wrote {out}/: ")
            and wrote[0].endswith("cache/"))
    for name in ("config.json", "results.csv", "results.png", "seed0.json", "seed1.json",
                 "summary.md"):
        assert f" {name}," in wrote[0]
    for name in ["seed0.json", "seed1.json", "results.csv", "summary.md", "results.png",
                 "config.json"]:
        assert (out / name).exists(), name
    record = json.loads((out / "seed0.json").read_text())
    models = {row["model"] for row in record["report"]}
    assert {"weak_single", "weak_ensemble", "baseline_student", "ensemble_student",
            "ceiling"} <= models
    assert record["n_test"] > 0 and "versions" in record and record["cpu_seconds"] > 0
    assert record["chance"] == {"hard": 0.5}  # the plots draw it, the warnings compare with it
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
            weak={"model": tiny_lm, "mode": "full", "n_epochs": 3, "lr": 5e-3, "max_length": 160,
                  "device": "cpu"},
            strong={"model": tiny_lm, "mode": "full", "n_epochs": 2, "lr": 5e-3,
                    "max_length": 160, "device": "cpu"},
            boost={"n_estimators": 2},
        )
    )
    out = run_config(config, data_dir=data_dir)
    record = json.loads((out / "seed0.json").read_text())
    assert record["n_easy"] == 12
    assert any(row["model"] == "ensemble_student" for row in record["report"])
    X, _, _ = load_task_data(config, data_dir)
    rows = record["predictions"]["hard"]["rows"]
    assert record["chance"]["hard"] == pytest.approx(np.mean([1 / len(X.choices[r]) for r in rows]))
    # each stage's training work beside its CPU time (see skw2s.hf.efficiency)
    stages = {s["stage"]: s for s in record["stages"]}
    for name in ("split", "weak[ours]", "student[ours,sft]", "ceiling"):  # split: difficulty CV
        assert stages[name]["cpu_seconds"] > 0 and stages[name]["train_seconds"] > 0
        assert stages[name]["useful_flops"] > 0 and stages[name]["efficiency"] > 0
        assert 0 <= stages[name]["padding"] < 1
    labels = stages["labels[ours]"]  # scoring only
    assert labels["useful_flops"] == 0 and labels["efficiency"] is None
    assert record["useful_flops"] == pytest.approx(sum(s["useful_flops"] for s in stages.values()))
    assert record["matmul_flops_per_second"] > 0 and record["efficiency"] > 0


def test_id_test_rows_shared_cache_and_round_tables(tiny_lm, tmp_path, data_dir):
    def mc_config(name, **boost):
        return load_config(_config(
            tiny_lm, tmp_path, name=name, task="multiple_choice", dataset="quartz", n_examples=24,
            seeds=[0], id_test_size=3, cache_dir=str(tmp_path / "shared-cache"),
            output_dir=str(tmp_path / name),
            weak={"model": tiny_lm, "mode": "full", "n_epochs": 2, "lr": 5e-3, "max_length": 160,
                  "device": "cpu"},
            strong={"model": tiny_lm, "mode": "full", "n_epochs": 1, "lr": 5e-3,
                    "max_length": 160, "device": "cpu"},
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
    # a random split: both test sets are random held-out rows, neither easy nor OOD
    id_ood = (out / "id_ood.md").read_text()
    assert "weak-side test" in id_ood and "ID (easy)" not in id_ood and "OOD" not in id_ood
    # an ablation of the weak side reuses the split and the ceiling from the shared cache
    ablation = run_config(mc_config("ablation", weighting="sample"), data_dir=data_dir)
    stages = {s["stage"]: s["cached"]
              for s in json.loads((ablation / "seed0.json").read_text())["stages"]}
    assert stages["split"] and stages["ceiling"] and not stages["weak[ours]"]
    # one report over several run directories
    assert main(["report", str(out), str(ablation), "--output-dir", str(tmp_path / "both")]) == 0
    summary = pd.read_csv(tmp_path / "both" / "summary.csv")
    assert summary.run.tolist() == ["main", "ablation"]


def _skw2s(args, tmp_path, **env):
    """``python -m skw2s ARGS`` in a fresh process (the environment a user's shell gives)."""
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    environ = {k: v for k, v in os.environ.items()
               if k not in ("SKW2S_DATA_DIR", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    environ.update(PYTHONPATH=str(Path(__file__).resolve().parents[1]), OMP_NUM_THREADS="1",
                   HF_HOME=str(tmp_path / "hf"), **env)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "skw2s", *args], cwd=tmp_path, env=environ,
                          capture_output=True, text=True, timeout=300)
    return done, time.perf_counter() - start


@pytest.mark.parametrize(
    "env, why",
    [
        ({"HF_HUB_OFFLINE": "1"}, "is not in the local Hugging Face cache (HF_HUB_OFFLINE is set"),
        ({"HF_ENDPOINT": "http://127.0.0.1:9"}, "http://127.0.0.1:9 could not be reached"),
    ],
)
def test_demo_offline_without_data_says_both_routes_at_once(tmp_path, env, why):
    # No data directory: the demo reads allenai/sciq from the Hub, through datasets. Offline it
    # stops at once (no retries) with one line that names the Hub and the offline route.
    done, seconds = _skw2s(["demo", "--quiet"], tmp_path, **env)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("skw2s: error: No offline data directory is set, and allenai/sciq")
    for part in (why, "--data-dir PATH", "SKW2S_DATA_DIR", "skw2s download-data PATH"):
        assert part in lines[-1]
    assert "Traceback" not in done.stderr and seconds < 60
    assert not (tmp_path / "runs").exists()


def test_report_without_results(tmp_path, capsys):
    (tmp_path / "sub").mkdir()
    with pytest.raises(SystemExit) as exc:
        main(["report", str(tmp_path)])
    assert exc.value.code == 2
    assert f"No run results in or below {tmp_path}" in capsys.readouterr().err


def test_demo_config_is_valid_and_uses_the_measured_pair():
    from skw2s.experiment import DEMO_CONFIG

    config = load_config(DEMO_CONFIG)
    assert (config["weak"]["model"] == "smollm2-135m[:6]"
            and config["strong"]["model"] == "smollm2-135m[:12]")
    assert len(config["seeds"]) >= 3 and config["test_split"] == "test"
    # the paired comparison of issue-sized cells, on a small budget: a uniform control and a
    # logconf student beside ours and the baseline
    assert config["controls"]["uniform"]["bootstrap"] and config["weak"]["mode"] == "lora"
    assert config["student_losses"] == ["xent", "logconf"]


# ----------------------------------------------------------------------------
# Config validation: each error names the key
# ----------------------------------------------------------------------------
def _yaml_config(tiny_lm, tmp_path, text, name="exp.yaml"):
    """A config file: the keys of the YAML ``text`` over a valid base."""
    config = {"task": "binary", "dataset": "sciq", "weak": {"model": tiny_lm},
              "strong": {"model": tiny_lm}, "output_dir": str(tmp_path / "run"),
              **(yaml.safe_load(text) or {})}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return path


def test_options_lettered_reaches_the_task_data(tiny_lm, tmp_path, data_dir):
    from skw2s.experiment import load_task_data

    path = _yaml_config(tiny_lm, tmp_path, "task: multiple_choice\ndataset: arc_easy\n"
                        "n_examples: 5\noptions: lettered\n")
    config = load_config(path)
    X, y, ids = load_task_data(config, data_dir)
    Xc, yc, idc = load_task_data(load_config(_yaml_config(
        tiny_lm, tmp_path, "task: multiple_choice\ndataset: arc_easy\nn_examples: 5\n",
        name="cloze.yaml")), data_dir)
    assert ids == idc and (y == yc).all()
    assert all(c == ["A", "B", "C", "D"][: len(c)] for c in X["choices"])
    for prompt, cloze_prompt, choices in zip(X["prompt"], Xc["prompt"], Xc["choices"]):
        assert prompt.endswith(f"{chr(ord('A') + len(choices) - 1)}. {choices[-1]}\nAnswer:")
        assert cloze_prompt.split("\n")[0] == prompt.split("\n")[0]


@pytest.mark.parametrize(
    "text, match",
    [
        ("baseline: 'false'\n",
         r"'baseline' must be a bool \(true or false, unquoted in YAML\); got 'false' \(str\)"),
        ("ceiling: 1\n", r"'ceiling' must be a bool"),
        ("seeds: [true]\n", r"'seeds' must be an int or a non-empty list of ints; got \[True\]"),
        ("seeds: [0, 0]\n", r"'seeds' must be distinct"),
        ("n_examples: abc\n", r"'n_examples' must be an int >= 1 or null; got 'abc' \(str\)"),
        ("test_size: '0.3'\n", r"'test_size' must be a float or an int"),
        ("data_seed: 1.5\n", r"'data_seed' must be an int"),
        ("options: letters\n", r"Bad value 'letters' for 'options'. Allowed: cloze, lettered"),
        ("options: lettered\n", r"'options: lettered' applies to task multiple_choice"),
        ("split_kind: random\ndifficulty: {n_splits: 2}\n",
         r"'difficulty' applies to split_kind: easy_hard only"),
        ("boost: [1, 2]\n", r"'boost' must be a mapping"),
        ("dataset: {path: q.jsonl, colums: {}}\n", r"Unknown key\(s\) \['colums'\] in 'dataset'"),
        ("dataset: {path: q.jsonl, columns: {question: q}}\n",
         r"'dataset.columns': Unknown role\(s\) \['question'\].*binary"),
        ("dataset: [sciq]\n", r"'dataset' must be a built-in name"),
        ("dataset: {path: q.jsonl}\nsplit: test\n", r"put split inside the dataset mapping"),
        ("dataset: {path: q.jsonl, choices_sep: ''}\n",
         r"'dataset.choices_sep' must be a non-empty string"),
        ("task: multiple_choice\ndataset: {path: q.jsonl, columns: {choices: [a]}}\n",
         r"'dataset.columns'.*list of two or more"),
    ],
)
def test_config_types_are_checked_and_name_the_key(tiny_lm, tmp_path, text, match):
    with pytest.raises(ConfigError, match=match):
        load_config(_yaml_config(tiny_lm, tmp_path, text))


def test_a_section_given_as_a_string_is_not_a_mapping(tiny_lm, tmp_path):
    path = _yaml_config(tiny_lm, tmp_path, "weak: smollm2-135m")
    with pytest.raises(ConfigError, match=r"'weak' must be a mapping of parameter names to values; "
                                          r"got 'smollm2-135m'"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"'strong' must name a model"):
        load_config({**_config(tiny_lm, tmp_path), "strong": {"mode": "head"}})


@pytest.mark.parametrize("content", ["", "# nothing set yet\n"])
def test_empty_config_file_lists_the_required_keys(tmp_path, content, capsys):
    path = tmp_path / "empty.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=r"empty.yaml' is empty. "
                                          r"A config needs at least: task, dataset, weak, strong"):
        load_config(path)
    with pytest.raises(SystemExit) as exc:
        main(["run", str(path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("skw2s: error: ") and err.count("\n") == 1 and "needs at least" in err
    with pytest.raises(ConfigError, match=r"missing the required key\(s\) \['dataset', 'weak'\]"):
        load_config({"task": "binary", "strong": {"model": "x"}})


def test_config_file_that_is_not_utf8_or_not_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"task: binary\nname: caf\xe9\n")
    with pytest.raises(ConfigError,
                       match=r"latin1.yaml, line 2: byte 0xe9 at column 10 is not UTF-8"):
        load_config(path)
    path = tmp_path / "broken.yaml"
    path.write_text("task: binary\nweak: {model: x\nstrong: {}\n")
    with pytest.raises(ConfigError, match=r"broken.yaml, line \d: not valid YAML"):
        load_config(path)


def test_run_errors_are_one_line_with_status_2_and_leave_no_config_json(tiny_lm, tmp_path, capsys):
    # a missing data file
    path = _yaml_config(tiny_lm, tmp_path, f"dataset: {{path: {tmp_path / 'missing.jsonl'}}}")
    with pytest.raises(SystemExit) as exc:
        main(["run", str(path)])
    assert exc.value.code == 2
    assert capsys.readouterr().err == (
        f"skw2s: error: The data file '{tmp_path / 'missing.jsonl'}' does not exist.\n")
    assert not (tmp_path / "run").exists()
    # an empty data file is named
    (tmp_path / "empty.jsonl").write_text("")
    path.write_text(path.read_text().replace("missing.jsonl", "empty.jsonl"))
    with pytest.raises(SystemExit):
        main(["run", str(path)])
    assert "empty.jsonl' is empty" in capsys.readouterr().err
    # a ValueError raised while fitting (a test size the pipeline refuses): one line, no
    # traceback, unless -v asks for it; no config.json is left behind
    _binary_jsonl(tmp_path / "claims.jsonl")
    path = _yaml_config(tiny_lm, tmp_path, f"dataset: {{path: {tmp_path / 'claims.jsonl'}, "
                        "columns: {text: sentence, label: gold}}\ntest_size: 2.5\nn_examples: null")
    with pytest.raises(SystemExit) as exc:
        main(["run", str(path), "--quiet"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("skw2s: error: The 'test_size' parameter")
    assert "Traceback" not in err
    assert not (tmp_path / "run" / "config.json").exists()
    with pytest.raises(SystemExit):
        main(["-v", "run", str(path), "--quiet"])
    err = capsys.readouterr().err
    assert ("Traceback" in err
            and err.rstrip().splitlines()[-1].startswith("skw2s: error: The 'test_size'"))


def test_help_lists_every_config_key_without_rst(capsys):
    from skw2s.experiment import CONFIG_KEYS

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    for key in CONFIG_KEYS:
        assert f"  {key.name}: {key.type}" in out
    assert "``" not in out and ":class:" not in out and ":func:" not in out


def test_top_level_help_is_short_and_names_the_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert len(out.splitlines()) <= 30
    for command in ("run", "demo", "report", "download-data"):
        assert f"    {command}" in out
    assert "``" not in out and ":class:" not in out


def test_docs_config_table_is_generated_from_the_schema():
    from pathlib import Path

    from skw2s.experiment import config_keys_markdown

    text = (Path(__file__).resolve().parents[1] / "docs" / "config.md").read_text()
    table = text.split("<!-- keys:begin -->\n")[1].split("<!-- keys:end -->")[0]
    assert table == config_keys_markdown()


# ----------------------------------------------------------------------------
# The command line: verbosity, output directory
# ----------------------------------------------------------------------------
def test_run_turns_progress_on_and_quiet_turns_it_off(tiny_lm, tmp_path, monkeypatch):
    import skw2s.experiment as experiment
    from skw2s.experiment import build_pipeline

    config = load_config(_config(tiny_lm, tmp_path, split_kind="easy_hard",
                                 difficulty={"n_splits": 2}))
    pipe = build_pipeline(config, seed=0, verbose=1)
    assert (pipe.verbose == pipe.weak.verbose == pipe.weak.estimator.verbose
            == pipe.strong.verbose == 1)
    assert pipe.splitter.estimator.verbose == 1
    assert build_pipeline({**config, "strong": {**config["strong"], "verbose": 0}}, seed=0,
                          verbose=1).strong.verbose == 0
    quiet = build_pipeline(config, seed=0)
    assert quiet.verbose == quiet.weak.estimator.verbose == quiet.strong.verbose == 0
    calls = []
    monkeypatch.setattr(experiment, "run_config",
                        lambda config, **kwargs: calls.append(kwargs) or tmp_path)
    (tmp_path / "summary.md").write_text("table\n")
    path = _yaml_config(tiny_lm, tmp_path, "")
    assert main(["run", str(path)]) == 0 and main(["run", str(path), "--quiet"]) == 0
    assert [c["verbose"] for c in calls] == [1, 0]


def _binary_jsonl(path, n=40):
    rows = [{"sentence": f"Q: Is {i} a number? A: {'yes' if i % 2 else 'no'}", "gold": i % 2}
            for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_run_a_jsonl_file_end_to_end(tiny_lm, tmp_path, capsys):
    _binary_jsonl(tmp_path / "claims.jsonl")
    learner = {"model": tiny_lm, "mode": "head", "n_epochs": 20, "lr": 0.05, "device": "cpu"}
    config = {
        "task": "binary",
        "dataset": {"path": str(tmp_path / "claims.jsonl"),
                    "columns": {"text": "sentence", "label": "gold"}},
        "n_examples": None, "test_size": 0.3, "seeds": [0], "baseline": False,
        "weak": learner, "boost": {"n_estimators": 2}, "strong": learner,
        "output_dir": str(tmp_path / "configured"),
    }
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "actual"
    assert main(["run", str(path), "--output-dir", str(out), "--quiet"]) == 0
    assert "ensemble_student" in capsys.readouterr().out
    recorded = json.loads((out / "config.json").read_text())
    assert recorded["output_dir"] == str(out)  # the directory used, not the config's
    assert recorded["name"] == "claims"
    record = json.loads((out / "seed0.json").read_text())
    assert record["n_easy"] == 20 and record["config"]["output_dir"] == str(out)
    assert not (tmp_path / "configured").exists()


def test_run_a_datasets_directory_end_to_end(tiny_lm, tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = [{"stem": f"What is {i} plus one?", "options": [str(i + 1), str(i + 7)], "key": i % 2,
             "uid": f"q{i}"} for i in range(16)]
    for row in rows:  # the correct option is the one at index "key"
        row["options"] = row["options"] if row["key"] == 0 else row["options"][::-1]
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(
        str(tmp_path / "sums"))
    learner = {"model": tiny_lm, "mode": "full", "n_epochs": 1, "lr": 5e-3, "max_length": 64,
               "device": "cpu"}
    config = {
        "name": "sums", "task": "multiple_choice",
        "dataset": {"path": str(tmp_path / "sums"), "split": "train",
                    "columns": {"id": "uid", "question": "stem", "choices": "options",
                                "answer": "key"}},
        "n_examples": None, "test_size": 0.25, "seeds": [0], "baseline": False, "ceiling": False,
        "weak": learner, "boost": {"n_estimators": 2}, "strong": learner,
        "output_dir": str(tmp_path / "run"),
    }
    path = tmp_path / "sums.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["run", str(path), "--quiet"]) == 0
    record = json.loads((tmp_path / "run" / "seed0.json").read_text())
    assert record["n_easy"] == 8 and record["n_test"] == 2
    assert {"weak_ensemble", "ensemble_student"} <= {row["model"] for row in record["report"]}


def test_one_config_compares_weak_sides_and_losses_on_the_official_test(tiny_lm, tmp_path,
                                                                         data_dir):
    config = load_config(_config(
        tiny_lm, tmp_path, n_examples=40, test_split="test", n_test=24,
        controls={"uniform": {"ensemble": "uniform", "n_estimators": 2, "bootstrap": True}},
        student_losses=["xent", "logconf"], baseline_losses=["xent", "logconf"],
    ))
    out = run_config(config, data_dir=data_dir)
    record = json.loads((out / "seed0.json").read_text())
    students = {(r["weak_side"], r["loss"]) for r in record["report"]
                if r["model"] == "ensemble_student"}
    assert students == {("ours", "xent"), ("ours", "logconf"), ("uniform", "xent"),
                        ("uniform", "logconf")}
    # every model's answer to each of the 24 official test questions, with the question ids
    predictions = record["predictions"]["hard"]
    assert len(predictions["y"]) == 24 == len(predictions["ids"]) and record["n_test"] == 0
    assert all(len(v) == 24 for v in predictions["models"].values())
    # and each weak learner's own answers, per weak side, in round order
    assert set(predictions["members"]) == {"ours", "uniform"}
    assert len(predictions["members"]["uniform"]) == 2
    assert all(len(m) == 24 for side in predictions["members"].values() for m in side)
    # they share the split, the stored rounds and the ceiling: round 1 is trained once
    cached = [r["cached"] for r in record["control_rounds"]["uniform"]]
    assert cached[0] is True
    # one row per (weak side, loss), and the paired tables from the per-question results
    comparison = pd.read_csv(out / "comparison.csv")
    # a random split scores all of the official test questions: the tables say "all", not "hard"
    assert len(comparison[comparison.test == "all"]) == 6  # 2 weak sides x 2 losses + 2 baselines
    paired = pd.read_csv(out / "paired.csv")
    assert {"ours − uniform (students)", "uniform − baseline (students)"} <= set(paired.comparison)
    assert (paired.n_seeds == 2).all() and (paired.n_questions == 48).all()
    assert (paired.test == "hard").all() and (paired.test_set == "all").all()
    assert ((paired.ci_low <= paired["diff"]) & (paired["diff"] <= paired.ci_high)).all()
    # beside the bootstrap, the t interval on the two per-seed differences
    assert ((paired.seed_ci_low <= paired["diff"]) & (paired["diff"] <= paired.seed_ci_high)).all()
    assert np.allclose(paired.seed_half_width, 12.7062 * paired.seed_sd / np.sqrt(2), rtol=1e-4)
    assert (out / "disagreement.md").exists()


def _quiz_csv(path, n, start=0):
    lines = ["prompt,A,B,C,key"]
    lines += [f"What is {i} plus one?,{i + 1},{i + 5},C,{'AB'[i % 2]}"
              for i in range(start, start + n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_own_data_config_names_its_own_test_file_with_the_same_mapping(tiny_lm, tmp_path):
    columns = {"question": "prompt", "choices": ["A", "B", "C"], "answer": "key"}
    config = load_config({
        "task": "multiple_choice", "n_examples": None, "n_test": 5,
        "dataset": {"path": str(_quiz_csv(tmp_path / "pool.csv", 12)), "columns": columns,
                    "answer_format": "letter",
                    "test_path": str(_quiz_csv(tmp_path / "exam.csv", 8, start=100))},
        "weak": {"model": tiny_lm}, "strong": {"model": tiny_lm},
    })
    data = load_task_data(config, with_test=True)
    assert len(data["X"]) == 12 and len(data["X_test"]) == 5
    assert all(p.startswith("Question: What is 1") for p in data["X_test"]["prompt"])
    assert data["test_ids"][0].startswith("exam-") and set(data["y_test"]) <= {0, 1}
    # the option "C" and the key C: the config's answer_format says the keys are letters
    assert data["X"]["choices"][0] == ["1", "5", "C"] and data["y"][0] == 0
    from skw2s.experiment.report import test_set_label

    assert test_set_label("hard", config) == "all"


@pytest.mark.parametrize(
    "dataset, extra, match",
    [
        ({"answer_format": "key"}, {}, r"Bad value 'key' for 'dataset.answer_format'. Allowed: "
                                       r"index, letter, text"),
        ({"test_path": 3}, {}, r"'dataset.test_path' must be a non-empty string"),
        ({"split": "train"}, {"test_split": "train"}, r"'test_split' must differ from the pool's"),
    ],
)
def test_own_test_settings_are_checked(tiny_lm, tmp_path, dataset, extra, match):
    config = {"task": "multiple_choice", "dataset": {"path": str(tmp_path), **dataset},
              "weak": {"model": tiny_lm}, "strong": {"model": tiny_lm}, **extra}
    with pytest.raises(ConfigError, match=match):
        load_config(config)


def test_own_data_directory_scores_on_its_test_split(tiny_lm, tmp_path):
    folder = tmp_path / "quiz"
    folder.mkdir()
    _quiz_csv(folder / "train.csv", 10)
    _quiz_csv(folder / "test.csv", 4, start=50)
    config = load_config({
        "task": "multiple_choice", "n_examples": None, "test_split": "test",
        "dataset": {"path": str(folder), "answer_format": "letter",
                    "columns": {"question": "prompt", "choices": ["A", "B", "C"], "answer": "key"}},
        "weak": {"model": tiny_lm}, "strong": {"model": tiny_lm},
    })
    data = load_task_data(config, with_test=True)
    assert len(data["X"]) == 10 and len(data["X_test"]) == 4
    assert data["X_test"]["prompt"][0].startswith("Question: What is 50 plus one?")


# ----------------------------------------------------------------------------
# --set, --dry-run, --version, help
# ----------------------------------------------------------------------------
def test_set_overrides_dotted_keys_with_yaml_values(tiny_lm, tmp_path):
    config = load_config(_config(tiny_lm, tmp_path), overrides=[
        "weak.lr=1e-3", "seeds=[0, 2]", "boost.n_estimators=5", "ceiling=false", "name=over",
        "controls.bag.ensemble=uniform", "n_test=null",
    ])
    assert config["weak"]["lr"] == 0.001 and config["weak"]["model"] == tiny_lm
    assert config["seeds"] == [0, 2] and config["boost"] == {"n_estimators": 5}
    assert config["ceiling"] is False and config["name"] == "over"
    assert config["controls"]["bag"]["ensemble"] == "uniform" and config["n_test"] is None
    for item, match in [
        ("weak.lr.x=1", r"--set 'weak.lr.x=1': 'weak.lr' is .*, not a mapping"),
        ("colour=red", r"Unknown key\(s\) \['colour'\] in the config"),
        ("weak.lrr=1", r"Unknown key\(s\) \['lrr'\] in 'weak'"),
        ("seeds", r"--set 'seeds': expected KEY=VALUE"),
        ("weak..lr=1", r"expected KEY=VALUE"),
        ("seeds=[0", r"--set 'seeds=\[0': the value is not YAML"),
    ]:
        with pytest.raises(ConfigError, match=match):
            load_config(_config(tiny_lm, tmp_path), overrides=[item])


def test_dry_run_checks_every_row_and_prints_the_plan_without_training(tiny_lm, tmp_path, capsys):
    columns = {"question": "prompt", "choices": ["A", "B", "C"], "answer": "key"}
    config = {
        "task": "multiple_choice", "n_examples": 8,
        "dataset": {"path": str(_quiz_csv(tmp_path / "pool.csv", 12)), "columns": columns,
                    "answer_format": "letter"},
        "weak": {"model": tiny_lm}, "strong": {"model": tiny_lm},
        "output_dir": str(tmp_path / "run"),
    }
    path = tmp_path / "quiz.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["run", str(path), "--dry-run", "--set", "boost.n_estimators=4"]) == 0
    out = capsys.readouterr().out
    assert "Plan of quiz (dry run: nothing trained, nothing written)" in out
    assert "12 rows in the pool" not in out and "8 rows in the pool" in out
    assert ("stages per seed: 7 (4 train: weak[ours], student[ours,sft], baseline[sft], "
            "ceiling)") in out
    assert "{'n_estimators': 4}" in out and not (tmp_path / "run").exists()
    assert re.search(r"cost: about [0-9.e+-]+ TFLOPs of training per seed", out)
    # a bad row anywhere in the file fails the dry run, though the subset would not draw it
    with open(tmp_path / "pool.csv", "a") as f:
        f.write("Which?,a,b,c,F\n")
    with pytest.raises(SystemExit) as exc:
        main(["run", str(path), "--dry-run"])
    assert exc.value.code == 2
    assert "pool.csv, line 14: answer 'F' is out of range" in capsys.readouterr().err


def test_version_module_entry_point_and_short_help(tmp_path, capsys):
    from skw2s import __version__

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out == f"skw2s {__version__}\n"
    done, _ = _skw2s(["--help"], tmp_path)
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert len(lines) < 40 and "download-data" in done.stdout and "--version" in done.stdout
    for command, words in [("report", "Aggregate the seed*.json files"),
                           ("demo", "A small real weak-to-strong experiment"),
                           ("download-data", "the offline layout")]:
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert words in capsys.readouterr().out


def test_boosting_that_cannot_start_names_the_config_keys(tiny_lm, tmp_path, capsys):
    # A weak learner that does not train (n_epochs: 0) is the pre-trained model: its token error
    # is eps_pre itself, so token boosting cannot start.
    config = {
        "task": "multiple_choice", "n_examples": 12, "seeds": [0], "baseline": False,
        "dataset": {"path": str(_quiz_csv(tmp_path / "pool.csv", 12)), "answer_format": "letter",
                    "columns": {"question": "prompt", "choices": ["A", "B", "C"], "answer": "key"}},
        "weak": {"model": tiny_lm, "mode": "full", "max_length": 64, "device": "cpu"},
        "strong": {"model": tiny_lm, "max_length": 64, "device": "cpu"},
        "output_dir": str(tmp_path / "run"),
    }
    path = tmp_path / "quiz.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(SystemExit) as exc:
        main(["run", str(path), "--quiet", "--set", "weak.n_epochs=0"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "boosting cannot start" in err
    assert err.endswith("(in the config: weak.n_epochs, weak.lr).") and "estimator__" not in err


def test_estimated_flops_follow_the_counting_rule(tiny_lm, tmp_path):
    from skw2s.hf.efficiency import useful_flops
    from skw2s.experiment import estimate_training_flops

    columns = {"question": "prompt", "choices": ["A", "B", "C"], "answer": "key"}
    config = load_config({
        "task": "multiple_choice", "n_examples": None, "test_size": 2, "ceiling": True,
        "dataset": {"path": str(_quiz_csv(tmp_path / "pool.csv", 12)), "columns": columns,
                    "answer_format": "letter"},
        "weak": {"model": tiny_lm, "mode": "full", "n_epochs": 3, "max_length": 64},
        "boost": {"n_estimators": 2},
        "strong": {"model": tiny_lm, "mode": "full", "n_epochs": 1, "max_length": 64},
    })
    data = load_task_data(config, with_test=True)
    flops = estimate_training_flops(config, data)
    assert set(flops) == {"weak[ours]", "student[ours,sft]", "baseline[sft]", "ceiling"}
    # the weak side: 2 rounds x 3 epochs on the 6 easy rows; the ceiling: 1 epoch on 6 - 2 rows
    assert flops["weak[ours]"] / flops["ceiling"] == pytest.approx(2 * 3 * 6 / 4)
    from skw2s.hf.models import load_causal_lm, load_tokenizer
    from skw2s.hf.efficiency import parameter_counts

    model, tokenizer = load_causal_lm(tiny_lm, device="cpu")[0], load_tokenizer(tiny_lm)
    counts = parameter_counts(model, model.get_output_embeddings())
    prompts = [len(tokenizer(p)["input_ids"]) for p in data["X"]["prompt"]]
    answers = [len(tokenizer(" " + c[k])["input_ids"]) for c, k in zip(data["X"]["choices"],
                                                                      data["y"])]
    tokens, rows = np.mean(prompts) + np.mean(answers), np.mean(answers)
    assert flops["ceiling"] == pytest.approx(4 * useful_flops(counts, tokens, rows))


def test_estimated_flops_of_head_mode_read_each_body_once(tiny_lm, tmp_path, capsys):
    """Head mode with n_epochs "auto" (the demo's strong side) is 200 steps of the head over
    features the frozen body computes once per side of the split; the dry run turns the total
    into a training-time range at this process's matmul rate."""
    from skw2s.experiment import estimate_training_flops
    from skw2s.experiment._plan import EFFICIENCY_RANGE, estimate_training_seconds
    from skw2s.hf.efficiency import parameter_counts, useful_flops
    from skw2s.hf.models import load_causal_lm, load_tokenizer

    _binary_jsonl(tmp_path / "claims.jsonl")
    head = {"model": tiny_lm, "mode": "head", "max_length": 32}
    config = {
        "task": "binary", "n_examples": None, "test_size": 4, "seeds": [0],
        "dataset": {"path": str(tmp_path / "claims.jsonl"),
                    "columns": {"text": "sentence", "label": "gold"}},
        "weak": head, "boost": {"n_estimators": 3}, "strong": head,
        "controls": {"uniform": {"ensemble": "uniform", "n_estimators": 2}},
        "student_losses": ["xent", "logconf"], "output_dir": str(tmp_path / "run"),
    }
    loaded = load_config(config)
    data = load_task_data(loaded, with_test=True)
    flops = estimate_training_flops(loaded, data)

    model, tokenizer = load_causal_lm(tiny_lm, device="cpu")[0], load_tokenizer(tiny_lm)
    counts = parameter_counts(model, model.get_output_embeddings())
    texts = data["X"]
    tokens = np.mean([min(len(tokenizer(t)["input_ids"]), 32) for t in texts])
    body = 2 * counts["body"] * tokens  # one forward pass of the frozen body per row
    step = 6 * 2 * model.config.hidden_size  # a step of the two-class linear head (6 x weights)
    n_easy, n_hard = 20, 20 - 4
    # the easy rows' body pass counts once, for the first weak learner; 200 head steps each
    assert flops["weak[ours]"] == pytest.approx(n_easy * (body + 3 * 200 * step))
    assert flops["weak[uniform]"] == pytest.approx(n_easy * 2 * 200 * step)
    # the hard rows' body pass counts once, for the first student
    assert flops["student[ours,xent]"] == pytest.approx(n_hard * (body + 200 * step))
    for name in ("student[uniform,xent]", "student[ours,logconf]", "baseline[xent]", "ceiling"):
        assert flops[name] == pytest.approx(n_hard * 200 * step)
    assert useful_flops(counts, tokens, 1) > 0

    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["run", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    low, high, rate, _ = estimate_training_seconds(sum(flops.values()))
    assert high / low == pytest.approx(EFFICIENCY_RANGE[1] / EFFICIENCY_RANGE[0])
    assert low == pytest.approx(sum(flops.values()) / (rate * EFFICIENCY_RANGE[1]))
    assert re.search(r"time: training alone about \d+ s to \d+ s per seed here \(\d+ GFLOP/s "
                     r"measured now, float32 on \d+ CPU thread\(s\)", out)
