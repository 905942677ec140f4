"""The multiple-choice losses (per-choice log-likelihoods ``(n, n_choices)`` of a causal LM):
choice_log_proba, choice_xent, choice_logconf. See :mod:`skw2s.losses`."""

from __future__ import annotations

import torch

from . import _checks as _c
from ._classifier import logconf_warmup

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
    z, t, w, _ = _c.prepare("choice_xent", loglik, labels, sample_weight, step_frac, reduction,
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
    z, t, w, s = _c.prepare("choice_logconf", loglik, labels, sample_weight, step_frac, reduction,
                          params, choices=True)
    coef = aux_coef * logconf_warmup(s, warmup_frac)
    logq = torch.log_softmax(z, -1)
    hard = torch.nn.functional.one_hot(logq.detach().argmax(-1), z.shape[1]).to(z.dtype)
    per = _c.soft_ce(logq, (1 - coef) * t + coef * hard)
    return _c.reduce(per, w, reduction, "choice_logconf")
