"""The easy-to-hard weak-to-strong protocol in one estimator.

:class:`WeakToStrongPipeline` runs section 2 of the paper (and ``ALGORITHMS.md``):

1. split the labelled pool into easy and hard (at random, 50/50, as Burns et al., or by a
   :class:`~skw2s.DifficultySplitter`); the test set is drawn from the hard side;
2. fit the weak ensemble on the easy side;
3. pseudo-label the hard training part with the ensemble;
4. fit the strong student on those pseudo-labels;
5. optionally fit the baseline student on the labels of the first weak learner alone, and the
   ceiling: the strong model on the gold hard labels.

Every finished stage is stored when ``memory`` is set (and the weak ensemble stores each of its
rounds there too), so a fit that is interrupted, even by ``kill -9``, resumes where it stopped
and, with the same seed, ends with the same result.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone, is_classifier
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from ._cache import checkpoints, fingerprint, get_store, with_checkpoints
from ._validation import take_rows
from .difficulty import DifficultySplitter
from .metrics import pgr_score

logger = logging.getLogger(__name__)

__all__ = ["WeakToStrongPipeline"]

_STAGES = ("split", "weak", "labels", "student", "baseline", "ceiling")


def _is_generator(estimator):
    return hasattr(estimator, "generate")


class WeakToStrongPipeline(BaseEstimator):
    """Weak ensemble on easy data, strong student on its pseudo-labels for hard data.

    Parameters
    ----------
    weak : estimator, default=None
        The weak side: an ensemble such as :class:`~skw2s.LLMAdaBoostClassifier` (binary) or
        :class:`~skw2s.TokenAdaBoostGenerator` (multiple choice / generation). It must offer
        ``pseudo_label(X)`` (else ``predict`` is used) and ``estimators_`` (its first learner
        gives the baseline's labels). Cloned in ``fit``.
    strong : estimator, default=None
        The strong model, cloned three times: student, baseline student and ceiling. It must
        read the weak side's labels: a classifier under a classifier, a generator under a
        generator.
    splitter : "random" or DifficultySplitter, default="random"
        ``"random"`` splits the pool 50/50 (Burns et al.); a :class:`DifficultySplitter` rates
        difficulty and puts its easy rows on the weak side.
    test_size : float or int, default=0.25
        Part of the hard side held out for testing (a fraction of it, or a count). These are
        the out-of-distribution test questions: neither the weak side nor the students train
        on anything like them.
    id_test_size : float, int or None, default=None
        Part of the easy side held out as an in-distribution test set (a fraction of it, or a
        count); the weak ensemble then trains on the rest of the easy side. ``None`` holds
        out nothing and scores on the hard test questions only.
    baseline : bool, default=True
        Also train the student on the first weak learner's labels alone.
    ceiling : bool, default=True
        Also train the strong model on the gold hard labels (the upper bound, and PGR's
        denominator).
    random_state : int, RandomState instance or None, default=None
        Seeds the splits and, through ``set_params(random_state=...)``, the clones.
    memory : str, joblib.Memory or None, default=None
        Directory where finished stages and boosting rounds are stored; a later fit with the
        same data and parameters resumes from them.
    verbose : int, default=0
        Progress bar over the stages when positive.

    Notes
    -----
    With ``memory``, each stage is keyed only by what it depends on: the split by the data,
    the splitter, the test sizes and the seed; the weak ensemble by the split and ``weak``; the
    students by their labels and ``strong``; the ceiling by the split and ``strong``. Runs that
    differ only in the weak side (an ablation) share one cache and reuse the split and the
    ceiling.

    Attributes
    ----------
    weak_ : estimator
        The fitted weak ensemble.
    student_ : estimator
        The strong student trained on the ensemble's pseudo-labels.
    baseline_ : estimator or None
        The strong student trained on the first weak learner's labels.
    ceiling_ : estimator or None
        The strong model trained on the gold hard labels.
    splitter_ : DifficultySplitter or None
        The fitted splitter (``None`` for a random split).
    easy_indices_, hard_train_indices_, test_indices_ : ndarray
        Rows of the training pool on each side.
    id_test_indices_ : ndarray
        Easy rows held out for the in-distribution test (empty when ``id_test_size=None``).
    pseudo_labels_ : ndarray
        The ensemble's labels for the hard training rows.
    baseline_labels_ : ndarray or None
        The first weak learner's labels for the same rows.
    pseudo_label_accuracy_ : float
        Agreement of the pseudo-labels with the gold hard labels.
    report_ : pandas.DataFrame
        One row per model (``weak_single``, ``weak_ensemble``, ``baseline_student``,
        ``ensemble_student``, ``ceiling``) and one per boosting round of the weak ensemble
        (``weak_round``), per test set, with columns ``model``, ``round``, ``test``
        (``"hard"``: the hard test rows; ``"easy"``: the in-distribution rows of
        ``id_test_size``), ``accuracy``, ``token_error`` (teacher-forced answer-token error, for
        generators; NaN for classifiers), ``pgr`` and ``gap``. Both students' PGR use the single
        weak learner as the weak reference; ``gap`` is ceiling minus weak-single accuracy on
        the same test set, the room PGR divides by.
    history_ : list of dict
        Per stage: its name, whether it came from ``memory`` and its seconds.

    Examples
    --------
    >>> from skw2s import WeakToStrongPipeline, LLMAdaBoostClassifier, LLMClassifier
    >>> pipe = WeakToStrongPipeline(                                  # doctest: +SKIP
    ...     weak=LLMAdaBoostClassifier(LLMClassifier("smollm2-135m[:6]", mode="head")),
    ...     strong=LLMClassifier("gemma3-270m", mode="head"), random_state=0)
    >>> pipe.fit(texts, labels).report_                               # doctest: +SKIP
    """

    def __init__(
        self,
        weak=None,
        strong=None,
        *,
        splitter="random",
        test_size=0.25,
        id_test_size=None,
        baseline=True,
        ceiling=True,
        random_state=None,
        memory=None,
        verbose=0,
    ):
        self.weak = weak
        self.strong = strong
        self.splitter = splitter
        self.test_size = test_size
        self.id_test_size = id_test_size
        self.baseline = baseline
        self.ceiling = ceiling
        self.random_state = random_state
        self.memory = memory
        self.verbose = verbose

    # -- validation ---------------------------------------------------------------------
    def _validate(self, X, y):
        for name in ("weak", "strong"):
            est = getattr(self, name)
            if est is None or not hasattr(est, "fit"):
                raise ValueError(f"WeakToStrongPipeline needs a '{name}' estimator; got {est!r}.")
        if _is_generator(self.weak) != _is_generator(self.strong) or (
            is_classifier(self.weak) != is_classifier(self.strong)
        ):
            raise ValueError(
                f"The strong estimator {type(self.strong).__name__} cannot read the labels of the "
                f"weak side {type(self.weak).__name__}: pair a classifier with a classifier "
                "(binary labels) or a generator with a generator (choice indices or texts)."
            )
        if not (self.splitter == "random" or isinstance(self.splitter, DifficultySplitter)):
            raise ValueError(
                "The 'splitter' parameter of WeakToStrongPipeline must be 'random' or a "
                f"DifficultySplitter. Got {self.splitter!r} instead."
            )
        if len(X) != len(y):
            raise ValueError(f"X has {len(X)} rows but y has {len(y)}.")
        if len(X) < 4:
            raise ValueError(f"WeakToStrongPipeline needs at least 4 examples; got {len(X)}.")

    def _test_count(self, n_rows, name="test_size", side="hard"):
        size = getattr(self, name)
        if isinstance(size, (float, np.floating)) and 0 < size < 1:
            count = int(round(size * n_rows))
        elif isinstance(size, (int, np.integer)) and not isinstance(size, bool) and size >= 1:
            count = int(size)
        else:
            raise ValueError(
                f"The '{name}' parameter of WeakToStrongPipeline must be a float in (0, 1) "
                f"or an int >= 1{' or None' if name == 'id_test_size' else ''}. Got {size!r} instead."
            )
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

    def _split(self, X, y, rng):
        n = len(X)
        if self.splitter == "random":
            order = rng.permutation(n)
            easy, hard = np.sort(order[: n // 2]), np.sort(order[n // 2 :])
            splitter = None
        else:
            splitter = clone(self.splitter).fit(X, y)
            easy, hard = splitter.split()
        if len(easy) == 0 or len(hard) == 0:
            raise ValueError(f"The split left the {'easy' if len(easy) == 0 else 'hard'} side empty.")
        n_test = self._test_count(len(hard))
        shuffled = rng.permutation(hard)
        test, hard_train = np.sort(shuffled[:n_test]), np.sort(shuffled[n_test:])
        id_test = np.array([], dtype=int)
        if self.id_test_size is not None:
            n_id = self._test_count(len(easy), "id_test_size", "easy")
            shuffled = rng.permutation(easy)
            id_test, easy = np.sort(shuffled[:n_id]), np.sort(shuffled[n_id:])
        return {"splitter": splitter, "easy": easy, "hard_train": hard_train, "test": test, "id_test": id_test}

    def _weak_estimator(self, seed):
        weak = self._seeded(self.weak, seed)
        store = get_store(self.memory)
        if store is not None and "memory" in weak.get_params(deep=False) and weak.memory is None:
            weak.set_params(memory=str(store.location / "weak-rounds"))
        return weak

    @staticmethod
    def _pseudo_label(estimator, X):
        return np.asarray(
            estimator.pseudo_label(X) if hasattr(estimator, "pseudo_label") else estimator.predict(X)
        )

    def fit(self, X, y):
        """Run the protocol on the labelled pool ``(X, y)``; see the class docstring.

        Parameters
        ----------
        X : list of str, ndarray or DataFrame
            The labelled pool, in the input format of ``weak`` and ``strong``.
        y : array-like of shape (n_samples,)
            Its gold labels (binary labels, or choice indices / answers for generators).

        Returns
        -------
        self : WeakToStrongPipeline
        """
        self._validate(X, y)
        y = np.asarray(y)
        store = get_store(self.memory)
        rng = check_random_state(self.random_state)
        seeds = dict(zip(_STAGES, rng.randint(np.iinfo(np.int32).max, size=len(_STAGES))))
        # Each stage is keyed by what it depends on, so that runs differing in one part (an
        # ablation of the weak side) share the rest.
        keys = {"split": fingerprint(
            type(self).__name__, "split", self.splitter, self.test_size, self.id_test_size,
            self.random_state, X, y,
        )}
        # Local checkpoint directories also key by their files (nothing for aliases and Hub ids).
        found = checkpoints(self.splitter)  # () for "random"
        if found:
            keys["split"] = fingerprint(keys["split"], found)
        keys["weak"] = fingerprint(*with_checkpoints((keys["split"], "weak", self.weak), self.weak))
        keys["labels"] = fingerprint(keys["weak"], "labels", bool(self.baseline))
        strong = with_checkpoints((self.strong,), self.strong)
        keys["student"] = fingerprint(keys["labels"], "student", *strong)
        keys["baseline"] = fingerprint(keys["labels"], "baseline", *strong)
        keys["ceiling"] = fingerprint(keys["split"], "ceiling", *strong)
        self.history_ = []
        results = {}

        def stage(name, compute):
            start = time.perf_counter()
            key = keys[name]
            value = store.load("pipeline", key) if store is not None else None
            cached = value is not None
            if not cached:
                value = compute()
                if store is not None:
                    store.save("pipeline", key, value)
            self.history_.append(
                {"stage": name, "cached": cached, "seconds": time.perf_counter() - start}
            )
            logger.info("Stage %s %s", name, "loaded from memory" if cached else "done")
            results[name] = value
            return value

        todo = ["split", "weak", "labels", "student"]
        todo += ["baseline"] if self.baseline else []
        todo += ["ceiling"] if self.ceiling else []
        bar = tqdm(total=len(todo), desc="w2s stages", disable=not self.verbose, leave=False)

        split_rng = check_random_state(seeds["split"])
        parts = stage("split", lambda: self._split(X, y, split_rng))
        bar.update()
        X_easy, y_easy = take_rows(X, parts["easy"]), y[parts["easy"]]
        X_hard, y_hard = take_rows(X, parts["hard_train"]), y[parts["hard_train"]]
        weak = stage("weak", lambda: self._weak_estimator(seeds["weak"]).fit(X_easy, y_easy))
        bar.update()

        def make_labels():
            out = {"ensemble": self._pseudo_label(weak, X_hard)}
            if self.baseline:
                out["baseline"] = np.asarray(weak.estimators_[0].predict(X_hard))
            return out

        labels = stage("labels", make_labels)
        bar.update()
        student = stage(
            "student", lambda: self._seeded(self.strong, seeds["student"]).fit(X_hard, labels["ensemble"])
        )
        bar.update()
        baseline = ceiling = None
        if self.baseline:
            baseline = stage(
                "baseline",
                lambda: self._seeded(self.strong, seeds["baseline"]).fit(X_hard, labels["baseline"]),
            )
            bar.update()
        if self.ceiling:
            ceiling = stage(
                "ceiling", lambda: self._seeded(self.strong, seeds["ceiling"]).fit(X_hard, y_hard)
            )
            bar.update()
        bar.close()

        self.splitter_ = parts["splitter"]
        self.easy_indices_ = parts["easy"]
        self.hard_train_indices_ = parts["hard_train"]
        self.test_indices_ = parts["test"]
        self.id_test_indices_ = parts.get("id_test", np.array([], dtype=int))
        self.weak_, self.student_ = weak, student
        self.baseline_, self.ceiling_ = baseline, ceiling
        self.pseudo_labels_ = labels["ensemble"]
        self.baseline_labels_ = labels.get("baseline")
        self.pseudo_label_accuracy_ = float(np.mean(self.pseudo_labels_ == y_hard))
        tests = [("hard", parts["test"])]
        if len(self.id_test_indices_):
            tests.append(("easy", self.id_test_indices_))
        self.report_ = pd.concat(
            [self._report(take_rows(X, rows), y[rows], name) for name, rows in tests], ignore_index=True
        )
        return self

    @staticmethod
    def _token_error(estimator, X, y):
        return float(estimator.token_error(X, y)) if hasattr(estimator, "token_error") else np.nan

    def _report(self, X_test, y_test, test="hard"):
        weak, first = self.weak_, self.weak_.estimators_[0]
        rows = [{"model": "weak_single", "round": 1, "accuracy": first.score(X_test, y_test),
                 "token_error": self._token_error(first, X_test, y_test)}]
        staged = list(weak.staged_score(X_test, y_test)) if hasattr(weak, "staged_score") else []
        staged_error = (
            list(weak.staged_token_error(X_test, y_test)) if hasattr(weak, "staged_token_error") else []
        )
        for t, acc in enumerate(staged, start=1):
            error = staged_error[t - 1] if t <= len(staged_error) else np.nan
            rows.append({"model": "weak_round", "round": t, "accuracy": float(acc), "token_error": error})
        n_rounds = len(weak.estimators_)
        ensemble_error = staged_error[-1] if staged_error else self._token_error(weak, X_test, y_test)
        rows.append({"model": "weak_ensemble", "round": n_rounds, "accuracy": weak.score(X_test, y_test),
                     "token_error": ensemble_error})
        students = [("baseline_student", 1, self.baseline_), ("ensemble_student", n_rounds, self.student_),
                    ("ceiling", np.nan, self.ceiling_)]
        for name, rnd, est in students:
            if est is not None:
                rows.append({"model": name, "round": rnd, "accuracy": est.score(X_test, y_test),
                             "token_error": self._token_error(est, X_test, y_test)})
        report = pd.DataFrame(rows)
        report.insert(2, "test", test)
        report["accuracy"] = report["accuracy"].astype(float)
        report["token_error"] = report["token_error"].astype(float)
        report["pgr"] = np.nan
        report["gap"] = np.nan
        if self.ceiling_ is not None:
            weak_acc = report.loc[report.model == "weak_single", "accuracy"].iloc[0]
            ceiling_acc = report.loc[report.model == "ceiling", "accuracy"].iloc[0]
            students = report.model.isin(["baseline_student", "ensemble_student"])
            report.loc[students, "pgr"] = pgr_score(weak_acc, report.loc[students, "accuracy"].to_numpy(), ceiling_acc)
            report["gap"] = ceiling_acc - weak_acc
        return report

    # -- the student's interface ----------------------------------------------------------
    def predict(self, X):
        """The student's predictions.

        Parameters
        ----------
        X : list of str, ndarray or DataFrame
            Inputs in the format of ``strong``.

        Returns
        -------
        y_pred : ndarray
        """
        check_is_fitted(self)
        return self.student_.predict(X)

    def score(self, X, y):
        """The student's score (accuracy).

        Parameters
        ----------
        X : list of str, ndarray or DataFrame
            Inputs in the format of ``strong``.
        y : array-like of shape (n_samples,)
            Their gold labels.

        Returns
        -------
        score : float
        """
        check_is_fitted(self)
        return self.student_.score(X, y)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        return tags
