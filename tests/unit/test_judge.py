"""The canary judge, one rule per test: errors, latency, labels, minimum samples, multiple testing."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as sp

from canary import stats
from canary.judge import (
    Classification,
    JudgeConfig,
    Sample,
    Verdict,
    clean,
    judge,
    measure_labels,
)
from canary.records import LABELS, RequestRecord
from canary.render import render_report

BASE, CANARY = "6", "7"
V1_MIX = (0.21, 0.63, 0.16)
# P(v2 label | v1 label), rows and columns in LABELS order
T_V2_V1 = ((0.21, 0.64, 0.15), (0.01, 0.97, 0.02), (0.01, 0.07, 0.92))
MANIFESTS = {
    "v1": {"version": "v1", "expected_label_distribution": dict(zip(LABELS, V1_MIX, strict=True))},
    "v2": {
        "version": "v2",
        "transitions": {
            "v1": {
                "n": 4953,
                "from_counts": {"hate_speech": 1043, "offensive_language": 3133, "neither": 777},
                "matrix": {
                    src: dict(zip(LABELS, row, strict=True)) for src, row in zip(LABELS, T_V2_V1, strict=True)
                },
            }
        },
    },
}


def make_records(
    version: str,
    model: str,
    n: int,
    *,
    mix=V1_MIX,
    median_ms: float = 3.0,
    sigma: float = 0.35,
    error_rate: float = 0.0,
    seed: int = 0,
    start: float = 1000.0,
    exact_mix: bool = True,
) -> list[RequestRecord]:
    """n records of one version; labels in exactly the given shares unless exact_mix=False."""
    rng = np.random.default_rng(seed)
    if exact_mix:
        counts = [int(round(n * p)) for p in mix]
        counts[1] += n - sum(counts)
        labels = [label for label, c in zip(LABELS, counts, strict=True) for _ in range(c)]
        rng.shuffle(labels)
    else:
        labels = [LABELS[i] for i in rng.choice(3, size=n, p=np.array(mix) / sum(mix))]
    latencies = rng.lognormal(math.log(median_ms), sigma, n)
    errors = rng.random(n) < error_rate
    out = []
    for i in range(n):
        status = 500 if errors[i] else 200
        out.append(
            RequestRecord(
                version,
                model,
                float(latencies[i]),
                None if errors[i] else labels[i],
                status,
                start + i * 0.01,
            )
        )
    return out


def run(baseline, canary, **config):
    return judge(
        baseline + canary,
        baseline_version=BASE,
        canary_version=CANARY,
        manifests=MANIFESTS,
        config=JudgeConfig(**config),
    )


def metric(report, name):
    return next(m for m in report.metrics if m.name == name)


def test_identical_versions_pass():
    """Same model, same latency, no errors: every metric passes and the verdict is PASS."""
    report = run(make_records(BASE, "v1", 9000, seed=1), make_records(CANARY, "v1", 1000, seed=2))
    assert report.verdict is Verdict.PASS
    assert [m.classification for m in report.metrics] == [Classification.PASS] * 3
    assert report.score == 100.0


def test_every_metric_explains_itself():
    """Each metric carries n per side, statistic, p-value, alpha, effect, threshold and a sentence."""
    report = run(make_records(BASE, "v1", 9000, seed=1), make_records(CANARY, "v1", 1000, seed=2))
    for m in report.metrics:
        assert m.n_baseline > 0 and m.n_canary > 0
        assert m.statistic is not None and m.p_value is not None and m.alpha is not None
        assert m.effect is not None and m.threshold > 0
        assert m.reason.endswith(".") and len(m.reason) > 20
    json.dumps(report.as_dict())  # the whole report is plain JSON


def test_errors_above_the_floor_and_significant_fail_on_their_own():
    """Canary +2 % 5xx: `errors` is High and, being critical, fails the canary alone."""
    report = run(
        make_records(BASE, "v1", 9000, seed=1, error_rate=0.001),
        make_records(CANARY, "v1", 1000, seed=2, error_rate=0.021),
    )
    errors = metric(report, "errors")
    assert errors.classification is Classification.HIGH and errors.critical
    assert report.verdict is Verdict.FAIL
    assert "Critical metric failed: errors" in report.reason


def test_errors_significant_but_below_the_floor_pass():
    """A 0.3 % excess of 5xx over a huge sample is significant but under the 0.5 % floor: Pass."""
    baseline = make_records(BASE, "v1", 60000, seed=1)
    canary = make_records(CANARY, "v1", 20000, seed=2)
    canary = [
        RequestRecord(r.function_version, r.model_version, r.latency_ms, None, 500, r.timestamp)
        if i < 60
        else r
        for i, r in enumerate(canary)
    ]
    errors = metric(run(baseline, canary), "errors")
    assert errors.p_value < errors.alpha
    assert errors.classification is Classification.PASS
    assert "not meaningful" in errors.reason


def test_errors_above_the_floor_without_significance_are_inconclusive():
    """1 error in 120 canary requests (0.8 %) is above the floor but not significant: NoData."""
    canary = make_records(CANARY, "v1", 120, seed=2)
    canary[5] = RequestRecord(CANARY, "v1", 3.0, None, 503, canary[5].timestamp)
    report = run(make_records(BASE, "v1", 1080, seed=1), canary)
    assert metric(report, "errors").classification is Classification.NODATA
    assert report.verdict is Verdict.INCONCLUSIVE


def test_latency_one_and_a_half_times_slower_fails():
    """Canary 1.5x slower: Mann-Whitney significant and median ratio ~1.5 >= 1.2: High, FAIL."""
    report = run(
        make_records(BASE, "v1", 2700, seed=1), make_records(CANARY, "v1", 300, seed=2, median_ms=4.5)
    )
    latency = metric(report, "latency")
    assert latency.classification is Classification.HIGH
    assert latency.effect == pytest.approx(1.5, rel=0.1)
    assert report.verdict is Verdict.FAIL


def test_latency_significant_without_meaningful_effect_passes():
    """5 % slower over 20,000 requests: significant, but under the x1.2 floor, so it passes."""
    report = run(
        make_records(BASE, "v1", 60000, seed=1), make_records(CANARY, "v1", 20000, seed=2, median_ms=3.15)
    )
    latency = metric(report, "latency")
    assert latency.p_value < latency.alpha
    assert latency.classification is Classification.PASS
    assert report.verdict is Verdict.PASS


def test_latency_effect_without_significance_at_small_n_is_inconclusive():
    """x1.4 median on 60 widely spread requests: meaningful but not significant: NoData, never PASS."""
    report = run(
        make_records(BASE, "v1", 540, seed=1, sigma=1.2),
        make_records(CANARY, "v1", 60, seed=11, median_ms=4.2, sigma=1.2),
        labels_min_samples=50,
        errors_min_requests=50,
    )
    latency = metric(report, "latency")
    assert latency.effect >= 1.2 and latency.p_value > latency.alpha
    assert latency.classification is Classification.NODATA
    assert report.verdict is Verdict.INCONCLUSIVE


def test_latency_small_absolute_shift_passes_even_when_relatively_large():
    """0.5 ms -> 1.0 ms (x2, like a heavier model's known cost) stays under the 1 ms floor: Pass."""
    report = run(
        make_records(BASE, "v1", 2700, seed=1, median_ms=0.5),
        make_records(CANARY, "v1", 300, seed=2, median_ms=1.0),
    )
    latency = metric(report, "latency")
    assert latency.effect > 1.9 and latency.p_value < latency.alpha
    assert latency.classification is Classification.PASS


def test_latency_faster_canary_is_low_and_harmless():
    """A canary twice as fast is classified Low and does not fail the canary."""
    report = run(
        make_records(BASE, "v1", 2700, seed=1), make_records(CANARY, "v1", 300, seed=2, median_ms=1.5)
    )
    assert metric(report, "latency").classification is Classification.LOW
    assert report.verdict is Verdict.PASS


def test_below_minimum_samples_is_inconclusive_never_pass():
    """40 canary requests: every metric is NoData and the verdict is INCONCLUSIVE, not PASS."""
    report = run(make_records(BASE, "v1", 360, seed=1), make_records(CANARY, "v1", 40, seed=2))
    assert all(m.classification is Classification.NODATA for m in report.metrics)
    assert all("too few" in m.reason.lower() for m in report.metrics)
    assert report.verdict is Verdict.INCONCLUSIVE and report.score is None


def test_no_canary_records_is_inconclusive():
    """Only baseline traffic in the window: INCONCLUSIVE."""
    report = run(make_records(BASE, "v1", 3000, seed=1), [])
    assert report.verdict is Verdict.INCONCLUSIVE


def test_labels_intended_v1_to_v2_change_passes():
    """A v2 canary predicting exactly v1's mix x T (far from v1's own mix) passes."""
    expected = tuple(np.array(V1_MIX) @ np.array(T_V2_V1))
    report = run(
        make_records(BASE, "v1", 13500, seed=1), make_records(CANARY, "v2", 1500, seed=2, mix=expected)
    )
    labels = metric(report, "labels")
    assert labels.classification is Classification.PASS
    assert stats.jensen_shannon_distance(V1_MIX, expected) > 0.1  # the change is large...
    assert labels.effect < 0.01  # ...and exactly what was expected
    assert report.verdict is Verdict.PASS


def test_labels_v2_judged_without_transitions_would_fail():
    """The same v2 mix against v1's mix as if no change were intended fails: T is what saves it."""
    expected = tuple(np.array(V1_MIX) @ np.array(T_V2_V1))
    manifests = {"v1": MANIFESTS["v1"], "v2": {"version": "v2", "transitions": {}}}
    baseline = make_records(BASE, "v1", 13500, seed=1)
    canary = make_records(CANARY, "v1", 1500, seed=2, mix=expected)  # logged as if the same model
    report = judge(baseline + canary, baseline_version=BASE, canary_version=CANARY, manifests=manifests)
    assert metric(report, "labels").classification is Classification.HIGH
    assert report.verdict is Verdict.FAIL


def test_labels_broken_model_forcing_a_class_fails():
    """A v2 canary with 20 % of its answers forced to hate_speech is High and FAILs."""
    expected = np.array(V1_MIX) @ np.array(T_V2_V1)
    broken = tuple(0.8 * expected + 0.2 * np.array([1.0, 0.0, 0.0]))
    report = run(make_records(BASE, "v1", 2700, seed=1), make_records(CANARY, "v2", 300, seed=2, mix=broken))
    labels = metric(report, "labels")
    assert labels.classification is Classification.HIGH
    assert report.verdict is Verdict.FAIL


def test_labels_without_a_transition_matrix_are_inconclusive():
    """Different models and no transition matrix in the canary's manifest: NoData, never PASS."""
    manifests = {"v1": MANIFESTS["v1"], "v2": {"version": "v2"}}
    baseline = make_records(BASE, "v1", 2700, seed=1)
    canary = make_records(CANARY, "v2", 300, seed=2)
    report = judge(baseline + canary, baseline_version=BASE, canary_version=CANARY, manifests=manifests)
    labels = metric(report, "labels")
    assert labels.classification is Classification.NODATA
    assert "no transition matrix from v1" in labels.reason
    assert report.verdict is Verdict.INCONCLUSIVE


def test_labels_significant_but_tiny_shift_passes():
    """A 1-point shift over 100,000 answers a side is significant but far below the JS floor: Pass."""
    shifted = (0.21, 0.62, 0.17)
    report = run(
        make_records(BASE, "v1", 100000, seed=1), make_records(CANARY, "v1", 100000, seed=2, mix=shifted)
    )
    labels = metric(report, "labels")
    assert labels.p_value < labels.alpha
    assert labels.effect < 0.04
    assert labels.classification is Classification.PASS


def test_label_statistic_is_pearson_homogeneity_for_the_same_model():
    """With the same model on both sides the label statistic is scipy's 2 x 3 homogeneity chi-square."""
    b = Sample(BASE, "v1", 3000, 0, (1.0,), {"hate_speech": 600, "offensive_language": 1900, "neither": 500})
    c = Sample(CANARY, "v1", 300, 0, (1.0,), {"hate_speech": 75, "offensive_language": 180, "neither": 45})
    m, _ = measure_labels(b, c, JudgeConfig(), MANIFESTS)
    chi2, p, _, _ = sp.chi2_contingency(np.array([[75, 180, 45], [600, 1900, 500]]), correction=False)
    assert m.statistic == pytest.approx(chi2, rel=1e-9)
    assert m.p_value == pytest.approx(p, rel=1e-9)


def test_labels_use_the_exact_test_when_expected_counts_are_small():
    """A rare label (expected count < 5) switches the same-model test to the exact conditional one."""
    b = Sample(BASE, "v1", 2000, 0, (1.0,), {"hate_speech": 10, "offensive_language": 1590, "neither": 400})
    c = Sample(CANARY, "v1", 150, 0, (1.0,), {"hate_speech": 4, "offensive_language": 110, "neither": 36})
    m, _ = measure_labels(b, c, JudgeConfig(), MANIFESTS)
    assert m.test.startswith("exact conditional")
    assert m.p_value == pytest.approx(stats.exact_homogeneity([4, 110, 36], [10, 1590, 400]))


def test_labels_small_counts_across_models_use_rao_scott_exact():
    """Different models with a rare expected label use the exact multinomial with a design effect."""
    b = Sample(BASE, "v1", 2000, 0, (1.0,), {"hate_speech": 20, "offensive_language": 1580, "neither": 400})
    c = Sample(CANARY, "v2", 120, 0, (1.0,), {"hate_speech": 1, "offensive_language": 100, "neither": 19})
    m, _ = measure_labels(b, c, JudgeConfig(labels_min_samples=100), MANIFESTS)
    assert m.test.startswith("exact multinomial")
    assert m.details["design_effect"] >= 1.0
    assert 0.0 < m.p_value <= 1.0


def test_label_test_false_alarm_rate_is_nominal_under_the_null():
    """Across models with T redrawn within its sampling error, 5 % tests reject ~5 % of the time."""
    rng = np.random.default_rng(2024)
    t_hat = np.array(T_V2_V1)
    counts = np.array([1043, 3133, 777])
    pi = np.array(V1_MIX)
    rejections = 0
    draws = 1500
    for _ in range(draws):
        t_true = np.array([rng.dirichlet(row * n + 0.5) for row, n in zip(t_hat, counts, strict=True)])
        q = pi @ t_true
        b_counts = rng.multinomial(2700, pi)
        c_counts = rng.multinomial(300, q / q.sum())
        b = Sample(BASE, "v1", 2700, 0, (1.0,), dict(zip(LABELS, b_counts.tolist(), strict=True)))
        c = Sample(CANARY, "v2", 300, 0, (1.0,), dict(zip(LABELS, c_counts.tolist(), strict=True)))
        m, _ = measure_labels(b, c, JudgeConfig(), MANIFESTS)
        rejections += m.p_value < 0.05
    assert 0.025 < rejections / draws < 0.065


def test_holm_splits_each_looks_alpha_across_metrics():
    """The smallest p-value is compared with alpha/looks/3, the next with alpha/looks/2, then alpha/looks."""
    report = run(
        make_records(BASE, "v1", 2700, seed=1, error_rate=0.001),
        make_records(CANARY, "v1", 300, seed=2, median_ms=4.5, error_rate=0.05),
        alpha=0.01,
        looks=5,
    )
    alphas = sorted(m.alpha for m in report.metrics)
    assert alphas == pytest.approx([0.002 / 3, 0.002 / 2, 0.002])


def test_clean_drops_malformed_other_versions_and_baseline_before_the_canary():
    """Clean keeps both versions' sound records from the canary's first answer on, and counts the rest."""
    records = [
        RequestRecord(BASE, "v1", 3.0, "neither", 200, 10.0),  # before the canary started
        RequestRecord(BASE, "v1", 3.0, "neither", 200, 21.0),
        RequestRecord(CANARY, "v1", 3.0, "neither", 200, 20.0),
        RequestRecord(CANARY, "v1", -1.0, "neither", 200, 22.0),  # negative latency
        RequestRecord(CANARY, "v1", 3.0, "bogus", 200, 23.0),  # unknown label
        RequestRecord(CANARY, "v1", 3.0, None, 200, 24.0),  # 200 without a label
        RequestRecord("5", "v1", 3.0, "neither", 200, 25.0),  # a third version
        RequestRecord(CANARY, "v9", 3.0, "neither", 200, 26.0),  # not the canary's usual model
        RequestRecord(CANARY, "v1", 3.0, "neither", 200, 27.0),
    ]
    cleaned = clean(records, BASE, CANARY)
    assert cleaned.baseline.requests == 1 and cleaned.canary.requests == 2
    assert cleaned.since == 20.0 and cleaned.until == 27.0
    assert cleaned.dropped == {
        "baseline before the canary started": 1,
        "malformed": 3,
        "other function version": 1,
        "model_version not the version's usual one": 1,
    }


def test_latency_ignores_5xx_answers():
    """Fast 500s do not make a broken canary look faster: latency uses non-5xx answers only."""
    canary = make_records(CANARY, "v1", 300, seed=2, error_rate=0.5)
    sample = clean(canary, BASE, CANARY).canary
    assert len(sample.latencies_ms) == sample.requests - sample.errors


def test_config_rejects_nonsense():
    """Alpha outside (0, 1), zero looks or a latency floor below 1 are refused."""
    for bad in ({"alpha": 0.0}, {"alpha": 1.5}, {"looks": 0}, {"latency_min_ratio": 0.9}):
        with pytest.raises(ValueError):
            JudgeConfig(**bad)


# --------------------------------------------------------------------------- floors and wording

FLOOR_KEYS = {
    "errors": ["errors_min_requests", "errors_min_excess"],
    "latency": ["latency_min_samples", "latency_min_ratio", "latency_min_shift_ms"],
    "labels": ["labels_min_samples", "labels_min_jsd"],
}


def _too_few():
    """45 canary answers: under every metric's minimum sample."""
    return run(make_records(BASE, "v1", 540, seed=1), make_records(CANARY, "v1", 45, seed=2))


def _errors_under_excess():
    """60 5xx in 20,000 canary requests (+0.3 points): significant, under the 0.5-point floor."""
    canary = [
        RequestRecord(r.function_version, r.model_version, r.latency_ms, None, 500, r.timestamp)
        if i < 60
        else r
        for i, r in enumerate(make_records(CANARY, "v1", 20000, seed=2))
    ]
    return run(make_records(BASE, "v1", 60000, seed=1), canary)


def _latency_under_ratio():
    """10 -> 11 ms: +1.1 ms clears the shift floor but x1.11 is under the x1.20 ratio floor."""
    return run(
        make_records(BASE, "v1", 2700, seed=1, median_ms=10.0),
        make_records(CANARY, "v1", 300, seed=2, median_ms=11.5),
    )


def _latency_under_shift():
    """0.5 -> 1.0 ms: x2 clears the ratio floor but +0.5 ms is under the +1 ms shift floor."""
    return run(
        make_records(BASE, "v1", 2700, seed=1, median_ms=0.5),
        make_records(CANARY, "v1", 300, seed=2, median_ms=1.0),
    )


def _labels_under_jsd():
    """A 2-point shift over 30,000 answers a side: significant, under the 0.05 JS distance floor."""
    return run(
        make_records(BASE, "v1", 30000, seed=1),
        make_records(CANARY, "v1", 30000, seed=2, mix=(0.21, 0.61, 0.18)),
    )


@pytest.mark.parametrize(
    ("name", "scenario", "key", "classification", "named"),
    [
        ("errors", _too_few, "errors_min_requests", "NoData", "minimum sample floor (100 requests per"),
        ("errors", _errors_under_excess, "errors_min_excess", "Pass", "under the 0.50% excess floor"),
        ("latency", _too_few, "latency_min_samples", "NoData", "floor (50 successful requests per"),
        ("latency", _latency_under_ratio, "latency_min_ratio", "Pass", "under the x1.20 ratio floor"),
        ("latency", _latency_under_shift, "latency_min_shift_ms", "Pass", "under the +1 ms shift floor"),
        ("labels", _too_few, "labels_min_samples", "NoData", "floor (100 labelled answers per"),
        ("labels", _labels_under_jsd, "labels_min_jsd", "Pass", "under the 0.050 JS distance floor"),
    ],
)
def test_each_floor_decides_and_the_sentence_and_table_name_it(name, scenario, key, classification, named):
    """For each metric, a case decided by each of its floors: the result says which floor decided,
    the sentence names that floor as the one missed, and the on-call table shows every
    floor of the metric with the deciding one marked."""
    report = scenario()
    m = metric(report, name)
    assert m.classification.value == classification
    assert m.decided_by == (key,)
    assert named in m.reason
    assert [f.key for f in m.floors] == FLOOR_KEYS[name]
    assert key in {f.key for f in m.floors if not f.reached}  # the deciding floor is one missed
    # the same floors, marked, in the JSON and in the 80-column text table
    as_dict = next(x for x in report.as_dict()["metrics"] if x["name"] == name)
    assert [(f["key"], f["decided"]) for f in as_dict["floors"]] == [(k, k == key) for k in FLOOR_KEYS[name]]
    text = render_report({"judge": report.as_dict()})
    assert max(len(line) for line in text.splitlines()) <= 80
    for f in as_dict["floors"]:
        assert (f["text"] + (" *" if f["decided"] else "")) in text.splitlines()[_row(text, name, f)]


def _row(text: str, name: str, floor: dict) -> int:
    """Index of the table line of `name` that shows `floor` (the metric's row or one under it)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"  {name:<8} "))
    return next(i for i in range(start, start + 4) if floor["text"] in lines[i])


def test_a_mixed_latency_sentence_says_which_floor_was_cleared_and_which_missed():
    """x1.9 but +0.5 ms: "above the x1.20 ratio floor but under the +1 ms shift floor", never the
    old contradiction of a ratio "below" a floor it is above."""
    m = metric(_latency_under_shift(), "latency")
    assert "above the x1.20 ratio floor but under the +1 ms shift floor" in m.reason
    assert "below the x1.20" not in m.reason


def test_a_failure_names_every_effect_floor_and_significance():
    """High: every effect floor was reached and the p-value was significant: all of them decided."""
    report = run(
        make_records(BASE, "v1", 2700, seed=1), make_records(CANARY, "v1", 300, seed=2, median_ms=4.5)
    )
    m = metric(report, "latency")
    assert m.classification is Classification.HIGH
    assert m.decided_by == ("latency_min_ratio", "latency_min_shift_ms", "alpha")
    assert "reaches the x1.20 ratio floor and the +1 ms shift floor" in m.reason
    assert all(f.reached for f in m.floors)


def test_an_effect_not_yet_significant_is_decided_by_alpha():
    """NoData with every floor reached: significance decided, and the sentence says so."""
    m = metric(
        run(
            make_records(BASE, "v1", 540, seed=1, sigma=1.2),
            make_records(CANARY, "v1", 60, seed=11, median_ms=4.2, sigma=1.2),
            labels_min_samples=50,
            errors_min_requests=50,
        ),
        "latency",
    )
    assert m.classification is Classification.NODATA and m.decided_by == ("alpha",)
    assert "not significant yet" in m.reason and all(f.reached for f in m.floors)


def test_floors_follow_the_config_and_agree_with_the_classification():
    """Floors are read from JudgeConfig (JUDGE_* overrides show up in the table), and High always
    means every floor reached: with a +2 ms shift floor the same x1.5 canary passes on the shift."""
    baseline = make_records(BASE, "v1", 2700, seed=1)
    canary = make_records(CANARY, "v1", 300, seed=2, median_ms=4.5)
    m = metric(run(baseline, canary, latency_min_shift_ms=2.0), "latency")
    assert m.classification is Classification.PASS and m.decided_by == ("latency_min_shift_ms",)
    assert "under the +2 ms shift floor" in m.reason
    assert {f.key for f in m.floors} <= set(JudgeConfig.__dataclass_fields__)
