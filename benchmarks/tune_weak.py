"""Budget checks for the weak side of the reproduction, on training data only (never the
reproduction's test questions).

``mc``: one LLMGenerator fit of ``smollm2-135m[:24]`` on 160 seeded ARC-Easy train rows per
setting; prints its teacher-forced answer-token error on those rows (what a boosting round's
``eps_t`` measures) and on the first 100 ARC-Easy *test-split* rows, which the reproduction
does not use (its test questions come from the train split's hard side).

``binary``: LLMAdaBoostClassifier settings for the SciQ binary weak side (``smollm2-135m[:6]``
heads), fitted on 800 rows of a random half of the reproduction pool and scored on the other
200 rows of that half: the single learner, the last round and the best round (2 seeds each).

Usage::

    python benchmarks/tune_weak.py mc --data-dir ../shared/data
    python benchmarks/tune_weak.py binary --data-dir ../shared/data

Output of the runs quoted in RESULTS.md: ``benchmarks/results/tuning/*.txt``.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MC_SETTINGS = [("lora", 2e-3, 2), ("full", 1e-4, 2)]


def mc(data_dir):
    from skw2s import LLMGenerator
    from skw2s.data.datasets import load_dataset, to_multiple_choice

    train = load_dataset("arc_easy", "train", data_dir=data_dir)
    rows = np.sort(np.random.RandomState(0).choice(len(train), 160, replace=False))
    X, y = to_multiple_choice(train.iloc[rows].reset_index(drop=True))
    test = load_dataset("arc_easy", "test", data_dir=data_dir).iloc[:100].reset_index(drop=True)
    Xt, yt = to_multiple_choice(test)
    for mode, lr, epochs in MC_SETTINGS:
        g = LLMGenerator("smollm2-135m[:24]", mode=mode, lr=lr, n_epochs=epochs, batch_size=8,
                         max_length=128, random_state=0)
        start = time.time()
        g.fit(X, y)
        print(f"smollm2-135m[:24] {mode} lr={lr} epochs={epochs}: fit {time.time() - start:.0f} s, "
              f"train token error {g.token_error(X, y):.4f}, test-split token error "
              f"{g.token_error(Xt, yt):.4f}, test-split accuracy {g.score(Xt, yt):.3f}", flush=True)


def binary(data_dir):
    from skw2s import LLMAdaBoostClassifier, LLMClassifier
    from skw2s.experiment import load_config, load_task_data

    config = load_config(HERE / "reproduce" / "sciq-binary-random.yaml")
    X, y, _ = load_task_data(config, data_dir)
    X, y = np.asarray(X, dtype=object), np.asarray(y)
    idx = np.random.RandomState(123).permutation(len(X))[:1000]
    tr, va = idx[:800], idx[800:]
    for n_epochs, sampling, rate in itertools.product([3, 10, 30], ["reweight", "resample"],
                                                      [1.0, 0.5]):
        accs = []
        for seed in range(2):
            learner = LLMClassifier("smollm2-135m[:6]", mode="head", lr=1e-2, n_epochs=n_epochs,
                                    max_length=96, batch_size=16)
            boost = LLMAdaBoostClassifier(learner, n_estimators=10, sampling=sampling,
                                          learning_rate=rate, random_state=seed)
            boost.fit(list(X[tr]), y[tr])
            staged = list(boost.staged_score(list(X[va]), y[va]))
            accs.append([staged[0], staged[-1], max(staged), len(staged)])
        a = np.mean(accs, axis=0)
        print(f"epochs={n_epochs} {sampling} lr={rate}: single {a[0]:.3f} final {a[1]:.3f} "
              f"best {a[2]:.3f} rounds {a[3]:.1f}", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["mc", "binary"])
    parser.add_argument("--data-dir", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore")
    {"mc": mc, "binary": binary}[args.what](args.data_dir)


if __name__ == "__main__":
    main()
