"""Every seed of skw2s and every stream derived from it, each a named function.

An estimator turns its ``random_state`` into one int seed with :func:`resolve_seed`; every
further random draw of a fit comes from that seed through one of the derivations below,
each with its own named salt:

=========================  =====================================================================
derivation                 stream
=========================  =====================================================================
:func:`round_rng`          boosting round ``t``: ``default_rng([seed, t - 1])`` (no salt)
:func:`holdout_rng`        the ensembles' held-out rows: ``default_rng([seed, HOLDOUT_SALT])``
:func:`batch_order_rng`    a training epoch's batch order: ``[seed, epoch, BATCH_ORDER_SALT]``
:func:`stage_seeds`        the pipeline's split, weak and strong seeds: ``[seed, STAGE_SALT]``
:func:`split_rng`          the pipeline's easy/hard/test split (a legacy ``RandomState``)
:func:`gold_rng`           the pipeline's gold-labelled rows: ``default_rng([seed, GOLD_SALT])``
:func:`fold_rng`           the difficulty folds (``KFold``), from ``random_state`` as it is
:func:`tie_order_rng`      the order of the difficulty ties of the pool, likewise
:func:`threshold_tie_rng`  new rows at the difficulty threshold: ``[seed, THRESHOLD_TIE_SALT]``
:func:`decoding_seed`      sampled decoding: a seed for a ``torch.Generator``
:func:`torch_seed`         training: the seed of torch's generators (``seeded_torch``, heads)
:func:`spawn_seed`         a child estimator's seed, drawn from one of the streams above
=========================  =====================================================================

The salts are the constants of this module; they, and the legacy ``RandomState`` streams,
are as they were before the derivations were named, so the fixed-seed outputs
(``benchmarks/fixed_seed_outputs.py``) did not change. Within one estimator no two of its
streams share their entropy: an ensemble's rounds ``[seed, t - 1]``, its hold-out
``[seed, 2**31 - 1]`` and its learners' batch orders (three words) are apart, and so are the
pipeline's stage, split and gold streams and the splitter's tie streams. Across estimators
the legacy salts do meet round indices (``[seed, THRESHOLD_TIE_SALT]`` is round 2's entropy,
``[seed, STAGE_SALT]`` round 2027's), but only for estimators that happen to get the same
int seed, and they use the streams for unrelated draws; a new derivation takes a salt of
its own: a word above ``HOLDOUT_SALT``, or a third word.

What ``None`` means
-------------------
``random_state=None`` is *not reproducible*, as in scikit-learn: a seed is drawn from
numpy's global ``RandomState`` (``np.random.seed`` makes such fits repeat, as the
fixed-seed benchmark does). This holds for every ``random_state`` a user passes
(:func:`resolve_seed`, :func:`check_random_state`, :func:`fold_rng`, :func:`tie_order_rng`,
:func:`decoding_seed`). The one exception is :func:`torch_seed`: the low-level training
functions of :mod:`skw2s.hf.training` (``train_head``, ``train_classifier``, ...) treat
``None`` as the fixed seed :data:`DEFAULT_TORCH_SEED` (0), so that a direct call is
reproducible; every estimator passes them a resolved int seed, so this never applies to a fit.

Numpy only: this module imports neither torch nor scikit-learn.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = [
    "BATCH_ORDER_SALT",
    "CASCADE_FOLD_SALT",
    "DEFAULT_TORCH_SEED",
    "GOLD_SALT",
    "HOLDOUT_SALT",
    "MAX_SEED",
    "SEED_HIGH",
    "STAGE_SALT",
    "THRESHOLD_TIE_SALT",
    "batch_order_rng",
    "cascade_fold_rng",
    "check_random_state",
    "decoding_seed",
    "fold_rng",
    "gold_rng",
    "holdout_rng",
    "resolve_seed",
    "round_rng",
    "spawn_seed",
    "split_rng",
    "stage_seeds",
    "threshold_tie_rng",
    "tie_order_rng",
    "torch_seed",
]

MAX_SEED = 2**32 - 1
"""The largest int ``random_state`` (numpy's ``RandomState`` takes ``[0, 2**32 - 1]``)."""

SEED_HIGH = np.iinfo(np.int32).max
"""Drawn seeds lie in ``[0, SEED_HIGH)`` (``2**31 - 1``, exclusive, as scikit-learn draws)."""

HOLDOUT_SALT = 2**31 - 1
"""Salt of :func:`holdout_rng`: above every round index, so never a round's stream."""

BATCH_ORDER_SALT = 7301
"""Salt of :func:`batch_order_rng`: its draws never coincide with a round's."""

STAGE_SALT = 2026
"""Salt of :func:`stage_seeds`, the pipeline's three stage seeds."""

GOLD_SALT = 2027
"""Salt of :func:`gold_rng`, the pipeline's gold-labelled rows."""

CASCADE_FOLD_SALT = 2028
"""Salt of :func:`cascade_fold_rng`, the folds of a cascade step's out-of-fold labels."""

THRESHOLD_TIE_SALT = 1
"""Salt of :func:`threshold_tie_rng`: a stream apart from the pool's tie order."""

DEFAULT_TORCH_SEED = 0
"""What :func:`torch_seed` makes of ``None`` (the one place where ``None`` is a fixed seed)."""


def _is_int(value):
    return isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, bool)


def check_random_state(random_state, *, allow_generator=False):
    """scikit-learn's ``check_random_state``, numpy only: a ``RandomState`` to draw from.

    None gives numpy's global ``RandomState``, an int a new ``RandomState(int)``, a
    ``RandomState`` itself. With ``allow_generator``, a ``numpy.random.Generator`` is passed
    through as well.

    Raises
    ------
    ValueError
        For anything else.
    """
    if random_state is None or random_state is np.random:
        return np.random.mtrand._rand
    if isinstance(random_state, (numbers.Integral, np.integer)):
        return np.random.RandomState(random_state)
    if isinstance(random_state, np.random.RandomState):
        return random_state
    if allow_generator and isinstance(random_state, np.random.Generator):
        return random_state
    raise ValueError(f"{random_state!r} cannot be used to seed a numpy.random.RandomState instance")


def resolve_seed(random_state):
    """Turn a ``random_state`` parameter into an int seed: the one seed rule of skw2s.

    An int is returned as it is; None or a ``RandomState`` draw one in ``[0, SEED_HIGH)``
    from :func:`check_random_state` (so None is not reproducible, as in scikit-learn).

    Raises
    ------
    ValueError
        For anything :func:`check_random_state` does not accept, or an int outside
        ``[0, MAX_SEED]``.
    """
    if _is_int(random_state):
        if not 0 <= int(random_state) <= MAX_SEED:
            raise ValueError(f"random_state must be in [0, {MAX_SEED}]; got {random_state!r}.")
        return int(random_state)
    try:
        rng = check_random_state(random_state)
    except ValueError:
        raise ValueError(
            f"random_state must be an int in the range [0, {MAX_SEED}], an instance of "
            f"'numpy.random.mtrand.RandomState' or None. Got {random_state!r} instead."
        ) from None
    return int(rng.randint(SEED_HIGH))


def spawn_seed(rng):
    """An int seed in ``[0, SEED_HIGH)`` for a child estimator, drawn from a ``Generator``."""
    return int(rng.integers(SEED_HIGH))


def round_rng(seed, t):
    """The generator of boosting round ``t`` (1-based): ``default_rng([seed, t - 1])``.

    A round's draws (its learner's seed, then its resampling) depend on ``(seed, t)`` only, not
    on ``n_estimators`` or on other rounds, so every ensemble that runs round ``t`` from the
    same weights trains the same learner.
    """
    return np.random.default_rng([int(seed), int(t) - 1])


def holdout_rng(seed):
    """The generator of an ensemble's held-out rows (``combine="learned"`` or ``"router"``):
    ``default_rng([seed, HOLDOUT_SALT])``."""
    return np.random.default_rng([int(seed), HOLDOUT_SALT])


def batch_order_rng(seed, epoch):
    """The generator of a training run's batch order in ``epoch`` (0-based):
    ``default_rng([seed, epoch, BATCH_ORDER_SALT])``.

    The length-grouped batches of :mod:`skw2s.hf.training` draw their order from it, so the same
    seed gives the same batches in every process, and every epoch its own order.
    """
    return np.random.default_rng([int(seed), int(epoch), BATCH_ORDER_SALT])


def stage_seeds(seed):
    """The seeds of the pipeline's stages: ``{"split", "weak", "strong"}``, drawn in that
    order by :func:`spawn_seed` from ``default_rng([seed, STAGE_SALT])``.

    Every weak side gets the ``"weak"`` seed and every strong model the ``"strong"`` one, so
    that compared models differ only in what is compared.
    """
    rng = np.random.default_rng([int(seed), STAGE_SALT])
    return {name: spawn_seed(rng) for name in ("split", "weak", "strong")}


def split_rng(seed):
    """The pipeline's split stream: the legacy ``numpy.random.RandomState(seed)``.

    Kept a ``RandomState`` (not a ``Generator``) because the splits of the fixed-seed outputs
    and of stored runs were drawn from it.
    """
    return np.random.RandomState(int(seed))


def gold_rng(seed):
    """The generator of the pipeline's gold-labelled rows: ``default_rng([seed, GOLD_SALT])``."""
    return np.random.default_rng([int(seed), GOLD_SALT])


def cascade_fold_rng(seed):
    """The generator of the folds in which a cascade step labels the hard training rows:
    ``default_rng([seed, CASCADE_FOLD_SALT])``."""
    return np.random.default_rng([int(seed), CASCADE_FOLD_SALT])


def fold_rng(random_state):
    """The stream of the difficulty folds: :func:`check_random_state` of the splitter's
    ``random_state`` as it is (what ``KFold(shuffle=True, random_state=...)`` draws from)."""
    return check_random_state(random_state)


def tie_order_rng(random_state):
    """The stream that orders the pool's rows of equal difficulty:
    :func:`check_random_state` of the splitter's ``random_state`` as it is.

    For an int this is a stream equal to :func:`fold_rng`'s, as it always was; None and a
    ``RandomState`` go on from where the folds left off.
    """
    return check_random_state(random_state)


def threshold_tie_rng(seed):
    """The generator of new rows at the difficulty threshold (``DifficultySplitter.hard_mask``):
    ``default_rng([seed, THRESHOLD_TIE_SALT])``."""
    return np.random.default_rng([int(seed), THRESHOLD_TIE_SALT])


def decoding_seed(random_state):
    """The seed of sampled decoding's ``torch.Generator``: one draw in ``[0, SEED_HIGH)`` from
    :func:`check_random_state` of ``random_state`` (an int is not used as it is)."""
    return int(check_random_state(random_state).randint(SEED_HIGH))


def torch_seed(random_state):
    """The seed of torch's generators in training: an int as it is, None
    :data:`DEFAULT_TORCH_SEED` (see the module's note on ``None``)."""
    return DEFAULT_TORCH_SEED if random_state is None else int(random_state)
