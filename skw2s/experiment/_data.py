"""The labelled pool a config describes: a built-in dataset or your own table, subsampled."""

from __future__ import annotations

import numpy as np

from ..core.random import check_random_state

__all__ = ["load_task_data"]


def _subset(df, n, seed):
    if n is not None and n < len(df):
        rows = np.sort(check_random_state(seed).choice(len(df), n, replace=False))
        df = df.iloc[rows].reset_index(drop=True)
    return df


def _to_task(config, df):
    from ..data.datasets import binarize_sciq, to_classification, to_multiple_choice

    if config["task"] == "binary":
        if "label" not in df:  # multiple-choice questions (SciQ), binarised as in Burns et al.
            df = binarize_sciq(df, random_state=config["data_seed"])
        return to_classification(df)
    return to_multiple_choice(df, use_support=config["use_support"], options=config["options"])


class _GradeOf:
    """ARC's school grade of each question, looked up by its prompt (picklable)."""

    def __init__(self, grades):
        self.grades = grades

    def __call__(self, X):
        prompts = list(X["prompt"]) if hasattr(X, "columns") else list(X)
        missing = [p for p in prompts if p not in self.grades]
        if missing:
            raise ValueError(f"No grade for {len(missing)} question(s), e.g. {missing[0][:80]!r}.")
        return np.array([self.grades[p] for p in prompts], dtype=np.float64)


def load_task_data(config, data_dir=None, *, with_test=False):
    """The labelled pool ``(X, y, ids)`` that a validated config describes.

    Parameters
    ----------
    config : dict
        A config from :func:`~skw2s.experiment.load_config`.
    data_dir : str, path-like or None, default=None
        The offline data folder for the built-in datasets; overrides the config's
        ``data_dir``, and :func:`skw2s.datasets.resolve_data_dir` falls back to
        ``SKW2S_DATA_DIR``; with neither, the built-in datasets are read from the Hugging Face
        Hub. Not needed for a ``dataset`` mapping (your own data).

    with_test : bool, default=False
        Return a dict instead, with the test set of ``test_split`` as well (see below).

    Returns
    -------
    X : list of str or pandas.DataFrame
        Texts (``task: binary``) or the ``prompt``/``choices`` frame (``multiple_choice``).
    y : numpy.ndarray of int64
        Labels, or the index of the correct choice.
    ids : list of str
        The question ids, row for row.
    data : dict
        With ``with_test``: ``X``, ``y``, ``ids`` and, when the config has a ``test_split`` or
        a ``dataset.test_path``, ``X_test``, ``y_test``, ``test_ids`` and (ARC with a grade
        difficulty) ``grade_of``,
        a callable from generation input to grades.

    Raises
    ------
    FileNotFoundError
        When the data folder or a data file does not exist.
    ValueError
        When a data file cannot be read (the message names the file and line).
    """
    from ..data.datasets import load_dataset, load_table, resolve_data_dir

    dataset = config["dataset"]
    root = None
    if isinstance(dataset, dict):
        def own(path, split):
            return load_table(
                path, task=config["task"], columns=dataset.get("columns"), split=split,
                name=dataset.get("name"), choices_sep=dataset.get("choices_sep", "|"),
                answer_format=dataset.get("answer_format"),
            )

        df = own(dataset["path"], dataset.get("split"))
    else:
        root = resolve_data_dir(data_dir or config["data_dir"], required=False)
        df = load_dataset(dataset, split=config["split"], data_dir=root)
    df = _subset(df, config["n_examples"], config["data_seed"])
    ids = df["id"].tolist()
    X, y = _to_task(config, df)
    if not with_test:
        return X, y, ids
    data = {"X": X, "y": y, "ids": ids}
    if isinstance(dataset, dict) and (dataset.get("test_path") or config.get("test_split")):
        test_df = own(dataset.get("test_path") or dataset["path"], config.get("test_split"))
    elif isinstance(dataset, str) and config.get("test_split") is not None:
        test_df = load_dataset(dataset, split=config["test_split"], data_dir=root)
    else:
        return data
    test_df = _subset(test_df, config.get("n_test"), config["data_seed"])
    data["X_test"], data["y_test"] = _to_task(config, test_df)
    data["test_ids"] = test_df["id"].tolist()
    difficulty = config.get("difficulty") or {}
    if config["split_kind"] == "easy_hard" and difficulty.get("precomputed") == "grade":
        from ..data.datasets import load_arc_metadata

        subset = "easy" if dataset == "arc_easy" else "challenge"
        grades = load_arc_metadata(root, subset=subset)["grade"]
        lookup = {}
        for frame_ids, frame in ((ids, X), (data["test_ids"], data["X_test"])):
            for qid, prompt in zip(frame_ids, frame["prompt"]):
                lookup.setdefault(prompt, float(grades[qid]))
        data["grade_of"] = _GradeOf(lookup)
    return data
