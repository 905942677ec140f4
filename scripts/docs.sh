#!/usr/bin/env bash
# Build the documentation site into docs/_build/html: the user guide, the API reference and the
# example gallery. Every examples/plot_*.py runs during the build, on the offline models, and
# its figures and run time go on its page; warnings are errors.
# Usage: bash scripts/docs.sh [--clean] [SPHINX-BUILD OPTIONS...]
#   --clean   remove the previous build and the generated pages first (a build from scratch;
#             otherwise sphinx-gallery reruns only the examples that changed).
# Sets up .venv if needed (scripts/setup.sh) and installs the docs extra of pyproject.toml.
# Data: SKW2S_DATA_DIR, or ../shared/data beside the repository when it exists.
# SKW2S_DOCS_EXAMPLES=REGEX runs only the examples whose path matches (none: run no example).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${SKW2S_VENV:-$root/.venv}"
clean=0
args=()
for arg in "$@"; do
    case "$arg" in
        --clean) clean=1 ;;
        *) args+=("$arg") ;;
    esac
done
bash "$root/scripts/setup.sh" "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$root[docs]"
if [ -z "${SKW2S_DATA_DIR:-}" ] && [ -d "$root/../shared/data" ]; then
    export SKW2S_DATA_DIR="$root/../shared/data"
fi
cd "$root/docs"
if [ "$clean" = 1 ]; then
    rm -rf _build generated auto_examples sg_execution_times.rst
fi
exec "$venv/bin/python" -m sphinx -W --keep-going -b html . _build/html ${args[@]+"${args[@]}"}
