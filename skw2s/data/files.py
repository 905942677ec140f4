"""Reading the text files users give (configs, JSONL and CSV data) with errors that name the
file and the line: a byte that is not UTF-8, an empty file."""

from __future__ import annotations

from pathlib import Path

__all__ = ["read_jsonl", "read_text"]


def read_text(path, *, what="file") -> str:
    """The text of a UTF-8 file (a leading byte-order mark is dropped).

    Parameters
    ----------
    path : str or path-like
        The file.
    what : str, default="file"
        What the file is, for the error messages ("config file", "data file").

    Returns
    -------
    text : str
        The decoded text, with ``\\r\\n`` line ends as in the file.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist or is not a file.
    ValueError
        When a byte is not UTF-8 (the message names the line, the column and the byte), or when
        the file is empty or holds only white space.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"The {what} {str(path)!r} does not exist.")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ValueError(
            f"{path}, line {line}: byte 0x{data[exc.start]:02x} at column {column} is not UTF-8. "
            f"Save the {what} as UTF-8."
        ) from None
    if not text.strip():
        raise ValueError(f"The {what} {str(path)!r} is empty.")
    return text


def read_jsonl(path, *, what="data file"):
    """The JSON objects of a JSON Lines file, each with the place it came from.

    Parameters
    ----------
    path : str or path-like
        The file.
    what : str, default="data file"
        What the file is, for the error messages.

    Returns
    -------
    rows : list of (str, dict)
        ``("PATH, line N", object)`` per non-blank line.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        When the file is empty or not UTF-8 (see :func:`read_text`), or a line is not JSON or
        not a JSON object; the message names the file and line.
    """
    import json

    rows = []
    for lineno, line in enumerate(read_text(path, what=what).split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{path}, line {lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: invalid JSON ({exc.msg}).") from exc
        if not isinstance(row, dict):
            raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}.")
        rows.append((where, row))
    return rows
