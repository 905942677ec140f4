"""The Hugging Face Hub copies of SciQ, QuaRTz and ARC, normalised to the shared schema of
:mod:`skw2s.datasets` (which loads them when no offline data directory is set)."""

import hashlib

from .tables import check_record, frame


def hub_load(path, name, split):
    """One split of a Hub dataset (``name``: its configuration, or None)."""
    import datasets  # imported lazily: only the hub path needs it

    if name is None:
        return datasets.load_dataset(path, split=split)
    return datasets.load_dataset(path, name, split=split)


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
