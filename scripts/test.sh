#!/usr/bin/env bash
# Install everything, then run the linters and the whole test suite (offline).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check llmops_mlflow tests bench
.venv/bin/ruff format --check llmops_mlflow tests bench
exec .venv/bin/python -m pytest "$@"
