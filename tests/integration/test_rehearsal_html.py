"""The rehearsal's HTML report renders in a real browser: headless Chromium parses it, builds the
three charts and paints a screenshot. Skipped where no Chromium is installed (Debian:
`apt-get install chromium`)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from emulator.rehearse import Options, rehearse

pytestmark = [pytest.mark.integration, pytest.mark.data, pytest.mark.slow]

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        return subprocess.run(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=60,
        )


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (apt-get install chromium)")
def test_the_html_report_renders_in_headless_chromium(dataset, tmp_path):
    """A rolled-back rehearsal's page: Chromium's DOM holds the outcome and the three charts with
    their drawn shapes, and the screenshot is a real picture (a PNG of several KB)."""
    result = rehearse(Options(faults=("errors=0.05@300",), speed=30.0, after_s=0.5))
    page = tmp_path / "report.html"
    page.write_text(result.html, encoding="utf-8")

    dom = _chromium("--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "ROLLED BACK" in dom.stdout
    assert dom.stdout.count("<svg") == 3
    assert dom.stdout.count("<path") >= 2 and dom.stdout.count("<rect") >= 10

    shot = tmp_path / "report.png"
    painted = _chromium(f"--screenshot={shot}", "--window-size=1000,2400", page.as_uri())
    assert painted.returncode == 0, painted.stderr[-2000:]
    data = Path(shot).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000
