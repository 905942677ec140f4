"""Input checks and reductions of the student losses in :mod:`skw2s.losses`.

Every error names the loss, the argument and the offending row or value.
"""

from __future__ import annotations

import math
from numbers import Real

import torch

CALL_ARGS = ("logits", "labels", "sample_weight", "step_frac", "reduction")
# name -> (accepts hard labels, accepts soft labels, needs step_frac, estimator): the one source
# of the metadata. The functions check their labels against it; LOSSES is built from it.
SPECS = {
    "xent": (True, True, False, "classifier"),
    "logconf": (True, True, True, "classifier"),
    "product": (False, True, False, "classifier"),
    "kl": (True, True, False, "classifier"),
    "window": (True, True, False, "classifier"),
    "entropy": (True, True, True, "classifier"),
    "choice_xent": (True, True, False, "choice"),
    "choice_logconf": (True, True, True, "choice"),
}
SOFT_ONLY_REASON = {"product": " With one-hot labels the product of experts is exactly xent."}

REDUCTIONS = ("mean", "sum", "none")
SUM_TOL = 1e-3  # soft labels sum to 1 within this (float16/float32 predict_proba drift)


def first_row(mask):
    """Index of the first row of ``mask`` with a True entry."""
    return int(torch.nonzero(mask.reshape(mask.shape[0], -1).any(-1))[0, 0])


def as_scores(logits, name, *, what="logits", absent_ok=False):
    """``logits`` as a float tensor ``(n, K)`` (at least float32), finite.

    With ``absent_ok``, ``-inf`` entries (absent choices) are allowed, but not a row of them.
    """
    z = torch.as_tensor(logits)
    if not z.is_floating_point():
        raise ValueError(f"{name}: {what} must be floating point; got dtype {z.dtype}.")
    if z.ndim != 2 or z.shape[0] == 0 or z.shape[1] < 2:
        raise ValueError(f"{name}: {what} must have shape (n, K) with n >= 1 and K >= 2; "
                         f"got {tuple(z.shape)}.")
    z = z.to(torch.promote_types(z.dtype, torch.float32))
    bad = (torch.isnan(z) | (z == math.inf)) if absent_ok else ~torch.isfinite(z)
    if bad.any():
        note = " (-inf marks an absent choice)" if absent_ok else ""
        raise ValueError(f"{name}: {what} contain NaN or inf{note}; see row {first_row(bad)}.")
    if absent_ok and torch.isneginf(z).all(-1).any():
        row = first_row(torch.isneginf(z).all(-1))
        raise ValueError(f"{name}: row {row} of {what} has no choice (every entry is -inf).")
    return z


def label_kind(y, name="labels"):
    """``"hard"`` for integer class indices ``(n,)``, ``"soft"`` for float ``(n, K)``."""
    shape = tuple(y.shape)
    if y.dtype == torch.bool or y.is_complex():
        raise ValueError(f"{name}: labels must be integer class indices or float "
                         f"probabilities; got dtype {y.dtype}.")
    if y.ndim == 1 and not y.is_floating_point():
        return "hard"
    if y.ndim == 2 and y.is_floating_point():
        return "soft"
    if y.ndim == 1:
        raise ValueError(f"{name}: labels of shape {shape} must be integer class indices (hard "
                         f"labels); got dtype {y.dtype}. Pass soft labels as (n, K) "
                         f"probabilities, e.g. predict_proba.")
    if y.ndim == 2:
        raise ValueError(f"{name}: soft labels of shape {shape} must be floating point "
                         f"probabilities; got dtype {y.dtype}.")
    raise ValueError(f"{name}: labels must have shape (n,) (hard) or (n, K) (soft); "
                     f"got {shape}.")


def check_soft(t, name, what="classes"):
    """Soft labels are finite, non-negative and sum to 1 per row (within ``SUM_TOL``)."""
    bad = ~torch.isfinite(t) | (t < 0)
    if bad.any():
        i = first_row(bad)
        raise ValueError(f"{name}: soft labels must be finite and non-negative; "
                         f"row {i} is {t[i].tolist()}.")
    off = (t.sum(-1) - 1).abs() > SUM_TOL
    if off.any():
        i = first_row(off)
        raise ValueError(f"{name}: soft labels must sum to 1 over the {what} (within "
                         f"{SUM_TOL}); row {i} sums to {float(t[i].sum()):.6g}.")


def targets(labels, kind, z, name, absent=None):
    """The target distributions ``(n, K)`` in ``z``'s dtype and device.

    ``kind`` is ``label_kind(labels)``; ``absent`` the ``(n, K)`` mask of absent choices, on
    which labels may not point or put probability.
    """
    y = torch.as_tensor(labels, device=z.device)
    (n, k), what = z.shape, ("classes" if absent is None else "choices")
    if kind == "hard":
        if tuple(y.shape) != (n,):
            raise ValueError(f"{name}: hard labels have shape {tuple(y.shape)} but logits have "
                             f"shape {(n, k)}; expected ({n},).")
        bad = (y < 0) | (y >= k)
        if bad.any():
            i = first_row(bad)
            raise ValueError(f"{name}: labels[{i}] = {int(y[i])} is not an index of the {k} "
                             f"{what}, in [0, {k}).")
        y = y.long()
        if absent is not None and absent.gather(1, y[:, None]).any():
            i = first_row(absent.gather(1, y[:, None]))
            raise ValueError(f"{name}: labels[{i}] = {int(y[i])} is an absent choice (its "
                             f"log-likelihood is -inf).")
        return torch.nn.functional.one_hot(y, k).to(z.dtype)
    t = y.to(z.dtype)
    if tuple(t.shape) != (n, k):
        raise ValueError(f"{name}: soft labels have shape {tuple(t.shape)} but logits have "
                         f"shape {(n, k)}; expected the same shape.")
    check_soft(t, name, what)
    if absent is not None and (absent & (t > 0)).any():
        raise ValueError(f"{name}: soft labels put probability on an absent choice (-inf "
                         f"log-likelihood) in row {first_row(absent & (t > 0))}.")
    return t


def sample_weight(weight, z, name):
    """``weight`` as a finite, non-negative ``(n,)`` tensor like ``z``, or None."""
    if weight is None:
        return None
    w = torch.as_tensor(weight, device=z.device)
    if w.dtype == torch.bool or w.is_complex():
        raise ValueError(f"{name}: sample_weight must be real numbers; got dtype {w.dtype}.")
    w = w.to(z.dtype)
    if tuple(w.shape) != (z.shape[0],):
        raise ValueError(f"{name}: sample_weight has shape {tuple(w.shape)}; expected "
                         f"({z.shape[0]},), one weight per example.")
    bad = ~torch.isfinite(w) | (w < 0)
    if bad.any():
        i = first_row(bad)
        raise ValueError(f"{name}: sample_weight must be finite and non-negative; "
                         f"sample_weight[{i}] = {float(w[i])}.")
    return w


def step_frac(value, name, *, required):
    """``value`` as a float in [0, 1], or None when not given and not ``required``."""
    if value is None:
        if required:
            raise ValueError(f"{name} needs the training progress: pass step_frac = current "
                             f"step / total steps, a float in [0, 1].")
        return None
    try:
        s = float(value)
    except (TypeError, ValueError):
        s = math.nan
    if isinstance(value, bool) or not 0.0 <= s <= 1.0:
        raise ValueError(f"{name}: step_frac must be a float in [0, 1] (current step / total "
                         f"steps); got {value!r}.")
    return s


def check_param(name, key, value):
    """Check one loss hyperparameter, in scikit-learn's wording."""
    real = isinstance(value, Real) and not isinstance(value, bool)
    if key == "radius" and isinstance(value, str) and value == "midweak":
        raise ValueError(f"{name}: radius='midweak' is a statistic of the whole training set; "
                         f"compute it once with midweak_radius(soft_labels) and pass the number.")
    if key in ("aux_coef", "warmup_frac"):
        ok, rng = real and 0.0 <= value <= 1.0, "a float in the range [0, 1]"
    elif key in ("alpha", "beta", "radius"):
        ok, rng = real and 0.0 <= value < math.inf, "a float in the range [0, inf)"
    elif key == "detach":
        ok, rng = isinstance(value, bool), "a bool"
    else:
        ok, rng = True, ""
    if not ok:
        raise ValueError(f"The {key!r} parameter of {name} must be {rng}. Got {value!r} instead.")


def reduce(per_example, w, reduction, name):
    """Weighted mean, weighted sum, or the ``(n,)`` weighted terms of ``per_example``."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"{name}: reduction must be one of {REDUCTIONS}; got {reduction!r}.")
    if w is not None:
        per_example = per_example * w
    if reduction == "none":
        return per_example
    if reduction == "sum":
        return per_example.sum()
    if w is None:
        return per_example.mean()
    total = w.sum()
    if not total > 0:
        raise ValueError(f"{name}: sample_weight sums to 0, so the weighted mean is undefined; "
                         f"give an example a positive weight or use reduction='sum'.")
    return per_example.sum() / total


def soft_ce(logp, t):
    """``-sum_k t_k log p_k`` per row, with ``0 * log 0 = 0`` (absent choices: log p = -inf)."""
    return -(t * logp.masked_fill(t == 0, 0.0)).sum(-1)


def check_kind(name, labels, *, accepts_hard, accepts_soft):
    """The kind of ``labels`` (``"hard"`` or ``"soft"``), checked against what loss ``name``
    accepts; the error names the loss and what to pass."""
    y = torch.as_tensor(labels)
    kind = label_kind(y, name)
    if kind == "hard" and not accepts_hard:
        raise ValueError(f"The {name!r} loss needs soft labels: (n, K) probabilities such as "
                         f"the weak ensemble's predict_proba; got hard labels of shape "
                         f"{tuple(y.shape)}." + SOFT_ONLY_REASON.get(name, ""))
    if kind == "soft" and not accepts_soft:
        raise ValueError(f"The {name!r} loss needs hard labels: integer class indices of "
                         f"shape (n,), such as predict or the argmax of the probabilities; got "
                         f"soft labels of shape {tuple(y.shape)}.")
    return kind


def prepare(name, logits, labels, weight, progress, reduction, params=None, *,
             choices=False):
    """Check every argument; return the scores, targets, weights (or None) and step_frac."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"{name}: reduction must be one of {REDUCTIONS}; got {reduction!r}.")
    for key, value in (params or {}).items():
        check_param(name, key, value)
    z = as_scores(logits, name, what="loglik" if choices else "logits", absent_ok=choices)
    hard, soft = SPECS[name][:2]
    kind = check_kind(name, labels, accepts_hard=hard, accepts_soft=soft)
    t = targets(labels, kind, z, name, torch.isneginf(z) if choices else None)
    w = sample_weight(weight, z, name)
    return z, t, w, step_frac(progress, name, required=SPECS[name][2])


def binary_only(name, z, why):
    if z.shape[1] != 2:
        raise ValueError(f"{name} supports binary logits of shape (n, 2) only ({why}); "
                         f"got K = {z.shape[1]}.")
