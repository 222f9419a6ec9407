"""llmops-mlflow: offline-first RAG sweeps, tracked and compared in MLflow."""

import os

__version__ = "0.1.0"

# Telemetry is off unless the user turned it on: these run before mlflow, ragas or
# chromadb are imported by any module of this package.
for _name, _value in (
    ("MLFLOW_DISABLE_TELEMETRY", "true"),
    ("DO_NOT_TRACK", "1"),
    ("RAGAS_DO_NOT_TRACK", "true"),
    ("ANONYMIZED_TELEMETRY", "False"),
    ("HF_HUB_OFFLINE", "1"),
    # An empty catalogue URI makes MLflow read its bundled price catalogue, never the network.
    ("MLFLOW_MODEL_CATALOG_URI", ""),
    # llama.cpp's OpenMP threads spin while they wait; on a busy 2-core machine that makes
    # each call up to 20x slower. Passive waiting costs nothing measurable when idle.
    ("OMP_WAIT_POLICY", "PASSIVE"),
):
    os.environ.setdefault(_name, _value)
