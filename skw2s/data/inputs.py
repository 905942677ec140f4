"""The one input format of the generation estimators.

Every generation estimator (:class:`~skw2s.LLMGenerator`, :class:`~skw2s.TokenAdaBoostGenerator`)
takes its ``X`` and ``y`` in the same form, checked here and documented only here.

``X`` is either

- a :class:`pandas.DataFrame` with a ``prompt`` column of strings and an optional ``choices``
  column, where each cell is a list of answer-option strings (a tuple or a 1-D numpy array of
  strings is accepted too; a bare string is not). Rows may have different numbers of choices;
  every row needs at least one. Other columns are ignored. :func:`skw2s.datasets.to_multiple_choice`
  builds this frame from a loaded dataset;
- or a list (or 1-D array, or :class:`pandas.Series`) of prompt strings: free-text generation.

``y`` is

- with choices: the index of the correct option of each row, an integer in
  ``[0, len(choices))``. The training target is then ``format_completion(choices[y])``, that is
  ``" " + choice``, followed by the EOS token;
- without choices: the answer strings. Each is appended to its prompt exactly as given (so
  include a leading space when the prompt ends in ``"Answer:"``), followed by the EOS token.
  An empty or whitespace-only answer is an error: there would be no token to learn.

Prompts are tokenised without special tokens and prefixed with the tokenizer's BOS token when it
has one; answers are tokenised on their own and appended, so answer-token boundaries never depend
on the prompt. A prompt that does not fit ``max_length`` together with its answer is cut from the
left (its end stays next to the answer) with a warning.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .datasets import format_completion

__all__ = ["GenerationInput", "check_generation_input", "check_generation_target"]


@dataclass(frozen=True)
class GenerationInput:
    """Validated generation input.

    Attributes
    ----------
    prompts : list of str
        One prompt per row.
    choices : list of list of str or None
        The answer options of each row, or None for free-text generation.
    """

    prompts: list
    choices: list | None

    @property
    def has_choices(self) -> bool:
        """True when the rows carry answer options (multiple choice)."""
        return self.choices is not None

    def __len__(self) -> int:
        return len(self.prompts)


def _check_prompts(values):
    prompts = list(values)
    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise ValueError(
                f"Every prompt must be a string; prompt {i} is a {type(p).__name__} ({p!r})."
            )
    return prompts


def _check_choices(values):
    out = []
    for i, c in enumerate(values):
        if isinstance(c, np.ndarray) and c.ndim == 1:
            c = c.tolist()
        if isinstance(c, str) or not isinstance(c, (list, tuple)):
            raise ValueError(
                f"The 'choices' of row {i} must be a list of strings; got a "
                f"{type(c).__name__} ({c!r})."
            )
        if len(c) == 0:
            raise ValueError(f"Row {i} has no choices: every row needs at least one option.")
        for j, option in enumerate(c):
            if not isinstance(option, str) or not option.strip():
                raise ValueError(
                    f"Choice {j} of row {i} must be a non-empty string; got {option!r}."
                )
        out.append(list(c))
    return out


def check_generation_input(X, *, require_choices=False) -> GenerationInput:
    """Validate ``X`` (see the module docstring) and return a :class:`GenerationInput`.

    Parameters
    ----------
    X : pandas.DataFrame or sequence of str
        A frame with a ``prompt`` column and an optional ``choices`` column, or prompt strings.
    require_choices : bool, default=False
        Raise when ``X`` carries no ``choices`` column.

    Returns
    -------
    GenerationInput

    Raises
    ------
    ValueError
        If ``X`` is empty, has no ``prompt`` column, holds a non-string prompt, or a row whose
        choices are not a non-empty list of non-empty strings.
    """
    if isinstance(X, pd.DataFrame):
        if "prompt" not in X.columns:
            raise ValueError(
                "A DataFrame input must have a 'prompt' column (and optionally 'choices'); got "
                f"columns {list(X.columns)}."
            )
        prompts = _check_prompts(X["prompt"])
        choices = _check_choices(X["choices"]) if "choices" in X.columns else None
    elif isinstance(X, str):
        raise ValueError(
            "Expected a list of prompt strings or a DataFrame with a 'prompt' column; got a "
            "single string. Wrap it in a list: [prompt]."
        )
    elif isinstance(X, (list, tuple, pd.Series, np.ndarray)):
        if isinstance(X, np.ndarray) and X.ndim != 1:
            raise ValueError(
                f"Expected a 1-D array of prompt strings; got an array of shape {X.shape}. "
                "Pass a DataFrame with a 'prompt' column for structured input."
            )
        prompts = _check_prompts(X)
        choices = None
    else:
        raise ValueError(
            "Expected a list of prompt strings or a DataFrame with a 'prompt' column (and "
            f"optionally 'choices'); got {type(X).__name__}."
        )
    if not prompts:
        raise ValueError("Found 0 prompts, while a minimum of 1 is required.")
    if require_choices and choices is None:
        raise ValueError(
            "This method needs multiple-choice input: a DataFrame with a 'choices' column."
        )
    return GenerationInput(prompts, choices)


def check_generation_target(y, inputs: GenerationInput):
    """Validate ``y`` against ``inputs``.

    Parameters
    ----------
    y : array-like of int or of str
        Choice indices when ``inputs`` has choices, else answer strings.
    inputs : GenerationInput

    Returns
    -------
    answers : list of str
        The training target of each row (without EOS): ``format_completion(choices[y])`` for
        multiple choice, else ``y`` unchanged.
    indices : ndarray of int64 or None
        The choice indices (multiple choice), else None.

    Raises
    ------
    ValueError
        If ``y`` has the wrong length, an index is not an integer or out of range, or an answer
        string is empty.
    """
    if y is None:
        raise ValueError("y is required: answer strings, or choice indices with choices.")
    values = list(y.tolist() if isinstance(y, (np.ndarray, pd.Series)) else y)
    if len(values) != len(inputs):
        raise ValueError(
            f"Found input variables with inconsistent numbers of samples: "
            f"[{len(inputs)}, {len(values)}]."
        )
    if inputs.has_choices:
        indices = []
        for i, (v, options) in enumerate(zip(values, inputs.choices)):
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
                raise ValueError(
                    f"With choices, y must hold the index of the correct choice; y[{i}] is "
                    f"{v!r}."
                )
            if not 0 <= int(v) < len(options):
                raise ValueError(
                    f"y[{i}] = {int(v)} is out of range: row {i} has {len(options)} choices, "
                    f"so the index must lie in [0, {len(options) - 1}]."
                )
            indices.append(int(v))
        answers = [format_completion(c[k]) for c, k in zip(inputs.choices, indices)]
        return answers, np.asarray(indices, dtype=np.int64)
    for i, v in enumerate(values):
        if not isinstance(v, str):
            raise ValueError(
                f"Without choices, y must hold answer strings; y[{i}] is a {type(v).__name__} "
                f"({v!r})."
            )
        if not v.strip():
            raise ValueError(
                f"Answer {i} is empty: every answer needs at least one token to learn."
            )
    return values, None
