#!/usr/bin/env bash
# Lint: Python syntax errors and undefined names (ruff's E9, F63, F7, F82), and
# every shell script through shellcheck. `make lint` runs it with .venv's Python;
# cloudbuild.yaml's lint step in a plain Python image (PYTHON=python). Works
# without a .git folder (Cloud Build's source archive has none).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"

"$PYTHON" -m ruff check --quiet --no-cache --select E9,F63,F7,F82 --extend-exclude .venv,.venv-checks,.local-cloud,infra/terraform/.terraform .
scripts=()
while IFS= read -r -d '' script; do
    scripts+=("$script")
done < <(find . \( -path ./.git -o -path './.venv*' -o -path ./.local-cloud -o -path '*/node_modules' -o -path '*/.terraform' \) -prune \
    -o -name '*.sh' -type f -print0 | sort -z)
shellcheck "${scripts[@]}"
echo "lint: ok (ruff, and shellcheck on ${#scripts[@]} scripts)"
