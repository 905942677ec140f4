"""``skw2s run --dry-run``: check a config's data and models, and describe what a run would do."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from ..w2s.names import CASCADE, GOLD, MAIN
from ..w2s.pipeline import CASCADE_FOLDS
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
    if epochs == "auto":  # LLMClassifier: 200 full-batch Adam steps in head mode, else 3 epochs
        from ..estimators.classifier import AUTO_HYPERPARAMETERS

        epochs = AUTO_HYPERPARAMETERS[mode]["n_epochs"]
    return tokens, rows, per_token, per_row, (1 if mode == "head" else epochs), epochs, mode


def estimate_training_flops(config, data):
    """Training FLOPs of one seed of a config, by the counting rule of
    :mod:`skw2s.hf.efficiency`.

    Tokens come from the learners' tokenizers on the pool; the split is taken as half the pool
    on each side (an easy-hard split moves this a little), less the held-out test rows. The
    adapters of LoRA and the attention products are not counted, as in the rule. In head mode
    the frozen body reads each model's rows once per process (its features are cached), so the
    body's pass over a side's rows counts once, for the first stage that trains a head on
    them; the head's own steps count for every stage.

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

    features = set()  # head mode: the frozen body reads each (model, rows) once per process

    def fit(params, rows, side="hard"):
        tokens, loss_rows, per_token, per_row, body_passes, epochs, mode = _per_example(
            config, params, data)
        if mode == "head":
            key = (params["model"], params.get("max_length"), side)
            body_passes = 0 if key in features else body_passes
            features.add(key)
        return rows * (body_passes * tokens * per_token + epochs * loss_rows * per_row)

    flops = {}
    sides = {MAIN: (config["weak"], config["boost"])}
    for name, settings in (config.get("controls") or {}).items():
        sides[name] = ({**config["weak"], **settings["weak"]}, settings)
    for name, (params, ensemble) in sides.items():
        rounds = ensemble.get("n_estimators", 10 if config["task"] == "binary" else 5)
        flops[f"weak[{name}]"] = sum(fit(params, n_easy, "easy") for _ in range(rounds))
    if config["split_kind"] == "easy_hard" and "precomputed" not in config["difficulty"]:
        d = config["difficulty"]
        folds = d.get("n_splits", 3)
        params = {**config["weak"], **d.get("estimator", {})}
        flops["split"] = sum(fit(params, n * (folds - 1) / folds, "pool") for _ in range(folds))
    from ._config import _estimator_classes

    default = _estimator_classes(config["task"])[0]().get_params()["loss"]
    losses = config.get("student_losses") or [config["strong"].get("loss", default)]
    extra = [GOLD] * bool(config.get("gold_fraction"))
    folds = config.get("cascade_folds", CASCADE_FOLDS)
    for k, step in enumerate(config.get("cascade") or [], start=1):
        params = {**config["strong"], **step, "loss": losses[0]}
        flops[f"cascade[{k}]"] = fit(params, n_hard) + sum(
            fit(params, n_hard * (folds - 1) / folds) for _ in range(folds))
    extra += [CASCADE] * bool(config.get("cascade"))
    for loss in losses:
        for name in [*sides, *extra]:
            flops[f"student[{name},{loss}]"] = fit({**config["strong"], "loss": loss}, n_hard)
    if config["baseline"]:
        for loss in config.get("baseline_losses") or losses:
            flops[f"baseline[{loss}]"] = fit({**config["strong"], "loss": loss}, n_hard)
    if config["ceiling"]:
        flops["ceiling"] = fit(config["strong"], n_hard)
    return flops


EFFICIENCY_RANGE = (0.2, 0.6)
"""Training efficiencies (useful FLOPs / (training seconds x the matmul rate)) the dry run's
time estimate spans: the paired runs' seed files record 0.19 to 0.59 on 2 CPU cores
(``efficiency`` in ``benchmarks/results/paired/*/seed*.json``)."""


def estimate_training_seconds(flops):
    """Wall seconds that training ``flops`` FLOPs takes here, as a range over
    :data:`EFFICIENCY_RANGE`, from this process's matrix-product rate.

    The rate is :func:`skw2s.hf.efficiency.matmul_rate`'s, in float32 on the CPU, or in
    bfloat16 on the current GPU when there is one (the models' dtype there).

    Returns
    -------
    low, high : float
        Seconds at the highest and the lowest efficiency.
    rate : float
        The measured FLOP/s.
    where : str
        The device and dtype the rate was measured on.
    """
    import torch

    from ..hf.efficiency import matmul_rate

    if torch.cuda.is_available():
        rate, where = matmul_rate(device="cuda", dtype="bfloat16"), "bfloat16 on the GPU"
    else:
        rate = matmul_rate()
        where = f"float32 on {torch.get_num_threads()} CPU thread(s)"
    low, high = EFFICIENCY_RANGE
    return flops / (rate * high), flops / (rate * low), rate, where


def _duration(seconds):
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


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
    if config.get("gold_fraction"):
        stages += [(f"student[{GOLD},{loss}]", "the strong model") for loss in losses]
    for k, _ in enumerate(config.get("cascade") or [], start=1):
        stages.append((f"cascade[{k}]", f"cascade step {k}"))
        for f in range(1, config.get("cascade_folds", CASCADE_FOLDS) + 1):
            stages += [(f"cascade[{k}]/fold{f}", f"cascade step {k} on the other fold(s)"),
                       (f"labels[{CASCADE}{k}]/fold{f}", "none")]
    if config.get("cascade"):
        stages += [(f"student[{CASCADE},{loss}]", "the strong model") for loss in losses]
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
    low, high, rate, where = estimate_training_seconds(total * 1e12)
    lines.append(f"  cost: about {total:.3g} TFLOPs of training per seed (the counting rule of "
                 "skw2s.hf.efficiency)")
    lines.append(f"  time: training alone about {_duration(low)} to {_duration(high)} per seed "
                 f"here ({rate / 1e9:.0f} GFLOP/s measured now, {where}, at training "
                 f"efficiency {EFFICIENCY_RANGE[1]} to {EFFICIENCY_RANGE[0]}); loading, labelling "
                 "and scoring come on top")
    lines.append(f"  output: {out}/ (cache: {config['cache_dir'] or out / 'cache'})")
    return "\n".join(lines) + "\n"
