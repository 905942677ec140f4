"""The names the pipeline's ``report_``, ``labels_`` and ``predictions_`` give to weak sides and
models: the one place they are spelled."""

from __future__ import annotations

__all__ = [
    "BASELINE", "BASELINE_STUDENT", "CASCADE", "CASCADE_STEP", "CEILING", "ENSEMBLE_STUDENT",
    "GOLD", "MAIN", "MODEL_ORDER", "STUDENT_MODELS", "WEAK_ENSEMBLE", "WEAK_ROUND", "WEAK_SINGLE",
    "prediction_name",
]

# -- weak sides (the ``weak_side`` column) ---------------------------------------------------
MAIN = "ours"
"""The ``weak_side`` name of the ``weak`` estimator in ``report_`` and ``predictions_``."""

GOLD = "ours+gold"
"""The ``weak_side`` name of the labels of ``weak`` with ``gold_fraction`` of them replaced by
gold labels."""

CASCADE = "cascade"
"""The ``weak_side`` name of the last labeller of the ``cascade`` chain."""

BASELINE = "baseline"
"""The ``labels_`` row (and stage) of the first weak learner's labels, which the baseline
students train on."""

# -- models (the ``model`` column) -----------------------------------------------------------
WEAK_SINGLE = "weak_single"
"""The first learner of ``weak`` alone (round 1): PGR's weak reference."""

WEAK_ROUND = "weak_round"
"""A weak side's ensemble after each round (``round`` says which)."""

WEAK_ENSEMBLE = "weak_ensemble"
"""A weak side's whole ensemble."""

BASELINE_STUDENT = "baseline_student"
"""The strong model trained on the first weak learner's labels."""

ENSEMBLE_STUDENT = "ensemble_student"
"""The strong model trained on a weak side's labels (a student)."""

CASCADE_STEP = "cascade_step"
"""An intermediate model of ``cascade`` (``round`` is its place in the chain)."""

CEILING = "ceiling"
"""The strong model trained on the gold labels."""

STUDENT_MODELS = (BASELINE_STUDENT, ENSEMBLE_STUDENT, CASCADE_STEP)
"""The models trained on labels, whose PGR the report gives."""

MODEL_ORDER = (WEAK_SINGLE, WEAK_ENSEMBLE, BASELINE_STUDENT, ENSEMBLE_STUDENT, CEILING)
"""The ``model`` names of ``report_`` rows, in the order tables show them."""


def prediction_name(side, model, loss=None):
    """The key of a model's labels in ``predictions_[test]["models"]``:
    ``"{weak_side}/{model}/{loss}"``, ``-`` for no loss."""
    return f"{side}/{model}/{loss or '-'}"
