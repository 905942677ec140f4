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
  skw2s run CONFIG.yaml   fit the pipeline once per seed; writes seed{N}.json per seed, then
                          results.csv (mean and SEM over seeds), summary.md and results.png.
                          Finished seeds are skipped and stages are cached under cache/, so
                          an interrupted run resumes when started again.
  skw2s demo              a small real experiment on the offline models: binarised SciQ, a
                          boosted weak model cut from SmolLM2 (6 layers), a 12-layer student.
  skw2s report DIR...     rebuild the tables and plots from the seed*.json of the run
                          directories in or below DIR.
"""


def _config_epilog():
    from .experiment import config_keys_text

    return (
        "config keys (weak, strong and boost take the estimators' own parameter names):\n"
        + config_keys_text()
    )


def _parser():
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="skw2s", description=DESCRIPTION, epilog=_config_epilog(), formatter_class=formatter
    )
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logging, and the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run an experiment config (YAML)", epilog=_config_epilog(),
                         formatter_class=formatter,
                         description="Fit the pipeline of CONFIG once per seed, resumably.")
    run.add_argument("config", help="the YAML config")
    run.add_argument("--data-dir", help="folder of the built-in datasets (default: SKW2S_DATA_DIR)")
    run.add_argument("--output-dir", help="overrides the config's output_dir")
    run.add_argument("--seeds", type=int, nargs="+", help="run only these seeds now")
    run.add_argument("--force", action="store_true", help="rerun seeds that already finished")
    run.add_argument("--quiet", action="store_true", help="no progress bars from the estimators")
    demo = sub.add_parser("demo", help="a small real weak-to-strong experiment on the offline models")
    demo.add_argument("--data-dir", help="folder holding sciq/ (default: SKW2S_DATA_DIR)")
    demo.add_argument("--output-dir", default="runs/demo")
    demo.add_argument("--quiet", action="store_true", help="no progress bars from the estimators")
    report = sub.add_parser("report", help="aggregate the seed*.json of run directories and re-plot")
    report.add_argument("dirs", nargs="+", help="run directories, or folders with run directories below")
    report.add_argument("--output-dir",
                        help="default: the directory given when it is the one run, else ./report")
    return parser


def _report(dirs, output_dir):
    from pathlib import Path

    from .report import find_run_dirs, write_report

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
        ``skw2s: error: ...`` (with ``-v``, after the traceback).
    """
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "report":
            summary, out = _report(args.dirs, args.output_dir)
        else:
            from .experiment import DEMO_CONFIG, load_config, run_config

            config = load_config(DEMO_CONFIG if args.command == "demo" else args.config)
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
    except (ValueError, FileNotFoundError) as exc:  # ConfigError is a ValueError
        if args.verbose:
            traceback.print_exc()
        message = " ".join(str(exc).split())  # one line
        parser.exit(2, f"skw2s: error: {message}\n")
    text = summary if isinstance(summary, str) else summary.to_string(index=False)
    diagnostics = Path(out) / "diagnostics.md"
    if diagnostics.exists():  # beside each student's PGR: why the ensemble helps or not
        text += ("\n\nDiagnostics (error kappa: Cohen's kappa on the errors of two weak learners, "
                 "mean over pairs; student-weak agreement: the share of test questions on which "
                 "the student answers as its weak side):\n" + diagnostics.read_text())
    sys.stdout.write(text + "\n")
    sys.stdout.write(f"Wrote {out}/results.csv, summary.md and results.png\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
