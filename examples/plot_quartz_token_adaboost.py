"""
Token-level boosting of weak SmolLM2 experts on QuaRTz
======================================================

EnsemW2S-AdaBoost, generation setting (Algorithm 1): every answer token of the training
questions carries a weight; each round draws tokens by weight, fine-tunes a LoRA adapter of
``smollm2-135m`` from the pre-trained weights on the drawn tokens only, and reweights the tokens
it gets wrong. The experts' next-token distributions are mixed with weights ``alpha_t`` (eq. 1).

On held-out QuaRTz questions, the plot compares, round by round, the expert of round ``t`` alone
with the boosted mixture of experts ``1..t``:

- token error: teacher-forced argmax error on the answer tokens (``" " + correct option`` and
  EOS);
- option accuracy: a question is right when its correct option has the lowest NLL.

All experts are LoRA adapters on one shared base model. With the defaults (48 training and 48
test questions, 3 rounds, one epoch each) the run takes a few minutes on two CPU cores.

Run::

    python examples/plot_quartz_token_adaboost.py quartz.png --data-dir ../shared/data

The data directory holds ``quartz/{train,test}.jsonl``; it defaults to ``$SKW2S_DATA_DIR``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from skw2s.datasets import load_quartz, to_multiple_choice
from skw2s.generator import LLMGenerator
from skw2s import TokenAdaBoostGenerator

logger = logging.getLogger("plot_quartz_token_adaboost")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument(
        "output", nargs="?", default="quartz_token_adaboost.png", help="where to write the plot"
    )
    parser.add_argument(
        "--data-dir", default=None, help="folder holding quartz/ (default: $SKW2S_DATA_DIR)"
    )
    parser.add_argument("--model", default="smollm2-135m", help="weak model spec")
    parser.add_argument("--mode", default="lora", choices=["lora", "full"])
    parser.add_argument("--lr", type=float, default=3e-3, help="learning rate of each expert")
    parser.add_argument("--n-epochs", type=int, default=1, help="epochs per expert")
    parser.add_argument("--n-train", type=int, default=48, help="training questions")
    parser.add_argument("--n-test", type=int, default=48, help="test questions")
    parser.add_argument("--n-estimators", type=int, default=3, help="boosting rounds (maximum)")
    parser.add_argument("--combine", default="prob", choices=["prob", "logit"])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--lora-r", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("skw2s.training").setLevel(logging.WARNING)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    start = time.perf_counter()

    X_train, y_train = to_multiple_choice(load_quartz("train", args.data_dir).iloc[: args.n_train])
    X_test, y_test = to_multiple_choice(load_quartz("test", args.data_dir).iloc[: args.n_test])
    logger.info("QuaRTz: %d training / %d test questions", len(X_train), len(X_test))

    weak = LLMGenerator(
        args.model,
        mode=args.mode,
        lr=args.lr,
        n_epochs=args.n_epochs,
        batch_size=args.batch_size,
        max_length=args.max_length,
        lora_r=args.lora_r,
    )
    boost = TokenAdaBoostGenerator(
        weak, n_estimators=args.n_estimators, combine=args.combine, random_state=args.seed
    ).fit(X_train, y_train)
    fit_seconds = time.perf_counter() - start

    expert_error = boost.estimator_token_errors(X_test, y_test).tolist()
    expert_acc = [est.score(X_test, y_test) for est in boost.estimators_]
    boosted_error = list(boost.staged_token_error(X_test, y_test))
    boosted_acc = list(boost.staged_score(X_test, y_test))
    rounds = np.arange(1, len(boost.estimators_) + 1)
    logger.info("eps_pre (pre-trained model, training tokens): %.4f", boost.pretrained_error_)
    for t in range(len(rounds)):
        logger.info(
            "Round %d: eps_t %.4f, alpha_t %.3f | test token error: expert %.3f, boosted %.3f "
            "| option accuracy: expert %.3f, boosted %.3f",
            rounds[t], boost.estimator_errors_[t], boost.estimator_weights_[t],
            expert_error[t], boosted_error[t], expert_acc[t], boosted_acc[t],
        )
    if boost.stop_reason_:
        logger.info("Boosting stopped early: %s", boost.stop_reason_)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_err, ax_acc) = plt.subplots(1, 2, figsize=(10, 4.2))
    ax_err.plot(rounds, expert_error, "o", color="tab:grey", label="expert of round t alone")
    ax_err.plot(rounds, boosted_error, "-o", color="tab:blue", label="boosted mixture 1..t")
    ax_err.set_ylabel("test token error (teacher-forced argmax)")
    ax_acc.plot(rounds, expert_acc, "o", color="tab:grey", label="expert of round t alone")
    ax_acc.plot(rounds, boosted_acc, "-o", color="tab:blue", label="boosted mixture 1..t")
    ax_acc.axhline(0.5, color="black", linewidth=0.5, label="chance (2 options)")
    ax_acc.set_ylabel("test option accuracy (lowest NLL)")
    for ax in (ax_err, ax_acc):
        ax.set_xlabel("boosting round t")
        ax.set_xticks(rounds)
        ax.legend(fontsize=8, loc="best")
    fig.suptitle(
        f"Token-level EnsemW2S-AdaBoost of {args.model} ({args.mode}, combine={args.combine}) on "
        f"QuaRTz: {len(X_train)} training / {len(X_test)} test questions, "
        f"eps_pre = {boost.pretrained_error_:.3f}",
        fontsize=9,
    )
    fig.tight_layout()
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=120)
    summary = {
        "settings": vars(args),
        "pretrained_error": boost.pretrained_error_,
        "estimator_errors": boost.estimator_errors_.tolist(),
        "estimator_weights": boost.estimator_weights_.tolist(),
        "expert_token_error": expert_error,
        "boosted_token_error": boosted_error,
        "expert_option_accuracy": expert_acc,
        "boosted_option_accuracy": boosted_acc,
        "stop_reason": boost.stop_reason_,
        "history": boost.history_,
        "fit_seconds": fit_seconds,
        "seconds": time.perf_counter() - start,
    }
    output.with_suffix(".json").write_text(json.dumps(summary, indent=2, default=str))
    logger.info(
        "Wrote %s and %s in %.0f s", output, output.with_suffix(".json"), summary["seconds"]
    )
    return summary


if __name__ == "__main__":
    main()
