"""Power and false alarms of the canary judge, measured by simulation rather than assumed.

    python -m bench.judge [--sims 200] [--workers 2] [--seed 20240601] [--json]

Each simulated deployment is Canary10Percent5Minutes on 50 req/s: Poisson arrivals for five
minutes, each request going to the canary with probability 0.1 (~1,500 canary and ~13,500
baseline requests). The real judge (canary.judge.judge) runs on the records so far at the end
of every minute, as the scheduled judge does; the deployment is rolled back at the first FAIL,
otherwise it ends on the last look's verdict. Labels come from the real manifests in models/:
the baseline predicts with v1's test-split label shares; a v2 canary predicts through v2's
transition matrix P(v2 label | v1 label), redrawn per deployment from its sampling error (the
matrix on live traffic is not exactly the test split's). The replay scenario uses the two
models' real predictions on test-split texts (needs the data set; skipped without it); two
robustness rows replay traffic whose true-label mix differs from the test split's, so the
live transition matrix is not the manifest's.
Latency is lognormal around 3 ms ("lognormal"), or a heavier-tailed mixture with 3 % of
cold-start-like outliers ("heavy"). Baseline 5xx rate: 0.1 %.

Targets (issue 5): identical versions and v1 -> v2 FAIL <= 1 %; +2 % errors, 1.5x latency and
20 % of labels forced to one class FAIL >= 99 %.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from bisect import bisect_right
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from canary.judge import JudgeConfig, Verdict, judge
from canary.manifests import load_manifests
from canary.records import LABELS, RequestRecord

ROOT = Path(__file__).resolve().parent.parent
RATE = 50.0  # requests per second through the alias
WEIGHT = 0.10  # canary share during the canary step
MINUTES = 5  # Canary10Percent5Minutes
BASE_ERROR_RATE = 0.001


@dataclass(frozen=True)
class Scenario:
    """One kind of deployment, simulated many times."""

    name: str
    canary_model: str = "v2"  # model behind the canary ("v1": same as the baseline)
    latency: str = "lognormal"  # lognormal | heavy
    extra_errors: float = 0.0  # added to the canary's 5xx rate
    latency_factor: float = 1.0  # canary latency multiplier
    forced_label: str | None = None  # label forced on a share of the canary's answers
    forced_share: float = 0.0
    replay: bool = False  # labels from the models' real predictions on test-split texts
    true_label_weights: tuple[float, float, float] = (
        1.0,
        1.0,
        1.0,
    )  # replay: live mix of true labels vs test
    target: str = ""  # what the issue asks of it
    expect_fail: bool = False


SCENARIOS = (
    Scenario("identical versions (v1 vs v1)", canary_model="v1", target="FAIL <= 1 %"),
    Scenario(
        "identical versions, heavy-tailed latency", canary_model="v1", latency="heavy", target="FAIL <= 1 %"
    ),
    Scenario("real v1 -> v2 (manifest transitions)", target="FAIL <= 1 %"),
    Scenario("real v1 -> v2, heavy-tailed latency", latency="heavy", target="FAIL <= 1 %"),
    Scenario("real v1 -> v2 (replay of real predictions)", replay=True, target="FAIL <= 1 %"),
    Scenario(
        "real v1 -> v2 replay, live traffic with 2x the hate speech",
        replay=True,
        true_label_weights=(2.0, 1.0, 1.0),
        target="robustness (no target)",
    ),
    Scenario(
        "real v1 -> v2 replay, live traffic with 2x the 'neither'",
        replay=True,
        true_label_weights=(1.0, 1.0, 2.0),
        target="robustness (no target)",
    ),
    Scenario("v2 canary with +2 % errors", extra_errors=0.02, target="FAIL >= 99 %", expect_fail=True),
    Scenario("v2 canary 1.5x slower", latency_factor=1.5, target="FAIL >= 99 %", expect_fail=True),
    Scenario(
        "v2 canary 1.5x slower, heavy-tailed latency",
        latency="heavy",
        latency_factor=1.5,
        target="FAIL >= 99 %",
        expect_fail=True,
    ),
    Scenario(
        "v2 canary, 20 % of labels forced to hate_speech",
        forced_label="hate_speech",
        forced_share=0.2,
        target="FAIL >= 99 %",
        expect_fail=True,
    ),
    Scenario(
        "v2 canary, 20 % of labels forced to neither",
        forced_label="neither",
        forced_share=0.2,
        target="FAIL >= 99 %",
        expect_fail=True,
    ),
    Scenario(
        "v2 canary, 20 % of labels forced to offensive_language",
        forced_label="offensive_language",
        forced_share=0.2,
        target="FAIL >= 99 % (majority class: see note)",
        expect_fail=True,
    ),
)


@dataclass
class Tally:
    """Outcomes of one scenario's deployments."""

    outcomes: Counter = field(default_factory=Counter)
    fail_minutes: list[int] = field(default_factory=list)
    looks: Counter = field(default_factory=Counter)  # verdicts of every individual look


def latencies(rng: np.random.Generator, n: int, profile: str) -> np.ndarray:
    """Request latencies in ms: lognormal around 3 ms, or a heavier-tailed mixture."""
    if profile == "lognormal":
        return rng.lognormal(mean=np.log(3.0), sigma=0.35, size=n)
    body = rng.lognormal(mean=np.log(4.0), sigma=0.6, size=n)
    outliers = rng.random(n) < 0.03
    body[outliers] = rng.lognormal(mean=np.log(150.0), sigma=0.8, size=int(outliers.sum()))
    return body


def redrawn_transitions(rng: np.random.Generator, entry: dict) -> np.ndarray:
    """A plausible live transition matrix: each row redrawn from its test-split counts
    (Dirichlet posterior), i.e. the manifest's matrix is an estimate, not the truth."""
    rows = []
    for src in LABELS:
        n = float(entry["from_counts"][src])
        alpha = np.array([entry["matrix"][src][dst] for dst in LABELS]) * n + 0.5
        rows.append(rng.dirichlet(alpha))
    return np.array(rows)


def replay_labels() -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """v1 labels, v2 labels and true labels (indices into LABELS) of every test-split text, or None
    without the data set."""
    try:
        from infer.model import load_model
        from training.data import load
    except ImportError:
        return None
    try:
        dataset = load()
    except FileNotFoundError:
        return None
    v1, v2 = load_model(ROOT / "models" / "v1"), load_model(ROOT / "models" / "v2")
    index = {label: i for i, label in enumerate(LABELS)}
    a = np.array([index[v1.predict(row.text).label] for row in dataset.test])
    b = np.array([index[v2.predict(row.text).label] for row in dataset.test])
    truth = np.array([row.label for row in dataset.test])
    return a, b, truth


_REPLAY: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
_MANIFESTS: dict | None = None


def _init(replay: tuple[np.ndarray, np.ndarray, np.ndarray] | None) -> None:
    global _REPLAY, _MANIFESTS
    _REPLAY = replay
    _MANIFESTS = load_manifests(ROOT / "models")


def simulate(scenario: Scenario, seed: int, config: JudgeConfig) -> tuple[str, int | None, list[str]]:
    """One deployment: (final verdict, minute of the first FAIL or None, every look's verdict)."""
    assert _MANIFESTS is not None
    rng = np.random.default_rng(seed)
    duration = 60.0 * MINUTES
    n = rng.poisson(RATE * duration)
    times = np.sort(rng.uniform(0.0, duration, n))
    is_canary = rng.random(n) < WEIGHT
    n_c = int(is_canary.sum())
    n_b = n - n_c

    baseline_mix = np.array([_MANIFESTS["v1"]["expected_label_distribution"][x] for x in LABELS])
    if scenario.replay and _REPLAY is not None:
        v1_labels, v2_labels, truth = _REPLAY
        weights = np.array(scenario.true_label_weights)[truth]
        weights = weights / weights.sum()
        base_labels = v1_labels[rng.choice(len(truth), n_b, p=weights)]
        canary_labels = v2_labels[rng.choice(len(truth), n_c, p=weights)]
    else:
        base_labels = rng.choice(3, size=n_b, p=baseline_mix)
        would_be = rng.choice(3, size=n_c, p=baseline_mix)  # what v1 would have said
        if scenario.canary_model == "v1":
            canary_labels = would_be
        else:
            t = redrawn_transitions(rng, _MANIFESTS["v2"]["transitions"]["v1"])
            cum = t.cumsum(axis=1)[would_be]
            canary_labels = (rng.random(n_c)[:, None] > cum).sum(axis=1).clip(0, 2)
    if scenario.forced_label:
        forced = rng.random(n_c) < scenario.forced_share
        canary_labels = np.where(forced, LABELS.index(scenario.forced_label), canary_labels)

    lat_b = latencies(rng, n_b, scenario.latency)
    lat_c = latencies(rng, n_c, scenario.latency) * scenario.latency_factor
    err_b = rng.random(n_b) < BASE_ERROR_RATE
    err_c = rng.random(n_c) < BASE_ERROR_RATE + scenario.extra_errors

    records: list[RequestRecord] = []
    ib = ic = 0
    for t_i, canary in zip(times.tolist(), is_canary.tolist(), strict=True):
        if canary:
            err, lat, lab = err_c[ic], lat_c[ic], canary_labels[ic]
            version, model = "2", scenario.canary_model
            ic += 1
        else:
            err, lat, lab = err_b[ib], lat_b[ib], base_labels[ib]
            version, model = "1", "v1"
            ib += 1
        status = 500 if err else 200
        label = None if err else LABELS[int(lab)]
        records.append(RequestRecord(version, model, float(lat), label, status, t_i))

    stamps = [r.timestamp for r in records]
    verdicts = []
    for minute in range(1, MINUTES + 1):
        upto = bisect_right(stamps, 60.0 * minute)
        report = judge(
            records[:upto], baseline_version="1", canary_version="2", manifests=_MANIFESTS, config=config
        )
        verdicts.append(report.verdict.value)
        if report.verdict is Verdict.FAIL:
            return Verdict.FAIL.value, minute, verdicts
    return verdicts[-1], None, verdicts


def _run_chunk(args: tuple[int, Scenario, list[int], JudgeConfig]) -> tuple[int, list[tuple]]:
    index, scenario, seeds, config = args
    return index, [simulate(scenario, seed, config) for seed in seeds]


def run(sims: int, workers: int, seed: int, config: JudgeConfig, only: list[str] | None = None) -> dict:
    replay = replay_labels()
    scenarios = [s for s in SCENARIOS if not only or any(o.lower() in s.name.lower() for o in only)]
    if replay is None:
        scenarios = [s for s in scenarios if not s.replay]
    tallies = {i: Tally() for i in range(len(scenarios))}
    chunks = []
    for i, scenario in enumerate(scenarios):
        seeds = [seed * 1000 + i * 100_000 + k for k in range(sims)]
        step = max(1, sims // (4 * max(1, workers)))
        chunks += [(i, scenario, seeds[j : j + step], config) for j in range(0, sims, step)]
    started = time.perf_counter()
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers, initializer=_init, initargs=(replay,)) as pool:
            results = list(pool.map(_run_chunk, chunks))
    else:
        _init(replay)
        results = [_run_chunk(c) for c in chunks]
    for i, outcomes in results:
        for verdict, minute, looks in outcomes:
            tallies[i].outcomes[verdict] += 1
            tallies[i].looks.update(looks)
            if minute is not None:
                tallies[i].fail_minutes.append(minute)
    elapsed = time.perf_counter() - started
    rows = []
    for i, scenario in enumerate(scenarios):
        t = tallies[i]
        total = sum(t.outcomes.values())
        rows.append(
            {
                "scenario": scenario.name,
                "sims": total,
                "FAIL": t.outcomes[Verdict.FAIL.value] / total,
                "PASS": t.outcomes[Verdict.PASS.value] / total,
                "INCONCLUSIVE": t.outcomes[Verdict.INCONCLUSIVE.value] / total,
                "median_fail_minute": float(np.median(t.fail_minutes)) if t.fail_minutes else None,
                "target": scenario.target,
                "looks": dict(t.looks),
            }
        )
    return {"rows": rows, "seconds": elapsed, "sims": sims, "workers": workers, "seed": seed}


def table(result: dict) -> str:
    lines = [
        "| scenario | sims | FAIL | PASS | INCONCLUSIVE | FAIL at minute (median) | target |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        minute = "-" if r["median_fail_minute"] is None else f"{r['median_fail_minute']:g}"
        lines.append(
            f"| {r['scenario']} | {r['sims']} | {r['FAIL']:.1%} | {r['PASS']:.1%} | "
            f"{r['INCONCLUSIVE']:.1%} | {minute} | {r['target']} |"
        )
    lines.append("")
    lines.append(
        f"{result['sims']} seeded deployments per scenario (seed {result['seed']}), "
        f"{result['workers']} workers, {result['seconds']:.0f} s."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.judge", description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=200, help="deployments per scenario (default 200)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="processes")
    parser.add_argument("--seed", type=int, default=20240601, help="base seed (default 20240601)")
    parser.add_argument("--only", action="append", help="run the scenarios whose name contains this")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args(argv)
    result = run(args.sims, args.workers, args.seed, JudgeConfig(), args.only)
    print(json.dumps(result, indent=2) if args.json else table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
