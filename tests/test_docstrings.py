"""Documented parameters match signatures, as scikit-learn's ``test_docstring_parameters``.

Every public class of ``skw2s.__all__`` (its ``__init__``, read from the class docstring, and
each public method defined in skw2s, inherited ones included) and every public function of the
modules in ``MODULES`` must document its parameters under ``Parameters``, by name and in the
signature's order. ``*args`` and ``**kwargs`` are not required; ``y=None`` of ``fit``,
``score``, ``predict`` ... may be left out, as scikit-learn allows. Names documented together
(``weak, student, ceiling : float``) count one by one.
"""

from __future__ import annotations

import importlib
import inspect
import warnings

import pytest

numpydoc_docscrape = pytest.importorskip(
    "numpydoc.docscrape", reason="numpydoc is in the test extra: pip install -e '.[test]'"
)

import skw2s  # noqa: E402

MODULES = (
    "skw2s.datasets",
    "skw2s.metrics",
    "skw2s.models",
    "skw2s.losses",
    "skw2s.decoding",
    "skw2s.experiment",
    "skw2s.stats",
    "skw2s.comparison",
    "skw2s.exceptions",
)
"""The modules whose public functions (their ``__all__``) are checked."""

METHODS_IGNORE_NONE_Y = ("fit", "score", "fit_predict", "fit_transform", "partial_fit", "predict")
"""Methods whose ``y=None`` need not be documented (scikit-learn's ``_METHODS_IGNORE_NONE_Y``)."""


def _signature_names(func):
    params = inspect.signature(func).parameters.values()
    names = [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    return names[1:] if names and names[0] in ("self", "cls") else names


def check_docstring_parameters(func, doc=None, ignore=()):
    """Problems with ``func``'s documented parameters, as a list of messages (empty if none).

    Parameters
    ----------
    func : callable
        The function or method.
    doc : numpydoc.docscrape.NumpyDocString, default=None
        Its parsed docstring (a class's for ``__init__``); None parses ``func``'s own.
    ignore : tuple of str, default=()
        Parameter names left out of both lists.

    Returns
    -------
    problems : list of str
    """
    name = f"{func.__module__}.{func.__qualname__}"
    if doc is None:
        with warnings.catch_warnings(record=True) as records:
            warnings.simplefilter("always")
            try:
                doc = numpydoc_docscrape.FunctionDoc(func)
            except Exception as exc:  # a malformed docstring
                return [f"{name}: the docstring does not parse: {exc}"]
        if records:
            return [f"{name}: numpydoc warns: {records[0].message}"]
    signature = [n for n in _signature_names(func) if n not in ignore]
    documented, problems = [], []
    for param in doc["Parameters"]:
        if not param.type.strip() and param.name.rstrip().endswith(":"):
            problems.append(f"{name}: parameter {param.name!r} has an empty type after its colon")
        for part in param.name.split(","):
            part = part.strip().strip("`")
            if part and "*" not in part and part not in ignore:
                documented.append(part)
    if signature != documented:
        for i, (sig, docd) in enumerate(zip(signature, documented)):
            if sig != docd:
                problems.append(
                    f"{name}: parameter {i} is {sig!r} in the signature but {docd!r} in the "
                    "docstring"
                )
                break
        if len(signature) > len(documented):
            problems.append(f"{name}: undocumented: {signature[len(documented):]}")
        elif len(documented) > len(signature):
            problems.append(f"{name}: documented but not in the signature: "
                            f"{documented[len(signature):]}")
    return problems


def _public_classes():
    return [
        (name, obj) for name, obj in ((n, getattr(skw2s, n)) for n in skw2s.__all__)
        if inspect.isclass(obj)
    ]


def _public_functions():
    found = [
        (f"skw2s.{n}", getattr(skw2s, n)) for n in skw2s.__all__
        if inspect.isfunction(getattr(skw2s, n))
    ]
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        found += [
            (f"{module_name}.{n}", getattr(module, n)) for n in module.__all__
            if inspect.isfunction(getattr(module, n))
        ]
    return found


def _own_methods(cls):
    """Public methods of ``cls`` written in skw2s (scikit-learn's own are checked there)."""
    doc = numpydoc_docscrape.ClassDoc(cls)
    for method_name in doc.methods:
        method = getattr(cls, method_name)
        if getattr(method, "__module__", "").startswith("skw2s"):
            yield method_name, method


@pytest.mark.parametrize("name, cls", _public_classes(), ids=[n for n, _ in _public_classes()])
def test_class_docstring_parameters(name, cls):
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        class_doc = numpydoc_docscrape.ClassDoc(cls)
    assert not records, f"numpydoc warns on {name}: {records[0].message}"
    problems = check_docstring_parameters(cls.__init__, class_doc)
    for method_name, method in _own_methods(cls):
        ignore = ()
        y = inspect.signature(method).parameters.get("y")
        if method_name in METHODS_IGNORE_NONE_Y and y is not None and y.default is None:
            ignore = ("y",)
        problems += check_docstring_parameters(method, ignore=ignore)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "name, func", _public_functions(), ids=[n for n, _ in _public_functions()]
)
def test_function_docstring_parameters(name, func):
    problems = check_docstring_parameters(func)
    assert not problems, "\n".join(problems)


def test_the_check_finds_a_missing_a_misordered_and_an_extra_parameter():
    def good(a, b, *args, c=1, **kwargs):
        """Parameters
        ----------
        a, b : int
            Two ints.
        c : int, default=1
            Another.
        """

    def missing(a, b):
        """Parameters
        ----------
        a : int
        """

    def misordered(a, b):
        """Parameters
        ----------
        b : int
        a : int
        """

    def extra(a):
        """Parameters
        ----------
        a : int
        b : int
        """

    def undocumented(a):
        """No sections at all."""

    assert check_docstring_parameters(good) == []
    assert "undocumented: ['b']" in check_docstring_parameters(missing)[0]
    assert ("parameter 0 is 'a' in the signature but 'b'"
            in check_docstring_parameters(misordered)[0])
    assert "documented but not in the signature: ['b']" in check_docstring_parameters(extra)[0]
    assert "undocumented: ['a']" in check_docstring_parameters(undocumented)[0]
    assert check_docstring_parameters(missing, ignore=("b",)) == []


def test_every_public_class_and_module_is_covered():
    classes = {name for name, _ in _public_classes()}
    assert classes == {n for n in skw2s.__all__ if n[0].isupper()}
    functions = {name for name, _ in _public_functions()}
    assert {"skw2s.pgr_score", "skw2s.make_pgr_scorer", "skw2s.datasets.load_table",
            "skw2s.models.check_model_spec", "skw2s.losses.logconf",
            "skw2s.decoding.mixture_generate", "skw2s.experiment.load_config"} <= functions
