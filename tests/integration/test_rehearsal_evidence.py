"""Rehearsals that show AWS as it is (issue 10): users' traffic at real-world rates down to a few
hundred requests a day, log records reaching the judge minutes late, the probe sending known
answers straight to both versions, the evidence judge's interim looks, and the PostTraffic gate
that waits for the window's records and promotes only on PASS.

Speed 40 (a compressed minute lasts 1.5 s): the canary takes 7.5 s and the gate's wait for late
records (600 s + 60 s settling, compressed) 16.5 s, so a rehearsal that reaches the gate takes
~30-40 s. The assertions are what the design guarantees at any load: outcomes, the stage and the
metric that decided, where the evidence came from; never how many live requests got through.
"""

from __future__ import annotations

import json

import pytest

from canary.evidence import expected_latency_ratio
from canary.manifests import load_manifests
from emulator.controller import PROMOTED, ROLLED_BACK
from emulator.rehearse import EXIT_NOT_PROMOTED, EXIT_PROMOTED, ROOT, Options, main, rehearse

pytestmark = [pytest.mark.integration, pytest.mark.data, pytest.mark.slow]

GATE = {"speed": 40.0, "log_lag": 120.0, "after_s": 0.5}
RATIO = expected_latency_ratio(load_manifests(ROOT / "models"), "v1", "v2")
needs_ratio = pytest.mark.skipif(
    RATIO is None,
    reason="models/v*/manifest.json give no latency.ratio_to (canary.evidence.expected_latency_ratio): the "
    "evidence judge cannot PASS or FAIL latency until the models ship it",
)


def _run(*faults: str, **overrides):
    return rehearse(Options(faults=faults, **{**GATE, **overrides}))


def _metric(report: dict, name: str) -> dict:
    return next(m for m in report["judge"]["metrics"] if m["name"] == name)


def _by_source(report: dict) -> dict:
    return report["evidence"]["by_source"]


def _assert_rolled_back_to_the_baseline(result) -> dict:
    report = result.report
    assert report["outcome"]["state"] == ROLLED_BACK, report["reasons"]
    assert result.exit_status == EXIT_NOT_PROMOTED
    assert report["pretraffic"]["status"] == "Succeeded", "an @hook fault must pass the hook"
    assert report["timeline"][-1]["weight"] == 0.0
    return report


@needs_ratio
def test_a_healthy_canary_at_a_few_hundred_requests_a_day_is_promoted_on_the_probe(dataset, capsys):
    """v1 -> v2 at 0.004 req/s with a 120 s log lag (CLI): ~0 live requests reach the canary in its
    5 minutes, so the probe carries the evidence (1,500 texts to each version); the interim looks
    see only what the lag let through and never FAIL; the gate waits for the window's records and
    promotes on PASS at the final look, its four metrics each with enough evidence."""
    status = main(
        ["--traffic", "0.004", "--log-lag", "120", "--speed", "40", "--json", "--no-html", "--quiet"]
    )
    report = json.loads(capsys.readouterr().out)
    assert status == EXIT_PROMOTED, report["reasons"]
    assert report["outcome"]["state"] == PROMOTED
    gate = report["evidence"]["gate"]
    assert gate["status"] == "Succeeded" and gate["records_complete"]
    assert report["judge"]["verdict"] == "PASS" and report["judge"]["look"]["final"]
    assert {m["classification"] for m in report["judge"]["metrics"]} == {"Pass"}
    interim = [look for look in report["looks"] if not look["final"]]
    assert interim and all(look["verdict"] in ("PASS", "INCONCLUSIVE") for look in interim)
    # The lag: the first look sees only part of what the probe had sent by then.
    assert interim[0]["n"]["canary"]["probe"] < 300
    by_source = _by_source(report)
    assert by_source["canary"]["probe"] == by_source["baseline"]["probe"] >= 1270
    assert by_source["canary"]["live"] <= 5, "0.004 req/s x 10 % x 5 minutes is ~0"
    assert any("PostTraffic gate Succeeded" in note for note in report["notes"])


@needs_ratio
def test_twice_the_hate_speech_changes_nothing_for_a_healthy_canary(dataset):
    """--mix hate_speech=3 at 1 req/s: the replayed split is tilted to hate speech; paired labels
    compare the two models on the same texts, so the mix moves both groups alike and v2 is
    promoted on PASS."""
    result = _run(traffic=1.0, mix=(("hate_speech", 3.0),))
    report = result.report
    assert report["outcome"]["state"] == PROMOTED, report["reasons"]
    assert report["evidence"]["gate"]["status"] == "Succeeded"
    assert _metric(report, "paired_labels")["classification"] == "Pass"
    baseline = next(v for v in report["versions"] if v["role"] == "baseline")
    # The test split has ~5 % hate speech (true labels); tripled, ~15 % of the replay is, and v1
    # (which says hate speech often) says it to far more than a tenth of it.
    assert baseline["label_shares"]["hate_speech"] > 0.1


@pytest.mark.parametrize("traffic", [0.004, 50.0])
def test_forced_labels_after_the_hook_are_rolled_back_at_any_traffic(dataset, traffic):
    """labels=offensive_language:0.2@hook: the hook's known answers all pass, then a fifth of the
    canary's answers say offensive language. At 0.004 req/s only the probe sees it, at 50 req/s
    live traffic too; either way the canary's probe answers differ from its known answers, the
    judge says FAIL and its alarm rolls the canary back during the canary step."""
    speed = 40.0 if traffic < 1 else 5.0  # 50 req/s x 5 = 250 requests per wall second
    result = _run("labels=offensive_language:0.2@hook", traffic=traffic, speed=speed)
    report = _assert_rolled_back_to_the_baseline(result)
    assert report["stage"].startswith("canary minute")
    assert _metric(report, "probe_agreement")["classification"] == "High"
    firing = {a["name"] for a in report["alarms"] if a["state"] == "ALARM"}
    assert any(name.endswith("canary-judge-fail") for name in firing)


@needs_ratio
def test_a_canary_half_again_as_slow_after_the_hook_is_rolled_back(dataset):
    """latency=1.5@hook with a 120 s log lag: the hook's latency check passes; the probe's paired
    latencies show the canary 1.5x slower than the reference the hook measured at the probe's
    pace, beyond the 1.1 tolerance: FAIL (at a look or at the gate), rolled back, and the
    effect the judge reports is the fault's own size (1.5, not the pace's artefact)."""
    # Speed 10, not 40: the probe then sends 50 texts per wall second, in the idle regime where
    # the v2/v1 ratio is stable (BENCHMARKS.md, "The latency reference and the pace"); at 200/s it
    # is in transition, and a reference taken minutes before the probe's pairs came out 1.3x off
    # in 1 of 4 fresh-clone runs (promoted). On AWS the probe's 7 texts/s is in the idle regime.
    result = _run("latency=1.5@hook", traffic=0.004, speed=10.0)
    report = _assert_rolled_back_to_the_baseline(result)
    latency = _metric(report, "latency")
    assert latency["classification"] == "High"
    # The look that decided may hold only ~40 pairs (their median is noisy), hence the wide band.
    # Its floor: a busy machine adds its own delay to both versions, which dilutes a multiplicative
    # fault (x1.238 was measured at load ~4 on two cores). The reference paced back to back made
    # this fault read x1.16; the hook's unit tests pin the pacing itself.
    assert 1.2 <= latency["effect"] <= 2.5, latency


def test_errors_after_the_hook_are_rolled_back(dataset):
    """errors=0.03@hook with a 120 s log lag: 3 % of the canary's invocations crash once the hook
    is done (the probe's included: Lambda counts every invocation); the canary-errors alarm or the
    judge's errors metric rolls it back, and the gate never promotes it."""
    result = _run("errors=0.03@hook", traffic=0.004)
    report = _assert_rolled_back_to_the_baseline(result)
    assert report["evidence"]["gate"] is None or not report["evidence"]["gate"]["succeeded"]
    firing = {a["name"] for a in report["alarms"] if a["state"] == "ALARM"}
    errors = _metric(report, "errors")["classification"] if report["judge"] else None
    assert errors == "High" or any(name.endswith(("canary-errors", "judge-fail")) for name in firing)


def test_a_judge_that_crashes_fails_the_deployment_at_the_gate(dataset):
    """judge=crash: every look raises, so no verdict is published and no alarm fires (missing data
    does not breach); the gate, which judges by itself, raises too and reports Failed with the
    reason: rolled back, exit 3."""
    result = _run("judge=crash", traffic=0.004, log_lag=0.0)
    report = _assert_rolled_back_to_the_baseline(result)
    gate = report["evidence"]["gate"]
    assert gate["status"] == "Failed" and "judge=crash" in gate["reason"]
    assert report["stage"] == "posttraffic"
    assert len(report["evidence"]["judge_errors"]) == 5, "one crash per compressed minute of the canary"
    assert all(a["state"] != "ALARM" for a in report["alarms"])
    assert any("judge=crash" in reason for reason in report["reasons"])
