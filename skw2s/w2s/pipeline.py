"""The easy-to-hard weak-to-strong protocol in one estimator.

:class:`WeakToStrongPipeline` runs section 2 of the paper (and ``ALGORITHMS.md``):

1. split the labelled pool into easy and hard (at random, 50/50, as Burns et al., or by a
   :class:`~skw2s.DifficultySplitter`); the test set is drawn from the hard side, or given;
2. fit the weak ensemble on the easy side, and each control weak side (``controls``) on the
   same rows with the same seed;
3. pseudo-label the hard training part with every weak side (optionally keeping only the most
   confident fraction of the labels);
4. fit one strong student per weak side and student loss on those labels, the baseline student
   on the first weak learner's labels, and the ceiling on the gold hard labels;
5. score every model on every test question (``report_``, ``predictions_``).

**Common random numbers.** Within one fit, every strong model (students, baseline, ceiling)
trains from the same seed, and every weak side from the same seed, so that compared models
differ in what is compared only: a student in its labels, a weak side in its weighting. Round 1
of a boosting ensemble is then member 1 of a uniform control (see
:mod:`skw2s.ensemble.uniform`) and the single weak learner of the baseline.

Every finished stage is stored when ``memory`` is set, keyed by what it depends on (students by
the content of their labels), so a fit that is interrupted, even by ``kill -9``, resumes where
it stopped, and runs that share a stage share its entry.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone, is_classifier
from sklearn.utils.validation import check_is_fitted

from .._infra.cache import get_store
from ..hf.models import checkpoints
from .._infra.validation import (
    MEMORY,
    NONE,
    RANDOM_STATE,
    VERBOSE,
    HasMethods,
    Interval,
    InstanceOf,
    resolve_seed,
    take_rows,
    validate_params,
)
from ..core.random import cascade_fold_rng, gold_rng, split_rng, stage_seeds
from ._constraints import (
    NamedEstimatorsConstraint,
    NameListConstraint,
    SizeConstraint,
    SplitterConstraint,
)
from .difficulty import DifficultySplitter
from ..exceptions import FirstLearnerError
from .names import BASELINE, CASCADE, CEILING, GOLD, MAIN
from .stages import StageRunner, stage_key

__all__ = ["WeakToStrongPipeline"]

_MIN_TEST = 20  # fewer test questions than this give a warning: accuracies move in 5% steps
CASCADE_FOLDS = 2
"""The default of ``cascade_folds``, the folds of a cascade step's out-of-fold labels: a copy
trained on the other folds' rows labels each fold (see ``WeakToStrongPipeline``'s ``cascade``)."""


def _is_generator(estimator):
    return hasattr(estimator, "generate")


def _check_rows(rows, n_rows, name):
    """Raise ``ValueError`` unless ``rows`` are distinct row indices below ``n_rows``."""
    if not isinstance(rows, np.ndarray) or rows.ndim != 1 or (
            len(rows) and not np.issubdtype(rows.dtype, np.integer)):
        raise ValueError(f"the {name} rows are not a 1-D integer array")
    if len(rows) and (rows.min() < 0 or rows.max() >= n_rows):
        raise ValueError(f"the {name} rows index outside the {n_rows} rows")
    if len(np.unique(rows)) != len(rows):
        raise ValueError(f"the {name} rows repeat")


def _check_fitted(value, estimator):
    """Raise unless ``value`` is a fitted estimator of ``estimator``'s type."""
    if type(value) is not type(estimator):
        raise ValueError(f"it holds a {type(value).__name__}, not a {type(estimator).__name__}")
    check_is_fitted(value)


@dataclass
class _Fit:
    """What the stages of one ``fit`` share: the stage runner, the split's key, the seeds
    (``split``, ``weak``, ``strong``) and the hard training rows."""

    run: StageRunner
    split: str
    seeds: dict
    X_hard: object
    y_hard: np.ndarray


class WeakToStrongPipeline(BaseEstimator):
    """Weak ensemble on easy data, strong student on its pseudo-labels for hard data.

    Parameters
    ----------
    weak : estimator, default=None
        The weak side ("ours" in ``report_``): an ensemble such as
        :class:`~skw2s.LLMAdaBoostClassifier` (binary) or
        :class:`~skw2s.TokenAdaBoostGenerator` (multiple choice / generation). It must offer
        ``pseudo_label(X)`` (else ``predict`` is used) and ``estimators_`` (its first learner
        gives the baseline's labels). Cloned in ``fit``.
    strong : estimator, default=None
        The strong model, cloned for every student, the baseline student and the ceiling. It
        must read the weak side's labels: a classifier under a classifier, a generator under a
        generator.
    controls : list of (str, estimator) or None, default=None
        Other weak sides compared with ``weak``, for example
        ``[("uniform", UniformEnsembleClassifier(...))]``. Each is fitted on the same easy
        rows with the same seed as ``weak``, labels the same hard rows, and gets its own
        students.
    student_losses : list of str or None, default=None
        One student per weak side and loss, the strong estimator with ``loss`` set to each
        name (``LLMClassifier(loss=...)``). None trains with the strong estimator's own loss
        only.
    baseline_losses : list of str or None, default=None
        The losses of the baseline students (one per loss, on the first weak learner's
        labels), for example ``["xent", "logconf"]`` for the auxiliary-confidence control.
        None: the same as ``student_losses``.
    splitter : "random" or DifficultySplitter, default="random"
        ``"random"`` splits the pool 50/50 (Burns et al.); a :class:`DifficultySplitter` rates
        difficulty and puts its easy rows on the weak side.
    test_size : float or int, default=0.25
        Part of the hard side held out for testing (a fraction of it, or a count). Unused
        when ``fit`` is given ``X_test``.
    id_test_size : float, int or None, default=None
        Part of the easy side held out as an in-distribution test set. ``None`` holds out
        nothing. Unused when ``fit`` is given ``X_test``.
    baseline : bool, default=True
        Also train the student on the first weak learner's labels alone.
    ceiling : bool, default=True
        Also train the strong model on the gold hard labels (the upper bound, and PGR's
        denominator).
    soft_labels : bool, default=False
        Train the students on the weak sides' ``predict_proba`` (passed to the strong
        estimator's ``fit`` as ``y_proba``) as well as their hard labels.
    label_fraction : float or None, default=None
        Keep only this fraction of each weak side's most confident pseudo-labels (largest
        ``predict_proba``) for its students; ``pseudo_labels_`` reports the kept labels'
        accuracy against gold. None keeps all.
    gold_fraction : float, default=0.0
        A labelling budget: when positive, the weak side ``"ours+gold"`` is added, whose
        labels are those of ``weak`` with a seeded ``round(gold_fraction * n)`` of the ``n``
        hard training rows given their gold labels instead (the rows depend on the seed and
        ``n`` only, so every fraction's rows hold the smaller fractions' rows; one-hot
        probabilities there under ``soft_labels``; confidence 1 under ``label_fraction``). It
        gets its students, one per loss, paired with the rest of the run; ``labels_`` states
        how many gold labels each weak side's students saw (``n_gold``). 0 adds nothing (the
        pipeline is unchanged), 1 gives the gold labels the ceiling trains on (EleutherAI
        w2s's ``cost_sweep`` mixes weak and gold labels this way).
    cascade : list of estimators or None, default=None
        Intermediate strong models, weakest first, for a weak → intermediate(s) → strong chain
        (Burns et al.'s bootstrapping): the first is trained on ``weak``'s labels of the hard
        training rows (with the first student loss), its labels of the same rows train the
        next, and the last one's labels train the students of ``strong``, reported as the
        weak side ``"cascade"``. A step's labels are out of fold: the rows fall in
        ``cascade_folds`` seeded folds, and each fold is labelled by a copy of the step
        trained on the other folds only, since a step that labelled the rows it trained on
        would give back its training labels wherever it fits them (the chain would then be
        ``weak`` again). Each intermediate trained on all the rows is reported, its accuracy
        and PGR as ``model="cascade_step"`` with ``round`` its place in the chain. None: no
        cascade.
    cascade_folds : int, default=2
        The folds of a cascade step's out-of-fold labels (at least 2): each step trains this
        many copies, each on ``(cascade_folds - 1) / cascade_folds`` of the hard training
        rows, so more folds give each copy more rows at a proportional cost. The fold of each
        row depends on the seed and the number of rows only. Unused without ``cascade``.
    random_state : int, RandomState instance or None, default=None
        Seeds the split, the weak sides (all the same seed) and the strong models (all the
        same seed).
    memory : str, joblib.Memory or None, default=None
        Directory where finished stages and boosting rounds are stored; a later fit with the
        same data and parameters resumes from them.
    verbose : int, default=0
        Progress bar over the stages when positive.

    Attributes
    ----------
    weak_ : estimator
        The fitted weak ensemble.
    controls_ : dict of str to estimator
        The fitted control weak sides.
    student_ : estimator
        The student trained on the ensemble's pseudo-labels with the first student loss.
    students_ : dict of (str, str) to estimator
        Every student, by ``(weak side, loss)``; the weak side of ``weak`` is ``"ours"``.
    baseline_ : estimator or None
        The student trained on the first weak learner's labels, first baseline loss.
    baselines_ : dict of str to estimator
        The baseline students by loss.
    ceiling_ : estimator or None
        The strong model trained on the gold hard labels.
    splitter_ : DifficultySplitter or None
        The fitted splitter (``None`` for a random split).
    easy_indices_, hard_train_indices_, test_indices_ : ndarray
        Rows of the training pool on each side (``test_indices_`` is empty with ``X_test``).
    id_test_indices_ : ndarray
        Easy rows held out for the in-distribution test.
    pseudo_labels_ : ndarray
        The ensemble's labels for the hard training rows.
    baseline_labels_ : ndarray or None
        The first weak learner's labels for the same rows.
    pseudo_label_accuracy_ : float
        Agreement of the ensemble's pseudo-labels with the gold hard labels.
    gold_indices_ : ndarray
        With ``gold_fraction > 0``: positions, within the hard training rows, that the
        ``"ours+gold"`` students saw with gold labels (empty otherwise).
    cascade_steps_ : list of estimators
        The fitted intermediate models of ``cascade`` (empty without one).
    labels_ : pandas.DataFrame
        One row per weak side (and ``"baseline"``): ``n_labels``, ``n_kept``, ``n_gold`` (gold
        labels among the kept ones), ``accuracy`` (all labels against gold) and
        ``kept_accuracy`` (the labels the students trained on).
    report_ : pandas.DataFrame
        One row per model and test set: ``weak_side``, ``model`` (``weak_single``,
        ``weak_round``, ``weak_ensemble``, ``baseline_student``, ``ensemble_student``,
        ``ceiling``), ``loss``, ``round``, ``test`` (``"hard"``: the test set of the
        student side, or ``"easy"`` for the in-distribution rows; under
        ``splitter="random"`` the "hard" test is a random share of the pool, or all of
        ``X_test`` when one is given, not harder questions), ``n_test``, ``accuracy``,
        ``auroc`` (binary tasks; NaN otherwise), ``token_error`` (generators), ``pgr``,
        ``gap``, ``pgr_auroc`` and ``gap_auroc``. Students' PGR use the single weak learner
        as the weak reference.
    predictions_ : dict
        Per test set: ``{"y": gold labels, "rows": their indices, "models": {name: labels},
        "scores": {name: positive-class probabilities (binary)}, "members": {weak_side:
        [labels of each learner alone, in round order]}}``; names are
        ``"{weak_side}/{model}/{loss}"``. Every model on every test question, for paired
        statistics (:mod:`skw2s.stats`).
    weak_disagreement_ : dict of (str, str) to float
        Per ``(weak side, test set)``: the mean over pairs of learners of the fraction of test
        questions on which the two predict differently.
    history_ : list of dict
        Per stage: ``stage`` (its name), ``cached`` (whether it came from ``memory``),
        ``seconds`` (wall) and ``cpu_seconds`` (this process's CPU time, every thread), and
        of the training runs in it (in this process): ``train_seconds`` (wall, inside the
        training loops), ``useful_flops``, ``efficiency`` (useful FLOPs / (train seconds x
        this process's float32 matmul rate); None when nothing trained), ``padding`` (the
        share of padded token positions) and ``loss_curve`` (one ``{"run", "points"}`` per
        training run: its name, ``"weak[ours]/round2"``, and up to 50 ``[step, loss]``
        points; empty for a cached stage). See :mod:`skw2s.hf.efficiency` for the counting
        rule and :mod:`skw2s.hf.tracking` for run names and trackers.

    Examples
    --------
    >>> from skw2s import WeakToStrongPipeline, LLMAdaBoostClassifier, LLMClassifier
    >>> pipe = WeakToStrongPipeline(                                  # doctest: +SKIP
    ...     weak=LLMAdaBoostClassifier(LLMClassifier("smollm2-135m[:6]", mode="head")),
    ...     strong=LLMClassifier("smollm2-135m[:12]", mode="head"), random_state=0)
    >>> pipe.fit(texts, labels).report_                               # doctest: +SKIP
    """

    _parameter_constraints = {
        "weak": [HasMethods(("fit",)), NONE],
        "strong": [HasMethods(("fit",)), NONE],
        "controls": [NamedEstimatorsConstraint(MAIN)],
        "student_losses": [NameListConstraint()],
        "baseline_losses": [NameListConstraint()],
        "splitter": [SplitterConstraint()],
        "test_size": [SizeConstraint()],
        "id_test_size": [SizeConstraint(), NONE],
        "baseline": [InstanceOf((bool, np.bool_), "a bool")],
        "ceiling": [InstanceOf((bool, np.bool_), "a bool")],
        "soft_labels": [InstanceOf((bool, np.bool_), "a bool")],
        "label_fraction": [Interval(Real, 0, 1, closed="right"), NONE],
        "gold_fraction": [Interval(Real, 0, 1, closed="both")],
        "cascade": [InstanceOf((list, tuple), "a list of estimators"), NONE],
        "cascade_folds": [Interval(Integral, 2, None, closed="left")],
        "random_state": [RANDOM_STATE],
        "memory": [MEMORY],
        "verbose": VERBOSE,
    }

    def __init__(
        self,
        weak=None,
        strong=None,
        *,
        controls=None,
        student_losses=None,
        baseline_losses=None,
        splitter="random",
        test_size=0.25,
        id_test_size=None,
        baseline=True,
        ceiling=True,
        soft_labels=False,
        label_fraction=None,
        gold_fraction=0.0,
        cascade=None,
        cascade_folds=CASCADE_FOLDS,
        random_state=None,
        memory=None,
        verbose=0,
    ):
        self.weak = weak
        self.strong = strong
        self.controls = controls
        self.student_losses = student_losses
        self.baseline_losses = baseline_losses
        self.splitter = splitter
        self.test_size = test_size
        self.id_test_size = id_test_size
        self.baseline = baseline
        self.ceiling = ceiling
        self.soft_labels = soft_labels
        self.label_fraction = label_fraction
        self.gold_fraction = gold_fraction
        self.cascade = cascade
        self.cascade_folds = cascade_folds
        self.random_state = random_state
        self.memory = memory
        self.verbose = verbose

    # -- validation ---------------------------------------------------------------------
    def _validate(self, X, y, X_test, y_test):
        validate_params(self)
        for name in ("weak", "strong"):
            if getattr(self, name) is None:
                raise ValueError(f"WeakToStrongPipeline needs a '{name}' estimator; got None.")
        for name, side in self._weak_sides():
            if _is_generator(side) != _is_generator(self.strong) or (
                is_classifier(side) != is_classifier(self.strong)
            ):
                raise ValueError(
                    f"The strong estimator {type(self.strong).__name__} cannot read the labels "
                    f"of the weak side {name!r} ({type(side).__name__}): pair a classifier with a "
                    "classifier (binary labels) or a generator with a generator."
                )
        taken = {name for name, _ in (self.controls or [])} & {GOLD, CASCADE}
        if taken:
            raise ValueError(f"Control name(s) {sorted(taken)} are reserved for the weak sides of "
                             "gold_fraction and cascade; rename the control.")
        for k, model in enumerate(self.cascade or [], start=1):
            if not hasattr(model, "fit") or _is_generator(model) != _is_generator(self.strong) or (
                is_classifier(model) != is_classifier(self.strong)
            ):
                raise ValueError(
                    f"Step {k} of cascade ({type(model).__name__}) must be an estimator of the "
                    f"strong estimator's kind ({type(self.strong).__name__}): it is trained on "
                    "labels and labels the next step."
                )
        self._check_model_specs()
        self._check_estimator_params()
        if len(X) != len(y):
            raise ValueError(f"X has {len(X)} rows but y has {len(y)}.")
        if len(X) < 4:
            raise ValueError(f"WeakToStrongPipeline needs at least 4 examples; got {len(X)}.")
        if (X_test is None) != (y_test is None):
            raise ValueError("Give both X_test and y_test, or neither.")
        if X_test is not None and len(X_test) != len(y_test):
            raise ValueError(f"X_test has {len(X_test)} rows but y_test has {len(y_test)}.")
        if X_test is not None and len(X_test) == 0:
            raise ValueError("X_test is empty: give test rows, or leave X_test out to hold some "
                             "hard rows out (test_size).")

    def _check_model_specs(self):
        """Fail before any training when a model spec anywhere in the pipeline cannot load."""
        from ..hf.models import check_model_spec

        estimators = [est for _, est in self._weak_sides()] + [self.strong]
        estimators += list(self.cascade or [])
        if isinstance(self.splitter, DifficultySplitter) and self.splitter.estimator is not None:
            estimators.append(self.splitter.estimator)
        for est in estimators:
            for name, value in est.get_params(deep=True).items():
                if (name == "model" or name.endswith("__model")) and isinstance(value, str):
                    check_model_spec(value)

    def _check_estimator_params(self):
        """Fail before any training when a parameter of any estimator (nested ones included),
        or a student or baseline loss, is invalid: the strong side is fitted last, and
        without ``memory`` the weak side's work would be lost."""
        sides = [(f"weak side {name!r}", est) for name, est in self._weak_sides()]
        sides.append(("strong", self.strong))
        sides += [(f"cascade step {i}", est) for i, est in enumerate(self.cascade or [], 1)]
        if isinstance(self.splitter, DifficultySplitter) and self.splitter.estimator is not None:
            sides.append(("splitter estimator", self.splitter.estimator))

        def ours(part):  # scikit-learn's own estimators check their constraints in their fit
            return (hasattr(part, "_parameter_constraints")
                    and type(part).__module__.split(".")[0] == "skw2s")

        for label, est in sides:
            nested = [value for value in est.get_params(deep=True).values() if ours(value)]
            for part in [est, *nested]:
                if ours(part):
                    try:
                        validate_params(part)
                    except ValueError as exc:
                        raise ValueError(f"{label}: {exc}") from None
        if ours(self.strong) and "loss" in self.strong.get_params(deep=False):
            for loss in dict.fromkeys([*self._losses(), *self._baseline_losses()]):
                try:
                    student = clone(self.strong).set_params(loss=loss)
                    validate_params(student)
                except ValueError as exc:
                    raise ValueError(f"student loss {loss!r}: {exc}") from None

    def _weak_sides(self):
        return [(MAIN, self.weak)] + list(self.controls or [])

    def _losses(self):
        if self.student_losses is not None:
            return list(self.student_losses)
        return [self.strong.get_params().get("loss", "xent")]

    def _baseline_losses(self):
        return self._losses() if self.baseline_losses is None else list(self.baseline_losses)

    def _test_count(self, n_rows, name="test_size", side="hard"):
        size = getattr(self, name)
        count = int(round(size * n_rows)) if isinstance(size, float) else int(size)
        if count < 1 or count >= n_rows:
            raise ValueError(
                f"{name}={size!r} of the {n_rows} {side} examples leaves the "
                f"{'test set' if count < 1 else f'{side} training side'} empty."
            )
        return count

    # -- stages -------------------------------------------------------------------------
    def _seeded(self, estimator, seed):
        est = clone(estimator)
        if "random_state" in est.get_params(deep=False):
            est.set_params(random_state=seed)
        return est

    def _split(self, X, y, X_test, y_test, rng):
        n = len(X)
        if self.splitter == "random":
            order = rng.permutation(n)
            easy, hard = np.sort(order[: n // 2]), np.sort(order[n // 2 :])
            splitter = None
        else:
            splitter = clone(self.splitter).fit(X, y)
            easy, hard = splitter.split()
        if len(easy) == 0 or len(hard) == 0:
            side = "easy" if len(easy) == 0 else "hard"
            raise ValueError(f"The split left the {side} side empty.")
        parts = {"splitter": splitter, "easy": easy, "hard_train": hard,
                 "test": np.array([], dtype=int), "id_test": np.array([], dtype=int)}
        if X_test is not None:
            n_test = len(X_test)
            if splitter is None:
                parts["external"] = {"hard": np.arange(n_test)}
            else:
                hard_mask = splitter.hard_mask(X_test, y_test)
                parts["external"] = {"hard": np.flatnonzero(hard_mask)}
                if self.id_test_size is not None:
                    parts["external"]["easy"] = np.flatnonzero(~hard_mask)
            return parts
        n_test = self._test_count(len(hard))
        shuffled = rng.permutation(hard)
        parts["test"], parts["hard_train"] = np.sort(shuffled[:n_test]), np.sort(shuffled[n_test:])
        if self.id_test_size is not None:
            n_id = self._test_count(len(easy), "id_test_size", "easy")
            shuffled = rng.permutation(easy)
            parts["id_test"], parts["easy"] = np.sort(shuffled[:n_id]), np.sort(shuffled[n_id:])
        return parts

    def _check_split(self, parts, n_rows, X_test):
        """Raise ``ValueError`` unless a stored split fits this data (see
        :meth:`skw2s._infra.cache.Store.load`)."""
        if not isinstance(parts, dict):
            raise ValueError(f"a split is a dict; got {type(parts).__name__}")
        for name in ("easy", "hard_train", "test", "id_test"):
            _check_rows(parts.get(name), n_rows, name)
        if len(parts["easy"]) == 0 or len(parts["hard_train"]) == 0:
            raise ValueError("a side of the split is empty")
        if X_test is not None:
            external = parts.get("external")
            if not isinstance(external, dict) or "hard" not in external:
                raise ValueError("the split of the test set is missing")
            for name, rows in external.items():
                _check_rows(rows, len(X_test), f"test[{name}]")
        splitter = parts.get("splitter")
        if isinstance(self.splitter, str):
            if splitter is not None:
                raise ValueError("a random split holds a splitter")
        else:
            _check_fitted(splitter, self.splitter)

    def _check_labels(self, labels, n_rows):
        """Raise ``ValueError`` unless stored labels have one row per hard training row."""
        if not isinstance(labels, dict) or not {"hard", "proba", "confidence"} <= labels.keys():
            raise ValueError(f"labels are a dict of hard, proba and confidence; got "
                             f"{type(labels).__name__}")
        hard, confidence = labels["hard"], labels["confidence"]
        if not isinstance(hard, np.ndarray) or hard.shape != (n_rows,):
            raise ValueError(f"the hard labels have shape {np.shape(hard)}, not ({n_rows},)")
        if not isinstance(confidence, np.ndarray) or confidence.shape != (n_rows,):
            raise ValueError(f"the confidences have shape {np.shape(confidence)}, not ({n_rows},)")
        proba = labels["proba"]
        if self.soft_labels and proba is None:
            raise ValueError("the soft labels are missing")
        if proba is not None:
            if (not isinstance(proba, np.ndarray) or proba.ndim != 2 or len(proba) != n_rows
                    or not np.all(np.isfinite(proba))):
                raise ValueError(f"the soft labels have shape {np.shape(proba)}, not ({n_rows}, k)"
                                 " or are not finite")

    def _weak_estimator(self, estimator, seed):
        weak = self._seeded(estimator, seed)
        store = get_store(self.memory)
        if store is not None and "memory" in weak.get_params(deep=False) and weak.memory is None:
            weak.set_params(memory=str(store.location / "weak-rounds"))
        return weak

    def _labels(self, estimator, X, first_learner=False):
        """Hard labels, probabilities (or None) and a confidence per row of one labeller."""
        est = estimator.estimators_[0] if first_learner else estimator
        if not first_learner and hasattr(est, "pseudo_label"):
            hard = np.asarray(est.pseudo_label(X))
        else:
            hard = np.asarray(est.predict(X))
        proba = None
        if hasattr(est, "predict_proba") and (self.soft_labels or self.label_fraction is not None):
            proba = np.asarray(est.predict_proba(X), dtype=np.float64)
        confidence = proba.max(axis=1) if proba is not None else np.ones(len(hard))
        return {"hard": hard, "proba": proba if self.soft_labels else None,
                "confidence": confidence}

    def _with_gold(self, labels, y_hard, seed, classes):
        """``labels`` with a seeded ``gold_fraction`` of the rows given their gold labels."""
        n = len(y_hard)
        k = int(round(self.gold_fraction * n))
        rows = np.sort(gold_rng(seed).permutation(n)[:k])
        hard = labels["hard"].copy()
        if k and hard.dtype != y_hard.dtype:
            hard = hard.astype(np.result_type(hard.dtype, y_hard.dtype))
        hard[rows] = y_hard[rows]
        proba = labels["proba"]
        if proba is not None:
            proba = proba.copy()
            cols = np.asarray(classes) if classes is not None else np.arange(proba.shape[1])
            proba[rows] = (cols[None, :] == y_hard[rows, None]).astype(np.float64)
        confidence = labels["confidence"].copy()
        confidence[rows] = 1.0
        return {"hard": hard, "proba": proba, "confidence": confidence, "gold": rows}

    def _kept(self, labels):
        """Rows whose labels the students train on: the most confident ``label_fraction``."""
        n = len(labels["hard"])
        if self.label_fraction is None:
            return np.arange(n)
        k = max(1, int(round(self.label_fraction * n)))
        order = np.argsort(-labels["confidence"], kind="stable")
        return np.sort(order[:k])

    def fit(self, X, y, X_test=None, y_test=None):
        """Run the protocol on the labelled pool ``(X, y)``; see the class docstring.

        Parameters
        ----------
        X : sequence of str or DataFrame
            The labelled pool (texts, or generation input).
        y : array-like of shape (n_samples,)
            Its labels.
        X_test : sequence of str or DataFrame, default=None
            A separate test set (for example a dataset's official test split). Every row is
            scored; with a :class:`DifficultySplitter` the splitter rates the rows by the rule
            of the pool, and those above its threshold are the ``"hard"`` test, the rest (when
            ``id_test_size`` is not None) the ``"easy"`` (in-distribution) one. ``test_size``
            is then unused, and ``id_test_size`` only switches the easy test on.
        y_test : array-like, default=None
            Labels of ``X_test``.

        Returns
        -------
        self : WeakToStrongPipeline
            The fitted pipeline.
        """
        self._validate(X, y, X_test, y_test)
        self._reset()
        y = np.asarray(y)
        y_test = None if y_test is None else np.asarray(y_test)
        seed = resolve_seed(self.random_state)
        seeds = stage_seeds(seed)
        with StageRunner(get_store(self.memory), self._n_stages(), self.verbose) as run:
            self.history_ = run.history  # filled as stages finish, also when one fails
            parts, split_key = self._split_stage(run, seed, seeds["split"], X, y, X_test, y_test)
            X_easy, y_easy = take_rows(X, parts["easy"]), y[parts["easy"]]
            fit = _Fit(run=run, split=split_key, seeds=seeds,
                       X_hard=take_rows(X, parts["hard_train"]), y_hard=y[parts["hard_train"]])
            if self.cascade and self.cascade_folds > len(fit.y_hard):
                raise ValueError(
                    f"cascade_folds={self.cascade_folds} is more than the "
                    f"{len(fit.y_hard)} hard training rows: a fold would be empty. Give fewer "
                    "folds or more data.")
            fitted, labels = self._weak_stages(fit, X_easy, y_easy)
            gold_rows = np.array([], dtype=int)
            if self.gold_fraction > 0:
                labels[GOLD] = self._with_gold(labels[MAIN], fit.y_hard, seeds["strong"],
                                               getattr(fitted[MAIN], "classes_", None))
                gold_rows = labels[GOLD]["gold"]
            students, baselines, steps = {}, {}, []
            for name in [name for name, _ in self._weak_sides()] + [GOLD] * (GOLD in labels):
                students.update(self._student_stages(fit, name, labels[name]))
            if self.cascade:
                steps, labels[CASCADE] = self._cascade_stages(fit, labels[MAIN])
                students.update(self._student_stages(fit, CASCADE, labels[CASCADE]))
            if self.baseline:
                for loss in self._baseline_losses():
                    baselines[loss] = self._student_stage(
                        fit, f"baseline[{loss}]", loss, labels[BASELINE])[0]
            ceiling = self._ceiling_stage(fit) if self.ceiling else None
        # set only now: a fit that fails in a stage leaves the pipeline unfitted
        self.students_, self.baselines_, self.cascade_steps_ = students, baselines, steps
        self.ceiling_ = ceiling
        self._set_fitted(parts, fitted, labels, fit.y_hard, gold_rows)
        self._score(parts, X, y, X_test, y_test)
        return self

    # -- the stages of fit ----------------------------------------------------------------
    def _reset(self):
        """Forget the fitted state (every attribute ending in ``_``) of an earlier fit."""
        for attr in [a for a in vars(self) if a.endswith("_") and not a.startswith("_")]:
            delattr(self, attr)

    def _n_stages(self):
        """How many stages ``fit`` runs (for the progress bar)."""
        sides, losses, cascade = self._weak_sides(), self._losses(), list(self.cascade or [])
        n = 1 + 2 * len(sides) + len(sides) * len(losses)
        n += len(losses) * (bool(self.gold_fraction) + bool(cascade))
        n += (1 + 2 * self.cascade_folds) * len(cascade)  # a step; per fold a copy, its labels
        return n + (1 + len(self._baseline_losses())) * bool(self.baseline) + bool(self.ceiling)

    def _split_stage(self, run, seed, split_seed, X, y, X_test, y_test):
        """The split's parts (easy, hard training, test rows) and its key."""
        key = stage_key("split", pipe=self, seed=seed, X=X, y=y, X_test=X_test, y_test=y_test)
        if X_test is not None and not isinstance(self.splitter, str):
            key = stage_key("split+external", split=key)
        found = checkpoints(self.splitter)  # () for "random"
        if found:
            key = stage_key("split+checkpoints", split=key, found=found)
        rng = split_rng(split_seed)
        parts = run("split", key, lambda: self._split(X, y, X_test, y_test, rng),
                    lambda p: self._check_split(p, len(X), X_test))
        return parts, key

    def _weak_stages(self, fit, X_easy, y_easy):
        """Every weak side fitted on the easy rows, and the labels of each (and of the first
        weak learner, for the baseline) on the hard training rows."""
        fitted, labels = {}, {}
        for name, estimator in self._weak_sides():
            weak_key = stage_key("weak", split=fit.split, seed=fit.seeds["weak"],
                                 estimator=estimator)
            try:
                fitted[name] = fit.run(
                    f"weak[{name}]", weak_key,
                    lambda e=estimator: self._weak_estimator(e, fit.seeds["weak"]).fit(
                        X_easy, y_easy),
                    lambda v, e=estimator: _check_fitted(v, e))
            except FirstLearnerError as exc:
                exc.weak_side = name  # which side, for the config keys of its hint
                raise
            labels[name] = self._labels_stage(fit, f"labels[{name}]", fitted[name], weak_key)
        if self.baseline:
            key = stage_key("baseline-labels", split=fit.split, seed=fit.seeds["weak"],
                            weak=self.weak, soft_labels=self.soft_labels,
                            label_fraction=self.label_fraction)
            labels[BASELINE] = fit.run(
                f"labels[{BASELINE}]", key,
                lambda: self._labels(fitted[MAIN], fit.X_hard, first_learner=True),
                lambda v: self._check_labels(v, len(fit.y_hard)))
        return fitted, labels

    def _labels_stage(self, fit, name, labeller, labeller_key, rows=None):
        """The labels of a fitted ``labeller`` (stored under ``labeller_key``) for the hard
        training rows, or for those of them in ``rows``."""
        if rows is None:
            key = stage_key("labels", labeller=labeller_key, soft_labels=self.soft_labels,
                            label_fraction=self.label_fraction)
            return fit.run(name, key, lambda: self._labels(labeller, fit.X_hard),
                           lambda v: self._check_labels(v, len(fit.y_hard)))
        key = stage_key("fold-labels", labeller=labeller_key, rows=rows,
                        soft_labels=self.soft_labels, label_fraction=self.label_fraction)
        return fit.run(name, key, lambda: self._labels(labeller, take_rows(fit.X_hard, rows)),
                       lambda v: self._check_labels(v, len(rows)))

    def _student_stages(self, fit, side, labels):
        """The students of weak side ``side``, by ``(side, loss)``: one per student loss."""
        return {(side, loss): self._student_stage(fit, f"student[{side},{loss}]", loss, labels)[0]
                for loss in self._losses()}

    def _student_stage(self, fit, name, loss, labels, model=None, among=None):
        """``model`` (the strong estimator when None) trained with ``loss`` on the kept rows
        of ``labels`` (those in ``among`` only, when given), and its key."""
        rows = self._kept(labels)
        if among is not None:
            rows = np.intersect1d(rows, among)
        model = self.strong if model is None else model
        key = stage_key("student", split=fit.split, model=model, seed=fit.seeds["strong"],
                        loss=loss, rows=rows, labels=labels)

        def compute():
            if is_classifier(self.strong) and len(np.unique(labels["hard"][rows])) < 2:
                only = labels["hard"][rows][0]
                only = only.item() if isinstance(only, np.generic) else only  # 1, not np.int64(1)
                raise ValueError(
                    f"The labels for {name} are all {only!r} on the "
                    f"{len(rows)} hard training rows it would train on: a classifier cannot "
                    "learn from one class. The weak side predicts a constant there; train it "
                    "longer, or keep more labels (label_fraction)."
                )
            est = self._seeded(model, fit.seeds["strong"])
            if "loss" in est.get_params(deep=False):
                est.set_params(loss=loss)
            kwargs = {} if labels["proba"] is None else {"y_proba": labels["proba"][rows]}
            return est.fit(take_rows(fit.X_hard, rows), labels["hard"][rows], **kwargs)

        return fit.run(name, key, compute, lambda v: _check_fitted(v, model)), key

    def _cascade_stages(self, fit, labels):
        """Each step of ``cascade`` trained on the labels of the one before (the first on
        ``labels``), and the last step's out-of-fold labels."""
        steps, loss = [], self._losses()[0]
        for k, model in enumerate(self.cascade, start=1):
            steps.append(self._student_stage(fit, f"cascade[{k}]", loss, labels, model)[0])
            labels = self._out_of_fold_labels(fit, k, model, loss, labels)
        return steps, labels

    def _out_of_fold_labels(self, fit, k, model, loss, labels):
        """Cascade step ``k``'s labels of the hard training rows, each row labelled by a copy
        of ``model`` that did not train on it: the rows fall in ``cascade_folds`` seeded
        folds, and the copy trained on the other folds' ``labels`` labels a fold. A step that
        labelled the rows it trained on would give back its own training labels wherever it
        fits them, and the cascade would be its first weak side again."""
        n = len(fit.y_hard)
        fold = cascade_fold_rng(fit.seeds["strong"]).permutation(n) % self.cascade_folds
        parts = []
        for f in range(self.cascade_folds):
            held = np.flatnonzero(fold == f)
            trained, key = self._student_stage(fit, f"cascade[{k}]/fold{f + 1}", loss, labels,
                                               model, among=np.flatnonzero(fold != f))
            parts.append((held, self._labels_stage(
                fit, f"labels[{CASCADE}{k}]/fold{f + 1}", trained, key, rows=held)))
        first = parts[0][1]
        hard = np.empty(n, dtype=np.result_type(*(p["hard"].dtype for _, p in parts)))
        proba = None if first["proba"] is None else np.empty((n, first["proba"].shape[1]))
        confidence = np.empty(n)
        for held, part in parts:
            hard[held], confidence[held] = part["hard"], part["confidence"]
            if proba is not None:
                proba[held] = part["proba"]
        return {"hard": hard, "proba": proba, "confidence": confidence}

    def _ceiling_stage(self, fit):
        """The strong model trained on the gold labels of the hard training rows."""
        key = stage_key("ceiling", split=fit.split, model=self.strong, seed=fit.seeds["strong"])
        return fit.run(
            CEILING, key,
            lambda: self._seeded(self.strong, fit.seeds["strong"]).fit(fit.X_hard, fit.y_hard),
            lambda v: _check_fitted(v, self.strong))

    def _set_fitted(self, parts, fitted, labels, y_hard, gold_rows):
        """The fitted attributes that the stages' results give."""
        self.splitter_ = parts["splitter"]
        self.easy_indices_ = parts["easy"]
        self.hard_train_indices_ = parts["hard_train"]
        self.test_indices_ = parts["test"]
        self.id_test_indices_ = parts["id_test"]
        self.weak_ = fitted[MAIN]
        self.controls_ = {name: fitted[name] for name, _ in self._weak_sides()[1:]}
        self.student_ = self.students_[(MAIN, self._losses()[0])]
        self.baseline_ = (self.baselines_.get(self._baseline_losses()[0]) if self.baseline
                          else None)
        self.pseudo_labels_ = labels[MAIN]["hard"]
        self.baseline_labels_ = labels[BASELINE]["hard"] if self.baseline else None
        self.pseudo_label_accuracy_ = float(np.mean(self.pseudo_labels_ == y_hard))
        self.gold_indices_ = gold_rows
        rows = []
        for name, lab in labels.items():
            kept = self._kept(lab)
            rows.append({
                "weak_side": name, "n_labels": len(lab["hard"]), "n_kept": len(kept),
                "n_gold": int(np.isin(kept, lab.get("gold", [])).sum()),
                "accuracy": float(np.mean(lab["hard"] == y_hard)),
                "kept_accuracy": float(np.mean(lab["hard"][kept] == y_hard[kept]))})
        self.labels_ = pd.DataFrame(rows)

    def _score(self, parts, X, y, X_test, y_test):
        """``report_``, ``predictions_`` and ``weak_disagreement_`` over every test set."""
        if X_test is not None:
            tests = [(test, take_rows(X_test, rows), y_test[rows], rows)
                     for test, rows in parts["external"].items() if len(rows)]
        else:
            tests = [("hard", take_rows(X, parts["test"]), y[parts["test"]], parts["test"])]
            if len(self.id_test_indices_):
                tests.append(("easy", take_rows(X, self.id_test_indices_),
                              y[self.id_test_indices_], self.id_test_indices_))
        reports, self.predictions_, self.weak_disagreement_ = [], {}, {}
        for test, X_t, y_t, rows in tests:
            if len(rows) < _MIN_TEST:
                warnings.warn(
                    f"The {test!r} test set has only {len(rows)} question(s): accuracies move in "
                    f"steps of {1 / len(rows):.2f} and PGR means little. Give more data or a "
                    "larger test_size.", UserWarning, stacklevel=3,
                )
            report, predictions = self.evaluate(X_t, y_t, test=test)
            reports.append(report)
            self.predictions_[test] = {"rows": np.asarray(rows), **predictions}
        self.report_ = pd.concat(reports, ignore_index=True)

    # -- evaluation ---------------------------------------------------------------------
    def evaluate(self, X, y, *, test="hard"):
        """Score every fitted model on ``(X, y)``: the rows of ``report_`` and the per-question
        predictions of one test set.

        Each weak side runs its learners once (``round_predictions``) for its ensemble, every
        round and its learners' disagreement; the single weak learner is round 1 of ``weak``.

        Parameters
        ----------
        X : sequence of str or DataFrame
            Test inputs.
        y : array-like of shape (n_samples,)
            Their gold labels.
        test : str, default="hard"
            The name of the test set in the report.

        Returns
        -------
        report : pandas.DataFrame
            The rows ``report_`` holds for this test set.
        predictions : dict
            ``{"y": ..., "models": {name: labels}, "scores": {name: probabilities},
            "members": {weak_side: [labels per learner]}}`` as in ``predictions_``.
        """
        check_is_fitted(self, "students_")
        from .evaluation import evaluate

        report, predictions, disagreement = evaluate(self, X, y, test=test)
        self.weak_disagreement_.update(disagreement)
        return report, predictions

    # -- the student's interface ----------------------------------------------------------
    def predict(self, X):
        """The student's predictions.

        Parameters
        ----------
        X : sequence of str or DataFrame
            Inputs.

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        return self.student_.predict(X)

    def score(self, X, y):
        """The student's score (accuracy).

        Parameters
        ----------
        X : sequence of str or DataFrame
            Inputs.
        y : array-like of shape (n_samples,)
            Gold labels.

        Returns
        -------
        float
        """
        check_is_fitted(self)
        return self.student_.score(X, y)

    def __sklearn_is_fitted__(self):
        return hasattr(self, "students_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        return tags
