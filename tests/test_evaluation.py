"""skw2s.w2s.evaluation: scoring a fitted pipeline on one test set (every model on every
question, each weak side's rounds and disagreement, AUROC, PGR and gap)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import AdaBoostClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.tree import DecisionTreeClassifier

from skw2s.w2s import evaluation
from skw2s.w2s.names import (
    BASELINE_STUDENT,
    CEILING,
    ENSEMBLE_STUDENT,
    MAIN,
    WEAK_ENSEMBLE,
    WEAK_ROUND,
    WEAK_SINGLE,
    prediction_name,
)
from skw2s.w2s.pipeline import WeakToStrongPipeline


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.RandomState(0)
    X = rng.randn(240, 5)
    y = (X[:, 0] + 0.5 * X[:, 1] + 0.3 * rng.randn(240) > 0).astype(int)
    weak = AdaBoostClassifier(DecisionTreeClassifier(max_depth=1), n_estimators=3)
    control = AdaBoostClassifier(DecisionTreeClassifier(max_depth=1), n_estimators=2)
    pipe = WeakToStrongPipeline(weak=weak, strong=LogisticRegression(), random_state=0,
                                controls=[("other", control)]).fit(X, y)
    return pipe, X[pipe.test_indices_], y[pipe.test_indices_]


def test_every_model_on_every_question(fitted):
    pipe, X, y = fitted
    report, predictions, disagreement = evaluation.evaluate(pipe, X, y, test="hard")
    assert set(report.test) == {"hard"} and (report.n_test == len(y)).all()
    models = predictions["models"]
    for side, est in [(MAIN, pipe.weak_), ("other", pipe.controls_["other"])]:
        np.testing.assert_array_equal(models[prediction_name(side, WEAK_ENSEMBLE)],
                                      est.predict(X))
        rounds = report[(report.weak_side == side) & (report.model == WEAK_ROUND)]
        assert rounds["round"].tolist() == list(range(1, len(est.estimators_) + 1))
        assert [np.asarray(m).tolist() for m in predictions["members"][side]] == \
            [e.predict(X).tolist() for e in est.estimators_]
    np.testing.assert_array_equal(models[prediction_name(MAIN, WEAK_SINGLE)],
                                  pipe.weak_.estimators_[0].predict(X))
    np.testing.assert_array_equal(models[prediction_name(MAIN, ENSEMBLE_STUDENT, "xent")],
                                  pipe.student_.predict(X))
    np.testing.assert_array_equal(models[prediction_name(MAIN, BASELINE_STUDENT, "xent")],
                                  pipe.baseline_.predict(X))
    np.testing.assert_array_equal(models[prediction_name(MAIN, CEILING)], pipe.ceiling_.predict(X))
    # accuracy and AUROC of each scored model are those of its predictions and scores
    for row in report[report.model != WEAK_ROUND].itertuples():
        name = prediction_name(row.weak_side, row.model,
                               row.loss if isinstance(row.loss, str) else None)
        assert row.accuracy == pytest.approx(np.mean(models[name] == y))
        assert row.auroc == pytest.approx(roc_auc_score(y, predictions["scores"][name]))
    assert set(disagreement) == {(MAIN, "hard"), ("other", "hard")}


def test_evaluate_agrees_with_the_fitted_report(fitted):
    pipe, X, y = fitted
    report, _, _ = evaluation.evaluate(pipe, X, y, test="hard")
    pd.testing.assert_frame_equal(report, pipe.report_)


def test_disagreement_is_the_mean_pairwise_difference():
    a, b, c = np.array([0, 1, 1, 0]), np.array([0, 0, 1, 0]), np.array([1, 0, 1, 1])
    expected = np.mean([np.mean(a != b), np.mean(a != c), np.mean(b != c)])
    assert evaluation._disagreement([a, b, c]) == pytest.approx(expected)
    assert np.isnan(evaluation._disagreement([a]))


def test_add_pgr_measures_students_against_the_single_weak_learner():
    report = pd.DataFrame({
        "model": [WEAK_SINGLE, WEAK_ENSEMBLE, BASELINE_STUDENT, ENSEMBLE_STUDENT, CEILING],
        "accuracy": [0.6, 0.7, 0.65, 0.8, 0.9],
        "auroc": [0.5, 0.6, np.nan, 0.75, 1.0],
    })
    out = evaluation.add_pgr(report.copy())
    students = out.model.isin([BASELINE_STUDENT, ENSEMBLE_STUDENT])
    np.testing.assert_allclose(out.loc[students, "pgr"], [(0.65 - 0.6) / 0.3, (0.8 - 0.6) / 0.3])
    assert out.loc[~students, "pgr"].isna().all()
    np.testing.assert_allclose(out.gap, 0.3)
    np.testing.assert_allclose(out.gap_auroc, 0.5)
    assert out.loc[out.model == ENSEMBLE_STUDENT, "pgr_auroc"].item() == pytest.approx(0.5)
    # no ceiling: no PGR
    no_ceiling = evaluation.add_pgr(report[report.model != CEILING].copy())
    assert no_ceiling[["pgr", "gap", "pgr_auroc", "gap_auroc"]].isna().all().all()


def test_scikit_learn_ensembles_without_round_predictions():
    rng = np.random.RandomState(1)
    X = rng.randn(60, 3)
    y = (X[:, 0] > 0).astype(int)
    weak = AdaBoostClassifier(DecisionTreeClassifier(max_depth=1), n_estimators=3).fit(X, y)
    out = evaluation._round_predictions(weak, X, binary=True)
    assert len(out["staged"]) == len(out["staged_proba"]) == len(weak.estimators_)
    np.testing.assert_array_equal(out["staged"][-1], weak.predict(X))
    plain = evaluation._round_predictions(LogisticRegression().fit(X, y), X, binary=True)
    assert len(plain["staged"]) == len(plain["staged_proba"]) == 1 and plain["members"] == []
