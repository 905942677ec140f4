"""Inference spread over the processes of ``torchrun`` or ``accelerate launch``.

Training under several processes is data-parallel already (the Hugging Face Trainer). Every
inference loop of skw2s (choice scoring, teacher-forced token predictions, mixture decoding,
classifier logits and frozen features) runs through :func:`map_batches` instead of a plain
loop. In one process it is that loop. Under several processes (``WORLD_SIZE > 1``) the list
of batches is planned as in one process, each rank runs a contiguous share of the batches
(accelerate's ``PartialState().split_between_processes``) and the outputs are gathered in batch
order on every rank (``accelerate.utils.gather_object``). Since every batch holds the same rows
as in one process, the results are those of one process, bit for bit on the same hardware.

accelerate is imported only when ``WORLD_SIZE > 1``.
"""

from __future__ import annotations

import os
import threading

from tqdm.auto import tqdm

__all__ = ["inference_counts", "local_device_index", "map_batches", "process_state",
           "reset_inference_counts"]

_COUNTS = {"batches": 0, "rows": 0, "calls": 0}
_COUNT_LOCK = threading.Lock()


def world_size():
    """The number of processes of this job (``WORLD_SIZE``; 1 outside a launcher)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def local_device_index():
    """This process's GPU under a launcher (``LOCAL_RANK``), or None outside one."""
    if world_size() <= 1 or "LOCAL_RANK" not in os.environ:
        return None
    try:
        return int(os.environ["LOCAL_RANK"])
    except ValueError:
        return None


def process_state():
    """accelerate's ``PartialState`` when this process is one of several, else None."""
    if world_size() <= 1:
        return None
    import torch
    from accelerate import PartialState

    # without a GPU accelerate joins the processes only when told they run on CPUs (gloo)
    state = PartialState(cpu=not torch.cuda.is_available())
    return state if state.num_processes > 1 else None


def map_batches(fn, batches, *, rows=len, desc="batches", verbose=0):
    """``[fn(b) for b in batches]``, each rank running its share under several processes.

    Parameters
    ----------
    fn : callable
        Runs one batch and returns a picklable result (numpy arrays, lists: no tensors on a
        device, since results travel between processes).
    batches : list
        The batches, planned identically on every rank.
    rows : callable, default=len
        The number of rows of a batch, for :func:`inference_counts`.
    desc : str, default="batches"
        The progress bar's name.
    verbose : int, default=0
        Show a progress bar over this rank's batches when positive.

    Returns
    -------
    list
        ``fn(b)`` of every batch, in order, on every rank.
    """
    state = process_state()
    if state is None:
        mine = list(range(len(batches)))
    else:
        with state.split_between_processes(list(range(len(batches)))) as share:
            mine = list(share)
    local = []
    for i in tqdm(mine, desc=desc, disable=not verbose, leave=False):
        local.append((i, fn(batches[i])))
    with _COUNT_LOCK:
        _COUNTS["batches"] += len(mine)
        _COUNTS["rows"] += sum(rows(batches[i]) for i in mine)
        _COUNTS["calls"] += 1
    if state is None:
        return [value for _, value in local]
    from accelerate.utils import gather_object

    out = [None] * len(batches)
    for i, value in gather_object(local):
        out[i] = value
    return out


def inference_counts():
    """How many inference batches and rows this process ran itself, and in how many calls."""
    with _COUNT_LOCK:
        return dict(_COUNTS)


def reset_inference_counts():
    """Set :func:`inference_counts` back to zero."""
    with _COUNT_LOCK:
        _COUNTS.update(batches=0, rows=0, calls=0)
