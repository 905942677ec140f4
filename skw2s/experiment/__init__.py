"""The experiment layer: a config's schema and validation, its task data, the pipeline it
describes, and the runner that fits one pipeline per seed and writes the per-seed JSON.

- :data:`CONFIG_KEYS` is the one table of config keys (name, type, default, meaning);
  :func:`load_config` validates against it, and ``skw2s run --help`` and ``docs/config.md``
  print it.
- :func:`load_task_data` gives the labelled pool: a built-in dataset
  (:func:`skw2s.datasets.load_dataset`) or your own table (:func:`skw2s.datasets.load_table`).
- :func:`build_pipeline` builds the :class:`~skw2s.WeakToStrongPipeline` of one seed, and
  :func:`run_config` runs every seed, resumably, into an output directory that
  :func:`skw2s.report.write_report` aggregates.

The ``skw2s`` command (:mod:`skw2s.cli`) is a thin argparse layer over this package.
"""

from ._config import (
    CONFIG_KEYS,
    DEMO_CONFIG,
    REQUIRED,
    ConfigError,
    Key,
    apply_overrides,
    config_keys_markdown,
    config_keys_text,
    load_config,
)
from ._data import load_task_data
from ._plan import estimate_training_flops, plan_text
from ._runner import ResultsNotSaved, RunInterrupted, build_pipeline, run_config

__all__ = [
    "CONFIG_KEYS",
    "DEMO_CONFIG",
    "REQUIRED",
    "ConfigError",
    "Key",
    "ResultsNotSaved",
    "RunInterrupted",
    "apply_overrides",
    "build_pipeline",
    "config_keys_markdown",
    "config_keys_text",
    "estimate_training_flops",
    "load_config",
    "load_task_data",
    "plan_text",
    "run_config",
]
