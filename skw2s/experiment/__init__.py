"""The experiment layer: a config's schema and validation, its task data, the pipeline it
describes, and the runner that fits one pipeline per seed and writes the per-seed JSON.

The ``skw2s`` command (:mod:`skw2s.cli`) is a thin argparse layer over this module.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["ConfigError", "DEMO_CONFIG", "build_pipeline", "load_config", "load_task_data", "run_config"]

TASKS = ("binary", "multiple_choice")
SPLIT_KINDS = ("random", "easy_hard")
DEFAULTS = {
    "name": None,
    "task": "binary",
    "dataset": "sciq",
    "data_dir": None,
    "split": "train",
    "n_examples": 600,
    "data_seed": 0,
    "use_support": False,
    "split_kind": "random",
    "difficulty": None,
    "test_size": 0.25,
    "id_test_size": None,
    "seeds": [0],
    "weak": {},
    "boost": {},
    "strong": {},
    "baseline": True,
    "ceiling": True,
    "output_dir": None,
    "cache_dir": None,
}
DIFFICULTY_KEYS = ("n_splits", "easy_fraction", "estimator", "precomputed", "n_jobs")

DEMO_CONFIG = {
    "name": "demo-sciq-binary",
    "task": "binary",
    "dataset": "sciq",
    "n_examples": 1600,
    "split_kind": "random",
    "test_size": 0.4,
    "id_test_size": 0.2,
    "seeds": [0, 1, 2],
    # The SciQ-binary pair of benchmarks/CAPABILITY.md: the first 6 and the first 12 of
    # SmolLM2-135M's 30 layers, each a linear head on its frozen features (the largest
    # measured gap with the strong side ahead). 30 Adam steps keep each weak learner from
    # fitting the easy half perfectly (at 200 steps the first learner has zero training error
    # and boosting stops after one round).
    "weak": {"model": "smollm2-135m[:6]", "mode": "head", "lr": 1e-2, "n_epochs": 30,
             "max_length": 96, "batch_size": 16},
    "boost": {"n_estimators": 5, "sampling": "reweight"},
    "strong": {"model": "smollm2-135m[:12]", "mode": "head", "max_length": 96, "batch_size": 16},
}


class ConfigError(ValueError):
    """A configuration file names an unknown key or an invalid value."""


def _estimator_classes(task):
    from .. import LLMAdaBoostClassifier, LLMClassifier, LLMGenerator, TokenAdaBoostGenerator

    if task == "binary":
        return LLMClassifier, LLMAdaBoostClassifier
    return LLMGenerator, TokenAdaBoostGenerator


def _check_keys(section, given, allowed):
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise ConfigError(
            f"Unknown key(s) {unknown} in {section}. Allowed: {', '.join(sorted(allowed))}."
        )


def _choice(key, value, allowed):
    if value not in allowed:
        raise ConfigError(f"Bad value {value!r} for '{key}'. Allowed: {', '.join(map(str, allowed))}.")


def load_config(source) -> dict:
    """Read and validate a config (a path to YAML, or a dict); returns it with defaults filled."""
    import yaml

    from ..datasets import DATASETS

    if isinstance(source, dict):
        raw = copy.deepcopy(source)
    else:
        path = Path(source)
        if not path.exists():
            raise ConfigError(f"Config file {path} does not exist.")
        raw = yaml.safe_load(path.read_text()) or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"Config file {path} must hold a mapping of keys to values.")
        raw.setdefault("name", path.stem)
    _check_keys("the config", raw, DEFAULTS)
    config = copy.deepcopy(DEFAULTS)
    config.update(raw)
    _choice("task", config["task"], TASKS)
    _choice("dataset", config["dataset"], sorted(DATASETS))
    _choice("split_kind", config["split_kind"], SPLIT_KINDS)
    _choice("split", config["split"], ("train", "validation", "test"))
    if config["task"] == "binary" and config["dataset"] != "sciq":
        raise ConfigError("task 'binary' is built from SciQ (Burns et al.); set dataset: sciq.")
    seeds = config["seeds"]
    if isinstance(seeds, int):
        seeds = [seeds]
    if not seeds or not all(isinstance(s, int) for s in seeds):
        raise ConfigError(f"'seeds' must be an int or a non-empty list of ints; got {seeds!r}.")
    config["seeds"] = list(seeds)
    learner_cls, ensemble_cls = _estimator_classes(config["task"])
    learner_params = set(learner_cls().get_params(deep=False))
    _check_keys("'weak'", config["weak"], learner_params)
    _check_keys("'strong'", config["strong"], learner_params)
    _check_keys("'boost'", config["boost"], set(ensemble_cls().get_params(deep=False)) - {"estimator"})
    difficulty = config["difficulty"]
    if config["split_kind"] == "easy_hard":
        difficulty = dict(difficulty or {})
        _check_keys("'difficulty'", difficulty, DIFFICULTY_KEYS)
        _check_keys("'difficulty.estimator'", difficulty.get("estimator", {}), learner_params)
        if "precomputed" in difficulty:
            _choice("difficulty.precomputed", difficulty["precomputed"], ("grade",))
            if config["dataset"] not in ("arc_easy", "arc_challenge"):
                raise ConfigError("difficulty.precomputed: grade exists only for ARC datasets.")
        config["difficulty"] = difficulty
    if config["name"] is None:
        config["name"] = f"{config['dataset']}-{config['task']}-{config['split_kind']}"
    if config["output_dir"] is None:
        config["output_dir"] = str(Path("runs") / config["name"])
    return config


def load_task_data(config, data_dir=None):
    """The labelled pool ``(X, y, ids)`` that a config describes."""
    from sklearn.utils import check_random_state

    from ..datasets import binarize_sciq, load_dataset, resolve_data_dir, to_classification, to_multiple_choice

    root = resolve_data_dir(data_dir or config["data_dir"])
    df = load_dataset(config["dataset"], split=config["split"], data_dir=root)
    n = config["n_examples"]
    if n is not None and n < len(df):
        rows = np.sort(check_random_state(config["data_seed"]).choice(len(df), n, replace=False))
        df = df.iloc[rows].reset_index(drop=True)
    if config["task"] == "binary":
        binary = binarize_sciq(df, random_state=config["data_seed"])
        X, y = to_classification(binary)
        return X, y, df["id"].tolist()
    X, y = to_multiple_choice(df, use_support=config["use_support"])
    return X, y, df["id"].tolist()


def build_pipeline(config, *, seed, memory=None, data_dir=None, ids=None):
    """The :class:`~skw2s.WeakToStrongPipeline` a config describes, for one seed."""
    from ..difficulty import DifficultySplitter
    from ..pipeline import WeakToStrongPipeline

    learner_cls, ensemble_cls = _estimator_classes(config["task"])
    weak = ensemble_cls(estimator=learner_cls(**config["weak"]), **config["boost"])
    strong = learner_cls(**config["strong"])
    splitter = "random"
    if config["split_kind"] == "easy_hard":
        d = config["difficulty"]
        kwargs = {k: d[k] for k in ("n_splits", "easy_fraction", "n_jobs") if k in d}
        if "precomputed" in d:
            from ..datasets import load_arc_metadata, resolve_data_dir

            subset = "easy" if config["dataset"] == "arc_easy" else "challenge"
            root = resolve_data_dir(data_dir or config["data_dir"])
            grades = load_arc_metadata(root, subset=subset)["grade"]
            values = grades.reindex(ids).to_numpy(dtype=float)
            kwargs.pop("n_splits", None)
            splitter = DifficultySplitter(difficulty=values, random_state=seed, **kwargs)
        else:
            params = {**config["weak"], **d.get("estimator", {})}
            splitter = DifficultySplitter(learner_cls(**params), random_state=seed, **kwargs)
    return WeakToStrongPipeline(
        weak=weak,
        strong=strong,
        splitter=splitter,
        test_size=config["test_size"],
        id_test_size=config["id_test_size"],
        baseline=config["baseline"],
        ceiling=config["ceiling"],
        random_state=seed,
        memory=memory,
        verbose=1,
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


def run_config(config, *, data_dir=None, output_dir=None, force=False, seeds=None):
    """Run the seeds of a validated config (or only ``seeds``, a subset run in this call:
    ``config.json`` still records the config's own list); returns the output directory."""
    out = Path(output_dir or config["output_dir"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config, indent=2, default=str))
    seeds = config["seeds"] if seeds is None else [int(s) for s in seeds]
    X, y, ids = load_task_data(config, data_dir)
    logger.info("%s: %d examples, seeds %s, output in %s", config["name"], len(X), seeds, out)
    for seed in seeds:
        target = out / f"seed{seed}.json"
        if target.exists() and not force:
            logger.info("seed %d already finished (%s); skipping", seed, target)
            continue
        start = time.perf_counter()
        memory = config["cache_dir"] or out / "cache" / f"seed{seed}"
        pipe = build_pipeline(config, seed=seed, memory=str(memory), data_dir=data_dir, ids=ids)
        pipe.fit(X, y)
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
            "seconds": time.perf_counter() - start,
            "versions": _versions(),
        }
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=2, default=float))
        os.replace(tmp, target)
        logger.info("seed %d done in %.0f s", seed, record["seconds"])
    from ..report import write_report

    write_report([out], out)
    return out
