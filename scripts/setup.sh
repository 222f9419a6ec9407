#!/usr/bin/env bash
# Install everything into .venv: the pinned dependencies (requirements.lock), the offline
# model packages and this project. Skips the install when nothing changed since the last
# one, so it also works with no network once it has run.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
stamp=.venv/.llmops-installed
wanted=$(cat pyproject.toml requirements.lock scripts/setup.sh | sha256sum | cut -c1-16)

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ] && [ -x .venv/bin/llmops ]; then
    exit 0
fi

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $($PYTHON --version)" >&2
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip >&2
# llama-cpp-python has no Linux wheel on PyPI: it compiles (about 7 minutes on 2 cores the
# first time; pip keeps the wheel in its cache afterwards). These flags skip the parts of
# llama.cpp we never use and build for any x86-64, not just this CPU.
export CMAKE_ARGS="${CMAKE_ARGS:--DLLAVA_BUILD=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DGGML_NATIVE=OFF}"
echo "setup: installing pinned dependencies (first time: about 10 minutes)" >&2
.venv/bin/python -m pip install --quiet -c requirements.lock -e ".[test]" >&2
echo "$wanted" > "$stamp"
