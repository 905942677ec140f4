"""``skw2s run --dry-run``: check a config's data and models, and describe what a run would do."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from ..w2s.names import MAIN
from ._data import load_task_data

__all__ = ["estimate_training_flops", "plan_text"]

@functools.lru_cache(maxsize=16)
def _parameter_counts(spec):
    """The counting rule's parameter counts of a model spec, from its config alone (the model
    is built on the meta device: no weights are read)."""
    import torch
    import transformers

    from ..hf.efficiency import parameter_counts
    from ..hf.models import parse_model_spec, resolve_model_path

    parsed = parse_model_spec(spec)
    config = transformers.AutoConfig.from_pretrained(resolve_model_path(parsed))
    if parsed.n_layers is not None:
        config.num_hidden_layers = parsed.n_layers
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(config)
    counts = parameter_counts(model, model.get_output_embeddings())
    counts["hidden"] = int(config.hidden_size)
    return counts


def _tokens(spec, texts, max_length):
    from ..hf.models import load_tokenizer

    tokenizer = load_tokenizer(spec)
    lengths = [len(ids) for ids in tokenizer(list(texts), add_special_tokens=True)["input_ids"]]
    return np.minimum(np.asarray(lengths, dtype=float), max_length or np.inf)


def _per_example(config, params, data):
    """Mean useful tokens and loss rows per training example of a learner, and its weights by
    the counting rule: ``(tokens, rows, flops per token, flops per row)``."""
    from ._config import _estimator_classes

    learner = _estimator_classes(config["task"])[0]()
    defaults = learner.get_params()
    mode = params.get("mode", defaults.get("mode"))
    max_length = params.get("max_length", defaults.get("max_length"))
    spec = params["model"]
    counts = dict(_parameter_counts(spec))
    X, y = data["X"], data["y"]
    if config["task"] == "binary":
        tokens = _tokens(spec, X, max_length).mean()
        rows, head = 1.0, 2 * counts["hidden"]  # the classifier's linear head, two classes
        counts.update(head=head, head_trained=head)
    else:
        loss = params.get("loss", defaults.get("loss"))
        answers = [c[k] for c, k in zip(X["choices"], y)]
        prompt = _tokens(spec, X["prompt"], max_length)
        if loss == "sft":
            answer = _tokens(spec, [" " + a for a in answers], max_length)
            tokens, rows = (prompt + answer).mean(), answer.mean()
        else:  # the choice losses read every option
            options = [sum(_tokens(spec, [" " + o for o in c], max_length)) for c in X["choices"]]
            tokens, rows = (prompt + np.asarray(options)).mean(), np.mean(options)
        counts["head_trained"] = counts["head"] if mode == "full" else 0
    if mode == "full":
        counts["body_trained"] = counts["body"]
        per_token = 4 * counts["body"] + 2 * counts["body_trained"]
    elif mode == "head":  # the frozen body's features are computed once, not per epoch
        counts["body_trained"] = 0
        per_token = 2 * counts["body"]
    else:  # lora: the adapters are a small fraction of the body
        counts["body_trained"] = 0
        per_token = 4 * counts["body"]
    per_row = 4 * counts["head"] + 2 * counts["head_trained"]
    epochs = params.get("n_epochs", defaults.get("n_epochs"))
    return tokens, rows, per_token, per_row, (1 if mode == "head" else epochs), epochs


def estimate_training_flops(config, data):
    """Training FLOPs of one seed of a config, by the counting rule of :mod:`skw2s._efficiency`.

    Tokens come from the learners' tokenizers on the pool; the split is taken as half the pool
    on each side (an easy-hard split moves this a little), less the held-out test rows. The
    adapters of LoRA and the attention products are not counted, as in the rule.

    Parameters
    ----------
    config : dict
        A config from :func:`~skw2s.experiment.load_config`.
    data : dict
        Its data, from :func:`~skw2s.experiment.load_task_data` with ``with_test=True``.

    Returns
    -------
    flops : dict
        Stage name -> FLOPs, over the stages that train.
    """
    n = len(data["X"])
    n_easy, n_hard = n // 2, n - n // 2
    if data.get("X_test") is None:
        size = config["test_size"]
        n_hard -= int(round(size * n_hard)) if isinstance(size, float) else int(size)
    if config.get("id_test_size") is not None:
        size = config["id_test_size"]
        n_easy -= int(round(size * n_easy)) if isinstance(size, float) else int(size)

    def fit(params, rows):
        tokens, loss_rows, per_token, per_row, body_passes, epochs = _per_example(
            config, params, data)
        return rows * (body_passes * tokens * per_token + epochs * loss_rows * per_row)

    flops = {}
    sides = {MAIN: (config["weak"], config["boost"])}
    for name, settings in (config.get("controls") or {}).items():
        sides[name] = ({**config["weak"], **settings["weak"]}, settings)
    for name, (params, ensemble) in sides.items():
        rounds = ensemble.get("n_estimators", 10 if config["task"] == "binary" else 5)
        flops[f"weak[{name}]"] = rounds * fit(params, n_easy)
    if config["split_kind"] == "easy_hard" and "precomputed" not in config["difficulty"]:
        d = config["difficulty"]
        folds = d.get("n_splits", 3)
        params = {**config["weak"], **d.get("estimator", {})}
        flops["split"] = folds * fit(params, n * (folds - 1) / folds)
    from ._config import _estimator_classes

    default = _estimator_classes(config["task"])[0]().get_params()["loss"]
    losses = config.get("student_losses") or [config["strong"].get("loss", default)]
    for loss in losses:
        student = fit({**config["strong"], "loss": loss}, n_hard)
        for name in sides:
            flops[f"student[{name},{loss}]"] = student
    if config["baseline"]:
        for loss in config.get("baseline_losses") or losses:
            flops[f"baseline[{loss}]"] = fit({**config["strong"], "loss": loss}, n_hard)
    if config["ceiling"]:
        flops["ceiling"] = fit(config["strong"], n_hard)
    return flops


def _stages(config):
    """The pipeline stages one seed fits, as (name, what trains there)."""
    sides = [MAIN] + list(config.get("controls") or {})
    from ._config import _estimator_classes

    default = _estimator_classes(config["task"])[0]().get_params()["loss"]
    losses = config.get("student_losses") or [config["strong"].get("loss", default)]
    baseline_losses = config.get("baseline_losses") or losses
    stages = [("split", "easy_hard rating" if config["split_kind"] == "easy_hard" else "none")]
    for side in sides:
        n = (config["boost"] if side == MAIN else config["controls"][side]).get("n_estimators")
        stages.append((f"weak[{side}]", f"up to {n or 'the default number of'} weak learners"))
        stages.append((f"labels[{side}]", "none"))
    if config["baseline"]:
        stages.append(("labels[baseline]", "none"))
    for side in sides:
        stages += [(f"student[{side},{loss}]", "the strong model") for loss in losses]
    if config["baseline"]:
        stages += [(f"baseline[{loss}]", "the strong model") for loss in baseline_losses]
    if config["ceiling"]:
        stages.append(("ceiling", "the strong model on gold labels"))
    return stages


def _learner(params):
    rest = ", ".join(f"{k}={v}" for k, v in params.items() if k != "model")
    return f"{params['model']}" + (f" ({rest})" if rest else "")


def plan_text(config, *, data_dir=None, output_dir=None):
    """Check a validated config's data and describe the run it gives, training nothing.

    The config's model specs were checked by :func:`~skw2s.experiment.load_config`; this loads
    and maps every row of the data (the pool and the test questions) as a run would.

    Parameters
    ----------
    config : dict
        A config from :func:`~skw2s.experiment.load_config`.
    data_dir : str, path-like or None, default=None
        As for :func:`~skw2s.experiment.run_config`.
    output_dir : str, path-like or None, default=None
        Overrides the config's ``output_dir``.

    Returns
    -------
    text : str
        The plan: data sizes, the split, the models of each side, the stages of one seed and
        where the results would go.

    Raises
    ------
    FileNotFoundError, ValueError
        As a run would, before training: a missing file, a row that cannot be mapped.
    """
    data = load_task_data(config, data_dir, with_test=True)
    out = Path(output_dir or config["output_dir"])
    dataset = config["dataset"]
    source = dataset if isinstance(dataset, str) else dataset["path"]
    lines = [f"Plan of {config['name']} (dry run: nothing trained, nothing written)",
             f"  data: {config['task']} from {source}: {len(data['X'])} rows in the pool, every "
             "row loaded and mapped"]
    if data.get("X_test") is not None:
        lines.append(f"  test: {len(data['X_test'])} questions of its own")
    else:
        lines.append(f"  test: test_size={config['test_size']} of the hard side held out")
    lines.append(f"  split: {config['split_kind']}; seeds {config['seeds']}")
    lines.append(f"  weak: {_learner(config['weak'])}; boost {config['boost'] or 'defaults'}")
    for name, settings in (config.get("controls") or {}).items():
        lines.append(f"  control {name}: {settings['ensemble']}, "
                     f"{ {k: v for k, v in settings.items() if k != 'ensemble'} }")
    lines.append(f"  strong: {_learner(config['strong'])}")
    stages = _stages(config)
    trained = [name for name, what in stages if what != "none"]
    lines.append(f"  stages per seed: {len(stages)} ({len(trained)} train: {', '.join(trained)})")
    flops = estimate_training_flops(config, data)
    total = sum(flops.values()) / 1e12
    lines.append(f"  cost: about {total:.3g} TFLOPs of training per seed (counting rule of "
                 f"skw2s._efficiency; not yet turned into CPU time)")
    lines.append(f"  output: {out}/ (cache: {config['cache_dir'] or out / 'cache'})")
    return "\n".join(lines) + "\n"
