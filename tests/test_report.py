"""Aggregation of per-seed reports: paired gains, per-test-set rows and the round table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from skw2s.report import aggregate, id_ood_table, rounds_table, summary_table


def _runs():
    rows = []
    for seed, (single, ens, base, ours, ceil) in enumerate([(0.5, 0.6, 0.55, 0.65, 0.8), (0.4, 0.45, 0.5, 0.5, 0.7)]):
        for test, shift in (("hard", 0.0), ("easy", 0.1)):
            for model, rnd, acc in [("weak_single", 1, single), ("weak_round", 1, single), ("weak_round", 2, ens),
                                    ("weak_ensemble", 2, ens), ("baseline_student", 1, base),
                                    ("ensemble_student", 2, ours), ("ceiling", np.nan, ceil)]:
                rows.append({"run": "r", "seed": seed, "test": test, "model": model, "round": rnd,
                             "accuracy": acc + shift, "token_error": 1 - acc, "pgr": np.nan, "gap": np.nan})
    return pd.DataFrame(rows)


def test_gains_are_paired_per_seed():
    agg = aggregate(_runs())
    gain = agg[(agg.model == "student_gain") & (agg.test == "hard")].iloc[0]
    diffs = np.array([0.65 - 0.55, 0.5 - 0.5])
    assert gain.accuracy_mean == pytest.approx(diffs.mean())
    assert gain.accuracy_sem == pytest.approx(diffs.std(ddof=1) / np.sqrt(2))
    ens = agg[(agg.model == "ensemble_gain") & (agg.test == "hard")].iloc[0]
    assert ens.accuracy_mean == pytest.approx(np.mean([0.1, 0.05]))
    assert ens.token_error_mean == pytest.approx(-np.mean([0.1, 0.05]))
    summary = summary_table(agg)
    assert summary.loc[0, "ours - baseline"].startswith("0.050")
    assert summary.loc[0, "weak_single"].startswith("0.450")  # the hard test set, not the easy one


def test_round_and_id_ood_tables():
    agg = aggregate(_runs())
    rounds = rounds_table(agg)
    assert rounds["round"].tolist() == [1, 2]
    assert rounds.loc[1, "accuracy"].startswith("0.525")
    table = id_ood_table(agg).set_index("model")
    assert table.loc["weak ensemble", "ID (easy)"].startswith("0.625")
    assert table.loc["weak ensemble", "OOD (hard)"].startswith("0.525")


def test_seeds_with_different_ensemble_sizes_make_one_row_per_model():
    runs = _runs()
    late = (runs.seed == 1) & runs.model.isin(["weak_ensemble", "ensemble_student"])
    runs.loc[late, "round"] = 1  # seed 1 stopped boosting after one round
    agg = aggregate(runs)
    hard = agg[agg.test == "hard"]
    assert (hard.model == "weak_ensemble").sum() == 1
    row = hard[hard.model == "weak_ensemble"].iloc[0]
    assert row["round"] == 2 and row.n_seeds == 2
    assert summary_table(agg).loc[0, "weak_ensemble"].startswith("0.525")
