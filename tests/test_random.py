"""skw2s.core.random: every seed derivation is deterministic, in range, apart from the other
streams of its estimator, and (salts included) the formula it always was."""

import ast
import pathlib

import numpy as np
import pytest
import sklearn.utils
from hypothesis import given, settings
from hypothesis import strategies as st

from skw2s.core import random as sr

SETTINGS = settings(max_examples=100, deadline=None)
seeds = st.integers(0, sr.MAX_SEED)
rounds = st.integers(1, 500)
epochs = st.integers(0, 1000)


def _first(rng, k=8):
    """The first ``k`` words of a Generator or RandomState, as a tuple."""
    if isinstance(rng, np.random.Generator):
        return tuple(rng.integers(2**32, size=k, dtype=np.uint64).tolist())
    return tuple(rng.randint(2**32, size=k, dtype=np.uint64).tolist())


def test_the_salts_are_named_and_keep_their_values():
    assert sr.HOLDOUT_SALT == 2**31 - 1
    assert sr.STAGE_SALT == 2026
    assert sr.GOLD_SALT == 2027
    assert sr.THRESHOLD_TIE_SALT == 1
    assert sr.BATCH_ORDER_SALT == 7301
    assert sr.SEED_HIGH == np.iinfo(np.int32).max == 2**31 - 1
    assert sr.MAX_SEED == 2**32 - 1
    assert sr.DEFAULT_TORCH_SEED == 0
    salts = [sr.HOLDOUT_SALT, sr.STAGE_SALT, sr.GOLD_SALT, sr.THRESHOLD_TIE_SALT]
    assert len(set(salts)) == len(salts)


@SETTINGS
@given(seeds, rounds, epochs)
def test_every_derivation_is_the_formula_it_always_was(seed, t, epoch):
    """The numbers of stored runs and of benchmarks/fixed_seed_outputs.py depend on these."""
    d = np.random.default_rng
    assert _first(sr.round_rng(seed, t)) == _first(d([seed, t - 1]))
    assert _first(sr.holdout_rng(seed)) == _first(d([seed, 2**31 - 1]))
    assert _first(sr.batch_order_rng(seed, epoch)) == _first(d([seed, epoch, 7301]))
    assert _first(sr.gold_rng(seed)) == _first(d([seed, 2027]))
    assert _first(sr.threshold_tie_rng(seed)) == _first(d([seed, 1]))
    assert _first(sr.split_rng(seed)) == _first(np.random.RandomState(seed))
    for derive in (sr.fold_rng, sr.tie_order_rng, sr.check_random_state):
        assert _first(derive(seed)) == _first(sklearn.utils.check_random_state(seed))
    old = d([seed, 2026])
    assert sr.stage_seeds(seed) == {k: int(old.integers(np.iinfo(np.int32).max))
                                    for k in ("split", "weak", "strong")}
    assert sr.decoding_seed(seed) == int(
        sklearn.utils.check_random_state(seed).randint(np.iinfo(np.int32).max))
    assert sr.resolve_seed(seed) == seed
    assert sr.torch_seed(seed) == seed


@SETTINGS
@given(seeds, rounds, epochs)
def test_derivations_are_deterministic(seed, t, epoch):
    for derive in (lambda: sr.round_rng(seed, t), lambda: sr.holdout_rng(seed),
                   lambda: sr.batch_order_rng(seed, epoch), lambda: sr.gold_rng(seed),
                   lambda: sr.threshold_tie_rng(seed), lambda: sr.split_rng(seed),
                   lambda: sr.fold_rng(seed), lambda: sr.tie_order_rng(seed)):
        assert _first(derive()) == _first(derive())
    assert sr.stage_seeds(seed) == sr.stage_seeds(seed)
    assert sr.decoding_seed(seed) == sr.decoding_seed(seed)
    assert sr.spawn_seed(sr.round_rng(seed, t)) == sr.spawn_seed(sr.round_rng(seed, t))


@SETTINGS
@given(seeds, st.integers(1, 200))
def test_an_ensembles_streams_are_apart(seed, n_rounds):
    """Rounds, the hold-out and (three words) the batch orders of one seed never coincide."""
    streams = [_first(sr.round_rng(seed, t)) for t in range(1, n_rounds + 1)]
    streams.append(_first(sr.holdout_rng(seed)))
    streams += [_first(sr.batch_order_rng(seed, e)) for e in range(3)]
    assert len(set(streams)) == len(streams)


@SETTINGS
@given(seeds)
def test_the_pipelines_and_the_splitters_streams_are_apart(seed):
    pipeline = [_first(np.random.default_rng([seed, sr.STAGE_SALT])),
                _first(sr.gold_rng(seed)), _first(sr.split_rng(seed))]
    assert len(set(pipeline)) == len(pipeline)
    assert _first(sr.threshold_tie_rng(seed)) != _first(sr.tie_order_rng(seed))


@SETTINGS
@given(seeds, st.integers(0, 2**32 - 1))
def test_drawn_seeds_are_in_range(seed, state):
    high = sr.SEED_HIGH
    assert 0 <= sr.resolve_seed(np.random.RandomState(state)) < high
    assert 0 <= sr.spawn_seed(np.random.default_rng(state)) < high
    assert 0 <= sr.decoding_seed(seed) < high
    assert all(0 <= v < high and isinstance(v, int) for v in sr.stage_seeds(seed).values())
    assert isinstance(sr.resolve_seed(np.int64(seed)), int)


@pytest.mark.parametrize("bad", [-1, 2**32, 1.5, "0", np.random.default_rng(0)])
def test_resolve_seed_rejects_what_is_not_a_random_state(bad):
    with pytest.raises(ValueError, match="random_state must"):
        sr.resolve_seed(bad)


def test_check_random_state_is_scikit_learns():
    assert sr.check_random_state(None) is sklearn.utils.check_random_state(None)
    rs = np.random.RandomState(0)
    assert sr.check_random_state(rs) is rs
    gen = np.random.default_rng(0)
    assert sr.check_random_state(gen, allow_generator=True) is gen
    with pytest.raises(ValueError):
        sr.check_random_state(gen)
    with pytest.raises(ValueError):
        sr.check_random_state("seed")


def test_none_draws_from_numpys_global_generator():
    """None is not reproducible (as in scikit-learn), except under ``np.random.seed``."""
    np.random.seed(3)
    first = (sr.resolve_seed(None), sr.decoding_seed(None), _first(sr.fold_rng(None)))
    np.random.seed(3)
    again = (sr.resolve_seed(None), sr.decoding_seed(None), _first(sr.fold_rng(None)))
    assert first == again
    np.random.seed(3)
    assert sr.resolve_seed(None) == int(np.random.RandomState(3).randint(sr.SEED_HIGH))
    assert sr.torch_seed(None) == sr.DEFAULT_TORCH_SEED  # the one documented exception


def test_the_module_imports_numpy_only():
    tree = ast.parse(pathlib.Path(sr.__file__).read_text(encoding="utf-8"))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.level == 0}
    assert imported <= {"__future__", "numbers", "numpy"}


def test_the_old_import_path_is_the_same_function():
    from skw2s._infra import validation

    for name in ("resolve_seed", "spawn_seed", "round_rng", "batch_order_rng"):
        assert getattr(validation, name) is getattr(sr, name)
