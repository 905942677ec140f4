"""Diagnostics beside PGR: error agreement of the weak learners (Cohen's kappa on errors) and
student-weak agreement, from the predictions a run stores."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from skw2s.cli import main
from skw2s.experiment.comparison import diagnostics_table
from skw2s.core.metrics import agreement, error_kappa, mean_error_kappa


def test_error_kappa_is_cohens_kappa_of_the_error_indicators():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    a = np.where(rng.random(400) < 0.3, 1 - y, y)
    b = np.where(rng.random(400) < 0.3, 1 - y, y)  # independent mistakes
    same = a.copy()
    kappa = error_kappa(y, [a, b, same])
    assert kappa.shape == (3, 3) and np.allclose(kappa, kappa.T)
    np.testing.assert_array_equal(np.diag(kappa), 1)
    assert kappa[0, 2] == 1.0
    assert kappa[0, 1] == pytest.approx(cohen_kappa_score(a != y, b != y))
    assert abs(kappa[0, 1]) < 0.15  # independent errors: near chance
    assert mean_error_kappa(y, [a, b, same]) == pytest.approx(
        np.mean([kappa[0, 1], kappa[0, 2], kappa[1, 2]]))
    # kappa corrects for chance: two models that avoid each other's mistakes are negative
    c = np.where(a != y, y, 1 - y)
    assert error_kappa(y, [a, c])[0, 1] < -0.5


def test_error_kappa_degenerate_cases():
    y = np.array([0, 1, 0, 1])
    perfect = y.copy()
    assert np.isnan(error_kappa(y, [perfect, 1 - y])[0, 1])  # an error indicator that never varies
    assert np.isnan(mean_error_kappa(y, [y]))  # one learner: no pair
    assert np.isnan(mean_error_kappa(y, [perfect, perfect]))
    with pytest.raises(ValueError, match="shape of y"):
        error_kappa(y, [y[:3]])
    assert agreement([1, 0, 1], [1, 1, 1]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="different shapes"):
        agreement([1, 0], [1])


def _seed_record(seed, y, members, student, weak, baseline_student, single):
    models = {"ours/weak_single/-": single, "ours/weak_ensemble/-": weak,
              "ours/baseline_student/xent": baseline_student,
              "ours/ensemble_student/xent": student}
    report = [
        {"weak_side": "ours", "model": model, "loss": loss, "round": rnd, "test": "hard",
         "n_test": len(y), "accuracy": acc, "auroc": np.nan, "token_error": np.nan,
         "pgr": pgr, "gap": 0.2}
        for model, loss, rnd, acc, pgr in [
            ("weak_single", None, 1, 0.5, np.nan), ("weak_round", None, 1, 0.5, np.nan),
            ("weak_round", None, 2, 0.55, np.nan), ("weak_ensemble", None, 2, 0.55, np.nan),
            ("baseline_student", "xent", 1, 0.52, 0.1),
            ("ensemble_student", "xent", 2, 0.6 + 0.2 * seed, 0.5 + seed),
            ("ceiling", None, np.nan, 0.7, np.nan)]
    ]
    return {"name": "toy", "seed": seed, "config": {"split_kind": "random"}, "report": report,
            "labels": [{"weak_side": "ours", "n_gold": 3}, {"weak_side": "baseline", "n_gold": 0}],
            "predictions": {"hard": {"y": y.tolist(), "rows": list(range(len(y))),
                                     "models": {k: np.asarray(v).tolist()
                                                for k, v in models.items()},
                                     "members": {"ours": [m.tolist() for m in members]}}}}


def test_diagnostics_table_and_the_report_command(tmp_path, capsys):
    rng = np.random.default_rng(1)
    run = tmp_path / "toy"
    run.mkdir()
    kappas, agreements = [], []
    for seed in (0, 1):
        y = rng.integers(0, 2, 60)
        members = [np.where(rng.random(60) < 0.3, 1 - y, y) for _ in range(3)]
        weak = (np.mean(members, 0) > 0.5).astype(int)
        student = np.where(rng.random(60) < 0.2, 1 - weak, weak)
        record = _seed_record(seed, y, members, student, weak, members[0], members[0])
        (run / f"seed{seed}.json").write_text(json.dumps(record))
        kappas.append(mean_error_kappa(y, members))
        agreements.append(np.mean(student == weak))
    table = diagnostics_table([run])
    ours = table[table.weak_side == "ours"].iloc[0]
    assert ours["seeds"] == 2 and ours["PGR"].startswith("1.00 ±")
    assert ours["error kappa (weak)"].startswith(f"{np.mean(kappas):.2f} ±")
    assert ours["student-weak agreement"].startswith(f"{np.mean(agreements):.3f} ±")
    assert ours["gold labels"] == "3"
    base = table[table.weak_side == "baseline (1 weak)"].iloc[0]
    assert base["error kappa (weak)"] == "–" and base["gold labels"] == "0"
    assert base["student-weak agreement"] == "1.000 ± 0.000"
    assert main(["report", str(run)]) == 0
    out = capsys.readouterr().out
    assert "Diagnostics" in out and "error kappa (weak)" in out
    assert (run / "diagnostics.md").exists()
