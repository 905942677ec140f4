"""The ``skw2s`` command: argument parsing over :mod:`skw2s.experiment` and :mod:`skw2s.report`."""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from pathlib import Path

__all__ = ["main"]

DESCRIPTION = """\
Weak-to-strong experiments (EnsemW2S) from a YAML config, and their reports.

commands:
  skw2s run CONFIG.yaml   fit the pipeline once per seed, resumably; then the tables and plots
                          (skw2s run --help lists every config key)
  skw2s demo              a small real experiment on the offline models (binarised SciQ)
  skw2s report DIR...     rebuild the tables and plots from the seed*.json below DIR
  skw2s download-data DIR write the built-in datasets from the Hugging Face Hub into DIR, for
                          a machine without network (then --data-dir DIR)

Built-in datasets are read from the Hugging Face Hub unless --data-dir or SKW2S_DATA_DIR names
an offline copy.
"""

DEMO_DESCRIPTION = """\
A small real weak-to-strong experiment on the offline models: binarised SciQ (800 questions,
400 official test questions), LoRA weak learners on SmolLM2-135M's first 6 layers boosted with
AdaBoost (3 rounds) against a uniform bagging control, and a linear head on its first 12 layers
as the student (xent and logconf), over 3 seeds. Prints the accuracies, PGR and the paired
comparisons with their intervals; writes summary.md, paired.md and results.png. SciQ is read
from the Hugging Face Hub unless --data-dir or SKW2S_DATA_DIR names an offline copy.
"""

REPORT_DESCRIPTION = """\
Aggregate the seed*.json files of run directories (each written by skw2s run), found in or
below the folders given, over seeds: results.csv (mean and standard error), summary.md, the
paired comparisons (paired.md), the boosting rounds and results.png. Runs are keyed by their
config's name, or by their folder where two share a name.
"""

DOWNLOAD_DESCRIPTION = """\
Write the built-in datasets (sciq, quartz, arc_easy, arc_challenge) from the Hugging Face Hub
into DIR/NAME/{train,validation,test}.jsonl, the offline layout that --data-dir DIR and
SKW2S_DATA_DIR=DIR read. Run it on a machine with network and copy DIR to the offline one.
"""

SET_HELP = ("override a config key: dotted keys reach into sections (weak.lr=1e-3, "
            "boost.n_estimators=5); the value is read as YAML ([0, 1], null, true); repeatable")


def _config_epilog():
    from .experiment import config_keys_text

    return (
        "config keys (weak, strong and boost take the estimators' own parameter names):\n"
        + config_keys_text()
    )


def _version():
    from . import __version__

    return f"skw2s {__version__}"


def _parser():
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="skw2s", description=DESCRIPTION,
                                     formatter_class=formatter)
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logging, and the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="run an experiment config (YAML)", epilog=_config_epilog(),
                         formatter_class=formatter,
                         description="Fit the pipeline of CONFIG once per seed, resumably.")
    run.add_argument("config", help="the YAML config")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help=SET_HELP)
    run.add_argument("--dry-run", action="store_true",
                     help="check the config, load and map every row of the data, check every "
                          "model spec, and print the plan and its estimated cost; train nothing")
    run.add_argument("--data-dir", help="offline folder of the built-in datasets (default: "
                                        "SKW2S_DATA_DIR, else the Hugging Face Hub)")
    run.add_argument("--output-dir", help="overrides the config's output_dir")
    run.add_argument("--seeds", type=int, nargs="+", help="run only these seeds now")
    run.add_argument("--force", action="store_true", help="rerun seeds that already finished")
    run.add_argument("--quiet", action="store_true", help="no progress bars from the estimators")
    demo = sub.add_parser("demo", help="a small real weak-to-strong experiment (offline models)",
                          description=DEMO_DESCRIPTION, formatter_class=formatter)
    demo.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                      help=SET_HELP)
    demo.add_argument("--dry-run", action="store_true",
                      help="as for run: check, plan, train nothing")
    demo.add_argument("--data-dir", help="offline folder holding sciq/ (default: SKW2S_DATA_DIR, "
                                         "else the Hugging Face Hub)")
    demo.add_argument("--output-dir", default="runs/demo")
    demo.add_argument("--quiet", action="store_true", help="no progress bars from the estimators")
    report = sub.add_parser("report", help="aggregate the seed*.json of run directories, re-plot",
                            description=REPORT_DESCRIPTION, formatter_class=formatter)
    report.add_argument("dirs", nargs="+",
                        help="run directories, or folders with run directories below")
    report.add_argument("--output-dir",
                        help="default: the directory given when it is the one run, else ./report")
    download = sub.add_parser("download-data", help="write the Hub datasets into an offline folder",
                              description=DOWNLOAD_DESCRIPTION, formatter_class=formatter)
    download.add_argument("dir", help="the folder to write (created if needed)")
    download.add_argument("--datasets", nargs="+", metavar="NAME",
                          help="only these (sciq, quartz, arc_easy, arc_challenge)")
    return parser


def _written(out):
    """One line naming every file a run or report wrote in ``out`` (the cache as a folder)."""
    from pathlib import Path

    out = Path(out)
    files = sorted(p.name for p in out.iterdir() if p.is_file())
    folders = sorted(p.name + "/" for p in out.iterdir() if p.is_dir())
    return f"Wrote {out}/: {', '.join(files + folders)}\n"


def _report(dirs, output_dir):
    from pathlib import Path

    from .experiment.report import find_run_dirs, write_report

    runs = find_run_dirs(dirs)
    if output_dir is None:
        one = len(dirs) == 1 and runs == [Path(dirs[0])]
        output_dir = dirs[0] if one else "report"
    return write_report(runs, output_dir), output_dir


def _paired_lines(path):
    import numpy as np
    import pandas as pd

    table = pd.read_csv(path)

    def seed_level(r):
        if not np.isfinite(r.get("seed_ci_low", np.nan)):
            return "t on seeds: n/a with 1 seed"
        return f"t on seeds [{100 * r.seed_ci_low:+.1f}, {100 * r.seed_ci_high:+.1f}]"

    return "".join(
        f"  {r.comparison} [{r.get('test_set', r.test)}]: {100 * r['diff']:+.1f} points, 95% CI "
        f"bootstrap [{100 * r.ci_low:+.1f}, {100 * r.ci_high:+.1f}], {seed_level(r)}, "
        f"McNemar p = {r.p_mcnemar:.3g} ({int(r.n_questions)} questions x seeds)\n"
        for _, r in table.iterrows()
    )


def _one_line(exc):
    """The error as one line; an ``OSError`` with its path (``[Errno 28] No space left on
    device: 'out/seed0.tmp'``)."""
    if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError) and exc.filename \
            and str(exc.filename) not in str(exc):
        return " ".join(f"{exc.filename}: {exc}".split())
    return " ".join(str(exc).split())


def main(argv=None):
    """Run the ``skw2s`` command.

    Parameters
    ----------
    argv : list of str, default=None
        The arguments; None reads ``sys.argv``.

    Returns
    -------
    status : int
        0 on success. Errors in the config or the data (:class:`~skw2s.experiment.ConfigError`,
        any ``ValueError`` or ``FileNotFoundError``) exit with status 2 and one line
        ``skw2s: error: ...`` (with ``-v``, after the traceback); other OS errors (a full
        disk) with status 1 and one such line naming the path, after the results of a
        finished seed that could not be saved (:class:`~skw2s.experiment.ResultsNotSaved`).
        Ctrl-C returns 130 after one line ``skw2s: interrupted: ...`` saying which seeds
        finished and how to resume.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "download-data":
            from .data.datasets import download_datasets

            written = download_datasets(args.dir, args.datasets)
            folders = sorted({p.parent.name + "/" for p in written})
            sys.stdout.write(f"Wrote {args.dir}/: {', '.join(folders)} ({len(written)} files)\n")
            return 0
        if args.command == "report":
            summary, out = _report(args.dirs, args.output_dir)
        else:
            from .experiment import DEMO_CONFIG, load_config, plan_text, run_config

            source = DEMO_CONFIG if args.command == "demo" else args.config
            config = load_config(source, overrides=args.overrides)
            if args.dry_run:
                sys.stdout.write(plan_text(config, data_dir=args.data_dir,
                                           output_dir=args.output_dir))
                return 0
            out = run_config(
                config, data_dir=args.data_dir, output_dir=args.output_dir,
                force=getattr(args, "force", False), seeds=getattr(args, "seeds", None),
                verbose=0 if args.quiet else 1,
            )
            summary = (out / "summary.md").read_text()
            paired = out / "paired.md"
            if paired.exists():  # the paired comparisons, with their intervals
                summary += ("\nPaired over seeds and test questions (95% intervals: the "
                            "bootstrap, and a t interval on the per-seed differences):\n")
                summary += _paired_lines(paired.with_suffix(".csv"))
    except KeyboardInterrupt as exc:  # Ctrl-C: what finished and how to resume, no traceback
        if args.verbose:
            traceback.print_exc()
        detail = " ".join(str(exc).split()) or "no result was written"
        sys.stderr.write(f"skw2s: interrupted: {detail}\n")
        return 130
    except (ValueError, OSError) as exc:  # ConfigError is a ValueError
        if args.verbose:
            traceback.print_exc()
        summary = getattr(exc, "summary", None)  # a finished seed that could not be saved
        if summary:
            sys.stdout.write(summary)
        status = 2 if isinstance(exc, (ValueError, FileNotFoundError)) else 1
        parser.exit(status, f"skw2s: error: {_one_line(exc)}\n")
    text = summary if isinstance(summary, str) else summary.to_string(index=False)
    diagnostics = Path(out) / "diagnostics.md"
    if diagnostics.exists():  # beside each student's PGR: why the ensemble helps or not
        text += ("\n\nDiagnostics (error kappa: Cohen's kappa on the errors of two weak learners, "
                 "mean over pairs; student-weak agreement: the share of test questions on which "
                 "the student answers as its weak side):\n" + diagnostics.read_text())
    sys.stdout.write(text + "\n")
    sys.stdout.write(_written(out))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
