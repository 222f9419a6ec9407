"""Shared fixtures: one SQLite MLflow store per session, a tiny corpus, sweep-file writers."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATASETS = REPO.parent / "shared" / "datasets"

DOCS = {
    "tea": "# Tea\n\n## Brewing\nGreen tea is brewed at 80 degrees Celsius for two minutes.\n"
    "\n## Storage\nKeep tea leaves in an airtight tin away from light.\n",
    "bikes": "# Bikes\n\n## Tyres\nRoad bike tyres are inflated to 6 bar.\n"
    "\n## Chains\nA bike chain is oiled every 300 kilometres.\n",
    "moon": "# Moon\n\nThe Moon orbits the Earth every 27 days and has no atmosphere.\n",
}
QUESTIONS = [
    {
        "id": "t1",
        "question": "At what temperature is green tea brewed?",
        "reference_answer": "Green tea is brewed at 80 degrees Celsius.",
        "gold_doc_ids": ["tea"],
    },
    {
        "id": "b1",
        "question": "How often is a bike chain oiled?",
        "reference_answer": "Every 300 kilometres.",
        "gold_doc_ids": ["bikes"],
    },
    {
        "id": "m1",
        "question": "How long does the Moon take to orbit the Earth?",
        "reference_answer": "27 days.",
        "gold_doc_ids": ["moon"],
    },
]


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One migrated SQLite store for the whole session (a new one takes seconds to migrate)."""
    import mlflow

    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    uri = f"sqlite:///{path}"
    mlflow.set_tracking_uri(uri)
    mlflow.search_experiments()  # runs the migrations once
    return uri


@pytest.fixture(autouse=True)
def _session_store(tracking_uri: str) -> None:
    """Every test starts pointed at the session store, whatever the previous one set."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)


@pytest.fixture
def use_store(tracking_uri: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The session store for subprocesses too (`llmops`, `mlflow run`)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    return tracking_uri


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / f"{name}.md").write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def questions_file(tmp_path: Path) -> Path:
    path = tmp_path / "questions.jsonl"
    path.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS), encoding="utf-8")
    return path


@pytest.fixture
def write_sweep(tmp_path: Path, corpus_dir: Path, questions_file: Path) -> Callable[..., Path]:
    """Write a sweep file (the project prompts beside it); @CORPUS@, @QUESTIONS@, @INDEX@."""
    prompts = tmp_path / "prompts"
    prompts.mkdir(exist_ok=True)
    for name in ("concise", "cite"):
        source = REPO / "experiments" / "prompts" / f"{name}.txt"
        (prompts / f"{name}.txt").write_text(source.read_text(encoding="utf-8"), encoding="utf-8")

    def write(body: str, name: str = "sweep.yaml") -> Path:
        text = (
            textwrap.dedent(body)
            .replace("@CORPUS@", str(corpus_dir))
            .replace("@QUESTIONS@", str(questions_file))
            .replace("@INDEX@", str(tmp_path / "index"))
        )
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write
