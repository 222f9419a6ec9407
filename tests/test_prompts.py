"""Prompt templates: only {question} and {context}, checked before any model call."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmops_mlflow.errors import ConfigError
from llmops_mlflow.prompts import PromptTemplate, load_template, validate

from .conftest import REPO


def test_render_substitutes_both_variables():
    template = PromptTemplate(Path("t.txt"), "Q: {question}\nC: {context}\n{{literal}}")
    assert template.render(question="why?", context="because") == "Q: why?\nC: because\n{literal}"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        pytest.param("{question}", r"missing variable\(s\) \['context'\]", id="missing-context"),
        pytest.param("{context}", r"missing variable\(s\) \['question'\]", id="missing-question"),
        pytest.param(
            "{question} {context} {style}", r"unknown variable\(s\) \['style'\]", id="extra"
        ),
        pytest.param(
            "{question.__class__} {context}",
            r"\{question.__class__\} is not allowed",
            id="attribute",
        ),
        pytest.param("{question[0]} {context}", r"is not allowed", id="index"),
        pytest.param("{} {question} {context}", r"\{\} is not allowed", id="positional"),
        pytest.param("{0} {question} {context}", r"\{0\} is not allowed", id="numbered"),
        pytest.param("{question:>10} {context}", r"format spec or conversion", id="format-spec"),
        pytest.param("{question!r} {context}", r"format spec or conversion", id="conversion"),
        pytest.param("{question} {context", r"Single '\{'|expected '\}'", id="unbalanced"),
    ],
)
def test_bad_templates_fail_loudly(text, match):
    with pytest.raises(ConfigError, match=match):
        validate(text, Path("bad.txt"))


def test_templates_are_found_by_name_and_by_path(tmp_path):
    (tmp_path / "mine.txt").write_text("{question} {context}", encoding="utf-8")
    by_name = load_template("mine", tmp_path)
    by_path = load_template(str(tmp_path / "mine.txt"), Path("elsewhere"))
    assert by_name == by_path == (tmp_path / "mine.txt", "{question} {context}")


@pytest.mark.parametrize("name", ["concise", "cite"])
def test_project_templates_are_valid(name):
    path, text = load_template(name, REPO / "experiments" / "prompts")
    assert path.name == f"{name}.txt"
    assert "{context}" in text
