#!/usr/bin/env bash
# The README's test command: set up (if needed) and run the whole default test suite,
# including the tests marked real_model, which use the offline SmolLM2 / Gemma models.
# Data: SKW2S_DATA_DIR, or ../shared/data beside the repository when it exists.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${SKW2S_VENV:-$root/.venv}"
bash "$root/scripts/setup.sh" "$venv"
if [ -z "${SKW2S_DATA_DIR:-}" ] && [ -d "$root/../shared/data" ]; then
    export SKW2S_DATA_DIR="$root/../shared/data"
fi
cd "$root"
exec "$venv/bin/python" -m pytest -q "$@"
