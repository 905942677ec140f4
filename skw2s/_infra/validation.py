"""Input and parameter validation for text estimators.

scikit-learn's ``check_array``/``validate_data`` expect numeric 2-D arrays; our estimators take a
sequence of texts. The helpers here give the same guarantees for text input, with scikit-learn's
wording where a scikit-learn message exists, so that errors read the same across the two worlds:

- :func:`check_text_input`: a list of non-empty ``str`` from a list, tuple, 1-D array, pandas
  Series or one-column DataFrame;
- :func:`check_binary_target`: classes and 0/1 codes of a binary target, with the length check;
- :func:`check_sample_weight`: non-negative finite weights (delegating to
  :mod:`skw2s.core.weights`);
- :func:`validate_params` with :class:`Interval`, :class:`StrOptions` and :class:`HasMethods`:
  a small public stand-in for scikit-learn's private ``_param_validation``, producing its
  messages (``"The 'n_estimators' parameter of X must be an int in the range [1, inf). Got 0
  instead."``).

``resolve_seed``, ``round_rng``, ``spawn_seed`` and ``batch_order_rng`` are re-exported from
:mod:`skw2s.core.random`, where every seed derivation lives.

Numpy, pandas and scikit-learn only: this module never imports torch.
"""

from __future__ import annotations

import os
from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.utils import column_or_1d
from sklearn.utils.multiclass import type_of_target

from ..core import weights as _weights
from ..core.random import MAX_SEED, batch_order_rng, resolve_seed, round_rng, spawn_seed

__all__ = [
    "MEMORY",
    "RANDOM_STATE",
    "HasMethods",
    "InstanceOf",
    "Interval",
    "StrOptions",
    "check_binary_target",
    "check_sample_weight",
    "check_text_input",
    "reset_fitted_attributes",
    "resolve_seed",
    "batch_order_rng",
    "round_rng",
    "spawn_seed",
    "take_rows",
    "validate_params",
]


# ----------------------------------------------------------------------------
# Parameter constraints
# ----------------------------------------------------------------------------
class Interval:
    """Numbers of one type (``Integral`` or ``Real``) within bounds.

    Parameters
    ----------
    type : {numbers.Integral, numbers.Real}
        ``Integral`` rejects floats; ``Real`` accepts ints and floats. Booleans and NaN never
        satisfy an interval.
    left, right : float or None
        Bounds; None means unbounded.
    closed : {"left", "right", "both", "neither"}
        Which bounds belong to the interval.
    """

    def __init__(self, type, left, right, *, closed):  # noqa: A002 - sklearn's name
        self.type, self.left, self.right, self.closed = type, left, right, closed

    def is_satisfied_by(self, value):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, self.type):
            return False
        if isinstance(value, Real) and np.isnan(value):
            return False
        if self.left is not None:
            if value < self.left or (value == self.left and self.closed in ("right", "neither")):
                return False
        if self.right is not None:
            if value > self.right or (value == self.right and self.closed in ("left", "neither")):
                return False
        return True

    def __str__(self):
        type_str = "an int" if self.type is Integral else "a float"
        left = "-inf" if self.left is None else self.left
        right = "inf" if self.right is None else self.right
        if self.type is not Integral:
            left = float(left) if self.left is not None else left
            right = float(right) if self.right is not None else right
        lb = "[" if self.closed in ("left", "both") else "("
        rb = "]" if self.closed in ("right", "both") else ")"
        return f"{type_str} in the range {lb}{left}, {right}{rb}"


class StrOptions:
    """One of a fixed set of strings."""

    def __init__(self, options):
        self.options = tuple(options)

    def is_satisfied_by(self, value):
        return isinstance(value, str) and value in self.options

    def __str__(self):
        return "a str among {" + ", ".join(repr(o) for o in self.options) + "}"


class HasMethods:
    """Any object with the named callable methods."""

    def __init__(self, methods):
        self.methods = tuple(methods)

    def is_satisfied_by(self, value):
        return all(callable(getattr(value, m, None)) for m in self.methods)

    def __str__(self):
        names = [repr(m) for m in self.methods]
        joined = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        return f"an object implementing {joined}"

    def explain(self, value):
        """What ``value`` lacks: the missing methods, named."""
        missing = [repr(m) for m in self.methods if not callable(getattr(value, m, None))]
        return f"it has no method {', '.join(missing)}" if missing else ""


class InstanceOf:
    """Satisfied by an instance of ``types``; ``name`` is how errors describe it."""

    def __init__(self, types, name):
        self.types, self.name = types, name

    def is_satisfied_by(self, value):
        return isinstance(value, self.types)

    def __str__(self):
        return self.name


class _NoneConstraint:
    def is_satisfied_by(self, value):
        return value is None

    def __str__(self):
        return "None"


class _RandomStateConstraint:
    """What ``sklearn.utils.check_random_state`` accepts: None, a seed, a RandomState."""

    def is_satisfied_by(self, value):
        if value is None or isinstance(value, np.random.RandomState):
            return True
        return Interval(Integral, 0, MAX_SEED, closed="both").is_satisfied_by(value)

    def __str__(self):
        return ("an int in the range [0, 4294967295], an instance of "
                "'numpy.random.mtrand.RandomState' or None")


class _MemoryConstraint:
    def is_satisfied_by(self, value):
        import joblib

        return value is None or isinstance(value, (str, os.PathLike, joblib.Memory))

    def __str__(self):
        return "a str, a path-like, a joblib.Memory or None"


class _ReportToConstraint:
    """What the Trainer's ``report_to`` takes: a tracker's name or a list of them."""

    def is_satisfied_by(self, value):
        if isinstance(value, str):
            return bool(value)
        return (isinstance(value, (list, tuple)) and bool(value)
                and all(isinstance(v, str) and v for v in value))

    def __str__(self):
        return ("a tracker's name (such as 'none', 'mlflow', 'tensorboard', 'wandb') "
                "or a list of them")


NONE = _NoneConstraint()
"""Constraint satisfied by ``None`` only."""

PATH = InstanceOf((str, os.PathLike), "a str or path-like")
"""Constraint satisfied by a ``str`` or ``os.PathLike``."""

RANDOM_STATE = _RandomStateConstraint()
"""The ``random_state`` parameter of every estimator: None, an int seed or a RandomState."""

MEMORY = _MemoryConstraint()
"""The ``memory`` parameter: None, a directory or a ``joblib.Memory``."""

VERBOSE = [Interval(Integral, 0, None, closed="left"), InstanceOf((bool,), "a bool")]
"""The ``verbose`` parameter: a non-negative int or a bool."""

POSITIVE_INT = Interval(Integral, 1, None, closed="left")
"""An int in ``[1, inf)``."""

REPORT_TO = [_ReportToConstraint()]
"""The ``report_to`` parameter: ``"none"``, a tracker's name, or a list of them."""

LOGGING_STEPS = [POSITIVE_INT, NONE]
"""The ``logging_steps`` parameter: an int in ``[1, inf)``, or None."""

POSITIVE_FINITE = Interval(Real, 0, np.inf, closed="neither")
"""A finite float in ``(0, inf)``: learning rates and scales (``inf`` and NaN are rejected)."""


def validate_params(estimator, constraints=None):
    """Check ``estimator``'s parameters against ``constraints``: the one validation mechanism.

    Every public estimator declares ``_parameter_constraints`` (one entry per ``__init__``
    parameter; ``tests/test_common.py`` checks that none is missing) and calls this at the
    start of ``fit``.

    Parameters
    ----------
    estimator : BaseEstimator
        Its ``get_params(deep=False)`` values are checked.
    constraints : dict of str to list, default=None
        For each parameter name, the constraints of which at least one must hold. None means
        ``estimator._parameter_constraints``.

    Raises
    ------
    ValueError
        ``"The 'name' parameter of Class must be <constraints>. Got <value> instead."``, the
        message scikit-learn's parameter validation gives.
    """
    if constraints is None:
        constraints = estimator._parameter_constraints
    params = estimator.get_params(deep=False)
    owner = type(estimator).__name__
    for name, options in constraints.items():
        value = params[name]
        if any(c.is_satisfied_by(value) for c in options):
            continue
        texts = [str(c) for c in options]
        joined = texts[0] if len(texts) == 1 else ", ".join(texts[:-1]) + " or " + texts[-1]
        reasons = [c.explain(value) for c in options if hasattr(c, "explain")]
        reason = "; ".join(r for r in reasons if r)
        raise ValueError(
            f"The {name!r} parameter of {owner} must be {joined}. Got {value!r} instead"
            + (f": {reason}." if reason else ".")
        )


def reset_fitted_attributes(estimator, private=()):
    """Delete every fitted attribute (``name_``) and the named private ones.

    Called at the start of ``fit`` so that a fit that fails half-way leaves no mix of old and
    new state behind.
    """
    for name in list(vars(estimator)):
        if (name.endswith("_") and not name.startswith("__")) or name in private:
            delattr(estimator, name)


# ----------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------
def _owner_name(estimator):
    if estimator is None:
        return "the estimator"
    return estimator if isinstance(estimator, str) else type(estimator).__name__


def check_text_input(X, *, estimator=None, input_name="X", allow_empty_strings=False):
    """Validate a collection of texts and return it as a list of ``str``.

    Parameters
    ----------
    X : sequence of str, 1-D array, pandas Series or one-column DataFrame
        One text per sample.
    estimator : estimator instance or str, default=None
        Named in error messages.
    input_name : str, default="X"
        Named in error messages.
    allow_empty_strings : bool, default=False
        An empty text has no token to classify, so it is rejected unless this is True.

    Returns
    -------
    texts : list of str

    Raises
    ------
    ValueError
        If ``X`` is a single string, not a sequence, 2-D with more than one column, empty,
        or holds an item that is not a string (None, NaN, numbers ...) or an empty string.
    """
    owner = _owner_name(estimator)
    if isinstance(X, (str, bytes)):
        raise ValueError(
            f"{input_name} must be a sequence of strings, one text per sample, not a single "
            f"string. Wrap it in a list: [{input_name}]."
        )
    if isinstance(X, pd.DataFrame):
        if X.shape[1] != 1:
            raise ValueError(
                f"{input_name} must be a sequence of strings or a one-column DataFrame; got a "
                f"DataFrame with {X.shape[1]} columns {list(X.columns)}."
            )
        items = X.iloc[:, 0].tolist()
    elif isinstance(X, pd.Series):
        items = X.tolist()
    elif isinstance(X, np.ndarray):
        if X.ndim == 2 and X.shape[1] == 1:
            X = X[:, 0]
        if X.ndim != 1:
            raise ValueError(
                f"{input_name} must be a 1-D sequence of strings (or one column); got an array "
                f"of shape {X.shape}."
            )
        items = X.tolist()
    else:
        try:
            items = list(X)
        except TypeError:
            raise ValueError(
                f"{input_name} must be a sequence of strings, one text per sample; got "
                f"{type(X).__name__}."
            ) from None
    if len(items) == 0:
        raise ValueError(
            f"Found array with 0 sample(s) (shape=(0,)) while a minimum of 1 is required by "
            f"{owner}."
        )
    bad = [i for i, item in enumerate(items) if not isinstance(item, str)]
    if bad:
        first = items[bad[0]]
        raise ValueError(
            f"{input_name} must contain only strings; {len(bad)} item(s) are not, the first at "
            f"index {bad[0]}: {type(first).__name__} {first!r}."
        )
    if not allow_empty_strings:
        empty = [i for i, item in enumerate(items) if not item]
        if empty:
            raise ValueError(
                f"{input_name} contains {len(empty)} empty string(s), the first at index "
                f"{empty[0]}; every text needs at least one token."
            )
    return [str(item) for item in items]


def check_binary_target(y, n_samples, *, estimator=None):
    """Validate a binary target and encode it as 0/1.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Two distinct labels of any type (ints, strings, bools ...).
    n_samples : int
        The number of samples in ``X``.
    estimator : estimator instance or str, default=None
        Named in error messages.

    Returns
    -------
    classes : ndarray of shape (2,)
        ``np.unique(y)``: ``classes[1]`` is the positive class.
    y_encoded : ndarray of shape (n_samples,), dtype int64
        Index of each label in ``classes``.

    Raises
    ------
    ValueError
        If ``y`` is None, its length differs from ``n_samples``, it holds NaN, it is not
        binary ("Only binary classification is supported. The type of the target is ..."),
        or it holds a single class.
    """
    owner = _owner_name(estimator)
    if y is None:
        raise ValueError(
            f"This {owner} estimator requires y to be passed, but the target y is None."
        )
    y_arr = y.to_numpy() if isinstance(y, (pd.Series, pd.DataFrame)) else np.asarray(y)
    n_y = y_arr.shape[0] if y_arr.ndim else 1
    if y_arr.ndim == 0 or n_y != n_samples:
        raise ValueError(
            f"Found input variables with inconsistent numbers of samples: [{n_samples}, {n_y}]"
        )
    y_type = type_of_target(y_arr, input_name="y", raise_unknown=True)
    if y_type != "binary":
        raise ValueError(
            f"Only binary classification is supported. The type of the target is {y_type}."
        )
    y_arr = column_or_1d(y_arr, warn=True)
    classes, y_encoded = np.unique(y_arr, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(
            f"The target y contains only one class: {classes.tolist()[0]!r}. Binary classification "
            "needs samples of two classes."
        )
    return classes, y_encoded.astype(np.int64)


def check_sample_weight(sample_weight, n_samples):
    """Validate ``sample_weight``: None stays None, otherwise float64 of shape (n_samples,).

    Raises
    ------
    ValueError
        If the weights are not numeric, have the wrong length, contain NaN or inf, are
        negative or are all zero (messages name ``sample_weight``).
    """
    if sample_weight is None:
        return None
    try:
        arr = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"sample_weight must be numeric: {exc}") from None
    return _weights.check_sample_weight(arr, n_samples)


def take_rows(X, indices):
    """Rows ``indices`` of ``X`` (a list, an array, a Series or a DataFrame), same kind back."""
    indices = np.asarray(indices, dtype=np.int64)
    if isinstance(X, (pd.DataFrame, pd.Series)):
        return X.iloc[indices].reset_index(drop=True)
    if isinstance(X, np.ndarray):
        return X[indices]
    return [X[i] for i in indices]
