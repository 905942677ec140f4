#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py): one command, no network, at most about 8 minutes on
# one H100/H200-class GPU. It runs the tests marked `cuda`, checks the GPU paths against the
# CPU, measures them in bfloat16, and runs a LoRA fit under torchrun and accelerate launch.
#
# Usage:
#   bash scripts/gpu_check.sh --prepare DIR     # on a machine with a package registry: download
#                                               # the wheels a GPU node lacks into DIR
#   bash scripts/gpu_check.sh [--wheels DIR] [--out DIR] [--device cuda|cpu] [--quick] \
#                             [--parts tests correctness speed launch]
#                                               # run the check; --wheels first installs DIR's
#                                               # wheels into a temporary target (no network)
#   bash scripts/gpu_check.sh --device cpu --quick   # the dry run on tiny models (in the tests)
#
# The node is expected to have torch, transformers 5.x, peft, accelerate, scikit-learn, pandas,
# numpy, pyarrow, scipy, pyyaml, tqdm, filelock and pytest, possibly older than ours (see
# docs/user_guide/gpus.rst for the versions it has run with). What else skw2s imports comes
# from the wheels: datasets (with dill, multiprocess), skops (with prettytable, wcwidth) and
# gguf, about 2 MB, for Python 3.12 on manylinux x86-64. The Python interpreter is $PYTHON,
# else .venv/bin/python when it exists, else python3. Results go to --out (default
# benchmarks/results/gpu/).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ -n "${PYTHON:-}" ]; then python="$PYTHON"
elif [ -x "$root/.venv/bin/python" ]; then python="$root/.venv/bin/python"
else python=python3; fi

# The wheels, pinned to the versions skw2s is tested with. Pure-Python wheels, so any Python
# 3.12 x86-64 node takes them.
WHEELS=(
    "datasets==5.2.0" "dill==0.4.1" "multiprocess==0.70.19" "skops==0.16.0"
    "prettytable==3.19.0" "wcwidth==0.9.4" "gguf==0.19.0"
)

prepare() {
    local dir="$1"
    mkdir -p "$dir"
    "$python" -m pip download --quiet --disable-pip-version-check --no-deps \
        --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform any -d "$dir" "${WHEELS[@]}"
    echo "Wheels for the GPU node in $dir ($(du -sh "$dir" | cut -f1)):"
    ls "$dir"
}

args=()
wheels=""
while [ $# -gt 0 ]; do
    case "$1" in
        --prepare) [ $# -ge 2 ] || { echo "gpu_check.sh: --prepare needs a folder" >&2; exit 2; }
                   prepare "$2"; exit 0 ;;
        --wheels) [ $# -ge 2 ] || { echo "gpu_check.sh: --wheels needs a folder" >&2; exit 2; }
                  wheels="$2"; shift 2 ;;
        *) args+=("$1"); shift ;;
    esac
done

if [ -n "$wheels" ]; then
    [ -d "$wheels" ] || { echo "gpu_check.sh: no wheel folder $wheels" >&2; exit 2; }
    target="$(mktemp -d -t skw2s-wheels-XXXXXX)"
    "$python" -m pip install --quiet --disable-pip-version-check --no-index --no-deps \
        --no-compile --no-cache-dir --target "$target" "$wheels"/*.whl
    export PYTHONPATH="$target${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
cd "$root"
exec "$python" benchmarks/gpu_check.py "${args[@]+"${args[@]}"}"
