"""Standard weak-to-strong student losses, as pure torch functions.

The losses the weak-to-strong literature trains a student with on weak labels, to compare with
EnsemW2S's plain cross-entropy on the ensemble's labels:

- openai/weak-to-strong ``weak_to_strong/loss.py`` (Burns et al. 2023, arXiv 2312.09390,
  section 4.3.2): ``xent_loss``, ``logconf_loss_fn``, ``product_loss_fn``;
- EleutherAI/w2s ``w2s/loss.py``, with its trainer in ``w2s/sft.py``: ``cross_entropy_loss``,
  ``kl_divergence_loss``, ``confidence_window_loss`` ("window", radius "midweak") and
  ``log_confidence_loss(harden=False)`` ("entropy").

Every loss has one signature, for a Trainer's ``compute_loss`` or a full-batch loop::

    loss(logits, labels, *, sample_weight=None, step_frac=None, reduction="mean", **params)

- ``logits``: ``(n, K)``, floating point; the result is differentiable in it. Computation is in
  float32 (float64 stays float64).
- ``labels``: hard class indices ``(n,)`` (integers) or soft labels ``(n, K)`` (probabilities,
  e.g. the ensemble's ``predict_proba``; rows sum to 1 within 1e-3).
- ``sample_weight``: ``(n,)``, finite, non-negative; ``None`` weighs every example 1. Batch
  statistics (``logconf``'s mean weak label and threshold) use the rows with positive weight,
  so a zero weight removes an example from every loss.
- ``step_frac``: training progress, current step / total steps, in ``[0, 1]``. Required by the
  losses with a warmup (``logconf``, ``entropy``, ``choice_logconf``), checked and ignored by
  the others.
- ``reduction``: ``"mean"`` is the weighted mean ``sum(w * l) / sum(w)``; ``"sum"`` is
  ``sum(w * l)``; ``"none"`` the ``(n,)`` terms ``w * l``.

``LOSSES`` maps each name to a :class:`Loss`, which carries the metadata (labels it takes,
whether it needs ``step_frac``, which estimator it is for); ``get_loss(name, **params)`` binds
hyperparameters.

Which loss applies to which estimator
-------------------------------------
==================  ============================  ==========  ==================
loss                estimator                     classes     labels
==================  ============================  ==========  ==================
``xent``            classifier                    any K       hard or soft
``logconf``         binary classifier             K = 2       hard or soft
``product``         classifier                    any K       soft only
``kl``              classifier                    any K       hard or soft
``window``          binary classifier             K = 2       hard or soft
``entropy``         classifier                    any K       hard or soft
``choice_xent``     multiple-choice generator     any         hard or soft
``choice_logconf``  multiple-choice generator     any         hard or soft
==================  ============================  ==========  ==================

A classifier passes its head's logits. A multiple-choice generator trained over the choices
passes its causal LM's per-choice log-likelihoods ``(n, n_choices)`` (``-choice_nll``);
:func:`choice_log_proba` turns them into the choice distribution, and ``-inf`` marks an absent
choice (a question with fewer options in a padded batch).

Where we differ from the originals (each function says more):

- the warmup of ``logconf`` (and ``entropy``) is a linear ramp from 0 to 1 over
  ``warmup_frac``; openai multiplies by ``step_frac`` itself, so its weight rises to 0.1 and
  jumps to 1 when warmup ends;
- ``entropy``'s entropy term has a gradient; EleutherAI's is detached and adds to the value
  only (``detach=True`` reproduces it);
- ``product`` is computed in log space, finite where openai's underflowed product is 0 / 0.
"""

from __future__ import annotations

import inspect

import torch

from . import _loss_checks as _c

__all__ = [
    "LOSSES", "Loss", "check_labels", "choice_log_proba", "choice_logconf", "choice_xent",
    "entropy", "get_loss", "kl", "logconf", "logconf_warmup", "midweak_radius", "product",
    "window", "xent",
]

_CALL_ARGS = ("logits", "labels", "sample_weight", "step_frac", "reduction")
# name -> (accepts hard labels, accepts soft labels, needs step_frac, estimator): the one source
# of the metadata. The functions check their labels against it; LOSSES is built from it.
_SPECS = {
    "xent": (True, True, False, "classifier"),
    "logconf": (True, True, True, "classifier"),
    "product": (False, True, False, "classifier"),
    "kl": (True, True, False, "classifier"),
    "window": (True, True, False, "classifier"),
    "entropy": (True, True, True, "classifier"),
    "choice_xent": (True, True, False, "choice"),
    "choice_logconf": (True, True, True, "choice"),
}
_SOFT_ONLY_REASON = {"product": " With one-hot labels the product of experts is exactly xent."}

# ---------------------------------------------------------------------------------------------
# labels and arguments


def check_labels(loss, labels):
    """Check that ``loss`` accepts the kind of ``labels``, and return the kind.

    Parameters
    ----------
    loss : Loss or str
        A loss, or its name in :data:`LOSSES`.
    labels : array-like or Tensor
        Hard labels: integer class indices ``(n,)``. Soft labels: float probabilities
        ``(n, K)``.

    Returns
    -------
    {"hard", "soft"}

    Raises
    ------
    ValueError
        If the loss needs the other kind (the message names the loss and what to pass), or
        ``labels`` are neither: 1-D floats, 2-D integers, booleans, another number of dims.
    """
    loss = get_loss(loss) if isinstance(loss, str) else loss
    y = torch.as_tensor(labels)
    kind = _c.label_kind(y, loss.name)
    if kind == "hard" and not loss.accepts_hard_labels:
        raise ValueError(f"The {loss.name!r} loss needs soft labels: (n, K) probabilities such as "
                         f"the weak ensemble's predict_proba; got hard labels of shape "
                         f"{tuple(y.shape)}." + _SOFT_ONLY_REASON.get(loss.name, ""))
    if kind == "soft" and not loss.accepts_soft_labels:
        raise ValueError(f"The {loss.name!r} loss needs hard labels: integer class indices of "
                         f"shape (n,), such as predict or the argmax of the probabilities; got "
                         f"soft labels of shape {tuple(y.shape)}.")
    return kind


def _prepare(name, logits, labels, sample_weight, step_frac, reduction, params=None, *,
             choices=False):
    """Check every argument; return the scores, targets, weights (or None) and step_frac."""
    if reduction not in _c.REDUCTIONS:
        raise ValueError(f"{name}: reduction must be one of {_c.REDUCTIONS}; got {reduction!r}.")
    for key, value in (params or {}).items():
        _c.check_param(name, key, value)
    z = _c.as_scores(logits, name, what="loglik" if choices else "logits", absent_ok=choices)
    kind = check_labels(LOSSES[name], labels)
    t = _c.targets(labels, kind, z, name, torch.isneginf(z) if choices else None)
    w = _c.sample_weight(sample_weight, z, name)
    return z, t, w, _c.step_frac(step_frac, name, required=_SPECS[name][2])


def _binary_only(name, z, why):
    if z.shape[1] != 2:
        raise ValueError(f"{name} supports binary logits of shape (n, 2) only ({why}); "
                         f"got K = {z.shape[1]}.")


# ---------------------------------------------------------------------------------------------
# classifier losses


def xent(logits, labels, *, sample_weight=None, step_frac=None, reduction="mean"):
    """Cross-entropy of the student's logits on hard or soft weak labels.

    openai ``weak_to_strong/loss.py`` ``xent_loss``; EleutherAI ``w2s/loss.py``
    ``cross_entropy_loss``. Per example ``-sum_k t_k log softmax(z)_k``, with ``t`` the one-hot
    hard label or the soft label.

    Parameters
    ----------
    logits : Tensor of shape (n, K)
    labels : Tensor or array-like of shape (n,) (int) or (n, K) (probabilities)
    sample_weight, step_frac, reduction
        See the module docstring; ``step_frac`` is ignored.

    Returns
    -------
    Tensor
        Scalar, or ``(n,)`` for ``reduction="none"``; differentiable in ``logits``.

    Raises
    ------
    ValueError
        On bad input; the message names the argument and the offending row.
    """
    z, t, w, _ = _prepare("xent", logits, labels, sample_weight, step_frac, reduction)
    return _c.reduce(_c.soft_ce(torch.log_softmax(z, -1), t), w, reduction, "xent")


def logconf_warmup(step_frac, warmup_frac=0.1):
    """Return the warmup factor of the auxiliary term: a linear ramp from 0 to 1.

    ``min(1, step_frac / warmup_frac)``, and 1 throughout when ``warmup_frac=0``. openai's
    ``logconf_loss_fn`` uses ``1 if step_frac > warmup_frac else step_frac``, which rises to
    ``warmup_frac`` and then jumps to 1; EleutherAI ramps linearly (over a number of steps).

    Parameters
    ----------
    step_frac : float in [0, 1]
        Current step / total steps.
    warmup_frac : float in [0, 1], default=0.1

    Returns
    -------
    float in [0, 1]

    Raises
    ------
    ValueError
        If either argument is outside [0, 1].
    """
    s = _c.step_frac(step_frac, "logconf_warmup", required=True)
    _c.check_param("logconf_warmup", "warmup_frac", warmup_frac)
    return 1.0 if warmup_frac == 0 else min(1.0, s / warmup_frac)


def _binary_harden(p0, prior, active=None):
    """Burns et al.'s hardening: threshold ``P(class 0)`` at its ``prior`` quantile.

    The quantile is over the ``active`` rows (all by default). Returns the threshold and the
    hardened predictions ``(n, 2)``: class 0 where ``p0 >= threshold``, class 1 below, so the
    fraction of class 1 matches ``prior`` within ``1/n`` for distinct probabilities.
    """
    q = torch.as_tensor(prior, dtype=p0.dtype, device=p0.device).clamp(0.0, 1.0)
    threshold = torch.quantile(p0 if active is None else p0[active], q)
    return threshold, torch.stack([p0 >= threshold, p0 < threshold], dim=1).to(p0.dtype)


def logconf(logits, labels, *, sample_weight=None, step_frac=None, reduction="mean",
            aux_coef=0.5, warmup_frac=0.1):
    """Auxiliary-confidence loss (binary): the weak labels mixed with the student's own
    hardened predictions.

    openai ``weak_to_strong/loss.py`` ``logconf_loss_fn`` (Burns et al. 2023, section 4.3.2);
    EleutherAI ``w2s/loss.py`` ``log_confidence_loss`` with ``harden=True``. Per example, with
    ``a = aux_coef * logconf_warmup(step_frac, warmup_frac)``,
    ``CE(z, (1 - a) t + a h) = (1 - a) CE(z, t) + a CE(z, h)``. ``h`` hardens the student's
    detached predictions at a threshold: the quantile of ``P(class 0)`` at the mean weak
    probability of class 1, so the fraction of hardened positives matches the mean weak label.
    Both statistics use the rows with positive weight; ties at the threshold go to class 0, as
    in the originals.

    The warmup ramps linearly (:func:`logconf_warmup`) where openai's jumps from
    ``warmup_frac`` to 1. Binary only, like openai's (which asserts two classes): the threshold
    matches one fraction of positives, which K classes do not have; for multiple-choice
    questions use :func:`choice_logconf`. EleutherAI's optional batch balancing and buffer of
    past predictions for the quantile are not included.

    Parameters
    ----------
    logits : Tensor of shape (n, 2)
    labels : Tensor or array-like of shape (n,) (int) or (n, 2) (probabilities)
    sample_weight, step_frac, reduction
        See the module docstring; ``step_frac`` is required.
    aux_coef : float in [0, 1], default=0.5
        Weight of the hardened predictions after the warmup.
    warmup_frac : float in [0, 1], default=0.1
        Fraction of training over which that weight ramps up from 0.

    Returns
    -------
    Tensor
        Scalar, or ``(n,)`` for ``reduction="none"``; differentiable in ``logits``.

    Raises
    ------
    ValueError
        If ``K != 2``, ``step_frac`` is missing, every weight is 0, or on bad input.
    """
    params = {"aux_coef": aux_coef, "warmup_frac": warmup_frac}
    z, t, w, s = _prepare("logconf", logits, labels, sample_weight, step_frac, reduction, params)
    _binary_only("logconf", z, "the threshold matches the weak labels' fraction of positives")
    active = None if w is None else w > 0
    if active is not None and not active.any():
        raise ValueError("logconf: every sample_weight is 0, so the threshold (a statistic of "
                         "the rows with positive weight) is undefined.")
    coef = aux_coef * logconf_warmup(s, warmup_frac)
    logp = torch.log_softmax(z, -1)
    prior = t[:, 1].mean() if active is None else t[active, 1].mean()
    _, hard = _binary_harden(logp[:, 0].detach().exp(), prior, active)
    return _c.reduce(_c.soft_ce(logp, (1 - coef) * t + coef * hard), w, reduction, "logconf")


def product(logits, labels, *, sample_weight=None, step_frac=None, reduction="mean",
            alpha=1.0, beta=1.0):
    """Product-of-experts loss: cross-entropy on the normalised product of the weak labels and
    the student's own predictions.

    openai ``weak_to_strong/loss.py`` ``product_loss_fn``. The target is
    ``t^alpha p^beta / sum_k t_k^alpha p_k^beta`` with ``p = softmax(logits)``, detached.
    Computed in log space, so it stays finite where openai's product of underflowed
    probabilities is 0 / 0. openai's ``warmup_frac`` is unused there and left out here. Soft
    labels only: with one-hot labels the target is the label and the loss is :func:`xent`.

    Parameters
    ----------
    logits : Tensor of shape (n, K)
    labels : Tensor or array-like of shape (n, K)
        Soft weak labels (probabilities).
    sample_weight, step_frac, reduction
        See the module docstring; ``step_frac`` is ignored.
    alpha : float >= 0, default=1.0
        Exponent of the weak labels.
    beta : float >= 0, default=1.0
        Exponent of the student's predictions.

    Returns
    -------
    Tensor
        Scalar, or ``(n,)`` for ``reduction="none"``; differentiable in ``logits``.

    Raises
    ------
    ValueError
        If ``labels`` are hard, or on bad input.
    """
    params = {"alpha": alpha, "beta": beta}
    z, t, w, _ = _prepare("product", logits, labels, sample_weight, step_frac, reduction, params)
    logp = torch.log_softmax(z, -1)
    log_target = beta * logp.detach() + (alpha * torch.log(t) if alpha > 0 else 0.0)
    return _c.reduce(_c.soft_ce(logp, torch.softmax(log_target, -1)), w, reduction, "product")


def kl(logits, labels, *, sample_weight=None, step_frac=None, reduction="mean"):
    """KL divergence from the weak labels to the student's predictions, ``KL(t || p)``.

    EleutherAI ``w2s/loss.py`` ``kl_divergence_loss`` (``F.kl_div(log_softmax(logits), t,
    reduction="batchmean")``). Per example ``sum_k t_k (log t_k - log p_k)`` with
    ``0 log 0 = 0``: :func:`xent` minus the labels' entropy, so it has xent's gradient and is 0
    where the student matches the labels. With hard labels it equals xent.

    Parameters
    ----------
    logits : Tensor of shape (n, K)
    labels : Tensor or array-like of shape (n,) (int) or (n, K) (probabilities)
    sample_weight, step_frac, reduction
        See the module docstring; ``step_frac`` is ignored.

    Returns
    -------
    Tensor
        Scalar, or ``(n,)`` for ``reduction="none"``; differentiable in ``logits``.

    Raises
    ------
    ValueError
        On bad input.
    """
    z, t, w, _ = _prepare("kl", logits, labels, sample_weight, step_frac, reduction)
    per = torch.xlogy(t, t).sum(-1) + _c.soft_ce(torch.log_softmax(z, -1), t)
    return _c.reduce(per, w, reduction, "kl")


def window(logits, labels, *, sample_weight=None, step_frac=None, reduction="mean",
           radius=0.15):
    """Confidence-window loss: cross-entropy on the examples where the student is uncertain.

    EleutherAI ``w2s/loss.py`` ``confidence_window_loss``. An example counts when the student's
    largest class probability is below ``0.5 + radius``: the window is on the student's
    predictions, not on the weak labels. The others contribute 0 but stay in the denominator
    (EleutherAI sums over the kept rows and divides by the batch size). EleutherAI's
    ``radius="midweak"`` is the median distance of the weak labels from 0.5 over the training
    set (``w2s/sft.py``): compute it once with :func:`midweak_radius`. A radius above 0.5 keeps
    every example (EleutherAI trains its weak models with 0.51, i.e. plain xent).

    Parameters
    ----------
    logits : Tensor of shape (n, 2)
    labels : Tensor or array-like of shape (n,) (int) or (n, 2) (probabilities)
    sample_weight, step_frac, reduction
        See the module docstring; ``step_frac`` is ignored.
    radius : float >= 0, default=0.15

    Returns
    -------
    Tensor
        Scalar, or ``(n,)`` for ``reduction="none"``; differentiable in ``logits``.

    Raises
    ------
    ValueError
        If ``K != 2``, ``radius="midweak"``, or on bad input.
    """
    params = {"radius": radius}
    z, t, w, _ = _prepare("window", logits, labels, sample_weight, step_frac, reduction, params)
    _binary_only("window", z, "the window is centred on probability 0.5")
    logp = torch.log_softmax(z, -1)
    keep = logp.detach().exp().max(-1).values < 0.5 + radius
    return _c.reduce(_c.soft_ce(logp, t) * keep, w, reduction, "window")


def midweak_radius(labels, sample_weight=None):
    """EleutherAI's ``"midweak"`` window radius: the median of ``|P(class 1) - 0.5|`` over the
    training set's soft weak labels.

    As ``w2s/sft.py`` computes it with ``torch.median``, which takes the lower of the two middle
    values for an even count. Rows with zero ``sample_weight`` are left out.

    Parameters
    ----------
    labels : Tensor or array-like of shape (n, 2)
        Soft weak labels of the whole training set.
    sample_weight : array-like of shape (n,), default=None

    Returns
    -------
    float in [0, 0.5]

    Raises
    ------
    ValueError
        If ``labels`` are not binary soft labels, or no row has a positive weight.
    """
    t = torch.as_tensor(labels)
    if _c.label_kind(t, "midweak_radius") != "soft":
        raise ValueError("midweak_radius needs soft labels of shape (n, 2); hard labels are all "
                         "at distance 0.5 from 0.5.")
    t = t.to(torch.float64)
    if t.shape[0] == 0 or t.shape[1] != 2:
        raise ValueError(f"midweak_radius: labels must have shape (n, 2) with n >= 1; "
                         f"got {tuple(t.shape)}.")
    _c.check_soft(t, "midweak_radius", "classes")
    w = _c.sample_weight(sample_weight, t, "midweak_radius")
    conf = (t[:, 1] - 0.5).abs()
    if w is not None:
        if not (w > 0).any():
            raise ValueError("midweak_radius: every sample_weight is 0.")
        conf = conf[w > 0]
    return float(conf.median())


def entropy(logits, labels, *, sample_weight=None, step_frac=None, reduction="mean",
            aux_coef=0.5, warmup_frac=0.1, detach=False):
    """Entropy-regularised cross-entropy: the soft (unhardened) version of :func:`logconf`.

    EleutherAI ``w2s/loss.py`` ``log_confidence_loss(harden=False)``, the ``"entropy"`` loss of
    ``w2s/sft.py``. Per example, with ``a = aux_coef * logconf_warmup(step_frac, warmup_frac)``,
    ``(1 - a) CE(z, t) + a H(softmax(z))``: it pushes the student towards confident
    predictions. Any number of classes.

    EleutherAI writes the second term as ``CE(z, softmax(z).detach())``: its value is the
    entropy but its gradient is 0, so their loss trains as ``(1 - a) * xent``. Here the
    entropy's gradient flows; ``detach=True`` reproduces EleutherAI (same value, no entropy
    gradient).

    Parameters
    ----------
    logits : Tensor of shape (n, K)
    labels : Tensor or array-like of shape (n,) (int) or (n, K) (probabilities)
    sample_weight, step_frac, reduction
        See the module docstring; ``step_frac`` is required.
    aux_coef : float in [0, 1], default=0.5
    warmup_frac : float in [0, 1], default=0.1
    detach : bool, default=False

    Returns
    -------
    Tensor
        Scalar, or ``(n,)`` for ``reduction="none"``; differentiable in ``logits``.

    Raises
    ------
    ValueError
        If ``step_frac`` is missing, or on bad input.
    """
    params = {"aux_coef": aux_coef, "warmup_frac": warmup_frac, "detach": detach}
    z, t, w, s = _prepare("entropy", logits, labels, sample_weight, step_frac, reduction, params)
    coef = aux_coef * logconf_warmup(s, warmup_frac)
    logp = torch.log_softmax(z, -1)
    h = _c.soft_ce(logp, logp.detach().exp() if detach else logp.exp())
    return _c.reduce((1 - coef) * _c.soft_ce(logp, t) + coef * h, w, reduction, "entropy")


# ---------------------------------------------------------------------------------------------
# multiple-choice losses


def choice_log_proba(loglik, *, lengths=None):
    """Turn per-choice log-likelihoods of a causal LM into log-probabilities over the choices.

    ``log_softmax(loglik / lengths)`` over each question's options. ``-inf`` marks an absent
    choice (a question with fewer options in a padded batch), which keeps probability 0.

    Parameters
    ----------
    loglik : Tensor of shape (n, n_choices)
        Log-likelihood of each choice's completion (``-choice_nll``), summed over its tokens.
    lengths : Tensor or array-like of shape (n, n_choices), default=None
        Token counts of the choices, for length-normalised scores; ``None`` uses the sums.

    Returns
    -------
    Tensor of shape (n, n_choices)
        Log-probabilities (each row's ``exp`` sums to 1), differentiable in ``loglik``.

    Raises
    ------
    ValueError
        If ``loglik`` has NaN or +inf or a row without a choice, or ``lengths`` do not have its
        shape or are not positive.
    """
    z = _c.as_scores(loglik, "choice_log_proba", what="loglik", absent_ok=True)
    if lengths is not None:
        n_tokens = torch.as_tensor(lengths, device=z.device).to(z.dtype)
        if n_tokens.shape != z.shape:
            raise ValueError(f"choice_log_proba: lengths have shape {tuple(n_tokens.shape)}; "
                             f"expected the shape of loglik, {tuple(z.shape)}.")
        bad = ~torch.isfinite(n_tokens) | (n_tokens <= 0)
        if bad.any():
            raise ValueError(f"choice_log_proba: lengths must be positive token counts; see "
                             f"row {_c.first_row(bad)}.")
        z = z / n_tokens
    return torch.log_softmax(z, -1)


def choice_xent(loglik, labels, *, sample_weight=None, step_frac=None, reduction="mean"):
    """Cross-entropy over the options of multiple-choice questions.

    ``-sum_c t_c log q_c`` with ``log q = choice_log_proba(loglik)`` and ``t`` the weak label:
    the index of the chosen option (hard, e.g. the ensemble's lowest-NLL choice) or a
    distribution over the options (soft, e.g. the mixture's choice probabilities). It trains
    each option's likelihood against the others, unlike SFT on the chosen option's text.
    :func:`xent` of the same scores, with absent choices allowed.

    Parameters
    ----------
    loglik : Tensor of shape (n, n_choices)
        Per-choice log-likelihoods (``loglik / lengths`` for length-normalised scores);
        ``-inf`` marks an absent choice.
    labels : Tensor or array-like of shape (n,) (int) or (n, n_choices) (probabilities)
        Must not point to, or put probability on, an absent choice.
    sample_weight, step_frac, reduction
        See the module docstring; ``step_frac`` is ignored.

    Returns
    -------
    Tensor
        Scalar, or ``(n,)`` for ``reduction="none"``; differentiable in ``loglik``.

    Raises
    ------
    ValueError
        On bad input; the message names the argument and the offending row.
    """
    z, t, w, _ = _prepare("choice_xent", loglik, labels, sample_weight, step_frac, reduction,
                          choices=True)
    return _c.reduce(_c.soft_ce(torch.log_softmax(z, -1), t), w, reduction, "choice_xent")


def choice_logconf(loglik, labels, *, sample_weight=None, step_frac=None, reduction="mean",
                   aux_coef=0.5, warmup_frac=0.1):
    """Auxiliary-confidence loss over the options: the weak labels mixed with the student's
    own hardened choice.

    The multiple-choice form of :func:`logconf`: ``(1 - a) CE(q, t) + a CE(q, h)`` with
    ``log q = choice_log_proba(loglik)``, ``a = aux_coef * logconf_warmup(step_frac,
    warmup_frac)`` and ``h`` the one-hot argmax of ``q`` (detached; ties go to the first
    option). The binary threshold has no analogue: options come in arbitrary order, so there is
    no fraction of positives to match, and the student's choice is hardened by argmax.

    Parameters
    ----------
    loglik : Tensor of shape (n, n_choices)
        Per-choice log-likelihoods (``loglik / lengths`` for length-normalised scores);
        ``-inf`` marks an absent choice.
    labels : Tensor or array-like of shape (n,) (int) or (n, n_choices) (probabilities)
    sample_weight, step_frac, reduction
        See the module docstring; ``step_frac`` is required.
    aux_coef : float in [0, 1], default=0.5
    warmup_frac : float in [0, 1], default=0.1

    Returns
    -------
    Tensor
        Scalar, or ``(n,)`` for ``reduction="none"``; differentiable in ``loglik``.

    Raises
    ------
    ValueError
        If ``step_frac`` is missing, or on bad input.
    """
    params = {"aux_coef": aux_coef, "warmup_frac": warmup_frac}
    z, t, w, s = _prepare("choice_logconf", loglik, labels, sample_weight, step_frac, reduction,
                          params, choices=True)
    coef = aux_coef * logconf_warmup(s, warmup_frac)
    logq = torch.log_softmax(z, -1)
    hard = torch.nn.functional.one_hot(logq.detach().argmax(-1), z.shape[1]).to(z.dtype)
    per = _c.soft_ce(logq, (1 - coef) * t + coef * hard)
    return _c.reduce(per, w, reduction, "choice_logconf")


# ---------------------------------------------------------------------------------------------
# registry


class Loss:
    """A named student loss with its hyperparameters bound, callable in a training loop.

    Parameters
    ----------
    name : str
    fn : callable
        ``fn(logits, labels, *, sample_weight, step_frac, reduction, **params)``; a module-level
        function, so that the loss pickles.
    applies_to : {"classifier", "choice"}, default="classifier"
        Takes a classifier's logits, or a multiple-choice generator's per-choice
        log-likelihoods.
    accepts_hard_labels, accepts_soft_labels : bool, default=True
        Which labels it takes; a call with the other kind raises.
    needs_step_frac : bool, default=False
    params : dict, default=None
        Hyperparameters passed to ``fn`` as keywords.

    Attributes
    ----------
    needs_hard_labels : bool
        ``not accepts_soft_labels``.
    needs_soft_labels : bool
        ``not accepts_hard_labels``.

    See Also
    --------
    get_loss : a registered loss by name, with hyperparameters.
    """

    def __init__(self, name, fn, *, applies_to="classifier", accepts_hard_labels=True,
                 accepts_soft_labels=True, needs_step_frac=False, params=None):
        self.name = name
        self.fn = fn
        self.applies_to = applies_to
        self.accepts_hard_labels = accepts_hard_labels
        self.accepts_soft_labels = accepts_soft_labels
        self.needs_step_frac = needs_step_frac
        self.params = dict(params or {})

    @property
    def needs_hard_labels(self):
        return not self.accepts_soft_labels

    @property
    def needs_soft_labels(self):
        return not self.accepts_hard_labels

    def param_names(self):
        """Return the sorted names of the hyperparameters ``fn`` takes."""
        sig = inspect.signature(self.fn).parameters
        return sorted(k for k, p in sig.items()
                      if p.kind is p.KEYWORD_ONLY and k not in _CALL_ARGS)

    def with_params(self, **params):
        """Return a copy with ``params`` bound (added to, or replacing, the bound ones).

        Parameters
        ----------
        **params
            Hyperparameters of ``fn``.

        Returns
        -------
        Loss

        Raises
        ------
        ValueError
            If a name is not a hyperparameter of this loss (the message lists those), or a
            value is out of range.
        """
        known = self.param_names()
        for key, value in params.items():
            if key not in known:
                raise ValueError(f"{key!r} is not a parameter of the {self.name!r} loss; it "
                                 f"accepts {known if known else 'none'}.")
            _c.check_param(self.name, key, value)
        return Loss(self.name, self.fn, applies_to=self.applies_to,
                    accepts_hard_labels=self.accepts_hard_labels,
                    accepts_soft_labels=self.accepts_soft_labels,
                    needs_step_frac=self.needs_step_frac, params={**self.params, **params})

    def __call__(self, logits, labels, *, sample_weight=None, step_frac=None, reduction="mean"):
        """Return the loss (see the module docstring for the arguments)."""
        check_labels(self, labels)
        _c.step_frac(step_frac, self.name, required=self.needs_step_frac)
        return self.fn(logits, labels, sample_weight=sample_weight, step_frac=step_frac,
                       reduction=reduction, **self.params)

    def __repr__(self):
        args = "".join(f", {k}={v!r}" for k, v in sorted(self.params.items()))
        return f"Loss({self.name!r}{args})"


_FUNCTIONS = {
    "xent": xent, "logconf": logconf, "product": product, "kl": kl, "window": window,
    "entropy": entropy, "choice_xent": choice_xent, "choice_logconf": choice_logconf,
}
LOSSES = {
    name: Loss(name, _FUNCTIONS[name], applies_to=est, accepts_hard_labels=hard,
               accepts_soft_labels=soft, needs_step_frac=step)
    for name, (hard, soft, step, est) in _SPECS.items()
}


def get_loss(name, **params):
    """Return the registered loss ``name``, with ``params`` bound.

    Parameters
    ----------
    name : str
        A key of :data:`LOSSES`.
    **params
        Hyperparameters of that loss, e.g. ``aux_coef=0.75`` for ``"logconf"``.

    Returns
    -------
    Loss
        Callable as ``loss(logits, labels, *, sample_weight=None, step_frac=None,
        reduction="mean")``.

    Raises
    ------
    ValueError
        If ``name`` is not a known loss (the message lists the known ones), or a parameter is
        unknown or out of range.

    Examples
    --------
    >>> import torch
    >>> loss = get_loss("logconf", aux_coef=0.75)
    >>> logits = torch.tensor([[2.0, -1.0], [0.5, 0.5]], requires_grad=True)
    >>> loss(logits, torch.tensor([[0.9, 0.1], [0.3, 0.7]]), step_frac=0.5).backward()
    """
    if not isinstance(name, str) or name not in LOSSES:
        raise ValueError(f"Unknown loss {name!r}. Known losses: {', '.join(sorted(LOSSES))}.")
    return LOSSES[name].with_params(**params) if params else LOSSES[name]
