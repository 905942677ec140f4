"""Fixed-seed outputs of every estimator, for comparing two versions of the library.

Fits each public estimator with a fixed ``random_state`` on tiny random-weight models and
records its predictions and fitted weights as JSON. Run it on two commits and compare:

    python benchmarks/fixed_seed_outputs.py --out before.json      # on the old commit
    python benchmarks/fixed_seed_outputs.py --out after.json       # on the new one
    python benchmarks/fixed_seed_outputs.py --compare before.json after.json

Values are compared with a relative tolerance of 1e-6 (the same computation on the same
machine; the tolerance only absorbs a changed summation order). torch runs on one thread, and
its global generator is seeded before every fit, so that the comparison also covers the modes
whose results depended on torch's global state.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

WORDS = "oxygen nitrogen hydrogen helium carbon iron water sun moon earth".split()
TEXTS = [f"Q: {a} {b} A: {c}" for a in WORDS[:5] for b in WORDS[5:] for c in WORDS[:2]]
_FLIPPED = np.random.RandomState(0).rand(len(TEXTS)) < 0.3
LABELS = np.where(np.array([t.endswith("A: oxygen") for t in TEXTS]) ^ _FLIPPED, "right", "wrong")
MC_ROWS = [
    ("Question: sky colour?\nAnswer:", ["blue", "green"], 0),
    ("Question: grass colour?\nAnswer:", ["blue", "green"], 1),
    ("Question: boiling water is?\nAnswer:", ["hot", "cold"], 0),
    ("Question: ice is?\nAnswer:", ["hot", "cold"], 1),
    ("Question: plants absorb which gas?\nAnswer:", ["carbon dioxide", "helium"], 0),
    ("Question: the sun is a?\nAnswer:", ["moon", "star"], 1),
    ("Question: water freezes when it gets?\nAnswer:", ["colder", "hotter"], 0),
    ("Question: heavier objects fall?\nAnswer:", ["faster", "at the same rate"], 1),
]


def _mc():
    import pandas as pd

    X = pd.DataFrame({"prompt": [r[0] for r in MC_ROWS], "choices": [r[1] for r in MC_ROWS]})
    return X, np.array([r[2] for r in MC_ROWS])


def _seed_torch():
    """Seed torch's and numpy's global generators (learners with ``random_state=None`` draw
    their seed from numpy's), so that each record does not depend on the ones before it."""
    import torch

    torch.manual_seed(0)
    np.random.seed(0)


def _tolist(value):
    return np.asarray(value, dtype=np.float64).round(10).tolist()


def record(workdir):
    import torch

    from skw2s import (
        DifficultySplitter,
        LLMAdaBoostClassifier,
        LLMClassifier,
        LLMGenerator,
        TokenAdaBoostGenerator,
        WeakToStrongPipeline,
    )
    from skw2s.hf.testing import tiny_causal_lm

    torch.set_num_threads(1)
    lm = tiny_causal_lm(Path(workdir) / "tiny")
    out = {}
    clf_kw = dict(device="cpu", batch_size=8)
    for mode, kw in {
        "head": dict(lr=0.05, n_epochs=30),
        "lora": dict(lr=1e-2, n_epochs=2),
        "full": dict(lr=1e-2, n_epochs=2),
    }.items():
        _seed_torch()
        clf = LLMClassifier(lm, mode=mode, random_state=0, **clf_kw, **kw).fit(TEXTS, LABELS)
        out[f"LLMClassifier[{mode}]"] = {"proba": _tolist(clf.predict_proba(TEXTS))}
    for sampling in ("resample", "reweight"):
        _seed_torch()
        learner = LLMClassifier(lm, mode="head", lr=0.05, n_epochs=30, **clf_kw)
        boost = LLMAdaBoostClassifier(learner, n_estimators=4, sampling=sampling, random_state=0)
        boost.fit(TEXTS, LABELS)
        out[f"LLMAdaBoostClassifier[{sampling}]"] = {
            "alphas": _tolist(boost.estimator_weights_),
            "errors": _tolist(boost.estimator_errors_),
            "decision": _tolist(boost.decision_function(TEXTS)),
            "proba": _tolist(boost.predict_proba(TEXTS)),
        }
    X, y = _mc()
    gen_kw = dict(device="cpu", lr=5e-2, n_epochs=1, batch_size=4, max_length=64)
    for mode in ("full", "lora"):
        extra = {"lora_r": 4} if mode == "lora" else {}
        _seed_torch()
        gen = LLMGenerator(lm, mode=mode, random_state=0, **gen_kw, **extra).fit(X, y)
        out[f"LLMGenerator[{mode}]"] = {"proba": _tolist(gen.predict_proba(X))}
        _seed_torch()
        boost = TokenAdaBoostGenerator(
            LLMGenerator(lm, mode=mode, **gen_kw, **extra), n_estimators=2, random_state=0
        ).fit(X, y)
        out[f"TokenAdaBoostGenerator[{mode}]"] = {
            "eps_pre": boost.pretrained_error_,
            "alphas": _tolist(boost.estimator_weights_),
            "errors": _tolist(boost.estimator_errors_),
            "proba": _tolist(boost.predict_proba(X)),
        }
    _seed_torch()
    splitter = DifficultySplitter(
        LLMClassifier(lm, mode="head", lr=0.05, n_epochs=30, **clf_kw), n_splits=3, random_state=0
    ).fit(TEXTS, LABELS)
    out["DifficultySplitter"] = {"difficulty": _tolist(splitter.difficulty_)}
    _seed_torch()
    pipe = WeakToStrongPipeline(
        weak=LLMAdaBoostClassifier(
            LLMClassifier(lm, mode="head", lr=0.05, n_epochs=30, **clf_kw), n_estimators=3
        ),
        strong=LLMClassifier(lm, mode="head", lr=0.05, n_epochs=60, **clf_kw),
        random_state=0,
    ).fit(TEXTS, LABELS)
    report = pipe.report_
    main = report[report.model != "weak_round"]
    out["WeakToStrongPipeline"] = {
        "models": main.model.tolist(),
        "accuracy": _tolist(main.accuracy),
        "pseudo_labels": [str(v) for v in pipe.pseudo_labels_],
    }
    return out


def _flatten(obj, prefix=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _flatten(v, f"{prefix}/{k}" if prefix else k)
    elif isinstance(obj, list) and obj and isinstance(obj[0], (list, float, int)):
        yield prefix, np.asarray(obj, dtype=np.float64)
    else:
        yield prefix, obj


def compare(a, b, rtol=1e-6):
    """Return a list of ``(name, verdict)`` for every recorded value of ``a`` and ``b``."""
    flat_a, flat_b = dict(_flatten(a)), dict(_flatten(b))
    rows = []
    for name in sorted(set(flat_a) | set(flat_b)):
        if name not in flat_a or name not in flat_b:
            rows.append((name, "missing in " + ("before" if name not in flat_a else "after")))
            continue
        x, y = flat_a[name], flat_b[name]
        if isinstance(x, np.ndarray):
            same = x.shape == np.shape(y) and np.allclose(x, y, rtol=rtol, atol=1e-9)
            worst = float(np.max(np.abs(x - y))) if x.shape == np.shape(y) and x.size else 0.0
            rows.append((name, "same" if same else f"DIFFERENT (max abs diff {worst:.3g})"))
        else:
            rows.append((name, "same" if x == y else f"DIFFERENT ({x!r} vs {y!r})"))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="write the outputs of this version to this JSON file")
    parser.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"))
    args = parser.parse_args(argv)
    if args.compare:
        before, after = (json.loads(Path(p).read_text()) for p in args.compare)
        rows = compare(before, after)
        for name, verdict in rows:
            sys.stdout.write(f"{verdict:>40}  {name}\n")
        return 0 if all(v == "same" for _, v in rows) else 1
    if not args.out:
        parser.error("give --out FILE or --compare BEFORE AFTER")
    with tempfile.TemporaryDirectory() as tmp:
        result = record(tmp)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    sys.stdout.write(f"Wrote {args.out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
