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
        pytest.param(" \n", r"bad\.txt is empty; write the prompt", id="empty"),
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


@pytest.mark.parametrize(
    "name",
    [pytest.param("folder", id="by-name"), pytest.param("FOLDER/folder.txt", id="by-path")],
)
def test_a_folder_named_like_a_template_is_refused_as_a_folder(tmp_path, name):
    (tmp_path / "folder.txt").mkdir()
    with pytest.raises(ConfigError, match=r"folder\.txt is a folder; name a text file"):
        load_template(name.replace("FOLDER", str(tmp_path)), tmp_path)


def test_a_missing_template_lists_only_files(tmp_path):
    (tmp_path / "folder.txt").mkdir()
    (tmp_path / "mine.txt").write_text("{question} {context}", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"templates in .*: mine$"):
        load_template("nosuch", tmp_path)


def test_a_non_utf8_template_names_the_byte(tmp_path):
    (tmp_path / "latin.txt").write_bytes("caf\xe9 {question} {context}".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin\.txt is not UTF-8 text \(byte 3: .*re-save"):
        load_template("latin", tmp_path)


def test_a_utf8_bom_is_not_part_of_the_template(tmp_path):
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbfQ: {question}\nC: {context}")
    assert load_template("bom", tmp_path)[1] == "Q: {question}\nC: {context}"
