"""scikit-learn's estimator checks for every public estimator of skw2s (STYLE.md §10).

Text estimators declare ``input_tags.string=True`` and ``two_d_array=False``. With those tags
``parametrize_with_checks`` runs only ``check_estimator_cloneable``: every other check feeds
numeric arrays. So (1) the data-free checks are called directly on every public estimator (the
pipeline and the splitter included), (2) the classifier ensembles run the full suite with a
numeric weak learner (a depth-1 decision tree), which exercises the boosting loop itself; their
input tags are delegated from the weak learner as in ``BaggingClassifier``, and (3) every
``__init__`` parameter has a validation constraint.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils import get_tags
from sklearn.utils.estimator_checks import (
    check_do_not_raise_errors_in_init_or_set_params,
    check_estimator,
    check_estimator_cloneable,
    check_estimator_repr,
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
    parametrize_with_checks,
)

import skw2s
from skw2s import (
    DifficultySplitter,
    LLMAdaBoostClassifier,
    LLMGenerator,
    TokenAdaBoostGenerator,
    UniformEnsembleClassifier,
    UniformEnsembleGenerator,
    WeakToStrongPipeline,
)
from skw2s.estimators.classifier import LLMClassifier, clear_cache

DATA_FREE_CHECKS = [
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_get_params_invariance,
    check_set_params,
    check_estimator_repr,
    check_do_not_raise_errors_in_init_or_set_params,
    check_estimator_cloneable,
]

TEXT_ESTIMATORS = [
    LLMClassifier(),
    LLMClassifier("some/model", mode="lora", lr=1e-4, n_epochs=2, loss="logconf"),
    LLMAdaBoostClassifier(),
    LLMAdaBoostClassifier(LLMClassifier(mode="full"), n_estimators=3, sampling="reweight"),
    UniformEnsembleClassifier(),
    UniformEnsembleClassifier(LLMClassifier(), bootstrap=True, combine="learned"),
]
ALL_ESTIMATORS = TEXT_ESTIMATORS + [
    LLMGenerator(),
    LLMGenerator("some/model", mode="lora", loss="choice_logconf"),
    TokenAdaBoostGenerator(),
    TokenAdaBoostGenerator(LLMGenerator(mode="lora"), n_estimators=2, window=2),
    UniformEnsembleGenerator(),
    UniformEnsembleGenerator(LLMGenerator(), bootstrap=True),
    DifficultySplitter(),
    DifficultySplitter(LLMClassifier(), n_splits=3),
    WeakToStrongPipeline(),
    WeakToStrongPipeline(
        LLMAdaBoostClassifier(), LLMClassifier(),
        controls=[("uniform", UniformEnsembleClassifier())],
        student_losses=["xent", "logconf"], splitter=DifficultySplitter(LLMClassifier()),
    ),
]


@pytest.mark.parametrize("estimator", ALL_ESTIMATORS, ids=repr)
@pytest.mark.parametrize("check", DATA_FREE_CHECKS, ids=lambda c: c.__name__)
def test_data_free_checks(estimator, check):
    check(type(estimator).__name__, estimator)


PUBLIC_CLASSES = sorted(
    (getattr(skw2s, name) for name in skw2s.__all__ if isinstance(getattr(skw2s, name), type)),
    key=lambda cls: cls.__name__,
)


def test_every_public_estimator_is_covered():
    assert {type(e) for e in ALL_ESTIMATORS} == set(PUBLIC_CLASSES)


@pytest.mark.parametrize("cls", PUBLIC_CLASSES, ids=lambda c: c.__name__)
def test_every_parameter_has_a_constraint(cls):
    params = set(cls().get_params(deep=False))
    assert params == set(cls._parameter_constraints), (
        f"{cls.__name__}: parameters without a constraint "
        f"{sorted(params - set(cls._parameter_constraints))}, constraints without a parameter "
        f"{sorted(set(cls._parameter_constraints) - params)}"
    )


@pytest.mark.parametrize("cls", PUBLIC_CLASSES, ids=lambda c: c.__name__)
def test_random_state_is_checked_with_scikit_learns_message(cls):
    est = cls().set_params(random_state="x")
    with pytest.raises(ValueError, match=rf"The 'random_state' parameter of {cls.__name__} must "
                                         r"be an int in the range \[0, 4294967295\], an instance "
                                         r"of 'numpy.random.mtrand.RandomState' or None. Got 'x'"):
        skw2s._infra.validation.validate_params(est)


@pytest.mark.filterwarnings("ignore:Can't test estimator:sklearn.exceptions.SkipTestWarning")
@pytest.mark.parametrize("estimator", TEXT_ESTIMATORS, ids=repr)
def test_text_tags_leave_only_the_cloneable_check(estimator):
    tags = get_tags(estimator)
    assert tags.input_tags.string and not tags.input_tags.two_d_array
    assert tags.estimator_type == "classifier" and not tags.classifier_tags.multi_class
    results = check_estimator(estimator, on_fail=None)
    assert [r["check_name"] for r in results] == ["check_estimator_cloneable"]
    assert all(r["status"] == "passed" for r in results)


# The numeric boosting shell, through the full suite.
_SHELL_XFAILS = {
    "check_sample_weight_equivalence_on_dense_data": (
        "sample_weight sets the initial boosting distribution D_1, which is not equivalent to "
        "repeating rows: resampling draws differ and the stump sees other weights (scikit-learn's "
        "AdaBoostClassifier is xfailed for the same check)."
    ),
    "check_decision_proba_consistency": (
        "by design decision_function is the alpha-weighted vote of hard labels (Algorithm 2) "
        "while predict_proba is the alpha-weighted mean of the learners' probabilities (the "
        "soft pseudo-label), so their rankings can differ; whether they do on the check's "
        "data depends on the draw."
    ),
}


def _shell_xfails(estimator):
    return _SHELL_XFAILS


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")
@parametrize_with_checks(
    [
        LLMAdaBoostClassifier(DecisionTreeClassifier(max_depth=1), n_estimators=5),
        LLMAdaBoostClassifier(
            DecisionTreeClassifier(max_depth=1), n_estimators=5, sampling="reweight"
        ),
        UniformEnsembleClassifier(DecisionTreeClassifier(max_depth=1), n_estimators=3,
                                  bootstrap=True),
    ],
    expected_failed_checks=_shell_xfails,
)
def test_boosting_shell_with_numeric_learner(estimator, check):
    check(estimator)


# Every fitted attribute is documented, and every documented one exists after fit.
def _documented_attributes(cls):
    doc = cls.__doc__
    section = doc.split("Attributes\n    ----------\n", 1)[1]
    section = re.split(r"\n    [A-Z][A-Za-z ]+\n    -{3,}\n", section, maxsplit=1)[0]
    return set(re.findall(r"^    (\w+) :", section, flags=re.M))


def _fitted_attributes(est):
    return {k for k in vars(est) if k.endswith("_") and not k.startswith("_")}


TEXTS = ["Q: sky A: blue", "Q: sky A: green", "Q: grass A: green", "Q: grass A: blue"] * 6
LABELS = np.array([1, 0, 1, 0] * 6)


def test_fit_docstring_attributes(tiny_lm):
    clear_cache()
    clf = LLMClassifier(tiny_lm, lr=0.1, n_epochs=300, device="cpu", random_state=0)
    boost = LLMAdaBoostClassifier(clf, n_estimators=2, random_state=0)
    for est in (clf.fit(TEXTS, LABELS), boost.fit(TEXTS, LABELS)):
        documented = _documented_attributes(type(est))
        assert _fitted_attributes(est) <= documented
        # not set for text input, or only with combine="learned" or "router"
        conditional = {"n_features_in_", "feature_names_in_", "combination_weights_", "gate_"}
        assert documented - _fitted_attributes(est) <= conditional
    clear_cache()


def test_importing_the_estimators_does_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys, skw2s.ensemble, skw2s.estimators.classifier, skw2s._infra.validation; "
        "print(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
