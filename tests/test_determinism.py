"""Same seed, same data, same machine: bit-identical results, in a fresh process and in one.

Every estimator and training mode is fitted in two fresh Python processes that never seed torch
by hand, and twice in one process with torch's global generator in different states between
the fits. The outputs are compared exactly: they are the same computation on the same machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np, pandas as pd, torch
    from skw2s import (LLMAdaBoostClassifier, LLMClassifier, LLMGenerator, TokenAdaBoostGenerator,
                       UniformEnsembleClassifier)

    torch.set_num_threads(1)
    lm = sys.argv[1]
    words = "oxygen nitrogen hydrogen helium carbon iron water sun".split()
    texts = [f"Q: {a} {b} A: {c}" for a in words[:4] for b in words[4:] for c in words[:2]]
    labels = np.array([t.endswith("oxygen") for t in texts]).astype(int)
    X = pd.DataFrame({"prompt": [f"Question: is {w} a gas?\\nAnswer:" for w in words],
                      "choices": [["yes", "no"]] * len(words)})
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])

    def fits():
        out = {}
        for mode in ("head", "lora", "full"):
            clf = LLMClassifier(lm, mode=mode, lr=1e-2, n_epochs=2 if mode != "head" else 20,
                                batch_size=8, device="cpu", random_state=0).fit(texts, labels)
            out[f"classifier-{mode}"] = clf.decision_function(texts).tolist()
        for mode in ("full", "lora"):
            gen = LLMGenerator(lm, mode=mode, lr=5e-2, n_epochs=1, batch_size=4, lora_r=4,
                               device="cpu", random_state=0).fit(X, y)
            out[f"generator-{mode}"] = gen.predict_proba(X).tolist()
        learner = LLMClassifier(lm, mode="lora", lr=1e-2, n_epochs=1, batch_size=8, device="cpu")
        for cls in (LLMAdaBoostClassifier, UniformEnsembleClassifier):
            ens = cls(learner, n_estimators=2, random_state=0).fit(texts, labels)
            out[cls.__name__] = ens.predict_proba(texts).tolist()
        for combine in ("confidence", "router"):
            ens = LLMAdaBoostClassifier(learner, n_estimators=2, combine=combine,
                                        validation_fraction=0.25, random_state=0)
            out[f"combine-{combine}"] = ens.fit(texts, labels).predict_proba(texts).tolist()
        gen = LLMGenerator(lm, mode="lora", lr=5e-2, n_epochs=1, batch_size=4, lora_r=4, """
    """device="cpu")
        boost = TokenAdaBoostGenerator(gen, n_estimators=2, random_state=0).fit(X, y)
        out["TokenAdaBoostGenerator"] = boost.predict_proba(X).tolist()
        return out

    first = fits()
    torch.manual_seed(12345)  # another global state: the second fits must not depend on it
    torch.rand(1000)
    second = fits()
    json.dump({"first": first, "same_in_process": first == second}, sys.stdout)
    """
)


@pytest.fixture(scope="module")
def runs(tiny_lm, tmp_path_factory):
    script = tmp_path_factory.mktemp("determinism") / "fit.py"
    script.write_text(SCRIPT)
    results = []
    for _ in range(2):
        done = subprocess.run([sys.executable, str(script), tiny_lm], capture_output=True,
                              text=True, env={"OMP_NUM_THREADS": "1", **_env()})
        assert done.returncode == 0, done.stderr[-3000:]
        results.append(json.loads(done.stdout))
    return results


def _env():
    import os

    return {k: v for k, v in os.environ.items() if k != "PYTHONHASHSEED"}


KEYS = ["classifier-head", "classifier-lora", "classifier-full", "generator-full",
        "generator-lora", "LLMAdaBoostClassifier", "UniformEnsembleClassifier",
        "TokenAdaBoostGenerator", "combine-confidence", "combine-router"]


@pytest.mark.parametrize("key", KEYS)
def test_fresh_processes_give_identical_results(runs, key):
    a, b = (r["first"][key] for r in runs)
    assert a == b  # exact: the same computation on the same machine


def test_two_fits_in_one_process_are_identical(runs):
    assert all(r["same_in_process"] for r in runs)


KILL_SCRIPT = textwrap.dedent(
    """
    import json, os, signal, sys
    import numpy as np
    from skw2s import LLMAdaBoostClassifier, LLMClassifier
    from skw2s._infra import cache as _cache

    # Die (SIGKILL, no clean-up) right after the second boosting round is stored, once.
    flag, save, saved = os.environ.get("DIE_AFTER_ROUND"), _cache.Store.save, []
    def dying_save(self, namespace, key, obj):
        path = save(self, namespace, key, obj)
        saved.append(isinstance(obj, dict) and "learner" in obj)
        if flag and not os.path.exists(flag) and sum(saved) == 2:
            open(flag, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        return path
    _cache.Store.save = dying_save

    words = "oxygen nitrogen hydrogen helium carbon iron water sun".split()
    X = [f"Q: {a} {b} A: {c}" for a in words[:4] for b in words[4:] for c in words[:2]] * 2
    y = np.array([t.endswith("oxygen") ^ (i % 5 == 0) for i, t in enumerate(X)]).astype(int)
    lora = LLMClassifier(sys.argv[1], mode="lora", lr=5e-3, n_epochs=2, batch_size=8, device="cpu")
    boost = LLMAdaBoostClassifier(lora, n_estimators=3, sampling="reweight", random_state=0,
                                  memory=sys.argv[2])
    boost.fit(X, y)
    json.dump({"decision": boost.decision_function(X).tolist(),
               "proba": boost.predict_proba(X).tolist(),
               "cached": [h["cached"] for h in boost.history_]}, open(sys.argv[3], "w"))
    """
)


@pytest.mark.slow
def test_resumed_lora_boosting_equals_an_uninterrupted_fit(tiny_lm, tmp_path):
    import os

    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT)
    env = dict(_env(), OMP_NUM_THREADS="1")

    def run(memory, out, **extra):
        return subprocess.run([sys.executable, str(script), tiny_lm, str(memory), str(out)],
                              env=dict(env, **extra), capture_output=True, text=True)

    flag = str(tmp_path / "died")
    killed = run(tmp_path / "memory", tmp_path / "out.json", DIE_AFTER_ROUND=flag)
    assert killed.returncode == -9, killed.stderr[-2000:]
    resumed = run(tmp_path / "memory", tmp_path / "out.json", DIE_AFTER_ROUND=flag)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    fresh = run(tmp_path / "fresh-memory", tmp_path / "fresh.json")
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    resumed_out = json.loads((tmp_path / "out.json").read_text())
    fresh_out = json.loads((tmp_path / "fresh.json").read_text())
    assert os.path.exists(flag)
    assert resumed_out["cached"] == [True, True, False]  # two rounds came back from disk
    assert fresh_out["cached"] == [False, False, False]
    assert resumed_out["decision"] == fresh_out["decision"]  # exact: same machine, same seed
    assert resumed_out["proba"] == fresh_out["proba"]
