"""The names the pipeline's ``report_`` and ``predictions_`` give to weak sides and models."""

from __future__ import annotations

__all__ = ["CASCADE", "GOLD", "MAIN", "MODEL_ORDER"]

MAIN = "ours"
"""The ``weak_side`` name of the ``weak`` estimator in ``report_`` and ``predictions_``."""

GOLD = "ours+gold"
"""The ``weak_side`` name of the labels of ``weak`` with ``gold_fraction`` of them replaced by
gold labels."""

CASCADE = "cascade"
"""The ``weak_side`` name of the last labeller of the ``cascade`` chain."""

MODEL_ORDER = ("weak_single", "weak_ensemble", "baseline_student", "ensemble_student", "ceiling")
"""The ``model`` names of ``report_`` rows, in the order tables show them."""
