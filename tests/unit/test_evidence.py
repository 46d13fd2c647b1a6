"""The evidence judge (canary/evidence.py): metrics, alpha spending, verdict, gate and plan."""

from __future__ import annotations

import json
import math
import random
from dataclasses import replace

import numpy as np
import pytest

from canary import evidence as ev
from canary import stats
from canary.evidence import (
    Classification,
    EvidenceConfig,
    EvidenceRecord,
    Group,
    Metric,
    Verdict,
)

LABELS = ev.LABELS
HATE, OFFENSIVE, NEITHER = LABELS
RATIO = 0.489 / 0.277  # v2 / v1 handler medians (BENCHMARKS.md)
CFG = EvidenceConfig()
# (old label, new label) of the texts, like v1 -> v2 on the test split
JOINT = {
    (HATE, HATE): 5, (HATE, OFFENSIVE): 12, (HATE, NEITHER): 4, (OFFENSIVE, OFFENSIVE): 58,
    (OFFENSIVE, HATE): 2, (OFFENSIVE, NEITHER): 3, (NEITHER, NEITHER): 14, (NEITHER, OFFENSIVE): 2,
}  # fmt: skip


def _texts(rng: random.Random, n: int, mix: dict | None = None) -> list[tuple[str, str]]:
    joint = mix or JOINT
    return rng.choices(list(joint), weights=list(joint.values()), k=n)


def deployment(
    *,
    live_canary: int = 150,
    live_baseline: int = 1350,
    probes: int = 1500,
    seed: int = 1,
    forced: str | None = None,
    forced_share: float = 0.0,
    forced_on_probes: bool = True,
    extra_errors: float = 0.0,
    slower: float = 1.0,
    mix: dict | None = None,
) -> tuple[list[EvidenceRecord], list[EvidenceRecord]]:
    """Baseline (v1 serves, v2 shadows) and canary (v2 serves, v1 shadows) records."""
    rng = random.Random(seed)

    def status() -> int:
        return 500 if rng.random() < 0.001 else 200

    def canary_label(new: str, probe: bool) -> str:
        hit = forced and rng.random() < forced_share and (forced_on_probes or not probe)
        return forced if hit else new

    def record(group: Group, old: str, new: str, probe: int | None) -> EvidenceRecord:
        canary = group is Group.CANARY
        err = rng.random() < 0.001 + (extra_errors if canary else 0.0)
        if canary:
            ms = 0.489 * slower * math.exp(0.33 * rng.gauss(0, 1))
            model, label, shadow, expected = "v2", canary_label(new, probe is not None), old, new
        else:
            ms = 0.277 * math.exp(0.23 * rng.gauss(0, 1))
            model, label, shadow, expected = "v1", old, new, old
        if err:
            label = shadow = None
        if probe is None:
            return EvidenceRecord(model, label, shadow, 500 if err else 200, ms, "live")
        return EvidenceRecord(model, label, shadow, 500 if err else 200, ms, "probe", expected, f"p{probe}")

    baseline = [record(Group.BASELINE, o, n, None) for o, n in _texts(rng, live_baseline, mix)]
    canary = [record(Group.CANARY, o, n, None) for o, n in _texts(rng, live_canary, mix)]
    for k, (o, n) in enumerate(_texts(rng, probes)):
        baseline.append(record(Group.BASELINE, o, n, k))
        canary.append(record(Group.CANARY, o, n, k))
    return baseline, canary


def judge(
    baseline, canary, *, ratio: float | None = RATIO, elapsed_s: float = 900.0, final: bool = True, **kw
):
    return ev.judge(
        baseline,
        canary,
        baseline_model="v1",
        canary_model="v2",
        expected_latency_ratio=ratio,
        elapsed_s=elapsed_s,
        final=final,
        **kw,
    )


def metric(report, name):
    return next(m for m in report.metrics if m.name == name)


# --------------------------------------------------------------------------- whole verdicts


def test_a_healthy_canary_passes_the_gate_on_probe_evidence_alone():
    """At the usage plan's traffic (no live requests) the probe gives every metric its minimum n
    and a healthy v2 passes the final look: the gate reports Succeeded."""
    report = judge(*deployment(live_canary=0, live_baseline=0))
    assert report.verdict is Verdict.PASS, report.reason
    assert all(m.classification is Classification.PASS for m in report.metrics)
    assert ev.gate_decision(report).succeeded


def test_without_enough_evidence_the_verdict_is_inconclusive_and_says_what_is_missing():
    """Few records: every metric is NoData with 'have of needed', and the gate fails."""
    report = judge(*deployment(live_canary=5, live_baseline=40, probes=20))
    assert report.verdict is Verdict.INCONCLUSIVE
    assert "20 of the 33 canary probe answers" in metric(report, "probe_agreement").reason
    assert "of the 1270 requests needed" in metric(report, "errors").reason
    assert "20 of the 460 probe latency pairs" in metric(report, "latency").reason
    assert metric(report, "paired_labels").classification is Classification.NODATA
    assert "latency:" in report.reason and "errors:" in report.reason
    decision = ev.gate_decision(report)
    assert not decision.succeeded and "INCONCLUSIVE" in decision.reason


def test_a_critical_failure_fails_even_while_other_metrics_lack_data():
    """One wrong probe answer is a FAIL at once, whatever else is still missing."""
    baseline, canary = deployment(live_canary=0, live_baseline=0, probes=10)
    i = next(i for i, r in enumerate(canary) if r.source == "probe" and r.label is not None)
    wrong = next(label for label in LABELS if label != canary[i].expected_label)
    canary[i] = replace(canary[i], label=wrong)
    report = judge(baseline, canary, elapsed_s=60.0, final=False)
    assert report.verdict is Verdict.FAIL
    result = metric(report, "probe_agreement")
    assert result.failed and "1 mismatch(es) in" in result.reason
    assert result.details["examples"] == [[canary[i].probe_id, canary[i].expected_label, wrong]]


def test_a_metric_that_raises_becomes_an_error_result_and_blocks_a_pass():
    """A metric's exception is an Error result with the exception in its reason, the verdict
    is INCONCLUSIVE (never a silent PASS), and the gate fails."""

    class Broken(Metric):
        name = "broken"
        effect_name = "nothing"
        unit = "things"
        worse = "Broken"

        def needed(self):
            return 1

        def floor(self):
            return 0.0

        def measure(self, evidence):
            raise ZeroDivisionError("division by zero")

    evidence = ev.collect(*deployment(), baseline_model="v1", canary_model="v2")
    results = ev.classify([*ev.metrics_for(CFG, RATIO), Broken()], evidence, 0.003)
    broken = results[-1]
    assert broken.classification is Classification.ERROR
    assert "ZeroDivisionError: division by zero" in broken.reason
    outcome, reason = ev.verdict(results)
    assert outcome is Verdict.INCONCLUSIVE and "broken" in reason


def test_a_metric_whose_wording_fails_still_gets_classified():
    """An exception while describing the effect is named in the reason; the classification stands."""

    class Mute(ev.Errors):
        def describe(self, m):
            raise KeyError("errors_canary")

    evidence = ev.collect(*deployment(extra_errors=0.05), baseline_model="v1", canary_model="v2")
    (result,) = ev.classify([Mute(1270, 0.005, 30.0)], evidence, 0.003)
    assert result.failed
    assert "KeyError describing it" in result.reason


def test_the_gate_fails_without_a_report_on_an_interim_one_and_on_anything_but_pass():
    """No verdict (crash), an interim report, FAIL or INCONCLUSIVE: Failed; final PASS: Succeeded."""
    assert not ev.gate_decision(None).succeeded
    assert "crashed or never ran" in ev.gate_decision(None).reason
    healthy = deployment(live_canary=0, live_baseline=0)
    interim = judge(*healthy, elapsed_s=300.0, final=False)
    assert not ev.gate_decision(interim).succeeded
    assert ev.gate_decision(judge(*healthy)).succeeded
    assert not ev.gate_decision(judge(*deployment(extra_errors=0.05))).succeeded


def test_the_report_is_json_and_explains_every_metric():
    """as_dict() is strict JSON (no NaN) with the look, the level spent and each metric's test,
    p-value, alpha, effect, floor and n needed."""
    report = judge(*deployment(), elapsed_s=180.0, final=False)
    data = json.loads(json.dumps(report.as_dict(), allow_nan=False))
    assert data["schema"] == ev.SCHEMA
    assert data["look"]["alpha_look"] == pytest.approx(ev.look_alpha(180.0, CFG))
    names = {m["name"] for m in data["metrics"]}
    assert names == {"probe_agreement", "paired_labels", "errors", "latency"}
    for m in data["metrics"]:
        assert {"test", "p_value", "alpha", "effect", "floor", "n_needed", "reason"} <= m.keys()
    assert data["groups"]["canary"]["requests"]["probe"] == 1500


# --------------------------------------------------------------------------- probe_agreement


def test_probe_agreement_power_is_one_minus_one_minus_f_to_the_n():
    """The rule's power against a fault changing a fraction f of the answers, and the n that
    reaches 99 % for 20 % forced to one label on a balanced probe set (f = 0.2 x 2/3)."""
    f = 0.2 * 2 / 3
    assert ev.probe_power(f, 10) == pytest.approx(1 - (1 - f) ** 10)
    n = ev.probe_n_needed(f, 0.99)
    assert n == 33
    assert ev.probe_power(f, n) >= 0.99 > ev.probe_power(f, n - 1)


def test_probe_agreement_catches_a_forced_majority_label_on_the_probe():
    """20 % of answers forced to offensive_language is caught by the probe rule at any traffic."""
    report = judge(*deployment(live_canary=0, live_baseline=0, forced=OFFENSIVE, forced_share=0.2))
    assert metric(report, "probe_agreement").failed
    assert report.verdict is Verdict.FAIL


# --------------------------------------------------------------------------- paired_labels


def test_paired_labels_finds_a_fault_on_live_requests_only():
    """A fault only live requests see (20 % forced to the majority label) at 50 req/s worth of
    live pairs: the CMH per label fails paired_labels, the probe rule sees nothing."""
    baseline, canary = deployment(
        live_canary=1500, live_baseline=13500, forced=OFFENSIVE, forced_share=0.2, forced_on_probes=False
    )
    report = judge(baseline, canary)
    result = metric(report, "paired_labels")
    assert result.failed, result.reason
    assert result.details["label"] == OFFENSIVE
    assert result.effect == pytest.approx(0.2 * 0.2, abs=0.02)  # mass moved into offensive_language
    assert metric(report, "probe_agreement").classification is Classification.PASS


def test_paired_labels_is_insensitive_to_the_input_mix_by_construction():
    """Whatever the live mix (here 3x the hate-speech texts), identical conditional label
    distributions in both groups are no evidence at all: p > 0.5 and no shift."""
    mix = {pair: w * (3 if pair[0] == HATE else 1) for pair, w in JOINT.items()}
    canary_pairs = {pair: 2 * w for pair, w in mix.items()}
    baseline_pairs = {pair: 18 * w for pair, w in mix.items()}  # the same joint, 9x the size
    evidence = ev.Evidence(
        "v1", "v2", {}, {},
        {**{(Group.CANARY, o, n): c for (o, n), c in canary_pairs.items()},
         **{(Group.BASELINE, o, n): c for (o, n), c in baseline_pairs.items()}},
        {}, 0, 0, (), 0, 0, {}, {}, {},
    )  # fmt: skip
    result = ev.PairedLabels(100, 0.01, 30.0).measure(evidence)
    assert result.p_value == 1.0  # Bonferroni x3 of p > 0.5
    assert result.effect == pytest.approx(0.0, abs=1e-12)
    assert all(d["p_value"] > 0.5 for d in result.details["per_label"].values())


def test_matched_probe_pairs_count_only_when_they_disagree():
    """Probe pairs are matched (same text in both groups): agreeing pairs add no evidence (p = 1)
    and 12 pairs where only the canary says offensive_language are McNemar-significant."""
    baseline, canary = deployment(live_canary=0, live_baseline=0, probes=300)
    agree = ev.PairedLabels(100, 0.01, 30.0).measure(
        ev.collect(baseline, canary, baseline_model="v1", canary_model="v2")
    )
    assert agree.p_value == 1.0 and agree.effect == 0.0
    changed, flipped = list(canary), 0
    for i, r in enumerate(changed):
        if r.source == "probe" and r.label not in (None, OFFENSIVE) and flipped < 12:
            changed[i] = replace(r, label=OFFENSIVE)
            flipped += 1
    moved = ev.PairedLabels(100, 0.01, 30.0).measure(
        ev.collect(baseline, changed, baseline_model="v1", canary_model="v2")
    )
    assert moved.details["label"] == OFFENSIVE
    assert moved.p_value == pytest.approx(3 * 0.5**12, rel=1e-9)  # exact: Binomial(12, 1/2) >= 12
    assert moved.effect == pytest.approx(12 / moved.details["probe_pairs"])  # a 5xx leaves ~299 pairs


# --------------------------------------------------------------------------- errors


def test_errors_fail_for_two_points_more_5xx_on_the_probe():
    """+2 % errors with the probe's 1,500 requests per group is significant beyond the floor."""
    report = judge(*deployment(live_canary=0, live_baseline=0, extra_errors=0.02))
    result = metric(report, "errors")
    assert result.failed, result.reason
    assert "more 5xx than the baseline" in result.reason


def test_errors_significant_but_below_the_floor_pass():
    """0.2 % extra 5xx over 20,000 requests each is significant but under the 0.5-point floor."""
    live = [EvidenceRecord("v1", OFFENSIVE, OFFENSIVE, 200, 0.3, "live")] * 20000
    bad = [EvidenceRecord("v2", None, None, 500, 0.3, "live")] * 40
    canary = bad + [EvidenceRecord("v2", OFFENSIVE, OFFENSIVE, 200, 0.3, "live")] * 19960
    (result,) = ev.classify([ev.Errors(1270, 0.005, 30.0)], _evidence(live, canary), 0.003)
    assert result.p_value < 1e-9 and result.effect == pytest.approx(0.002)
    assert result.classification is Classification.PASS
    assert "below the floor" in result.reason


def _evidence(baseline, canary):
    return ev.collect(baseline, canary, baseline_model="v1", canary_model="v2")


# --------------------------------------------------------------------------- latency


def test_latency_fails_a_canary_1_5x_slower_on_the_real_scale():
    """At the handler's real scale (0.49 ms, +0.24 ms is far under the old 1 ms floor) a canary
    1.5x slower than the pre-traffic reference expects fails on the paired probe latencies."""
    report = judge(*deployment(live_canary=0, live_baseline=0, slower=1.5))
    result = metric(report, "latency")
    assert result.failed, result.reason
    assert result.effect == pytest.approx(1.5, rel=0.05)
    assert "slower than the pre-traffic reference expects" in result.reason


def test_latency_passes_a_canary_as_slow_as_its_reference():
    """v2 is 1.77x v1 by design: with the hook's measured reference at that ratio it passes."""
    result = metric(judge(*deployment(live_canary=0, live_baseline=0)), "latency")
    assert result.classification is Classification.PASS
    assert result.details["median_ratio"] == pytest.approx(RATIO, rel=0.05)


@pytest.mark.parametrize("final", [False, True])
def test_latency_without_the_reference_is_nodata_never_a_pass(final):
    """No reference from the hook yet (its log record not visible): with every pair the metric
    needs, latency is NoData saying why, never Pass, so the look is INCONCLUSIVE, at an interim
    look and at the final one alike."""
    report = judge(*deployment(live_canary=0, live_baseline=0), ratio=None, final=final)
    result = metric(report, "latency")
    assert result.classification is Classification.NODATA
    assert "no latency reference yet for v2/v1" in result.reason
    assert result.n_canary >= result.n_needed  # the pairs are there: the reference is what lacks
    assert report.verdict is Verdict.INCONCLUSIVE
    assert not ev.gate_decision(report).succeeded


def test_latency_with_an_impossible_reference_is_an_error():
    """A reference that is not a positive finite number is an Error result naming it."""
    report = judge(*deployment(live_canary=0, live_baseline=0), ratio=float("nan"))
    result = metric(report, "latency")
    assert result.classification is Classification.ERROR
    assert "latency reference v2/v1 is nan" in result.reason


def test_a_missing_reference_does_not_hide_a_failing_metric():
    """Latency NoData for want of a reference leaves the other metrics judged: a canary answering
    its probe texts wrongly still FAILs."""
    base, canary = deployment(live_canary=0, live_baseline=0)
    canary = [
        replace(r, label="neither", expected_label="hate_speech") if r.source == "probe" and i % 5 == 0 else r
        for i, r in enumerate(canary)
    ]
    report = judge(base, canary, ratio=None)
    assert report.verdict is Verdict.FAIL
    assert metric(report, "latency").classification is Classification.NODATA


def test_expected_latency_ratio_reads_either_manifest():
    """The manifests' coarse ratio (the hook's sanity bound): the canary's entry, else the inverse
    of the baseline's; same model 1.0; unknown None."""
    manifests = {"v2": {"latency": {"ratio_to": {"v1": 1.8}}}, "v1": {}}
    assert ev.expected_latency_ratio(manifests, "v1", "v2") == 1.8
    assert ev.expected_latency_ratio(manifests, "v2", "v1") == pytest.approx(1 / 1.8)
    assert ev.expected_latency_ratio(manifests, "v2", "v2") == 1.0
    assert ev.expected_latency_ratio({"v2": {"latency": {"ratio_to": {"v1": -1}}}}, "v1", "v2") is None


# --------------------------------------------------------------------------- records and evidence


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"source": "canary"}, "source"),
        ({"latency_ms": float("nan")}, "latency_ms"),
        ({"latency_ms": -1.0}, "latency_ms"),
        ({"status": 700}, "status"),
        ({"label": "spam"}, "label"),
        ({"shadow_label": "spam"}, "shadow_label"),
        ({"label": None}, "without a label"),
        ({"probe_id": None}, "probe_id"),
        ({"expected_label": None}, "expected_label"),
    ],
)
def test_a_malformed_record_says_what_is_wrong(change, message):
    """problem() names the bad field; collect() drops and counts the record."""
    good = EvidenceRecord("v2", OFFENSIVE, HATE, 200, 0.4, "probe", OFFENSIVE, "p1")
    assert good.problem() is None
    bad = replace(good, **change)
    assert message in bad.problem()
    assert _evidence([], [bad]).dropped == {"malformed": 1}


def test_collect_drops_other_models_and_repeated_probe_ids():
    """A record served by another model than its group's, or a probe id answered twice by one
    version, is left out and counted."""
    probe = EvidenceRecord("v2", OFFENSIVE, OFFENSIVE, 200, 0.4, "probe", OFFENSIVE, "p1")
    evidence = _evidence([], [probe, probe, replace(probe, model_version="v3", probe_id="p2")])
    assert evidence.dropped == {"repeated probe_id": 1, "canary record served by v3, not v2": 1}
    assert evidence.probe_answers == 1


def test_evidence_from_batches_adds_up_to_the_evidence_of_all_records():
    """collect(a) + collect(b) == collect(a + b) for disjoint batches; repeated probe ids raise."""
    baseline, canary = deployment(live_canary=80, live_baseline=700, probes=200, extra_errors=0.05)
    whole = _evidence(baseline, canary)
    merged = _evidence(baseline[::2], canary[::2]) + _evidence(baseline[1::2], canary[1::2])
    for name in ("requests", "errors", "live_pairs", "probe_labels", "probe_latency", "latencies", "dropped"):
        assert getattr(merged, name) == getattr(whole, name), name
    assert (merged.probe_answers, merged.probe_mismatches) == (whole.probe_answers, whole.probe_mismatches)
    with pytest.raises(ValueError, match="disjoint"):
        _ = whole + whole


def test_labels_match_the_api_and_the_request_records():
    """The judge's label vocabulary is the API's (infer.model) and the records' (canary.records)."""
    from canary.records import LABELS as RECORD_LABELS
    from infer.model import LABELS as API_LABELS

    assert LABELS == API_LABELS == RECORD_LABELS


# --------------------------------------------------------------------------- alpha spending


def test_planned_information_integrates_the_lag_distribution():
    """The closed form equals a numerical integral of lag_cdf over the window's records, is 0 at
    the start, grows, and is 1 once the longest lag has passed after the window."""
    for elapsed in (30.0, 60.0, 150.0, 300.0, 420.0, 700.0):
        covered = min(elapsed, CFG.window_s)
        grid = (np.arange(20000) + 0.5) * covered / 20000
        numeric = float(np.mean([ev.lag_cdf(elapsed - s, CFG) for s in grid])) * covered / CFG.window_s
        assert ev.planned_information(elapsed, CFG) == pytest.approx(numeric, abs=1e-5)
    values = [ev.planned_information(e, CFG) for e in range(0, 901, 30)]
    assert values[0] == 0.0 and values[-1] == pytest.approx(1.0)
    assert all(b >= a for a, b in zip(values, values[1:], strict=False))


def test_scheduled_looks_and_the_gate_spend_exactly_alpha():
    """Looks every minute of the canary plus the gate spend S(t(60)), ..., S(t(300)) - S(t(240))
    and alpha - S(t(300)): together exactly alpha; looks after the window spend nothing."""
    looks = [ev.look_alpha(e, CFG) for e in (60.0, 120.0, 180.0, 240.0, 300.0)]
    gate = ev.look_alpha(900.0, CFG, final=True)
    assert sum(looks) + gate == pytest.approx(CFG.alpha, rel=1e-12)
    t = ev.planned_information(120.0, CFG)
    assert looks[1] == pytest.approx(
        stats.pocock_spending(t, CFG.alpha)
        - stats.pocock_spending(ev.planned_information(60.0, CFG), CFG.alpha)
    )
    assert ev.look_alpha(420.0, CFG) == 0.0 and ev.look_alpha(0.0, CFG) == 0.0
    assert gate == pytest.approx(
        CFG.alpha - stats.pocock_spending(ev.planned_information(300.0, CFG), CFG.alpha)
    )


def test_irregular_looks_never_overspend():
    """Looks at least look_interval_s apart, at any times, plus the gate stay within alpha (the
    union bound the stateless judge relies on)."""
    rng = random.Random(3)
    for _ in range(200):
        e, total = 0.0, 0.0
        while e < 400.0:
            e += CFG.look_interval_s + rng.uniform(0.0, 90.0)
            total += ev.look_alpha(e, CFG)
        assert total + ev.look_alpha(0.0, CFG, final=True) <= CFG.alpha * (1 + 1e-12)


def test_holm_gives_the_smallest_p_value_a_third_of_the_look_level():
    """Errors, latency and paired_labels share each look's level by Holm: the most significant
    one is compared with alpha_look / 3; the probe rule takes no share."""
    report = judge(
        *deployment(live_canary=0, live_baseline=0, extra_errors=0.05), elapsed_s=300.0, final=False
    )
    tested = sorted((m for m in report.metrics if m.p_value is not None), key=lambda m: m.p_value)
    assert [m.alpha for m in tested] == pytest.approx([report.alpha_look / k for k in (3, 2, 1)])
    assert metric(report, "probe_agreement").alpha is None


def test_config_rejects_settings_it_cannot_run_with():
    """alpha outside (0, 1), a tolerance under 1 or a non-positive window are clear errors."""
    for bad in ({"alpha": 0.0}, {"latency_tolerance": 0.9}, {"window_s": 0.0}, {"probe_max_mismatches": -1}):
        with pytest.raises(ValueError):
            EvidenceConfig(**bad)


# --------------------------------------------------------------------------- power and plan


def test_the_plan_gives_the_defaults_their_numbers():
    """EvidenceConfig's minimum n's and the 5 texts/s probe are what plan() computes, and the
    chosen probe reaches 99 % on every design fault at the gate alone."""
    plan = ev.plan()
    assert (plan.probe_min, plan.errors_min_requests, plan.latency_min_pairs) == (
        CFG.probe_min,
        CFG.errors_min_requests,
        CFG.latency_min_pairs,
    )
    assert plan.probe_rps == 5.0 and plan.window_s == 300.0
    assert plan.metric_alpha == pytest.approx(ev.look_alpha(0, CFG, final=True) / 3)
    assert all(p >= 0.99 for p in plan.power.values()), plan.power
    assert any("days at 0.004 req/s" in line for line in plan.reasoning)


def test_errors_power_agrees_with_a_monte_carlo_of_fishers_test():
    """The enumerated power of the exact errors test equals simulated rejections (4 sd)."""
    n, alpha = 600, 0.00114
    power = ev.errors_power(n, 0.001, 0.02, alpha, 0.005)
    rng = np.random.default_rng(5)
    xc, xb = rng.binomial(n, 0.021, 3000), rng.binomial(n, 0.001, 3000)
    hits = [
        (c - b) / n >= 0.005 and stats.fisher_greater(c, n, b, n) <= alpha
        for c, b in zip(xc, xb, strict=True)
    ]
    assert np.mean(hits) == pytest.approx(power, abs=4 * math.sqrt(power * (1 - power) / 3000))


def test_sign_test_power_agrees_with_a_monte_carlo():
    """The sign test's power at 1.25x (tolerance 1.10, sd 0.40) equals simulated rejections."""
    n, alpha = 300, 0.00114
    power = ev.sign_test_power(n, 1.25, 1.10, 0.40, alpha)
    rng = np.random.default_rng(6)
    d = rng.normal(math.log(1.25), 0.40, (2000, n)) > math.log(1.10)
    hits = [stats.binom_sf(int(k), n, 0.5) <= alpha for k in d.sum(axis=1)]
    assert np.mean(hits) == pytest.approx(power, abs=4 * math.sqrt(power * (1 - power) / 2000))


def test_the_live_only_window_and_the_alpha_spent_over_the_looks():
    """Live traffic alone at 0.004 req/s would need weeks for the errors metric's n; the looks
    every minute of a 5-minute window and the gate together spend the whole alpha."""
    cfg = ev.EvidenceConfig()
    looks = [cfg.look_interval_s * k for k in range(1, int(cfg.window_s / cfg.look_interval_s) + 1)]
    assert looks == [60, 120, 180, 240, 300]
    spent = sum(ev.look_alpha(e, cfg) for e in looks) + ev.look_alpha(cfg.window_s, cfg, final=True)
    assert spent == pytest.approx(0.01)
    assert ev.live_window_needed(1270, 0.004, 0.1) / 86400 == pytest.approx(36.75, abs=0.01)
    with pytest.raises(ValueError):
        ev.live_window_needed(1270, 0.0, 0.1)


def test_group_summaries_show_each_source_apart_for_on_call():
    """The report's groups carry, per source, the served label counts and latency percentiles, so
    on-call sees live and probe evidence apart; aggregated live counts give their labels too."""
    baseline = [EvidenceRecord("v1", OFFENSIVE, NEITHER, 200, 0.3, "live")] * 3 + [
        EvidenceRecord("v1", HATE, HATE, 200, 0.2, "probe", HATE, "p1")
    ]
    canary = [EvidenceRecord("v2", NEITHER, OFFENSIVE, 200, 0.5, "live")] * 2 + [
        EvidenceRecord("v2", HATE, HATE, 200, 0.4, "probe", HATE, "p1"),
        EvidenceRecord("v2", None, None, 500, 0.4, "probe", NEITHER, "p2"),
    ]
    report = ev.judge(
        baseline, canary, baseline_model="v1", canary_model="v2", expected_latency_ratio=RATIO, elapsed_s=60
    )
    groups = report.as_dict()["groups"]
    assert groups["baseline"]["by_source"]["live"]["labels"] == {HATE: 0, OFFENSIVE: 3, NEITHER: 0}
    assert groups["canary"]["by_source"]["probe"]["labels"] == {HATE: 1, OFFENSIVE: 0, NEITHER: 0}
    assert groups["canary"]["by_source"]["live"]["latency_ms"]["p50"] == pytest.approx(0.5)
    counts = ev.collect_live_counts(
        [ev.LiveCount("v1", OFFENSIVE, NEITHER, 200, 7)],
        [ev.LiveCount("v2", NEITHER, OFFENSIVE, 200, 4)],
        baseline_model="v1",
        canary_model="v2",
    )
    assert counts.labels == {
        (Group.BASELINE, ev.Source.LIVE, OFFENSIVE): 7,
        (Group.CANARY, ev.Source.LIVE, NEITHER): 4,
    }
