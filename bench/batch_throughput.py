"""Texts per second through the local gateway: single requests vs batches of 1, 10 and 100 texts.

    python -m bench.batch_throughput [--rounds 3] [--seconds 5] [--connections 4] [--model v2] [--json]

Starts `python -m emulator serve --env prod --no-quota --no-throttle` in its own process (no
quota, no throttle: the batch route's 10 req/s per key would otherwise cap the batches; one live
version running the real handler, records on), then
drives it from this process, closed loop: `--connections` keep-alive connections each send the
next request as soon as the last one is answered, for `--seconds` per mode. The modes take turns
within each round (single, batch 1, batch 10, batch 100, then again), so a change in the machine's
load hits them all alike; the table gives each mode's median over the rounds of texts per second
(texts answered 200 / seconds), requests per second and median request latency. Tweet-sized
texts (bench.gateway_load.TEXTS). Benchmarks measure; they do not assert.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from bench.gateway_load import ROOT, TEXTS, _free_port, stop_server, wait_ready

SINGLE_PATH = "/v1/infer/hate-speech"
BATCH_PATH = "/v1/infer/hate-speech/batch"
MODES = (("single", None), ("batch of 1", 1), ("batch of 10", 10), ("batch of 100", 100))


def _body(size: int | None, offset: int) -> tuple[str, bytes, int]:
    """(path, body, texts) of one request: one text, or a batch of `size` texts."""
    if size is None:
        return SINGLE_PATH, json.dumps({"text": TEXTS[offset % len(TEXTS)]}).encode(), 1
    texts = [TEXTS[(offset + i) % len(TEXTS)] for i in range(size)]
    return BATCH_PATH, json.dumps({"texts": texts}).encode(), size


def drive(port: int, api_key: str, size: int | None, seconds: float, connections: int) -> dict:
    """One mode for `seconds`: texts and requests answered 200 per second, median latency (ms),
    other answers by status."""
    stop = time.monotonic() + seconds
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    texts_ok = [0]

    def worker(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"x-api-key": api_key, "Content-Type": "application/json"}
        sent = 0
        try:
            while time.monotonic() < stop:
                path, body, n = _body(size, index * 7919 + sent)
                started = time.perf_counter()
                conn.request("POST", path, body=body, headers=headers)
                response = response_of(conn)
                elapsed_ms = (time.perf_counter() - started) * 1000.0
                sent += 1
                with lock:
                    statuses[response] += 1
                    if response == 200:
                        latencies.append(elapsed_ms)
                        texts_ok[0] += n
        finally:
            conn.close()

    began = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - began
    return {
        "texts_per_s": texts_ok[0] / elapsed,
        "requests_per_s": statuses[200] / elapsed,
        "p50_ms": statistics.median(latencies) if latencies else float("nan"),
        "not_200": {str(k): v for k, v in statuses.items() if k != 200},
    }


def response_of(conn: http.client.HTTPConnection) -> int:
    response = conn.getresponse()
    response.read()
    return response.status


def run(args: argparse.Namespace) -> dict:
    load_before = os.getloadavg()
    api_key = "bench-" + os.urandom(16).hex()
    port = _free_port()
    rounds: dict[str, list[dict]] = {name: [] for name, _ in MODES}
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        command = [sys.executable, "-m", "emulator", "serve", "--port", str(port), "--env", "prod"]
        command += [
            "--model",
            args.model,
            "--no-quota",
            "--no-throttle",
            "--records",
            str(Path(tmp) / "records.sqlite"),
        ]
        command += ["--logs", str(Path(tmp) / "logs")]
        server = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, "HATE_API_KEY": api_key},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            wait_ready(server)
            for _, size in MODES:  # warm-up: every path once, off the clock
                drive(port, api_key, size, 0.5, 1)
            for _ in range(args.rounds):
                for name, size in MODES:
                    rounds[name].append(drive(port, api_key, size, args.seconds, args.connections))
        finally:
            stop_server(server)
    summary = {
        name: {
            "texts_per_s": round(statistics.median(r["texts_per_s"] for r in runs), 1),
            "requests_per_s": round(statistics.median(r["requests_per_s"] for r in runs), 1),
            "p50_ms": round(statistics.median(r["p50_ms"] for r in runs), 2),
            "texts_per_s_each_round": [round(r["texts_per_s"], 1) for r in runs],
            "not_200": sum((Counter(r["not_200"]) for r in runs), Counter()),
        }
        for name, runs in rounds.items()
    }
    return {
        "modes": summary,
        "settings": {
            "rounds": args.rounds,
            "seconds": args.seconds,
            "connections": args.connections,
            "model": args.model,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        },
    }


def render(result: dict) -> str:
    s = result["settings"]
    lines = [
        f"{s['rounds']} rounds x {s['seconds']:g} s per mode, {s['connections']} connections, model "
        f"{s['model']}, Python {s['python']}, {s['cpus']} CPUs, load average before "
        f"{s['load_average_before']}, after {s['load_average_after']}",
        "",
        "| mode | texts/s (median) | requests/s | p50 request ms | texts/s per round | non-200 |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in result["modes"].items():
        lines.append(
            f"| {name} | {m['texts_per_s']:,.0f} | {m['requests_per_s']:,.1f} | {m['p50_ms']:.2f} | "
            f"{', '.join(f'{x:,.0f}' for x in m['texts_per_s_each_round'])} | {dict(m['not_200']) or 0} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.batch_throughput", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every mode (default 3)")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per mode per round (default 5)")
    parser.add_argument("--connections", type=int, default=4, help="keep-alive connections (default 4)")
    parser.add_argument("--model", default="v2", help="the live model (default v2)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    result = run(args)
    print(json.dumps(result, indent=1) if args.json else render(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
