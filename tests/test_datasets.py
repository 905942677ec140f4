"""Tests for skw2s.data.datasets, on the real offline copies in shared/data."""

import json
import re
import zipfile

import numpy as np
import pandas as pd
import pytest

from skw2s.data import datasets as ds
from skw2s.data.datasets import (
    DATASETS,
    SPLITS,
    binarize_sciq,
    format_classification,
    format_completion,
    format_prompt,
    load_arc,
    load_arc_metadata,
    load_dataset,
    load_quartz,
    load_sciq,
    to_classification,
    to_multiple_choice,
)

COUNTS = {
    "sciq": {"train": 11679, "validation": 1000, "test": 1000},
    "quartz": {"train": 2696, "validation": 384, "test": 784},
    "arc_easy": {"train": 2251, "validation": 570, "test": 2376},
}
COLUMNS = ["id", "question", "choices", "answer", "support"]


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    # Each test says where the data are; the env var is set only where tested.
    monkeypatch.delenv("SKW2S_DATA_DIR", raising=False)


@pytest.fixture(scope="session")
def sciq_train(data_dir):
    return load_sciq("train", data_dir=data_dir)


# ----------------------------------------------------------------------------
# Loading the real data
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(COUNTS))
@pytest.mark.parametrize("split", ["train", "validation", "test"])
def test_row_counts_and_schema(data_dir, sciq_train, name, split):
    if name == "sciq" and split == "train":
        df = sciq_train
    else:
        df = load_dataset(name, split=split, data_dir=data_dir)
    assert len(df) == COUNTS[name][split]
    assert list(df.columns) == COLUMNS
    assert df["answer"].dtype == np.int64
    assert df["id"].is_unique
    for col in ("id", "question", "support"):
        assert all(isinstance(v, str) for v in df[col])
    assert all(isinstance(c, list) and c and all(isinstance(s, str) for s in c)
               for c in df["choices"])
    n_choices = df["choices"].map(len).to_numpy()
    assert ((df["answer"].to_numpy() >= 0) & (df["answer"].to_numpy() < n_choices)).all()


def test_dataset_specific_shapes(data_dir, sciq_train):
    assert (sciq_train["choices"].map(len) == 4).all()
    # the correct answer is spread over the four positions, not always first
    assert sciq_train["answer"].value_counts().min() > 2500
    quartz = load_quartz("validation", data_dir=data_dir)
    assert (quartz["choices"].map(len) == 2).all()
    assert (quartz["support"] != "").all()
    arc = load_arc("easy", "validation", data_dir=data_dir)
    assert (arc["support"] == "").all()
    assert arc.loc[arc["id"] == "MCAS_2000_4_6", "answer"].item() == 0  # answerKey A


def test_loaders_agree_with_load_dataset(data_dir):
    a = load_arc("easy", "validation", data_dir=data_dir)
    b = DATASETS["arc_easy"](split="validation", data_dir=data_dir)
    pd.testing.assert_frame_equal(a, b)


def test_data_dir_may_be_dataset_folder(data_dir):
    df = load_quartz("validation", data_dir=data_dir / "quartz")
    assert len(df) == 384


def test_env_var(data_dir, monkeypatch):
    monkeypatch.setenv("SKW2S_DATA_DIR", str(data_dir))
    assert len(load_quartz("validation")) == 384
    assert len(load_dataset("arc_easy", split="validation")) == 570


def test_env_var_missing_dir(tmp_path, monkeypatch):
    missing = tmp_path / "nope"
    monkeypatch.setenv("SKW2S_DATA_DIR", str(missing))
    with pytest.raises(FileNotFoundError, match="SKW2S_DATA_DIR") as info:
        load_sciq("test")
    assert str(missing) in str(info.value)


def test_resolve_data_dir_argument_then_env_then_error(tmp_path, monkeypatch):
    from skw2s.data.datasets import resolve_data_dir

    given, env = tmp_path / "given", tmp_path / "env"
    given.mkdir()
    env.mkdir()
    with pytest.raises(FileNotFoundError,
                       match="No data directory given.*--data-dir.*SKW2S_DATA_DIR"):
        resolve_data_dir(None)
    assert resolve_data_dir(None, required=False) is None
    monkeypatch.setenv("SKW2S_DATA_DIR", str(env))
    assert resolve_data_dir(None) == env
    assert resolve_data_dir(str(given)) == given  # the argument wins over the environment
    with pytest.raises(FileNotFoundError, match=r"from data_dir"):
        resolve_data_dir(tmp_path / "missing")


def test_arc_metadata(data_dir):
    meta = load_arc_metadata(data_dir=data_dir)
    assert meta.index.name == "id"
    assert len(meta) == sum(COUNTS["arc_easy"].values())
    assert meta["grade"].dtype == np.int64
    assert set(meta["grade"]) <= set(range(3, 10))
    assert {"split", "set", "exam_name", "year"} <= set(meta.columns)
    test = load_arc("easy", "test", data_dir=data_dir)
    assert set(test["id"]) <= set(meta.index)
    assert meta.loc["Mercury_7220990", "grade"] == 8


def test_arc_metadata_needs_data_dir():
    with pytest.raises(FileNotFoundError, match="SKW2S_DATA_DIR"):
        load_arc_metadata()


# ----------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------
def test_bad_split_subset_name(data_dir):
    with pytest.raises(ValueError, match=r"'split'.*'train', 'validation', 'test'.*'dev'"):
        load_sciq("dev", data_dir=data_dir)
    with pytest.raises(ValueError, match=r"'subset'.*'easy', 'challenge'.*'hard'"):
        load_arc("hard", data_dir=data_dir)
    with pytest.raises(ValueError, match=r"'name'.*'sciq'.*'arc_challenge'.*'squad'"):
        load_dataset("squad", data_dir=data_dir)
    with pytest.raises(ValueError, match="'valid'"):
        load_dataset("quartz", split="valid", data_dir=data_dir)


def test_missing_dir_and_file(tmp_path):
    missing = tmp_path / "does_not_exist"
    with pytest.raises(FileNotFoundError) as info:
        load_sciq(data_dir=missing)
    msg = str(info.value)
    assert str(missing) in msg and "data_dir=" in msg and "SKW2S_DATA_DIR" in msg
    # existing folder without the file (e.g. ARC-Challenge not downloaded)
    with pytest.raises(FileNotFoundError) as info:
        load_arc("challenge", "test", data_dir=tmp_path)
    msg = str(info.value)
    assert str(tmp_path / "arc_challenge" / "test.jsonl") in msg and "SKW2S_DATA_DIR" in msg


GOOD = {"id": "q1", "question": "Why?", "choices": ["a", "b"], "answer": 1, "support": ""}


@pytest.mark.parametrize(
    "bad_line, problem",
    [
        ('{"id": "q2", "question": ', "invalid JSON"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "answer"}), "missing field"),
        (json.dumps({**GOOD, "answer": 2}), "out of range"),
        (json.dumps({**GOOD, "answer": -1}), "out of range"),
        (json.dumps({**GOOD, "answer": "1"}), "must be an int"),
        (json.dumps({**GOOD, "choices": []}), "empty"),
        (json.dumps({**GOOD, "choices": "ab"}), "list of strings"),
        (json.dumps({**GOOD, "question": None}), "'question' must be a string"),
        ("[1, 2]", "JSON object"),
    ],
)
def test_malformed_jsonl(tmp_path, bad_line, problem):
    folder = tmp_path / "sciq"
    folder.mkdir()
    path = folder / "train.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps({**GOOD, "id": "q0"}) + "\n" + bad_line
                    + "\n")
    with pytest.raises(ValueError, match=problem) as info:
        load_sciq("train", data_dir=tmp_path)
    msg = str(info.value)
    assert str(path) in msg
    assert "line 3" in msg


def test_non_utf8_data_file_names_file_and_line(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n" + b'{"id": "q\xe9"}\n')
    with pytest.raises(ValueError, match=r"line 2: byte 0xe9 at column 10 is not UTF-8") as info:
        load_sciq("train", data_dir=tmp_path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_data_file_is_named(tmp_path, content):
    path = tmp_path / "test.jsonl"
    path.write_text(content)
    with pytest.raises(ValueError, match="is empty") as info:
        load_quartz("test", data_dir=tmp_path)
    assert str(path) in str(info.value)


def test_small_valid_file_and_blank_lines(tmp_path):
    path = tmp_path / "validation.jsonl"
    path.write_text(json.dumps(GOOD) + "\n\n")
    df = load_quartz("validation", data_dir=tmp_path)
    assert df.to_dict("records") == [GOOD]


# ----------------------------------------------------------------------------
# The Hugging Face Hub route: the real datasets.load_dataset on local folders named like the
# Hub datasets (no network)
# ----------------------------------------------------------------------------
def _sciq_hub_rows(data_dir, split):
    name = {"train": "train", "validation": "valid", "test": "test"}[split]
    with zipfile.ZipFile(data_dir / "sciq" / "raw" / "SciQ.zip") as z:
        return json.loads(z.read(f"SciQ dataset-2 3/{name}.json"))


def _to_hub_labelled(raw_row, keep=()):
    """Raw AI2 JSONL row -> the flattened HF hub row (question str, choices {text, label})."""
    choices = raw_row["question"]["choices"]
    row = {
        "id": raw_row["id"],
        "question": raw_row["question"]["stem"],
        "choices": {"text": [c["text"] for c in choices], "label": [c["label"] for c in choices]},
        "answerKey": raw_row["answerKey"],
    }
    row.update({k: raw_row[k] for k in keep})
    return row


class _LocalHub(dict):
    """Hub rows written as local folders named like the Hub datasets (``allenai/sciq/``, ...),
    which the real :func:`datasets.load_dataset` reads before asking the Hub; a configuration
    is declared in the folder's README, as on the Hub."""

    def __init__(self, root):
        super().__init__()
        self.root = root

    def __setitem__(self, key, rows):
        super().__setitem__(key, rows)
        path, name, split = key
        folder = self.root / path
        target = folder / (name or "") / f"{split}.jsonl"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("".join(json.dumps(r) + "\n" for r in rows))
        if name is not None:
            configs = sorted({(n, s) for (p, n, s) in self if p == path})
            lines = ["---", "configs:"]
            for config in sorted({n for n, _ in configs}):
                lines += [f"- config_name: {config}", "  data_files:"]
                lines += [f"  - split: {s}\n    path: {config}/{s}.jsonl" for n, s in configs
                          if n == config]
            (folder / "README.md").write_text("\n".join(lines + ["---", ""]))


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    pytest.importorskip("datasets")
    monkeypatch.delenv("SKW2S_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    return _LocalHub(tmp_path)


def test_hub_sciq_matches_offline_files(data_dir, fake_hub):
    tables = fake_hub
    tables[("allenai/sciq", None, "validation")] = _sciq_hub_rows(data_dir, "validation")
    hub = load_sciq("validation")
    offline = load_sciq("validation", data_dir=data_dir)
    pd.testing.assert_frame_equal(hub, offline)


def test_hub_sciq_shuffle_is_deterministic(fake_hub):
    tables = fake_hub
    rows = [
        {"question": f"q{i}", "distractor1": "d1", "distractor2": "d2", "distractor3": "d3",
         "correct_answer": "right", "support": ""}
        for i in range(40)
    ]
    tables[("allenai/sciq", None, "test")] = rows
    a, b = load_sciq("test"), load_sciq("test")
    pd.testing.assert_frame_equal(a, b)
    assert all(c[k] == "right" for c, k in zip(a["choices"], a["answer"]))
    assert all(sorted(c) == ["d1", "d2", "d3", "right"] for c in a["choices"])
    assert a["answer"].nunique() > 1
    assert list(a["id"][:2]) == ["sciq-test-00000", "sciq-test-00001"]


def test_hub_quartz_matches_offline_files(data_dir, fake_hub):
    tables = fake_hub
    # test split: raw/dev.jsonl has a one-item upstream typo fixed offline (see quartz/SOURCE.md)
    raw = [json.loads(line) for line in open(data_dir / "quartz" / "raw" / "test.jsonl")]
    tables[("allenai/quartz", None, "test")] = [_to_hub_labelled(r, keep=("para",)) for r in raw]
    hub = load_quartz("test")
    pd.testing.assert_frame_equal(hub, load_quartz("test", data_dir=data_dir))


def test_hub_arc_matches_offline_files(data_dir, fake_hub):
    tables = fake_hub
    raw = [json.loads(line) for line in open(data_dir / "arc_easy" / "raw" / "ARC-Easy-Dev.jsonl")]
    tables[("allenai/ai2_arc", "ARC-Easy", "validation")] = [_to_hub_labelled(r) for r in raw]
    hub = load_arc("easy", "validation")
    pd.testing.assert_frame_equal(hub, load_arc("easy", "validation", data_dir=data_dir))


def test_hub_arc_digit_and_letter_keys(fake_hub):
    tables = fake_hub
    tables[("allenai/ai2_arc", "ARC-Challenge", "train")] = [
        {"id": "a", "question": "Q1",
         "choices": {"text": ["w", "x", "y"], "label": ["1", "2", "3"]},
         "answerKey": "3"},
        {"id": "b", "question": "Q2", "choices": {"text": ["w", "x", "y", "z", "v"],
                                                  "label": ["A", "B", "C", "D", "E"]},
         "answerKey": "B"},
    ]
    df = load_dataset("arc_challenge", split="train")
    assert df["answer"].tolist() == [2, 1]
    assert df["choices"].tolist() == [["w", "x", "y"], ["w", "x", "y", "z", "v"]]
    assert df["support"].tolist() == ["", ""]
    assert df["answer"].dtype == np.int64


def test_hub_bad_answer_key(fake_hub):
    tables = fake_hub
    tables[("allenai/ai2_arc", "ARC-Easy", "test")] = [
        {"id": "a", "question": "Q", "choices": {"text": ["w", "x"], "label": ["A", "B"]},
         "answerKey": "C"},
    ]
    with pytest.raises(ValueError, match="answerKey 'C'"):
        load_arc("easy", "test")


def test_download_data_writes_the_hub_copies_into_the_offline_layout(data_dir, fake_hub, capsys):
    from skw2s.cli import main

    for split in SPLITS:
        fake_hub[("allenai/sciq", None, split)] = _sciq_hub_rows(data_dir, split)[:30]
    raw = [json.loads(line) for line in open(data_dir / "arc_easy" / "raw" / "ARC-Easy-Dev.jsonl")]
    for split in SPLITS:
        fake_hub[("allenai/ai2_arc", "ARC-Easy", split)] = [_to_hub_labelled(r) for r in raw[:20]]
    assert main(["download-data", "offline", "--datasets", "sciq", "arc_easy"]) == 0
    assert capsys.readouterr().out == "Wrote offline/: arc_easy/, sciq/ (6 files)\n"
    for split in SPLITS:
        pd.testing.assert_frame_equal(load_sciq(split, data_dir="offline"), load_sciq(split))
        pd.testing.assert_frame_equal(load_arc("easy", split, data_dir="offline"),
                                      load_arc("easy", split))
    offline = load_sciq("validation", data_dir="offline")
    pd.testing.assert_frame_equal(offline, load_sciq("validation", data_dir=data_dir).head(30))


# ----------------------------------------------------------------------------
# Binarisation and task construction
# ----------------------------------------------------------------------------
def test_binarize_sciq(sciq_train):
    b = binarize_sciq(sciq_train, random_state=0)
    assert list(b.columns) == ["id", "question", "answer_text", "label", "text"]
    assert len(b) == len(sciq_train)
    assert b["label"].dtype == np.int64
    assert set(b["label"]) == {0, 1}
    assert abs(b["label"].mean() - 0.5) < 0.02
    assert (b["id"].to_numpy() == sciq_train["id"].to_numpy()).all()
    correct = [c[a] for c, a in zip(sciq_train["choices"], sciq_train["answer"])]
    for text, lab, right, choices in zip(b["answer_text"], b["label"], correct,
                                         sciq_train["choices"]):
        assert text in choices
        if lab == 1:
            assert text == right
        else:
            assert text != right
    assert b["text"].iloc[0] == f"Q: {b['question'].iloc[0]} A: {b['answer_text'].iloc[0]}"


def test_binarize_sciq_reproducible(data_dir):
    df = load_sciq("validation", data_dir=data_dir)
    pd.testing.assert_frame_equal(binarize_sciq(df, random_state=3),
                                  binarize_sciq(df, random_state=3))
    assert not binarize_sciq(df, random_state=3).equals(binarize_sciq(df, random_state=4))
    rng = np.random.RandomState(5)
    pd.testing.assert_frame_equal(binarize_sciq(df, random_state=rng),
                                  binarize_sciq(df, random_state=5))


def test_binarize_needs_distractor():
    df = pd.DataFrame([{"id": "x", "question": "q", "choices": ["only"], "answer": 0,
                        "support": ""}])
    with pytest.raises(ValueError, match="no distractor"):
        binarize_sciq(df, random_state=0)


def test_to_classification(data_dir):
    b = binarize_sciq(load_sciq("test", data_dir=data_dir), random_state=0)
    X, y = to_classification(b)
    assert isinstance(X, list) and len(X) == 1000 and all(s.startswith("Q: ") for s in X)
    assert y.dtype == np.int64 and y.shape == (1000,)


def test_to_multiple_choice(data_dir):
    df = load_quartz("validation", data_dir=data_dir)
    X, y = to_multiple_choice(df)
    assert list(X.columns) == ["prompt", "choices"]
    assert X.shape == (384, 2) and y.shape == (384,) and y.dtype == np.int64
    assert X["prompt"].iloc[0] == f"Question: {df['question'].iloc[0]}\nAnswer:"
    assert X["choices"].iloc[0] == df["choices"].iloc[0]
    np.testing.assert_array_equal(y, df["answer"].to_numpy())
    Xs, _ = to_multiple_choice(df, use_support=True)
    assert Xs["prompt"].iloc[0].startswith(f"Context: {df['support'].iloc[0]}\nQuestion: ")
    # ARC has no support: the context line is left out
    Xa, ya = to_multiple_choice(load_arc("easy", "validation", data_dir=data_dir), use_support=True)
    assert Xa.shape == (570, 2) and ya.shape == (570,)
    assert all(p.startswith("Question: ") for p in Xa["prompt"])


def test_lettered_options_list_the_choices_and_answer_with_letters(data_dir):
    df = load_arc("easy", "validation", data_dir=data_dir)
    X, y = to_multiple_choice(df, options="lettered")
    cloze, y_cloze = to_multiple_choice(df)
    np.testing.assert_array_equal(y, y_cloze)  # the same questions and answer positions
    for prompt, letters, choices, question in zip(X["prompt"], X["choices"], df["choices"],
                                                  df["question"]):
        assert letters == [chr(ord("A") + k) for k in range(len(choices))]
        lines = prompt.split("\n")
        assert lines[0] == f"Question: {question}" and lines[-1] == "Answer:"
        assert lines[1:-1] == [f"{k}. {c}" for k, c in zip(letters, choices)]
    # the support line still comes first
    quartz = load_quartz("validation", data_dir=data_dir).head(3)
    Xs, _ = to_multiple_choice(quartz, use_support=True, options="lettered")
    assert Xs["prompt"].iloc[0].startswith(f"Context: {quartz['support'].iloc[0]}\nQuestion: ")
    assert Xs["prompt"].iloc[0].endswith(f"B. {quartz['choices'].iloc[0][1]}\nAnswer:")
    with pytest.raises(ValueError, match="'options' parameter must be one of"):
        to_multiple_choice(quartz, options="letters")
    many = pd.DataFrame({"question": ["q"], "choices": [[str(k) for k in range(27)]],
                         "answer": [0]})
    with pytest.raises(ValueError, match="at most 26 choices"):
        to_multiple_choice(many, options="lettered")


def test_formatting():
    assert format_classification("Why?", "Because") == "Q: Why? A: Because"
    assert format_prompt("Why?") == "Question: Why?\nAnswer:"
    assert format_prompt("Why?", "Ctx") == "Question: Why?\nAnswer:"
    assert format_prompt("Why?", "Ctx", use_support=True) == "Context: Ctx\nQuestion: Why?\nAnswer:"
    assert format_prompt("Why?", "", use_support=True) == "Question: Why?\nAnswer:"
    assert format_completion("yes") == " yes"


def test_module_docstring_documents_schema():
    assert re.search(r"id\s.*question\s.*choices\s.*answer\s.*support", ds.__doc__, re.S)
