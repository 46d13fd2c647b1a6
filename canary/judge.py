"""The canary judge: pure code, no AWS. Baseline vs canary records in, a verdict out.

A pipeline of small pure steps with closed vocabularies (after Netflix/Google's Kayenta):

  clean     records -> one Sample per version (malformed records dropped and counted, the
            baseline cut to the time the canary has been answering)
  measure   per metric: n on each side, a test statistic, a one-sided p-value, an effect size
  classify  Holm across the metrics measured at this look, then Pass / High / Low / NoData,
            always with a one-sentence reason
  score     % of the metrics with data that pass
  verdict   PASS / FAIL / INCONCLUSIVE

Metrics: `errors` (critical: canary 5xx rate above the baseline's, Fisher's exact test plus an
absolute excess floor), `latency` (one-sided Mann-Whitney U, canary slower, plus a floor on
the ratio and the difference of the medians), `labels` (chi-square homogeneity on the 2 x 3
table of canary labels against the baseline's labels mapped through the offline transition
matrix P(canary label | baseline label), plus a Jensen-Shannon distance floor).

Significance and effect are both needed to fail a metric: a significant but negligible
difference passes; a large difference that is not significant yet is NoData (INCONCLUSIVE),
never PASS; so is any metric below its minimum sample.

False alarms are budgeted per deployment: `alpha` is split evenly over the `looks` the judge
makes in one canary window (Bonferroni across looks; the looks share data, so the real rate is
lower), and Holm's step-down procedure splits each look's share across the metrics.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from canary import stats
from canary.records import LABELS, RecordSource, RequestRecord

SCHEMA = "canary-judge/1"


class Classification(StrEnum):
    """What one metric says about the canary (Kayenta's vocabulary)."""

    PASS = "Pass"  # no meaningful, significant difference in the harmful direction
    HIGH = "High"  # canary meaningfully and significantly above the baseline/expectation
    LOW = "Low"  # canary meaningfully and significantly below (harmless for latency)
    NODATA = "NoData"  # not enough evidence to classify: too few samples, or an effect not yet significant


class Verdict(StrEnum):
    """The judge's answer for the whole canary at one look."""

    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"


# The verdict metric (contract): namespace POWERTOOLS_METRICS_NAMESPACE, dimension FunctionName;
# the judge alarm fires on Maximum >= 2. Each judged look is logged with JUDGE_LOG_MESSAGE.
VERDICT_METRIC = "CanaryVerdict"
VERDICT_DIMENSION = "FunctionName"
VERDICT_VALUE = {Verdict.PASS: 0, Verdict.INCONCLUSIVE: 1, Verdict.FAIL: 2}
JUDGE_LOG_MESSAGE = "canary verdict"


@dataclass(frozen=True)
class JudgeConfig:
    """Thresholds of the judge (defaults measured in bench/judge.py; see BENCHMARKS.md)."""

    alpha: float = 0.01  # false-alarm budget for one whole deployment, all looks and metrics together
    looks: int = 5  # judge runs planned per canary window (5 minutes / 1 minute); each gets alpha/looks
    min_score: float = 100.0  # FAIL when fewer than this % of the metrics with data pass (100: each gates)
    errors_min_requests: int = 100  # requests per version below which `errors` is NoData
    errors_min_excess: float = 0.005  # canary 5xx rate minus baseline's (absolute) that is worth failing for
    latency_min_samples: int = 50  # successful requests per version below which `latency` is NoData
    latency_min_ratio: float = 1.2  # canary median / baseline median from which "slower" matters
    latency_min_shift_ms: float = 1.0  # ...and by this many ms (v2's own cost, +0.13 ms/text, stays under)
    labels_min_samples: int = 100  # labelled answers per version below which `labels` is NoData
    labels_min_jsd: float = 0.05  # JS distance (base 2), observed vs expected canary mix, that matters
    exact_below: float = 5.0  # expected cell count under which the label test is exact, not chi-square

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.looks < 1:
            raise ValueError(f"looks must be >= 1, got {self.looks}")
        if self.latency_min_ratio < 1.0:
            raise ValueError(f"latency_min_ratio must be >= 1, got {self.latency_min_ratio}")

    @property
    def alpha_per_look(self) -> float:
        return self.alpha / self.looks


@dataclass(frozen=True)
class Sample:
    """What one function version answered over the window."""

    function_version: str
    model_version: str
    requests: int  # every request
    errors: int  # requests answered 5xx
    latencies_ms: tuple[float, ...]  # latencies of the requests not answered 5xx, sorted
    labels: Mapping[str, int]  # label -> count, over the answers that carry a label

    @property
    def labelled(self) -> int:
        return sum(self.labels.values())

    def summary(self) -> dict[str, Any]:
        lat = self.latencies_ms
        n = self.labelled
        return {
            "function_version": self.function_version,
            "model_version": self.model_version,
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": self.errors / self.requests if self.requests else None,
            "latency_ms": {
                "p50": _finite(stats.quantile(lat, 0.5)),
                "p90": _finite(stats.quantile(lat, 0.9)),
                "p99": _finite(stats.quantile(lat, 0.99)),
            },
            "labels": {label: self.labels.get(label, 0) for label in LABELS},
            "label_shares": {label: (self.labels.get(label, 0) / n if n else None) for label in LABELS},
        }


@dataclass(frozen=True)
class Cleaned:
    """Output of the clean step."""

    baseline: Sample
    canary: Sample
    since: float | None  # start of the compared window (the canary's first answer)
    until: float | None  # the last answer seen
    dropped: Mapping[str, int]  # reason -> records left out


@dataclass(frozen=True)
class Floor:
    """One bar a metric's number must reach before the metric may decide anything: the minimum
    sample to judge at all, or an effect size from which a difference matters (Kayenta's
    effect-size thresholds). Reached means observed >= floor, in the harmful direction."""

    key: str  # the JudgeConfig field that sets it, e.g. "latency_min_shift_ms"
    name: str  # short name used in sentences and tables: "shift", "ratio", "sample"...
    kind: str  # "sample" (enough data to judge) | "effect" (big enough to matter)
    floor: float
    observed: float | None  # the number compared with the floor (None: not measurable)
    unit: str  # how both are written: "count" | "pct" | "ratio" | "ms" | "dist"
    noun: str = ""  # what a sample floor counts ("successful requests")

    @property
    def reached(self) -> bool:
        return self.observed is not None and math.isfinite(self.observed) and self.observed >= self.floor

    def show(self, x: float | None, *, as_floor: bool = False) -> str:
        """A value of this floor's quantity in its unit: observed "+0.32 ms", floor "+1 ms"."""
        if x is None or not math.isfinite(x):
            return "n/a"
        if self.unit == "count":
            return f"{x:.0f}"
        if self.unit == "pct":
            return f"{x:.2%}" if as_floor else f"{x:+.2%}"
        if self.unit == "ratio":
            return f"x{x:.2f}"
        if self.unit == "ms":
            return f"{x:+g} ms" if as_floor else f"{x:+.2f} ms"
        return f"{x:.3f}"

    @property
    def title(self) -> str:
        """The floor as sentences name it: "the +1 ms shift floor"."""
        if self.kind == "sample":
            return f"the minimum sample floor ({self.floor:g} {self.noun} per version)"
        return f"the {self.show(self.floor, as_floor=True)} {self.name} floor"

    @property
    def text(self) -> str:
        """Observed against floor in a table cell of <= 30 characters: "shift +0.32 ms < +1 ms"."""
        sign = ">=" if self.reached else "<"
        label = "n" if self.kind == "sample" else self.name
        return f"{label} {self.show(self.observed)} {sign} {self.show(self.floor, as_floor=True)}"

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["observed"] = _finite(self.observed)
        out.update(reached=self.reached, seen=self.show(self.observed), title=self.title, text=self.text)
        return out


@dataclass(frozen=True)
class MetricResult:
    """One metric's classification and everything needed to explain it."""

    name: str  # errors | latency | labels
    classification: Classification
    critical: bool  # a critical metric fails the canary on its own
    n_baseline: int
    n_canary: int
    test: str  # the statistical test used
    statistic: float | None
    p_value: float | None  # one-sided where the metric has a harmful direction
    alpha: float | None  # the level the p-value was compared with (Holm, this look)
    effect_name: str
    effect: float | None
    threshold: float  # the effect size from which a difference matters (the first effect floor)
    reason: str  # one sentence for on-call, naming what decided
    details: Mapping[str, Any] = field(default_factory=dict)
    floors: tuple[Floor, ...] = ()  # every floor that can decide this metric: sample first, then effect
    decided_by: tuple[str, ...] = ()  # the JudgeConfig fields that decided ("alpha": significance)

    @property
    def failed(self) -> bool:
        return self.classification is Classification.HIGH

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["classification"] = self.classification.value
        for key in ("statistic", "p_value", "alpha", "effect"):
            out[key] = _finite(out[key])
        out["floors"] = [{**f.as_dict(), "decided": f.key in self.decided_by} for f in self.floors]
        out["decided_by"] = list(self.decided_by)
        return out


@dataclass(frozen=True)
class JudgeReport:
    """The judge's answer at one look, self-explaining."""

    verdict: Verdict
    score: float | None  # % of the metrics with data that pass
    reason: str
    metrics: tuple[MetricResult, ...]
    baseline: Mapping[str, Any]  # Sample.summary() of the baseline
    canary: Mapping[str, Any]  # Sample.summary() of the canary
    expected_canary_shares: Mapping[str, float] | None  # what the canary should predict
    since: float | None
    until: float | None
    dropped: Mapping[str, int]
    config: JudgeConfig

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "verdict": self.verdict.value,
            "verdict_value": VERDICT_VALUE[self.verdict],
            "score": self.score,
            "reason": self.reason,
            "window": {"since": self.since, "until": self.until},
            "baseline": dict(self.baseline),
            "canary": dict(self.canary),
            "expected_canary_shares": None
            if self.expected_canary_shares is None
            else dict(self.expected_canary_shares),
            "metrics": [m.as_dict() for m in self.metrics],
            "multiple_testing": {
                "alpha_per_deployment": self.config.alpha,
                "looks": self.config.looks,
                "alpha_per_look": self.config.alpha_per_look,
                "method": "Bonferroni across looks, Holm across the metrics of a look",
            },
            "dropped": dict(self.dropped),
            "config": asdict(self.config),
        }


# --------------------------------------------------------------------------- clean


def clean(records: Iterable[RequestRecord], baseline_version: str, canary_version: str) -> Cleaned:
    """Split records into the two versions, dropping what cannot be judged (and saying why).

    The baseline is cut to start when the canary's first answer did, so both sides cover the
    same stretch of traffic.
    """
    dropped: Counter[str] = Counter()
    sides: dict[str, list[RequestRecord]] = {baseline_version: [], canary_version: []}
    for record in records:
        side = sides.get(record.function_version)
        if side is None:
            dropped["other function version"] += 1
            continue
        if record.problem():
            dropped["malformed"] += 1
            continue
        side.append(record)
    canary_times = [r.timestamp for r in sides[canary_version]]
    since = min(canary_times) if canary_times else None
    if since is not None:
        before = len(sides[baseline_version])
        sides[baseline_version] = [r for r in sides[baseline_version] if r.timestamp >= since]
        if before - len(sides[baseline_version]):
            dropped["baseline before the canary started"] += before - len(sides[baseline_version])
    all_times = [r.timestamp for rs in sides.values() for r in rs]
    until = max(all_times) if all_times else None
    baseline = _sample(baseline_version, sides[baseline_version], dropped)
    canary = _sample(canary_version, sides[canary_version], dropped)
    return Cleaned(baseline, canary, since, until, dict(dropped))


def _sample(version: str, records: Sequence[RequestRecord], dropped: Counter[str]) -> Sample:
    models = Counter(r.model_version for r in records)
    model = models.most_common(1)[0][0] if models else "unknown"
    if len(models) > 1:
        # one function version serves one model; anything else is a logging bug, not evidence
        dropped["model_version not the version's usual one"] += sum(
            n for m, n in models.items() if m != model
        )
        records = [r for r in records if r.model_version == model]
    labels = Counter(r.label for r in records if r.label is not None and r.status < 500)
    return Sample(
        function_version=version,
        model_version=model,
        requests=len(records),
        errors=sum(1 for r in records if r.status >= 500),
        latencies_ms=tuple(sorted(r.latency_ms for r in records if r.status < 500)),
        labels={label: labels.get(label, 0) for label in LABELS},
    )


# --------------------------------------------------------------------------- measure


@dataclass(frozen=True)
class _Measure:
    """A metric's numbers before classification (p_value None: not enough data)."""

    name: str
    critical: bool
    n_baseline: int
    n_canary: int
    test: str
    statistic: float | None
    p_value: float | None
    effect_name: str
    effect: float | None
    threshold: float
    meaningful: bool  # the effect reaches the threshold in the harmful direction
    not_enough: str | None  # why there is no decision (too few samples, no expectation)
    details: Mapping[str, Any]
    low_p_value: float = 1.0  # p-value of a meaningful effect in the harmless direction (latency)


def measure_errors(b: Sample, c: Sample, cfg: JudgeConfig) -> _Measure:
    """Fisher's exact one-sided test that the canary's 5xx rate exceeds the baseline's."""
    rate_b = b.errors / b.requests if b.requests else 0.0
    rate_c = c.errors / c.requests if c.requests else 0.0
    excess = rate_c - rate_b
    details = {"errors_baseline": b.errors, "errors_canary": c.errors, "rate_baseline": rate_b}
    details["rate_canary"] = rate_c
    common = {
        "name": "errors",
        "critical": True,
        "n_baseline": b.requests,
        "n_canary": c.requests,
        "test": "Fisher exact, one-sided (canary 5xx rate higher)",
        "effect_name": "5xx rate excess (canary - baseline)",
        "threshold": cfg.errors_min_excess,
        "details": details,
    }
    short = _too_few(b.requests, c.requests, cfg.errors_min_requests, "requests")
    if short:
        return _Measure(
            **common, statistic=None, p_value=None, effect=excess, meaningful=False, not_enough=short
        )
    p = stats.fisher_greater(c.errors, c.requests, b.errors, b.requests)
    return _Measure(
        **common,
        statistic=float(c.errors),
        p_value=p,
        effect=excess,
        meaningful=excess >= cfg.errors_min_excess,
        not_enough=None,
    )


def measure_latency(b: Sample, c: Sample, cfg: JudgeConfig) -> _Measure:
    """One-sided Mann-Whitney U (canary slower) and the ratio of the medians."""
    n_b, n_c = len(b.latencies_ms), len(c.latencies_ms)
    med_b = stats.median(b.latencies_ms) if n_b else math.nan
    med_c = stats.median(c.latencies_ms) if n_c else math.nan
    ratio = med_c / med_b if n_b and n_c and med_b > 0 else math.nan
    shift = med_c - med_b
    details = {"median_ms_baseline": _finite(med_b), "median_ms_canary": _finite(med_c)}
    details["median_shift_ms"] = _finite(shift)
    details["min_shift_ms"] = cfg.latency_min_shift_ms
    common = {
        "name": "latency",
        "critical": False,
        "n_baseline": n_b,
        "n_canary": n_c,
        "test": "Mann-Whitney U, one-sided (canary slower)",
        "effect_name": "median ratio (canary / baseline)",
        "threshold": cfg.latency_min_ratio,
        "details": details,
    }
    short = _too_few(n_b, n_c, cfg.latency_min_samples, "successful requests")
    if short:
        return _Measure(
            **common, statistic=None, p_value=None, effect=ratio, meaningful=False, not_enough=short
        )
    u, z, p = stats.mann_whitney_greater(c.latencies_ms, b.latencies_ms)
    details["z"] = z
    details["prob_canary_slower"] = u / (n_b * n_c)  # common-language effect size
    meaningful = ratio >= cfg.latency_min_ratio and shift >= cfg.latency_min_shift_ms
    faster = ratio <= 1.0 / cfg.latency_min_ratio and -shift >= cfg.latency_min_shift_ms
    low_p = stats.mann_whitney_greater(b.latencies_ms, c.latencies_ms)[2] if faster else 1.0
    details["p_value_faster"] = low_p
    return _Measure(
        **common,
        statistic=u,
        p_value=p,
        effect=ratio,
        meaningful=meaningful,
        not_enough=None,
        low_p_value=low_p,
    )


@dataclass(frozen=True)
class Transitions:
    """What the canary model should predict given the baseline model's label."""

    matrix: tuple[tuple[float, ...], ...]  # rows: baseline label, columns: canary label (LABELS order)
    row_counts: tuple[float, ...] | None  # test rows behind each row of the matrix; None: exact (identity)
    description: str

    def variance(self, pi: Sequence[float]) -> list[list[float]]:
        """Covariance that estimating the rows adds to pi T: sum_b pi_b^2 S(T_b) / N_b."""
        if self.row_counts is None:
            return [[0.0] * 3 for _ in range(3)]
        t, n = self.matrix, self.row_counts
        return [
            [sum(pi[b] ** 2 * _cov(t[b], i, j) / n[b] for b in range(3) if n[b] > 0) for j in range(3)]
            for i in range(3)
        ]


def expected_mix(
    baseline_model: str, canary_model: str, manifests: Mapping[str, Mapping[str, Any]]
) -> tuple[Transitions | None, str | None]:
    """P(canary label | baseline label) from the canary model's manifest, or why there is none.

    Same model on both sides: the identity (the canary should predict what the baseline does).
    Row sizes come from the manifest's "from_counts", else from "n" split by the baseline
    model's own test-split label shares.
    """
    if baseline_model == canary_model:
        identity = tuple(tuple(1.0 if i == j else 0.0 for j in range(3)) for i in range(3))
        return Transitions(identity, None, "identity (same model on both sides)"), None
    manifest = manifests.get(canary_model)
    if manifest is None:
        return None, f"no manifest for the canary's model {canary_model}"
    entry = (manifest.get("transitions") or {}).get(baseline_model)
    if not isinstance(entry, Mapping) or not isinstance(entry.get("matrix"), Mapping):
        return None, f"{canary_model}'s manifest has no transition matrix from {baseline_model}"
    rows = []
    for src in LABELS:
        row = entry["matrix"].get(src) or {}
        values = [max(0.0, float(row.get(dst, 0.0))) for dst in LABELS]
        total = sum(values)
        if total <= 0:
            return None, f"{canary_model}'s transition row for {baseline_model} label {src} is empty"
        rows.append(tuple(v / total for v in values))
    n = float(entry.get("n") or 0.0)
    counts = entry.get("from_counts")
    if isinstance(counts, Mapping):
        row_counts = tuple(float(counts.get(src, 0.0)) for src in LABELS)
    else:
        shares = (manifests.get(baseline_model) or {}).get("expected_label_distribution") or {}
        row_counts = tuple(n * float(shares.get(src, 1.0 / 3.0)) for src in LABELS)
    if not any(row_counts):
        return None, f"{canary_model}'s transition matrix from {baseline_model} gives no sample size"
    description = f"P({canary_model} label | {baseline_model} label) on {n:g} test rows"
    return Transitions(tuple(rows), row_counts, description), None


def measure_labels(
    b: Sample, c: Sample, cfg: JudgeConfig, manifests: Mapping[str, Mapping[str, Any]]
) -> tuple[_Measure, list[float] | None]:
    """Canary label counts against what the canary should predict, given the baseline's.

    The baseline row of the 2 x 3 table is mapped through T = P(canary label | baseline label):
    B~ = B T. The statistic is d' V^-1 d with d = canary shares - baseline shares x T and
    V = S(q)(1/n_c + 1/n_b) + V_T, where S(q) is the multinomial covariance at the pooled mix q
    and V_T = sum_b pi_b^2 S(T_b) / N_b is the sampling error of T's rows (each measured on N_b
    test rows). With the same model on both sides (T = I, V_T = 0) it is exactly Pearson's
    homogeneity chi-square. Treating the mapped baseline row as multinomial overstates its
    variance, so the test errs on the conservative side; the false-alarm rate is measured in
    bench/judge.py. Small expected counts: the exact conditional test (same model), or the
    exact multinomial distribution of the canary row with a Rao-Scott design-effect correction.
    """
    counts_b = [b.labels.get(label, 0) for label in LABELS]
    counts_c = [c.labels.get(label, 0) for label in LABELS]
    n_b, n_c = sum(counts_b), sum(counts_c)
    transitions, missing = expected_mix(b.model_version, c.model_version, manifests)
    same_model = b.model_version == c.model_version
    details: dict[str, Any] = {"transition": transitions.description if transitions else None}
    common = {
        "name": "labels",
        "critical": False,
        "n_baseline": n_b,
        "n_canary": n_c,
        "effect_name": "Jensen-Shannon distance net of sampling noise, observed vs expected canary mix",
        "threshold": cfg.labels_min_jsd,
        "details": details,
    }
    test = "chi-square homogeneity, baseline row mapped through T"
    short = missing or _too_few(n_b, n_c, cfg.labels_min_samples, "labelled answers")
    if short or transitions is None:
        common["test"] = test
        return _Measure(
            **common, statistic=None, p_value=None, effect=None, meaningful=False, not_enough=short
        ), None
    pi = [x / n_b for x in counts_b]
    t = transitions.matrix
    expected = [sum(pi[i] * t[i][j] for i in range(3)) for j in range(3)]
    shares_c = [x / n_c for x in counts_c]
    pooled = [(counts_c[j] + n_b * expected[j]) / (n_c + n_b) for j in range(3)]
    keep = [j for j in range(3) if pooled[j] > 0]
    v_t = transitions.variance(pi)
    scale = 1.0 / n_c + 1.0 / n_b
    v = [[_cov(pooled, i, j) * scale + v_t[i][j] for j in range(3)] for i in range(3)]
    diff = [shares_c[j] - expected[j] for j in range(3)]
    statistic, df = _quadratic_form(diff, v, keep)
    smallest = min((n * pooled[j] for j in keep for n in (n_c, n_b)), default=0.0)
    details["smallest_expected_count"] = smallest
    if df == 0:
        p = 1.0
    elif smallest >= cfg.exact_below:
        p = stats.chi2_sf(statistic, df)
        test = f"chi-square homogeneity (df={df}), baseline row mapped through T"
    else:
        p, test = _small_counts_p(counts_c, counts_b, pooled, v, keep, same_model, details)
    common["test"] = test
    # Sampling noise alone makes the observed distance positive (E[JS divergence] ~
    # sum_j V_jj / q_j / (8 ln 2) bits); the floor is compared with the distance net of it.
    jsd_raw = stats.jensen_shannon_distance(shares_c, expected)
    noise = sum(v[j][j] / pooled[j] for j in keep) / (8.0 * math.log(2.0))
    jsd = math.sqrt(max(0.0, jsd_raw * jsd_raw - noise))
    details["jsd_observed"] = jsd_raw
    details["jsd_noise"] = math.sqrt(noise)
    details["expected_shares"] = dict(zip(LABELS, expected, strict=True))
    details["df"] = df
    return _Measure(
        **common,
        statistic=statistic,
        p_value=p,
        effect=jsd,
        meaningful=jsd >= cfg.labels_min_jsd,
        not_enough=None,
    ), expected


def _small_counts_p(
    counts_c: list[int],
    counts_b: list[int],
    pooled: list[float],
    v: list[list[float]],
    keep: list[int],
    same_model: bool,
    details: dict[str, Any],
) -> tuple[float, str]:
    """(p-value, test name) of the label test when an expected count is too small for the
    chi-square: the exact conditional test (same model on both sides), or the exact multinomial
    distribution of the canary row with a Rao-Scott design-effect correction (noted in details)."""
    if same_model:
        return stats.exact_homogeneity(
            counts_c, counts_b
        ), "exact conditional homogeneity test (small expected counts)"
    n_c = sum(counts_c)
    v_canary = [[_cov(pooled, i, j) / n_c for j in range(3)] for i in range(3)]
    deff = _design_effect(v_canary, v, keep)
    x_canary = sum((counts_c[j] - n_c * pooled[j]) ** 2 / (n_c * pooled[j]) for j in keep)
    details["design_effect"] = deff
    p = stats.exact_multinomial_tail(counts_c, pooled, x_canary / deff)
    return p, "exact multinomial, Rao-Scott corrected (small expected counts)"


def _cov(q: Sequence[float], i: int, j: int) -> float:
    """Multinomial covariance of one draw's indicator vector at probabilities q."""
    return (q[i] if i == j else 0.0) - q[i] * q[j]


def _quadratic_form(
    d: Sequence[float], v: Sequence[Sequence[float]], keep: Sequence[int]
) -> tuple[float, int]:
    """d' V^-1 d over the kept categories minus one (shares sum to one), and its df."""
    idx = list(keep)[:-1]
    df = len(idx)
    if df == 0:
        return 0.0, 0
    if df == 1:
        i = idx[0]
        return (d[i] * d[i] / v[i][i] if v[i][i] > 0 else 0.0), 1
    (i, j) = idx
    a, b_, c_, e = v[i][i], v[i][j], v[j][i], v[j][j]
    det = a * e - b_ * c_
    if det <= 0:
        return 0.0, df
    return (e * d[i] * d[i] - (b_ + c_) * d[i] * d[j] + a * d[j] * d[j]) / det, df


def _design_effect(
    v_small: Sequence[Sequence[float]], v_full: Sequence[Sequence[float]], keep: Sequence[int]
) -> float:
    """Mean eigenvalue of V_small^-1 V_full over the free categories (Rao-Scott first order)."""
    idx = list(keep)[:-1]
    if not idx:
        return 1.0
    if len(idx) == 1:
        i = idx[0]
        return v_full[i][i] / v_small[i][i] if v_small[i][i] > 0 else 1.0
    i, j = idx
    a, b_, c_, e = v_small[i][i], v_small[i][j], v_small[j][i], v_small[j][j]
    det = a * e - b_ * c_
    if det <= 0:
        return 1.0
    inv = [[e / det, -b_ / det], [-c_ / det, a / det]]
    full = [[v_full[i][i], v_full[i][j]], [v_full[j][i], v_full[j][j]]]
    trace = sum(inv[r][k] * full[k][r] for r in range(2) for k in range(2))
    return max(1.0, trace / 2.0)


def _too_few(n_b: int, n_c: int, minimum: int, what: str) -> str | None:
    if n_c < minimum or n_b < minimum:
        return f"too few {what} to judge (baseline {n_b}, canary {n_c}; need {minimum} each)"
    return None


# --------------------------------------------------------------------------- classify


def classify(measures: Sequence[_Measure], cfg: JudgeConfig) -> list[MetricResult]:
    """Holm across the metrics that could be tested at this look, then one class per metric."""
    tested = [m for m in measures if m.not_enough is None and m.p_value is not None]
    decisions = dict(
        zip(
            (m.name for m in tested), stats.holm([m.p_value for m in tested], cfg.alpha_per_look), strict=True
        )
    )
    results = []
    for m in measures:
        significant, level = decisions.get(m.name, (False, None))
        wording = wording_for(m.name)
        floors = wording.floors(m, cfg)
        cls, reason, decided_by = _classify_one(m, significant, level, wording, floors)
        results.append(
            MetricResult(
                name=m.name,
                classification=cls,
                critical=m.critical,
                n_baseline=m.n_baseline,
                n_canary=m.n_canary,
                test=m.test,
                statistic=m.statistic,
                p_value=m.p_value,
                alpha=level,
                effect_name=m.effect_name,
                effect=m.effect,
                threshold=m.threshold,
                reason=reason,
                details=m.details,
                floors=floors,
                decided_by=decided_by,
            )
        )
    return results


def _classify_one(
    m: _Measure, significant: bool, level: float | None, w: MetricWording, floors: Sequence[Floor]
) -> tuple[Classification, str, tuple[str, ...]]:
    """The class (from the measure's own `meaningful`, never from the wording), the sentence and
    the config fields that decided it: a missed floor, or "alpha" when significance did."""
    effects = [f for f in floors if f.kind == "effect"]
    if m.not_enough is not None:
        missed = _keys(f for f in floors if f.kind == "sample" and not f.reached)
        return Classification.NODATA, w.not_enough(m, floors), missed
    effect = w.effect(m)
    p = f"p={_fmt_p(m.p_value)} vs alpha={_fmt_p(level)}"
    missed = _keys(f for f in effects if not f.reached)
    if significant and m.meaningful:
        sentence = f"{w.worse}: {effect} reaches {_titles(effects)}, and {p} is significant."
        return Classification.HIGH, sentence, (*_keys(effects), "alpha")
    if significant:
        return (
            Classification.PASS,
            f"Significant ({p}) but not meaningful: {effect} is {_against(effects)}.",
            missed,
        )
    if m.meaningful:
        sentence = f"{_cap(effect)} reaches {_titles(effects)} but {p} is not significant yet."
        return Classification.NODATA, sentence, ("alpha",)
    if level is not None and m.low_p_value <= level:
        return Classification.LOW, w.harmless(m, effects), (*_keys(effects), "alpha")
    return Classification.PASS, f"No meaningful difference: {effect} is {_against(effects)}; {p}.", missed


class MetricWording:
    """How one metric explains itself (after Kayenta's per-metric judge): the harm it looks for,
    its floors (read from the measure and the config) and how its effect is written. Wording
    only: the numbers come from measure_*, the class from _classify_one. A metric without its
    own wording still gets a sentence and its one threshold as a floor."""

    worse = "Canary worse than the baseline"  # what High means; every metric here harms upwards
    sample_key = ""  # JudgeConfig field of the minimum sample
    sample_noun = "samples"

    def floors(self, m: _Measure, cfg: JudgeConfig) -> tuple[Floor, ...]:
        """Every floor that can decide the metric: the minimum sample, then the effect floors."""
        if not self.sample_key:
            return self.effect_floors(m, cfg)
        smaller = float(min(m.n_baseline, m.n_canary))
        minimum = float(getattr(cfg, self.sample_key))
        sample = Floor(self.sample_key, "sample", "sample", minimum, smaller, "count", self.sample_noun)
        return (sample, *self.effect_floors(m, cfg))

    def effect_floors(self, m: _Measure, cfg: JudgeConfig) -> tuple[Floor, ...]:
        return (Floor("threshold", "effect", "effect", m.threshold, _finite(m.effect), "dist"),)

    def effect(self, m: _Measure) -> str:
        if _finite(m.effect) is None:
            return f"{m.effect_name} unknown"
        return f"{m.effect_name} {m.effect:.3g}"

    def not_enough(self, m: _Measure, floors: Sequence[Floor]) -> str:
        missed = [f for f in floors if f.kind == "sample" and not f.reached]
        if not missed:  # e.g. no expected label mix: the measure says why
            return _cap(m.not_enough or "not enough data") + "."
        text = (
            f"Too few {self.sample_noun} to judge: baseline {m.n_baseline}, canary {m.n_canary}, "
            f"under {missed[0].title}"
        )
        if m.not_enough and not m.not_enough.startswith("too few"):
            text += f"; and {m.not_enough}"
        return text + "."

    def harmless(self, m: _Measure, effects: Sequence[Floor]) -> str:
        return f"Canary better, which is harmless: {self.effect(m)}, p={_fmt_p(m.low_p_value)}."


class ErrorsWording(MetricWording):
    worse = "Canary answers more 5xx than the baseline"
    sample_key = "errors_min_requests"
    sample_noun = "requests"

    def effect_floors(self, m: _Measure, cfg: JudgeConfig) -> tuple[Floor, ...]:
        return (Floor("errors_min_excess", "excess", "effect", m.threshold, _finite(m.effect), "pct"),)

    def effect(self, m: _Measure) -> str:
        d = m.details
        return f"5xx rate {d['rate_canary']:.2%} vs {d['rate_baseline']:.2%} (excess {m.effect:+.2%})"


class LatencyWording(MetricWording):
    worse = "Canary is slower than the baseline"
    sample_key = "latency_min_samples"
    sample_noun = "successful requests"

    def effect_floors(self, m: _Measure, cfg: JudgeConfig) -> tuple[Floor, ...]:
        min_shift = float(m.details.get("min_shift_ms", cfg.latency_min_shift_ms))
        shift = m.details.get("median_shift_ms")
        return (
            Floor("latency_min_ratio", "ratio", "effect", m.threshold, _finite(m.effect), "ratio"),
            Floor("latency_min_shift_ms", "shift", "effect", min_shift, shift, "ms"),
        )

    def effect(self, m: _Measure) -> str:
        d = m.details
        med_c, med_b = d.get("median_ms_canary"), d.get("median_ms_baseline")
        if med_c is None or med_b is None:
            return "median latency unknown"
        ratio = "x?" if _finite(m.effect) is None else f"x{m.effect:.2f}"
        return f"median {med_c:.2f} vs {med_b:.2f} ms ({ratio}, {med_c - med_b:+.2f} ms)"

    def harmless(self, m: _Measure, effects: Sequence[Floor]) -> str:
        ratio, shift = effects
        return (
            f"Canary faster, which is harmless: {self.effect(m)} is past the x{1.0 / ratio.floor:.2f} ratio "
            f"and -{shift.floor:g} ms shift floors the other way, p={_fmt_p(m.low_p_value)}."
        )


class LabelsWording(MetricWording):
    worse = "Canary's labels differ from what it should predict"
    sample_key = "labels_min_samples"
    sample_noun = "labelled answers"

    def effect_floors(self, m: _Measure, cfg: JudgeConfig) -> tuple[Floor, ...]:
        return (Floor("labels_min_jsd", "JS distance", "effect", m.threshold, _finite(m.effect), "dist"),)

    def effect(self, m: _Measure) -> str:
        if _finite(m.effect) is None:
            return "JS distance unknown"
        observed = m.details.get("jsd_observed")
        seen = f" (observed {observed:.3f})" if isinstance(observed, float) else ""
        return f"JS distance {m.effect:.3f} net of noise{seen}"


WORDING: dict[str, MetricWording] = {
    "errors": ErrorsWording(),
    "latency": LatencyWording(),
    "labels": LabelsWording(),
}


def wording_for(name: str) -> MetricWording:
    return WORDING.get(name) or MetricWording()


def _keys(floors: Iterable[Floor]) -> tuple[str, ...]:
    return tuple(f.key for f in floors)


def _titles(floors: Sequence[Floor]) -> str:
    return " and ".join(f.title for f in floors) or "no floor"


def _against(effects: Sequence[Floor]) -> str:
    """Where the effect stands against each floor: "above the x1.20 ratio floor but under the +1 ms
    shift floor"."""
    reached = [f for f in effects if f.reached]
    missed = [f for f in effects if not f.reached]
    if reached and missed:
        return f"above {_titles(reached)} but under {_titles(missed)}"
    if missed:
        return f"under {_titles(missed)}"
    return f"not past {_titles(reached)}"  # only if the measure's floors and ours ever disagree


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _fmt_p(p: float | None) -> str:
    if p is None:
        return "n/a"
    return f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"


# --------------------------------------------------------------------------- score and verdict


def score(results: Sequence[MetricResult], cfg: JudgeConfig) -> tuple[Verdict, float | None, str]:
    """Verdict, score and a one-sentence reason from the per-metric classifications."""
    with_data = [r for r in results if r.classification is not Classification.NODATA]
    passed = [r for r in with_data if not r.failed]
    value = 100.0 * len(passed) / len(with_data) if with_data else None
    failed = [r for r in results if r.failed]
    critical = [r for r in failed if r.critical]
    nodata = [r for r in results if r.classification is Classification.NODATA]
    if critical:
        return Verdict.FAIL, value, f"Critical metric failed: {_names(critical)}. {critical[0].reason}"
    if failed and value is not None and value < cfg.min_score:
        return (
            Verdict.FAIL,
            value,
            f"Failed: {_names(failed)} (score {value:.0f} < {cfg.min_score:.0f}). {failed[0].reason}",
        )
    if nodata:
        return (
            Verdict.INCONCLUSIVE,
            value,
            f"Not enough evidence yet for {_names(nodata)}: {nodata[0].reason}",
        )
    return Verdict.PASS, value, f"All {len(results)} metrics pass (score {value:.0f})."


def _names(results: Sequence[MetricResult]) -> str:
    return ", ".join(r.name for r in results)


# --------------------------------------------------------------------------- entry points


def judge(
    records: Iterable[RequestRecord],
    *,
    baseline_version: str,
    canary_version: str,
    manifests: Mapping[str, Mapping[str, Any]],
    config: JudgeConfig | None = None,
) -> JudgeReport:
    """Judge the canary function version against the baseline one over these records.

    `manifests` maps model version ("v1") to its manifest; the canary model's "transitions"
    say what it should predict given the baseline model's labels.
    """
    cfg = config or JudgeConfig()
    cleaned = clean(records, baseline_version, canary_version)
    b, c = cleaned.baseline, cleaned.canary
    label_measure, expected = measure_labels(b, c, cfg, manifests)
    measures = [measure_errors(b, c, cfg), measure_latency(b, c, cfg), label_measure]
    results = classify(measures, cfg)
    verdict, value, reason = score(results, cfg)
    return JudgeReport(
        verdict=verdict,
        score=value,
        reason=reason,
        metrics=tuple(results),
        baseline=b.summary(),
        canary=c.summary(),
        expected_canary_shares=None if expected is None else dict(zip(LABELS, expected, strict=True)),
        since=cleaned.since,
        until=cleaned.until,
        dropped=cleaned.dropped,
        config=cfg,
    )


def judge_source(
    source: RecordSource,
    *,
    baseline_version: str,
    canary_version: str,
    manifests: Mapping[str, Mapping[str, Any]],
    now: float,
    window_s: float,
    config: JudgeConfig | None = None,
) -> JudgeReport:
    """Read the last `window_s` seconds of records from a source (the local RecordStore or
    CloudWatch Logs) and judge them."""
    records = source.window(now - window_s, now)
    return judge(
        records,
        baseline_version=baseline_version,
        canary_version=canary_version,
        manifests=manifests,
        config=config,
    )


def _finite(x: float | None) -> float | None:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return None
    return x
