"""WeakToStrongPipeline on fast numeric estimators (the protocol) and, in
test_pipeline_llm.py, on tiny LMs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from sklearn.ensemble import AdaBoostClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from skw2s.w2s.difficulty import DifficultySplitter
from skw2s.w2s.pipeline import WeakToStrongPipeline


def _data(n=400, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, 5)
    y = (X[:, 0] + 0.5 * X[:, 1] - 0.25 * X[:, 2] + 0.2 * rng.randn(n) > 0).astype(int)
    return X, y


def _pipe(**kw):
    weak = AdaBoostClassifier(DecisionTreeClassifier(max_depth=1), n_estimators=4)
    return WeakToStrongPipeline(weak=weak, strong=LogisticRegression(), random_state=0, **kw)


def test_protocol_and_report():
    X, y = _data()
    pipe = _pipe(test_size=0.4).fit(X, y)
    n = len(X)
    parts = [pipe.easy_indices_, pipe.hard_train_indices_, pipe.test_indices_]
    assert sum(map(len, parts)) == n
    assert len(set(np.concatenate(parts))) == n
    assert len(pipe.easy_indices_) == n // 2 and len(pipe.test_indices_) == 80
    assert len(pipe.pseudo_labels_) == len(pipe.hard_train_indices_)
    report = pipe.report_
    assert list(report.columns) == ["weak_side", "model", "loss", "test", "n_test", "round",
                                    "accuracy", "auroc", "token_error", "pgr", "gap",
                                    "pgr_auroc", "gap_auroc"]
    assert set(report.test) == {"hard"}
    assert report.token_error.isna().all()  # classifiers: no tokens
    assert len(pipe.id_test_indices_) == 0
    models = report.model.tolist()
    assert models.count("weak_round") == len(pipe.weak_.estimators_)
    for name in ["weak_single", "weak_ensemble", "baseline_student", "ensemble_student", "ceiling"]:
        assert name in models
    acc = report.set_index("model").accuracy
    Xt, yt = X[pipe.test_indices_], y[pipe.test_indices_]
    assert acc["ensemble_student"] == pytest.approx(pipe.student_.score(Xt, yt))
    assert acc["ceiling"] == pytest.approx(pipe.ceiling_.score(Xt, yt))
    assert pipe.score(Xt, yt) == acc["ensemble_student"]
    # weak rounds: the last staged score is the ensemble's
    rounds = report[report.model == "weak_round"].accuracy.to_numpy()
    assert rounds[-1] == pytest.approx(acc["weak_ensemble"])
    # PGR and gap are consistent with the accuracies
    gap = acc["ceiling"] - acc["weak_single"]
    row = report.set_index("model").loc["ensemble_student"]
    assert row.gap == pytest.approx(gap)
    assert row.pgr == pytest.approx((acc["ensemble_student"] - acc["weak_single"]) / gap)
    # the baseline learned from the first weak learner's labels
    np.testing.assert_array_equal(
        pipe.baseline_labels_, pipe.weak_.estimators_[0].predict(X[pipe.hard_train_indices_])
    )


def test_in_distribution_test_rows_come_from_the_easy_side():
    X, y = _data(200)
    splitter = DifficultySplitter(LogisticRegression(), n_splits=3, random_state=0)
    pipe = _pipe(splitter=splitter, id_test_size=0.2).fit(X, y)
    parts = [pipe.easy_indices_, pipe.id_test_indices_, pipe.hard_train_indices_,
             pipe.test_indices_]
    assert sum(map(len, parts)) == len(X) == len(set(np.concatenate(parts)))
    assert len(pipe.id_test_indices_) == 20 and len(pipe.easy_indices_) == 80
    d = pipe.splitter_.difficulty_
    hard = np.concatenate([pipe.hard_train_indices_, pipe.test_indices_])
    assert d[pipe.id_test_indices_].max() <= d[hard].min()
    report = pipe.report_
    assert set(report.test) == {"hard", "easy"}
    easy = report[report.test == "easy"].set_index("model")
    Xi, yi = X[pipe.id_test_indices_], y[pipe.id_test_indices_]
    assert easy.accuracy["weak_ensemble"] == pytest.approx(pipe.weak_.score(Xi, yi))
    assert easy.accuracy["ensemble_student"] == pytest.approx(pipe.student_.score(Xi, yi))
    gap = easy.accuracy["ceiling"] - easy.accuracy["weak_single"]
    assert easy.gap["ensemble_student"] == pytest.approx(gap)
    # the weak side never trained on the held-out easy rows
    assert not set(pipe.id_test_indices_) & set(pipe.easy_indices_)


def test_stages_are_shared_across_runs_that_differ_in_one_part(tmp_path):
    X, y = _data(160)
    _pipe(memory=str(tmp_path)).fit(X, y)
    other_weak = AdaBoostClassifier(DecisionTreeClassifier(max_depth=2), n_estimators=3)
    ablation = _pipe(memory=str(tmp_path)).set_params(weak=other_weak).fit(X, y)
    cached = {h["stage"]: h["cached"] for h in ablation.history_}
    assert cached == {"split": True, "weak[ours]": False, "labels[ours]": False,
                      "labels[baseline]": False, "student[ours,xent]": False,
                      "baseline[xent]": False, "ceiling": True}
    other_strong = _pipe(memory=str(tmp_path)).set_params(strong=LogisticRegression(C=0.1))
    other_strong.fit(X, y)
    cached = {h["stage"]: h["cached"] for h in other_strong.history_}
    assert cached == {"split": True, "weak[ours]": True, "labels[ours]": True,
                      "labels[baseline]": True, "student[ours,xent]": False,
                      "baseline[xent]": False, "ceiling": False}


def test_difficulty_split_puts_easy_rows_on_weak_side():
    X, y = _data(200)
    splitter = DifficultySplitter(LogisticRegression(), n_splits=3, random_state=0)
    pipe = _pipe(splitter=splitter).fit(X, y)
    d = pipe.splitter_.difficulty_
    hard = np.concatenate([pipe.hard_train_indices_, pipe.test_indices_])
    assert d[pipe.easy_indices_].max() <= d[hard].min()


def _grade_column(X):
    return X[:, 4]


def test_external_test_set_is_split_at_a_tied_threshold_like_the_pool():
    # a coarse grade in column 4: the pool's median falls inside grade 1, and 2/3 of the
    # pool's grade-1 rows go hard, so about 2/3 of the test set's grade-1 rows must too
    X, y = _data(300)
    X[:, 4] = np.repeat([0.0, 1.0, 2.0], [100, 150, 50])
    X_test, y_test = _data(600, seed=1)
    X_test[:, 4] = np.repeat([0.0, 1.0, 2.0], [100, 400, 100])
    splitter = DifficultySplitter(difficulty=_grade_column, random_state=0)
    pipe = _pipe(splitter=splitter).fit(X, y, X_test=X_test, y_test=y_test)
    assert pipe.splitter_.threshold_ == 1.0
    assert pipe.splitter_.tie_hard_fraction_ == pytest.approx(100 / 150)
    rows = pipe.predictions_["hard"]["rows"]
    grade = X_test[rows, 4]
    assert (grade > 0).all() and (grade == 2).sum() == 100
    assert abs((grade == 1).sum() / 400 - 2 / 3) < 0.08  # binomial sd about 0.024
    assert pipe.report_.set_index("model").n_test["ceiling"] == len(rows)
    # each weak learner's own answers are kept, and the disagreement is computed from them
    members = pipe.predictions_["hard"]["members"]["ours"]
    assert len(members) == len(pipe.weak_.estimators_)
    for member, est in zip(members, pipe.weak_.estimators_):
        np.testing.assert_array_equal(member, est.predict(X_test[rows]))
    pairs = [np.mean(a != b) for i, a in enumerate(members) for b in members[i + 1:]]
    assert pipe.weak_disagreement_[("ours", "hard")] == pytest.approx(np.mean(pairs))


def test_without_baseline_and_ceiling():
    X, y = _data(100)
    pipe = _pipe(baseline=False, ceiling=False).fit(X, y)
    assert pipe.baseline_ is None and pipe.ceiling_ is None
    assert pipe.report_.pgr.isna().all()
    assert "baseline_student" not in pipe.report_.model.tolist()


def test_memory_reuses_stages(tmp_path):
    X, y = _data(120)
    first = _pipe(memory=str(tmp_path)).fit(X, y)
    assert not any(h["cached"] for h in first.history_)
    second = _pipe(memory=str(tmp_path)).fit(X, y)
    assert all(h["cached"] for h in second.history_)
    assert second.report_.equals(first.report_)
    # other data: nothing is reused
    third = _pipe(memory=str(tmp_path)).fit(X[:100], y[:100])
    assert not any(h["cached"] for h in third.history_)


def test_corrupted_stage_is_recomputed(tmp_path):
    X, y = _data(120)
    first = _pipe(memory=str(tmp_path)).fit(X, y)
    entries = sorted((tmp_path / "pipeline").glob("*.skops"))
    assert len(entries) == 7  # split, weak, its labels, baseline labels, 2 students, ceiling
    for entry in entries:
        data = bytearray(entry.read_bytes())
        data[-5] ^= 0xFF
        entry.write_bytes(bytes(data))
    second = _pipe(memory=str(tmp_path)).fit(X, y)
    assert not any(h["cached"] for h in second.history_)
    assert second.report_.equals(first.report_)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"weak": None}, "needs a 'weak' estimator"),
        ({"strong": "logreg"}, "'strong' parameter of WeakToStrongPipeline must be an object "
                               "implementing 'fit' or None"),
        ({"strong": None}, "needs a 'strong' estimator"),
        ({"label_fraction": 0.0}, "'label_fraction' parameter"),
        ({"controls": [("ours", AdaBoostClassifier())]}, "'controls' parameter"),
        ({"splitter": "by-length"}, "'splitter' parameter"),
        ({"test_size": 0.0}, "'test_size' parameter"),
        ({"test_size": 1000}, "leaves the hard training side empty"),
        ({"id_test_size": 1.5}, "'id_test_size' parameter"),
        ({"id_test_size": 500}, "leaves the easy training side empty"),
    ],
)
def test_bad_parameters(kwargs, match):
    X, y = _data(40)
    params = dict(
        weak=AdaBoostClassifier(n_estimators=2), strong=LogisticRegression(), random_state=0
    )
    params.update(kwargs)
    with pytest.raises(ValueError, match=match):
        WeakToStrongPipeline(**params).fit(X, y)


def test_empty_hard_side_message():
    X, y = _data(40)
    splitter = DifficultySplitter(difficulty=np.arange(40), easy_fraction=0.99)
    with pytest.raises(ValueError, match="hard side empty"):
        _pipe(splitter=splitter).fit(X, y)


def test_strong_must_read_weak_labels():
    class Generator(LogisticRegression):
        def generate(self, X):  # pragma: no cover - only its presence matters
            return X

    X, y = _data(40)
    with pytest.raises(ValueError, match="cannot read the labels"):
        WeakToStrongPipeline(weak=AdaBoostClassifier(), strong=Generator()).fit(X, y)


KILL_SCRIPT = textwrap.dedent(
    """
    import json, os, signal, sys, time
    import numpy as np
    from sklearn.ensemble import AdaBoostClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier
    from skw2s.w2s.pipeline import WeakToStrongPipeline

    class DyingLogisticRegression(LogisticRegression):
        def fit(self, X, y):
            flag = os.environ.get("DIE_ONCE")
            if flag and not os.path.exists(flag):
                open(flag, "w").close()
                os.kill(os.getpid(), signal.SIGKILL)
            return super().fit(X, y)

    rng = np.random.RandomState(0)
    X = rng.randn(200, 4)
    y = (X[:, 0] + 0.3 * rng.randn(200) > 0).astype(int)
    pipe = WeakToStrongPipeline(
        weak=AdaBoostClassifier(DecisionTreeClassifier(max_depth=1), n_estimators=3),
        strong=DyingLogisticRegression(), random_state=0, memory=sys.argv[1]).fit(X, y)
    json.dump({"report": pipe.report_.to_dict("list"), "history": pipe.history_},
              open(sys.argv[2], "w"))
    """
)


def test_resume_after_kill(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT)
    env = dict(os.environ, DIE_ONCE=str(tmp_path / "died"))
    memory, out = tmp_path / "memory", tmp_path / "out.json"
    killed = subprocess.run([sys.executable, str(script), str(memory), str(out)], env=env)
    assert killed.returncode == -9 and not out.exists()
    resumed = subprocess.run([sys.executable, str(script), str(memory), str(out)], env=env)
    assert resumed.returncode == 0
    result = json.loads(out.read_text())
    cached = {h["stage"]: h["cached"] for h in result["history"]}
    assert cached["split"] and cached["weak[ours]"] and cached["labels[ours]"]
    assert not cached["student[ours,xent]"]
    fresh = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "fresh"), str(tmp_path / "fresh.json")]
    )
    assert fresh.returncode == 0
    assert json.loads((tmp_path / "fresh.json").read_text())["report"] == result["report"]


def test_scikit_learn_students_with_a_loss_parameter_are_accepted():
    # The early parameter check validates skw2s estimators only: scikit-learn's own keep
    # constraints in their own format (it raised AttributeError on SGDClassifier's loss).
    import warnings

    from sklearn.linear_model import LogisticRegression, SGDClassifier
    from sklearn.tree import DecisionTreeClassifier

    from skw2s import LLMAdaBoostClassifier

    rng = np.random.RandomState(0)
    X = rng.randn(120, 4)
    y = (X[:, 0] > 0).astype(int)
    for strong in (SGDClassifier(loss="log_loss", random_state=0), LogisticRegression()):
        weak = LLMAdaBoostClassifier(DecisionTreeClassifier(max_depth=1), n_estimators=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pipe = WeakToStrongPipeline(weak, strong, random_state=0).fit(X, y)
        assert "ceiling" in set(pipe.report_.model)


# -- stages: their store keys and refitting ----------------------------------------------------
def _recorded_keys(monkeypatch):
    """The keys ``fit`` asks the store for, in stage order (a list filled while it runs)."""
    from skw2s._infra import cache

    keys, load = [], cache.Store.load
    monkeypatch.setattr(cache.Store, "load",
                        lambda self, ns, key, **kw: keys.append(key) or load(self, ns, key, **kw))
    return keys


def _old_recipes(pipe, X, y):
    """The stage keys as the inline recipes of fit wrote them before the stages had names
    (random split, no local checkpoints): the stored entries of older runs still hit if
    the stages' keys equal these."""
    from skw2s._infra.cache import fingerprint
    from skw2s._infra.validation import resolve_seed, spawn_seed

    def free(est):
        return sorted((k, v) for k, v in est.get_params(deep=True).items()
                      if k != "verbose" and not k.endswith("__verbose")
                      and not hasattr(v, "get_params"))

    seed = resolve_seed(pipe.random_state)
    rng = np.random.default_rng([seed, 2026])
    seeds = {"split": spawn_seed(rng), "weak": spawn_seed(rng), "strong": spawn_seed(rng)}
    split = fingerprint("WeakToStrongPipeline", "split-v2", pipe.splitter, pipe.test_size,
                        pipe.id_test_size, seed, X, y, None, None)
    keys = {"split": split}
    for name, est in [("ours", pipe.weak), *(pipe.controls or [])]:
        keys[f"weak[{name}]"] = fingerprint(split, "weak", seeds["weak"], type(est).__name__,
                                            free(est))
        keys[f"labels[{name}]"] = fingerprint(keys[f"weak[{name}]"], "labels", pipe.soft_labels,
                                              pipe.label_fraction)
    keys["labels[baseline]"] = fingerprint(split, "baseline-labels",
                                           fingerprint(seeds["weak"], free(pipe.weak)),
                                           pipe.soft_labels, pipe.label_fraction)
    parts = (type(pipe.strong).__name__, free(pipe.strong), seeds["strong"])
    hy = y[pipe.hard_train_indices_]  # the fitted pipeline's rows
    for name, labels in [("ours", pipe.pseudo_labels_), ("baseline", pipe.baseline_labels_)]:
        keys[f"student[{name}]"] = fingerprint("student-v2", parts, "xent", np.arange(len(hy)),
                                               labels, None, split)
    keys["ceiling"] = fingerprint("ceiling-v2", parts, split)
    return keys


def test_stage_keys_are_those_of_the_inline_recipes(tmp_path, monkeypatch):
    X, y = _data(160)
    keys = _recorded_keys(monkeypatch)
    controls = [("uniform", AdaBoostClassifier(DecisionTreeClassifier(max_depth=1),
                                                n_estimators=2))]
    pipe = _pipe(memory=str(tmp_path), controls=controls).fit(X, y)
    stages = [h["stage"] for h in pipe.history_]
    got = dict(zip(stages, keys))
    old = _old_recipes(pipe, X, y)
    assert got["student[ours,xent]"] == old.pop("student[ours]")
    assert got["baseline[xent]"] == old.pop("student[baseline]")
    assert {stage: got[stage] for stage in old} == old


def test_the_stage_key_table_names_every_versioned_recipe():
    from skw2s.w2s.stages import STAGE_KEYS, stage_key

    assert {"split", "weak", "labels", "baseline-labels", "student", "ceiling"} <= set(STAGE_KEYS)
    assert stage_key("labels", labeller="k", soft_labels=False, label_fraction=None) == \
        stage_key("labels", labeller="k", soft_labels=False, label_fraction=None)
    assert stage_key("labels", labeller="k", soft_labels=True, label_fraction=None) != \
        stage_key("labels", labeller="k", soft_labels=False, label_fraction=None)


def test_refit_resets_the_fitted_state():
    from sklearn.exceptions import NotFittedError

    X, y = _data(160)
    controls = [("uniform", AdaBoostClassifier(DecisionTreeClassifier(max_depth=1),
                                                n_estimators=2))]
    pipe = _pipe(controls=controls, cascade=[LogisticRegression(C=0.5)]).fit(X, y)
    assert ("uniform", "xent") in pipe.students_ and len(pipe.cascade_steps_) == 1
    pipe.leftover_ = "from the first fit"
    pipe.set_params(controls=None, cascade=None, baseline=False).fit(X, y)
    assert set(pipe.students_) == {("ours", "xent")}
    assert pipe.cascade_steps_ == [] and pipe.controls_ == {} and pipe.baselines_ == {}
    assert not hasattr(pipe, "leftover_")
    assert set(pipe.labels_.weak_side) == {"ours"}
    assert set(pipe.report_.weak_side) == {"ours"}
    # a refit that fails in a stage leaves the pipeline unfitted, not half of each fit
    pipe.set_params(strong=LogisticRegression(C=-1.0))
    with pytest.raises(ValueError, match="C"):
        pipe.fit(X, y)
    assert [h["stage"] for h in pipe.history_] == ["split", "weak[ours]", "labels[ours]"]
    for attr in ("students_", "report_", "weak_", "cascade_steps_", "labels_"):
        assert not hasattr(pipe, attr)
    with pytest.raises(NotFittedError):
        pipe.predict(X)
