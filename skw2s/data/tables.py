"""Reading a user's own question table: JSONL, JSON, CSV/TSV, Parquet and Arrow files, Hugging
Face ``datasets`` objects, ``save_to_disk`` directories and Hub names, mapped column by column
onto the shared schema of :mod:`skw2s.datasets`. :func:`skw2s.datasets.load_table` is the public
entry point; the rules for the column mapping, the choices and the answer are in its docstring.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .files import read_jsonl, read_text

COLUMNS = ("id", "question", "choices", "answer", "support")
ROLES = {
    "multiple_choice": {"required": ("question", "choices", "answer"),
                        "optional": ("id", "support")},
    "binary": {"required": ("text", "label"), "optional": ("id",)},
}
FILE_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet", ".arrow")
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


# ----------------------------------------------------------------------------
# The shared schema
# ----------------------------------------------------------------------------
def check_record(record, where):
    """Validate one record of the shared schema; ``where`` names its location."""
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(record).__name__}.")
    missing = [c for c in COLUMNS if c not in record]
    if missing:
        raise ValueError(
            f"{where}: missing field(s) {missing}; required fields are {list(COLUMNS)}.")
    for field in ("id", "question", "support"):
        if not isinstance(record[field], str):
            raise ValueError(
                f"{where}: field {field!r} must be a string, got {type(record[field]).__name__}."
            )
    choices = record["choices"]
    if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
        raise ValueError(f"{where}: field 'choices' must be a list of strings, got {choices!r}.")
    if not choices:
        raise ValueError(f"{where}: field 'choices' is empty.")
    answer = record["answer"]
    if isinstance(answer, bool) or not isinstance(answer, int):
        raise ValueError(f"{where}: field 'answer' must be an int, got {type(answer).__name__}.")
    if not 0 <= answer < len(choices):
        raise ValueError(
            f"{where}: answer index {answer} is out of range for {len(choices)} choices."
        )


def frame(records):
    """The shared-schema DataFrame of validated records."""
    df = pd.DataFrame.from_records(
        [{c: r[c] for c in COLUMNS} for r in records], columns=list(COLUMNS)
    )
    df["answer"] = df["answer"].astype(np.int64)
    return df


def check_columns(columns, task):
    """The full role -> source-column mapping for ``task``: ``columns`` over the identity."""
    if task not in ROLES:
        raise ValueError(
            f"The 'task' parameter must be one of {sorted(ROLES)}. Got {task!r} instead.")
    roles = ROLES[task]["required"] + ROLES[task]["optional"]
    columns = {} if columns is None else columns
    if not isinstance(columns, dict):
        raise ValueError(
            f"'columns' must be a mapping of {list(roles)} to column names; got {columns!r}.")
    unknown = [k for k in columns if k not in roles]
    if unknown:
        raise ValueError(
            f"Unknown role(s) {unknown} in 'columns' for task {task!r}. "
            f"Allowed: {', '.join(roles)}."
        )
    for role, source in columns.items():
        ok = isinstance(source, str) or (
            role == "choices" and isinstance(source, (list, tuple)) and len(source) >= 2
            and all(isinstance(c, str) for c in source)
        )
        if not ok:
            kind = "a column name (or, for 'choices', a list of two or more column names)"
            raise ValueError(f"columns[{role!r}] must be {kind}; got {source!r}.")
    return {role: columns.get(role, role) for role in roles}


# ----------------------------------------------------------------------------
# Reading rows: each reader gives [(where, row dict)], where names the file and line or row
# ----------------------------------------------------------------------------
def _jsonl_rows(path):
    return read_jsonl(path, what="data file")


def _json_rows(path):
    text = read_text(path, what="data file")
    if not text.lstrip().startswith("["):
        return _jsonl_rows(path)  # JSON Lines under a .json name
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}, line {exc.lineno}: invalid JSON ({exc.msg}).") from exc
    rows = []
    for i, row in enumerate(data):
        if not isinstance(row, dict):
            raise ValueError(f"{path}, item {i}: expected a JSON object, got {type(row).__name__}.")
        rows.append((f"{path}, item {i}", row))
    return rows


def _csv_rows(path, delimiter):
    reader = csv.DictReader(io.StringIO(read_text(path, what="data file"), newline=""),
                            delimiter=delimiter)
    if not reader.fieldnames:
        raise ValueError(f"The data file {str(path)!r} has no header row.")
    rows, start = [], reader.line_num + 1
    for row in reader:
        if None in row:  # more cells than the header has names
            raise ValueError(
                f"{path}, line {start}: {len(row[None]) + len(reader.fieldnames)} cells for "
                f"{len(reader.fieldnames)} header columns."
            )
        if any(v not in (None, "") for v in row.values()):
            rows.append((f"{path}, line {start}", row))
        start = reader.line_num + 1
    return rows


def _dataset_rows(dataset, where):
    return [(f"{where}, row {i}", row) for i, row in enumerate(dataset)]


def _pick_split(splits, split, where):
    names = list(splits)
    if split is None:
        if len(names) == 1:
            split = names[0]
        elif "train" in names:
            split = "train"
        else:
            raise ValueError(f"{where} has the splits {names}; choose one with split=.")
    if split not in names:
        raise ValueError(f"{where} has no split {split!r}; its splits are {names}.")
    return split


def _hf_rows(obj, split, where):
    import datasets

    if isinstance(obj, (datasets.DatasetDict, dict)):
        split = _pick_split(obj, split, where)
        return _dataset_rows(obj[split], f"{where}[{split}]"), list(obj[split].column_names)
    if split is not None and getattr(obj, "split", None) not in (None, split):
        raise ValueError(f"{where} holds the split {str(obj.split)!r}, not {split!r}.")
    return _dataset_rows(obj, where), list(obj.column_names)


def _directory_rows(path, split):
    import datasets

    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        return _hf_rows(datasets.load_from_disk(str(path)), split, str(path))
    for suffix in FILE_SUFFIXES:
        candidate = path / f"{split or 'train'}{suffix}"
        if candidate.is_file():
            return _file_rows(candidate, None)
    arrows = sorted(path.glob("*.arrow"))
    if arrows:
        if split is not None:
            arrows = [a for a in arrows if split in a.stem] or arrows
        parts = [datasets.Dataset.from_file(str(a)) for a in arrows]
        return _hf_rows(datasets.concatenate_datasets(parts), None, str(path))
    raise FileNotFoundError(
        f"{path} is a directory, but neither a datasets save_to_disk directory (dataset_dict.json "
        f"or state.json) nor one holding {split or 'train'}.jsonl / .csv / ... or *.arrow files."
    )


def _file_rows(path, split):
    suffix = path.suffix.lower()
    if suffix not in FILE_SUFFIXES:
        raise ValueError(
            f"{path}: unknown file type {suffix!r}; use one of {', '.join(FILE_SUFFIXES)}.")
    if split is not None:
        raise ValueError(
            f"{path} is a single file, which holds one split: drop split={split!r}, or keep the "
            "splits in a directory (train.jsonl, test.jsonl, ...) or a datasets directory."
        )
    if suffix in (".parquet", ".arrow"):
        import datasets

        loader = (datasets.Dataset.from_parquet if suffix == ".parquet"
                  else datasets.Dataset.from_file)
        dataset = loader(str(path))
        return _dataset_rows(dataset, str(path)), list(dataset.column_names)
    if suffix in (".csv", ".tsv"):
        rows = _csv_rows(path, "\t" if suffix == ".tsv" else ",")
    elif suffix == ".json":
        rows = _json_rows(path)
    else:
        rows = _jsonl_rows(path)
    return rows, (list(rows[0][1]) if rows else [])


def _looks_like_path(source):
    text = str(source)
    return (
        text.startswith((".", "/", "~")) or Path(text).suffix.lower() in FILE_SUFFIXES
        or text.count("/") > 1 or "\\" in text
    )


def read_rows(source, *, split=None, name=None):
    """``(rows, columns, label)``: ``rows`` as ``[(where, dict)]``, the column names present and
    a label for ids, read from any source :func:`skw2s.datasets.load_table` accepts."""
    if isinstance(source, pd.DataFrame):
        records = source.to_dict("records")
        return [(f"row {i}", r) for i, r in enumerate(records)], list(source.columns), "row"
    if type(source).__module__.startswith("datasets"):
        rows, columns = _hf_rows(source, split, "the dataset")
        return rows, columns, "row"
    if not isinstance(source, (str, Path)):
        raise TypeError(
            "source must be a path, a Hugging Face dataset name, a pandas DataFrame or a "
            f"datasets.Dataset; got {type(source).__name__}."
        )
    path = Path(source).expanduser()
    if path.is_dir():
        rows, columns = _directory_rows(path, split)
        return rows, columns, path.name
    if path.is_file():
        rows, columns = _file_rows(path, split)
        return rows, columns, path.stem
    if _looks_like_path(source):
        raise FileNotFoundError(f"The data file {str(path)!r} does not exist.")
    import datasets

    where = f"the Hugging Face dataset {str(source)!r}" + (f" ({name})" if name else "")
    try:
        loaded = datasets.load_dataset(str(source), name, split=split)
    except Exception as exc:  # noqa: BLE001 - any failure: say what was tried, keep the cause
        raise ValueError(
            f"Could not load {str(source)!r}: it is not a local file or directory, and loading it "
            f"from the Hugging Face hub failed ({type(exc).__name__}: {exc})."
        ) from exc
    rows, columns = _hf_rows(loaded, split, where)
    return rows, columns, str(source).rsplit("/", 1)[-1]


# ----------------------------------------------------------------------------
# Cells
# ----------------------------------------------------------------------------
def _missing(value):
    return value is None or (isinstance(value, float) and np.isnan(value))


def _cell(row, column, role, where, columns):
    if column not in row:
        raise ValueError(
            f"{where}: no column {column!r} (for {role!r}); the columns present are "
            f"{list(row) or columns}. Map another column with columns={{{role!r}: NAME}}."
        )
    return row[column]


MAX_FIELD_CHARS = 1_000_000
"""The most characters one text field of a table row may hold (``SKW2S_MAX_FIELD_CHARS``
overrides it): a longer one is refused before anything is tokenised, since a tokenizer given
hundreds of MB at once can take many GB of memory."""


def max_field_chars() -> int:
    """:data:`MAX_FIELD_CHARS`, or ``SKW2S_MAX_FIELD_CHARS`` when that is set."""
    value = os.environ.get("SKW2S_MAX_FIELD_CHARS")
    if not value:
        return MAX_FIELD_CHARS
    try:
        return int(value)
    except ValueError:
        raise ValueError(
            f"SKW2S_MAX_FIELD_CHARS={value!r} is not a number of characters.") from None


def _check_length(value, role, where):
    limit = max_field_chars()
    if len(value) > limit:
        raise ValueError(
            f"{where}: {role!r} has {len(value):,} characters, more than the bound of {limit:,} "
            "per field (SKW2S_MAX_FIELD_CHARS sets it). Shorten the row, or raise the bound if "
            "the text is meant to be that long."
        )
    return value


def _text(value, role, where):
    if not isinstance(value, str):
        raise ValueError(f"{where}: {role!r} must be a string; got {value!r}.")
    return _check_length(value, role, where)


def _choices(value, sep, where):
    """``(texts, labels or None)`` from a list, a {text, label} mapping, a JSON string or a
    ``sep``-separated string."""
    labels = None
    if isinstance(value, dict) and "text" in value:
        labels = [str(label).strip() for label in value.get("label") or []] or None
        value = value["text"]
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("["):
            try:
                value = json.loads(stripped)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where}: 'choices' starts with '[' but is not a JSON list "
                                 f"({exc.msg}).") from exc
        else:
            value = [part.strip() for part in value.split(sep)]
    if isinstance(value, (tuple, np.ndarray)):
        value = list(value)
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise ValueError(f"{where}: 'choices' must be a list of strings; got {value!r}.")
    if len(value) < 2:
        raise ValueError(
            f"{where}: 'choices' has {len(value)} option(s), at least 2 are needed. Give a "
            f'JSON list (["a", "b"]) or separate the options with {sep!r} (choices_sep).'
        )
    for option in value:
        _check_length(option, "choices", where)
    stripped = [option.strip() for option in value]
    repeated = sorted({option for option in stripped if stripped.count(option) > 1})
    if repeated:
        raise ValueError(
            f"{where}: 'choices' lists {', '.join(map(repr, repeated))} more than once: a question "
            "whose options repeat has no single right answer. Remove the repeats."
        )
    return value, labels


ANSWER_FORMATS = ("index", "letter", "text")


def _answer_as(fmt, value, choices, labels, where):
    """The index of the correct choice when the mapping says how the answer is written."""
    key = str(value).strip() if isinstance(value, str) else value
    if fmt == "text":
        if not isinstance(key, str) or key not in choices:
            raise ValueError(
                f"{where}: answer {value!r} is not the text of one of the choices {choices} "
                "(answer_format: text)."
            )
        return choices.index(key)
    if fmt == "letter":
        if isinstance(key, str) and labels is not None and key in labels:
            return labels.index(key)
        if not isinstance(key, str) or len(key) != 1 or key not in _LETTERS:
            raise ValueError(
                f"{where}: answer {value!r} is not a capital letter A-Z (answer_format: letter)."
            )
        index = _LETTERS.index(key)
    else:  # index
        if isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_)):
            index = int(key)
        elif isinstance(key, float) and key.is_integer():
            index = int(key)
        elif isinstance(key, str) and key.lstrip("-").isdigit():
            index = int(key)
        else:
            raise ValueError(
                f"{where}: answer {value!r} is not a 0-based index (answer_format: index)."
            )
    if not 0 <= index < len(choices):
        raise ValueError(f"{where}: answer {value!r} is out of range for {len(choices)} choices.")
    return index


def _answer(value, choices, labels, where, fmt=None):
    """Index of the correct choice from an int index, a label, the choice's text or a letter;
    ``fmt`` (``answer_format``) fixes which of the three the answers are."""
    if fmt is not None:
        return _answer_as(fmt, value, choices, labels, where)
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(
            f"{where}: 'answer' must be an index, a choice's text or a letter; got {value!r}.")
    if isinstance(value, (int, np.integer)):
        index = int(value)
    elif isinstance(value, float) and value.is_integer():  # a CSV or Parquet int read as float
        index = int(value)
    elif isinstance(value, str):
        key = value.strip()
        if labels is not None and key in labels:
            return labels.index(key)
        as_int = int(key) if key.lstrip("-").isdigit() else None
        as_letter = _LETTERS.index(key) if len(key) == 1 and key in _LETTERS else None
        if key in choices:
            other, kind = (as_int, "index") if as_int is not None else (as_letter, "letter")
            if other is not None and other != choices.index(key) and 0 <= other < len(choices):
                raise ValueError(
                    f"{where}: answer {value!r} is both the text of choice "
                    f"{choices.index(key)} and the {kind} of choice {other}. Say which the "
                    "answers are with answer_format: index, letter or text "
                    "(load_table(answer_format=...), or dataset.answer_format in a config)."
                )
            return choices.index(key)
        if as_int is not None:
            index = as_int
        elif as_letter is not None:
            index = as_letter
        else:
            raise ValueError(
                f"{where}: answer {value!r} is not an index, a letter or one of the choices "
                f"{choices}."
            )
    else:
        raise ValueError(
            f"{where}: 'answer' must be an index, a choice's text or a letter; got {value!r}.")
    if not 0 <= index < len(choices):
        raise ValueError(f"{where}: answer {value!r} is out of range for {len(choices)} choices.")
    return index


def _label(value, where):
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise ValueError(f"{where}: 'label' must be an int (0 or 1 for a binary task); got {value!r}.")


# ----------------------------------------------------------------------------
# Mapping rows onto the schema
# ----------------------------------------------------------------------------
def to_frame(rows, columns_present, mapping, *, task, choices_sep, id_prefix, source, given=(),
             answer_format=None):
    """The shared-schema frame (multiple choice) or ``id, text, label`` frame (binary).

    ``given`` names the roles the user mapped: an optional role (``id``, ``support``) that was
    mapped must be present; one left at its default is used when its column exists.
    """
    if not rows:
        raise ValueError(f"{source} holds no rows.")
    first_where, first = rows[0]
    needed = [r for r in ROLES[task]["required"] + ROLES[task]["optional"]
              if r in ROLES[task]["required"] or r in given]
    missing = [
        f"{c!r} (for {r!r})" for r in needed
        for c in (mapping[r] if isinstance(mapping[r], (list, tuple)) else [mapping[r]])
        if c not in first
    ]
    if missing:
        raise ValueError(
            f"{first_where}: no column {', '.join(missing)}; the columns present are "
            f"{list(first) or columns_present}. Map the roles to other columns with "
            "columns={role: NAME}."
        )
    has_id = "id" in given or mapping["id"] in first
    records, seen = [], {}
    for i, (where, row) in enumerate(rows):
        def get(role, row=row, where=where):
            return _cell(row, mapping[role], role, where, columns_present)

        row_id = str(get("id")) if has_id else f"{id_prefix}-{i:05d}"
        if row_id in seen:
            raise ValueError(f"{where}: id {row_id!r} already used at {seen[row_id]}.")
        seen[row_id] = where
        if task == "binary":
            records.append({"id": row_id, "text": _text(get("text"), "text", where),
                            "label": _label(get("label"), where)})
            continue
        source_choices = mapping["choices"]
        if isinstance(source_choices, (list, tuple)):  # one column per option
            cells = [_cell(row, c, "choices", where, columns_present) for c in source_choices]
            raw = [c for c in cells if not _missing(c) and c != ""]
        else:
            raw = get("choices")
        choices, labels = _choices(raw, choices_sep, where)
        support = get("support") if "support" in given or mapping["support"] in row else ""
        record = {
            "id": row_id,
            "question": _text(get("question"), "question", where),
            "choices": choices,
            "answer": _answer(get("answer"), choices, labels, where, answer_format),
            "support": "" if _missing(support) else _text(support, "support", where),
        }
        check_record(record, where)
        records.append(record)
    if task == "binary":
        out = pd.DataFrame.from_records(records, columns=["id", "text", "label"])
        out["label"] = out["label"].astype(np.int64)
        return out
    return frame(records)
