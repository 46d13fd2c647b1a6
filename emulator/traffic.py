"""Replayed user traffic for a rehearsal: a separate process that POSTs texts to the gateway over
real HTTP with the API key, at a steady rate, until told to stop.

    python -m emulator.traffic      (started by Traffic; reads its plan as JSON on stdin)

It is its own OS process so that the client's work never competes with the gateway's for one
interpreter, as real clients never do. The requests go out through emulator.load.OpenLoop (the
one load generator, the gateway benchmark's too): an open-loop schedule (request i is due at
start + i / rate) over `threads` keep-alive connections. A 429 is retried after a short
back-off, as AWS SDKs do; anything that is not an HTTP answer (refused or reset connection,
timeout) counts as lost, which a rehearsal must never see. The process prints its counters as
a JSON line every 100 ms and a summary line at the end; a line "stop" (or end of input) on
stdin stops it, after the requests in flight are answered.

Every request sent is accounted for: sent = answered + lost + in_flight, where in_flight is
what had no outcome yet when the counters were taken (at the end: requests still unanswered
when the process stopped waiting, or, when the process died, the ones it took with it).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from canary.stats import percentiles
from emulator.load import SEND_FAILED, UNANSWERED, Answer, OpenLoop, post_requests

COUNTERS = ("sent", "answered", "lost", "in_flight", "5xx", "4xx", "throttled")
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class TrafficPlan:
    """What the traffic process sends, where, and how fast."""

    url: str  # full URL of the route, e.g. http://127.0.0.1:PORT/v1/infer/hate-speech
    api_key: str  # sent as x-api-key (never printed)
    texts: tuple[str, ...]  # replayed in this order, from the start again when exhausted
    rate: float  # requests per wall second
    threads: int = 8  # concurrent keep-alive connections (the name predates one connection a thread)
    timeout_s: float = 35.0  # per request; past API Gateway's 29 s integration timeout
    max_retries: int = 6  # retries of a 429 before the request counts as lost


# --------------------------------------------------------------------------- the child process


def run(plan: TrafficPlan, stop: threading.Event, emit: Any) -> dict[str, Any]:
    """Send until `stop` is set; emit(counters) every 100 ms; returns the summary."""
    counts: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    models: Counter[str] = Counter()
    latencies: list[float] = []
    started = time.monotonic()
    url = urlsplit(plan.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    bodies = [json.dumps({"text": text}).encode() for text in plan.texts]
    requests = post_requests(host, port, url.path, plan.api_key, bodies, agent="emulator-traffic/1")

    def answered(answer: Answer) -> None:
        status = answer.status
        counts["answered"] += 1
        counts["5xx" if status >= 500 else "4xx" if status >= 400 else "2xx"] += 1
        statuses[status] += 1
        models[answer.header(b"x-model-version") or "-"] += 1
        latencies.append(answer.service_s * 1000.0)

    def failed(kind: str) -> None:
        # Not an HTTP answer: lost. A request still unanswered when the process stops waiting
        # stays in flight (its outcome is unknown); a failed send goes out again, never lost.
        if kind not in (UNANSWERED, SEND_FAILED):
            counts["lost"] += 1

    def throttled() -> None:
        counts["throttled"] += 1

    def snapshot() -> dict[str, int]:
        return _with_in_flight({**{k: counts.get(k, 0) for k in COUNTERS}, "sent": load.sent})

    load = OpenLoop(
        host,
        port,
        requests,
        plan.rate,
        plan.threads,
        on_answer=answered,
        on_error=failed,
        on_throttled=throttled,
        on_tick=lambda: emit(snapshot()),
        max_retries=plan.max_retries,
        timeout_s=plan.timeout_s,
        grace_s=plan.timeout_s + 5,
    )
    load.run(stop=stop)
    return {
        **snapshot(),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "model_versions": dict(models),
        "round_trip_ms": _percentiles(latencies),
        "seconds": round(time.monotonic() - started, 3),
    }


_POINTS = {"p50": 0.5, "p90": 0.9, "p99": 0.99, "max": 1.0}


def _with_in_flight(counts: dict[str, int]) -> dict[str, int]:
    """The counters with in_flight derived: every request sent is answered, lost, or in flight."""
    in_flight = counts.get("sent", 0) - counts.get("answered", 0) - counts.get("lost", 0)
    return {**counts, "in_flight": in_flight}


def _percentiles(values: list[float]) -> dict[str, float | None]:
    # canary.stats' definition of a percentile; None for each when nothing was answered.
    return percentiles(values, _POINTS) or dict.fromkeys(_POINTS)


def _child() -> int:
    # Ctrl-C in a terminal reaches the whole process group; the parent decides when to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    plan_data = json.loads(sys.stdin.readline())
    plan = TrafficPlan(**{**plan_data, "texts": tuple(plan_data["texts"])})
    stop = threading.Event()
    out_lock = threading.Lock()

    def emit(payload: dict[str, Any]) -> None:
        with out_lock:
            sys.stdout.write(json.dumps(payload) + "\n")
            sys.stdout.flush()

    def watch_stdin() -> None:
        for line in sys.stdin:
            if line.strip() == "stop":
                break
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    summary = run(plan, stop, emit)
    emit({"summary": summary})
    return 0


# --------------------------------------------------------------------------- the parent's handle


class Traffic:
    """The traffic process: start(), counts() while it runs, stop() -> its summary."""

    def __init__(self, plan: TrafficPlan) -> None:
        if not plan.texts:
            raise ValueError("no texts to replay")
        if not plan.rate > 0:
            raise ValueError(f"rate must be positive, got {plan.rate}")
        self.plan = plan
        self.summary: dict[str, Any] | None = None
        self._latest: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self._final: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self.died: str | None = None  # how the process ended on its own, e.g. "killed by SIGKILL"

    @property
    def rate(self) -> float:
        """Requests planned per wall second."""
        return self.plan.rate

    def outcomes(self) -> int:
        """Requests answered or lost so far (as last reported, at most ~100 ms ago)."""
        counts = self.counts()
        return counts.get("answered", 0) + counts.get("lost", 0)

    def failure(self) -> str | None:
        """How the traffic process ended before it was told to stop, None while it runs (or was
        stopped): a rehearsal must not judge a canary on traffic that is no longer flowing."""
        proc = self._proc
        if self.died is None and proc is not None:
            code = proc.poll()
            if code is not None:
                self.died = _how(code)
        return None if self.died is None else f"died ({self.died})"

    def start(self) -> Traffic:
        self._proc = proc = subprocess.Popen(
            [sys.executable, "-m", "emulator.traffic"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps({**asdict(self.plan), "texts": list(self.plan.texts)}) + "\n")
        proc.stdin.flush()
        self._reader = threading.Thread(
            target=self._read, args=(proc.stdout,), name="traffic-reader", daemon=True
        )
        self._reader.start()
        return self

    def _read(self, stdout: IO[str]) -> None:
        for line in stdout:
            try:
                data = json.loads(line)
            except ValueError:
                continue
            with self._lock:
                if "summary" in data:
                    self._final = data["summary"]
                else:
                    self._latest = data

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._latest)

    def wait_for(self, answered: int, timeout_s: float) -> bool:
        """Block until at least `answered` requests were answered (False on timeout or exit)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.counts().get("answered", 0) >= answered:
                return True
            if self._proc is None or self._proc.poll() is not None:
                return False
            time.sleep(0.05)
        return False

    def stop(self, timeout_s: float = 60.0) -> dict[str, Any]:
        """Stop sending, let the requests in flight be answered, and return the summary."""
        proc = self._proc
        if proc is None:
            return self.summary or {}
        self.failure()  # a process that died before being told to stop is said so
        self._proc = None  # told to stop: how it ends from now on is no failure
        try:
            assert proc.stdin is not None
            proc.stdin.write("stop\n")
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=5.0)
        with self._lock:
            final = self._final
        if final is None:
            self.died = self.died or _how(proc.returncode)
            counts = _with_in_flight(self.counts())
            final = {
                **counts,
                "error": f"the traffic process {self.died} before its summary: these are its last "
                f"counters; {counts['in_flight']} requests it had sent have no known outcome",
            }
        self.summary = {**final, "rate": self.plan.rate, "threads": self.plan.threads, "died": self.died}
        return self.summary


def _how(code: int | None) -> str:
    """A process's end in words: "killed by SIGKILL", "exited with status 1"."""
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


if __name__ == "__main__":
    sys.exit(_child())
