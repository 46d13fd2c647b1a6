"""infer/requirements.txt: the Lambda's runtime dependencies, pinned and in step with the venv."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"(?P<name>[A-Za-z0-9_.-]+)(?:\[[a-z,]+\])?==(?P<version>[A-Za-z0-9_.+-]+)")


def requirement_lines() -> list[str]:
    lines = (ROOT / "infer" / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_every_requirement_is_pinned_exactly():
    """Each line is name[extra]==version: the package is the same on every build."""
    for line in requirement_lines():
        assert PIN.fullmatch(line), line


def test_pyproject_runtime_dependencies_are_in_requirements():
    """pyproject.toml's runtime dependencies appear verbatim in infer/requirements.txt."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert set(project["dependencies"]) <= set(requirement_lines())


def test_tracer_extra_and_xray_sdk_are_required():
    """The Tracer needs aws-xray-sdk: the extra is requested and the SDK pinned."""
    lines = requirement_lines()
    assert any(line.startswith("aws-lambda-powertools[tracer]==") for line in lines)
    assert any(line.startswith("aws-xray-sdk==") for line in lines)


def test_venv_runs_the_pinned_versions():
    """The unit tests exercise the versions the Lambda ships."""
    for line in requirement_lines():
        match = PIN.fullmatch(line)
        assert version(match["name"]) == match["version"], line
