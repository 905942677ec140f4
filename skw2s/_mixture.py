"""Mixture of weak experts' next-token distributions (ALGORITHMS.md, eq. 1).

Pure torch functions on stacked logits; no model in here.
"""

import torch


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


def mix_log_probs(logits, alphas, combine="prob"):
    """Return the log-probabilities of the alpha-weighted mixture of experts.

    Parameters
    ----------
    logits : Tensor of shape (T, ..., V)
        Stacked logits of the ``T`` experts over a shared vocabulary.
    alphas : array-like or Tensor of shape (T,)
        Positive expert weights (normalised here).
    combine : {"prob", "logit"}, default="prob"
        ``"prob"``: ``log(sum_t a_t softmax(logits_t))``, computed as
        ``logsumexp_t(log a_t + log_softmax(logits_t))``.
        ``"logit"``: ``log_softmax(sum_t a_t logits_t)``.

    Returns
    -------
    Tensor of shape (..., V)
        Log-probabilities in float32 (float64 input stays float64).
    """
    if combine not in ("prob", "logit"):
        raise ValueError(f'combine must be "prob" or "logit", got {combine!r}.')
    logits = torch.as_tensor(logits)
    dtype = torch.promote_types(logits.dtype, torch.float32)
    logits = logits.to(dtype)
    a = normalize_alphas(alphas)
    if logits.ndim < 2 or logits.shape[0] != a.shape[0]:
        raise ValueError(
            f"logits must have shape (T, ..., V) with T = {a.shape[0]}, "
            f"got {tuple(logits.shape)}."
        )
    a = a.to(device=logits.device, dtype=dtype).reshape((-1,) + (1,) * (logits.ndim - 1))
    if combine == "logit":
        return torch.log_softmax((a * logits).sum(0), dim=-1)
    return torch.logsumexp(torch.log(a) + torch.log_softmax(logits, dim=-1), dim=0)
