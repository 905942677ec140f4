"""Reading run directories: the seed files ``skw2s run`` writes, as one long DataFrame.

:mod:`skw2s.report` (tables and plots) and :mod:`skw2s.comparison` (paired intervals) both read
runs through this module, so neither imports the other for it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..w2s.names import ENSEMBLE_STUDENT, MAIN

__all__ = ["find_run_dirs", "load_runs", "run_names", "test_set_label"]

TEST_LABELS = {
    "easy_hard": {"hard": "OOD (hard)", "easy": "ID (easy)"},
    "random": {"hard": "student-side test", "easy": "weak-side test"},
}
"""Names of the two test sets by split kind; any other (unknown) split kind gets the random ones."""
CHANCE_OPTIONS = {"sciq": 4, "arc_easy": 4, "arc_challenge": 4, "quartz": 2}
"""Options per question of the built-in multiple-choice datasets: the chance level of seed files
written before ``skw2s run`` recorded it (``chance``, the mean of 1/options over the test
questions; a few ARC questions have 3 or 5 options)."""

def _test_labels(split_kind):
    return TEST_LABELS.get(split_kind, TEST_LABELS["random"])


def _chance(record, test):
    """The accuracy of a uniform guess on test set ``test`` of a seed record; NaN if unknown."""
    recorded = (record.get("chance") or {}).get(test)
    if recorded is not None:
        return float(recorded)
    config = record.get("config") or {}
    if config.get("task") == "binary":
        return 0.5
    dataset = config.get("dataset")
    options = CHANCE_OPTIONS.get(dataset) if isinstance(dataset, str) else None
    return 1 / options if options else np.nan


def test_set_label(test, config):
    """What the pipeline's test set ``test`` scores, in a word for the tables.

    The pipeline calls its test sets ``"hard"`` and ``"easy"`` whatever the split. Only an
    easy-hard split makes them hard and easy questions: with a random split and an external
    test split (``test_split``, or your own ``dataset.test_path``), ``"hard"`` scores all of its
    questions; without one, random held-out rows of the student's half.

    Parameters
    ----------
    test : str
        ``"hard"`` or ``"easy"``, as in the seed files.
    config : dict or None
        The config the seed file holds (``split_kind``, ``test_split``).

    Returns
    -------
    label : str
        ``"hard"`` / ``"easy (ID)"`` for an easy-hard split; ``"all"`` (external test split) or
        ``"student-side"``, and ``"weak-side"``, for a random one; ``test`` itself when the
        config does not say.
    """
    config = config or {}
    kind = config.get("split_kind")
    if kind == "easy_hard":
        return {"easy": "easy (ID)"}.get(test, test)
    if kind is None:
        return test
    if test == "hard":
        dataset = config.get("dataset")
        own_test = isinstance(dataset, dict) and dataset.get("test_path")
        return "all" if config.get("test_split") or own_test else "student-side"
    return {"easy": "weak-side"}.get(test, test)


def _seed_record(path):
    """The record of a seed file written by ``skw2s run``, or None for other JSON."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}, line {exc.lineno}: invalid JSON ({exc.msg}).") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text, so not a seed file of `skw2s run`.") from None
    if isinstance(record, dict) and "report" in record and "seed" in record:
        return record
    return None


def find_run_dirs(directories) -> list:
    """The run directories in or below each of ``directories``.

    Parameters
    ----------
    directories : list of str or path-like
        Run directories, or folders with run directories anywhere below them.

    Returns
    -------
    run_dirs : list of pathlib.Path
        Every directory holding a ``seed*.json`` written by ``skw2s run``, in the order the
        folders were given and by path within each. Hidden folders and the ``cache`` folder of a
        run are not searched; other JSON named ``seed*.json`` (the capability matrix's) is not a
        run.

    Raises
    ------
    FileNotFoundError
        When a folder does not exist, or holds no run results in or below it.
    """
    found = []
    for directory in directories:
        directory = Path(directory)
        if not directory.is_dir():
            raise FileNotFoundError(f"{directory} is not a directory.")
        below = []
        for root, dirs, files in os.walk(directory):
            root = Path(root)
            skip = {"cache"} if (root / "config.json").is_file() else set()
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in skip)
            seeds = sorted(f for f in files if f.startswith("seed") and f.endswith(".json"))
            if any(_seed_record(root / f) is not None for f in seeds):
                below.append(root)
        if not below:
            raise FileNotFoundError(
                f"No run results in or below {directory}: no seed*.json written by `skw2s run` "
                "(run an experiment first, or name the folder that holds its output)."
            )
        found += [d for d in below if d not in found]
    return found


def run_names(named):
    """One name per run directory: the config's name, or the folder's path where names clash.

    Parameters
    ----------
    named : dict
        ``{directory: name}``: each run directory (path-like) with the ``name`` its seed files
        record.

    Returns
    -------
    names : dict
        ``{pathlib.Path: str}``. A name that two or more directories share (``paired/`` and
        ``reproduce/`` both hold an ``arc-easy-random``) becomes each directory's path below
        their deepest common folder (``paired/arc-easy-random``, ``reproduce/arc-easy-random``),
        so their seeds are never pooled; other names are kept.
    """
    named = {Path(d): str(n) for d, n in named.items()}
    groups = {}
    for directory, name in named.items():
        groups.setdefault(name, []).append(directory)
    out = {}
    for name, directories in groups.items():
        if len(directories) == 1:
            out[directories[0]] = name
            continue
        resolved = [d.resolve() for d in directories]
        common = Path(os.path.commonpath(resolved))
        for directory, full in zip(directories, resolved):
            out[directory] = full.relative_to(common).as_posix() or name
    return out


def _main_rows(frame):
    """The rows of the main weak side (``"ours"``) and the first student loss: what the
    summary, round and ID/OOD tables show. Other weak sides and losses are in
    :func:`comparison_table`."""
    if "weak_side" not in frame:
        return frame
    students = frame[frame.model == ENSEMBLE_STUDENT]
    first = students.loss.iloc[0] if len(students) else None
    keep = (frame.weak_side == MAIN) & (frame.loss.isna() | (frame.loss == first))
    return frame[keep]


def load_runs(directories, *, all_rows=False) -> pd.DataFrame:
    """All ``seed*.json`` rows of the given run directories as one long DataFrame.

    Parameters
    ----------
    directories : list of str or path-like
        Run directories (see :func:`find_run_dirs` for folders holding several).
    all_rows : bool, default=False
        Keep the rows of every weak side and student loss; by default only those of the main
        weak side and the first loss (one row per model, as the tables expect).

    Returns
    -------
    runs : pandas.DataFrame
        The records of every seed's ``report_``, with columns ``run`` (the config's name, or
        the folder's path where two directories share a name: :func:`run_names`), ``seed``,
        ``split_kind`` (of the config; None for files without one), ``test_set`` (what the
        test set scores: :func:`test_set_label`), ``chance`` (the accuracy of a uniform guess:
        recorded by ``skw2s run``, else 1/2 for binary tasks and 1/options for the built-in
        multiple-choice datasets, else NaN) and ``n_test`` (test questions per seed) added.

    Raises
    ------
    FileNotFoundError
        When a directory holds no seed file of ``skw2s run``.
    ValueError
        When a seed file is not valid JSON (naming the file and line).
    """
    loaded = {}
    for directory in directories:
        directory = Path(directory)
        records = [r for r in map(_seed_record, sorted(directory.glob("seed*.json")))
                   if r is not None]
        if not records:
            raise FileNotFoundError(f"No seed*.json results of `skw2s run` in {directory}: "
                                    "run `skw2s run` first.")
        loaded[directory] = records
    names = run_names({d: records[0].get("name", d.name) for d, records in loaded.items()})
    frames = []
    for directory, records in loaded.items():
        for record in records:
            frame = pd.DataFrame(record["report"])
            if "test" not in frame:  # results written before the in-distribution test existed
                frame["test"] = "hard"
            # JSON null -> NaN; a column that older results lack is all NaN
            for column in ("accuracy", "token_error", "pgr", "gap", "auroc", "pgr_auroc",
                           "gap_auroc"):
                if column in frame:
                    frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
                else:
                    frame[column] = np.nan
            if not all_rows:
                frame = _main_rows(frame)
            frame["run"] = names[directory]
            frame["seed"] = record["seed"]
            frame["split_kind"] = (record.get("config") or {}).get("split_kind")
            frame["test_set"] = [test_set_label(t, record.get("config")) for t in frame["test"]]
            frame["chance"] = [_chance(record, t) for t in frame["test"]]
            if "n_test" not in frame:  # written before the report counted them: the record did
                sizes = {"hard": record.get("n_test"), "easy": record.get("n_id_test")}
                frame["n_test"] = [sizes.get(t) or np.nan for t in frame["test"]]
            frame["n_test"] = pd.to_numeric(frame["n_test"], errors="coerce").astype(float)
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)
