"""benchmarks/*.py --quick writes its JSON beside, never over, the committed records."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_quick_runs_go_to_an_ignored_folder(load_benchmark, tmp_path, monkeypatch):
    perf = load_benchmark("_perf")
    committed = tmp_path / "performance"
    committed.mkdir()
    (committed / "scoring_quick_cpu.json").write_text('{"committed": true}')
    monkeypatch.setattr(perf, "RESULTS", committed)
    monkeypatch.setattr(perf, "QUICK_RESULTS", committed / "quick")
    path = perf.write_json("scoring_quick_cpu", {"new": 1}, SimpleNamespace(quick=True, out=None))
    assert path == committed / "quick" / "scoring_quick_cpu.json"
    assert json.loads((committed / "scoring_quick_cpu.json").read_text()) == {"committed": True}
    assert perf.write_json("scoring_full_cpu", {},
                           SimpleNamespace(quick=False, out=None)).parent == committed
    assert (perf.write_json("x", {}, SimpleNamespace(quick=True, out=str(tmp_path / "o"))).parent
            == tmp_path / "o")


def test_the_quick_folder_is_ignored_by_git(load_benchmark):
    perf = load_benchmark("_perf")
    assert perf.QUICK_RESULTS != perf.RESULTS
    if shutil.which("git") is None or not (BENCHMARKS.parent / ".git").exists():
        pytest.skip("not a git checkout")
    probe = perf.QUICK_RESULTS.relative_to(BENCHMARKS.parent) / "scoring_quick_cpu.json"
    result = subprocess.run(["git", "check-ignore", "-q", str(probe)], cwd=BENCHMARKS.parent,
                            check=False)
    assert result.returncode == 0, f"{probe} is not ignored by .gitignore"


@pytest.mark.parametrize("path", sorted(BENCHMARKS.glob("bench_*.py")), ids=lambda p: p.name)
def test_every_benchmark_writes_through_results_dir(path):
    """Each write_json call passes the parsed arguments (so --quick and --out decide the
    folder), never a folder of its own."""
    calls = [node for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "write_json"]
    assert calls, f"{path.name} writes no results"
    for call in calls:
        assert (len(call.args) == 3 and isinstance(call.args[2], ast.Name)
                and call.args[2].id == "args")
