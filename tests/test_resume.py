"""A sweep killed halfway (SIGKILL, or Ctrl-C) resumes: finished configs are not re-run, no
duplicate child runs, and the MLflow runs tell the truth about what happened."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

from .servers import Fault, FaultScript, fault_server

pytestmark = pytest.mark.slow

LLMOPS = str(Path(sys.executable).parent / "llmops")
SLOW_REMOTE = """\
name: resumable
experiment: resume-@NAME@
dataset: {corpus: "@CORPUS@", questions: "@QUESTIONS@"}
options: {index_dir: "@INDEX@"}
detector: {enabled: false}
base:
  llm: {provider: openai, model: fake, base_url: "@URL@", max_tokens: 16, max_retries: 0,
        timeout_s: 10, max_concurrency: 1}
grid:
  retriever.k: [1, 2, 3]
"""


def _start(path: Path, tracking_uri: str) -> subprocess.Popen:
    return subprocess.Popen(
        [LLMOPS, "sweep", "--no-progress", "--no-cache", str(path)],
        cwd=path.parent,
        env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _runs(experiment: str) -> list:
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        return []
    return mlflow.search_runs([found.experiment_id], output_format="list")


def _children(runs: list) -> list:
    return [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def _wait_for_first_finished_child(experiment: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if any(r.info.status == "FINISHED" for r in _children(_runs(experiment))):
            return
        if process.poll() is not None:
            pytest.fail(f"the sweep ended early: {process.stderr.read()}")
        time.sleep(0.2)
    pytest.fail("no config finished in time")


def _interrupt(write_sweep, tmp_path, tracking_uri, sig: int) -> tuple[Path, str, dict]:
    """Start a slow sweep, send `sig` once its first config finished; return its state."""
    experiment = f"resume-{tmp_path.name}"
    script = FaultScript(then=Fault(delay_s=0.4))
    with fault_server(script) as url:
        path = write_sweep(SLOW_REMOTE.replace("@URL@", url).replace("@NAME@", tmp_path.name))
        process = _start(path, tracking_uri)
        _wait_for_first_finished_child(experiment, process)
        process.send_signal(sig)
        _, stderr = process.communicate(timeout=60)
    runs = _runs(experiment)
    finished = {
        r.data.tags["llmops.config_hash"]: r for r in _children(runs) if r.info.status == "FINISHED"
    }
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    return (
        path,
        parent.info.run_id,
        {
            "finished": finished,
            "rc": process.returncode,
            "stderr": stderr,
            "parent": parent,
            "runs": runs,
        },
    )


def _resume(path: Path, tracking_uri: str) -> tuple[subprocess.CompletedProcess, FaultScript]:
    """Run the same sweep file again, with the provider back on the same port."""
    url = path.read_text(encoding="utf-8").split('base_url: "')[1].split('"')[0]
    script = FaultScript()
    with fault_server(script, port=int(url.split(":")[2].split("/")[0])):
        done = subprocess.run(
            [LLMOPS, "sweep", "--no-progress", "--no-cache", str(path)],
            cwd=path.parent,
            env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri},
            capture_output=True,
            text=True,
            timeout=600,
        )
    return done, script


def test_sigkill_then_rerun_resumes_without_redoing_finished_configs(
    write_sweep, tmp_path, tracking_uri
):
    path, parent_id, before = _interrupt(write_sweep, tmp_path, tracking_uri, signal.SIGKILL)
    assert before["rc"] == -signal.SIGKILL
    assert before["parent"].info.status == "RUNNING"  # a killed process cannot say otherwise

    done, script = _resume(path, tracking_uri)
    assert done.returncode == 0, done.stderr
    _assert_resumed(tmp_path, parent_id, before["finished"], script)


def test_ctrl_c_marks_runs_killed_then_rerun_resumes(write_sweep, tmp_path, tracking_uri):
    path, parent_id, before = _interrupt(write_sweep, tmp_path, tracking_uri, signal.SIGINT)
    assert before["rc"] == 130
    assert "interrupted" in before["stderr"]
    assert before["parent"].info.status == "KILLED"
    statuses = {r.info.status for r in _children(before["runs"])}
    assert statuses <= {"FINISHED", "KILLED"}

    done, script = _resume(path, tracking_uri)
    assert done.returncode == 0, done.stderr
    _assert_resumed(tmp_path, parent_id, before["finished"], script)


def _assert_resumed(tmp_path: Path, parent_id: str, finished: dict, script: FaultScript) -> None:
    runs = _runs(f"resume-{tmp_path.name}")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = _children(runs)
    assert [p.info.run_id for p in parents] == [parent_id]
    assert parents[0].info.status == "FINISHED"
    hashes = [c.data.tags["llmops.config_hash"] for c in children]
    assert len(hashes) == len(set(hashes)) == 3  # one child per config, no duplicates
    assert all(c.info.status == "FINISHED" for c in children)
    for config_hash, run in finished.items():  # untouched: same run, same metrics
        now = next(c for c in children if c.data.tags["llmops.config_hash"] == config_hash)
        assert now.info.run_id == run.info.run_id
        assert now.data.metrics == run.data.metrics
    # Only the configs that had not finished were asked again (3 questions each).
    assert len(script.requests) == 3 * (3 - len(finished))
