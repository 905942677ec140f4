"""Parameter constraints that only :class:`~skw2s.WeakToStrongPipeline` uses."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np

from .difficulty import DifficultySplitter


class SizeConstraint:
    """``test_size``-like parameters: a fraction in (0, 1) or a count >= 1."""

    def is_satisfied_by(self, value):
        if isinstance(value, (bool, np.bool_)):
            return False
        if isinstance(value, (Real, np.floating)) and not isinstance(value, Integral):
            return 0 < value < 1
        return isinstance(value, (Integral, np.integer)) and value >= 1

    def __str__(self):
        return "a float in (0, 1) or an int >= 1"


class SplitterConstraint:
    """``"random"`` or a :class:`~skw2s.DifficultySplitter`."""

    def is_satisfied_by(self, value):
        return ((isinstance(value, str) and value == "random")
                or isinstance(value, DifficultySplitter))

    def __str__(self):
        return "'random' or a DifficultySplitter"


class NamedEstimatorsConstraint:
    """None or a list of ``(name, estimator)`` pairs with distinct names, none ``reserved``."""

    def __init__(self, reserved):
        self.reserved = reserved

    def is_satisfied_by(self, value):
        if value is None:
            return True
        if not isinstance(value, (list, tuple)):
            return False
        names = [item[0] for item in value if isinstance(item, (list, tuple)) and len(item) == 2]
        return (len(names) == len(value)
                and all(isinstance(n, str) and n and n != self.reserved for n in names)
                and len(set(names)) == len(names)
                and all(hasattr(item[1], "fit") for item in value))

    def __str__(self):
        return (f"None or a list of (name, estimator) pairs with distinct names other than "
                f"{self.reserved!r}")


class NameListConstraint:
    """None or a non-empty list of distinct strings (loss names)."""

    def is_satisfied_by(self, value):
        return value is None or (
            isinstance(value, (list, tuple)) and len(value) > 0
            and all(isinstance(v, str) for v in value) and len(set(value)) == len(value)
        )

    def __str__(self):
        return "None or a non-empty list of distinct loss names"
