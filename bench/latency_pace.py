"""Why the PreTraffic hook measures its latency reference at the probe's pace: the v2/v1 handler
latency ratio two deployed versions show depends on how often each receives a request.

    python -m bench.latency_pace [--data CSV] [--texts 140] [--rounds 3] [--paces 7,25,50,200,0] [--json]

Two local function versions (emulator.functions.FunctionVersion: the real handler, each in its
own process, as the rehearsal runs them), v1 as the baseline and v2 as the canary. For each
pace, canary.hook.send_paced (the hook's own code) sends the first --texts probe-set texts to
both at once, one text every 1/pace s (0: back to back), and canary.hook.measure_reference gives
the median paired ratio of the handlers' own times (X-Handler-Latency-Ms), exactly as the hook
computes its reference. Each pace runs twice in a row and only the second pass counts (the first
brings the environments into that pace's steady state); the paces rotate between rounds. The
probe on AWS sends 7 texts/s (canary.evidence.scheduled_rate); a rehearsal at --speed 40 sends
200 texts per wall second.

The machine's load average is printed before and after. Benchmarks measure; they do not assert.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from canary.config import HookConfig
from canary.hook import KnownText, measure_reference, send_paced
from emulator.functions import FunctionVersion
from training.data import load
from training.golden import PROBE_TEXTS, write_hook_files

ROOT = Path(__file__).resolve().parent.parent
UNPACED = 1e9


def log(message: str) -> None:
    print(f"[bench.latency_pace] {message}", file=sys.stderr, flush=True)


def probe_texts(data: str | None, n: int, folder: Path) -> list[KnownText]:
    """The first n texts of the probe set the build writes (training.golden)."""
    write_hook_files(load(data), folder / "golden.jsonl", ROOT / "models")
    rows = [json.loads(line) for line in (folder / PROBE_TEXTS).read_text(encoding="utf-8").splitlines()]
    return [KnownText(int(r["id"]), r["text"]) for r in rows[:n]]


def one_pass(rows: list[KnownText], invokes, pace: float, run_id: str) -> dict[str, float | None]:
    config = HookConfig(new_version_arn="arn:aws:lambda:us-east-1:000000000000:function:bench:2")
    rate = pace if pace > 0 else UNPACED
    paired = send_paced(rows, invokes, config, run_id, None, time.monotonic, rate=rate, sleep=time.sleep)
    ref = measure_reference([p[0] for p in paired], [p[1] for p in paired], "1", "v1")
    return {"ratio": ref.ratio, "canary_ms": ref.canary_median_ms, "baseline_ms": ref.baseline_median_ms}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.environ.get("HATE_DATA"))
    parser.add_argument("--texts", type=int, default=140)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--paces", default="7,25,50,200,0", help="texts/s, comma-separated; 0: back to back")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    paces = [float(p) for p in args.paces.split(",")]
    load_before = os.getloadavg()
    results: dict[float, list[dict]] = {p: [] for p in paces}
    with tempfile.TemporaryDirectory(prefix="bench-pace-") as tmp:
        rows = probe_texts(args.data, args.texts, Path(tmp))
        with FunctionVersion("1", "v1") as baseline, FunctionVersion("2", "v2") as canary:
            invokes = (canary.invoke, baseline.invoke)
            one_pass(rows, invokes, 0, "warmup")
            for r in range(args.rounds):
                order = paces[r % len(paces) :] + paces[: r % len(paces)]
                for pace in order:
                    one_pass(rows, invokes, pace, f"settle{r}")
                    results[pace].append(one_pass(rows, invokes, pace, f"round{r}"))
                    log(f"round {r + 1}: pace {pace:g}/s -> ratio {results[pace][-1]['ratio']}")
    summary = {
        ("back to back" if p == 0 else f"{p:g}/s"): {
            "median_ratio": statistics.median(x["ratio"] for x in runs),
            "min_ratio": min(x["ratio"] for x in runs),
            "max_ratio": max(x["ratio"] for x in runs),
            "baseline_ms_p50": statistics.median(x["baseline_ms"] for x in runs),
            "canary_ms_p50": statistics.median(x["canary_ms"] for x in runs),
        }
        for p, runs in results.items()
    }
    meta = {"texts": len(rows), "rounds": args.rounds, "load_before": load_before}
    meta["load_after"] = os.getloadavg()
    if args.json:
        print(json.dumps({"meta": meta, "paces": summary}, indent=2))
        return 0
    print(f"{len(rows)} probe texts, {args.rounds} rounds; load average {load_before[0]:.2f} -> "
          f"{meta['load_after'][0]:.2f}")  # fmt: skip
    print(f"{'pace':>14} {'v2/v1 median':>13} {'(min-max)':>13} {'v1 ms':>7} {'v2 ms':>7}")
    for name, s in summary.items():
        spread = f"{s['min_ratio']:.2f}-{s['max_ratio']:.2f}"
        print(f"{name:>14} {s['median_ratio']:>13.2f} {spread:>13} {s['baseline_ms_p50']:>7.3f} "
              f"{s['canary_ms_p50']:>7.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
