"""MLflow logging: the tracking URI, parent and child runs, params, tables and artifacts."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from llmops_mlflow.errors import ConfigError

logger = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
TAG_PREFIX = "llmops."
MAX_PARAM_CHARS = 6000


def configure(uri: str | None = None) -> str:
    """Use `uri`, else `MLFLOW_TRACKING_URI`, else a SQLite store in the working directory.

    A tracking server that does not answer is an error now, before any model is called,
    rather than minutes of retries after the first config.
    """
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    if uri.startswith(("http://", "https://")):
        _probe(uri)
    mlflow.set_tracking_uri(uri)
    return uri


def _probe(uri: str, timeout_s: float = 5.0) -> None:
    import urllib.error
    import urllib.request

    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s):
            return
    except urllib.error.HTTPError as err:
        if err.code < 500:  # it answered: a proxy or an auth layer, not a dead server
            return
        reason = f"HTTP {err.code}"
    except (OSError, ValueError) as err:
        reason = str(getattr(err, "reason", err))
    raise ConfigError(
        f"the MLflow tracking server at {uri} does not answer ({reason}); start it, or unset "
        "MLFLOW_TRACKING_URI to log to a local sqlite:///mlflow.db"
    )


@functools.cache
def git_commit() -> str | None:
    """The commit of the working directory's repository, if there is one."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def source_tags() -> dict[str, str]:
    """Tags that tie a run to the code that produced it."""
    commit = git_commit()
    return {"mlflow.source.git.commit": commit, f"{TAG_PREFIX}git_commit": commit} if commit else {}


OWNER_TAG = f"{TAG_PREFIX}owner"


def owner() -> str:
    """Which process runs a sweep: a live owner's runs are never resumed by another."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _owner_alive(tag: str | None) -> bool:
    host, _, pid = (tag or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find_resumable(experiment: str, identity: Mapping[str, str]) -> str | None:
    """The latest unfinished parent run of the same sweep, dataset and corpus, if any.

    A run whose process is still alive (a concurrent sweep) is not resumable. Runs started
    by `mlflow run` are left alone: the project run is already the parent there.
    """
    if os.environ.get("MLFLOW_RUN_ID"):
        return None
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        return None
    clauses = [f"tags.`{key}` = '{value}'" for key, value in identity.items()]
    runs = mlflow.search_runs(
        [found.experiment_id],
        filter_string=" and ".join([*clauses, "attributes.status != 'FINISHED'"]),
        order_by=["attributes.start_time DESC"],
        output_format="list",
    )
    for run in runs:
        if "mlflow.parentRunId" not in run.data.tags and not _owner_alive(
            run.data.tags.get(OWNER_TAG)
        ):
            return run.info.run_id
    return None


def child_runs(parent_id: str) -> list[mlflow.entities.Run]:
    """The child runs of a parent, newest first."""
    parent = mlflow.get_run(parent_id)
    return mlflow.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent_id}'",
        order_by=["attributes.start_time DESC"],
        output_format="list",
    )


@contextlib.contextmanager
def parent_run(
    experiment: str, run_name: str, tags: Mapping[str, str], resume_id: str | None = None
) -> Iterator[str]:
    """Open the sweep's parent run (or reopen `resume_id`); yields its id."""
    mlflow.set_experiment(experiment)
    with _run(run_name, tags, nested=False, run_id=resume_id) as run_id:
        yield run_id


@contextlib.contextmanager
def child_run(
    run_name: str, tags: Mapping[str, str], resume_id: str | None = None
) -> Iterator[str]:
    """A nested run for one config under the active parent run (or reopen `resume_id`)."""
    with _run(run_name, tags, nested=True, run_id=resume_id) as run_id:
        yield run_id


@contextlib.contextmanager
def _run(
    run_name: str, tags: Mapping[str, str], nested: bool, run_id: str | None = None
) -> Iterator[str]:
    # The final status tells the truth: FAILED on an error, KILLED on Ctrl-C.
    all_tags = {**source_tags(), **tags, OWNER_TAG: owner()}
    if run_id is None:
        run = mlflow.start_run(run_name=run_name, nested=nested, tags=all_tags)
    else:
        run = mlflow.start_run(run_id=run_id, nested=nested)
        mlflow.set_tags(all_tags)
    status = "FINISHED"
    try:
        yield run.info.run_id
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except BaseException:
        status = "FAILED"
        raise
    finally:
        mlflow.end_run(status=status)


def log_params(params: Mapping[str, Any]) -> None:
    """Log params, truncating values MLflow would reject."""
    mlflow.log_params({k: str(v)[:MAX_PARAM_CHARS] for k, v in params.items()})


def log_metrics(metrics: Mapping[str, float | None]) -> None:
    """Log the metrics that have a value; None means not computed and is left out."""
    mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None})


def set_tags(tags: Mapping[str, Any]) -> None:
    """Set tags on the active run."""
    mlflow.set_tags({k: str(v) for k, v in tags.items()})


def log_table(frame: pd.DataFrame, name: str) -> None:
    """Log a DataFrame as an MLflow table (shown in the UI's evaluation view)."""
    mlflow.log_table(data=frame, artifact_file=name)


def load_table(run_id: str, name: str) -> pd.DataFrame:
    """A table a run logged, read from that run's own experiment.

    `mlflow.load_table` looks in the active experiment, which after an earlier
    `set_experiment` in the same process is not necessarily the run's.
    """
    run = mlflow.get_run(run_id)
    client = mlflow.MlflowClient()
    return client.load_table(run.info.experiment_id, name, run_ids=[run_id])


def log_text(text: str, name: str) -> None:
    """Log a text artifact."""
    mlflow.log_text(text, name)


def log_artifact(path: Path) -> None:
    """Log a file as an artifact of the active run."""
    mlflow.log_artifact(str(path))


def log_dict(data: Mapping[str, Any], name: str) -> None:
    """Log a dict as a YAML or JSON artifact, by the file's suffix."""
    mlflow.log_dict(dict(data), name)
