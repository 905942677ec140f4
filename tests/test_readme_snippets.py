"""The README's snippet outputs and costs are those of the committed raw records.

``benchmarks/readme_snippets.py`` runs each Python snippet of the README's "Using the library"
section and writes ``benchmarks/results/readme/snippet{N}.json``. These tests fail when a snippet
changes without being rerun, or when the README quotes an output or a cost that the record does
not hold.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ROOT / "benchmarks" / "results" / "readme"


def _script():
    spec = importlib.util.spec_from_file_location(
        "readme_snippets", ROOT / "benchmarks" / "readme_snippets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SNIPPETS = _script().snippets()


def test_the_readme_has_the_snippets_the_records_name():
    assert len(SNIPPETS) >= 2
    assert sorted(p.name for p in RECORDS.glob("snippet*.json")) == [
        f"snippet{i}.json" for i in range(1, len(SNIPPETS) + 1)]


@pytest.mark.parametrize("number", range(1, len(SNIPPETS) + 1))
def test_each_snippet_was_run_as_written_and_its_output_is_quoted(number):
    record = json.loads((RECORDS / f"snippet{number}.json").read_text())
    assert record["returncode"] == 0
    assert record["code"] == SNIPPETS[number - 1], (
        f"README snippet {number} changed since it was run: "
        f"python benchmarks/readme_snippets.py --only {number}")
    readme = (ROOT / "README.md").read_text()
    assert f"```\n{record['stdout'].rstrip()}\n```" in readme
    cpu = f"{record['cpu_seconds']:.0f} CPU seconds"
    wall = f"{record['wall_seconds']:.0f} s wall"
    after = readme.split(SNIPPETS[number - 1], 1)[1]
    quoted = after.split("```python", 1)[0]
    assert cpu in quoted and wall in quoted
    assert not re.search(r"took [0-9.]+ minutes", quoted)


def test_the_readme_cites_the_demo_output_it_commits():
    """Every number of the README's paragraph on the demo run is in the committed raw output
    (what the demo printed, and its /usr/bin/time lines)."""
    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text()
    begin, end = "<!-- demo-output:begin -->", "<!-- demo-output:end -->"
    paragraph = readme[readme.index(begin) + len(begin):readme.index(end)]
    demo = root / "benchmarks" / "results" / "demo"
    printed = (demo / "stdout.txt").read_text() + (demo / "time.txt").read_text()
    numbers = set(re.findall(r"\d+(?:[.:]\d+)+", re.sub(r"`[^`]*`", " ", paragraph)))
    assert len(numbers) >= 8  # the paragraph is read, not an empty string
    assert sorted(n for n in numbers if n not in printed) == []
    assert "benchmarks/results/demo/" in paragraph
    assert "skw2s demo --data-dir" in (demo / "README.md").read_text()
