"""The ``skw2s`` command: run weak-to-strong experiments from a YAML config, and report them.

``skw2s run CONFIG.yaml``
    Runs :class:`~skw2s.WeakToStrongPipeline` once per seed. Writes ``seed{N}.json`` per seed,
    then ``results.csv`` (mean ± SEM over seeds, every model and boosting round),
    ``summary.csv`` / ``summary.md`` and ``results.png`` into the output directory. Finished
    seeds are skipped and each stage and boosting round is cached under ``cache/``, so an
    interrupted run picks up where it stopped when started again.
``skw2s demo``
    The small real experiment the README runs: binarised SciQ, a weak model cut from SmolLM2
    (6 layers) and boosted, a stronger cut (12 layers) as the student, on the offline model.
``skw2s report DIR...``
    Rebuilds the tables and the plot from the ``seed*.json`` files of one or more run
    directories.

Config keys (``weak``, ``strong`` and ``boost`` take the estimators' own parameter names)::

    name: sciq-binary            # label in tables and plots
    task: binary                 # binary (SciQ) | multiple_choice
    dataset: sciq                # sciq | quartz | arc_easy | arc_challenge
    data_dir: null               # else SKW2S_DATA_DIR
    split: train                 # the dataset split that forms the labelled pool
    n_examples: 600              # random subset of the pool (fixed by data_seed); null = all
    data_seed: 0
    use_support: false           # multiple choice: put the support passage in the prompt
    split_kind: random           # random | easy_hard
    difficulty: {n_splits: 3, easy_fraction: 0.5, estimator: {...}}   # or {precomputed: grade}
    test_size: 0.25             # part of the hard side held out (out-of-distribution test)
    id_test_size: null           # part of the easy side held out (in-distribution test)
    seeds: [0, 1, 2]
    weak: {model: smollm2-135m, mode: head, ...}       # LLMClassifier / LLMGenerator params
    boost: {n_estimators: 5, ...}                      # LLMAdaBoostClassifier / TokenAdaBoostGenerator
    strong: {model: gemma3-270m, mode: head, ...}
    baseline: true
    ceiling: true
    output_dir: runs/NAME
    cache_dir: null              # stage and round cache; default OUTPUT_DIR/cache/seed{N}.
                                 # Configs that share one (e.g. ablations) reuse each other's
                                 # split, rounds and ceiling.
"""

from __future__ import annotations

import argparse
import logging
import sys

from .experiment import DEMO_CONFIG, ConfigError, load_config, run_config
from .report import write_report

__all__ = ["main"]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="skw2s", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run an experiment config (YAML)")
    run.add_argument("config")
    run.add_argument("--data-dir")
    run.add_argument("--output-dir")
    run.add_argument("--seeds", type=int, nargs="+", help="override the config's seeds")
    run.add_argument("--force", action="store_true", help="rerun seeds that already finished")
    demo = sub.add_parser("demo", help="a small real weak-to-strong experiment on the offline models")
    demo.add_argument("--data-dir")
    demo.add_argument("--output-dir", default="runs/demo")
    report = sub.add_parser("report", help="aggregate seed*.json of run directories and re-plot")
    report.add_argument("dirs", nargs="+")
    report.add_argument("--output-dir", help="default: the first directory, or ./report for several")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "run":
            config = load_config(args.config)
            if args.seeds:
                config["seeds"] = args.seeds
            run_config(config, data_dir=args.data_dir, output_dir=args.output_dir, force=args.force)
        elif args.command == "demo":
            config = load_config(DEMO_CONFIG)
            run_config(config, data_dir=args.data_dir, output_dir=args.output_dir)
        else:
            out = args.output_dir or (args.dirs[0] if len(args.dirs) == 1 else "report")
            write_report(args.dirs, out)
    except (ConfigError, FileNotFoundError) as exc:
        parser.exit(2, f"skw2s: error: {exc}\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
