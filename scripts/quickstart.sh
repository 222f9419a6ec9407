#!/usr/bin/env bash
# Install everything, then run the quick-start sweep on the embedded local model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/llmops sweep experiments/quickstart.yaml "$@"
