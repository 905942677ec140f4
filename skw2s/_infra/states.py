"""Snapshot each object's state once per serialization (skops asks for it twice).

Pure Python (a context variable); :mod:`skw2s.hf.serialization` wraps the estimators'
``__getstate__`` with :func:`state_once` and the store serializes inside :func:`states_once`.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools

__all__ = ["state_once", "states_once"]

# id(obj) -> (obj, state) while a states_once block runs; obj is held so its id stays unique
_STATES = contextvars.ContextVar("skw2s_states", default=None)


@contextlib.contextmanager
def states_once():
    """Within the block, each object's wrapped ``__getstate__`` is computed once.

    The snapshots are dropped when the block ends, so a later pickle sees the object as it is
    then. Use it around one serialization of objects that do not change during it.
    """
    token = _STATES.set({})
    try:
        yield
    finally:
        _STATES.reset(token)


def state_once(getstate):
    """Wrap a ``__getstate__`` so that, inside :func:`states_once`, it runs once per object."""

    @functools.wraps(getstate)
    def wrapper(self):
        memo = _STATES.get()
        if memo is None:
            return getstate(self)
        if id(self) not in memo:
            memo[id(self)] = (self, getstate(self))
        return memo[id(self)][1]

    return wrapper
