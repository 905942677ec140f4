"""Mixture of weak experts' next-token distributions (ALGORITHMS.md, eq. 1).

Pure torch functions on stacked logits; no model in here. Every formula the scoring and
decoding code uses lives here:

- :func:`check_combine`: the one check of the ``combine`` argument (:data:`COMBINE_METHODS`);
- :func:`mix_log_probs`: log-probabilities of the mixture over the whole vocabulary;
- :func:`mix_token_log_probs`: the ``"prob"`` mixture's log-probability of one token, from each
  expert's log-probability of it (no vocabulary axis);
- :func:`staged_mixtures`: the mixture of the first ``s`` experts for several ``s``;
- :func:`greedy_tokens` / :func:`sample_tokens`: the next token chosen from the mixture.
"""

import numbers

import torch

COMBINE_METHODS = ("prob", "logit", "confidence")
"""The ways experts can be mixed: their probabilities (eq. 1), their logits (an ablation), or
their probabilities with per-step weights from each expert's own confidence
(:func:`confidence_step_weights`)."""


def check_combine(combine):
    """Return ``combine`` when it names a way to mix experts, else raise.

    Parameters
    ----------
    combine : str
        One of :data:`COMBINE_METHODS`.

    Returns
    -------
    str
        ``combine`` unchanged.

    Raises
    ------
    ValueError
        If ``combine`` is not one of :data:`COMBINE_METHODS`.
    """
    if not isinstance(combine, str) or combine not in COMBINE_METHODS:
        names = [f'"{c}"' for c in COMBINE_METHODS]
        allowed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
        raise ValueError(f"combine must be {allowed}, got {combine!r}.")
    return combine


def normalize_alphas(alphas):
    """Return expert weights scaled to sum to 1.

    Parameters
    ----------
    alphas : array-like or Tensor of shape (T,)
        Positive, finite expert weights.

    Returns
    -------
    Tensor of shape (T,), float64
        ``alphas / alphas.sum()``.

    Raises
    ------
    ValueError
        If ``alphas`` is not a non-empty 1-D array of finite positive values.
    """
    a = torch.as_tensor(alphas).detach().to(device="cpu", dtype=torch.float64)
    if a.ndim != 1 or a.numel() == 0:
        raise ValueError(f"alphas must be a non-empty 1-D array, got shape {tuple(a.shape)}.")
    if not torch.all(torch.isfinite(a)) or torch.any(a <= 0):
        raise ValueError("alphas must be finite and > 0.")
    return a / a.sum()


def _expert_weights(scores, alphas, dtype, *, name, shape, min_ndim):
    """Normalised ``alphas`` shaped to broadcast over ``scores`` (one row per expert)."""
    a = normalize_alphas(alphas)
    if scores.ndim < min_ndim or scores.shape[0] != a.shape[0]:
        raise ValueError(
            f"{name} must have shape {shape} with T = {a.shape[0]}, got {tuple(scores.shape)}."
        )
    return a.to(device=scores.device, dtype=dtype).reshape((-1,) + (1,) * (scores.ndim - 1))


def confidence_step_weights(log_probs, weights):
    """Per-step expert weights ``a_t c_t / sum_s a_s c_s`` of ``combine="confidence"``.

    ``c_t`` is expert ``t``'s confidence at that step: the probability of its own most likely
    next token, ``max_v p_t(v)``. The step's weights follow the idea of Dynamic Logits Fusion
    (Fan et al., NeurIPS 2024), which re-weights the experts at every decoding step; DLF finds
    a step's weights by a small optimisation against a larger model, here they are each
    expert's confidence times its global weight, with nothing fitted.

    Parameters
    ----------
    log_probs : Tensor of shape (T, ..., V)
        The experts' log-probabilities (``log_softmax`` of their logits).
    weights : Tensor of shape (T, 1, ..., 1)
        Global weights that sum to 1, shaped to broadcast over ``log_probs``.

    Returns
    -------
    Tensor of shape (T, ..., 1)
        Non-negative weights that sum to 1 over the experts at every step.
    """
    raw = weights * log_probs.max(dim=-1, keepdim=True).values.exp()
    return raw / raw.sum(0, keepdim=True)


def mix_log_probs(logits, alphas, combine="prob"):
    """Return the log-probabilities of the alpha-weighted mixture of experts.

    Parameters
    ----------
    logits : Tensor of shape (T, ..., V)
        Stacked logits of the ``T`` experts over a shared vocabulary.
    alphas : array-like or Tensor of shape (T,)
        Positive expert weights (normalised here).
    combine : {"prob", "logit", "confidence"}, default="prob"
        ``"prob"``: ``log(sum_t a_t softmax(logits_t))``, computed as
        ``logsumexp_t(log a_t + log_softmax(logits_t))``.
        ``"logit"``: ``log_softmax(sum_t a_t logits_t)``.
        ``"confidence"``: ``"prob"`` with every step's own weights
        :func:`confidence_step_weights` in place of ``a_t``.

    Returns
    -------
    Tensor of shape (..., V)
        Log-probabilities in float32 (float64 input stays float64).

    Raises
    ------
    ValueError
        If ``combine`` is unknown, ``alphas`` are not positive, or ``logits`` do not hold one
        row per weight.
    """
    check_combine(combine)
    logits = torch.as_tensor(logits)
    dtype = torch.promote_types(logits.dtype, torch.float32)
    logits = logits.to(dtype)
    a = _expert_weights(logits, alphas, dtype, name="logits", shape="(T, ..., V)",
                        min_ndim=2)
    if combine == "logit":
        return torch.log_softmax((a * logits).sum(0), dim=-1)
    log_probs = torch.log_softmax(logits, dim=-1)
    if combine == "confidence":
        a = confidence_step_weights(log_probs, a)
    return torch.logsumexp(torch.log(a) + log_probs, dim=0)


def mix_token_log_probs(log_probs, alphas):
    """Return ``log(sum_t a_t p_t(y))`` from each expert's log-probability of the token ``y``.

    The ``combine="prob"`` mixture of :func:`mix_log_probs` evaluated at one token per row,
    without the vocabulary axis: enough for the likelihood of a given answer.

    Parameters
    ----------
    log_probs : Tensor of shape (T, ...)
        ``log p_t(y)`` of the ``T`` experts.
    alphas : array-like or Tensor of shape (T,)
        Positive expert weights (normalised here).

    Returns
    -------
    Tensor of shape (...), float64

    Raises
    ------
    ValueError
        If ``alphas`` are not positive or ``log_probs`` do not hold one row per weight.
    """
    log_probs = torch.as_tensor(log_probs).double()
    a = _expert_weights(log_probs, alphas, torch.float64, name="log_probs", shape="(T, ...)",
                        min_ndim=1)
    return torch.logsumexp(torch.log(a) + log_probs, dim=0)


def staged_mixtures(scores, alphas, *, stages=None, combine="prob", token=False):
    """Return the mixture of the first ``s`` experts for every stage ``s``.

    The ensemble's ``staged_*`` methods answer with every prefix of the experts; the experts
    run once and each stage mixes its prefix of their scores.

    Parameters
    ----------
    scores : Tensor of shape (T, ..., V), or (T, ...) when ``token``
        Stacked logits of the ``T`` experts, or (``token=True``) each expert's log-probability
        of one token per row.
    alphas : array-like or Tensor of shape (T,)
        Positive expert weights; stage ``s`` normalises its first ``s``.
    stages : iterable of int, default=None
        Numbers of experts, each in ``[1, T]``; default ``1, ..., T``.
    combine : {"prob", "logit", "confidence"}, default="prob"
        As in :func:`mix_log_probs`. With ``token=True`` only ``"prob"`` is defined (the
        logit and confidence mixtures need every token's logit).
    token : bool, default=False
        Mix token log-probabilities with :func:`mix_token_log_probs` instead of logits with
        :func:`mix_log_probs`.

    Returns
    -------
    list of Tensor
        One per stage, what :func:`mix_log_probs` (or :func:`mix_token_log_probs`) returns for
        ``scores[:s]`` and ``alphas[:s]``; the last of the default stages is the mixture of all.

    Raises
    ------
    ValueError
        If a stage is not in ``[1, T]``, ``combine`` is unknown, or ``token=True`` is asked
        with ``combine="logit"``.
    """
    check_combine(combine)
    if token and combine != "prob":
        raise ValueError(
            f'combine={combine!r} needs the logits of the whole vocabulary; token=True mixes '
            'token log-probabilities and supports combine="prob" only.'
        )
    n_experts = len(alphas)
    stages = range(1, n_experts + 1) if stages is None else list(stages)
    for s in stages:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral) or not (
            1 <= s <= n_experts
        ):
            raise ValueError(f"Every stage must be an int in [1, {n_experts}]; got {s!r}.")
    if token:
        return [mix_token_log_probs(scores[:s], alphas[:s]) for s in stages]
    return [mix_log_probs(scores[:s], alphas[:s], combine) for s in stages]


def greedy_tokens(logits, weights, combine="prob"):
    """Return the argmax of the mixture without forming its log-probabilities.

    ``"prob"``: ``argmax sum_t w_t softmax(l_t)`` (one expert: ``argmax l``); ``"logit"``:
    ``argmax sum_t w_t l_t`` (``log_softmax`` does not move the argmax); ``"confidence"``:
    ``argmax sum_t w_t c_t softmax(l_t)`` with ``c_t = max_v softmax(l_t)(v)`` (the step's
    normaliser does not move the argmax).

    Parameters
    ----------
    logits : Tensor of shape (T, ..., V)
        Stacked logits of the ``T`` experts.
    weights : Tensor of shape (T,)
        Expert weights that already sum to 1, on the logits' device and in their dtype, e.g.
        ``normalize_alphas(alphas).to(logits)`` (formed once by a decoding loop, not per step).
    combine : {"prob", "logit", "confidence"}, default="prob"

    Returns
    -------
    Tensor of shape (...), int64
        The mixture's most likely token at every position.
    """
    check_combine(combine)
    if logits.shape[0] == 1:
        return logits[0].argmax(-1)
    if combine == "logit":
        return torch.tensordot(weights, logits, dims=1).argmax(-1)
    probs = torch.softmax(logits, dim=-1)
    if combine == "confidence":
        probs = probs * probs.max(dim=-1, keepdim=True).values
    return torch.tensordot(weights, probs, dims=1).argmax(-1)


def sample_tokens(logits, alphas, combine="prob", *, temperature=1.0, generator=None):
    """Return one token per row drawn from the mixture at ``temperature``.

    Parameters
    ----------
    logits : Tensor of shape (T, N, V)
        The ``T`` experts' next-token logits for ``N`` rows.
    alphas : array-like or Tensor of shape (T,)
        Positive expert weights (normalised here).
    combine : {"prob", "logit", "confidence"}, default="prob"
        As in :func:`mix_log_probs`.
    temperature : float, default=1.0
        Draws from ``softmax(log p / temperature)``; must be > 0.
    generator : torch.Generator or None, default=None
        A CPU generator that seeds the draw.

    Returns
    -------
    Tensor of shape (N,), int64, on the CPU
    """
    logp = mix_log_probs(logits, alphas, combine)
    probs = torch.softmax(logp.float() / temperature, dim=-1).cpu()
    return torch.multinomial(probs, 1, generator=generator)[:, 0]
