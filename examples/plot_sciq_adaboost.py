"""
Boosting weak SmolLM2 classifiers on binarised SciQ
===================================================

EnsemW2S, binary setting (Algorithm 2): SciQ is binarised as in Burns et al. (each question is
paired with its correct answer or a random distractor, ``"Q: {question} A: {answer}"``), weak
``smollm2-135m`` classifiers are boosted with AdaBoost, and the test accuracy of one learner is
compared with the boosted ensemble after every round.

The default ``--mode head`` freezes the LM and trains only a linear head on the features of the
last token. The features of every text are computed once (the slow part: a forward pass of the
135M model per text) and shared by all rounds, so the whole run takes a few minutes on two CPU
cores. ``--mode lora`` or ``full`` fine-tune the LM in every round and need a GPU.

Run::

    python examples/plot_sciq_adaboost.py sciq_adaboost.png --data-dir ../shared/data

The data directory holds ``sciq/{train,test}.jsonl``; it defaults to ``$SKW2S_DATA_DIR``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
from sklearn.base import clone

from skw2s import LLMAdaBoostClassifier
from skw2s.classifier import LLMClassifier
from skw2s.datasets import binarize_sciq, load_sciq, to_classification

logger = logging.getLogger("plot_sciq_adaboost")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument(
        "output", nargs="?", default="sciq_adaboost.png", help="where to write the plot"
    )
    parser.add_argument(
        "--data-dir", default=None, help="folder holding sciq/ (default: $SKW2S_DATA_DIR)"
    )
    parser.add_argument("--model", default="smollm2-135m", help="weak model spec")
    parser.add_argument("--mode", default="head", choices=["head", "lora", "full"])
    parser.add_argument("--lr", default="auto", help="learning rate of each learner, or 'auto'")
    parser.add_argument(
        "--n-epochs", default="auto", help="epochs (head mode: Adam steps), or 'auto'"
    )
    parser.add_argument("--n-train", type=int, default=600, help="easy training questions")
    parser.add_argument("--n-test", type=int, default=400, help="test questions")
    parser.add_argument("--n-estimators", type=int, default=10, help="boosting rounds (maximum)")
    parser.add_argument("--sampling", default="resample", choices=["resample", "reweight"])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def _number_or_auto(value, kind):
    return value if value == "auto" else kind(value)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("skw2s.classifier").setLevel(logging.WARNING)
    start = time.perf_counter()

    train = binarize_sciq(
        load_sciq("train", args.data_dir).iloc[: args.n_train], random_state=args.seed
    )
    test = binarize_sciq(
        load_sciq("test", args.data_dir).iloc[: args.n_test], random_state=args.seed
    )
    X_train, y_train = to_classification(train)
    X_test, y_test = to_classification(test)
    logger.info(
        "SciQ binarised: %d train / %d test examples (%.0f%% positive in test)",
        len(X_train),
        len(X_test),
        100 * y_test.mean(),
    )

    weak = LLMClassifier(
        args.model,
        mode=args.mode,
        lr=_number_or_auto(args.lr, float),
        n_epochs=_number_or_auto(args.n_epochs, int),
        batch_size=args.batch_size,
        random_state=args.seed,
    )
    single = clone(weak).fit(X_train, y_train)
    single_acc = single.score(X_test, y_test)
    logger.info(
        "One learner (uniform weights): test accuracy %.3f (%.0f s so far)",
        single_acc,
        time.perf_counter() - start,
    )

    boost = LLMAdaBoostClassifier(
        weak, n_estimators=args.n_estimators, sampling=args.sampling, random_state=args.seed
    ).fit(X_train, y_train)
    vote_acc = list(boost.staged_score(X_test, y_test))
    soft_acc = [
        np.mean(boost.classes_[p.argmax(axis=1)] == y_test)
        for p in boost.staged_predict_proba(X_test)
    ]
    learner_acc = [est.score(X_test, y_test) for est in boost.estimators_]
    rounds = np.arange(1, len(vote_acc) + 1)
    for t in range(len(rounds)):
        logger.info(
            "Round %2d: learner %.3f | ensemble vote %.3f | soft label %.3f | "
            "weighted train error %.3f, alpha %.3f",
            rounds[t],
            learner_acc[t],
            vote_acc[t],
            soft_acc[t],
            boost.estimator_errors_[t],
            boost.estimator_weights_[t],
        )
    if boost.stop_reason_:
        logger.info("Boosting stopped early: %s", boost.stop_reason_)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.axhline(single_acc, color="grey", linestyle="--", label="one learner (uniform weights)")
    ax.plot(rounds, learner_acc, "x", color="black", zorder=3, label="learner of round t alone")
    ax.plot(rounds, vote_acc, "-o", color="tab:blue", label="ensemble: weighted vote (predict)")
    ax.plot(
        rounds, soft_acc, "-s", color="tab:orange", label="ensemble: soft label (predict_proba)"
    )
    ax.axhline(0.5, color="black", linewidth=0.5)
    ax.set_xlabel("boosting round t")
    ax.set_ylabel(f"accuracy on {len(X_test)} SciQ test questions")
    ax.set_xticks(rounds)
    ax.set_title(
        f"AdaBoost of {args.model} ({args.mode} mode, {args.sampling}) on binarised SciQ\n"
        f"{len(X_train)} training questions",
        fontsize=10,
    )
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=120)
    summary = {
        "settings": vars(args),
        "single_learner_accuracy": single_acc,
        "ensemble_vote_accuracy": vote_acc,
        "ensemble_soft_accuracy": soft_acc,
        "learner_accuracy": learner_acc,
        "estimator_errors": boost.estimator_errors_.tolist(),
        "estimator_weights": boost.estimator_weights_.tolist(),
        "stop_reason": boost.stop_reason_,
        "seconds": time.perf_counter() - start,
    }
    output.with_suffix(".json").write_text(json.dumps(summary, indent=2, default=str))
    logger.info(
        "Wrote %s and %s in %.0f s", output, output.with_suffix(".json"), summary["seconds"]
    )
    return summary


if __name__ == "__main__":
    main()
