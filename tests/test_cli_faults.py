"""Faults during `skw2s run` (issue 29, §3): none prints a traceback or loses a finished seed.

Ctrl-C (a real SIGINT to a fresh process), a full disk while the finished seed is written (a
patched writer), an output directory that cannot hold the results, and parameters of the
strong side that are wrong: each gets one line, and the checks come before any training."""

from __future__ import annotations

import errno
import json
import os
import pathlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from skw2s.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _config_file(tiny_lm, tmp_path, **overrides):
    config = {
        "name": "tiny-binary", "task": "binary", "dataset": "sciq", "n_examples": 48,
        "test_size": 0.34, "seeds": [0],
        "weak": {"model": tiny_lm, "mode": "head", "n_epochs": 50, "lr": 0.05, "device": "cpu"},
        "boost": {"n_estimators": 2},
        "strong": {"model": tiny_lm + "[:1]", "mode": "head", "n_epochs": 50, "lr": 0.05,
                   "device": "cpu"},
        "output_dir": str(tmp_path / "run"),
        **overrides,
    }
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _no_training(monkeypatch):
    """Make any fit of the pipeline a test failure (AssertionError is not caught by main)."""
    from skw2s.estimators.classifier import LLMClassifier

    def trained(*args, **kwargs):
        raise AssertionError("a model trained before the check")

    monkeypatch.setattr(LLMClassifier, "fit", trained)


def _leftovers(directory):
    return sorted(p.name for p in Path(directory).rglob("*.tmp"))


@pytest.mark.slow
def test_ctrl_c_says_what_finished_and_how_to_resume(tiny_lm, tmp_path, data_dir):
    import re

    # Seeds that take a while (the weak learners fine-tune the whole tiny model, where head
    # mode reuses one feature cache and a seed took milliseconds), and many of them, so that
    # one is running when the signal comes even on a busy machine (with 3 fast seeds, all 3
    # finished between two polls).
    weak = {"model": tiny_lm, "mode": "full", "n_epochs": 20, "lr": 0.05, "device": "cpu"}
    path = _config_file(tiny_lm, tmp_path, seeds=list(range(40)), weak=weak)
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    # SIGINT at its default in the child: a suite started in the background by a
    # non-interactive shell (`nohup ... &`) ignores SIGINT, the child inherits that, and
    # Python then installs no KeyboardInterrupt handler, so the signal would be lost.
    proc = subprocess.Popen(
        [sys.executable, "-m", "skw2s.cli", "run", str(path), "--data-dir", str(data_dir),
         "--quiet"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seed0 = tmp_path / "run" / "seed0.json"
    deadline = time.monotonic() + 240
    while not seed0.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert seed0.exists(), proc.communicate(timeout=60)[1][-3000:]
    proc.send_signal(signal.SIGINT)  # a later seed is running
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err
    last = [line for line in err.splitlines() if line.startswith("skw2s:")]
    assert len(last) == 1, err[-3000:]
    found = re.fullmatch(
        rf"skw2s: interrupted: seed\(s\) ([0-9, ]+) finished and saved in "
        rf"{re.escape(str(tmp_path / 'run'))}; seed ([0-9]+) was running\. Run the same "
        r"command again to resume: finished seeds are skipped and finished stages come from "
        r"the cache\.", last[0])
    assert found, last[0]
    finished, running = [int(s) for s in found[1].split(", ")], int(found[2])
    # the seeds it names as saved are those on disk, in order, and the running one is not
    assert finished == list(range(len(finished))) and running == len(finished)
    assert sorted(p.name for p in (tmp_path / "run").glob("seed*.json")) == sorted(
        f"seed{s}.json" for s in finished)
    assert (tmp_path / "run" / "config.json").exists() and _leftovers(tmp_path / "run") == []


def test_ctrl_c_before_any_seed_finished_leaves_no_config_json(tiny_lm, tmp_path, data_dir,
                                                               monkeypatch, capsys):
    from skw2s.experiment import _runner

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(_runner, "_run_seed", interrupted)
    path = _config_file(tiny_lm, tmp_path)
    assert main(["run", str(path), "--data-dir", str(data_dir), "--quiet"]) == 130
    err = capsys.readouterr().err
    assert err == ("skw2s: interrupted: no seed finished; seed 0 was running. Run the same "
                   "command again to resume: finished seeds are skipped and finished stages "
                   "come from the cache.\n")
    assert not (tmp_path / "run" / "config.json").exists()


def test_a_full_disk_while_writing_the_seed_still_prints_its_results(tiny_lm, tmp_path,
                                                                     data_dir, monkeypatch,
                                                                     capsys):
    real = pathlib.Path.write_text

    def full_disk(self, data, *args, **kwargs):
        if self.name.startswith("seed") and self.suffix == ".tmp":
            self.open("w").close()  # the file is created, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real(self, data, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "write_text", full_disk)
    path = _config_file(tiny_lm, tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["run", str(path), "--data-dir", str(data_dir), "--quiet"])
    assert exc.value.code == 1
    captured = capsys.readouterr()
    assert captured.err == (f"skw2s: error: could not write {tmp_path / 'run' / 'seed0.json'} "
                            f"(OSError: [Errno 28] No space left on device: "
                            f"'{tmp_path / 'run' / 'seed0.tmp'}')\n")
    # the finished seed's results reach the user
    assert "tiny-binary, seed 0 (not saved):" in captured.out
    assert "| ceiling" in captured.out and "_student " in captured.out
    assert _leftovers(tmp_path / "run") == [] and not (tmp_path / "run" / "seed0.json").exists()


@pytest.mark.parametrize("how", ["a file", "under a file", "read-only"])
def test_an_output_dir_that_cannot_hold_results_is_one_line_before_training(
        tiny_lm, tmp_path, data_dir, monkeypatch, capsys, how):
    out = tmp_path / "run"
    if how == "a file":
        out.write_text("")
        match = f"skw2s: error: output_dir {out} is a file, not a directory"
    elif how == "under a file":
        (tmp_path / "file").write_text("")
        out = tmp_path / "file" / "run"
        match = f"skw2s: error: output_dir {out} is not writable (NotADirectoryError"
    else:
        if os.geteuid() == 0:
            pytest.skip("running as root: file modes do not stop writes")
        out.mkdir(mode=0o500)
        match = f"skw2s: error: output_dir {out} is not writable (PermissionError"
    _no_training(monkeypatch)
    path = _config_file(tiny_lm, tmp_path, output_dir=str(out))
    with pytest.raises(SystemExit) as exc:
        main(["run", str(path), "--data-dir", str(data_dir), "--quiet"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith(match) and err.count("\n") == 1


@pytest.mark.parametrize("overrides, match", [
    ({"student_losses": ["xent", "bogus"]},
     r"student loss 'bogus': The 'loss' parameter of LLMClassifier must be a str among"),
    ({"strong": {"model": "TINY[:1]", "mode": "head", "lr": -1.0}},
     r"strong: The 'lr' parameter of LLMClassifier must be a float in the range \(0.0, inf\)"),
    ({"controls": {"u": {"ensemble": "uniform", "weak": {"verbose": "false"}}}},
     r"weak side 'u': The 'verbose' parameter of LLMClassifier must be an int"),
])
def test_strong_side_parameters_are_checked_before_the_weak_side_trains(
        tiny_lm, tmp_path, data_dir, monkeypatch, capsys, overrides, match):
    import re

    overrides = json.loads(json.dumps(overrides).replace("TINY", tiny_lm))
    _no_training(monkeypatch)
    path = _config_file(tiny_lm, tmp_path, **overrides)
    with pytest.raises(SystemExit) as exc:
        main(["run", str(path), "--data-dir", str(data_dir), "--quiet"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1
    assert re.match(r"skw2s: error: " + match, err), err
    assert not (tmp_path / "run" / "config.json").exists()


class _Exploit:
    """A pickle that runs a command when it is read."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def _pickle_only_model(tiny_lm, folder, marker):
    """A copy of the tiny model whose weights are a ``pytorch_model.bin`` that would run code."""
    import pickle
    import shutil

    shutil.copytree(tiny_lm, folder)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(_Exploit(f"touch '{marker}'")))
    return folder


def test_a_pickle_weights_model_is_one_line_naming_it(tiny_lm, tmp_path, data_dir, monkeypatch,
                                                       capsys):
    from skw2s import LLMClassifier

    marker = tmp_path / "pwned"
    model = _pickle_only_model(tiny_lm, tmp_path / "bin-model", marker)
    message = (f"{model} holds its weights as pickle files only (pytorch_model.bin): skw2s "
               "loads weights from safetensors only")
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        LLMClassifier(str(model), mode="head", device="cpu").fit(["a b", "c d"], [0, 1])
    _no_training(monkeypatch)
    path = _config_file(tiny_lm, tmp_path, strong={"model": str(model), "mode": "head"})
    with pytest.raises(SystemExit) as exc:
        main(["run", str(path), "--data-dir", str(data_dir), "--quiet"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith(f"skw2s: error: 'strong.model': {message}")
    assert err.count("\n") == 1 and not marker.exists()
