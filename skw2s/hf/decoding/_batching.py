"""Batches of token rows, shared by teacher-forced scoring and decoding.

torch is imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import numbers

import numpy as np


def _pad_rows(rows, value, side):
    """Rows of token ids as one int64 tensor, padded with ``value`` on ``side`` ("left" or
    "right") to the longest row."""
    import torch

    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), value, dtype=torch.long)
    for i, r in enumerate(rows):
        if len(r):
            if side == "right":
                out[i, : len(r)] = torch.as_tensor(r, dtype=torch.long)
            else:
                out[i, width - len(r) :] = torch.as_tensor(r, dtype=torch.long)
    return out


def _batches(lengths, batch_size):
    """Index batches of rows sorted by length (longest first), to keep padding small."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def _check_positive_int(name, value):
    """``value`` as an int when it is a positive integer (``batch_size``, ``max_new_tokens``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    return int(value)
