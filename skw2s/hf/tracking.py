"""Following training runs: run names, loss curves and experiment trackers.

- **Run names.** :func:`training_run` names the training runs started inside it; blocks nest
  and their names join with ``/``: the pipeline names each stage (``"weak[ours]"``,
  ``"student[ours,xent]"``, ``"ceiling"``), the ensembles each round (``"round2"``), so the
  second weak learner of the main side trains as ``"weak[ours]/round2"``. Outside any block
  a run takes the name its caller gives (the estimators give their class name). The name is
  the Trainer's ``run_name`` (MLflow's and wandb's run name) and TensorBoard's run folder.
- **Loss curves.** Every training run records its loss at each step, with or without a
  tracker; :func:`loss_curve` shrinks the record to at most :data:`MAX_POINTS` points (means
  of consecutive steps), which :func:`skw2s.hf.efficiency.collect_training_stats` blocks
  collect (``TrainingStats.loss_curves``) and the pipeline's ``history_`` keeps per stage.
- **Trackers.** ``report_to`` (the estimators' parameter, as the Trainer's) sends the
  Trainer's logs (loss, learning rate, gradient norm; every ``logging_steps`` steps) to
  ``"mlflow"``, ``"wandb"``, ``"tensorboard"``... ``"none"`` (the default) sends nothing and
  the Trainer logs nothing.

Nothing here imports transformers at import time.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import os
import re

__all__ = [
    "MAX_POINTS",
    "TRACKING_DEFAULTS",
    "current_run_name",
    "loss_curve",
    "reports",
    "tensorboard_dir",
    "tensorboard_root",
    "training_run",
    "untracked",
]

MAX_POINTS = 50
"""The most ``(step, loss)`` points a run's saved loss curve keeps."""

_RUN_PARTS: contextvars.ContextVar[tuple] = contextvars.ContextVar("skw2s_run_parts", default=())


@contextlib.contextmanager
def training_run(name, *, whole=False):
    """Name the training runs started inside the block ``name`` (nested blocks join with
    ``/``: ``"weak[ours]"`` then ``"round2"`` is ``"weak[ours]/round2"``). ``whole``: ``name``
    is the whole name, not joined to the open blocks' (a worker process or thread, which does
    not see them, gets the name its parent computed)."""
    parts = (str(name),) if whole else (*_RUN_PARTS.get(), str(name))
    token = _RUN_PARTS.set(parts)
    try:
        yield
    finally:
        _RUN_PARTS.reset(token)


def current_run_name(default=None):
    """The name of a training run started here: the open :func:`training_run` blocks' names
    joined with ``/``, or ``default`` outside any block."""
    parts = _RUN_PARTS.get()
    return "/".join(parts) if parts else default


def reports(report_to):
    """Whether ``report_to`` (a Trainer ``report_to`` value) names any tracker."""
    if report_to is None:
        return False
    names = [report_to] if isinstance(report_to, str) else list(report_to)
    return any(str(n) != "none" for n in names)


def logging_interval(logging_steps, total_steps):
    """The Trainer's ``logging_steps``: the given one, or (None) about :data:`MAX_POINTS`
    logs over a run of ``total_steps`` steps."""
    if logging_steps is not None:
        return int(logging_steps)
    return max(1, math.ceil(total_steps / MAX_POINTS))


def loss_curve(losses, max_points=MAX_POINTS):
    """At most ``max_points`` ``[step, loss]`` points of the per-step ``losses`` (step 1 first).

    Each point is the mean loss of consecutive steps, at the last of them (so a short run
    keeps every step); losses keep 5 significant digits.
    """
    n = len(losses)
    if n == 0:
        return []
    size = max(1, math.ceil(n / max_points))
    points = []
    for start in range(0, n, size):
        chunk = losses[start : start + size]
        points.append([start + len(chunk), float(f"{sum(chunk) / len(chunk):.5g}")])
    return points


_TENSORBOARD_ROOT: contextvars.ContextVar = contextvars.ContextVar("skw2s_tb_root", default=None)


@contextlib.contextmanager
def tensorboard_root(path):
    """TensorBoard's folder inside the block, unless ``$TENSORBOARD_LOGGING_DIR`` is set (``skw2s
    run`` uses ``OUTPUT_DIR/tensorboard``)."""
    token = _TENSORBOARD_ROOT.set(str(path))
    try:
        yield
    finally:
        _TENSORBOARD_ROOT.reset(token)


def tensorboard_dir(run_name):
    """TensorBoard's folder for the run ``run_name``: under ``$TENSORBOARD_LOGGING_DIR``, else
    the :func:`tensorboard_root` of the block, else ``runs`` (as TensorBoard's own default),
    one folder per run name (``/`` nests folders; characters other than letters, digits and
    ``[],._=-`` become ``_``)."""
    base = os.environ.get("TENSORBOARD_LOGGING_DIR") or _TENSORBOARD_ROOT.get() or "runs"
    parts = [re.sub(r"[^\w\[\],.=-]", "_", p) or "_" for p in str(run_name).split("/")]
    return os.path.join(os.path.expanduser(base), *parts)


TRACKING_DEFAULTS = {"report_to": "none", "logging_steps": None}
"""The estimators' tracking parameters and their defaults."""


def drop_tracking_defaults(state):
    """``state`` (an estimator's ``__getstate__`` dict) without the tracking parameters that
    hold their defaults: an estimator that does not track pickles, and hashes into cache keys,
    as it did before these parameters existed."""
    if not any(name in state and state[name] == default
               for name, default in TRACKING_DEFAULTS.items()):
        return state
    return {k: v for k, v in state.items()
            if not (k in TRACKING_DEFAULTS and v == TRACKING_DEFAULTS[k])}


def restore_tracking_defaults(state):
    """``state`` with the tracking parameters it lacks set to their defaults (the inverse of
    :func:`drop_tracking_defaults`; also reads estimators pickled before they existed)."""
    return {**TRACKING_DEFAULTS, **state}


def untracked(obj):
    """``obj`` as cache keys see it: an estimator whose tracking parameters (its own and its
    nested estimators', :data:`TRACKING_DEFAULTS`) are not all at their defaults is cloned
    with them reset; anything else is returned as it is. So a splitter whose learner reports
    to a tracker keys its split as the same splitter that does not."""
    if not hasattr(obj, "get_params"):
        return obj
    reset = {}
    for name, value in obj.get_params(deep=True).items():
        base = name.rsplit("__", 1)[-1]
        if base in TRACKING_DEFAULTS and value != TRACKING_DEFAULTS[base]:
            reset[name] = TRACKING_DEFAULTS[base]
    if not reset:
        return obj
    from sklearn.base import clone

    return clone(obj).set_params(**reset)
