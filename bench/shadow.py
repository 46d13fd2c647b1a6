"""What shadow scoring (issue 10) costs the inference handler: warm latency and cold start, with
the other model scored in the shadow and without, side by side in one run.

    python -m bench.shadow [--data CSV] [--runs 7] [--json]

- Warm: for each served model (v1, v2), one fresh process imports infer.app with the default
  SHADOW_MODELS (all), then sends every test-split text twice through lambda_handler, once as
  loaded (shadow on) and once with the shadow models taken away (shadow off, what
  SHADOW_MODELS=none serves), the order alternating per text: paired, on the same warm process,
  so load and caches hit both alike. p50/p99 of the whole handler (what the caller waits for and
  Lambda bills) and of shadow scoring alone (the shadow_ms the handler logs, in the same pass).
- Cold start: fresh processes (import infer.app = init, then one request), SHADOW_MODELS=all vs
  none, v1 and v2 served, runs interleaved; medians of init, first 200 and peak RSS.

The machine's load average is printed before and after (2 shared cores here: other work moves
the numbers). Benchmarks measure; they do not assert.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.handler import (
    COLD_SNIPPET,
    CONTEXT_ARGS,
    ROOT,
    VERSIONS,
    WARMUP,
    bench_main,
    lambda_env,
    measure_warm,
    pct,
    text_events,
    timed_process,
)
from emulator.lambda_context import stand_in

SETTINGS = ("all", "none")  # SHADOW_MODELS: on (the default) and off


def log(message: str) -> None:
    print(f"[bench.shadow] {message}", file=sys.stderr, flush=True)


def warm_child(version: str, texts_path: str, out_path: str) -> None:
    """(In the child process) the handler on every text with the shadow on and off, alternating."""
    import dataclasses

    from infer import app  # init, as on Lambda, with every other model in the shadow

    context = stand_in(*CONTEXT_ARGS)
    services = {"all": app.SERVICE, "none": dataclasses.replace(app.SERVICE, shadows=())}
    score_shadow, shadow_ms = app._score_shadow, []

    def timed_shadow(text: str) -> tuple[dict[str, str], float | None]:
        labels, ms = score_shadow(text)
        if ms is not None:
            shadow_ms.append(ms)  # the handler's own shadow_ms, as logged
        return labels, ms

    texts, events = text_events(texts_path)
    for ev in events[:WARMUP]:
        for service in services.values():
            app.SERVICE = service
            app.lambda_handler(ev, context)
    app._score_shadow = timed_shadow
    handler_ms: dict[str, list[float]] = {name: [] for name in services}
    statuses = set()
    perf = time.perf_counter
    for i, ev in enumerate(events):
        for name in SETTINGS if i % 2 == 0 else SETTINGS[::-1]:
            app.SERVICE = services[name]
            t = perf()
            statuses.add(app.lambda_handler(ev, context)["statusCode"])
            handler_ms[name].append((perf() - t) * 1000)
    result = {"version": version, "n": len(texts), "statuses": sorted(statuses)}
    result["shadows"] = [m.version for m in services["all"].shadows]
    for name, values in {**{f"handler_{k}": v for k, v in handler_ms.items()}, "shadow": shadow_ms}.items():
        values.sort()
        result[f"{name}_p50_ms"] = pct(values, 0.5)
        result[f"{name}_p99_ms"] = pct(values, 0.99)
    Path(out_path).write_text(json.dumps(result))


def measure_cold(runs: int, scratch: Path) -> dict[str, dict]:
    """Median init, first 200 and peak RSS per (served model, SHADOW_MODELS), runs interleaved."""
    contenders = {
        (version, setting): {**lambda_env(version, ROOT), "SHADOW_MODELS": setting}
        for version in VERSIONS
        for setting in SETTINGS
    }
    samples: dict[tuple[str, str], list[dict]] = {key: [] for key in contenders}
    for round_no in range(runs + 1):
        for key, env in contenders.items():
            sample = timed_process([sys.executable, "-c", COLD_SNIPPET], cwd=ROOT, env=env, scratch=scratch)
            if round_no > 0:  # the first round only warms the page cache
                samples[key].append(sample)
    return {
        f"{version} {setting}": {
            metric: statistics.median(s[metric] for s in samples[(version, setting)])
            for metric in ("init_ms", "first_200_ms", "rss_mb")
        }
        for version, setting in contenders
    }


def run(args: argparse.Namespace) -> dict:
    from training.data import load

    texts = [row.text for row in load(args.data).test]
    results: dict = {
        "command": "python -m bench.shadow " + " ".join(args.argv),
        "machine": f"{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {platform.machine()}",
        "load_before": os.getloadavg(),
        "runs": args.runs,
    }
    with tempfile.TemporaryDirectory(prefix="bench-shadow-") as tmp:
        scratch = Path(tmp)
        results["warm"] = []
        for version in VERSIONS:
            log(f"warm, {version} served: {len(texts)} texts x (shadow on, shadow off) in one process")
            env = {**lambda_env(version, ROOT), "SHADOW_MODELS": "all"}
            results["warm"].append(measure_warm("bench.shadow", version, texts, scratch, env))
        log(f"cold starts: 4 contenders x (1 warm-up + {args.runs} runs), interleaved")
        results["cold"] = measure_cold(args.runs, scratch)
    results["load_after"] = os.getloadavg()
    return results


def render(results: dict) -> str:
    load = ", ".join(f"{x:.2f}" for x in results["load_before"])
    load_after = ", ".join(f"{x:.2f}" for x in results["load_after"])
    lines = [
        f"Command: `{results['command']}` ({results['machine']}; load average {load} before, "
        f"{load_after} after).",
        "",
        "Warm, in-process, every test-split text through the whole handler with the shadow on and off",
        "(paired, alternating order), ms",
        "",
        "| served | shadow | texts | handler p50 off | handler p50 on | handler p99 off | handler p99 on "
        "| shadow alone p50 | shadow alone p99 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for w in results["warm"]:
        lines.append(
            f"| {w['version']} | {', '.join(w['shadows'])} | {w['n']} "
            f"| {w['handler_none_p50_ms']:.3f} | {w['handler_all_p50_ms']:.3f} "
            f"| {w['handler_none_p99_ms']:.3f} | {w['handler_all_p99_ms']:.3f} "
            f"| {w['shadow_p50_ms']:.3f} | {w['shadow_p99_ms']:.3f} |"
        )
    lines += [
        "",
        f"Cold start, fresh process, medians of {results['runs']} runs",
        "",
        "| served | SHADOW_MODELS | init (import + load) ms | to first 200 ms | peak RSS MB |",
        "|---|---|---|---|---|",
    ]
    for name, row in results["cold"].items():
        version, setting = name.split()
        lines.append(
            f"| {version} | {setting} | {row['init_ms']:.0f} | {row['first_200_ms']:.0f} "
            f"| {row['rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return bench_main(argv, module="bench.shadow", doc=__doc__, warm_child=warm_child, run=run, render=render)


if __name__ == "__main__":
    sys.exit(main())
