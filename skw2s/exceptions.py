"""Exceptions of skw2s.

:class:`DivergenceError` is what a fit that diverged raises: a ``ValueError`` (so a caller that
handles bad input handles it too, and ``skw2s run`` prints it as one line) whose message names
the estimator, the stage of a pipeline when there is one, and the hyperparameters to lower.
:class:`FirstLearnerError` is what boosting raises when its first weak learner is too weak to
start.
"""

from __future__ import annotations

__all__ = ["DivergenceError", "FirstLearnerError", "diverged"]


class DivergenceError(ValueError):
    """A training loss or a model's output that is not finite (NaN or infinite).

    Raised at the first non-finite loss of a fit (the step's update is not applied) or when a
    model's weights or outputs are non-finite, so that a diverged model never answers. Each
    layer that catches it on the way up puts its own name in front with :meth:`within`:
    ``"stage student[weak,xent]: LLMClassifier(...) diverged: ..."``.

    Parameters
    ----------
    message : str
        The whole message.
    detail : str, default=None
        What was found, without the context, e.g. ``"the training loss is nan at step 2"``;
        None: the message.

    Attributes
    ----------
    detail : str
        What was found, without the context.
    """

    def __init__(self, message, *, detail=None):
        super().__init__(message)
        self.detail = message if detail is None else detail

    def within(self, where):
        """The same error with ``where`` (an estimator, a stage) put in front of the message."""
        return DivergenceError(f"{where}: {self}", detail=self.detail)


def diverged(error, name, **hyperparameters):
    """The :class:`DivergenceError` an estimator raises when its training diverged.

    Parameters
    ----------
    error : DivergenceError
        The error of the training loop (its ``detail`` says what was found where).
    name : str
        The estimator, e.g. ``"LLMClassifier(model='smollm2-135m', mode='full')"``.
    **hyperparameters
        The hyperparameters to lower, by name, with the values the fit used.

    Returns
    -------
    DivergenceError
        ``"{name} diverged: {detail}. Lower the step size and fit again (lr=..., ...)."``
    """
    given = ", ".join(f"{key}={value!r}" for key, value in hyperparameters.items())
    return DivergenceError(
        f"{name} diverged: {error.detail}. Lower the step size and fit again ({given}).",
        detail=error.detail,
    )


PARAMETER_HINT = "(estimator__n_epochs, estimator__lr)"


class FirstLearnerError(ValueError):
    """The first weak learner is too weak for boosting to start. The message ends with the
    parameters to change, by their Python names (``PARAMETER_HINT``); a pipeline records
    which weak side failed in ``weak_side``, and a config run names its keys instead."""

    weak_side = None

    def for_config(self, section):
        """The message with the config keys of ``section`` (``weak``, ``controls.NAME.weak``)
        in place of the Python names."""
        keys = f"(in the config: {section}.n_epochs, {section}.lr)"
        return str(self).replace(PARAMETER_HINT, keys)
