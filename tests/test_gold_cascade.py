"""WeakToStrongPipeline's labelling budget (``gold_fraction``) and weak -> mid -> strong
cascades, on fast numeric estimators; the tiny-LM run is in test_methods_extended.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import AdaBoostClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from skw2s.w2s.pipeline import CASCADE, GOLD, MAIN, WeakToStrongPipeline


def _data(n=400, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, 5)
    y = (X[:, 0] + 0.5 * X[:, 1] - 0.25 * X[:, 2] + 0.2 * rng.randn(n) > 0).astype(int)
    return X, y


def _pipe(**kw):
    weak = AdaBoostClassifier(DecisionTreeClassifier(max_depth=1), n_estimators=4)
    return WeakToStrongPipeline(weak=weak, strong=LogisticRegression(), random_state=0, **kw)


def _hard_gold(pipe, y):
    return y[pipe.hard_train_indices_]


def test_gold_fraction_zero_is_the_pipeline_without_it():
    X, y = _data()
    plain = _pipe().fit(X, y)
    zero = _pipe(gold_fraction=0.0).fit(X, y)
    pd.testing.assert_frame_equal(plain.report_, zero.report_)
    assert GOLD not in set(zero.report_.weak_side) and len(zero.gold_indices_) == 0
    assert list(zero.labels_.n_gold) == [0, 0]
    # a gold side changes nothing else in the run: its rows are added, the others stay
    some = _pipe(gold_fraction=0.3).fit(X, y)
    rest = some.report_[some.report_.weak_side != GOLD].reset_index(drop=True)
    pd.testing.assert_frame_equal(rest, plain.report_)
    for name, pred in plain.predictions_["hard"]["models"].items():
        np.testing.assert_array_equal(some.predictions_["hard"]["models"][name], pred)


def test_gold_fraction_replaces_a_seeded_share_of_the_labels():
    X, y = _data()
    pipe = _pipe(gold_fraction=0.25).fit(X, y)
    n = len(pipe.hard_train_indices_)
    rows = pipe.gold_indices_
    assert len(rows) == round(0.25 * n) and np.all(np.diff(rows) > 0)
    labels = pipe.labels_.set_index("weak_side")
    assert labels.loc[GOLD, "n_gold"] == len(rows) and labels.loc[MAIN, "n_gold"] == 0
    gold = _hard_gold(pipe, y)
    student = pipe.students_[(GOLD, "xent")]
    assert student.coef_.shape == (1, 5)
    row = pipe.report_[(pipe.report_.weak_side == GOLD)
                       & (pipe.report_.model == "ensemble_student")]
    assert len(row) == 1 and np.isfinite(row.pgr.iloc[0])
    # the gold labels' accuracy is at least the pseudo-labels' (gold rows are right)
    assert labels.loc[GOLD, "accuracy"] >= labels.loc[MAIN, "accuracy"]
    expected = pipe.pseudo_labels_.copy()
    expected[rows] = gold[rows]
    assert labels.loc[GOLD, "accuracy"] == pytest.approx(np.mean(expected == gold))
    # the rows depend on the seed and n only: a larger budget holds the smaller one's rows
    larger = _pipe(gold_fraction=0.5).fit(X, y)
    assert set(rows) <= set(larger.gold_indices_)
    again = _pipe(gold_fraction=0.25).fit(X, y)
    np.testing.assert_array_equal(again.gold_indices_, rows)


def test_gold_fraction_one_gives_the_ceilings_labels():
    X, y = _data()
    pipe = _pipe(gold_fraction=1.0).fit(X, y)
    assert len(pipe.gold_indices_) == len(pipe.hard_train_indices_)
    student = pipe.students_[(GOLD, "xent")]
    # same labels, same seed, same rows: the ceiling itself
    np.testing.assert_array_equal(student.coef_, pipe.ceiling_.coef_)
    report = pipe.report_.set_index(["weak_side", "model"])
    assert report.loc[(GOLD, "ensemble_student"), "accuracy"] == report.loc[
        (MAIN, "ceiling"), "accuracy"]


def test_gold_rows_get_one_hot_soft_labels_and_full_confidence():
    pipe = _pipe(gold_fraction=0.5)
    proba = np.full((6, 2), 0.5)
    labels = {"hard": np.array(["a"] * 6), "proba": proba, "confidence": np.full(6, 0.5)}
    y_hard = np.array(["a", "b", "b", "a", "b", "b"])
    out = pipe._with_gold(labels, y_hard, seed=0, classes=np.array(["a", "b"]))
    rows = out["gold"]
    assert len(rows) == 3
    np.testing.assert_array_equal(out["hard"][rows], y_hard[rows])
    np.testing.assert_array_equal(out["proba"][rows].argmax(1), (y_hard[rows] == "b").astype(int))
    np.testing.assert_array_equal(out["proba"][rows].max(1), 1.0)
    assert np.all(out["confidence"][rows] == 1) and np.all(labels["proba"] == 0.5)  # no aliasing


def _out_of_fold(make, X_hard, labels, folds=2):
    """A cascade step's labels as the pipeline defines them: each seeded fold labelled by a
    copy of the step trained on the other folds (random_state=0: the strong seed)."""
    from skw2s.core.random import cascade_fold_rng, stage_seeds

    n = len(X_hard)
    fold = cascade_fold_rng(stage_seeds(0)["strong"]).permutation(n) % folds
    out = np.empty(n, dtype=labels.dtype)
    for f in range(folds):
        held = fold == f
        out[held] = make().fit(X_hard[~held], labels[~held]).predict(X_hard[held])
    return out


def test_cascade_chains_students_and_reports_each_step():
    X, y = _data()
    mid = [LogisticRegression(C=0.3), LogisticRegression(C=3.0)]
    pipe = _pipe(cascade=mid).fit(X, y)
    assert len(pipe.cascade_steps_) == 2 and pipe.cascade_steps_[0].C == 0.3
    steps = pipe.report_[pipe.report_.model == "cascade_step"]
    assert list(steps["round"]) == [1, 2] and set(steps.weak_side) == {CASCADE}
    assert steps.pgr.notna().all()
    Xt, yt = X[pipe.test_indices_], y[pipe.test_indices_]
    assert steps.accuracy.iloc[0] == pytest.approx(pipe.cascade_steps_[0].score(Xt, yt))
    final = pipe.students_[(CASCADE, "xent")]
    assert f"{CASCADE}/ensemble_student/xent" in pipe.predictions_["hard"]["models"]
    # each step's labels are out of fold; the reported step trains on all rows
    X_hard, y_hard = X[pipe.hard_train_indices_], y[pipe.hard_train_indices_]
    first = _out_of_fold(lambda: LogisticRegression(C=0.3), X_hard, pipe.pseudo_labels_)
    second = _out_of_fold(lambda: LogisticRegression(C=3.0), X_hard, first)
    np.testing.assert_allclose(final.coef_, LogisticRegression().fit(X_hard, second).coef_)
    np.testing.assert_allclose(pipe.cascade_steps_[1].coef_,
                               LogisticRegression(C=3.0).fit(X_hard, first).coef_)
    labels = pipe.labels_.set_index("weak_side")
    assert labels.loc[CASCADE, "accuracy"] == pytest.approx(np.mean(second == y_hard))


def test_a_step_that_fits_its_labels_still_relabels_the_rows():
    # An unpruned tree reproduces its training labels: labelling the rows it trained on, the
    # cascade gave back the weak side's labels, and its students were the weak side's
    from sklearn.ensemble import BaggingClassifier
    from sklearn.neighbors import KNeighborsClassifier

    X, y = _data()
    weak = BaggingClassifier(KNeighborsClassifier(n_neighbors=1), n_estimators=3, random_state=0)
    pipe = WeakToStrongPipeline(weak=weak, strong=LogisticRegression(), random_state=0,
                                cascade=[DecisionTreeClassifier(random_state=0)]).fit(X, y)
    from skw2s.core.random import stage_seeds

    X_hard, seed = X[pipe.hard_train_indices_], stage_seeds(0)["strong"]  # the strong models'
    assert np.array_equal(DecisionTreeClassifier(random_state=seed).fit(
        X_hard, pipe.pseudo_labels_).predict(X_hard), pipe.pseudo_labels_)
    labels = _out_of_fold(lambda: DecisionTreeClassifier(random_state=seed), X_hard,
                          pipe.pseudo_labels_)
    assert 0 < np.mean(labels != pipe.pseudo_labels_) < 0.5
    final = pipe.students_[(CASCADE, "xent")]
    np.testing.assert_allclose(final.coef_, LogisticRegression().fit(X_hard, labels).coef_)
    assert not np.allclose(final.coef_, pipe.students_[("ours", "xent")].coef_)


def test_cascade_folds_sets_the_folds_of_the_out_of_fold_labels():
    from skw2s.w2s.pipeline import CASCADE_FOLDS

    X, y = _data()
    step = LogisticRegression(C=0.3)
    default = _pipe(cascade=[step]).fit(X, y)
    assert CASCADE_FOLDS == 2 and default.get_params()["cascade_folds"] == 2
    pd.testing.assert_frame_equal(_pipe(cascade=[step], cascade_folds=2).fit(X, y).report_,
                                  default.report_)
    three = _pipe(cascade=[step], cascade_folds=3).fit(X, y)
    X_hard = X[three.hard_train_indices_]
    labels = _out_of_fold(lambda: LogisticRegression(C=0.3), X_hard, three.pseudo_labels_, 3)
    two = _out_of_fold(lambda: LogisticRegression(C=0.3), X_hard, three.pseudo_labels_, 2)
    assert np.any(labels != two)  # the folds matter, so the test sees which were used
    np.testing.assert_allclose(three.students_[(CASCADE, "xent")].coef_,
                               LogisticRegression().fit(X_hard, labels).coef_)
    stages = [record["stage"] for record in three.history_]
    assert [s for s in stages if s.startswith("cascade[1]/")] == [
        "cascade[1]/fold1", "cascade[1]/fold2", "cascade[1]/fold3"]
    assert len(stages) == three._n_stages()  # the progress bar's total counts the folds
    # the steps reported and everything outside the cascade are the 2-fold run's
    same = default.report_.weak_side != CASCADE
    pd.testing.assert_frame_equal(three.report_[same], default.report_[same])


@pytest.mark.parametrize("kwargs, match", [
    ({"controls": [("cascade", AdaBoostClassifier(n_estimators=2))]}, "reserved"),
    ({"cascade": [object()]}, "Step 1 of cascade"),
    ({"cascade": LogisticRegression()}, "cascade"),
    ({"gold_fraction": 1.5}, "gold_fraction"),
    ({"cascade": [LogisticRegression()], "cascade_folds": 1}, "cascade_folds"),
    ({"cascade": [LogisticRegression()], "cascade_folds": 2.0}, "cascade_folds"),
    ({"cascade": [LogisticRegression()], "cascade_folds": 1000}, r"cascade_folds=1000 is more"),
])
def test_bad_gold_and_cascade_parameters(kwargs, match):
    X, y = _data(60)
    with pytest.raises(ValueError, match=match):
        _pipe(**kwargs).fit(X, y)


def test_a_bad_cascade_parameter_fails_before_the_weak_side_trains(tiny_lm):
    # The cascade's models train after the weak side: their parameters are checked with the
    # others', before anything trains (the weak side here would fail loudly if it trained).
    from skw2s import LLMClassifier

    class Untrainable(DecisionTreeClassifier):
        def fit(self, X, y, sample_weight=None):
            raise AssertionError("the weak side trained before the cascade was checked")

    X, y = _data(60)
    bad = LLMClassifier(tiny_lm, mode="head", lr=-1.0)
    pipe = WeakToStrongPipeline(weak=Untrainable(), strong=LogisticRegression(),
                                cascade=[LogisticRegression(), bad], random_state=0)
    with pytest.raises(ValueError, match=r"^cascade step 2: The 'lr' parameter of LLMClassifier"):
        pipe.fit(X, y)
