"""skw2s.data.datasets.load_table: your own questions from files, datasets directories and Hub
names."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from skw2s.data.datasets import load_table, to_classification, to_multiple_choice

ROWS = [
    {"uid": "a", "q": "Which is red?", "opts": ["sky", "blood", "grass"], "gold": "blood",
     "ctx": "Colours."},
    {"uid": "b", "q": "Which is green?", "opts": ["grass", "snow"], "gold": 0, "ctx": ""},
]
MAPPING = {"id": "uid", "question": "q", "choices": "opts", "answer": "gold", "support": "ctx"}
EXPECTED = pd.DataFrame({
    "id": ["a", "b"],
    "question": ["Which is red?", "Which is green?"],
    "choices": [["sky", "blood", "grass"], ["grass", "snow"]],
    "answer": np.array([1, 0], dtype=np.int64),
    "support": ["Colours.", ""],
})


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_jsonl_with_a_column_mapping(tmp_path):
    df = load_table(_jsonl(tmp_path / "quiz.jsonl", ROWS), columns=MAPPING)
    pd.testing.assert_frame_equal(df, EXPECTED)
    X, y = to_multiple_choice(df, use_support=True)
    assert X.prompt[0].startswith("Context: Colours.\nQuestion: Which is red?")
    assert y.tolist() == [1, 0]


def test_json_list_and_parquet_match_jsonl(tmp_path):
    (tmp_path / "quiz.json").write_text(json.dumps(ROWS))
    pd.testing.assert_frame_equal(load_table(tmp_path / "quiz.json", columns=MAPPING), EXPECTED)
    frame = pd.DataFrame(ROWS)
    frame["gold"] = frame["gold"].astype(str)  # Parquet needs one type per column
    frame.to_parquet(tmp_path / "quiz.parquet")
    pd.testing.assert_frame_equal(load_table(tmp_path / "quiz.parquet", columns=MAPPING), EXPECTED)


def test_csv_choices_as_json_text_separated_text_and_one_column_each(tmp_path):
    path = tmp_path / "quiz.csv"
    path.write_text(
        "question,choices,answer\n"
        '"Which is red?","[""sky"", ""blood, bright"", ""grass""]",1\n'
        "Which is green?, grass | snow ,grass\n"
    )
    df = load_table(path)
    assert df.choices.tolist() == [["sky", "blood, bright", "grass"], ["grass", "snow"]]
    assert df.answer.tolist() == [1, 0]
    assert df.id.tolist() == ["quiz-00000", "quiz-00001"]  # no id column: file stem and row
    assert df.support.tolist() == ["", ""]
    wide = tmp_path / "wide.csv"
    wide.write_text("prompt,A,B,C,key\nWhich is red?,sky,blood,grass,B\n"
                    "Which is green?,grass,snow,,A\n")
    df = load_table(wide, columns={"question": "prompt", "choices": ["A", "B", "C"],
                                   "answer": "key"})
    assert df.choices.tolist() == [["sky", "blood", "grass"],
                                   ["grass", "snow"]]  # empty cell dropped
    assert df.answer.tolist() == [1, 0]
    semicolons = tmp_path / "semi.csv"
    semicolons.write_text("question,choices,answer\nWhich is red?,sky; blood,blood\n")
    assert load_table(semicolons, choices_sep=";").choices.tolist() == [["sky", "blood"]]


def test_missing_column_names_it_and_lists_the_columns_present(tmp_path):
    path = _jsonl(tmp_path / "quiz.jsonl", ROWS)
    with pytest.raises(ValueError) as info:
        load_table(path, columns={**MAPPING, "question": "stem"})
    msg = str(info.value)
    assert f"{path}, line 1" in msg and "no column 'stem' (for 'question')" in msg
    assert "['uid', 'q', 'opts', 'gold', 'ctx']" in msg
    with pytest.raises(ValueError, match=r"no column 'question'"):
        load_table(path)  # the default mapping looks for a column named after each role
    with pytest.raises(ValueError, match=r"no column 'notes' \(for 'support'\)"):
        load_table(path, columns={**MAPPING, "support": "notes"})  # an optional role, but mapped


def test_unknown_role_and_bad_mapping(tmp_path):
    path = _jsonl(tmp_path / "quiz.jsonl", ROWS)
    with pytest.raises(ValueError, match=r"Unknown role\(s\) \['label'\] in 'columns' "
                                         r"for task 'multiple_choice'"):
        load_table(path, columns={"label": "gold"})
    with pytest.raises(ValueError, match=r"columns\['question'\] must be a column name"):
        load_table(path, columns={"question": ["q"]})


def test_non_utf8_and_empty_files_are_named(tmp_path):
    path = tmp_path / "quiz.csv"
    path.write_bytes(b"question,choices,answer\nWhy?,a|b,0\nCaf\xe9?,a|b,1\n")
    with pytest.raises(ValueError, match=r"quiz.csv, line 3: byte 0xe9 at column 4 is not UTF-8"):
        load_table(path)
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ValueError, match=r"empty.jsonl' is empty"):
        load_table(tmp_path / "empty.jsonl")
    (tmp_path / "header.csv").write_text("question,choices,answer\n")
    with pytest.raises(ValueError, match=r"header.csv holds no rows"):
        load_table(tmp_path / "header.csv")


@pytest.mark.parametrize(
    "answer, choices, problem",
    [
        ("2", "1|2|3", "both the text of choice 1 and the index of choice 2"),
        ("purple", "red|blue", "not an index, a letter or one of the choices"),
        ("5", "red|blue", "out of range"),
        ("", "red|blue", "not an index"),
    ],
)
def test_bad_answers_name_the_line(tmp_path, answer, choices, problem):
    path = tmp_path / "quiz.csv"
    path.write_text(f"question,choices,answer\nOk?,a|b,0\nWhich?,{choices},{answer}\n")
    with pytest.raises(ValueError, match=problem) as info:
        load_table(path)
    assert f"{path}, line 3" in str(info.value)


def test_one_option_cell_says_how_to_separate(tmp_path):
    path = tmp_path / "quiz.csv"
    path.write_text("question,choices,answer\nWhich?,red/blue,0\n")
    with pytest.raises(ValueError, match=r"1 option\(s\).*JSON list.*'\|' \(choices_sep\)"):
        load_table(path)


def test_binary_text_and_label(tmp_path):
    path = tmp_path / "claims.csv"
    path.write_text("sentence,gold\nThe sky is blue.,1\nSnow is black.,0\n")
    df = load_table(path, task="binary", columns={"text": "sentence", "label": "gold"})
    assert list(df.columns) == ["id", "text", "label"] and df.label.dtype == np.int64
    X, y = to_classification(df)
    assert X == ["The sky is blue.", "Snow is black."] and y.tolist() == [1, 0]
    bad = _jsonl(tmp_path / "bad.jsonl", [{"text": "x", "label": "yes"}])
    with pytest.raises(ValueError, match=r"bad.jsonl, line 1: 'label' must be an int"):
        load_table(bad, task="binary")


def test_duplicate_ids_and_split_of_one_file(tmp_path):
    path = _jsonl(tmp_path / "quiz.jsonl", [ROWS[0], ROWS[0]])
    with pytest.raises(ValueError, match=r"line 2: id 'a' already used at .*line 1"):
        load_table(path, columns=MAPPING)
    with pytest.raises(ValueError, match="single file, which holds one split"):
        load_table(path, columns=MAPPING, split="test")
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        load_table(tmp_path / "missing.jsonl")


def test_datasets_save_to_disk_directories(tmp_path):
    datasets = pytest.importorskip("datasets")
    arc_like = [
        {"id": "x", "question": "Q1",
         "choices": {"text": ["w", "v", "u"], "label": ["1", "2", "3"]}, "answerKey": "3"},
        {"id": "y", "question": "Q2", "choices": {"text": ["w", "v"], "label": ["A", "B"]},
         "answerKey": "B"},
    ]
    columns = {"answer": "answerKey"}
    datasets.Dataset.from_list(arc_like).save_to_disk(str(tmp_path / "one"))
    df = load_table(tmp_path / "one", columns=columns)
    assert df.answer.tolist() == [2, 1] and df.choices.tolist() == [["w", "v", "u"], ["w", "v"]]
    assert df.id.tolist() == ["x", "y"]
    both = datasets.DatasetDict({"train": datasets.Dataset.from_list(arc_like),
                                 "test": datasets.Dataset.from_list(arc_like[:1])})
    both.save_to_disk(str(tmp_path / "both"))
    assert len(load_table(tmp_path / "both", columns=columns)) == 2  # "train" by default
    assert len(load_table(tmp_path / "both", columns=columns, split="test")) == 1
    with pytest.raises(ValueError,
                       match=r"no split 'validation'; its splits are \['train', 'test'\]"):
        load_table(tmp_path / "both", columns=columns, split="validation")
    # an in-memory Dataset and a DataFrame go the same way
    pd.testing.assert_frame_equal(
        load_table(datasets.Dataset.from_list(arc_like), columns=columns), df)
    pd.testing.assert_frame_equal(load_table(pd.DataFrame(arc_like), columns=columns), df)


def test_directory_of_split_files(tmp_path):
    _jsonl(tmp_path / "train.jsonl", ROWS)
    _jsonl(tmp_path / "test.jsonl", ROWS[:1])
    assert len(load_table(tmp_path, columns=MAPPING)) == 2
    assert len(load_table(tmp_path, columns=MAPPING, split="test")) == 1
    with pytest.raises(FileNotFoundError, match="validation.jsonl"):
        load_table(tmp_path, columns=MAPPING, split="validation")


def test_hub_name_goes_to_datasets_load_dataset(monkeypatch):
    datasets = pytest.importorskip("datasets")
    calls = []

    def fake_load_dataset(path, name=None, *, split=None, **kwargs):
        calls.append((path, name, split))
        if path == "nobody/nothing":
            raise FileNotFoundError("Dataset 'nobody/nothing' doesn't exist on the Hub")
        return datasets.Dataset.from_list([{"question": "Q", "choices": ["a", "b"], "answer": 1}])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    df = load_table("someone/quiz", name="main", split="validation")
    assert calls == [("someone/quiz", "main", "validation")]
    assert df.id.tolist() == ["quiz-00000"] and df.answer.tolist() == [1]
    with pytest.raises(ValueError,
                       match=r"not a local file or directory.*doesn't exist on the Hub"):
        load_table("nobody/nothing")


def test_a_letter_key_that_is_also_an_option_text_is_refused_or_read_as_the_mapping_says(tmp_path):
    # ARC-Challenge Mercury_402547: the key C is the third option, and the first option's text is
    # "C"; matching the text first would make the gold label option 0.
    rows = [{"id": "Mercury_402547", "question": "Which gas forms acid rain?",
             "choices": ["C", "NO_{2}", "O_{2}", "CO"], "answer": "C"}]
    path = _jsonl(tmp_path / "arc.jsonl", rows)
    with pytest.raises(ValueError, match=r"arc.jsonl, line 1: answer 'C' is both the text of "
                                         r"choice 0 and the letter of choice 2.*answer_format"):
        load_table(path)
    assert load_table(path, answer_format="letter")["answer"].tolist() == [2]
    assert load_table(path, answer_format="text")["answer"].tolist() == [0]
    with pytest.raises(ValueError, match=r"answer 'C' is not a 0-based index"):
        load_table(path, answer_format="index")
    with pytest.raises(ValueError, match=r"The 'answer_format' parameter must be one of"):
        load_table(path, answer_format="label")


def test_answer_format_settles_the_numeric_form_too(tmp_path):
    path = tmp_path / "quiz.csv"
    path.write_text("question,choices,answer\nWhich?,1|2|3,2\n")
    assert load_table(path, answer_format="index")["answer"].tolist() == [2]
    assert load_table(path, answer_format="text")["answer"].tolist() == [1]
