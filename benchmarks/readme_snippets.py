"""Run the README's Python snippets and record what they print and what they cost.

The README's "Using the library" section shows Python snippets with the output and time of a
real run. This script runs each of them as written, in a fresh process from the repository
root, and writes its output, wall seconds and CPU seconds (of the process and its children) to
``benchmarks/results/readme/snippet{N}.json``, so the figures the README quotes come from a
command anyone can rerun::

    SKW2S_DATA_DIR=../shared/data python benchmarks/readme_snippets.py          # every snippet
    SKW2S_DATA_DIR=../shared/data python benchmarks/readme_snippets.py --only 2

A snippet is a fenced ``python`` block of the README between the headings "Using the library"
and the next second-level heading. The round cache a snippet names (``runs/readme-cache``) is
emptied first, so that the recorded time is that of a fit, not of a cache read.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "results" / "readme"
CACHE = ROOT / "runs" / "readme-cache"


def snippets(readme=ROOT / "README.md"):
    """The Python blocks of the README's "Using the library" section, in order."""
    text = readme.read_text()
    section = text.split("## Using the library", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def run(index, code, out=OUT):
    """Run snippet ``index`` (1-based) in a fresh interpreter; write and return its record."""
    import shutil

    shutil.rmtree(CACHE, ignore_errors=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONUNBUFFERED="1"))
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    record = {
        "snippet": index, "code": code, "returncode": proc.returncode, "stdout": proc.stdout,
        "stderr_tail": proc.stderr[-4000:], "wall_seconds": round(wall, 1),
        "cpu_seconds": round(cpu, 1), "cores": os.cpu_count(),
        "load_average_after": list(os.getloadavg()), "python": platform.python_version(),
        "command": " ".join([Path(sys.executable).name] + sys.argv),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / f"snippet{index}.json").write_text(json.dumps(record, indent=2))
    return record


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", type=int, nargs="+", help="snippet numbers (1-based)")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    found = snippets()
    for i, code in enumerate(found, start=1):
        if args.only and i not in args.only:
            continue
        record = run(i, code, Path(args.out))
        print(f"== snippet {i}: exit {record['returncode']}, {record['wall_seconds']} s wall, "
              f"{record['cpu_seconds']} CPU s ==")
        print(record["stdout"])
        if record["returncode"]:
            print(record["stderr_tail"], file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
