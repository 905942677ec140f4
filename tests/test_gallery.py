"""The gallery examples show what their titles say (opt-in: they take minutes on a CPU).

Run with ``SKW2S_RUN_GALLERY=1 pytest -m gallery tests/test_gallery.py``. Each example also
checks itself and raises when it would not show its point, so the docs build
(``scripts/docs.sh``, which runs every example) fails the same way.
"""

from __future__ import annotations

import os
import runpy
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

pytestmark = [
    pytest.mark.gallery,
    pytest.mark.real_model,
    pytest.mark.skipif(not os.environ.get("SKW2S_RUN_GALLERY"),
                       reason="the gallery examples take minutes: set SKW2S_RUN_GALLERY=1"),
]


def _run(name, tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    return runpy.run_path(str(EXAMPLES / name), run_name="__main__")


def test_the_mixture_example_keeps_at_least_two_experts(tmp_path, monkeypatch):
    ns = _run("plot_mixture_decoding.py", tmp_path, monkeypatch)
    boost = ns["boost"]
    assert len(boost.estimators_) >= 2
    # one point per kept round on each panel
    assert len(ns["mixture_error"]) == len(ns["mixture_acc"]) == len(boost.estimators_)


def test_the_binary_pipeline_example_has_its_ceiling_above_the_weak_learner(tmp_path,
                                                                              monkeypatch):
    ns = _run("plot_binary_pipeline.py", tmp_path, monkeypatch)
    accuracy = ns["accuracy"]
    assert accuracy["ceiling"] > accuracy["weak_single"]
    pgr = ns["rows"]["pgr"]
    assert pgr[["baseline_student", "ensemble_student"]].notna().all()


def test_the_diagnostics_example_shows_both_diagnostics_for_two_ensembles(tmp_path,
                                                                         monkeypatch):
    import numpy as np

    ns = _run("plot_diagnostics.py", tmp_path, monkeypatch)
    ours, uniform, baseline = ns["rows"]
    for side in (ours, uniform):
        assert side["learners"] >= 2 and -1 <= side["error kappa"] <= 1
        assert 0 <= side["student-weak agreement"] <= 1 and np.isfinite(side["PGR"])
    assert np.isnan(baseline["error kappa"])  # one learner: no pair to compare
