"""`python -m emulator serve` as a new user runs it: it starts, prints where and with which key,
answers over HTTP, and stops cleanly on Ctrl-C or SIGTERM, taking its workers with it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BODY = json.dumps({"text": "good luck at the interview tomorrow"})


class Served:
    """A running `python -m emulator serve` and what it printed at start."""

    def __init__(self, args: list[str], tmp_path: Path, env: dict[str, str] | None = None) -> None:
        command = [sys.executable, "-m", "emulator", "serve", "--port", "0"]
        command += ["--records", str(tmp_path / "records.sqlite"), "--logs", str(tmp_path / "logs"), *args]
        clean = {k: v for k, v in os.environ.items() if k != "HATE_API_KEY"}
        self.proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**clean, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.banner = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.banner += line
            if line.startswith("Ctrl-C"):
                break
        match = re.search(r"POST (http://127\.0\.0\.1:\d+/v1/infer/hate-speech)", self.banner)
        assert match, self.banner
        self.url = match.group(1)
        self.workers = [
            int(p) for p in Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        ]

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        self.proc.send_signal(sig)
        try:
            out, _ = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
            raise
        return self.proc.returncode, out


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as fh:  # a zombie awaiting its parent counts as gone
        return fh.read().rsplit(")", 1)[1].split()[0] == "Z"


def test_serve_generates_and_prints_a_key_answers_and_stops_on_sigterm(tmp_path):
    """Without --api-key or HATE_API_KEY a key is generated and printed; it works; SIGTERM stops
    the gateway and its worker, says what was answered, and exits 0. The function's log holds
    the Lambda runtime's lines and neither the text nor the key."""
    served = Served([], tmp_path)
    key = re.search(r"API key \(generated.*\): (\S+)", served.banner).group(1)
    assert len(key) >= 20
    r = requests.post(served.url, data=BODY, headers={"x-api-key": key}, timeout=15)
    assert r.status_code == 200 and r.headers["X-Model-Version"] == "v1"  # the template's ModelVersion
    assert requests.post(served.url, data=BODY, timeout=15).status_code == 403
    code, out = served.stop(signal.SIGTERM)
    assert code == 0
    assert "stopped: 2 requests answered (200: 1, 403: 1); 1 records written" in out
    assert served.workers and all(_gone(pid) for pid in served.workers)
    log = (tmp_path / "logs" / "hate-speech-prod-infer-1.log").read_text()
    assert "REPORT RequestId:" in log and '"message":"inference"' in log
    assert "interview" not in log and key not in log


def test_serve_takes_the_key_from_the_environment_and_never_prints_it(tmp_path):
    """HATE_API_KEY is used and not echoed; Ctrl-C (SIGINT) stops it cleanly."""
    key = "env-given-key-0123456789abcdef"
    served = Served([], tmp_path, env={"HATE_API_KEY": key})
    assert key not in served.banner
    assert requests.post(served.url, data=BODY, headers={"x-api-key": key}, timeout=15).status_code == 200
    code, out = served.stop(signal.SIGINT)
    assert code == 0 and key not in out
    assert "Traceback" not in out


def test_serve_splits_traffic_between_baseline_and_canary(tmp_path):
    """--baseline v1 --canary v2 --weight 100%: every answer from v2; --api-key is used."""
    key = "flag-given-key-0123456789abcdef"
    served = Served(["--baseline", "v1", "--canary", "v2", "--weight", "100%", "--api-key", key], tmp_path)
    try:
        models = {
            requests.post(served.url, data=BODY, headers={"x-api-key": key}, timeout=15).headers[
                "X-Model-Version"
            ]
            for _ in range(5)
        }
        assert models == {"v2"}
        assert len(served.workers) == 2
    finally:
        code, _ = served.stop()
    assert code == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "v9"], "not one of v1, v2"),
        (["--weight", "2"], "not between 0 and 1"),
        (["--model", "v1", "--canary", "v2", "--weight", "0.1"], "either --model or"),
        (["--baseline", "v1", "--weight", "0.1"], "needs both --baseline and --canary"),
        (["--api-key", "short"], "20 to 128 characters"),
        (["--baseline", "v1", "--canary", "v2", "--weight", "0.1", "--fault", "bogus"], "unknown fault"),
        (["--env", "nowhere"], "no environment [nowhere"),
        (["--port", "70000"], "not a port number"),
    ],
)
def test_serve_refuses_bad_flags_with_status_2(args, message, tmp_path):
    """A usage error says what is wrong and exits 2 without starting anything."""
    done = subprocess.run(
        [sys.executable, "-m", "emulator", "serve", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert message in done.stderr


def test_no_subcommand_prints_usage_with_status_2():
    """python -m emulator alone shows the commands and exits 2."""
    done = subprocess.run(
        [sys.executable, "-m", "emulator"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "serve" in done.stderr and "rehearse" in done.stderr
