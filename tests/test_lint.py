"""ruff's checks of pyproject.toml ([tool.ruff.lint]: line length and pyflakes) on the package,
the tests, the gallery examples and the benchmark scripts."""

import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing():
    ruff = pytest.importorskip("ruff")
    binary = pathlib.Path(ruff.find_ruff_bin())
    proc = subprocess.run([str(binary), "check", "--no-cache", "skw2s", "tests", "examples",
                           "benchmarks"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
