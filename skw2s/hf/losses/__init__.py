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


from . import _checks as _c
from ._checks import CALL_ARGS as _CALL_ARGS
from ._checks import SPECS as _SPECS
from ._choice import choice_log_proba, choice_logconf, choice_xent
from ._classifier import entropy, kl, logconf, logconf_warmup, midweak_radius, product, window, xent

__all__ = [
    "LOSSES", "Loss", "check_labels", "choice_log_proba", "choice_logconf", "choice_xent",
    "entropy", "get_loss", "kl", "logconf", "logconf_warmup", "midweak_radius", "product",
    "window", "xent",
]


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
    return _c.check_kind(loss.name, labels, accepts_hard=loss.accepts_hard_labels,
                         accepts_soft=loss.accepts_soft_labels)


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
