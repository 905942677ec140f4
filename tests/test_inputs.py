"""The one input format of the generation estimators (skw2s.data.inputs)."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from skw2s.data.inputs import check_generation_input, check_generation_target

MC = pd.DataFrame(
    {
        "prompt": ["Question: sky?\nAnswer:", "Question: grass?\nAnswer:"],
        "choices": [["blue", "green"], ("red", "green", "brown")],
    }
)


def test_list_of_prompts_is_free_text():
    inputs = check_generation_input(["a", "b"])
    assert inputs.prompts == ["a", "b"] and inputs.choices is None and not inputs.has_choices
    assert len(inputs) == 2
    for X in (np.array(["a", "b"]), pd.Series(["a", "b"]), pd.DataFrame({"prompt": ["a", "b"]})):
        assert check_generation_input(X).prompts == ["a", "b"]


def test_frame_with_choices():
    inputs = check_generation_input(MC)
    assert inputs.has_choices
    assert inputs.choices == [["blue", "green"], ["red", "green", "brown"]]
    # numpy arrays of strings (e.g. from parquet) are accepted as lists
    X = MC.assign(choices=[np.array(["blue", "green"]), np.array(["x", "y"])])
    assert check_generation_input(X).choices[1] == ["x", "y"]


@pytest.mark.parametrize(
    "X, match",
    [
        (pd.DataFrame({"text": ["a"]}), "must have a 'prompt' column"),
        ("just one prompt", "single string"),
        ([1, 2], "prompt 0 is a int"),
        ([], "Found 0 prompts"),
        (np.array([["a", "b"]]), "1-D array"),
        ({"prompt": ["a"]}, "got dict"),
        (pd.DataFrame({"prompt": ["a"], "choices": ["blue, green"]}), "must be a list of strings"),
        (pd.DataFrame({"prompt": ["a"], "choices": [[]]}), "has no choices"),
        (pd.DataFrame({"prompt": ["a"], "choices": [["x", ""]]}), "non-empty string"),
        (pd.DataFrame({"prompt": ["a"], "choices": [["x", 3]]}), "non-empty string"),
    ],
)
def test_bad_inputs(X, match):
    with pytest.raises(ValueError, match=match):
        check_generation_input(X)


def test_require_choices():
    with pytest.raises(ValueError, match="needs multiple-choice input"):
        check_generation_input(["a"], require_choices=True)


def test_targets_with_choices():
    inputs = check_generation_input(MC)
    answers, idx = check_generation_target(np.array([1, 2]), inputs)
    assert answers == [" green", " brown"]  # format_completion: a leading space
    assert idx.dtype == np.int64 and idx.tolist() == [1, 2]


@pytest.mark.parametrize(
    "y, match",
    [
        ([0, 3], r"y\[1\] = 3 is out of range: row 1 has 3 choices"),
        ([0, -1], "out of range"),
        (["blue", "green"], "index of the correct choice"),
        ([True, 0], "index of the correct choice"),
        ([0], "inconsistent numbers of samples"),
        (None, "y is required"),
    ],
)
def test_bad_targets_with_choices(y, match):
    with pytest.raises(ValueError, match=match):
        check_generation_target(y, check_generation_input(MC))


def test_free_text_targets():
    inputs = check_generation_input(["a", "b"])
    answers, idx = check_generation_target(pd.Series([" x", "y"]), inputs)
    assert answers == [" x", "y"] and idx is None
    with pytest.raises(ValueError, match="Answer 1 is empty"):
        check_generation_target([" x", "  "], inputs)
    with pytest.raises(ValueError, match="answer strings"):
        check_generation_target([" x", 1], inputs)


def test_inputs_module_does_not_import_torch():
    import subprocess

    code = "import sys, skw2s.data.inputs; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
