"""Shared fixtures: the data set (skips outside CI when missing, fails in CI) and model dirs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
EVENTS = ROOT / "events"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def dataset():
    """The split labelled data set; skipped with a reason outside CI, an error in CI."""
    from training.data import data_path, load

    path = data_path()
    if not path.is_file():
        message = f"labelled data not found at {path} (set HATE_DATA or place ../shared/data)"
        if _in_ci():
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(message)
    return load(path)


@pytest.fixture(scope="session")
def models_dir() -> Path:
    return MODELS


@pytest.fixture(scope="session")
def events_dir() -> Path:
    return EVENTS
