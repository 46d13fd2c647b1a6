"""`python -m emulator serve` (and `make serve`) as a new user runs it: it starts, prints where,
which model and with which key, answers over HTTP, and stops cleanly on Ctrl-C or SIGTERM,
taking its workers with it; it refuses to start when it could only answer 502, or when another
serve uses its files; a 502 leaves a trace."""

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

from emulator.serve import newest_model
from tests.usermake import run_make, user_env

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BODY = json.dumps({"text": "good luck at the interview tomorrow"})
KEY = "cli-test-key-0123456789abcdef"


def serve_command(tmp_path: Path, *args: str) -> list[str]:
    """python -m emulator serve on a free port, with records and logs under tmp_path."""
    command = [sys.executable, "-m", "emulator", "serve", "--port", "0"]
    return command + ["--records", str(tmp_path / "records.sqlite"), "--logs", str(tmp_path / "logs"), *args]


class Served:
    """A running `python -m emulator serve` and what it printed at start."""

    def __init__(
        self,
        args: list[str],
        tmp_path: Path,
        env: dict[str, str] | None = None,
        command: list[str] | None = None,
    ) -> None:
        clean = user_env({k: v for k, v in os.environ.items() if k != "HATE_API_KEY"})
        self.proc = subprocess.Popen(
            command or serve_command(tmp_path, *args),
            cwd=ROOT,
            env={**clean, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group, as a terminal's foreground job
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

    def stop(self, sig: int = signal.SIGTERM, group: bool = False) -> tuple[int, str]:
        """Send sig (to the whole process group with group=True, as Ctrl-C in a terminal does)."""
        if group:
            os.killpg(self.proc.pid, sig)
        else:
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
    the gateway and its worker, says what was answered, and exits 0. The function's log is named
    after the stack served (hate-speech-local, not prod) and holds the Lambda runtime's lines and
    neither the text nor the key."""
    served = Served([], tmp_path)
    key = re.search(r"API key \(generated.*\): (\S+)", served.banner).group(1)
    assert len(key) >= 20
    r = requests.post(served.url, data=BODY, headers={"x-api-key": key}, timeout=15)
    assert r.status_code == 200
    assert requests.post(served.url, data=BODY, timeout=15).status_code == 403
    code, out = served.stop(signal.SIGTERM)
    assert code == 0
    assert "stopped: 2 requests answered (200: 1, 403: 1); 1 records written" in out
    assert served.workers and all(_gone(pid) for pid in served.workers)
    assert sorted(p.name for p in (tmp_path / "logs").glob("*.log")) == ["hate-speech-local-infer-1.log"]
    log = (tmp_path / "logs" / "hate-speech-local-infer-1.log").read_text()
    assert "REPORT RequestId:" in log and '"message":"inference"' in log
    assert "interview" not in log and key not in log


def test_serve_defaults_to_the_newest_model_and_says_what_the_url_means(tmp_path):
    """No --model: the newest trained model (v3) is served, not the template's default (v1), and
    the banner says so, names the model of version 1 and explains that /v1/ in the URL is the API
    stage; --model v1 serves v1 and the banner says it was asked for."""
    newest = Served([], tmp_path / "a", env={"HATE_API_KEY": KEY})
    try:
        assert re.search(r"model v3 on version 1 \(init \d+ ms\): the newest in models/", newest.banner)
        assert "the template's ModelVersion is v1" in newest.banner
        assert "/v1/ in the URL is the API stage, not the model version" in newest.banner
        r = requests.post(newest.url, data=BODY, headers={"x-api-key": KEY}, timeout=15)
        assert (r.status_code, r.headers["X-Model-Version"]) == (200, "v3")
    finally:
        newest.stop()
    asked = Served(["--model", "v1"], tmp_path / "b", env={"HATE_API_KEY": KEY})
    try:
        assert re.search(r"model v1 on version 1 \(init \d+ ms\): --model", asked.banner)
        r = requests.post(asked.url, data=BODY, headers={"x-api-key": KEY}, timeout=15)
        assert r.headers["X-Model-Version"] == "v1"
    finally:
        asked.stop()


def test_newest_model_is_the_highest_trained_version_the_template_allows(tmp_path):
    """v10 is newer than v9 and v2 (by number, not by text); a version the template does not
    allow, or one without a manifest (not trained), is never picked; nothing trained -> None."""
    for version in ("v1", "v2", "v9", "v10", "v11"):
        if version != "v11":
            (tmp_path / version).mkdir()
            (tmp_path / version / "manifest.json").write_text("{}")
    assert newest_model(("v1", "v2", "v9", "v10"), tmp_path) == "v10"
    assert newest_model(("v1", "v2", "v9", "v10", "v11"), tmp_path) == "v10"  # v11 is not trained
    assert newest_model(("v1", "v2"), tmp_path) == "v2"
    assert newest_model(("v3",), tmp_path) is None


def test_a_python_without_the_functions_dependencies_fails_serve_at_start(tmp_path):
    """An interpreter where aws_lambda_powertools cannot be imported (a PYTHONPATH shim stands in
    for a python3 outside .venv): serve does not start, say the model loaded and answer 502; it
    exits 1 with one line naming the missing module and the fix, before listening."""
    shim = tmp_path / "shim" / "aws_lambda_powertools"
    shim.mkdir(parents=True)
    name = "aws_lambda_powertools"
    (shim / "__init__.py").write_text(
        f'raise ModuleNotFoundError("No module named {name!r}", name={name!r})\n'
    )
    done = subprocess.run(
        serve_command(tmp_path, "--api-key", KEY),
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(shim.parent)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stdout == "", "nothing may look started"
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "has no module 'aws_lambda_powertools'" in lines[0]
    assert "make serve" in lines[0] and ".venv/bin/python -m emulator serve" in lines[0]
    log = (tmp_path / "logs" / "hate-speech-local-infer-1.log").read_text()
    assert "Runtime.ImportModuleError" in log  # the details stay in the function's log


def test_rehearse_in_a_python_without_the_projects_packages_says_so_in_one_line(tmp_path):
    """`python -m emulator rehearse` where the command itself cannot import Powertools (the same
    shim): one line naming the module and the fix, exit 2, no traceback."""
    shim = tmp_path / "shim" / "aws_lambda_powertools"
    shim.mkdir(parents=True)
    name = "aws_lambda_powertools"
    (shim / "__init__.py").write_text(
        f'raise ModuleNotFoundError("No module named {name!r}", name={name!r})\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "emulator", "rehearse", "--no-html"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(shim.parent)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "has no module 'aws_lambda_powertools'" in done.stderr and "make demo" in done.stderr


def test_a_second_serve_on_the_same_records_and_logs_is_refused(tmp_path):
    """Two serves must not interleave one record store and one logs folder: the second exits 2
    naming the first (pid and URL) and how to run both; the first keeps serving."""
    first = Served([], tmp_path, env={"HATE_API_KEY": KEY})
    try:
        done = subprocess.run(
            serve_command(tmp_path, "--api-key", KEY), cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 2
        assert (
            f"in use by another `serve` (pid {first.proc.pid}, {first.url.split('/infer')[0]})" in done.stderr
        )
        assert "--records and --logs" in done.stderr
        assert requests.post(first.url, data=BODY, headers={"x-api-key": KEY}, timeout=15).status_code == 200
        other = tmp_path / "other"
        second = Served([], other, env={"HATE_API_KEY": KEY})  # paths of its own: allowed
        second.stop()
    finally:
        code, _ = first.stop()
    assert code == 0


def test_a_502_leaves_a_trace_on_the_console_and_in_the_function_log(tmp_path):
    """A canary that crashes every invocation (errors=1): the client gets 502 with an
    x-amzn-RequestId; serve prints one line with that id, the version and the cause, and the
    canary's log holds the error under Lambda's RequestId; neither shows the text or the key."""
    served = Served(
        ["--baseline", "v1", "--canary", "v2", "--weight", "100%", "--fault", "errors=1"],
        tmp_path,
        env={"HATE_API_KEY": KEY},
    )
    r = requests.post(served.url, data=BODY, headers={"x-api-key": KEY}, timeout=15)
    assert r.status_code == 502
    _, out = served.stop()
    request_id = r.headers["x-amzn-RequestId"]
    line = next(line for line in out.splitlines() if request_id in line)
    assert line.startswith(f"gateway: 502 for request {request_id} from function version 2 (v2)")
    assert "InjectedCrash raised by the handler" in line
    lambda_id = re.search(r"Lambda RequestId (\S+?):", line).group(1)
    log = (tmp_path / "logs" / "hate-speech-local-infer-2.log").read_text()
    assert any(lambda_id in entry and "[ERROR]" in entry for entry in log.splitlines())
    for text in (out, log):
        assert "interview" not in text and KEY not in text


def test_serve_leaves_no_scratch_folder_behind(tmp_path):
    """The corrupt fault's damaged model copy lives in a scratch folder under TMPDIR while the
    canary runs; after serve stops, TMPDIR holds nothing of it (nor of any other run)."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    served = Served(
        ["--baseline", "v1", "--canary", "v2", "--weight", "100%", "--fault", "corrupt"],
        tmp_path,
        env={"HATE_API_KEY": KEY, "TMPDIR": str(scratch)},
    )
    r = requests.post(served.url, data=BODY, headers={"x-api-key": KEY}, timeout=15)
    assert r.status_code == 500  # the canary's own answer: its model failed its checksum
    assert any(scratch.iterdir()), "the corrupt copy should exist while serving"
    code, _ = served.stop()
    assert code == 0
    assert list(scratch.iterdir()) == []


def test_make_serve_runs_the_local_stack_and_stops_on_ctrl_c(tmp_path):
    """`make serve MODEL=v1 PORT=0 ARGS=...` serves v1 on a free port and Ctrl-C (SIGINT to the
    process group, as a terminal sends it) stops it cleanly; plain `make serve` leaves the model
    to serve (the newest) and uses port 3000."""
    dry = run_make("-n", "serve")
    assert dry.stdout.strip().endswith("-m emulator serve --port 3000"), dry.stdout
    paths = f"ARGS=--records {tmp_path / 'records.sqlite'} --logs {tmp_path / 'logs'}"
    command = ["make", "--no-print-directory", "serve", "MODEL=v1", "PORT=0", paths]
    served = Served([], tmp_path, env={"HATE_API_KEY": KEY}, command=command)
    r = requests.post(served.url, data=BODY, headers={"x-api-key": KEY}, timeout=15)
    assert (r.status_code, r.headers["X-Model-Version"]) == (200, "v1")
    _, out = served.stop(signal.SIGINT, group=True)
    assert "stopped: 1 requests answered (200: 1); 1 records written" in out
    assert (tmp_path / "logs" / "hate-speech-local-infer-1.log").is_file()


def test_serve_without_quota_says_so_for_the_key_s_plan(tmp_path):
    """--no-quota: the banner gives the stack key's plan with its throttles (the batch method's
    included) and no quota; a request passes."""
    served = Served(["--no-quota"], tmp_path, env={"HATE_API_KEY": "no-quota-key-0123456789abcdef"})
    try:
        line = next(x for x in served.banner.splitlines() if "usage plan of this key" in x)
        assert line.strip() == (
            "usage plan of this key: standard: throttle 50 req/s, burst 100; "
            "/infer/hate-speech/batch/POST 10 req/s, burst 20; quota none"
        )
        headers = {"x-api-key": "no-quota-key-0123456789abcdef"}
        assert requests.post(served.url, data=BODY, headers=headers, timeout=15).status_code == 200
    finally:
        served.stop()


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
