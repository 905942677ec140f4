"""How a config file's YAML is read: numbers in exponent form, duplicate keys."""

from __future__ import annotations

import pytest

from skw2s.experiment import ConfigError, load_config

BASE = "task: binary\ndataset: sciq\nstrong: {model: smollm2-135m}\n"


@pytest.mark.parametrize("text, value", [
    ("2e-3", 0.002), ("1E-4", 1e-4), ("+5e2", 500.0), ("1.5e-3", 0.0015), ("0.001", 0.001),
    ("3", 3), ("auto", "auto"),
])
def test_exponent_form_numbers_are_floats(tmp_path, text, value):
    # PyYAML reads YAML 1.1, where 2e-3 (no dot) is the string "2e-3": lr would then fail
    # validation as "must be a float ... Got '2e-3'" though it reads as a number
    path = tmp_path / "c.yaml"
    path.write_text(BASE + f"weak: {{model: smollm2-135m, lr: {text}}}\n")
    lr = load_config(path)["weak"]["lr"]
    assert lr == value and type(lr) is type(value)


def test_a_quoted_exponent_stays_a_string_and_plain_yaml_is_unchanged(tmp_path):
    import yaml

    path = tmp_path / "c.yaml"
    path.write_text(BASE + 'weak: {model: smollm2-135m, lr: "2e-3"}\n')
    assert load_config(path)["weak"]["lr"] == "2e-3"
    assert yaml.safe_load("x: 2e-3") == {"x": "2e-3"}  # the loader's subclass only


def test_a_key_given_twice_names_both_lines(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(BASE + "weak: {model: smollm2-135m}\nseeds: [0]\nseeds: [1]\n")
    with pytest.raises(ConfigError, match=r"lines 5 and 6: the key 'seeds' is given twice"):
        load_config(path)
