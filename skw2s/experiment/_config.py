"""The config schema (one table of every key), its validation, and the built-in demo config.

The table :data:`CONFIG_KEYS` is the single description of a config: :func:`load_config`
checks against it, ``skw2s run --help`` prints it (:func:`config_keys_text`) and
``docs/config.md`` shows it (:func:`config_keys_markdown`). The config layer checks types and
structure; the values of estimator parameters are checked by the estimators when they fit.
"""

from __future__ import annotations

import copy
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

from ..w2s.names import MAIN

__all__ = [
    "CONFIG_KEYS", "ConfigError", "DEMO_CONFIG", "REQUIRED", "apply_overrides",
    "config_keys_markdown", "config_keys_text", "load_config",
]


class ConfigError(ValueError):
    """A configuration names an unknown key, misses a required one, or gives a value of the
    wrong type or structure. The message names the key."""


REQUIRED = object()
"""The default of a key that every config must set."""


@dataclass(frozen=True)
class Key:
    """One config key: its name, its type as written in the docs, its default and meaning."""

    name: str
    type: str
    default: object
    meaning: str


def _registry():
    from ..data.datasets import DATASETS

    return sorted(DATASETS)


CONFIG_KEYS = (
    Key("name", "str or null", None,
        "Label of the run in tables and plots. Default: the config file's name, else "
        "DATASET-TASK-SPLIT_KIND."),
    Key("task", "binary | multiple_choice", REQUIRED,
        "binary: LLMClassifier learners boosted by LLMAdaBoostClassifier (SciQ binarised as in "
        "Burns et al., or your own text/label rows). multiple_choice: LLMGenerator learners "
        "boosted by TokenAdaBoostGenerator."),
    Key("dataset", "str or mapping", REQUIRED,
        "A built-in dataset (sciq, quartz, arc_easy, arc_challenge; of these, task binary takes "
        "sciq), or your own data as a mapping: path (a JSONL/JSON/CSV/TSV/Parquet/Arrow file, "
        "a datasets save_to_disk directory, or a Hugging Face Hub name), "
        "columns (role -> column name; "
        "multiple_choice: question, choices, answer, optional id and support; binary: text, "
        "label, optional id), split (of a datasets directory or Hub dataset), name (a Hub "
        "configuration), choices_sep (separator of options in one text cell, default |), "
        "answer_format (index, letter or text: how the answer column is written; default: "
        "inferred, ambiguous rows refused) and test_path (your own test questions, read with "
        "the same columns; test_split names its split when it is a directory or Hub name). "
        "See skw2s.datasets.load_table."),
    Key("data_dir", "str or null", None,
        "Folder holding sciq/, quartz/, arc_easy/ for the built-in datasets. Default: "
        "--data-dir, else the SKW2S_DATA_DIR environment variable."),
    Key("split", "train | validation | test", "train",
        "The split of a built-in dataset that forms the labelled pool (for your own data, put "
        "split inside the dataset mapping)."),
    Key("n_examples", "int or null", 600,
        "Size of a random subset of the pool (drawn with data_seed); null keeps every row."),
    Key("data_seed", "int", 0, "Seed of the subset and of the SciQ binarisation."),
    Key("use_support", "bool", False,
        "multiple_choice: put the support passage in the prompt."),
    Key("options", "cloze | lettered", "cloze",
        "multiple_choice: cloze scores each option's text as the answer; lettered lists the "
        "options in the prompt as A. B. ... and the answer is the letter "
        "(skw2s.datasets.to_multiple_choice)."),
    Key("split_kind", "random | easy_hard", "random",
        "random: a 50/50 split of the pool; easy_hard: rated by difficulty, easy rows go to the "
        "weak side."),
    Key("difficulty", "mapping or null", None,
        "easy_hard only: DifficultySplitter settings n_splits, easy_fraction, n_jobs and "
        "estimator (learner parameters over weak's), or precomputed: grade (ARC's school "
        "grade)."),
    Key("test_size", "float or int", 0.25,
        "Part of the hard side held out as the test set (a fraction, or a count)."),
    Key("id_test_size", "float, int or null", None,
        "Part of the easy side held out as a second test set (a fraction, or a count); null "
        "holds out nothing."),
    Key("seeds", "int or list of int", [0], "One pipeline fit per seed; seed{N}.json each."),
    Key("weak", "mapping", REQUIRED,
        "Parameters of the weak learner (LLMClassifier or LLMGenerator), at least model."),
    Key("boost", "mapping", {},
        "Parameters of the ensemble (LLMAdaBoostClassifier or TokenAdaBoostGenerator) other "
        "than estimator. Empty or null: the defaults."),
    Key("strong", "mapping", REQUIRED,
        "Parameters of the strong student, the same class as weak, at least model."),
    Key("controls", "mapping or null", None,
        "Other weak sides, each a mapping name -> settings: ensemble (adaboost or uniform, the "
        "class: LLMAdaBoostClassifier / TokenAdaBoostGenerator or UniformEnsembleClassifier / "
        "UniformEnsembleGenerator), weak (learner parameters over weak's) and that class's own "
        "parameters (e.g. bootstrap: true, combine: learned). They share the split, the seed "
        "and the cached rounds with the main weak side and get their own students."),
    Key("student_losses", "list of str or null", None,
        "One student per weak side and loss (and one baseline student per loss): LLMClassifier "
        "losses xent, logconf, product, kl, window, entropy; LLMGenerator losses sft, "
        "choice_xent, choice_logconf. Null: strong's own loss only."),
    Key("baseline_losses", "list of str or null", None,
        "The losses of the baseline students (first weak learner's labels), e.g. [xent, "
        "logconf] for the auxiliary-confidence control. Null: student_losses."),
    Key("soft_labels", "bool", False,
        "Students also get the weak sides' probabilities (predict_proba) as soft labels."),
    Key("label_fraction", "float or null", None,
        "Keep only this fraction of each weak side's most confident pseudo-labels for its "
        "students; the report gives the kept labels' accuracy."),
    Key("gold_fraction", "float", 0.0,
        "A labelling budget: with a value in (0, 1], the weak side ours+gold gets students "
        "trained on ours' labels with this seeded share of the hard rows given their gold "
        "labels; the report counts them. 0: no such side."),
    Key("cascade", "list of mappings or null", None,
        "Intermediate strong models, weakest first (each a mapping of learner parameters over "
        "strong's, at least model): a weak -> intermediate(s) -> strong chain, each step "
        "trained on the previous one's labels of the hard rows, which it labels out of fold "
        "(cascade_folds folds, each by a copy trained on the others); its students are the "
        "weak side cascade and each step is reported as model cascade_step."),
    Key("cascade_folds", "int", 2,
        "The folds of each cascade step's out-of-fold labels (at least 2): each step trains "
        "this many extra copies, each on (cascade_folds - 1) / cascade_folds of the hard "
        "rows. Unused without cascade."),
    Key("test_split", "str or null", None,
        "Score on this split of the built-in dataset (train, validation or test: e.g. test, the "
        "official test split), or of your own dataset.test_path (or dataset.path when that is "
        "a directory or Hub name), instead of holding out test_size of the hard side. With "
        "split_kind easy_hard, the test questions are rated by the pool's difficulty rule, and "
        "those above its threshold are the hard test, the others the easy (in-distribution) "
        "one."),
    Key("n_test", "int or null", None,
        "With test_split or dataset.test_path: a random subset of this many test questions "
        "(drawn with data_seed); null keeps them all."),
    Key("baseline", "bool", True, "Also train the student on the first weak learner's labels."),
    Key("ceiling", "bool", True, "Also train the strong model on the gold labels."),
    Key("tracking", "mapping or null", None,
        "Experiment tracking of every learner (weak, strong, controls, cascade, "
        "difficulty.estimator) whose own section does not set it: report_to (none, mlflow, "
        "tensorboard, wandb or a list of them) and logging_steps (log every this many steps; "
        "null: about 50 logs per training run), e.g. {report_to: tensorboard, logging_steps: "
        "10}. Each training run is named seed{N}/STAGE[/roundT] (seed0/weak[ours]/round2, "
        "seed0/student[ours,xent]); TensorBoard writes under OUTPUT_DIR/tensorboard unless "
        "TENSORBOARD_LOGGING_DIR is set. Cached stages and rounds are reused. Without it, "
        "each stage's loss curve is still saved in seed{N}.json (stages: loss_curve)."),
    Key("output_dir", "str or null", None,
        "Where the results go. Default: runs/NAME; --output-dir overrides it."),
    Key("cache_dir", "str or null", None,
        "Stage and boosting-round cache. Default: OUTPUT_DIR/cache/seed{N}. Configs sharing one "
        "(e.g. ablations) reuse each other's split, rounds and ceiling."),
)
KEYS = {key.name: key for key in CONFIG_KEYS}
TASKS = ("binary", "multiple_choice")
SPLITS = ("train", "validation", "test")
SPLIT_KINDS = ("random", "easy_hard")
OPTION_FORMATS = ("cloze", "lettered")
DIFFICULTY_KEYS = ("n_splits", "easy_fraction", "estimator", "precomputed", "n_jobs")
TRACKING_KEYS = ("report_to", "logging_steps")
DATASET_KEYS = ("path", "columns", "split", "name", "choices_sep", "answer_format", "test_path")

DEMO_CONFIG = {
    "name": "demo-sciq-binary",
    "task": "binary",
    "dataset": "sciq",
    "n_examples": 800,
    "split_kind": "random",
    "test_split": "test",
    "n_test": 400,
    "seeds": [0, 1, 2],
    # The design of benchmarks/paired/sciq-binary-random.yaml on a small budget: LoRA weak
    # learners on the first 6 of SmolLM2-135M's 30 layers (they differ from round to round),
    # AdaBoost against a uniform bagging control of the same size and seed (member 1 = round 1
    # = the baseline's single learner), a linear head on the first 12 layers as the strong
    # student (the measured SciQ-binary pair of benchmarks/CAPABILITY.md), xent and logconf
    # students from one seed, scored on 400 official test questions: the report gives the
    # paired intervals of ours - baseline and ours - controls.
    "weak": {"model": "smollm2-135m[:6]", "mode": "lora", "lr": 1e-3, "n_epochs": 1,
             "max_length": 96, "batch_size": 16},
    "boost": {"n_estimators": 3, "sampling": "resample"},
    "controls": {"uniform": {"ensemble": "uniform", "n_estimators": 3, "bootstrap": True}},
    "strong": {"model": "smollm2-135m[:12]", "mode": "head", "max_length": 96, "batch_size": 16},
    "student_losses": ["xent", "logconf"],
}


# ----------------------------------------------------------------------------
# Rendering the table
# ----------------------------------------------------------------------------
def _default_text(key):
    if key.default is REQUIRED:
        return "required"
    if key.default is None:
        return "null"
    if isinstance(key.default, bool):
        return str(key.default).lower()
    return str(key.default)


def config_keys_markdown() -> str:
    """The config keys as a Markdown table (key, type, default, meaning), for the docs.

    Returns
    -------
    table : str
    """
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for key in CONFIG_KEYS:
        meaning = key.meaning.replace("|", "\\|")
        lines.append(f"| `{key.name}` | {key.type.replace('|', 'or')} | "
                     f"`{_default_text(key)}` | {meaning} |")
    return "\n".join(lines) + "\n"


def config_keys_text(width=88) -> str:
    """The config keys as plain text for ``--help``: one block per key.

    Parameters
    ----------
    width : int, default=88
        Line width.

    Returns
    -------
    text : str
    """
    blocks = []
    for key in CONFIG_KEYS:
        head = f"  {key.name}: {key.type} (default: {_default_text(key)})"
        body = textwrap.fill(key.meaning, width, initial_indent=" " * 6, subsequent_indent=" " * 6)
        blocks.append(head + "\n" + body)
    return "\n".join(blocks)


# ----------------------------------------------------------------------------
# Type checks
# ----------------------------------------------------------------------------
def _got(value):
    return f"got {value!r} ({type(value).__name__})"


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_bool(name, value):
    if not isinstance(value, bool):
        raise ConfigError(
            f"'{name}' must be a bool (true or false, unquoted in YAML); {_got(value)}.")


def _check_optional(name, value, test, what):
    if value is not None and not test(value):
        raise ConfigError(f"'{name}' must be {what} or null; {_got(value)}.")


def _check_choice(name, value, allowed):
    if not isinstance(value, str) or value not in allowed:
        raise ConfigError(
            f"Bad value {value!r} for '{name}'. Allowed: {', '.join(map(str, allowed))}.")


def _check_keys(section, given, allowed):
    unknown = sorted(str(k) for k in set(given) - set(allowed))
    if unknown:
        raise ConfigError(
            f"Unknown key(s) {unknown} in {section}. Allowed: {', '.join(sorted(allowed))}."
        )


def _mapping(name, value, *, null_is_empty):
    """A config section that must be a mapping; ``null`` means ``{}`` where allowed."""
    if value is None and null_is_empty:
        return {}
    if not isinstance(value, dict):
        hint = " (or null for the defaults)" if null_is_empty else ""
        raise ConfigError(
            f"'{name}' must be a mapping of parameter names to values{hint}; {_got(value)}.")
    return value


def _check_seeds(value):
    seeds = [value] if _is_int(value) else value
    if not isinstance(seeds, list) or not seeds or not all(_is_int(s) for s in seeds):
        raise ConfigError(f"'seeds' must be an int or a non-empty list of ints; {_got(value)}.")
    if any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise ConfigError(f"'seeds' must be distinct non-negative ints; got {seeds!r}.")
    return list(seeds)


def _check_learner(section, params, allowed):
    _check_keys(f"'{section}'", params, allowed)
    if not isinstance(params.get("model"), str):
        raise ConfigError(
            f"'{section}' must name a model (a Hub id, a local directory or an offline alias "
            f"such as smollm2-135m); got model: {params.get('model')!r}."
        )


def _check_dataset(config, raw):
    dataset = config["dataset"]
    if isinstance(dataset, str):
        _check_choice("dataset", dataset, _registry())
        if config["task"] == "binary" and dataset != "sciq":
            raise ConfigError(
                "task 'binary' is built from SciQ (Burns et al.); set dataset: sciq, or give your "
                "own text/label rows as dataset: {path: ..., columns: {text: ..., label: ...}}."
            )
        _check_choice("split", config["split"], SPLITS)
        return
    if not isinstance(dataset, dict):
        raise ConfigError(
            f"'dataset' must be a built-in name ({', '.join(_registry())}) or a mapping such as "
            f"{{path: questions.jsonl, columns: {{...}}}}; {_got(dataset)}."
        )
    _check_keys("'dataset'", dataset, DATASET_KEYS)
    if not isinstance(dataset.get("path"), str) or not dataset["path"]:
        raise ConfigError("'dataset.path' must be a file, a directory or a Hub name; "
                          f"got {dataset.get('path')!r}.")
    for key in ("split", "name", "test_path"):
        _check_optional(f"dataset.{key}", dataset.get(key), lambda v: isinstance(v, str) and v,
                        "a non-empty string")
    if dataset.get("answer_format") is not None:
        from ..data.tables import ANSWER_FORMATS

        _check_choice("dataset.answer_format", dataset["answer_format"], ANSWER_FORMATS)
    sep = dataset.get("choices_sep", "|")
    if not isinstance(sep, str) or not sep:
        raise ConfigError(f"'dataset.choices_sep' must be a non-empty string; {_got(sep)}.")
    from ..data.tables import check_columns

    try:
        check_columns(_mapping("dataset.columns", dataset.get("columns"), null_is_empty=True),
                      config["task"])
    except ValueError as exc:
        raise ConfigError(f"'dataset.columns': {exc}") from None
    if "split" in raw:
        raise ConfigError(
            "'split' applies to the built-in datasets; put split inside the dataset mapping.")


def _check_test_split(config):
    test_split, dataset = config["test_split"], config["dataset"]
    if isinstance(dataset, str):
        if test_split is None:
            return
        _check_choice("test_split", test_split, SPLITS)
        if test_split == config["split"]:
            raise ConfigError(f"'test_split' must differ from 'split' ({config['split']!r}): the "
                              "test questions would be in the pool.")
        return
    _check_optional("test_split", test_split, lambda v: isinstance(v, str) and v,
                    "a non-empty string")
    if dataset.get("test_path") in (None, dataset["path"]) and test_split is not None:
        pool_split = dataset.get("split") or "train"
        if test_split == pool_split:
            raise ConfigError(f"'test_split' must differ from the pool's split ({pool_split!r}) of "
                              f"{dataset['path']}: the test questions would be in the pool.")
    if dataset.get("test_path") is not None and dataset["test_path"] == dataset["path"] \
            and test_split is None:
        raise ConfigError("'dataset.test_path' is dataset.path: the test questions would be the "
                          "pool. Name another file, or a test_split of that directory.")


def _check_difficulty(config, learner_params):
    difficulty = config["difficulty"]
    if config["split_kind"] != "easy_hard":
        if difficulty is not None:
            raise ConfigError("'difficulty' applies to split_kind: easy_hard only; "
                              "remove it or set the split kind.")
        return
    difficulty = dict(_mapping("difficulty", difficulty, null_is_empty=True))
    _check_keys("'difficulty'", difficulty, DIFFICULTY_KEYS)
    estimator = _mapping("difficulty.estimator", difficulty.get("estimator"), null_is_empty=True)
    _check_keys("'difficulty.estimator'", estimator, learner_params)
    if "estimator" in difficulty:
        difficulty["estimator"] = estimator
    if "precomputed" in difficulty:
        _check_choice("difficulty.precomputed", difficulty["precomputed"], ("grade",))
        if config["dataset"] not in ("arc_easy", "arc_challenge"):
            raise ConfigError("difficulty.precomputed: grade exists only for the ARC datasets.")
    config["difficulty"] = difficulty


CONTROL_ENSEMBLES = ("adaboost", "uniform")


def _control_class(task, kind):
    from .. import UniformEnsembleClassifier, UniformEnsembleGenerator

    if kind == "adaboost":
        return _estimator_classes(task)[1]
    return UniformEnsembleClassifier if task == "binary" else UniformEnsembleGenerator


def _check_controls(config, learner_params):
    controls = config["controls"]
    if controls is None:
        return
    controls = _mapping("controls", controls, null_is_empty=False)
    checked = {}
    for name, settings in controls.items():
        if not isinstance(name, str) or not name or name == MAIN:
            raise ConfigError(
                f"'controls' names must be non-empty strings other than 'ours'; got {name!r}.")
        settings = dict(_mapping(f"controls.{name}", settings, null_is_empty=False))
        kind = settings.pop("ensemble", None)
        _check_choice(f"controls.{name}.ensemble", kind, CONTROL_ENSEMBLES)
        weak = _mapping(f"controls.{name}.weak", settings.pop("weak", None), null_is_empty=True)
        _check_keys(f"'controls.{name}.weak'", weak, learner_params)
        allowed = set(_control_class(config["task"], kind)().get_params(deep=False)) - {"estimator"}
        _check_keys(f"'controls.{name}'", settings, allowed | {"ensemble", "weak"})
        checked[name] = {"ensemble": kind, "weak": weak, **settings}
    config["controls"] = checked


def _check_model_specs(config):
    """Every model the config names can load: fail now, with one line, not after training."""
    from ..hf.models import check_model_spec

    sections = {"weak": config["weak"], "strong": config["strong"]}
    if config["difficulty"] and "estimator" in config["difficulty"]:
        sections["difficulty.estimator"] = config["difficulty"]["estimator"]
    for name, settings in (config["controls"] or {}).items():
        sections[f"controls.{name}.weak"] = settings["weak"]
    for k, step in enumerate(config.get("cascade") or []):
        sections[f"cascade[{k}]"] = step
    for section, params in sections.items():
        if "model" in params:
            try:
                check_model_spec(params["model"])
            except (ValueError, ImportError) as exc:
                raise ConfigError(f"'{section}.model': {exc}") from None


def _estimator_classes(task):
    from .. import LLMAdaBoostClassifier, LLMClassifier, LLMGenerator, TokenAdaBoostGenerator

    if task == "binary":
        return LLMClassifier, LLMAdaBoostClassifier
    return LLMGenerator, TokenAdaBoostGenerator


# ----------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------
_YAML12_FLOAT = re.compile(r"^[-+]?(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)[eE][-+]?\d+$")


def _unique_key_loader(path):
    """A ``yaml.SafeLoader`` that refuses a key given twice in one mapping, naming the key and
    both lines (PyYAML keeps the last silently). Keys merged in with ``<<`` may be
    overridden, as YAML means them to be."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                seen = {}
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = self.construct_object(key_node, deep=deep)
                    try:
                        first = seen.setdefault(key, key_node.start_mark.line)
                    except TypeError:  # an unhashable key: the base class reports it
                        continue
                    if first != key_node.start_mark.line:
                        raise ConfigError(
                            f"{path}, lines {first + 1} and {key_node.start_mark.line + 1}: the "
                            f"key {key!r} is given twice. Keep one of them."
                        )
            return super().construct_mapping(node, deep=deep)

    # YAML 1.2 floats: PyYAML (YAML 1.1) reads 1e-3, with no dot, as the string "1e-3"; on
    # this subclass only, a plain scalar in exponent form is a float (quoted, it stays a str)
    UniqueKeyLoader.add_implicit_resolver("tag:yaml.org,2002:float", _YAML12_FLOAT,
                                          list("-+0123456789."))
    return UniqueKeyLoader


def _read_yaml(path):
    import yaml

    from ..data.files import read_text

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file {path} does not exist.")
    required = ", ".join(k.name for k in CONFIG_KEYS if k.default is REQUIRED)
    empty = f"The config file {str(path)!r} is empty. A config needs at least: {required}."
    try:
        text = read_text(path, what="config file")
    except ValueError as exc:
        raise ConfigError(empty if "is empty" in str(exc) else str(exc)) from None
    try:
        raw = yaml.load(text, Loader=_unique_key_loader(path))  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: not valid YAML ({problem}).") from None
    if raw is None or raw == {}:
        raise ConfigError(empty)
    if not isinstance(raw, dict):
        raise ConfigError(f"Config file {path} must hold a mapping of keys to values; {_got(raw)}.")
    return raw


_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def apply_overrides(raw, overrides):
    """Set ``KEY=VALUE`` overrides (``skw2s run --set``) in a raw config, in place.

    Parameters
    ----------
    raw : dict
        The config as read, before validation.
    overrides : list of str
        ``"key=value"`` items. A dotted key reaches into a section (``weak.lr=1e-3``; a section
        that is missing or null becomes a mapping); the value is parsed as YAML, so ``3`` is an
        int, ``[0, 1]`` a list, ``null`` None and ``true`` a bool.

    Raises
    ------
    ConfigError
        For an item without ``=`` or with an empty key part, a value that is not YAML, or a key
        that reaches into a value that is not a mapping.
    """
    import yaml

    for item in overrides:
        key, sep, text = str(item).partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, such as weak.lr=1e-3.")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: the value is not YAML ({exc}).") from None
        if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
            value = float(value)  # YAML 1.1 reads 1e-3 (no dot) as a string
        node = raw
        for depth, part in enumerate(parts[:-1]):
            if node.get(part) is None:
                node[part] = {}
            if not isinstance(node[part], dict):
                where = ".".join(parts[: depth + 1])
                raise ConfigError(f"--set {item!r}: '{where}' is {node[part]!r}, not a mapping, so "
                                  f"it has no key {parts[depth + 1]!r}.")
            node = node[part]
        node[parts[-1]] = value
    return raw


def load_config(source, overrides=()) -> dict:
    """Read and validate an experiment config.

    Parameters
    ----------
    source : str, path-like or dict
        A YAML file, or the config as a dict (not modified). The keys are those of
        :data:`CONFIG_KEYS`; ``task``, ``dataset``, ``weak`` and ``strong`` are required.
    overrides : list of str, default=()
        ``KEY=VALUE`` items set over the config before it is checked (dotted keys, YAML
        values; see :func:`apply_overrides`), as ``skw2s run --set`` does.

    Returns
    -------
    config : dict
        Every key of :data:`CONFIG_KEYS`, defaults filled in: ``seeds`` as a list, ``boost``
        and an easy-hard ``difficulty`` as dicts (``null`` means the defaults), ``name`` from
        the file's name and ``output_dir`` from the name when they are not given.

    Raises
    ------
    ConfigError
        Naming the key: an unknown or missing key, a value of the wrong type (booleans must be
        YAML booleans, seeds ints), a section that is not a mapping, an estimator parameter the
        estimator does not have, or a file that is empty, not UTF-8 or not YAML (naming the
        file and line).
    """
    if isinstance(source, dict):
        raw = copy.deepcopy(source)
    else:
        raw = _read_yaml(source)
        raw.setdefault("name", Path(source).stem)
    apply_overrides(raw, overrides)
    _check_keys("the config", raw, KEYS)
    missing = [k.name for k in CONFIG_KEYS if k.default is REQUIRED and k.name not in raw]
    if missing:
        raise ConfigError(f"The config is missing the required key(s) {missing}.")
    config = {k.name: copy.deepcopy(k.default) for k in CONFIG_KEYS if k.default is not REQUIRED}
    config.update(raw)
    _check_optional("name", config["name"], lambda v: isinstance(v, str) and v,
                    "a non-empty string")
    _check_choice("task", config["task"], TASKS)
    for name in ("data_dir", "output_dir", "cache_dir"):
        _check_optional(name, config[name], lambda v: isinstance(v, str), "a string")
    _check_dataset(config, raw)
    _check_optional("n_examples", config["n_examples"], lambda v: _is_int(v) and v >= 1,
                    "an int >= 1")
    if not _is_int(config["data_seed"]):
        raise ConfigError(f"'data_seed' must be an int; {_got(config['data_seed'])}.")
    for name in ("use_support", "baseline", "ceiling"):
        _check_bool(name, config[name])
    _check_choice("split_kind", config["split_kind"], SPLIT_KINDS)
    _check_choice("options", config["options"], OPTION_FORMATS)
    if config["task"] == "binary" and config["options"] != "cloze":
        raise ConfigError(
            f"'options: {config['options']}' applies to task multiple_choice; task binary has "
            "no options to list. Remove the key."
        )
    if not _is_number(config["test_size"]):
        raise ConfigError(f"'test_size' must be a float or an int; {_got(config['test_size'])}.")
    _check_optional("id_test_size", config["id_test_size"], _is_number, "a float or an int")
    config["seeds"] = _check_seeds(config["seeds"])
    learner_cls, ensemble_cls = _estimator_classes(config["task"])
    learner_params = set(learner_cls().get_params(deep=False))
    for section in ("weak", "strong"):
        config[section] = _mapping(section, config[section], null_is_empty=False)
        _check_learner(section, config[section], learner_params)
    config["boost"] = _mapping("boost", config["boost"], null_is_empty=True)
    _check_keys("'boost'", config["boost"],
                set(ensemble_cls().get_params(deep=False)) - {"estimator"})
    _check_controls(config, learner_params)
    _check_bool("soft_labels", config["soft_labels"])
    if not (_is_number(config["gold_fraction"]) and 0 <= config["gold_fraction"] <= 1):
        raise ConfigError(f"'gold_fraction' must be a number in [0, 1]; "
                          f"{_got(config['gold_fraction'])}.")
    if config["cascade"] is not None:
        steps = config["cascade"]
        if not isinstance(steps, list) or not steps:
            raise ConfigError(f"'cascade' must be a non-empty list of mappings or null; "
                              f"{_got(steps)}.")
        config["cascade"] = [_mapping(f"cascade[{k}]", step, null_is_empty=False)
                             for k, step in enumerate(steps)]
        for k, step in enumerate(config["cascade"]):
            _check_keys(f"'cascade[{k}]'", step, learner_params)
    if not (_is_int(config["cascade_folds"]) and config["cascade_folds"] >= 2):
        raise ConfigError(f"'cascade_folds' must be an int >= 2; "
                          f"{_got(config['cascade_folds'])}.")
    _check_optional("label_fraction", config["label_fraction"],
                    lambda v: _is_number(v) and 0 < v <= 1, "a number in (0, 1]")
    for name in ("student_losses", "baseline_losses"):
        losses = config[name]
        if losses is not None and (not isinstance(losses, list) or not losses
                                   or not all(isinstance(v, str) for v in losses)):
            raise ConfigError(
                f"'{name}' must be a non-empty list of loss names or null; {_got(losses)}.")
    _check_test_split(config)
    _check_optional("n_test", config["n_test"], lambda v: _is_int(v) and v >= 1, "an int >= 1")
    _check_difficulty(config, learner_params)
    config["tracking"] = _mapping("tracking", config["tracking"], null_is_empty=True)
    _check_keys("'tracking'", config["tracking"], TRACKING_KEYS)
    _check_model_specs(config)
    if config["name"] is None:
        dataset = (config["dataset"] if isinstance(config["dataset"], str)
                   else Path(config["dataset"]["path"]).stem)
        config["name"] = f"{dataset}-{config['task']}-{config['split_kind']}"
    if config["output_dir"] is None:
        config["output_dir"] = str(Path("runs") / config["name"])
    return config
