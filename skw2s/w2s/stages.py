"""The stages of :class:`~skw2s.WeakToStrongPipeline`: the one table of their store keys, and
the runner that loads each stage from the store or computes, saves and times it.

A stage's key names everything its result depends on, so that runs which share a stage share
its stored entry. :data:`STAGE_KEYS` holds every recipe; the versioned strings in them
(``"split-v2"``, ``"student-v2"``, ...) change only when a stage's result would change for the
same inputs, which orphans the stored entries of that kind.
"""

from __future__ import annotations

import logging
import time

from tqdm.auto import tqdm

from .._infra.cache import fingerprint, is_tracking_param
from ..exceptions import DivergenceError
from ..hf.efficiency import collect_training_stats
from ..hf.models import with_checkpoints
from ..hf.tracking import training_run, untracked

logger = logging.getLogger(__name__)

__all__ = ["STAGE_KEYS", "StageRunner", "stage_key"]


def _verbose_free(estimator):
    """The estimator's parameters without ``verbose``, ``report_to`` and ``logging_steps``
    (anywhere; :data:`skw2s._infra.cache.TRACKING_PARAMS`), for stage keys: progress bars and
    trackers never change a result."""
    return sorted((k, v) for k, v in estimator.get_params(deep=True).items()
                  if not is_tracking_param(k) and not hasattr(v, "get_params"))


def _model_parts(model, seed):
    """What a strong model (student, baseline, ceiling, cascade step) is, for stage keys."""
    return with_checkpoints((type(model).__name__, _verbose_free(model), seed), model)


STAGE_KEYS = {
    # the easy / hard / test rows; ``pipe`` gives its class name and split parameters
    "split": lambda pipe, seed, X, y, X_test, y_test: (
        type(pipe).__name__, "split-v2", untracked(pipe.splitter), pipe.test_size,
        pipe.id_test_size, seed, X, y, X_test, y_test),
    # a splitter's split of a given test set: hard rows cut at the pool's threshold and ties
    "split+external": lambda split: (split, "external-ties-v1"),
    # the splitter's local checkpoints, when it names any (see hf.models.checkpoints)
    "split+checkpoints": lambda split, found: (split, found),
    "weak": lambda split, seed, estimator: with_checkpoints(
        (split, "weak", seed, type(estimator).__name__, _verbose_free(estimator)), estimator),
    # the labels of a fitted labeller (a weak side or a cascade step), keyed by its own key
    "labels": lambda labeller, soft_labels, label_fraction: (
        labeller, "labels", soft_labels, label_fraction),
    # a cascade step's labels of the held-out fold ``rows``, by the model trained on the rest
    "fold-labels": lambda labeller, rows, soft_labels, label_fraction: (
        labeller, "fold-labels", rows, soft_labels, label_fraction),
    # the first weak learner's labels: they depend on the weak side, not on its rounds
    "baseline-labels": lambda split, seed, weak, soft_labels, label_fraction: (
        split, "baseline-labels",
        fingerprint(*with_checkpoints((seed, _verbose_free(weak)), weak)),
        soft_labels, label_fraction),
    # a student, baseline student or cascade step: keyed by the content of its kept labels
    "student": lambda split, model, seed, loss, rows, labels: (
        "student-v2", _model_parts(model, seed), loss, rows, labels["hard"][rows],
        None if labels["proba"] is None else labels["proba"][rows], split),
    "ceiling": lambda split, model, seed: ("ceiling-v2", _model_parts(model, seed), split),
}
"""Every stage kind's key recipe: the parts, given by name, that its store key hashes."""


def stage_key(kind, **inputs):
    """The store key of a stage of ``kind`` (a key of :data:`STAGE_KEYS`) for ``inputs``."""
    return fingerprint(*STAGE_KEYS[kind](**inputs))


class StageRunner:
    """Runs stages in order: each is loaded from ``store`` (None: no store) under its key or
    computed and saved, and ``history`` gets its record (see ``WeakToStrongPipeline.history_``).
    Use it as a context manager, which closes the progress bar over ``n_stages`` stages."""

    def __init__(self, store, n_stages, verbose):
        self.store = store
        self.history = []
        self._bar = tqdm(total=n_stages, desc="w2s stages", disable=not verbose, leave=False)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._bar.close()
        return False

    def __call__(self, name, key, compute, check):
        """The value of stage ``name``: stored under ``key`` (and valid by ``check``, which
        raises on an entry that does not fit), or ``compute()``, then stored."""
        store = self.store
        start, cpu_start = time.perf_counter(), time.process_time()
        with collect_training_stats() as trained:
            value = store.load("pipeline", key, check=check) if store is not None else None
            cached = value is not None
            if not cached:
                try:
                    with training_run(name):  # the name its training runs log under
                        value = compute()
                except DivergenceError as error:
                    # the stages before it are stored; later ones do not run
                    raise error.within(f"stage {name}") from None
                if store is not None:
                    store.save("pipeline", key, value)
        self.history.append({
            "stage": name, "cached": cached, "seconds": time.perf_counter() - start,
            "cpu_seconds": time.process_time() - cpu_start,
            "train_seconds": trained.seconds, "useful_flops": trained.useful_flops,
            "peak_flops": trained.peak_flops, "efficiency": trained.efficiency(),
            "padding": trained.padding, "loss_curve": trained.loss_curves,
        })
        logger.info("Stage %s %s", name, "loaded from memory" if cached else "done")
        self._bar.update()
        return value
