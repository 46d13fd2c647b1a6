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


def test_no_tracing_sdk_is_shipped():
    """Powertools without its tracer extra and no aws-xray-sdk: importing the SDK (and botocore's
    session with it) was most of the cold start's import time, for a subsegment active tracing
    records anyway (issue 11; tests/unit/test_cold_import.py checks the import itself)."""
    lines = requirement_lines()
    assert any(line.startswith("aws-lambda-powertools==") for line in lines)
    assert not any("[tracer]" in line or line.startswith(("aws-xray-sdk", "wrapt")) for line in lines)


def test_venv_runs_the_pinned_versions():
    """The unit tests exercise the versions the Lambda ships."""
    for line in requirement_lines():
        match = PIN.fullmatch(line)
        assert version(match["name"]) == match["version"], line
