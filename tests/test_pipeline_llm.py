"""WeakToStrongPipeline end to end on tiny LMs: binary and multiple choice, resume after kill."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from skw2s import (
    DifficultySplitter,
    LLMAdaBoostClassifier,
    LLMClassifier,
    LLMGenerator,
    TokenAdaBoostGenerator,
    WeakToStrongPipeline,
)

REPORT_MODELS = {"weak_single", "weak_round", "weak_ensemble", "baseline_student",
                 "ensemble_student", "ceiling"}


def _binary_data(n=48):
    rng = np.random.RandomState(0)
    words = ["oxygen", "carbon", "water", "iron", "helium", "sun", "moon", "earth"]
    texts, labels = [], []
    for i in range(n):
        a, b = rng.choice(words, 2, replace=False)
        label = int(rng.rand() < 0.5)
        texts.append(f"Q: {a} {b} A: {'yes' if label else 'no'} {i % 5}")
        labels.append(label)
    return texts, np.array(labels)


def _classifier(tiny_lm, **kw):
    return LLMClassifier(tiny_lm, mode="head", lr=0.05, n_epochs=40, device="cpu", **kw)


def test_binary_pipeline_with_truncated_weak_model(tiny_lm, tmp_path):
    from skw2s.hf.testing import tiny_causal_lm

    deep = tiny_causal_lm(tmp_path / "deep", n_layers=3)
    X, y = _binary_data()
    pipe = WeakToStrongPipeline(
        weak=LLMAdaBoostClassifier(_classifier(deep + "[:1]"), n_estimators=3),
        strong=_classifier(deep),
        splitter=DifficultySplitter(_classifier(tiny_lm), n_splits=2, random_state=0),
        random_state=0,
    ).fit(X, y)
    assert set(pipe.report_.model) == REPORT_MODELS
    assert pipe.weak_.estimators_[0].model_.config.num_hidden_layers == 1
    assert np.isfinite(pipe.report_.accuracy).all()
    assert set(np.unique(pipe.pseudo_labels_)) <= {0, 1}
    assert pipe.predict(X[:4]).shape == (4,)


def _mc_data(n=16):
    rng = np.random.RandomState(1)
    prompts, choices, answers = [], [], []
    for i in range(n):
        options = ["more", "less"] if i % 2 else ["higher", "lower"]
        prompts.append(f"Question: is item {i} {options[0]} or {options[1]}?\nAnswer:")
        choices.append(options)
        answers.append(int(rng.rand() < 0.5))
    return pd.DataFrame({"prompt": prompts, "choices": choices}), np.array(answers)


def _generator(tiny_lm, **kw):
    return LLMGenerator(tiny_lm, mode="full", lr=5e-3, n_epochs=3, batch_size=8, max_length=64,
                        device="cpu", **kw)


def test_multiple_choice_pipeline_with_truncated_experts(tiny_lm, tmp_path):
    from skw2s.hf.testing import tiny_causal_lm

    deep = tiny_causal_lm(tmp_path / "deep", n_layers=3)
    X, y = _mc_data()
    pipe = WeakToStrongPipeline(
        weak=TokenAdaBoostGenerator(_generator(deep + "[:1]"), n_estimators=2, random_state=0),
        strong=_generator(deep),
        test_size=0.25,
        id_test_size=2,
        random_state=0,
    ).fit(X, y)
    assert set(pipe.report_.model) == REPORT_MODELS
    assert set(pipe.report_.test) == {"hard", "easy"}
    # generators report teacher-forced token errors, and the last round is the ensemble
    report = pipe.report_
    assert report.token_error.between(0, 1).all()
    for test, rows in ((("hard", pipe.test_indices_)), ("easy", pipe.id_test_indices_)):
        part = report[report.test == test]
        Xt, yt = X.iloc[rows], y[rows]
        ensemble = part[part.model == "weak_ensemble"].token_error.iloc[0]
        assert ensemble == pytest.approx(pipe.weak_.token_error(Xt, yt))
        assert part[part.model == "weak_round"].token_error.iloc[-1] == pytest.approx(ensemble)
        student = part[part.model == "ensemble_student"].token_error.iloc[0]
        assert student == pytest.approx(pipe.student_.token_error(Xt, yt))
    assert set(np.unique(pipe.pseudo_labels_)) <= {0, 1}
    assert pipe.weak_.estimators_[0].model_.config.num_hidden_layers == 1
    assert pipe.score(X, y) == pytest.approx(pipe.student_.score(X, y))


def test_truncated_model_in_lora_generator(tiny_lm, tmp_path):
    from skw2s.hf.testing import tiny_causal_lm

    deep = tiny_causal_lm(tmp_path / "deep", n_layers=3)
    X, y = _mc_data(8)
    gen = LLMGenerator(deep + "[:2]", mode="lora", lr=1e-2, n_epochs=1, max_length=64,
                       device="cpu").fit(X, y)
    assert gen.model_.base_model.model.config.num_hidden_layers == 2
    assert len(gen.generate(X.prompt[:2].tolist(), max_new_tokens=3)) == 2


KILL_SCRIPT = textwrap.dedent(
    """
    import json, os, signal, sys
    import numpy as np, pandas as pd
    from skw2s import LLMGenerator, TokenAdaBoostGenerator, WeakToStrongPipeline

    # Die (SIGKILL, no clean-up) right after the second boosting round is stored, once.
    flag = os.environ.get("DIE_AFTER_ROUND")
    from skw2s._infra import cache as _cache
    save = _cache.Store.save
    rounds_saved = []
    def dying_save(self, namespace, key, obj):
        path = save(self, namespace, key, obj)
        if isinstance(obj, dict) and "learner" in obj:  # a boosting round
            rounds_saved.append(key)
        if flag and not os.path.exists(flag) and len(rounds_saved) == 2:
            open(flag, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        return path
    _cache.Store.save = dying_save

    rng = np.random.RandomState(1)
    X = pd.DataFrame({"prompt": [f"Question: is item {i} more or less?\\nAnswer:" """
    """for i in range(16)],
                      "choices": [["more", "less"]] * 16})
    y = rng.randint(0, 2, 16)
    gen = LLMGenerator(sys.argv[1], mode="full", lr=5e-3, n_epochs=2, max_length=48, device="cpu")
    pipe = WeakToStrongPipeline(weak=TokenAdaBoostGenerator(gen, n_estimators=3, random_state=0),
                                strong=gen, random_state=0, memory=sys.argv[2]).fit(X, y)
    json.dump({"report": pipe.report_.to_dict("list"), "history": pipe.history_,
               "weak_history": [{k: v for k, v in h.items() if k in ("round", "cached")} """
    """for h in pipe.weak_.history_]},
              open(sys.argv[3], "w"), default=float)
    """
)


@pytest.mark.slow
def test_resume_after_kill_mid_boosting(tiny_lm, tmp_path):
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT)
    env = dict(os.environ, DIE_AFTER_ROUND=str(tmp_path / "died"), OMP_NUM_THREADS="1")
    memory, out = tmp_path / "memory", tmp_path / "out.json"
    killed = subprocess.run([sys.executable, str(script), tiny_lm, str(memory), str(out)],
                            env=env, capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert (tmp_path / "died").exists() and not out.exists()
    resumed = subprocess.run([sys.executable, str(script), tiny_lm, str(memory), str(out)],
                             env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    result = json.loads(out.read_text())
    # the first two rounds came back from disk; only the rest was trained
    from_memory = [h.get("cached") for h in result["weak_history"]]
    assert from_memory[:2] == [True, True], result["weak_history"]
    fresh_out = tmp_path / "fresh.json"
    fresh = subprocess.run(
        [sys.executable, str(script), tiny_lm, str(tmp_path / "fresh-memory"), str(fresh_out)],
        env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True,
    )
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    assert json.loads(fresh_out.read_text())["report"] == result["report"]


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_truncated_model_in_fine_tuned_classifier(tmp_path, mode):
    from skw2s.hf.testing import tiny_causal_lm

    deep = tiny_causal_lm(tmp_path / "deep", n_layers=3)
    X, y = _binary_data(16)
    clf = LLMClassifier(deep + "[:2]", mode=mode, lr=1e-2, n_epochs=1, device="cpu").fit(X, y)
    body = clf.model_.base_model.model if mode == "lora" else clf.model_
    assert body.config.num_hidden_layers == 2
    assert clf.predict_proba(X).shape == (16, 2)


def test_stages_miss_when_a_local_checkpoint_changes_in_place(tmp_path):
    import os
    import shutil
    from pathlib import Path

    from skw2s.estimators.classifier import clear_cache
    from skw2s.hf.testing import tiny_causal_lm

    model = tiny_causal_lm(tmp_path / "model")
    X, y = _binary_data(24)

    def fit():
        return WeakToStrongPipeline(
            weak=LLMAdaBoostClassifier(_classifier(model), n_estimators=1),
            strong=_classifier(model), random_state=0, memory=str(tmp_path / "mem"),
        ).fit(X, y)

    fit()
    assert all(h["cached"] for h in fit().history_)
    other = tiny_causal_lm(tmp_path / "other", seed=1)
    for item in Path(other).iterdir():
        shutil.copy(item, Path(model) / item.name)
        os.utime(Path(model) / item.name, ns=(1, 1))
    clear_cache()
    cached = {h["stage"]: h["cached"] for h in fit().history_}
    assert cached["split"] and not cached["weak[ours]"] and not cached["ceiling"]
