"""README's Python example for consumers, run as a consumer would run it: a separate Python
process with API_URL and API_KEY set, against the local stack (the real handler serving the newest
model, as README's curl examples do, behind the local gateway). What it prints must be the comment
lines README shows under it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from emulator.functions import Alias, FunctionVersion
from emulator.gateway import Gateway
from stack import load_settings
from tests.unit.test_readme import newest_model_version

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SECTION = "## Using the API (consumers)"
API_KEY = "readme-consumer-key-0123456789ab"


def python_examples(markdown: str) -> list[str]:
    """The ```python blocks of README's consumer section."""
    start = markdown.index(SECTION)
    end = markdown.find("\n## ", start + len(SECTION))
    section = markdown[start : end if end != -1 else None]
    return re.findall(r"^```python\n(.*?)^```", section, re.DOTALL | re.MULTILINE)


def documented_output(code: str) -> list[str]:
    """The '# ' comment lines that end the example: what it prints."""
    lines = code.rstrip("\n").splitlines()
    out: list[str] = []
    while lines and lines[-1].startswith("# "):
        out.insert(0, lines.pop()[2:])
    return out


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    settings = load_settings().with_key_plan(rate_limit=1_000.0, burst_limit=1_000, quota_limit=None)
    # README's examples describe the newest model (tests/unit/test_readme.py): serve that one.
    version = FunctionVersion("1", newest_model_version(), settings=settings)
    gateway = Gateway(settings, Alias("live", version), API_KEY, None)
    yield gateway.start()
    gateway.stop()


def run(code: str, api_url: str, api_key: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "API_URL": api_url, "API_KEY": api_key}
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_readme_has_one_python_example_with_its_output():
    """The consumer section keeps its Python example, ending with the lines it prints."""
    (code,) = python_examples(README.read_text(encoding="utf-8"))
    assert len(documented_output(code)) >= 2


def test_readme_python_example_prints_what_readme_shows(gateway):
    """Run against the local stack (API_URL = the single route's URL, as the stack output ApiUrl),
    the example exits 0 and prints exactly the lines README shows under it."""
    (code,) = python_examples(README.read_text(encoding="utf-8"))
    done = run(code, gateway.route_url("/infer/hate-speech"), API_KEY)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == documented_output(code)


def test_readme_python_example_reports_a_refusal(gateway):
    """With a wrong key it stops with API Gateway's status and body, not a traceback."""
    (code,) = python_examples(README.read_text(encoding="utf-8"))
    done = run(code, gateway.route_url("/infer/hate-speech"), "wrong-key-0123456789abcdef")
    assert done.returncode == 1
    assert done.stderr.strip() == '403: {"message":"Forbidden"}'
