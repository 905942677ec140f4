"""The pipeline a config describes, and the runner that fits it once per seed."""

from __future__ import annotations

import json
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

from ..exceptions import FirstLearnerError
from ..hf.tracking import tensorboard_root, training_run
from ..w2s.names import MAIN
from ._config import _estimator_classes
from ._data import load_task_data

logger = logging.getLogger(__name__)

__all__ = ["ResultsNotSaved", "RunInterrupted", "build_pipeline", "run_config"]


def build_pipeline(config, *, seed, memory=None, data_dir=None, ids=None, verbose=0,
                   grade_of=None):
    """The :class:`~skw2s.WeakToStrongPipeline` a validated config describes, for one seed.

    Parameters
    ----------
    config : dict
        A config from :func:`~skw2s.experiment.load_config`.
    seed : int
        The pipeline's ``random_state``.
    memory : str or None, default=None
        The pipeline's stage and round cache.
    data_dir : str, path-like or None, default=None
        The offline data folder (read for ``difficulty: {precomputed: grade}`` only).
    ids : list of str, default=None
        Question ids of the pool, row for row (needed for a precomputed difficulty).
    verbose : int, default=0
        The ``verbose`` of the pipeline and of every estimator whose config section does not
        set its own (progress bars). The config's ``tracking`` settings go to every learner
        whose section does not set its own the same way.
    grade_of : callable or None, default=None
        With ``difficulty: {precomputed: grade}`` and a ``test_split``: a function from
        generation input to the questions' grades, so that the splitter rates the test
        questions too.

    Returns
    -------
    pipeline : WeakToStrongPipeline
        Not fitted.
    """
    from ..w2s.difficulty import DifficultySplitter
    from ..w2s.pipeline import CASCADE_FOLDS, WeakToStrongPipeline

    learner_cls, ensemble_cls = _estimator_classes(config["task"])

    tracking = config.get("tracking") or {}

    def learner(params):
        return learner_cls(**{"verbose": verbose, **tracking, **params})

    weak = ensemble_cls(estimator=learner(config["weak"]),
                        **{"verbose": verbose, **config["boost"]})
    controls = None
    if config.get("controls"):
        from ._config import _control_class

        controls = []
        for name, settings in config["controls"].items():
            params = {k: v for k, v in settings.items() if k not in ("ensemble", "weak")}
            cls = _control_class(config["task"], settings["ensemble"])
            controls.append((name, cls(estimator=learner({**config["weak"], **settings["weak"]}),
                                       **{"verbose": verbose, **params})))
    strong = learner(config["strong"])
    splitter = "random"
    if config["split_kind"] == "easy_hard":
        d = config["difficulty"]
        kwargs = {k: d[k] for k in ("n_splits", "easy_fraction", "n_jobs") if k in d}
        if "precomputed" in d:
            from ..data.datasets import load_arc_metadata, resolve_data_dir

            subset = "easy" if config["dataset"] == "arc_easy" else "challenge"
            root = resolve_data_dir(data_dir or config["data_dir"])
            grades = load_arc_metadata(root, subset=subset)["grade"]
            kwargs.pop("n_splits", None)
            if grade_of is not None:  # rates the test questions too, by their prompts
                splitter = DifficultySplitter(difficulty=grade_of, random_state=seed, **kwargs)
            else:
                values = grades.reindex(ids).to_numpy(dtype=float)
                splitter = DifficultySplitter(difficulty=values, random_state=seed, **kwargs)
        else:
            params = {**config["weak"], **d.get("estimator", {})}
            splitter = DifficultySplitter(learner(params), random_state=seed, **kwargs)
    return WeakToStrongPipeline(
        weak=weak,
        strong=strong,
        controls=controls,
        student_losses=config.get("student_losses"),
        baseline_losses=config.get("baseline_losses"),
        splitter=splitter,
        test_size=config["test_size"],
        id_test_size=config["id_test_size"],
        baseline=config["baseline"],
        ceiling=config["ceiling"],
        soft_labels=config.get("soft_labels", False),
        label_fraction=config.get("label_fraction"),
        gold_fraction=config.get("gold_fraction", 0.0),
        cascade=[learner({**config["strong"], **step}) for step in config["cascade"]]
        if config.get("cascade") else None,
        cascade_folds=config.get("cascade_folds", CASCADE_FOLDS),
        random_state=seed,
        memory=memory,
        verbose=verbose,
    )


def _versions():
    import sklearn
    import torch
    import transformers

    from .. import __version__

    return {
        "skw2s": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "scikit-learn": sklearn.__version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, "
        + ("cuda: " + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"),
    }


def _jsonable(value):
    """numpy arrays and scalars inside nested dicts/lists as plain JSON values."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def _chance(pipe, data):
    """Per test set, the accuracy of a uniform guess: the mean of 1/options over its questions
    (multiple choice), or 1/classes."""
    import numpy as np

    X = data["X"] if data.get("X_test") is None else data["X_test"]
    out = {}
    for test, p in pipe.predictions_.items():
        if hasattr(X, "columns") and "choices" in X:
            choices = X["choices"].iloc[np.asarray(p["rows"])]
            out[test] = float(np.mean([1 / len(c) for c in choices]))
        else:
            out[test] = 1 / len(np.unique(data["y"]))
    return out


def _training_totals(stages):
    """The seed's training over its stages: ``train_seconds``, ``useful_flops``, the matmul
    rate of the devices it trained on (``peak_flops`` / seconds; see :mod:`skw2s.hf.efficiency`)
    and the ``efficiency`` they give (None when no stage trained)."""
    seconds = sum(s.get("train_seconds", 0.0) for s in stages)
    flops = sum(s.get("useful_flops", 0.0) for s in stages)
    peak = sum(s.get("peak_flops", 0.0) for s in stages)
    return {"train_seconds": seconds, "useful_flops": flops,
            "matmul_flops_per_second": peak / seconds if seconds > 0 and peak else None,
            "efficiency": flops / peak if peak > 0 and flops else None}


def _run_seed(config, pipe, data, seed, target):
    start, cpu_start = time.perf_counter(), time.process_time()
    X, y = data["X"], data["y"]
    try:
        pipe.fit(X, y, X_test=data.get("X_test"), y_test=data.get("y_test"))
    except FirstLearnerError as exc:  # name the config keys, not the Python parameters
        side = exc.weak_side or MAIN
        section = "weak" if side == MAIN else f"controls.{side}.weak"
        raise ValueError(exc.for_config(section)) from exc
    weak = pipe.weak_
    record = {
        "name": config["name"],
        "seed": seed,
        "config": config,
        "report": json.loads(pipe.report_.to_json(orient="records")),
        "pseudo_label_accuracy": pipe.pseudo_label_accuracy_,
        "n_easy": len(pipe.easy_indices_),
        "n_hard_train": len(pipe.hard_train_indices_),
        "n_test": len(pipe.test_indices_),
        "n_id_test": len(pipe.id_test_indices_),
        "weak_rounds": json.loads(json.dumps(getattr(weak, "history_", []), default=float)),
        "stop_reason": getattr(weak, "stop_reason_", None),
        "stages": pipe.history_,
        "labels": json.loads(pipe.labels_.to_json(orient="records")),
        "weak_disagreement": [{"weak_side": side, "test": test, "disagreement": value}
                              for (side, test), value in pipe.weak_disagreement_.items()],
        "control_rounds": {name: _jsonable(getattr(est, "history_", []))
                           for name, est in pipe.controls_.items()},
        "chance": _chance(pipe, data),
        "predictions": _jsonable({
            test: {"y": p["y"], "rows": p["rows"], "models": p["models"], "scores": p["scores"],
                   "members": p["members"],
                   "ids": [data["test_ids"][i] for i in p["rows"]] if data.get("test_ids")
                   else None}
            for test, p in pipe.predictions_.items()
        }),
        "seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu_start,  # every thread of this process
        **_training_totals(pipe.history_),
        "versions": _versions(),
    }
    text = json.dumps(record, indent=2, default=float)
    tmp = target.with_suffix(".tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, target)
    except BaseException as exc:  # a full disk, Ctrl-C: no partial file is left
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass  # the error that brought us here is the one to report
        if isinstance(exc, OSError):
            raise ResultsNotSaved(target, exc, record) from exc
        raise
    logger.info("seed %d done in %.0f s", seed, record["seconds"])


class ResultsNotSaved(OSError):
    """A seed finished but its results file could not be written (a full disk, say).

    Nothing partial is left on disk; ``summary`` holds the seed's results as a Markdown table,
    so that they can still be shown.

    Parameters
    ----------
    path : pathlib.Path
        The results file that could not be written.
    error : OSError
        Why.
    record : dict
        The seed's results, as its file would have held them.
    """

    def __init__(self, path, error, record):
        super().__init__(f"could not write {path} ({type(error).__name__}: {error})")
        self.path, self.error = path, error
        self.summary = _record_summary(record)


def _record_summary(record):
    import pandas as pd

    table = pd.DataFrame(record["report"])
    columns = [c for c in ("test", "model", "accuracy", "pgr") if c in table]
    return (f"{record['name']}, seed {record['seed']} (not saved):\n"
            + table[columns].to_markdown(index=False, floatfmt=".4f") + "\n")


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`run_config`; the message says which seeds finished and how to
    resume."""


def _check_output_dir(out):
    """Raise ``ValueError`` when ``out`` cannot hold the results: it is a file, cannot be
    created, or is not writable (checked with a probe file, so before any training)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"output_dir {out} is a file, not a directory: give another "
                         "output_dir (or --output-dir).")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".skw2s-write-check-", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ValueError(f"output_dir {out} is not writable ({type(exc).__name__}: "
                         f"{exc.strerror or exc}): give another output_dir (or --output-dir), "
                         "or make it writable.") from None


def run_config(config, *, data_dir=None, output_dir=None, force=False, seeds=None, verbose=0):
    """Fit the pipeline of a validated config once per seed, and write its results.

    Writes ``config.json`` (the config, with the output directory actually used),
    ``seed{N}.json`` per seed and the aggregate report of :func:`skw2s.report.write_report`.
    Finished seeds are skipped unless ``force``; stages and boosting rounds are cached, so an
    interrupted run resumes. The data are loaded before anything is written, and a run that
    fails before any seed has finished leaves no ``config.json`` behind.

    Parameters
    ----------
    config : dict
        A config from :func:`~skw2s.experiment.load_config`.
    data_dir : str, path-like or None, default=None
        The offline data folder of the built-in datasets (see :func:`load_task_data`).
    output_dir : str, path-like or None, default=None
        Overrides the config's ``output_dir``.
    force : bool, default=False
        Rerun seeds that already finished.
    seeds : list of int, default=None
        Run only these seeds in this call; ``config.json`` still records the config's own list.
    verbose : int, default=0
        Progress bars of the pipeline and the estimators (see :func:`build_pipeline`).

    Returns
    -------
    out : pathlib.Path
        The output directory.
    """
    out = Path(output_dir or config["output_dir"])
    config = {**config, "output_dir": str(out)}
    seeds = config["seeds"] if seeds is None else [int(s) for s in seeds]
    data = load_task_data(config, data_dir, with_test=True)
    logger.info("%s: %d examples, seeds %s, output in %s", config["name"], len(data["X"]), seeds,
                out)
    pipes = {seed: build_pipeline(
        config, seed=seed, memory=str(config["cache_dir"] or out / "cache" / f"seed{seed}"),
        data_dir=data_dir, ids=data["ids"], verbose=verbose, grade_of=data.get("grade_of"),
    ) for seed in seeds}
    _check_output_dir(out)
    config_file = out / "config.json"
    finished, running = [], None
    try:
        config_file.write_text(json.dumps(config, indent=2, default=str))
        for seed in seeds:
            target = out / f"seed{seed}.json"
            if target.exists() and not force:
                logger.info("seed %d already finished (%s); skipping", seed, target)
                finished.append(seed)
                continue
            running = seed
            # pop: a fitted pipeline holds every model of its seed; keeping them all would
            # grow the memory with every seed. Its training runs are named seed{N}/STAGE.
            with training_run(f"seed{seed}"), tensorboard_root(out / "tensorboard"):
                _run_seed(config, pipes.pop(seed), data, seed, target)
            finished.append(seed)
            running = None
    except BaseException as exc:
        if not any(out.glob("seed*.json")):
            config_file.unlink(missing_ok=True)
        if isinstance(exc, KeyboardInterrupt):
            done = (f"seed(s) {', '.join(map(str, finished))} finished and saved in {out}"
                    if finished else "no seed finished")
            now = "" if running is None else f"; seed {running} was running"
            raise RunInterrupted(
                f"{done}{now}. Run the same command again to resume: finished seeds are "
                "skipped and finished stages come from the cache."
            ) from None
        raise
    from .report import write_report

    write_report([out], out)
    return out
