"""Tracking helpers against the session's real SQLite store."""

from __future__ import annotations

import mlflow
import pandas as pd

from llmops_mlflow import tracking


def test_load_table_reads_from_the_runs_own_experiment(tmp_path):
    mlflow.set_experiment(f"tables-{tmp_path.name}")
    with mlflow.start_run() as run:
        tracking.log_table(pd.DataFrame({"answer": ["80 degrees"]}), "eval_results.json")
    mlflow.set_experiment(f"elsewhere-{tmp_path.name}")

    table = tracking.load_table(run.info.run_id, "eval_results.json")

    assert table["answer"].tolist() == ["80 degrees"]
