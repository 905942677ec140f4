"""The classifier losses (a head's logits ``(n, K)``): xent, logconf, product, kl, window,
entropy. See :mod:`skw2s.losses` for the common signature and where each comes from."""

from __future__ import annotations

import torch

from . import _checks as _c

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
    z, t, w, _ = _c.prepare("xent", logits, labels, sample_weight, step_frac, reduction)
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
    z, t, w, s = _c.prepare("logconf", logits, labels, sample_weight, step_frac, reduction, params)
    _c.binary_only("logconf", z, "the threshold matches the weak labels' fraction of positives")
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
    z, t, w, _ = _c.prepare("product", logits, labels, sample_weight, step_frac, reduction, params)
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
    z, t, w, _ = _c.prepare("kl", logits, labels, sample_weight, step_frac, reduction)
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
    z, t, w, _ = _c.prepare("window", logits, labels, sample_weight, step_frac, reduction, params)
    _c.binary_only("window", z, "the window is centred on probability 0.5")
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
    z, t, w, s = _c.prepare("entropy", logits, labels, sample_weight, step_frac, reduction, params)
    coef = aux_coef * logconf_warmup(s, warmup_frac)
    logp = torch.log_softmax(z, -1)
    h = _c.soft_ce(logp, logp.detach().exp() if detach else logp.exp())
    return _c.reduce((1 - coef) * _c.soft_ce(logp, t) + coef * h, w, reduction, "entropy")
