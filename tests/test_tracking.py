"""Watching and tracking training runs: run names, saved loss curves, tracking parameters kept
out of cache keys, and real tracker round trips: TensorBoard (event files written by the
Trainer's callback through tensorboardX, read back here) and MLflow (a local file store,
read back with MLflow's client)."""

from __future__ import annotations

import json
import logging
import pickle
import struct

import joblib
import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.base import clone

from skw2s import (
    LLMClassifier,
    LLMGenerator,
    TokenAdaBoostGenerator,
    WeakToStrongPipeline,
)
from skw2s.hf.efficiency import collect_training_stats
from skw2s.hf.tracking import MAX_POINTS, current_run_name, loss_curve, training_run, untracked


def _mc(n=16):
    X = pd.DataFrame({"prompt": [f"Question: is item {i} more or less?\nAnswer:" for i in range(n)],
                      "choices": [["more", "less"]] * n})
    return X, np.random.RandomState(0).randint(0, 2, n)


def _generator(tiny_lm, **kw):
    return LLMGenerator(tiny_lm, **{"mode": "lora", "lr": 5e-3, "n_epochs": 2, "batch_size": 4,
                                    "max_length": 48, "device": "cpu", "random_state": 0, **kw})


def _scalars(folder):
    """Every scalar of the TensorBoard event files in ``folder``, ``{tag: [(step, value)]}``:
    TFRecord framing (length, its CRC, the record, its CRC) around tensorboardX's ``Event``."""
    from tensorboardX.proto.event_pb2 import Event

    files = sorted(folder.glob("events.out.tfevents.*"))
    assert files, f"no event file in {folder}"
    out = {}
    for path in files:
        data, i = path.read_bytes(), 0
        while i < len(data):
            (n,) = struct.unpack("<Q", data[i : i + 8])
            event = Event.FromString(data[i + 12 : i + 12 + n])
            i += 12 + n + 4
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    out.setdefault(value.tag, []).append((event.step, value.simple_value))
    return out


# ----------------------------------------------------------------------------
# Run names and loss curves
# ----------------------------------------------------------------------------
def test_run_names_nest_and_reset():
    assert current_run_name("LLMGenerator") == "LLMGenerator"
    with training_run("weak[ours]"):
        with training_run("round2"):
            assert current_run_name("x") == "weak[ours]/round2"
        assert current_run_name() == "weak[ours]"
    assert current_run_name() is None


def test_loss_curve_keeps_short_runs_and_shrinks_long_ones():
    assert loss_curve([]) == []
    assert loss_curve([3.0, 2.0, 1.0]) == [[1, 3.0], [2, 2.0], [3, 1.0]]
    long = loss_curve([float(i) for i in range(1, 121)])  # 120 steps: means of 3
    assert len(long) == 40 <= MAX_POINTS
    assert long[0] == [3, 2.0] and long[-1] == [120, 119.0]
    assert len(loss_curve([1.0] * 1001)) <= MAX_POINTS


def test_tensorboard_round_trip_under_the_stage_and_round_name(tiny_lm, tmp_path, monkeypatch):
    pytest.importorskip("tensorboardX")
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path / "tb"))
    X, y = _mc()
    gen = _generator(tiny_lm, report_to="tensorboard", logging_steps=1)
    with collect_training_stats() as stats, training_run("weak[ours]"), training_run("round2"):
        gen.fit(X, y)
    [curve] = stats.loss_curves
    assert curve["run"] == "weak[ours]/round2"
    steps = list(range(1, 9))  # 16 rows, batches of 4, 2 epochs
    assert [s for s, _ in curve["points"]] == steps
    scalars = _scalars(tmp_path / "tb" / "weak[ours]" / "round2")
    logged = scalars["train/loss"]
    assert [s for s, _ in logged] == steps
    # the tracker's curve is the saved one (the Trainer rounds its logs to 4 decimals)
    np.testing.assert_allclose([v for _, v in logged], [v for _, v in curve["points"]], atol=2e-4)
    assert len(scalars["train/learning_rate"]) == len(steps)


def test_mlflow_round_trip_under_the_stage_and_round_name(tiny_lm, tmp_path, monkeypatch):
    # The Trainer's MLflow callback, a local file store (MLflow 3 asks for the opt-in), read
    # back with MLflow's own client: the run carries the stage and round name and the loss
    # curve that the run's results save.
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "skw2s-test")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    X, y = _mc()
    gen = _generator(tiny_lm, report_to="mlflow", logging_steps=1)
    with collect_training_stats() as stats, training_run("weak[ours]"), training_run("round2"):
        gen.fit(X, y)
    [curve] = stats.loss_curves
    client = MlflowClient(uri)
    [run] = client.search_runs([client.get_experiment_by_name("skw2s-test").experiment_id])
    assert run.info.run_name == "weak[ours]/round2" and run.info.status == "FINISHED"
    logged = client.get_metric_history(run.info.run_id, "loss")
    steps = list(range(1, 9))  # 16 rows, batches of 4, 2 epochs
    assert sorted(m.step for m in logged) == steps
    np.testing.assert_allclose([m.value for m in sorted(logged, key=lambda m: m.step)],
                               [v for _, v in curve["points"]], atol=2e-4)
    assert run.data.params["learning_rate"] == "0.005"  # the Trainer's arguments, as params


def test_loss_curve_is_saved_without_a_tracker_and_nothing_is_logged(tiny_lm, tmp_path,
                                                                     monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    X, y = _mc()
    with collect_training_stats() as stats:
        _generator(tiny_lm, verbose=1).fit(X, y)
        LLMClassifier(tiny_lm, mode="head", lr=0.05, n_epochs=120, device="cpu",
                      random_state=0).fit([f"Q: {i} A: yes" for i in range(8)], [0, 1] * 4)
    gen_curve, head_curve = stats.loss_curves
    assert gen_curve["run"] == "LLMGenerator" and len(gen_curve["points"]) == 8
    assert head_curve["run"] == "LLMClassifier" and head_curve["points"][-1][0] == 120
    assert len(head_curve["points"]) == 40
    assert all(np.isfinite(v) for _, v in gen_curve["points"] + head_curve["points"])
    assert list(tmp_path.iterdir()) == []  # no tracker folder, no file
    # the progress bar showed, but the Trainer's metric dictionaries did not go to stdout
    out = capsys.readouterr().out
    assert "train_runtime" not in out and "'loss'" not in out


def test_a_zero_shot_fit_does_not_say_it_trained(tiny_lm, caplog):
    X, y = _mc(4)
    with caplog.at_level(logging.INFO, logger="skw2s"):
        LLMGenerator(tiny_lm, n_epochs=0, device="cpu").fit(X, y)
    assert "trained on" not in caplog.text
    with caplog.at_level(logging.INFO, logger="skw2s"):
        _generator(tiny_lm, n_epochs=1).fit(X, y)
    assert "LLMGenerator: trained on" in caplog.text


# ----------------------------------------------------------------------------
# Parameters: sklearn conventions, cache keys, pickles
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [LLMClassifier, LLMGenerator])
def test_tracking_parameters_are_plain_parameters(cls):
    est = cls(report_to=["tensorboard", "mlflow"], logging_steps=5)
    params = clone(est).get_params()
    assert params["report_to"] == ["tensorboard", "mlflow"] and params["logging_steps"] == 5
    assert cls().get_params()["report_to"] == "none" and cls().get_params()["logging_steps"] is None
    for bad in ({"report_to": 3}, {"report_to": ""}, {"logging_steps": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            cls(model="no-such-model", **bad).fit(["a", "b"], [0, 1])


@pytest.mark.parametrize("cls", [LLMClassifier, LLMGenerator])
def test_tracking_parameters_change_no_key_and_no_default_pickle(cls):
    from skw2s.w2s.stages import _verbose_free

    default, tracked = cls("m"), cls("m", report_to="tensorboard", logging_steps=3, verbose=1)
    # at their defaults they are not in the state: keys and pickles are those of before
    state = default.__getstate__()
    assert "report_to" not in state and "logging_steps" not in state
    assert joblib.hash(untracked(tracked.set_params(verbose=0))) == joblib.hash(default)
    assert _verbose_free(tracked) == _verbose_free(default)
    # set, they survive a pickle; an estimator pickled before they existed reads its defaults
    back = pickle.loads(pickle.dumps(tracked))
    assert back.report_to == "tensorboard" and back.logging_steps == 3
    old = cls.__new__(cls)
    old.__setstate__({k: v for k, v in vars(default).items()
                      if k not in ("report_to", "logging_steps")})
    assert old.get_params()["report_to"] == "none" and old.get_params()["logging_steps"] is None


@pytest.mark.filterwarnings("ignore::UserWarning")  # a tiny test set
def test_pipeline_names_stages_and_rounds_and_tracking_reuses_the_cache(tiny_lm, tmp_path,
                                                                       monkeypatch):
    pytest.importorskip("tensorboardX")
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path / "tb"))
    X, y = _mc()

    def fit(**tracking):
        gen = LLMGenerator(tiny_lm, mode="full", lr=5e-3, n_epochs=2, max_length=48,
                           device="cpu", **tracking)
        return WeakToStrongPipeline(
            weak=TokenAdaBoostGenerator(gen, n_estimators=2, random_state=0), strong=gen,
            random_state=0, memory=str(tmp_path / "mem")).fit(X, y)

    pipe = fit()
    runs = [c["run"] for stage in pipe.history_ for c in stage["loss_curve"]]
    assert runs[:2] == ["weak[ours]/round1", "weak[ours]/round2"]
    assert "student[ours,sft]" in runs and "ceiling" in runs
    assert all(c["points"] for stage in pipe.history_ for c in stage["loss_curve"])
    assert not (tmp_path / "tb").exists()
    stored = sorted(p.name for p in (tmp_path / "mem").rglob("*.skops"))
    again = fit(report_to="tensorboard", logging_steps=1)
    assert all(stage["cached"] for stage in again.history_)  # the same keys
    assert sorted(p.name for p in (tmp_path / "mem").rglob("*.skops")) == stored
    assert all(stage["loss_curve"] == [] for stage in again.history_)


# ----------------------------------------------------------------------------
# Configs and the command line
# ----------------------------------------------------------------------------
def _binary_config(tiny_lm, tmp_path, **extra):
    rows = [{"sentence": f"Q: Is {i} a number? A: {'yes' if i % 2 else 'no'}", "gold": i % 2}
            for i in range(40)]
    (tmp_path / "claims.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    head = {"model": tiny_lm, "mode": "head", "n_epochs": 20, "lr": 0.05, "device": "cpu"}
    config = {
        "task": "binary",
        "dataset": {"path": str(tmp_path / "claims.jsonl"),
                    "columns": {"text": "sentence", "label": "gold"}},
        "n_examples": None, "test_size": 0.3, "seeds": [0], "baseline": False, "ceiling": False,
        "weak": head, "boost": {"n_estimators": 2},
        "strong": {**head, "mode": "lora", "n_epochs": 1, "lr": 1e-3, "batch_size": 4},
        "output_dir": str(tmp_path / "run"), **extra,
    }
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_config_tracking_reaches_every_learner_that_does_not_set_its_own(tiny_lm, tmp_path):
    from skw2s.experiment import ConfigError, build_pipeline, load_config

    path = _binary_config(tiny_lm, tmp_path,
                          tracking={"report_to": "mlflow", "logging_steps": 10})
    config = load_config(path)
    pipe = build_pipeline(config, seed=0)
    assert pipe.weak.estimator.report_to == pipe.strong.report_to == "mlflow"
    assert pipe.strong.logging_steps == 10
    own = load_config(path, overrides=["strong.report_to=wandb"])
    assert build_pipeline(own, seed=0).strong.report_to == "wandb"
    assert load_config(_binary_config(tiny_lm, tmp_path))["tracking"] == {}
    with pytest.raises(ConfigError, match=r"Unknown key\(s\) \['every'\] in 'tracking'"):
        load_config(path, overrides=["tracking.every=3"])


@pytest.mark.filterwarnings("ignore::UserWarning")  # a tiny test set
def test_run_saves_loss_curves_and_writes_tensorboard_beside_the_results(tiny_lm, tmp_path,
                                                                         capsys, monkeypatch):
    pytest.importorskip("tensorboardX")
    from skw2s.cli import main

    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    path = _binary_config(tiny_lm, tmp_path, tracking={"report_to": "tensorboard"},
                          split_kind="easy_hard", difficulty={"n_splits": 2})
    assert main(["run", str(path)]) == 0  # progress bars on
    out = capsys.readouterr().out
    assert "train_runtime" not in out and "{'" not in out
    record = json.loads((tmp_path / "run" / "seed0.json").read_text())
    curves = {c["run"]: c["points"] for s in record["stages"] for c in s["loss_curve"]}
    assert {"seed0/split/fold1", "seed0/split/fold2", "seed0/weak[ours]/round1",
            "seed0/student[ours,xent]"} <= set(curves)
    assert all(len(points) <= MAX_POINTS and points for points in curves.values())
    # head-mode learners train without the Trainer: only the LoRA student reports
    folder = tmp_path / "run" / "tensorboard" / "seed0" / "student[ours,xent]"
    logged = _scalars(folder)["train/loss"]
    assert [s for s, _ in logged][:1] == [1] and len(logged) >= 1
