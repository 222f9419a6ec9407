"""The packaging files agree with each other, and the README's commands exist."""

from __future__ import annotations

import re
import tomllib

import yaml

from .conftest import REPO


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def test_conda_env_pins_the_same_dependencies_as_pyproject():
    conda = yaml.safe_load((REPO / "conda.yaml").read_text(encoding="utf-8"))
    pip = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    assert "python=3.11" in conda["dependencies"]
    assert [p for p in pip if p != "-e ."] == _pyproject()["project"]["dependencies"]


def test_every_dependency_is_pinned_and_in_the_lock_file():
    lock = {
        re.split("==", line)[0].lower().replace("_", "-"): line.split("==")[1]
        for line in (REPO / "requirements.lock").read_text(encoding="utf-8").splitlines()
        if "==" in line
    }
    project = _pyproject()["project"]
    for spec in project["dependencies"] + project["optional-dependencies"]["test"]:
        name, version = spec.split("==")
        assert lock[name.lower().replace("_", "-")] == version, spec


def test_mlproject_entry_points_call_the_cli():
    project = yaml.safe_load((REPO / "MLproject").read_text(encoding="utf-8"))
    assert project["conda_env"] == "conda.yaml"
    assert project["entry_points"]["sweep"]["command"].startswith("llmops sweep")


def test_readme_set_up_commands_are_the_scripts_ci_runs():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    for script in ("scripts/quickstart.sh", "scripts/test.sh"):
        assert f"./{script}" in readme
        assert (REPO / script).is_file()
        assert script in ci
