"""P5: model selection over ``n_estimators`` with the round cache (``memory=``).

``GridSearchCV(TokenAdaBoostGenerator(..., memory=dir), {"n_estimators": [1, 2, 3, 4, 5]})``
fits five candidates per fold. With the round cache, the candidate with ``s`` rounds loads
the ``s - 1`` rounds an earlier candidate trained on the same fold and trains one, so a fold
trains 5 rounds instead of 1 + 2 + 3 + 4 + 5 = 15. Compared, on tiny models, with the same
cross-validation (same folds, same refit):

- **baseline**: the grid over ``[5]`` alone, i.e. cross-validating and refitting one
  5-round fit;
- **grid, round cache**: the 5-value grid with ``memory`` (a fresh directory every repeat);
- **grid, no cache**: the 5-value grid without it.

Both seconds and learner fits (calls that train a weak LoRA expert) are counted. A single
5-round ``fit`` on all the data is timed too, for scale.

Usage::

    python benchmarks/bench_selection.py --quick      # ~1 minute
    python benchmarks/bench_selection.py              # more rows, 3 folds, 3 repeats
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _perf  # noqa: E402

GRID = [1, 2, 3, 4, 5]


def _data(n_rows):
    import numpy as np
    import pandas as pd

    prompts = (_perf.QUICK_PROMPTS * (n_rows // len(_perf.QUICK_PROMPTS) + 1))[:n_rows]
    choices = (_perf.QUICK_CHOICES * (n_rows // len(_perf.QUICK_CHOICES) + 1))[:n_rows]
    prompts = [p.replace("Question:", f"Question {i}:") for i, p in enumerate(prompts)]
    rng = np.random.RandomState(0)
    y = rng.randint(0, 4, size=n_rows)
    return pd.DataFrame({"prompt": prompts, "choices": choices}), y


def _pretrained_tiny(X, y, device):
    """A tiny LM trained briefly on the task, so that its token error ``eps_pre`` is below 1
    and weak experts can beat it (a random tiny LM gets every token wrong)."""
    from skw2s import LLMGenerator

    pre = LLMGenerator(_perf.tiny_model(n_layers=2, hidden_size=64), lr=1e-2, n_epochs=8,
                       batch_size=8, device=str(device), random_state=0).fit(X, y)
    path = tempfile.mkdtemp(prefix="skw2s-bench-pre-")
    pre.model_.save_pretrained(path)
    pre.tokenizer_.save_pretrained(path)
    return path


class _FitCounter:
    """Counts weak-learner trainings (``LLMGenerator.fit`` calls that train, ``n_epochs > 0``)."""

    def __init__(self):
        from skw2s.estimators.generator import LLMGenerator

        self.cls = LLMGenerator
        self.original = LLMGenerator.fit
        self.count = 0
        counter = self

        def counted(est, *a, **kw):
            if est.n_epochs > 0:
                counter.count += 1
            return counter.original(est, *a, **kw)

        LLMGenerator.fit = counted

    def restore(self):
        self.cls.fit = self.original


def run(args):
    from sklearn.model_selection import GridSearchCV, KFold

    from skw2s import LLMGenerator, TokenAdaBoostGenerator

    device, threads = _perf.setup(args.threads, args.device)
    info = _perf.machine_info(device, threads)
    quick = args.quick
    repeats = args.repeats or (1 if quick else 3)
    cv = KFold(args.cv or (2 if quick else 3), shuffle=True, random_state=0)
    n_rows = args.n_rows or (12 if quick else 24)
    X, y = _data(n_rows)
    spec = args.model or _pretrained_tiny(X, y, device)
    weak = LLMGenerator(spec, mode="lora", lr=2e-2, n_epochs=4, lora_r=4, batch_size=8,
                        device=str(device), max_new_tokens=4)
    _perf.print_header("P5 model selection over n_estimators", info)
    print(f"tiny LoRA weak learners; {n_rows} rows; {cv.get_n_splits()}-fold CV, refit; "
          f"grid n_estimators={GRID}; {repeats} alternating repeats")
    fits = {}
    counter = _FitCounter()
    dirs = []

    def search(grid, memory):
        def go():
            mem = None
            if memory:
                mem = tempfile.mkdtemp(prefix="skw2s-bench-memory-")
                dirs.append(mem)
            boost = TokenAdaBoostGenerator(weak, n_estimators=5, random_state=0, memory=mem)
            before = counter.count
            GridSearchCV(boost, {"n_estimators": grid}, cv=cv, error_score="raise").fit(X, y)
            return counter.count - before
        return go

    def single():
        before = counter.count
        TokenAdaBoostGenerator(weak, n_estimators=5, random_state=0).fit(X, y)
        return counter.count - before

    fns = {
        "baseline: grid [5]": search([5], False),
        "grid 1..5, round cache": search(GRID, True),
        "grid 1..5, no cache": search(GRID, False),
        "one 5-round fit": single,
    }
    try:
        times, res = _perf.interleaved(fns, repeats=repeats, device=device, warmup=False)
    finally:
        counter.restore()
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)
    fits = res
    rows = []
    for name in fns:
        r = _perf.ratio(times, name, "baseline: grid [5]")
        rows.append({
            "case": name, "seconds": f"{_perf.median(times, name):.2f}",
            "learner fits": fits[name],
            "time / baseline": f"{r:.2f}",
            "fits / baseline": f"{fits[name] / fits['baseline: grid [5]']:.2f}",
            "target": (_perf.verdict(r, 1.3, quick=args.quick)
                       if name == "grid 1..5, round cache" else ""),
        })
    print()
    _perf.print_table(rows, list(rows[0]))
    payload = {"benchmark": "selection", "machine": info,
               "settings": {"quick": quick, "rows": n_rows, "cv": cv.get_n_splits(),
                            "grid": GRID, "repeats": repeats},
               "times": times, "fits": fits, "rows": rows}
    _perf.write_json(_perf.result_name("selection", args, device), payload, args)
    return payload


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    _perf.common_arguments(parser, default_model=None)
    parser.set_defaults(device="cpu")
    parser.add_argument("--cv", type=int, default=None)
    parser.add_argument("--n-rows", type=int, default=None)
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
