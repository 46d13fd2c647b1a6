"""The rehearsal's HTML report in a real browser: headless Chromium parses the page, paints it,
and the test looks at the picture (size, colours of the charts, nothing blank) and at the
browser's console (nothing logged). Chromium is installed when missing where that is possible
(root on Debian: `apt-get install chromium`, timed and printed); elsewhere the tests skip with
the reason, and under CI=true they fail instead."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from emulator.rehearse import Options, rehearse
from tests.unit.test_report_html import REPR, overlaps, visible_text

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NAMES = ("chromium", "chromium-browser", "google-chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--enable-logging=stderr",  # console messages go to stderr as "...:CONSOLE:<line>] ..."
    "--v=0",
)
WINDOW = (1000, 2400)
# A console message on stderr, in Chromium's old ("CONSOLE(12)]") and new ("CONSOLE:12]") formats.
CONSOLE = re.compile(r":CONSOLE(?::\d+|\(\d+\))\] (.*)")
# Colours the page must show: the two versions (legend swatches, histograms) and ROLLED BACK's badge.
BASELINE, CANARY, ROLLED_BACK = (59, 110, 168), (217, 130, 43), (192, 57, 43)


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _find() -> str | None:
    return next((p for p in map(shutil.which, NAMES) if p), None)


def install_chromium() -> tuple[str | None, str]:
    """Debian's chromium through apt-get, when running as root on Debian: (its path or None, what
    happened, with the time it took)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None, "not running as root, so apt-get cannot install chromium"
    if not Path("/etc/debian_version").is_file() or not shutil.which("apt-get"):
        return None, "not a Debian system with apt-get"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock = ("-o", "DPkg::Lock::Timeout=300")  # wait for another apt rather than fail at once
    started = time.monotonic()
    for command in (
        ["apt-get", *lock, "update", "-qq"],
        ["apt-get", *lock, "install", "-y", "-qq", "chromium"],
    ):
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1200)
        except subprocess.TimeoutExpired:
            return None, f"`{' '.join(command)}` took more than 20 minutes"
        if done.returncode != 0:
            return None, f"`{' '.join(command)}` exited {done.returncode}: {done.stderr.strip()[-600:]}"
    path = _find()
    took = time.monotonic() - started
    if path is None:
        return None, f"apt-get installed chromium in {took:.0f} s but none of {NAMES} is on PATH"
    return path, f"installed Debian's chromium with apt-get (update + install) in {took:.0f} s"


def chromium_binary(say: Callable[[str], None]) -> str:
    """The Chromium binary, installed first if missing and possible (what happened goes to `say`);
    otherwise the test skips, or fails under CI=true."""
    path = _find()
    if path is not None:
        return path
    path, what = install_chromium()
    say(f"chromium: {what}")
    if path is not None:
        return path
    message = f"no Chromium installed and it could not be installed here: {what}"
    if _in_ci():
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def chromium(request: pytest.FixtureRequest) -> str:
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")

    def say(line: str) -> None:
        if reporter is not None and capture is not None:  # on the terminal, past output capture
            with capture.global_and_fixture_disabled():
                reporter.write_line(line)

    return chromium_binary(say)


def run_chromium(binary: str, page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """One headless run on a fresh, empty profile."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        return subprocess.run(
            [binary, *FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
        )


def console_messages(stderr: str) -> list[str]:
    return CONSOLE.findall(stderr)


def png_pixels(data: bytes) -> np.ndarray:
    """An 8-bit RGB(A) PNG's pixels, height x width x channels (Chromium's screenshots)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
    assert header is not None, "PNG without IHDR"
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and color in (2, 6) and interlace == 0, f"unexpected PNG format {header}"
    bpp = 3 if color == 2 else 4
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, 1 + width * bpp)
    out = np.zeros((height, width * bpp), dtype=np.int32)
    prev = np.zeros(width * bpp, dtype=np.int32)
    for r in range(height):
        kind, line = raw[r, 0], raw[r, 1:].astype(np.int32)
        if kind == 0:
            row = line
        elif kind == 1:  # Sub: a running sum along the row, per channel
            row = line.reshape(width, bpp).cumsum(axis=0).reshape(-1) & 255
        elif kind == 2:  # Up
            row = (line + prev) & 255
        else:  # Average and Paeth depend on the pixel just decoded: one at a time
            row = line.copy()
            for i in range(row.size):
                a = int(row[i - bpp]) if i >= bpp else 0
                b = int(prev[i])
                if kind == 3:
                    row[i] = (row[i] + (a + b) // 2) & 255
                else:
                    c = int(prev[i - bpp]) if i >= bpp else 0
                    pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                    row[i] = (row[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out[r] = row
        prev = row
    return out.reshape(height, width, bpp)[:, :, :3].astype(np.uint8)


def test_without_chromium_the_test_skips_here_and_fails_under_ci(monkeypatch):
    """No browser and no way to install one: a skip with the reason, but a failure when CI=true."""
    monkeypatch.setattr(sys.modules[__name__], "_find", lambda: None)
    monkeypatch.setattr(sys.modules[__name__], "install_chromium", lambda: (None, "no apt here"))
    said: list[str] = []
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no apt here"):
        chromium_binary(said.append)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true and no Chromium"):
        chromium_binary(said.append)
    assert said == ["chromium: no apt here"] * 2


def test_only_root_installs_chromium(monkeypatch):
    """apt-get is never run without root: the reason comes back instead."""
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert install_chromium() == (None, "not running as root, so apt-get cannot install chromium")


def test_chromium_reports_console_errors_of_a_page(chromium, tmp_path):
    """The console check can fail: a page that logs an error and throws shows both on stderr."""
    page = tmp_path / "broken.html"
    page.write_text(
        '<!DOCTYPE html><html><body><script>console.error("boom"); undefinedCall();</script></body></html>',
        encoding="utf-8",
    )
    done = run_chromium(chromium, page, "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    messages = console_messages(done.stderr)
    assert any('"boom"' in m for m in messages), done.stderr[-2000:]
    assert any("undefinedCall" in m for m in messages)


def test_png_reader_sees_a_single_colour():
    """The screenshot check can fail: a one-colour PNG reads back as exactly one colour."""
    rows = b"".join(b"\x00" + bytes((250, 250, 250)) * 4 for _ in range(3))
    chunk = b"IHDR" + struct.pack(">IIBBBBB", 4, 3, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
    idat = b"IDAT" + zlib.compress(rows)
    png += struct.pack(">I", len(idat) - 4) + idat + struct.pack(">I", zlib.crc32(idat))
    pixels = png_pixels(png)
    assert pixels.shape == (3, 4, 3) and len(np.unique(pixels.reshape(-1, 3), axis=0)) == 1


@pytest.mark.data
def test_the_html_report_renders_in_headless_chromium(dataset, chromium, tmp_path):
    """A rolled-back rehearsal's page in a real browser: the DOM holds the outcome and the three
    charts with their shapes, the console stays silent, and the screenshot is a full-size picture
    with the charts' colours in it, not a blank or one-colour page."""
    result = rehearse(Options(faults=("errors=0.05@hook",), speed=30.0, after_s=0.5))
    page = tmp_path / "report.html"
    page.write_text(result.html, encoding="utf-8")
    assert overlaps(result.html) == []  # on real data too: labels apart, plain words
    assert REPR.findall(visible_text(result.html)) == []

    dom = run_chromium(chromium, page, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "ROLLED BACK" in dom.stdout
    assert dom.stdout.count("<svg") == 3
    assert dom.stdout.count("<path") >= 2 and dom.stdout.count("<rect") >= 10
    assert console_messages(dom.stderr) == []

    shot = tmp_path / "report.png"
    painted = run_chromium(chromium, page, f"--screenshot={shot}", f"--window-size={WINDOW[0]},{WINDOW[1]}")
    assert painted.returncode == 0, painted.stderr[-2000:]
    assert console_messages(painted.stderr) == []
    pixels = png_pixels(shot.read_bytes())
    assert pixels.shape[:2] == (WINDOW[1], WINDOW[0])
    colours, counts = np.unique(pixels.reshape(-1, 3), axis=0, return_counts=True)
    assert len(colours) > 50 and counts.max() < 0.9 * counts.sum(), "a blank or near one-colour page"
    present = {tuple(int(v) for v in c) for c in colours}
    assert {BASELINE, CANARY, ROLLED_BACK} <= present, "the charts' and the badge's colours are missing"
