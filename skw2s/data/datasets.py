"""Question-answering datasets, binarisation and prompt formatting.

Every loader returns a :class:`pandas.DataFrame` in one shared schema, one row
per question:

========  =========  =====================================================
column    type       meaning
========  =========  =====================================================
id        str        question id (unique within a dataset)
question  str        the question text
choices   list[str]  the answer options, in a fixed order
answer    int        index of the correct option in ``choices``
support   str        a context paragraph, ``""`` when the dataset has none
========  =========  =====================================================

On disk the same schema is stored as JSON Lines, one object per line, in
``<data_dir>/<dataset>/{train,validation,test}.jsonl`` where ``<dataset>`` is
``sciq``, ``quartz``, ``arc_easy`` or ``arc_challenge``. The data directory is
taken from the ``data_dir`` argument, else from the ``SKW2S_DATA_DIR``
environment variable (:func:`resolve_data_dir`). ``data_dir`` may also point
directly at one dataset's folder. When neither is given, the data are
read from the Hugging Face Hub with :func:`datasets.load_dataset` (``allenai/sciq``,
``allenai/quartz``, ``allenai/ai2_arc``) and normalised to the same schema; offline
(``HF_HUB_OFFLINE=1``, or no connection) with no copy in the Hugging Face cache, the loaders fail
at once with one line naming the offline routes. :func:`download_datasets` (the command
``skw2s download-data FOLDER``) writes the Hub copies into such a folder.

Your own questions load with :func:`load_table`: a JSONL, JSON, CSV, Parquet or
Arrow file, a ``datasets`` ``save_to_disk`` directory or a Hub dataset name,
mapped column by column onto the same schema.

Prompt formatting lives in this module only: :func:`format_classification`
for the binary SciQ task of Burns et al. (``"Q: {question} A: {answer}"``), and
:func:`format_prompt` / :func:`format_completion` for multiple-choice and
generation tasks. :func:`to_multiple_choice` and :func:`to_classification`
turn a loaded frame into the inputs the estimators take.
"""

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.random import check_random_state
from . import tables as _tables
from .files import read_jsonl
from .hub import hub_frame as _hub_frame
from .hub import hub_load as _hub_load
from .hub import normalise_labelled as _normalise_labelled
from .hub import normalise_sciq as _normalise_sciq
from .tables import COLUMNS  # noqa: F401 - the schema's column names, as skw2s.datasets.COLUMNS
from .tables import check_record as _check_record
from .tables import frame as _frame

__all__ = [
    "DATASETS",
    "SPLITS",
    "binarize_sciq",
    "download_datasets",
    "format_classification",
    "format_completion",
    "format_prompt",
    "load_arc",
    "load_arc_metadata",
    "load_dataset",
    "load_quartz",
    "load_sciq",
    "load_table",
    "resolve_data_dir",
    "to_classification",
    "to_multiple_choice",
]

SPLITS = ("train", "validation", "test")
ENV_VAR = "SKW2S_DATA_DIR"
_ARC_SUBSETS = {"easy": "ARC-Easy", "challenge": "ARC-Challenge"}
logger = logging.getLogger(__name__)
_HOW_TO = (
    f"Pass data_dir= (on the command line --data-dir PATH), the folder holding sciq/, quartz/, "
    f"arc_easy/, ..., or set the {ENV_VAR} environment variable."
)


# ----------------------------------------------------------------------------
# Validation helpers
# ----------------------------------------------------------------------------
def _check_option(name, value, allowed):
    if value not in allowed:
        allowed_str = ", ".join(repr(a) for a in allowed)
        raise ValueError(
            f"The {name!r} parameter must be one of {{{allowed_str}}}. Got {value!r} instead."
        )


def _read_jsonl(path):
    """Read a JSONL file in the shared schema, validating every line."""
    records = []
    for where, record in read_jsonl(path, what="data file"):
        _check_record(record, where)
        records.append(record)
    return _frame(records)


# ----------------------------------------------------------------------------
# Locating files
# ----------------------------------------------------------------------------
def resolve_data_dir(data_dir=None, *, required=True):
    """Locate the folder of the offline question-answering data.

    The one place that reads the ``SKW2S_DATA_DIR`` environment variable: the loaders of this
    module, :mod:`skw2s.experiment`, the ``skw2s`` command and the benchmarks all go through it.

    Parameters
    ----------
    data_dir : str, path-like or None, default=None
        The folder holding ``sciq/``, ``quartz/``, ``arc_easy/``, ... (or one dataset's folder
        itself). When None, the ``SKW2S_DATA_DIR`` environment variable is used.
    required : bool, default=True
        What to do when neither is set: raise (True) or return None (False; the loaders then
        fall back to the Hugging Face hub).

    Returns
    -------
    path : pathlib.Path or None
        The existing directory; None only when ``required=False`` and nothing is set.

    Raises
    ------
    FileNotFoundError
        When the folder given (by ``data_dir`` or the environment) does not exist, or when
        ``required=True`` and neither is set.
    """
    if data_dir is None or str(data_dir) == "":
        data_dir = os.environ.get(ENV_VAR) or None
        source = f"the {ENV_VAR} environment variable"
    else:
        source = "data_dir"
    if data_dir is None:
        if required:
            raise FileNotFoundError(f"No data directory given. {_HOW_TO}")
        return None
    path = Path(data_dir).expanduser()
    if path.exists() and not path.is_dir():
        raise FileNotFoundError(
            f"Data directory {str(path)!r} (from {source}) is a file, not a directory: give the "
            f"folder that holds the datasets. {_HOW_TO}"
        )
    if not path.is_dir():
        raise FileNotFoundError(
            f"Data directory {str(path)!r} (from {source}) does not exist. {_HOW_TO}")
    return path


def _find_file(root, folder, filename):
    """Find ``filename`` in ``root/folder`` or, failing that, in ``root`` itself."""
    candidates = [root / folder / filename, root / filename]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    tried = " or ".join(repr(str(c)) for c in candidates)
    raise FileNotFoundError(f"Could not find {filename!r}: looked for {tried}. {_HOW_TO}")


_HUB = {  # folder -> (Hub dataset, its configuration, the support field or None)
    "sciq": ("allenai/sciq", None, "support"),
    "quartz": ("allenai/quartz", None, "para"),
    "arc_easy": ("allenai/ai2_arc", "ARC-Easy", None),
    "arc_challenge": ("allenai/ai2_arc", "ARC-Challenge", None),
}


def _from_hub(folder, split):
    path, config, support = _HUB[folder]
    rows = _hub_load(path, config, split)
    where = path + (f"/{config}" if config else "") + f"[{split}]"
    if folder == "sciq":
        return _hub_frame(_normalise_sciq(rows, split), where)
    return _hub_frame(_normalise_labelled(rows, support), where)


def _load_local_or_hub(folder, split, data_dir):
    root = resolve_data_dir(data_dir, required=False)
    if root is None:
        return _from_hub(folder, split)
    return _read_jsonl(_find_file(root, folder, f"{split}.jsonl"))


def download_datasets(folder, names=None, *, splits=SPLITS):
    """Write the built-in datasets from the Hugging Face Hub into an offline data folder.

    Run it on a machine with network; afterwards ``data_dir=folder`` (on the command line
    ``--data-dir FOLDER``, or ``SKW2S_DATA_DIR=FOLDER``) reads them with no network. The command
    ``skw2s download-data FOLDER`` calls it.

    Parameters
    ----------
    folder : str or path-like
        Where to write ``{name}/{split}.jsonl`` (created if needed; files are replaced).
    names : list of str, default=None
        Which datasets (keys of :data:`DATASETS`); None writes them all.
    splits : tuple of str, default=("train", "validation", "test")
        Which splits of each.

    Returns
    -------
    written : list of pathlib.Path
        The files written, one per dataset and split, in the shared schema (the frames the
        loaders return from the Hub, so both routes read the same questions).

    Notes
    -----
    The Hub has no copy of ARC's per-question metadata (:func:`load_arc_metadata`); that file
    is not written.
    """
    import json

    names = list(DATASETS) if names is None else list(names)
    for name in names:
        _check_option("name", name, tuple(DATASETS))
    for split in splits:
        _check_option("split", split, SPLITS)
    root = Path(folder).expanduser()
    written = []
    for name in names:
        for split in splits:
            df = _from_hub(name, split)
            target = root / name / f"{split}.jsonl"
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".tmp")
            with open(tmp, "w", encoding="utf-8") as f:
                for record in df.to_dict("records"):
                    record["answer"] = int(record["answer"])
                    record["choices"] = list(record["choices"])
                    f.write(json.dumps(record, ensure_ascii=False) + "\n")
            os.replace(tmp, target)
            logger.info("Wrote %s (%d questions)", target, len(df))
            written.append(target)
    return written


# ----------------------------------------------------------------------------
# Loaders
# ----------------------------------------------------------------------------
def load_sciq(split="train", data_dir=None):
    """Load SciQ (Welbl et al., 2017) in the shared schema.

    Parameters
    ----------
    split : {"train", "validation", "test"}, default="train"
        Which split to load (11679 / 1000 / 1000 questions).
    data_dir : str or path-like, default=None
        Folder holding ``sciq/{split}.jsonl``, or the ``sciq`` folder itself.
        When None, the ``SKW2S_DATA_DIR`` environment variable is used; when
        that is unset too, ``allenai/sciq`` is loaded from the Hugging Face hub.

    Returns
    -------
    df : pandas.DataFrame
        Columns ``id, question, choices, answer, support``.

    Notes
    -----
    The hub copy stores the correct answer apart from three distractors and has
    no ids. Rows get ``id = "sciq-{split}-{index:05d}"`` and the correct answer
    is inserted at position ``k = int(sha256(id), 16) % 4`` among the
    distractors (kept in order). This per-row seeded placement is
    deterministic, spreads the answer evenly over the four positions and matches
    the offline JSONL files.
    """
    _check_option("split", split, SPLITS)

    return _load_local_or_hub("sciq", split, data_dir)


def load_quartz(split="train", data_dir=None):
    """Load QuaRTz (Tafjord et al., 2019) in the shared schema.

    Parameters
    ----------
    split : {"train", "validation", "test"}, default="train"
        Which split to load (2696 / 384 / 784 questions).
    data_dir : str or path-like, default=None
        Folder holding ``quartz/{split}.jsonl``, or the ``quartz`` folder
        itself. When None, ``SKW2S_DATA_DIR`` is used; when that is unset too,
        ``allenai/quartz`` is loaded from the Hugging Face hub.

    Returns
    -------
    df : pandas.DataFrame
        Columns ``id, question, choices, answer, support``. ``choices`` are the
        two options in label order (A, B); ``support`` is the background
        paragraph (``para``).
    """
    _check_option("split", split, SPLITS)

    return _load_local_or_hub("quartz", split, data_dir)


def load_arc(subset="easy", split="train", data_dir=None):
    """Load the AI2 Reasoning Challenge (Clark et al., 2018) in the shared schema.

    Parameters
    ----------
    subset : {"easy", "challenge"}, default="easy"
        ARC-Easy or ARC-Challenge.
    split : {"train", "validation", "test"}, default="train"
        Which split to load (ARC-Easy: 2251 / 570 / 2376 questions).
    data_dir : str or path-like, default=None
        Folder holding ``arc_easy/`` (``arc_challenge/`` for the challenge
        set), or that folder itself. When None, ``SKW2S_DATA_DIR`` is used; when
        that is unset too, ``allenai/ai2_arc`` (config ``ARC-Easy`` or
        ``ARC-Challenge``) is loaded from the Hugging Face hub.

    Returns
    -------
    df : pandas.DataFrame
        Columns ``id, question, choices, answer, support``. ``support`` is
        always ``""``. Answer keys given as letters (A-E) or digits (1-5) are
        both mapped to the index of the matching label.
    """
    _check_option("subset", subset, tuple(_ARC_SUBSETS))
    _check_option("split", split, SPLITS)
    return _load_local_or_hub(f"arc_{subset}", split, data_dir)


def load_arc_metadata(data_dir=None, *, subset="easy"):
    """Load per-question ARC metadata (school grade, exam, year).

    Useful as a precomputed difficulty signal: the school grade orders
    questions from easy to hard.

    Parameters
    ----------
    data_dir : str or path-like, default=None
        Folder holding ``arc_easy/metadata.jsonl`` (or that folder itself).
        When None, ``SKW2S_DATA_DIR`` is used. The hub has no such file, so one
        of the two is required.
    subset : {"easy", "challenge"}, default="easy"
        Which ARC set's metadata to read.

    Returns
    -------
    metadata : pandas.DataFrame
        Indexed by ``id``, with columns ``split`` (str), ``set`` (str),
        ``grade`` (int, US school grade), ``exam_name`` (str) and ``year``
        (str, as in the source: a few are ``"?"`` or ranges like
        ``"2013-2014"``). Covers all three splits.
    """
    _check_option("subset", subset, tuple(_ARC_SUBSETS))
    try:
        root = resolve_data_dir(data_dir)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"ARC metadata is only available offline. {exc}") from None
    path = _find_file(root, f"arc_{subset}", "metadata.jsonl")
    required = ("id", "split", "set", "schoolGrade", "examName", "year")
    records = []
    for where, record in read_jsonl(path, what="metadata file"):
        missing = [c for c in required if c not in record]
        if missing:
            raise ValueError(f"{where}: missing field(s) {missing}.")
        grade = record["schoolGrade"]
        if isinstance(grade, bool) or not isinstance(grade, int):
            raise ValueError(f"{where}: field 'schoolGrade' must be an int, got {grade!r}.")
        records.append(record)
    df = pd.DataFrame.from_records(records, columns=list(required))
    df = df.rename(columns={"schoolGrade": "grade", "examName": "exam_name"})
    df["grade"] = df["grade"].astype(np.int64)
    df["year"] = df["year"].astype(str)
    return df.set_index("id")


DATASETS = {
    "sciq": load_sciq,
    "quartz": load_quartz,
    "arc_easy": lambda split="train", data_dir=None: load_arc("easy", split, data_dir),
    "arc_challenge": lambda split="train", data_dir=None: load_arc("challenge", split, data_dir),
}
"""Dataset name -> loader taking ``(split="train", data_dir=None)``."""


def load_dataset(name, split="train", data_dir=None):
    """Load a dataset by name.

    Parameters
    ----------
    name : {"sciq", "quartz", "arc_easy", "arc_challenge"}
        Key of :data:`DATASETS`.
    split : {"train", "validation", "test"}, default="train"
        Which split to load.
    data_dir : str or path-like, default=None
        See :func:`load_sciq`.

    Returns
    -------
    df : pandas.DataFrame
        Columns ``id, question, choices, answer, support``.
    """
    _check_option("name", name, tuple(DATASETS))
    return DATASETS[name](split=split, data_dir=data_dir)


def load_table(source, *, task="multiple_choice", columns=None, split=None, name=None,
               choices_sep="|", answer_format=None):
    """Load your own questions (a file, a ``datasets`` directory or a Hub dataset) by column.

    Parameters
    ----------
    source : str, path-like, pandas.DataFrame or datasets.Dataset
        Where the rows are:

        - a file: JSON Lines (``.jsonl``, ``.ndjson``), JSON (``.json``: a list of objects, or
          JSON Lines), CSV (``.csv``) or TSV (``.tsv``) with a header row, Parquet
          (``.parquet``) or Arrow (``.arrow``). Text files must be UTF-8;
        - a directory: one written by ``datasets.Dataset.save_to_disk`` or
          ``DatasetDict.save_to_disk`` (read offline with :func:`datasets.load_from_disk`), one
          holding ``{split}.jsonl`` / ``{split}.csv`` / ... files, or one of ``*.arrow`` files;
        - a Hugging Face Hub dataset name such as ``"allenai/openbookqa"`` (online; any string
          that is not an existing path and does not look like one);
        - a :class:`pandas.DataFrame`, :class:`datasets.Dataset` or ``DatasetDict``.
    task : {"multiple_choice", "binary"}, default="multiple_choice"
        What the rows hold. Multiple choice: ``question``, ``choices``, ``answer`` and
        optionally ``id`` and ``support``. Binary: ``text`` and ``label`` and optionally ``id``.
    columns : dict, default=None
        Which column plays each role, as ``{role: column name}``; roles not given use the
        column of their own name. For ``choices`` a list of two or more column names is also
        accepted (one column per option, as in ``A, B, C, D`` CSV files; empty cells are
        dropped, so questions may have different numbers of options).
    split : str, default=None
        The split of a ``DatasetDict``, a directory or a Hub dataset. None takes the only
        split, else ``"train"``. A single file holds one split, so ``split`` must stay None.
    name : str, default=None
        The configuration name of a Hub dataset (``datasets.load_dataset(source, name)``).
    choices_sep : str, default="|"
        The separator of options written in one text cell (``"red | green | blue"``).
    answer_format : {"index", "letter", "text"} or None, default=None
        How the ``answer`` column is written: a 0-based index, a capital letter (``A`` = 0, or
        the choice's label where the choices carry labels) or the correct choice's text. None
        infers it per row and refuses a row where two readings name different choices.

    Returns
    -------
    df : pandas.DataFrame
        Multiple choice: the shared schema of this module (``id, question, choices, answer,
        support``), which :func:`to_multiple_choice` and :func:`binarize_sciq` take. Binary:
        columns ``id, text, label`` (``label`` int64), which :func:`to_classification` takes.
        Ids are the ``id`` column as strings, or ``"{file stem}-{row:05d}"`` without one.

    Raises
    ------
    FileNotFoundError
        When a path does not exist.
    ValueError
        When a column is missing (the message lists the columns present), a text file is not
        UTF-8 or is empty, or a cell cannot be read; the message names the file and line (or
        the row).

    Notes
    -----
    A ``choices`` cell may be a list (JSON, Parquet, ``datasets``), a mapping with ``text``
    (and ``label``) lists as in the Hub's ARC and QuaRTz, a JSON list written as text
    (``'["red", "green"]'``, e.g. in a CSV cell), or options separated by ``choices_sep``
    (surrounding spaces are stripped). A cell that starts with ``[`` is read as JSON.

    The ``answer`` is matched in this order: against the choice labels when the choices came
    with labels (ARC's ``answerKey``); an int (or a float with an integral value) is a 0-based
    index; a string equal to one choice's text is that choice; a string of digits is a 0-based
    index; a single capital letter is a position (``A`` = 0). A string that is both one
    choice's text and the index or letter of another is refused as ambiguous: ``"2"`` among the
    options ``1, 2, 3``, or ``"C"`` among ``C, NO2, O2, CO`` (ARC-Challenge ``Mercury_402547``,
    whose key ``C`` means the third option). ``answer_format`` settles it for every row.

    A binary ``label`` is an int, a bool or a string of digits (CSV).

    Examples
    --------
    >>> from skw2s.datasets import load_table, to_multiple_choice   # doctest: +SKIP
    >>> df = load_table("quiz.csv", columns={"question": "prompt", "choices": ["A", "B", "C"],
    ...                                      "answer": "key"})       # doctest: +SKIP
    >>> X, y = to_multiple_choice(df)                                 # doctest: +SKIP
    """
    _check_option("task", task, tuple(_tables.ROLES))
    if answer_format is not None:
        _check_option("answer_format", answer_format, _tables.ANSWER_FORMATS)
    if not isinstance(choices_sep, str) or not choices_sep:
        raise ValueError("The 'choices_sep' parameter must be a non-empty string. "
                         f"Got {choices_sep!r} instead.")
    mapping = _tables.check_columns(columns, task)
    rows, present, label = _tables.read_rows(source, split=split, name=name)
    where = str(source) if isinstance(source, (str, os.PathLike)) else "the table"
    return _tables.to_frame(
        rows, present, mapping, task=task, choices_sep=choices_sep, id_prefix=label,
        source=where, given=set(columns or ()), answer_format=answer_format,
    )


# ----------------------------------------------------------------------------
# Formatting
# ----------------------------------------------------------------------------
def format_classification(question, answer):
    """Format a (question, candidate answer) pair for binary classification.

    Parameters
    ----------
    question : str
    answer : str

    Returns
    -------
    text : str
        ``"Q: {question} A: {answer}"`` (Burns et al., 2023).
    """
    return f"Q: {question} A: {answer}"


def format_prompt(question, support=None, *, use_support=False, choices=None):
    """Format a multiple-choice or generation prompt.

    Parameters
    ----------
    question : str
    support : str, default=None
        Context paragraph.
    use_support : bool, default=False
        Prefix ``"Context: {support}\\n"`` when True and ``support`` is non-empty.
    choices : list of str, default=None
        When given, list them under the question as ``"A. {choice}"`` lines (one letter per
        choice, at most 26), for answers given as letters.

    Returns
    -------
    prompt : str
        ``"Question: {question}\\nAnswer:"``, optionally with the context line and the
        lettered choices between the question and ``"Answer:"``.

    Examples
    --------
    >>> print(format_prompt("Which is a gas?", choices=["iron", "helium"]))
    Question: Which is a gas?
    A. iron
    B. helium
    Answer:
    """
    lines = [f"Question: {question}"]
    if choices is not None:
        letters = _letters(len(choices))
        lines += [f"{letter}. {choice}" for letter, choice in zip(letters, choices)]
    prompt = "\n".join(lines + ["Answer:"])
    if use_support and support:
        prompt = f"Context: {support}\n{prompt}"
    return prompt


def _letters(n):
    if n > 26:
        raise ValueError(f"Lettered options take at most 26 choices (A-Z); a question has {n}.")
    return [chr(ord("A") + k) for k in range(n)]


def format_completion(choice):
    """Format an answer option as the completion that follows a prompt.

    Parameters
    ----------
    choice : str

    Returns
    -------
    completion : str
        ``" " + choice``: the space separates it from the prompt's ``"Answer:"``.
    """
    return " " + choice


# ----------------------------------------------------------------------------
# Task construction
# ----------------------------------------------------------------------------
def _check_frame(df, columns, func):
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{func} expects a pandas DataFrame, got {type(df).__name__}.")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{func}: the DataFrame is missing column(s) {missing}.")


def binarize_sciq(df, random_state=None):
    """Turn multiple-choice questions into a balanced binary task (Burns et al.).

    Each question gives one example: with probability 1/2 it is paired with its
    correct answer (label 1), otherwise with one distractor drawn uniformly
    (label 0).

    Parameters
    ----------
    df : pandas.DataFrame
        Frame in the shared schema, typically from :func:`load_sciq`.
    random_state : int, RandomState instance or None, default=None
        Controls the label and distractor draws. Pass an int for reproducible
        output.

    Returns
    -------
    binarized : pandas.DataFrame
        Columns ``id, question, answer_text, label, text`` (one row per input
        row, same order, fresh index) where ``text`` is
        ``format_classification(question, answer_text)``.
    """
    _check_frame(df, ("id", "question", "choices", "answer"), "binarize_sciq")
    rng = check_random_state(random_state)
    rows = []
    for row_id, question, choices, answer in zip(df["id"], df["question"], df["choices"],
                                                 df["answer"]):
        choices = list(choices)
        answer = int(answer)
        distractors = choices[:answer] + choices[answer + 1 :]
        if not distractors:
            raise ValueError(f"Question {row_id!r} has no distractor to pair with label 0.")
        if rng.random_sample() < 0.5:
            label, answer_text = 1, choices[answer]
        else:
            label, answer_text = 0, distractors[rng.randint(len(distractors))]
        rows.append((row_id, question, answer_text, label,
                     format_classification(question, answer_text)))
    out = pd.DataFrame(rows, columns=["id", "question", "answer_text", "label", "text"])
    out["label"] = out["label"].astype(np.int64)
    return out


def to_multiple_choice(df, *, use_support=False, options="cloze"):
    """Build the multiple-choice input of the generation estimators.

    Parameters
    ----------
    df : pandas.DataFrame
        Frame in the shared schema.
    use_support : bool, default=False
        Put the ``support`` paragraph in the prompt (see :func:`format_prompt`).
    options : {"cloze", "lettered"}, default="cloze"
        ``"cloze"``: the prompt does not list the options and each choice is the option's
        text, scored as the answer's continuation. ``"lettered"``: the prompt lists the options
        as ``"A. ..."`` lines and the choices are the letters, so every answer is one short
        completion (``" A"``) and a token-level error is the choice error.

    Returns
    -------
    X : pandas.DataFrame
        Columns ``prompt`` (from :func:`format_prompt`) and ``choices`` (the
        raw option strings, or their letters, as lists; estimators apply
        :func:`format_completion` when scoring them). Same index order as ``df``, fresh index.
    y : numpy.ndarray of shape (n_samples,), dtype int64
        Index of the correct option.

    Examples
    --------
    >>> df = pd.DataFrame({"question": ["Which is a gas?"], "choices": [["iron", "helium"]],
    ...                    "answer": [1]})
    >>> X, y = to_multiple_choice(df, options="lettered")
    >>> X.loc[0, "choices"], int(y[0])
    (['A', 'B'], 1)
    """
    _check_option("options", options, ("cloze", "lettered"))
    _check_frame(df, ("question", "choices", "answer"), "to_multiple_choice")
    supports = df["support"] if "support" in df.columns else [None] * len(df)
    lettered = options == "lettered"
    prompts, choices = [], []
    for q, s, c in zip(df["question"], supports, df["choices"]):
        c = list(c)
        prompts.append(format_prompt(q, s, use_support=use_support,
                                     choices=c if lettered else None))
        choices.append(_letters(len(c)) if lettered else c)
    X = pd.DataFrame({"prompt": prompts, "choices": choices})
    y = np.asarray(df["answer"], dtype=np.int64)
    return X, y


def to_classification(df_binarized):
    """Build the input of the binary classifiers from :func:`binarize_sciq` output.

    Parameters
    ----------
    df_binarized : pandas.DataFrame
        Frame with columns ``text`` and ``label``.

    Returns
    -------
    X : list of str
        The ``text`` column.
    y : numpy.ndarray of shape (n_samples,), dtype int64
        The ``label`` column.
    """
    _check_frame(df_binarized, ("text", "label"), "to_classification")
    return list(df_binarized["text"]), np.asarray(df_binarized["label"], dtype=np.int64)
