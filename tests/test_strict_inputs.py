"""Config and data strictness (issue 29, §3 and §4): duplicate YAML keys, a data directory that
is a file, repeated options of a multiple-choice row, a text field beyond the length bound, a
max_length beyond the model's context, and a long-prompt warning that counts questions."""

from __future__ import annotations

import json
import warnings

import pandas as pd
import pytest
import yaml

from skw2s import LLMClassifier, LLMGenerator
from skw2s.cli import main
from skw2s.experiment import ConfigError, load_config


def test_a_key_given_twice_is_refused_naming_it_and_both_lines(tiny_lm, tmp_path, capsys):
    path = tmp_path / "twice.yaml"
    path.write_text(f"task: binary\ndataset: sciq\nweak: {{model: '{tiny_lm}'}}\n"
                    f"strong: {{model: '{tiny_lm}'}}\nboost:\n  n_estimators: 2\n"
                    "seeds: [0]\nboost:\n  n_estimators: 3\n")
    with pytest.raises(ConfigError, match=rf"{path}, lines 5 and 8: the key 'boost' is given "
                                          r"twice\. Keep one of them\."):
        load_config(path)
    nested = tmp_path / "nested.yaml"
    nested.write_text(f"task: binary\ndataset: sciq\nweak:\n  model: '{tiny_lm}'\n  lr: 0.1\n"
                      f"  lr: 0.2\nstrong: {{model: '{tiny_lm}'}}\n")
    with pytest.raises(SystemExit) as exc:
        main(["run", str(nested)])
    assert exc.value.code == 2
    assert capsys.readouterr().err == (f"skw2s: error: {nested}, lines 5 and 6: the key 'lr' is "
                                       "given twice. Keep one of them.\n")
    merged = tmp_path / "merged.yaml"  # a key merged in with << may be overridden
    merged.write_text(f"task: binary\ndataset: sciq\nbase: &b {{model: '{tiny_lm}', lr: 0.1}}\n"
                      "weak:\n  <<: *b\n  lr: 0.2\nstrong: *b\n")
    with pytest.raises(ConfigError, match=r"Unknown key\(s\) \['base'\]"):
        load_config(merged)  # gets past the YAML, to the schema


def test_a_data_dir_that_is_a_file_is_named_as_a_file(tiny_lm, tmp_path, capsys):
    from skw2s.data.datasets import resolve_data_dir

    not_a_dir = tmp_path / "data.jsonl"
    not_a_dir.write_text("{}\n")
    with pytest.raises(FileNotFoundError, match=r"is a file, not a directory"):
        resolve_data_dir(not_a_dir)
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({"task": "binary", "dataset": "sciq",
                                    "weak": {"model": tiny_lm}, "strong": {"model": tiny_lm},
                                    "output_dir": str(tmp_path / "run")}))
    with pytest.raises(SystemExit):
        main(["run", str(path), "--data-dir", str(not_a_dir)])
    err = capsys.readouterr().err
    assert err.startswith(f"skw2s: error: Data directory '{not_a_dir}' (from data_dir) is a "
                          "file, not a directory")


def _mc_file(tmp_path, rows):
    path = tmp_path / "mc.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_repeated_options_in_a_multiple_choice_row_are_refused(tmp_path):
    from skw2s.data.datasets import load_table

    rows = [{"question": "sky?", "choices": ["blue", "green"], "answer": 0},
            {"question": "grass?", "choices": ["green", "blue", " green"], "answer": 0}]
    with pytest.raises(ValueError, match=r"mc.jsonl, line 2: 'choices' lists 'green' more than "
                                         r"once"):
        load_table(_mc_file(tmp_path, rows), task="multiple_choice")
    rows[1]["choices"] = ["green"]  # a single option was refused already
    with pytest.raises(ValueError, match=r"line 2: 'choices' has 1 option\(s\), at least 2"):
        load_table(_mc_file(tmp_path, rows), task="multiple_choice")


def test_a_field_beyond_the_length_bound_is_refused_before_tokenising(tmp_path, monkeypatch):
    from skw2s.data.datasets import load_table

    monkeypatch.setenv("SKW2S_MAX_FIELD_CHARS", "1000")
    rows = [{"question": "sky?", "choices": ["blue", "green"], "answer": 0},
            {"question": "x" * 1001, "choices": ["blue", "green"], "answer": 1}]
    with pytest.raises(ValueError, match=r"mc.jsonl, line 2: 'question' has 1,001 characters, "
                                         r"more than the bound of 1,000 per field"):
        load_table(_mc_file(tmp_path, rows), task="multiple_choice")
    rows[1] = {"question": "sky?", "choices": ["blue", "g" * 2000], "answer": 1}
    with pytest.raises(ValueError, match=r"line 2: 'choices' has 2,000 characters"):
        load_table(_mc_file(tmp_path, rows), task="multiple_choice")


@pytest.mark.parametrize("cls", [LLMClassifier, LLMGenerator])
def test_max_length_beyond_the_context_is_refused(tiny_lm, cls):
    # the tiny model has 512 positions
    kwargs = dict(mode="head") if cls is LLMClassifier else dict(n_epochs=0)
    est = cls(tiny_lm, max_length=513, device="cpu", **kwargs)
    X = ["a b", "c d"] if cls is LLMClassifier else pd.DataFrame(
        {"prompt": ["Q: sky?\nA:", "Q: grass?\nA:"], "choices": [["blue", "green"]] * 2})
    with pytest.raises(ValueError, match=r"max_length=513 is beyond the context of .* \(512 "
                                         r"positions\): set max_length to 512 or less"):
        est.fit(X, [0, 1])


def test_the_long_prompt_warning_counts_questions_not_options(tiny_lm):
    X = pd.DataFrame({"prompt": ["Question: " + "very " * 40 + "long?\nAnswer:",
                                 "Question: short?\nAnswer:"],
                      "choices": [["red", "green", "blue", "black"]] * 2})
    gen = LLMGenerator(tiny_lm, n_epochs=0, max_length=64, device="cpu").fit(X, [0, 1])
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        gen.predict_proba(X)
    messages = [str(w.message) for w in record if "were longer than max_length" in str(w.message)]
    assert messages and all(m.startswith("1 prompt(s) were longer than max_length=64")
                            for m in messages), messages
