"""The Hugging Face Hub copies of SciQ, QuaRTz and ARC, normalised to the shared schema of
:mod:`skw2s.datasets` (which loads them when no offline data directory is set)."""

import hashlib
import logging
import os

from .tables import check_record, frame

logger = logging.getLogger(__name__)

OFFLINE_ROUTES = (
    "Give the offline copy instead: --data-dir PATH (or the SKW2S_DATA_DIR environment "
    "variable), a folder that 'skw2s download-data PATH' writes on a machine with network."
)


class HubUnavailableError(FileNotFoundError):
    """A built-in dataset could be read neither from an offline folder nor from the Hub."""


def _offline_variable():
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(name, "").strip().upper() in ("1", "ON", "YES", "TRUE"):
            return name
    return None


def _unreachable(timeout=5.0):
    """Why the Hub cannot be reached (one request, no retries), or None when it can."""
    import urllib.error
    import urllib.request

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    try:
        urllib.request.urlopen(endpoint, timeout=timeout).close()
    except urllib.error.HTTPError:
        return None  # it answered
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"{endpoint} could not be reached ({reason})"
    return None


def hub_load(path, name, split):
    """One split of a Hub dataset (``name``: its configuration, or None).

    Fails at once, with one line naming the offline routes, when ``HF_HUB_OFFLINE`` (or
    ``HF_DATASETS_OFFLINE``) is set and neither the local Hugging Face cache nor a local folder
    named ``path`` holds the dataset, or when the Hub cannot be reached; ``datasets`` would
    otherwise retry for about 20 s and end in a bare ``ConnectionError``.
    """
    import datasets  # imported lazily: only the hub path needs it

    what = path if name is None else f"{path} ({name})"
    local = os.path.isdir(path)  # datasets reads a folder of that name first
    offline = _offline_variable()
    if not local and not offline:
        reason = _unreachable()
        if reason is not None:
            raise HubUnavailableError(
                f"No offline data directory is set, and {what} cannot be read from the Hugging "
                f"Face Hub: {reason}. {OFFLINE_ROUTES}"
            )
    logger.info("Reading %s [%s] with datasets.load_dataset%s", what, split,
                " (offline: the local cache only)" if offline and not local else "")
    args = (path,) if name is None else (path, name)
    try:
        return datasets.load_dataset(*args, split=split)
    except Exception as exc:  # noqa: BLE001 - offline, any failure means: not in the cache
        if not offline or local:
            raise
        raise HubUnavailableError(
            f"No offline data directory is set, and {what} is not in the local Hugging Face "
            f"cache ({offline} is set, so the Hub is not asked). {OFFLINE_ROUTES}"
        ) from exc


def _sciq_answer_position(row_id, n_choices):
    # Same placement as the offline copy in shared/data (see its SOURCE.md), so
    # both routes give identical frames: a per-row seed from sha256 of the id.
    return int(hashlib.sha256(row_id.encode("utf-8")).hexdigest(), 16) % n_choices


def normalise_sciq(rows, split):
    """Shared-schema records of Hub SciQ rows: ids by position, the answer placed by id."""
    records = []
    for i, row in enumerate(rows):
        row_id = f"sciq-{split}-{i:05d}"
        distractors = [row["distractor1"], row["distractor2"], row["distractor3"]]
        k = _sciq_answer_position(row_id, len(distractors) + 1)
        choices = distractors[:k] + [row["correct_answer"]] + distractors[k:]
        records.append(
            {
                "id": row_id,
                "question": row["question"],
                "choices": choices,
                "answer": k,
                "support": row.get("support") or "",
            }
        )
    return records


def _label_index(labels, key, row_id):
    labels = [str(label).strip() for label in labels]
    key = str(key).strip()
    if key not in labels:
        raise ValueError(f"Row {row_id!r}: answerKey {key!r} is not one of the labels {labels}.")
    return labels.index(key)


def normalise_labelled(rows, support_field):
    """Normalise rows with ``choices: {text, label}`` and ``answerKey`` (QuaRTz, ARC)."""
    records = []
    for row in rows:
        question = row["question"]
        if isinstance(question, dict):  # raw AI2 files nest the stem
            question = question["stem"]
        choices = row["choices"]
        records.append(
            {
                "id": str(row["id"]),
                "question": question,
                "choices": list(choices["text"]),
                "answer": _label_index(choices["label"], row["answerKey"], row["id"]),
                "support": (row.get(support_field) or "") if support_field else "",
            }
        )
    return records


def hub_frame(records, source):
    """The shared-schema frame of normalised records, each validated."""
    for i, record in enumerate(records, start=1):
        check_record(record, f"{source}, row {i}")
    return frame(records)
