"""The local gateway under the usage plan's rate: 1,000 req/s for 30 s from a separate process.

    python -m bench.gateway_load [--rate 1000] [--duration 30] [--connections 32] [--env prod]
                                 [--model v2] [--warmup 3] [--json]

It starts `python -m emulator serve` as its own process, with the settings of samconfig
environment --env (prod: the template's RateLimit 1,000 and BurstLimit 1,000) and without
the quota (10,000 a month would end the run after 10 s), one live version (--model) running
the real handler in its own process, and the record store on; then this process drives it
over loopback HTTP/1.1 with keep-alive connections and pre-encoded requests (emulator.load,
the rehearsal traffic's generator too), open loop:
request i is due at start + i / rate whether or not earlier ones have been answered, so a
slow gateway shows up as latency instead of as a lower offered rate. Latency is measured
from the due time (waiting for a free connection counts) and, separately, from the send.

Reported: offered and achieved rate, p50 / p90 / p99 / max latency, errors by kind, the
records the gateway wrote, and the CPU seconds of the load generator and of the gateway with
its function process (the machine has two cores; all three share them). Benchmarks measure;
they do not assert. Bounded: at most rate x duration requests, then 15 s for the last answers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from canary.stats import percentiles
from emulator.load import UNANSWERED, Answer, OpenLoop, post_requests

ROOT = Path(__file__).resolve().parent.parent
ROUTE = "/v1/infer/hate-speech"
TARGET_P99_MS = 25.0
# Short texts of the kind the API sees (tweet-sized); nothing here is hateful.
TEXTS = (
    "Have a wonderful day, see you at the game tonight!",
    "this traffic is so damn annoying, every single morning",
    "I can't believe they cancelled the show after one season",
    "you are such an idiot sometimes lol",
    "Great thread, thanks for sharing the data behind it",
    "shut up and let the man finish his sentence",
    "The new cafe on 5th street makes the best coffee in town",
    "ugh my phone died again, worst battery ever",
    "Congrats to the whole team on the promotion!",
    "stop whining about the weather, it is just rain",
    "what a stupid referee call, we were robbed",
    "Reading a good book by the fire tonight",
    "that movie was trash, two hours I will never get back",
    "Happy birthday grandma, love you to the moon",
    "who even thought this was a good idea, seriously",
    "Looking forward to the long weekend with family",
)


@dataclass
class Result:
    """One run's numbers."""

    offered_rate: float
    duration_s: float
    connections: int
    sent: int = 0
    answered: int = 0
    achieved_rate: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)  # from the due time
    service_ms: dict[str, float] = field(default_factory=dict)  # from the send
    late_sends: int = 0  # requests sent > 1 ms after their due time (no free connection / busy loop)
    cpu_s: dict[str, float] = field(default_factory=dict)
    records_written: int | None = None
    server_exit: int | None = None
    settings: dict[str, object] = field(default_factory=dict)
    load_average_before: float | None = None  # the machine's 1-minute load before the run (others' work)


# Seconds in, milliseconds out, as canary.stats defines a percentile (the judge's and alarms' p99).
_POINTS = {"p50": 0.50, "p90": 0.90, "p99": 0.99, "p999": 0.999, "max": 1.0}


def _percentiles(values: list[float]) -> dict[str, float]:
    return percentiles(values, _POINTS, scale=1000.0)


def drive(host: str, port: int, api_key: str, rate: float, duration_s: float, connections: int) -> Result:
    """Open-loop load at `rate` for `duration_s` over `connections` keep-alive connections."""
    result = Result(offered_rate=rate, duration_s=duration_s, connections=connections)
    statuses: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    latencies: list[float] = []
    services: list[float] = []

    def answered(answer: Answer) -> None:
        status = str(answer.status)
        statuses[status] += 1
        if status != "200":
            errors[f"HTTP {status}"] += 1
        latencies.append(answer.latency_s)
        services.append(answer.service_s)

    def failed(kind: str) -> None:
        errors["no answer within 15 s" if kind == UNANSWERED else kind] += 1

    bodies = [json.dumps({"text": text}).encode() for text in TEXTS]
    load = OpenLoop(
        host,
        port,
        post_requests(host, port, ROUTE, api_key, bodies, agent="bench-gateway-load/1"),
        rate,
        connections,
        on_answer=answered,
        on_error=failed,
        tick_s=0.05,
        grace_s=15.0,
    )
    load.run(total=int(rate * duration_s))
    result.sent = load.sent
    result.late_sends = load.late_sends
    result.answered = len(latencies)
    result.achieved_rate = round(len(latencies) / max(1e-9, load.last_answer - load.start), 1)
    result.statuses = dict(statuses)
    result.errors = dict(errors)
    result.latency_ms = _percentiles(latencies)
    result.service_ms = _percentiles(services)
    return result


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its descendants (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        child, parent = int(entry), int(fields[1])
        children.setdefault(parent, []).append(child)
        times[child] = (int(fields[11]) + int(fields[12])) / tick
    total, stack = 0.0, [pid]
    while stack:
        current = stack.pop()
        total += times.get(current, 0.0)
        stack.extend(children.get(current, []))
    return total


def wait_ready(server: subprocess.Popen, timeout_s: float = 60.0) -> str:
    """Read the local stack's banner until its "Ctrl-C" line (ready); the banner read so far.
    RuntimeError if it exits first or is not ready in time."""
    deadline = time.monotonic() + timeout_s
    banner: list[str] = []
    while time.monotonic() < deadline:
        line = server.stdout.readline() if server.stdout else ""
        if not line:
            raise RuntimeError("the gateway exited before it was ready:\n" + "".join(banner))
        banner.append(line)
        if line.startswith("Ctrl-C"):
            return "".join(banner)
    raise RuntimeError(f"the gateway was not ready within {timeout_s:.0f} s")


def stop_server(server: subprocess.Popen) -> None:
    """SIGTERM the local stack (it flushes its records), then kill it if it hangs for 30 s."""
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args: argparse.Namespace) -> Result:
    load_before = os.getloadavg()[0]
    api_key = "bench-" + os.urandom(16).hex()
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        records = Path(tmp) / "records.sqlite"
        command = [
            sys.executable,
            "-m",
            "emulator",
            "serve",
            "--port",
            str(port),
            "--env",
            args.env,
            "--model",
            args.model,
            "--no-quota",
            "--records",
            str(records),
            "--logs",
            str(Path(tmp) / "logs"),
        ]
        env = {**os.environ, "HATE_API_KEY": api_key}
        server = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        try:
            print(wait_ready(server), end="", file=sys.stderr)
            if args.warmup > 0:
                drive("127.0.0.1", port, api_key, args.rate, args.warmup, args.connections)
                time.sleep(1.5)  # the token bucket refills (burst / rate seconds)
            cpu_server0, cpu_self0 = _cpu_seconds(server.pid), time.process_time()
            result = drive("127.0.0.1", port, api_key, args.rate, args.duration, args.connections)
            result.cpu_s = {
                "load_generator": round(time.process_time() - cpu_self0, 2),
                "gateway_and_function": round(_cpu_seconds(server.pid) - cpu_server0, 2),
            }
        finally:
            stop_server(server)
            tail = server.stdout.read() if server.stdout else ""
            if tail.strip():
                print(tail.strip(), file=sys.stderr)
        result.server_exit = server.returncode
        with sqlite3.connect(records) as db:
            result.records_written = int(db.execute("SELECT COUNT(*) FROM records").fetchone()[0])
    result.settings = {
        "env": args.env,
        "model": args.model,
        "quota": "off",
        "python": platform.python_version(),
    }
    result.load_average_before = round(load_before, 2)
    return result


def render(r: Result) -> str:
    lat, svc = r.latency_ms, r.service_ms
    errors = sum(r.errors.values())
    verdict = "met" if lat and lat["p99"] <= TARGET_P99_MS and errors == 0 else "NOT met"
    rows = [
        ("offered rate", f"{r.offered_rate:g} req/s for {r.duration_s:g} s ({r.connections} connections)"),
        ("achieved rate", f"{r.achieved_rate:g} req/s ({r.answered} answered of {r.sent} sent)"),
        ("latency from due time", _ms_row(lat)),
        ("latency from send", _ms_row(svc)),
        (
            "errors",
            f"{errors}" + (f" ({', '.join(f'{k}: {v}' for k, v in r.errors.items())})" if errors else ""),
        ),
        ("statuses", ", ".join(f"{k}: {v}" for k, v in sorted(r.statuses.items()))),
        ("late sends (> 1 ms)", str(r.late_sends)),
        ("records written", f"{r.records_written}"),
        (
            "CPU seconds",
            ", ".join(f"{k} {v}" for k, v in r.cpu_s.items()) + f" (over {r.duration_s:g} s, 2 cores)",
        ),
        ("machine", f"{os.cpu_count()} CPUs, 1-min load average {r.load_average_before} before the run"),
        ("target", f"p99 <= {TARGET_P99_MS:g} ms with no errors: {verdict}"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _ms_row(p: dict[str, float]) -> str:
    if not p:
        return "-"
    return (
        f"p50 {p['p50']:.2f} ms, p90 {p['p90']:.2f}, p99 {p['p99']:.2f}, "
        f"p99.9 {p['p999']:.2f}, max {p['max']:.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway_load", description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="requests per second (default 1000)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds measured (default 30)")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections (default 16)")
    parser.add_argument(
        "--warmup", type=float, default=3.0, help="seconds of unmeasured load first (default 3)"
    )
    parser.add_argument("--env", default="prod", help="samconfig environment of the gateway (default prod)")
    parser.add_argument("--model", default="v2", help="the live model (default v2)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    if not (0 < args.rate <= 20_000 and 0 < args.duration <= 600 and 1 <= args.connections <= 512):
        parser.error("rate must be in (0, 20000], duration in (0, 600], connections in [1, 512]")
    result = run(args)
    print(json.dumps(asdict(result), indent=2) if args.json else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
