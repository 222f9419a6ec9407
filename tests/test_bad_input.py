"""Bad input through the `llmops` command: exit code 2, a message naming the file, line or key
and the fix, no traceback, and nothing written to MLflow."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import mlflow
import pytest

from llmops_mlflow.errors import LlmopsError
from llmops_mlflow.sweep import estimate_sweep, run_sweep

LLMOPS = str(Path(sys.executable).parent / "llmops")
SWEEP = """\
name: bad
experiment: bad-@NAME@
dataset: {corpus: "@CORPUS@", questions: "@QUESTIONS@", limit: 1}
options: {index_dir: "@INDEX@"}
base:
  llm: {max_tokens: 8}
  retriever: {k: 1}
"""


GRID_KEYS = (
    "llm.seed",
    "llm.max_tokens",
    "llm.n_ctx",
    "llm.max_retries",
    "retriever.k",
    "retriever.fetch_k",
)


def _replace(old: str, new: str) -> Callable[[str, Path], str]:
    return lambda body, _root: body.replace(old, new)


def _append(extra: str) -> Callable[[str, Path], str]:
    return lambda body, _root: body + extra


def _file(relative: str, data: bytes, size: int | None = None) -> Callable[[str, Path], str]:
    def write(body: str, root: Path) -> str:
        path = root / relative
        path.write_bytes(data)
        if size is not None:
            os.truncate(path, size)  # sparse: a huge file without writing it
        return body

    return write


def _empty_corpus(body: str, root: Path) -> str:
    shutil.rmtree(root / "corpus")
    (root / "corpus").mkdir()
    return body


CASES = {
    "unknown-key": (_replace("k: 1", "kk: 1"), "base.retriever.kk"),
    "wrong-type": (_replace("k: 1", "k: two"), "base.retriever.k"),
    "empty-grid": (_append("grid: {retriever.k: []}\n"), "grid.retriever.k is an empty list"),
    "empty-variants-name": (_append("variants: [{overrides: {}}]\n"), "variants.0.name"),
    "template-extra-variable": (
        lambda body, root: _prompt(root, "{question} {context} {style}", body),
        "unknown variable(s) ['style']",
    ),
    "template-missing-variable": (
        lambda body, root: _prompt(root, "Answer: {question}", body),
        "missing variable(s) ['context']",
    ),
    "template-attribute-access": (
        lambda body, root: _prompt(root, "{question.__class__} {context}", body),
        "{question.__class__} is not allowed",
    ),
    "empty-corpus": (_empty_corpus, "holds no documents"),
    "missing-corpus": (_replace("@CORPUS@", "/nonexistent/corpus"), "corpus not found"),
    "non-utf8-corpus-file": (
        _file("corpus/latin1.md", "caf\xe9 au lait".encode("latin-1")),
        "is not UTF-8 text",
    ),
    "binary-corpus-file": (_file("corpus/image.md", b"\x89PNG\x00\x00\x01"), "looks binary"),
    "huge-corpus-file": (_file("corpus/huge.md", b"x", size=60 * 2**20), "larger than 50 MiB"),
    "question-missing-field": (
        _file("questions.jsonl", b'{"question": "Why?"}\n'),
        "questions.jsonl:1: field 'id' is missing",
    ),
    "duplicate-question-ids": (
        _file("questions.jsonl", b'{"id": 1, "question": "a?"}\n{"id": 1, "question": "b?"}\n'),
        "questions.jsonl:2: duplicate id '1'",
    ),
    "non-utf8-questions": (
        _file("questions.jsonl", b'{"id": 1, "question": "caf\xe9?"}\n'),
        "questions.jsonl:1: not UTF-8",
    ),
    "index-dir-outside-project": (
        _replace('index_dir: "@INDEX@"', 'index_dir: "/etc/llmops-index"'),
        "options.index_dir",
    ),
    # Each below used to fail only after the parent run was open, or all configs had run.
    "unknown-llm-provider": (
        _replace("llm: {max_tokens: 8}", "llm: {max_tokens: 8, provider: nope}"),
        "config 'base': unknown llm provider 'nope'; choose one of ['local', 'openai']",
    ),
    "unpackaged-local-model": (
        _replace("llm: {max_tokens: 8}", "llm: {max_tokens: 8, model: gpt-9}"),
        "local model 'gpt-9' is not packaged",
    ),
    "unknown-embedding-model": (
        _append("  embedding: {model: bge-small}\n"),
        "local embedding model 'bge-small' is not packaged",
    ),
    "api-key-not-set": (
        _replace(
            "llm: {max_tokens: 8}",
            "llm: {max_tokens: 8, provider: openai, model: gpt-4o-mini, api_key_env: NO_KEY_HERE}",
        ),
        "environment variable NO_KEY_HERE is not set",
    ),
    "judge-api-key-not-set": (
        _append("judge: {model: gpt-4o-mini, api_key_env: NO_KEY_HERE}\n"),
        "judge: environment variable NO_KEY_HERE is not set",
    ),
    "token-encoding-not-packaged": (
        _append("  chunking: {method: token, encoding: p50k_base}\n"),
        "encoding 'p50k_base' is not packaged",
    ),
    "gold-id-not-in-corpus": (
        _file("questions.jsonl", b'{"id": "t1", "question": "a?", "gold_doc_ids": ["teas"]}\n'),
        "names gold doc id(s) ['teas'] that the corpus",
    ),
    "primary-metric-not-computed": (
        _replace("options: {", "options: {primary_metric: faithfulness, "),
        "options.primary_metric 'faithfulness' would not be computed",
    ),
    "unknown-primary-metric": (
        _replace("options: {", "options: {primary_metric: bleu, "),
        "primary_metric 'bleu' is not one of",
    ),
    # Refused before anything is expanded or read.
    "million-config-grid": (
        _append("grid:\n" + "".join(f"  {key}: {list(range(1, 11))}\n" for key in GRID_KEYS)),
        "expands to 1,000,000 configs",
    ),
    "duplicate-variant-names": (
        _append("variants: [{name: a}, {name: a, overrides: {retriever.k: 2}}]\n"),
        "two configs are named 'a'",
    ),
    "empty-sweep-file": (lambda _body, _root: "", "is empty; a sweep file needs at least"),
    "section-given-twice": (
        _append("base: {retriever: {k: 2}}\n"),
        "key 'base' is given twice (lines 5 and 8); keep one",
    ),
    "questions-path-is-a-folder": (
        _replace('questions: "@QUESTIONS@"', 'questions: "@CORPUS@"'),
        "corpus is a folder; name a .jsonl file",
    ),
    "index-dir-is-a-file": (
        _replace('index_dir: "@INDEX@"', 'index_dir: "@QUESTIONS@"'),
        "is a file, not a folder",
    ),
    "misspelt-question-field": (
        _file("questions.jsonl", b'{"id": 1, "question": "a?", "referense_answer": "b"}\n'),
        "questions.jsonl:1: unknown field 'referense_answer'; did you mean 'reference_answer'?",
    ),
}


def _prompt(root: Path, text: str, body: str) -> str:
    (root / "prompts" / "bad.txt").write_text(text, encoding="utf-8")
    return body.replace("  retriever: {k: 1}", "  retriever: {k: 1}\n  prompt: bad")


@pytest.mark.parametrize(("breaks", "message"), CASES.values(), ids=CASES.keys())
def test_bad_input_exits_2_names_the_problem_and_writes_nothing(
    write_sweep, use_store, tmp_path, breaks, message
):
    body = breaks(SWEEP.replace("@NAME@", tmp_path.name), tmp_path)
    path = write_sweep(body)
    result = subprocess.run(
        [LLMOPS, "sweep", "--no-progress", "--no-cache", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert mlflow.get_experiment_by_name(f"bad-{tmp_path.name}") is None


PREFLIGHT = (
    "unknown-llm-provider",
    "api-key-not-set",
    "judge-api-key-not-set",
    "gold-id-not-in-corpus",
    "primary-metric-not-computed",
)


@pytest.mark.parametrize("case", PREFLIGHT)
def test_the_library_refuses_before_writing_too(write_sweep, tracking_uri, tmp_path, case):
    breaks, message = CASES[case]
    path = write_sweep(breaks(SWEEP.replace("@NAME@", tmp_path.name), tmp_path))

    with pytest.raises(LlmopsError, match=re.escape(message)):
        run_sweep(path, tracking_uri=tracking_uri, cache_dir=None)
    with pytest.raises(LlmopsError, match=re.escape(message)):
        estimate_sweep(path, cache_dir=None)
    assert mlflow.get_experiment_by_name(f"bad-{tmp_path.name}") is None


def test_non_utf8_sweep_file_exits_2(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    result = subprocess.run(
        [LLMOPS, "sweep", str(path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert "sweep.yaml" in result.stderr and "UTF-8" in result.stderr
