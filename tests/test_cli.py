"""The `llmops` command, `mlflow run` and `mlflow ui`, run as a user would run them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import mlflow
import pytest

from .conftest import REPO

BIN = Path(sys.executable).parent
TINY = """\
name: tiny
experiment: {experiment}
dataset: {{corpus: "@CORPUS@", questions: "@QUESTIONS@", limit: 1}}
options: {{index_dir: "@INDEX@"}}
base: {{llm: {{max_tokens: 16}}, retriever: {{k: 1}}}}
"""


@pytest.fixture(autouse=True)
def _no_inherited_experiment(monkeypatch: pytest.MonkeyPatch) -> None:
    """`mlflow.set_experiment` in an earlier in-process sweep exports MLFLOW_EXPERIMENT_ID, which
    `mlflow run --experiment-name` refuses to combine with; a user's shell has no such leftover."""
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)


def _llmops(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    return subprocess.run(
        [str(BIN / "llmops"), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


@pytest.mark.parametrize(
    "command",
    [[], ["sweep"], ["schema"], ["register"], ["serve"]],
    ids=["top", "sweep", "schema", "register", "serve"],
)
def test_help(command):
    result = _llmops(*command, "--help")
    assert result.returncode == 0
    assert "Usage: llmops" in result.stdout


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(
            TINY + "grid: {{retriever.k: []}}\n",
            "grid.retriever.k is an empty list",
            id="empty-grid",
        ),
        pytest.param(
            TINY.replace("@CORPUS@", "/nonexistent/corpus"), "corpus not found", id="missing-corpus"
        ),
        pytest.param("name: [\n", "invalid YAML at line 2", id="malformed"),
    ],
)
def test_bad_input_exits_2_with_a_message_and_writes_nothing(
    write_sweep, use_store, body, message, tmp_path
):
    experiment = f"bad-{tmp_path.name}"
    path = write_sweep(body.format(experiment=experiment) if "{experiment}" in body else body)
    result = _llmops("sweep", "--no-progress", str(path))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert mlflow.get_experiment_by_name(experiment) is None


def _not_sqlite(root: Path) -> str:
    (root / "cache").mkdir()
    (root / "cache" / "results.sqlite").write_text("not a database", encoding="utf-8")
    return "cache"


def _a_file(root: Path) -> str:
    (root / "cache").write_text("a file", encoding="utf-8")
    return "cache"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(_not_sqlite, "cannot be opened (file is not a database)", id="corrupt-cache"),
        pytest.param(_a_file, "Directory 'cache' is a file", id="cache-dir-is-a-file"),
    ],
)
@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry-run"])
def test_a_cache_dir_that_cannot_be_used_exits_2(
    write_sweep, use_store, tmp_path, make, message, dry_run
):
    experiment = f"cache-{tmp_path.name}"
    path = write_sweep(TINY.format(experiment=experiment))
    args = ["--cache-dir", make(tmp_path), *(["--dry-run"] if dry_run else []), str(path)]
    result = _llmops("sweep", "--no-progress", *args, cwd=tmp_path)
    assert (result.returncode, "Traceback" in result.stderr) == (2, False), result.stderr
    assert message in result.stderr
    assert mlflow.get_experiment_by_name(experiment) is None


@pytest.mark.parametrize(
    ("output", "message"),
    [
        pytest.param("folder", "cannot write the schema to folder (Is a directory)", id="a-folder"),
        pytest.param(
            "file/schema.json", "cannot write the schema to file/schema.json", id="below-a-file"
        ),
    ],
)
def test_schema_to_a_path_it_cannot_write_exits_2(tmp_path, output, message):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("a file", encoding="utf-8")
    result = _llmops("schema", "--output", output, cwd=tmp_path)
    assert (result.returncode, "Traceback" in result.stderr) == (2, False), result.stderr
    assert message in result.stderr


def test_missing_sweep_file_exits_2(tmp_path):
    result = _llmops("sweep", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert "sweep file not found" in result.stderr


def test_unknown_command_exits_2():
    assert _llmops("sweeep").returncode == 2


@pytest.mark.slow
def test_mlflow_run_entry_point(write_sweep, use_store, tmp_path):
    experiment = f"project-{tmp_path.name}"
    path = write_sweep(TINY.format(experiment=experiment))
    result = subprocess.run(
        [
            str(BIN / "mlflow"),
            "run",
            str(REPO),
            "-e",
            "sweep",
            "--env-manager",
            "local",
            "--experiment-name",
            experiment,
            "-P",
            f"experiment={path}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PATH": _path()},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = mlflow.search_runs(experiment_names=[experiment], output_format="list")
    assert len(runs) == 2
    assert {r.info.status for r in runs} == {"FINISHED"}
    child = next(r for r in runs if "mlflow.parentRunId" in r.data.tags)
    assert child.data.metrics["samples"] == 1


def _path() -> str:
    return f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_quick_start_flow_sweep_then_mlflow_ui(write_sweep, tmp_path, monkeypatch):
    """As the README says: `llmops sweep` in a folder, then `mlflow ui` there shows the runs."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    path = write_sweep(TINY.format(experiment="readme-flow"))
    result = _llmops("sweep", "--no-progress", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "sweep summary" in result.stdout
    assert "tracking: sqlite:///mlflow.db" in result.stdout
    parent_id = result.stdout.split("parent run: ")[1].split()[0]

    port = _free_port()
    server = subprocess.Popen(
        [str(BIN / "mlflow"), "ui", "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PATH": _path()},
    )
    try:
        base = f"http://127.0.0.1:{port}"
        assert _wait_ok(f"{base}/health", seconds=90)
        runs = _search_runs(base, "readme-flow")
    finally:
        server.terminate()
        server.wait(timeout=30)
    by_id = {r["info"]["run_id"]: r for r in runs}
    assert by_id[parent_id]["info"]["status"] == "FINISHED"
    children = [r for r in runs if r["info"]["run_id"] != parent_id]
    assert len(children) == 1
    tags = {t["key"]: t["value"] for t in children[0]["data"]["tags"]}
    assert tags["mlflow.parentRunId"] == parent_id


def _search_runs(base: str, experiment: str) -> list[dict]:
    query = urllib.parse.urlencode({"experiment_name": experiment})
    with urllib.request.urlopen(f"{base}/api/2.0/mlflow/experiments/get-by-name?{query}") as r:
        experiment_id = json.load(r)["experiment"]["experiment_id"]
    body = json.dumps({"experiment_ids": [experiment_id]}).encode()
    request = urllib.request.Request(
        f"{base}/api/2.0/mlflow/runs/search",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        return json.load(response)["runs"]


def _wait_ok(url: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.5)
    return False


def test_readme_dry_run_of_the_quick_start(tmp_path):
    result = _llmops(
        "sweep",
        "--dry-run",
        "--cache-dir",
        str(tmp_path / "cache"),
        str(REPO / "experiments" / "quickstart.yaml"),
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    assert "dry run: nothing was called or logged" in result.stdout
    assert "calls: 144," in result.stdout
    assert not (tmp_path / "cache").exists()


def test_a_tracking_server_that_does_not_answer_exits_2_quickly(write_sweep, tmp_path):
    path = write_sweep(TINY.format(experiment="unreachable"))
    start = time.monotonic()
    result = _llmops(
        "sweep",
        "--no-progress",
        str(path),
        env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"},
    )
    assert result.returncode == 2
    assert "tracking server at http://127.0.0.1:9 does not answer" in result.stderr
    assert time.monotonic() - start < 30


def _readme_block(after: str) -> str:
    """The first bash block of the README that follows the line `after`."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    tail = readme.split(after, 1)[1]
    return tail.split("```bash\n", 1)[1].split("```", 1)[0]


@pytest.mark.slow
def test_readme_register_then_mlflow_models_serve(write_sweep, tmp_path, monkeypatch):
    """As the README says, in a folder with a sweep: `llmops register`, serve, ask with curl."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    commands = _readme_block("## Promote and serve the winner").split()
    assert _readme_block("Then ask it").startswith("curl -s http://127.0.0.1:5000/invocations")
    body = _readme_block("Then ask it").split("-d '", 1)[1].rsplit("'", 1)[0]
    path = write_sweep(TINY.format(experiment="serve"))
    sweep = _llmops("sweep", "--no-progress", str(path), cwd=tmp_path)
    assert sweep.returncode == 0, sweep.stderr

    registered = _llmops(*commands[1:2], cwd=tmp_path)
    assert registered.returncode == 0, registered.stderr
    assert "registered llmops-rag version 1: models:/llmops-rag@champion" in registered.stdout

    port = _free_port()
    serve = commands[2:9]
    assert serve == "mlflow models serve -m models:/llmops-rag@champion --env-manager local".split()
    server = subprocess.Popen(
        [str(BIN / "mlflow"), *serve[1:], "-h", "127.0.0.1", "-p", str(port)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PATH": _path()},
        start_new_session=True,
    )
    try:
        assert _wait_ok(f"http://127.0.0.1:{port}/ping", seconds=180)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=body.encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            row = json.load(response)["predictions"][0]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    assert row["answer"] and row["contexts"] and row["tokens_completion"] > 0
    assert row["hallucination_score"] is not None and row["blocked"] is False


@pytest.mark.slow
def test_mlflow_run_register_entry_point(write_sweep, use_store, tmp_path):
    experiment = f"project-register-{tmp_path.name}"
    sweep = _llmops("sweep", "--no-progress", str(write_sweep(TINY.format(experiment=experiment))))
    assert sweep.returncode == 0, sweep.stderr
    parent = sweep.stdout.split("parent run: ")[1].split()[0]
    name = f"project-{tmp_path.name}"
    command = [str(BIN / "mlflow"), "run", str(REPO), "-e", "register", "--env-manager", "local"]
    params = ["-P", f"parent_run={parent}", "-P", f"name={name}"]
    result = subprocess.run(
        [*command, "--experiment-name", experiment, *params],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PATH": _path()},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    version = mlflow.MlflowClient().get_model_version_by_alias(name, "champion")
    assert version.tags["llmops.parent_run_id"] == parent
    project_run = mlflow.get_run(version.run_id)
    assert project_run.data.tags["mlflow.project.entryPoint"] == "register"


ROW = '{"contexts": ["Green tea is brewed at 80 degrees."], "answer": "At 80 degrees."}\n'


@pytest.mark.parametrize(
    ("output", "message"),
    [
        pytest.param("out", "out is a folder; name the file to write", id="a-folder"),
        pytest.param("in.jsonl", "is also the input; write the scored rows", id="the-input"),
        pytest.param("./out/../in.jsonl", "is also the input", id="the-input-by-another-path"),
        pytest.param("in.jsonl/x.jsonl", "in.jsonl is not a folder", id="below-a-file"),
    ],
)
def test_detect_refuses_an_output_it_cannot_write_before_scoring(tmp_path, output, message):
    (tmp_path / "in.jsonl").write_text(ROW, encoding="utf-8")
    (tmp_path / "out").mkdir()
    result = _llmops(
        "detect", "--no-progress", "--input", "in.jsonl", "--output", output, cwd=tmp_path
    )
    assert (result.returncode, "Traceback" in result.stderr) == (2, False), result.stderr
    assert message in result.stderr
    assert (tmp_path / "in.jsonl").read_text(encoding="utf-8") == ROW
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["in.jsonl", "out"]


def test_detect_names_the_output_when_writing_it_fails(tmp_path, monkeypatch, capsys):
    from llmops_mlflow import cli

    (tmp_path / "in.jsonl").write_text(ROW, encoding="utf-8")

    def full_disk(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("llmops_mlflow.detector.os.replace", full_disk)  # the injected fault
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "llmops",
            "detect",
            "--no-progress",
            "--input",
            str(tmp_path / "in.jsonl"),
            "--output",
            str(tmp_path / "out.jsonl"),
        ],
    )
    with pytest.raises(SystemExit) as caught:
        cli.main()
    assert caught.value.code == 2
    assert "cannot write" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["--name", "bad name!"], "model name 'bad name!' is not allowed", id="name-with-space"
        ),
        pytest.param(["--name", "a/b"], "model name 'a/b' is not allowed", id="name-with-slash"),
        pytest.param(
            ["--constraint", "hallucination_rate=nan"], "is not a number", id="nan-ceiling"
        ),
    ],
)
def test_register_refuses_bad_arguments_before_anything_is_logged(use_store, args, message):
    result = _llmops("register", *args)
    assert (result.returncode, "Traceback" in result.stderr) == (2, False), result.stderr
    assert message in result.stderr
