"""The labelled pool a config describes: a built-in dataset or your own table, subsampled."""

from __future__ import annotations

import numpy as np

__all__ = ["load_task_data"]


def load_task_data(config, data_dir=None):
    """The labelled pool ``(X, y, ids)`` that a validated config describes.

    Parameters
    ----------
    config : dict
        A config from :func:`~skw2s.experiment.load_config`.
    data_dir : str, path-like or None, default=None
        The offline data folder for the built-in datasets; overrides the config's
        ``data_dir``, and :func:`skw2s.datasets.resolve_data_dir` falls back to
        ``SKW2S_DATA_DIR``. Not needed for a ``dataset`` mapping (your own data).

    Returns
    -------
    X : list of str or pandas.DataFrame
        Texts (``task: binary``) or the ``prompt``/``choices`` frame (``multiple_choice``).
    y : numpy.ndarray of int64
        Labels, or the index of the correct choice.
    ids : list of str
        The question ids, row for row.

    Raises
    ------
    FileNotFoundError
        When the data folder or a data file does not exist.
    ValueError
        When a data file cannot be read (the message names the file and line).
    """
    from sklearn.utils import check_random_state

    from ..datasets import (
        binarize_sciq, load_dataset, load_table, resolve_data_dir, to_classification, to_multiple_choice,
    )

    dataset = config["dataset"]
    if isinstance(dataset, dict):
        df = load_table(
            dataset["path"], task=config["task"], columns=dataset.get("columns"),
            split=dataset.get("split"), name=dataset.get("name"),
            choices_sep=dataset.get("choices_sep", "|"),
        )
    else:
        root = resolve_data_dir(data_dir or config["data_dir"])
        df = load_dataset(dataset, split=config["split"], data_dir=root)
    n = config["n_examples"]
    if n is not None and n < len(df):
        rows = np.sort(check_random_state(config["data_seed"]).choice(len(df), n, replace=False))
        df = df.iloc[rows].reset_index(drop=True)
    ids = df["id"].tolist()
    if config["task"] == "binary":
        if "label" not in df:  # multiple-choice questions (SciQ), binarised as in Burns et al.
            df = binarize_sciq(df, random_state=config["data_seed"])
        X, y = to_classification(df)
        return X, y, ids
    X, y = to_multiple_choice(df, use_support=config["use_support"])
    return X, y, ids
