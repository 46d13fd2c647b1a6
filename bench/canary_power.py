"""False rollbacks and caught faults of the evidence judge (issue 10), by simulating deployments.

    python -m bench.canary_power [--sims 400] [--workers 2] [--seed 20240610] [--json]
                                 [--rates 0.004,1,5,20,50] [--only TEXT]

One simulated deployment = the canary phase of Canary10Percent5Minutes after the PreTraffic
hook, on the design of canary/evidence.py:
  * live traffic: Poisson arrivals at the total rate, each request to the canary with
    probability 0.1; its text drawn from the test split, reweighted by true label for the
    input mix (2x hate speech = hate speech texts twice as likely);
  * the probe: evidence.plan().probe_rps texts per second (regular schedule, random phase), each
    sent to both versions with one probe id, cycling in random order through a fixed probe set of
    600 test texts balanced over v2's labels (200 each);
  * labels are the real models' (models/v1, models/v2 through infer.model) on those texts,
    computed once per process: the baseline serves v1 and shadows v2, the canary serves v2 and
    shadows v1; probes carry the manifest's label for their text and served model;
  * 5xx with probability 0.1 % per request; handler latency lognormal around the measured
    medians (BENCHMARKS.md, handler p50/p99: v1 0.277 ms sigma 0.23, v2 0.489 ms sigma 0.33)
    with 1 % outliers 3-30x slower; the manifest's expected ratio is 0.489 / 0.277;
  * log lag: lognormal, median 120 s, sigma 0.6, cut to [1 s, 600 s]: a record is visible to the
    judge only after it; the judge looks at 60, 120, ..., 300 s (evidence.judge_evidence with the
    records visible so far) and a FAIL rolls back; the PostTraffic gate at 300 + 600 s judges the
    whole window (final look) and anything but PASS rolls back (evidence.gate_decision).
Faults start after the hook, i.e. cover the whole canary: +2 % errors, 1.25x / 1.5x latency,
20 % / 10 % of answers forced to one label, +0.3 on one class's v2 score (the real per-text
scores), and a judge that crashes at every look (no verdict: the gate must fail).

Two more cells put a 20 % forced-label fault on live requests only (a code path the probe does
not take), so paired_labels has to find it alone.

Targets (issue 10): false rollback <= 1 % in every good cell; >= 99 % caught for every 20 % label
fault, +2 % errors and 1.5x latency at every traffic level; the rest reported as measured.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from canary import evidence as ev
from canary.evidence import EvidenceConfig, EvidenceRecord, Verdict

ROOT = Path(__file__).resolve().parent.parent
RATES = (0.004, 1.0, 5.0, 20.0, 50.0)  # total requests per second through the alias
SHARE = 0.10  # canary share during the canary step
BASE_ERROR_RATE = 0.001
LATENCY = {"v1": (0.277, 0.23), "v2": (0.489, 0.33)}  # handler median ms, log-sd (BENCHMARKS.md)
EXPECTED_RATIO = LATENCY["v2"][0] / LATENCY["v1"][0]  # what v2's manifest would record
OUTLIER_RATE, OUTLIER_RANGE = 0.01, (3.0, 30.0)  # GC pauses, noisy neighbours, cold caches
PROBE_PER_LABEL = 200  # probe set: 200 texts of each v2 label
LABELS = ev.LABELS
# 400 runs per cell: the smallest n at which a perfect cell proves its target with 95 % Wilson
# bounds (0 / 400 -> at most 0.95 % false rollbacks; 400 / 400 -> at least 99.05 % caught).
SIMS = 400


@dataclass(frozen=True)
class Cell:
    """One kind of deployment, simulated many times at every traffic rate."""

    name: str
    good: bool  # a healthy v2: any rollback is a false one
    mix: tuple[float, float, float] = (1.0, 1.0, 1.0)  # live weight per true label vs the test split
    extra_errors: float = 0.0
    latency_factor: float = 1.0
    forced_label: int | None = None
    forced_share: float = 0.0
    offset: tuple[int, float] | None = None  # (class, added to v2's score)
    judge_crash: bool = False
    live_only: bool = False  # the fault hits live requests only (a code path the probe does not take)
    target: str = ""


def _forced(label: int, share: float, target: str) -> Cell:
    return Cell(
        f"{share:.0%} forced to {LABELS[label]}", False, forced_label=label, forced_share=share, target=target
    )


CELLS = (
    Cell("good: test mix", True, target="<= 1 %"),
    Cell("good: 2x hate speech", True, mix=(2.0, 1.0, 1.0), target="<= 1 %"),
    Cell("good: 3x hate speech", True, mix=(3.0, 1.0, 1.0), target="<= 1 %"),
    Cell("good: 2x neither", True, mix=(1.0, 1.0, 2.0), target="<= 1 %"),
    Cell("+2 % errors", False, extra_errors=0.02, target=">= 99 %"),
    Cell("1.25x latency", False, latency_factor=1.25, target="measured (must fail)"),
    Cell("1.5x latency", False, latency_factor=1.5, target=">= 99 %"),
    *(_forced(j, 0.2, ">= 99 %") for j in range(3)),
    *(_forced(j, 0.1, "measured") for j in range(3)),
    *(Cell(f"+0.3 on {LABELS[j]} score", False, offset=(j, 0.3), target="measured") for j in range(3)),
    Cell("judge crashes", False, judge_crash=True, target="100 % (gate fails)"),
    Cell(
        "20% forced to offensive_language, live only",
        False,
        forced_label=1,
        forced_share=0.2,
        live_only=True,
        target="measured (paired_labels alone)",
    ),
    Cell(
        "20% forced to hate_speech, live only",
        False,
        forced_label=0,
        forced_share=0.2,
        live_only=True,
        target="measured (paired_labels alone)",
    ),
)


@dataclass(frozen=True)
class Data:
    """The real models' answers on the test split, computed once per process."""

    v1: np.ndarray  # v1 label index per test text
    v2: np.ndarray  # v2 label index per test text
    scores: np.ndarray  # v2 decision scores (n, 3): the label is their argmax
    truth: np.ndarray  # true label index
    probe: np.ndarray  # indices of the probe set's texts


def load_data() -> Data:
    """Score every test text with both models (about 1.5 s); raises FileNotFoundError without data."""
    from infer.model import load_model
    from training.data import load

    dataset = load()
    v1, v2 = load_model(ROOT / "models" / "v1"), load_model(ROOT / "models" / "v2")
    a = np.array([LABELS.index(v1.predict(row.text).label) for row in dataset.test], dtype=np.int8)
    scores = np.array([v2.decision(row.text) for row in dataset.test])
    b = scores.argmax(axis=1).astype(np.int8)  # infer.model.predict's label (first max on ties)
    truth = np.array([row.label for row in dataset.test], dtype=np.int8)
    rng = np.random.default_rng(20240610)  # the probe set is fixed, not redrawn per deployment
    probe = np.concatenate(
        [rng.choice(np.flatnonzero(b == j), PROBE_PER_LABEL, replace=False) for j in range(3)]
    )
    return Data(a, b, scores, truth, np.sort(probe))


_DATA: Data | None = None


def _init(data: Data) -> None:
    global _DATA
    _DATA = data


@dataclass(frozen=True)
class Outcome:
    """One deployment's end."""

    rolled_back: bool
    stopped_at: float | None  # elapsed seconds of the interim FAIL that stopped it, None otherwise
    gate: str  # the gate's verdict (PASS / FAIL / INCONCLUSIVE / NONE) or "-" if stopped earlier
    failed_metrics: tuple[str, ...]


def simulate(cell: Cell, rate: float, seed: int, probe_rps: float, cfg: EvidenceConfig) -> Outcome:
    """One deployment: records with their visibility times, judged at every look, then the gate."""
    records, groups, arrival = _records(cell, rate, np.random.default_rng(seed), probe_rps, cfg)
    order = np.argsort(arrival, kind="stable")
    arrival = arrival[order]
    looks = [cfg.look_interval_s * k for k in range(1, int(cfg.window_s // cfg.look_interval_s) + 1)]
    gate_at = cfg.window_s + cfg.lag_max_s
    evidence, done = None, 0
    for at, final in [*((e, False) for e in looks), (gate_at, True)]:
        upto = int(np.searchsorted(arrival, at, side="right"))
        batch = order[done:upto].tolist()
        done = upto
        chunk = ev.collect(
            [records[i] for i in batch if not groups[i]],
            [records[i] for i in batch if groups[i]],
            baseline_model="v1",
            canary_model="v2",
        )
        evidence = chunk if evidence is None else evidence + chunk
        if cell.judge_crash:
            continue  # the judge raised: no verdict, no alarm
        report = ev.judge_evidence(
            evidence, expected_latency_ratio=EXPECTED_RATIO, elapsed_s=at, final=final, config=cfg
        )
        failed = tuple(m.name for m in report.metrics if m.failed)
        if final:
            decision = ev.gate_decision(report)
            return Outcome(not decision.succeeded, None, report.verdict.value, failed)
        if report.verdict is Verdict.FAIL:
            return Outcome(True, at, "-", failed)
    return Outcome(not ev.gate_decision(None).succeeded, None, "NONE", ())


def _records(
    cell: Cell, rate: float, rng: np.random.Generator, probe_rps: float, cfg: EvidenceConfig
) -> tuple[list[EvidenceRecord], list[bool], np.ndarray]:
    """Every record of one deployment: (records, is-canary flags, time each becomes visible)."""
    d = _DATA
    assert d is not None
    w = cfg.window_s
    n_live = int(rng.poisson(rate * w))
    weights = np.array(cell.mix)[d.truth]
    live_text = rng.choice(len(d.truth), n_live, p=weights / weights.sum())
    live_canary = rng.random(n_live) < SHARE
    n_probe = int(round(probe_rps * w))
    probe_text = d.probe[rng.permutation(len(d.probe))[np.arange(n_probe) % len(d.probe)]]
    probe_time = (np.arange(n_probe) + rng.random()) / probe_rps
    text = np.concatenate([live_text, probe_text, probe_text])
    canary = np.concatenate([live_canary, np.zeros(n_probe, bool), np.ones(n_probe, bool)])
    probe = np.concatenate([np.zeros(n_live, bool), np.ones(2 * n_probe, bool)])
    when = np.concatenate([rng.uniform(0.0, w, n_live), probe_time, probe_time])
    pid = np.concatenate([np.full(n_live, -1), np.arange(n_probe), np.arange(n_probe)])
    n = len(text)
    old, new = d.v1[text], d.v2[text]
    served = new.copy()
    if cell.offset is not None:
        bump = np.zeros(3)
        bump[cell.offset[0]] = cell.offset[1]
        served = (d.scores[text] + bump).argmax(axis=1).astype(np.int8)
    if cell.forced_label is not None:
        hit = (rng.random(n) < cell.forced_share) & ~(probe if cell.live_only else np.zeros(n, bool))
        served = np.where(hit, cell.forced_label, served)
    error = rng.random(n) < BASE_ERROR_RATE + cell.extra_errors * canary
    median = np.where(canary, LATENCY["v2"][0] * cell.latency_factor, LATENCY["v1"][0])
    sigma = np.where(canary, LATENCY["v2"][1], LATENCY["v1"][1])
    latency = median * np.exp(sigma * rng.standard_normal(n))
    slow = rng.random(n) < OUTLIER_RATE
    latency[slow] *= np.exp(rng.uniform(*np.log(OUTLIER_RANGE), int(slow.sum())))
    lag = np.clip(rng.lognormal(math.log(cfg.lag_median_s), cfg.lag_sigma, n), 1.0, cfg.lag_max_s)
    records = [
        _record(c, p, o, nw, s, e, lat, i)
        for c, p, o, nw, s, e, lat, i in zip(
            canary.tolist(), probe.tolist(), old.tolist(), new.tolist(), served.tolist(),
            error.tolist(), latency.tolist(), pid.tolist(), strict=True,
        )
    ]  # fmt: skip
    return records, canary.tolist(), when + lag


def _record(canary: bool, probe: bool, old: int, new: int, served: int, error: bool, lat: float, pid: int):
    if canary:  # serves v2 (faults apply), shadows v1
        model, label, shadow, expected = "v2", LABELS[served], LABELS[old], LABELS[new]
    else:  # serves v1, shadows v2 (the baseline package's v2: healthy)
        model, label, shadow, expected = "v1", LABELS[old], LABELS[new], LABELS[old]
    if error:
        label = shadow = None
    if not probe:
        return EvidenceRecord(model, label, shadow, 500 if error else 200, lat, "live")
    return EvidenceRecord(model, label, shadow, 500 if error else 200, lat, "probe", expected, f"p{pid}")


def _run_chunk(args: tuple) -> tuple[int, int, list[Outcome]]:
    ci, ri, seeds, probe_rps, cfg = args
    return ci, ri, [simulate(CELLS[ci], RATES[ri], s, probe_rps, cfg) for s in seeds]


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion k / n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def run(sims: int, workers: int, seed: int, rates: list[int], cells: list[int]) -> dict:
    data = load_data()  # first: without the data set there is nothing to plan for
    cfg = EvidenceConfig()
    probe_rps = ev.plan(cfg).probe_rps
    chunks = []
    step = max(1, sims // 4)
    for ci in cells:
        for ri in rates:
            seeds = [int(np.random.SeedSequence([seed, ci, ri, k]).generate_state(1)[0]) for k in range(sims)]
            chunks += [(ci, ri, seeds[j : j + step], probe_rps, cfg) for j in range(0, sims, step)]
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers, initializer=_init, initargs=(data,)) as pool:
            results = list(pool.map(_run_chunk, chunks))
    else:
        _init(data)
        results = [_run_chunk(c) for c in chunks]
    outcomes: dict[tuple[int, int], list[Outcome]] = {}
    for ci, ri, outs in results:
        outcomes.setdefault((ci, ri), []).extend(outs)
    rows = [_row(CELLS[ci], RATES[ri], outcomes[(ci, ri)]) for ci in cells for ri in rates]
    return {
        "rows": rows,
        "sims": sims,
        "seed": seed,
        "workers": workers,
        "seconds": time.perf_counter() - started,
        "cpu_seconds": _cpu_seconds() - cpu_started,  # this process and its finished workers
        "probe_rps": probe_rps,
        "load_average": os.getloadavg(),
    }


def _cpu_seconds() -> float:
    own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


def _row(cell: Cell, rate: float, outs: list[Outcome]) -> dict:
    n = len(outs)
    k = sum(o.rolled_back for o in outs)
    lo, hi = wilson(k, n)
    stopped = sum(o.stopped_at is not None for o in outs)
    return {
        "cell": cell.name,
        "good": cell.good,
        "rate": rate,
        "sims": n,
        "rolled_back": k,
        "share": k / n,
        "wilson95": [lo, hi],
        "stopped_in_canary": stopped,
        "gate": dict(Counter(o.gate for o in outs)),
        "failed_metrics": dict(Counter(m for o in outs for m in o.failed_metrics)),
        "target": cell.target,
        "met": _met(cell, k, n),
    }


def _met(cell: Cell, k: int, n: int) -> bool | None:
    if cell.good:
        return k / n <= 0.01
    if cell.target.startswith(">="):
        return k / n >= 0.99
    if cell.judge_crash:
        return k == n
    return None


def table(result: dict) -> str:
    lines = [
        "| cell | req/s | runs | rolled back | 95 % Wilson | stopped in canary | gate verdicts | target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lo, hi = r["wilson95"]
        gate = ", ".join(f"{k} {v}" for k, v in sorted(r["gate"].items()) if k != "-") or "-"
        mark = {True: " (met)", False: " (**not met**)", None: ""}[r["met"]]
        lines.append(
            f"| {r['cell']} | {r['rate']:g} | {r['sims']} | {r['share']:.1%} | {lo:.1%}-{hi:.1%} | "
            f"{r['stopped_in_canary']} | {gate} | {r['target']}{mark} |"
        )
    lines.append("")
    load = ", ".join(f"{x:.2f}" for x in result["load_average"])
    lines.append(
        f"{result['sims']} seeded deployments per cell (seed {result['seed']}), "
        f"probe {result['probe_rps']:g} texts/s per version, {result['workers']} workers, "
        f"{result['seconds']:.0f} s wall, {result['cpu_seconds']:.0f} s CPU, load average {load}."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.canary_power", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sims", type=int, default=SIMS, help=f"deployments per cell and rate (default {SIMS})"
    )
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="processes")
    parser.add_argument("--seed", type=int, default=20240610, help="base seed (default 20240610)")
    parser.add_argument("--rates", default=",".join(f"{r:g}" for r in RATES), help="comma-separated req/s")
    parser.add_argument("--only", action="append", help="run the cells whose name contains this")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args(argv)
    if args.sims < 1:
        parser.error("--sims must be >= 1")
    try:
        rates = [RATES.index(float(r)) for r in args.rates.split(",")]
    except ValueError:
        parser.error(f"--rates must be a subset of {','.join(f'{r:g}' for r in RATES)}")
    cells = [
        i for i, c in enumerate(CELLS) if not args.only or any(o.lower() in c.name.lower() for o in args.only)
    ]
    if not cells:
        parser.error(f"no cell matches {args.only}")
    try:
        result = run(args.sims, args.workers, args.seed, rates, cells)
    except FileNotFoundError as exc:
        print(f"bench.canary_power: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
