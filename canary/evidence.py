"""The evidence judge (issue 10): does the canary version behave like the baseline, on evidence?

Pure functions and small frozen dataclasses; standard library and canary.stats only (the judge
Lambda stays lean). Records of two groups come in (the baseline function version's and the
canary's), a verdict comes out, and every number behind it.

Evidence (what each record carries: EvidenceRecord)
  * live records: users' requests. Every package ships every model, so each request is scored
    by the model it is served with and, in the shadow, by every other shipped model: their labels
    are logged.
  * probe records: a synthetic probe sends labelled texts straight to both versions at the
    same moment (one probe id for the pair). Models are deterministic, so a healthy version
    answers exactly the label its manifest recorded for the text.
  Live records may also come as counts (LiveCount, collect_live_counts: one aggregated log row
  per group, model, labels and status), since no metric reads a live latency; at 1,000 req/s a
  window's 300,000 live records are a few dozen rows. Evidence of disjoint batches merges by `+`.

Metrics (one object each; it knows its direction, floor and wording; Kayenta style)
  probe_agreement  the canary's probe answers must equal the manifest's labels. Rule: FAIL on
                   >= 1 mismatch (probe_max_mismatches = 0). Deterministic models give a healthy
                   version exactly 0 mismatches, so this rule spends no false-alarm budget and
                   any tolerance would only cost power. Power against a fault that changes a
                   fraction f of the answers: 1 - (1 - f)^n.
  paired_labels    pairs (old model's label, new model's label): in the canary group (shadow,
                   served), in the baseline group (served, shadow). Same routing and
                   deterministic models: a healthy canary's pairs have the same joint
                   distribution as the baseline's, whatever the input mix (no transition
                   matrix is needed, so 2x hate speech changes nothing). Per new label j, a
                   one-sided Cochran-Mantel-Haenszel test (canary says j more often): live
                   pairs stratified by old label, plus each probe id as its own stratum (the
                   same text in both groups: McNemar inside CMH; pooling probe pairs by old
                   label instead would add variance without variability and dilute the live
                   evidence); exact while small; Bonferroni over the 3 labels. The effect is
                   the total variation distance of the Mantel-Haenszel risk differences, floor
                   labels_min_tvd.
  errors           the canary's extra 5xx rate: one-sided CMH across sources (live, probe; the
                   exact conditional test, Fisher's, when small), floor errors_min_excess on the
                   Mantel-Haenszel risk difference.
  latency          the probe's paired latencies: per pair, the canary/baseline ratio divided by
                   the expected ratio, the latency reference the PreTraffic hook measured on the
                   two deployed versions at the probe's own pace (canary/hook.py: median over the
                   probe set of the paired handler-latency ratios; the ratio depends on the pace,
                   bench/latency_pace.py); exact sign test of H0 "median of that excess ratio
                   <= latency_tolerance" (distribution-free: cold starts and GC pauses count
                   once, not by their size). Real scale: a ratio, no absolute ms floor. Without
                   a reference yet (the hook's record not visible) the metric is NoData: never a
                   pass. Live latencies are reported, not tested (their texts differ from the
                   ones the reference was measured on).

False alarms: 1 % per deployment, every rule inside it
  * across looks: Lan-DeMets Pocock-type spending alpha * ln(1 + (e - 1) t) of the planned
    information fraction t (planned_information: the share of the window's records expected
    to be visible, given the log lag). A look at elapsed time e spends S(t(e)) - S(t(e - dt));
    looks at least dt apart spend disjoint increments, so the sum is <= S(t(window)) whatever
    the dependence (union bound; stateless: the judge Lambda needs no memory). The PostTraffic
    gate, once the window's records are complete, gets the rest: alpha - S(t(window)).
  * across metrics: Holm over errors, latency and paired_labels at each look's level;
    probe_agreement costs nothing (deterministic).

Verdict: FAIL when any critical metric fails; PASS only when every metric has its minimum n
(the n at which it has >= 99 % power against its design fault: so "not significant" is evidence
of absence) and none fails; otherwise INCONCLUSIVE, naming what lacks how much. A metric that
raises becomes an Error result with the exception in its reason, never a silent pass.
The gate rule (gate_decision): the deployment succeeds only on PASS at the final look; FAIL,
INCONCLUSIVE, a non-final report or no report at all (a judge that crashed or never ran) fail it.

The plan (plan(); numbers for the defaults, DesignFaults()): window 300 s (Canary10Percent5Minutes
unchanged), probe 5 texts/s to each version (1,500 pairs per window).
  * gate level per metric, worst case under Holm: (alpha - S(t(300 s))) / 3 = 0.00114 with a
    lognormal log lag (median 120 s, sigma 0.6, at most 600 s): t(300 s) = 0.54.
  * +2 % errors (0.1 % -> 2.1 %): exact Fisher power >= 99 % needs 1,270 requests per group:
    this sets the probe rate, 1,270 x 1.15 (margin for lagging records) / 300 s -> 5 /s.
  * 1.25x latency beyond the expected ratio (tolerance 1.10, paired log-latency sd 0.40):
    the sign test needs 460 pairs; 1.5x needs 90. The expected ratio must be measured where the
    versions run: a healthy canary whose real ratio is 8 % above it still passes (false alarm
    < 1e-5 at 1,500 pairs), 15 % above fails 64 % of the time, 20 % above almost always. Hence
    the PreTraffic hook's reference, not the manifests' ratio timed on a training machine.
  * 20 % forced to one label, probe set balanced over the canary model's labels (1/3 each):
    f = 0.2 x 2/3, n = ln(0.01) / ln(1 - f) = 33 probe answers.
  Without a probe the live traffic alone would need n / (rate x share) seconds: 1,270 / (50 x
  0.1) = 254 s at 50 req/s, but 1,270 / (0.004 x 0.1) = 37 days at the usage plan's 0.004 req/s.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from canary import stats
from infer.model import LABELS  # the API's labels: one home

SCHEMA = "canary-evidence/1"


class Source(StrEnum):
    """Where a record came from."""

    LIVE = "live"  # a user's request through the API and the alias
    PROBE = "probe"  # the synthetic probe, sent straight to one function version


class Group(StrEnum):
    """Which function version answered."""

    BASELINE = "baseline"
    CANARY = "canary"


class Classification(StrEnum):
    """What one metric says at one look (Kayenta's vocabulary plus Error)."""

    PASS = "Pass"  # enough evidence and no meaningful, significant harm
    HIGH = "High"  # the canary is meaningfully and significantly worse (or broke a rule)
    NODATA = "NoData"  # not enough evidence yet to pass (below the metric's minimum n)
    ERROR = "Error"  # the metric could not be computed; the reason says why


class Verdict(StrEnum):
    """The judge's answer at one look."""

    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"


# The verdict metric (contract): namespace POWERTOOLS_METRICS_NAMESPACE, dimension FunctionName;
# the judge alarm fires on Maximum >= 2. Each judged look is logged with JUDGE_LOG_MESSAGE.
VERDICT_METRIC = "CanaryVerdict"
VERDICT_DIMENSION = "FunctionName"
VERDICT_VALUE = {Verdict.PASS: 0, Verdict.INCONCLUSIVE: 1, Verdict.FAIL: 2}
JUDGE_LOG_MESSAGE = "canary verdict"


@dataclass(frozen=True, slots=True)
class EvidenceRecord:
    """One answer of one function version, as the judge reads it from the logs."""

    model_version: str  # the model that served the answer ("v1", "v2")
    label: str | None  # the served label; None when the request failed
    shadow_label: str | None  # the other model's label on the same text; None if absent
    status: int  # HTTP status answered
    latency_ms: float  # handler-measured latency of this request
    source: str  # "live" (a user's request) or "probe" (the synthetic probe)
    expected_label: str | None = None  # probes: the manifest's label for this text and served model
    probe_id: str | None = None  # probes: one id per probe send, shared by both versions' answers

    def problem(self) -> str | None:
        """Why this record cannot be judged, or None when it is sound (cheap: runs per record)."""
        if self.source not in _SOURCES:
            return f"source {self.source!r} is not live or probe"
        lat = self.latency_ms
        if type(lat) not in (float, int) or not 0.0 <= lat < math.inf:
            return f"latency_ms {lat!r} is not a finite non-negative number"
        if type(self.status) is not int or not 100 <= self.status <= 599:
            return f"status {self.status!r} is not an HTTP status"
        for name in ("label", "shadow_label", "expected_label"):
            if getattr(self, name) not in _LABELS_OR_NONE:
                return f"{name} {getattr(self, name)!r} is not one of {LABELS}"
        if self.status < 400 and self.label is None:
            return f"status {self.status} without a label"
        if self.source == Source.PROBE and (not self.probe_id or self.expected_label is None):
            return "a probe record needs a probe_id and an expected_label"
        return None


_SOURCES = frozenset(s.value for s in Source)
_LABELS_OR_NONE = frozenset((*LABELS, None))


@dataclass(frozen=True)
class EvidenceConfig:
    """Thresholds of the evidence judge. The minimum n's come from plan() (tested to agree)."""

    alpha: float = 0.01  # false-alarm budget of one deployment: every look and every metric
    window_s: float = 300.0  # canary phase (Canary10Percent5Minutes); the gate judges all of it
    look_interval_s: float = 60.0  # the scheduled judge's period (at most the real spacing)
    lag_median_s: float = 120.0  # planned log lag: lognormal median ...
    lag_sigma: float = 0.6  # ... and log-sd ...
    lag_max_s: float = 600.0  # ... cut here: the gate waits this long after the window
    probe_min: int = 33  # canary probe answers needed to pass (99 % power, 20 % forced label)
    probe_max_mismatches: int = 0  # mismatches tolerated (0: deterministic models)
    errors_min_requests: int = 1270  # requests per group needed to pass (99 % power, +2 % errors)
    errors_min_excess: float = 0.005  # extra 5xx rate (absolute) worth failing for
    latency_min_pairs: int = 460  # probe pairs needed to pass (99 % power, 1.25x slower)
    latency_tolerance: float = 1.10  # excess over the expected ratio tolerated (null boundary)
    labels_min_pairs: int = 100  # label pairs per group (live + matched probe) needed to pass
    labels_min_tvd: float = 0.01  # total variation of the label shift worth failing for
    exact_max_variance: float = 30.0  # CMH is exact up to this null variance, normal above

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        for name in ("window_s", "look_interval_s", "lag_median_s", "lag_sigma", "lag_max_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.latency_tolerance < 1.0:
            raise ValueError(f"latency_tolerance must be >= 1, got {self.latency_tolerance}")
        if self.probe_max_mismatches < 0:
            raise ValueError(f"probe_max_mismatches must be >= 0, got {self.probe_max_mismatches}")


# --------------------------------------------------------------------------- alpha spending


def lag_cdf(lag_s: float, cfg: EvidenceConfig) -> float:
    """P(a record is visible lag_s seconds after it happened): lognormal, all in by lag_max_s."""
    if lag_s <= 0.0:
        return 0.0
    if lag_s >= cfg.lag_max_s:
        return 1.0
    return stats.norm_cdf(math.log(lag_s / cfg.lag_median_s) / cfg.lag_sigma)


def _lag_cdf_integral(x: float, cfg: EvidenceConfig) -> float:
    """Integral of lag_cdf from 0 to x, in closed form (lognormal partial expectation)."""
    if x <= 0.0:
        return 0.0
    mu, s = math.log(cfg.lag_median_s), cfg.lag_sigma
    y = min(x, cfg.lag_max_s)
    z = (math.log(y) - mu) / s
    body = y * stats.norm_cdf(z) - math.exp(mu + s * s / 2.0) * stats.norm_cdf(z - s)
    return body + max(0.0, x - cfg.lag_max_s)


def planned_information(elapsed_s: float, cfg: EvidenceConfig) -> float:
    """Planned information fraction at `elapsed_s` after the canary started: the expected share
    of the window's records visible by then (records spread evenly over the window, each
    visible after the planned lag)."""
    if elapsed_s <= 0.0:
        return 0.0
    covered = min(elapsed_s, cfg.window_s)
    integral = _lag_cdf_integral(elapsed_s, cfg) - _lag_cdf_integral(elapsed_s - covered, cfg)
    return min(1.0, max(0.0, integral / cfg.window_s))


def look_alpha(elapsed_s: float, cfg: EvidenceConfig, *, final: bool = False) -> float:
    """The level a look may spend (before Holm across metrics).

    Interim look at `elapsed_s`: S(t(e)) - S(t(e - dt)) over the canary window only, with S the
    Pocock-type spending function and dt = look_interval_s. The final (gate) look: what is left,
    alpha - S(t(window)). Interim looks at least dt apart plus the gate never exceed alpha.
    """
    if final:
        return cfg.alpha - stats.pocock_spending(planned_information(cfg.window_s, cfg), cfg.alpha)
    hi = min(max(elapsed_s, 0.0), cfg.window_s)
    lo = min(max(elapsed_s - cfg.look_interval_s, 0.0), cfg.window_s)
    if hi <= lo:
        return 0.0
    spent = stats.pocock_spending(planned_information(hi, cfg), cfg.alpha)
    before = stats.pocock_spending(planned_information(lo, cfg), cfg.alpha)
    return max(0.0, spent - before)


# --------------------------------------------------------------------------- evidence


@dataclass(frozen=True)
class Evidence:
    """The records of both groups, reduced to what the metrics need. Additive: evidence from
    disjoint batches of records merges (`+`) into the evidence of all of them."""

    baseline_model: str
    canary_model: str
    requests: Mapping[tuple[Group, Source], int]  # answers (any status) per group and source
    errors: Mapping[tuple[Group, Source], int]  # 5xx answers per group and source
    live_pairs: Mapping[tuple[Group, str, str], int]  # (group, old label, new label) -> live answers
    probe_labels: Mapping[Group, Mapping[str, tuple[str, str]]]  # probe id -> (old, new label)
    probe_answers: int  # canary probe answers that carry a label
    probe_mismatches: int  # ... whose label differs from the manifest's
    mismatch_examples: tuple[tuple[str, str, str], ...]  # (probe id, expected, answered), first 5
    baseline_probe_answers: int
    baseline_probe_mismatches: int  # > 0: the probe's expected labels may be stale
    probe_latency: Mapping[Group, Mapping[str, float]]  # probe id -> ms of each labelled answer
    latencies: Mapping[tuple[Group, Source], tuple[float, ...]]  # sorted, non-5xx answers
    dropped: Mapping[str, int]  # reason -> records left out
    # Live latency percentiles per group ("p50", "p90", "p99" -> ms) when the live records came
    # aggregated (collect_live_counts): reported, never tested, like the live latencies.
    live_latency_ms: Mapping[Group, Mapping[str, float]] = field(default_factory=dict)
    # Served labels per group and source (whatever the shadow): on-call's label shares.
    labels: Mapping[tuple[Group, Source, str], int] = field(default_factory=dict)

    def n(self, group: Group, source: Source | None = None) -> int:
        return sum(v for (g, s), v in self.requests.items() if g is group and source in (None, s))

    def pair_count(self, group: Group) -> int:
        """Label pairs of a group: its live ones plus the probe ids both groups answered."""
        return sum(v for (g, *_), v in self.live_pairs.items() if g is group) + len(self.matched_probes)

    @property
    def matched_probes(self) -> list[tuple[tuple[str, str], tuple[str, str]]]:
        """((old, new) in the canary, (old, new) in the baseline) per probe id both answered."""
        base = self.probe_labels.get(Group.BASELINE, {})
        return [
            (pair, base[pid]) for pid, pair in self.probe_labels.get(Group.CANARY, {}).items() if pid in base
        ]

    @property
    def latency_pairs(self) -> list[tuple[float, float]]:
        """(canary ms, baseline ms) of every probe id both versions answered with a label."""
        base = self.probe_latency.get(Group.BASELINE, {})
        return [
            (ms, base[pid]) for pid, ms in self.probe_latency.get(Group.CANARY, {}).items() if pid in base
        ]

    def __add__(self, other: Evidence) -> Evidence:
        if (self.baseline_model, self.canary_model) != (other.baseline_model, other.canary_model):
            raise ValueError("cannot merge evidence about different models")
        probe_latency, probe_labels = {}, {}
        for g in Group:
            mine, theirs = self.probe_labels.get(g, {}), other.probe_labels.get(g, {})
            if not mine.keys().isdisjoint(theirs):
                raise ValueError("merged evidence must come from disjoint records (a probe id repeats)")
            probe_labels[g] = {**mine, **theirs}
            probe_latency[g] = {**self.probe_latency.get(g, {}), **other.probe_latency.get(g, {})}
        keys = self.latencies.keys() | other.latencies.keys()
        return Evidence(
            baseline_model=self.baseline_model,
            canary_model=self.canary_model,
            requests=_add(self.requests, other.requests),
            errors=_add(self.errors, other.errors),
            live_pairs=_add(self.live_pairs, other.live_pairs),
            probe_labels=probe_labels,
            probe_answers=self.probe_answers + other.probe_answers,
            probe_mismatches=self.probe_mismatches + other.probe_mismatches,
            mismatch_examples=(self.mismatch_examples + other.mismatch_examples)[:5],
            baseline_probe_answers=self.baseline_probe_answers + other.baseline_probe_answers,
            baseline_probe_mismatches=self.baseline_probe_mismatches + other.baseline_probe_mismatches,
            probe_latency=probe_latency,
            latencies={
                k: tuple(sorted(self.latencies.get(k, ()) + other.latencies.get(k, ()))) for k in keys
            },
            dropped=_add(self.dropped, other.dropped),
            # Percentiles do not add up: the batch that has them (one aggregated query) gives them.
            live_latency_ms={**self.live_latency_ms, **other.live_latency_ms},
            labels=_add(self.labels, other.labels),
        )


def _add(a: Mapping[Any, int], b: Mapping[Any, int]) -> dict[Any, int]:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) + v
    return out


def collect(
    baseline: Iterable[EvidenceRecord],
    canary: Iterable[EvidenceRecord],
    *,
    baseline_model: str,
    canary_model: str,
) -> Evidence:
    """Reduce both groups' records to counts, pairs and latencies, dropping (and counting) what
    cannot be judged: malformed records, another model than the group's, repeated probe ids."""
    dropped: Counter[str] = Counter()
    requests: Counter[tuple[Group, Source]] = Counter()
    errors: Counter[tuple[Group, Source]] = Counter()
    pairs: Counter[tuple[Group, str, str]] = Counter()
    latencies: dict[tuple[Group, Source], list[float]] = {}
    labels: Counter[tuple[Group, Source, str]] = Counter()
    probe_ms: dict[Group, dict[str, float]] = {Group.BASELINE: {}, Group.CANARY: {}}
    probe_pairs: dict[Group, dict[str, tuple[str, str]]] = {Group.BASELINE: {}, Group.CANARY: {}}
    probe = {Group.BASELINE: [0, 0], Group.CANARY: [0, 0]}  # answers, mismatches
    examples: list[tuple[str, str, str]] = []
    for group, records, model in (
        (Group.BASELINE, baseline, baseline_model),
        (Group.CANARY, canary, canary_model),
    ):
        seen: set[str] = set()
        for r in records:
            if r.problem() is not None:
                dropped["malformed"] += 1
                continue
            if r.model_version != model:
                dropped[f"{group.value} record served by {r.model_version}, not {model}"] += 1
                continue
            source = Source(r.source)
            if source is Source.PROBE:
                if r.probe_id in seen:
                    dropped["repeated probe_id"] += 1
                    continue
                seen.add(r.probe_id)
            key = (group, source)
            requests[key] += 1
            if r.status >= 500:
                errors[key] += 1
                continue
            latencies.setdefault(key, []).append(r.latency_ms)
            if r.label is None:
                continue
            labels[(group, source, r.label)] += 1
            if r.shadow_label is not None:
                old, new = (r.shadow_label, r.label) if group is Group.CANARY else (r.label, r.shadow_label)
                if source is Source.LIVE:
                    pairs[(group, old, new)] += 1
                else:
                    probe_pairs[group][r.probe_id] = (old, new)
            if source is Source.PROBE:
                probe_ms[group][r.probe_id] = r.latency_ms
                probe[group][0] += 1
                if r.label != r.expected_label:
                    probe[group][1] += 1
                    if group is Group.CANARY and len(examples) < 5:
                        examples.append((r.probe_id, r.expected_label, r.label))
    return Evidence(
        baseline_model=baseline_model,
        canary_model=canary_model,
        requests=dict(requests),
        errors=dict(errors),
        live_pairs=dict(pairs),
        probe_labels=probe_pairs,
        probe_answers=probe[Group.CANARY][0],
        probe_mismatches=probe[Group.CANARY][1],
        mismatch_examples=tuple(examples),
        baseline_probe_answers=probe[Group.BASELINE][0],
        baseline_probe_mismatches=probe[Group.BASELINE][1],
        probe_latency=probe_ms,
        latencies={k: tuple(sorted(v)) for k, v in latencies.items()},
        dropped=dict(dropped),
        labels=dict(labels),
    )


@dataclass(frozen=True, slots=True)
class LiveCount:
    """`count` live answers of one group that agree on every field the metrics read: one row of an
    aggregated log query (stats count(*) by model, label, shadow label, status). At the usage
    plan's 1,000 req/s a window holds 300,000 live records; their counts are a few dozen rows."""

    model_version: str
    label: str | None
    shadow_label: str | None  # the other model's label on the same texts
    status: int
    count: int


def collect_live_counts(
    baseline: Iterable[LiveCount],
    canary: Iterable[LiveCount],
    *,
    baseline_model: str,
    canary_model: str,
    live_latency_ms: Mapping[Group, Mapping[str, float]] | None = None,
) -> Evidence:
    """collect() for aggregated live answers: the same counts, errors, label pairs and drop rules
    as collect() would give the records the counts stand for, without their latencies (live
    latencies are only reported: pass their percentiles as `live_latency_ms`). Merge it with the
    probe records' evidence by `+`."""
    dropped: Counter[str] = Counter()
    requests: Counter[tuple[Group, Source]] = Counter()
    errors: Counter[tuple[Group, Source]] = Counter()
    pairs: Counter[tuple[Group, str, str]] = Counter()
    labels: Counter[tuple[Group, Source, str]] = Counter()
    for group, rows, model in (
        (Group.BASELINE, baseline, baseline_model),
        (Group.CANARY, canary, canary_model),
    ):
        for row in rows:
            n = row.count
            if type(n) is not int or n < 0:
                dropped["malformed"] += 1
                continue
            r = EvidenceRecord(row.model_version, row.label, row.shadow_label, row.status, 0.0, Source.LIVE)
            if r.problem() is not None:
                dropped["malformed"] += n
                continue
            if r.model_version != model:
                dropped[f"{group.value} record served by {r.model_version}, not {model}"] += n
                continue
            key = (group, Source.LIVE)
            requests[key] += n
            if r.status >= 500:
                errors[key] += n
                continue
            if r.label is not None:
                labels[(group, Source.LIVE, r.label)] += n
            if r.label is not None and r.shadow_label is not None:
                old, new = (r.shadow_label, r.label) if group is Group.CANARY else (r.label, r.shadow_label)
                pairs[(group, old, new)] += n
    empty: dict[Group, dict[str, Any]] = {Group.BASELINE: {}, Group.CANARY: {}}
    return Evidence(
        baseline_model=baseline_model,
        canary_model=canary_model,
        requests=dict(requests),
        errors=dict(errors),
        live_pairs=dict(pairs),
        probe_labels=dict(empty),
        probe_answers=0,
        probe_mismatches=0,
        mismatch_examples=(),
        baseline_probe_answers=0,
        baseline_probe_mismatches=0,
        probe_latency=dict(empty),
        latencies={},
        dropped=dict(dropped),
        live_latency_ms={g: dict(v) for g, v in (live_latency_ms or {}).items()},
        labels=dict(labels),
    )


# --------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class Measurement:
    """A metric's numbers before the look's multiple-testing step."""

    n_baseline: int
    n_canary: int
    test: str  # the statistical test (or rule) used
    statistic: float | None
    p_value: float | None  # one-sided, harmful direction; None: a rule, or no test possible
    effect: float | None
    harmful: bool  # the effect reaches the floor in the harmful direction
    broke_rule: bool = False  # a deterministic rule failed: no p-value needed
    details: Mapping[str, Any] = field(default_factory=dict)
    # An input the metric needs is not available yet (not a lack of evidence, not an error):
    # the metric is NoData with this reason, whatever the n.
    pending: str | None = None


class Metric:
    """One thing the judge checks. Subclasses set the wording and implement measure()."""

    name: ClassVar[str]
    critical: ClassVar[bool] = True  # a failure fails the canary on its own
    direction: ClassVar[str]  # the harmful direction, in words
    effect_name: ClassVar[str]
    unit: ClassVar[str]  # what its n counts
    worse: ClassVar[str]  # the sentence that opens a failure's reason

    def needed(self) -> int:
        """n per group this metric needs before it can pass."""
        raise NotImplementedError

    def floor(self) -> float:
        raise NotImplementedError

    def measure(self, ev: Evidence) -> Measurement:
        raise NotImplementedError

    def describe(self, m: Measurement) -> str:
        """The effect in a few words for on-call."""
        return f"{self.effect_name} {_num(m.effect)}"

    def have(self, m: Measurement) -> int:
        """The n compared with needed(): the smaller group's by default."""
        return min(m.n_baseline, m.n_canary)


@dataclass(frozen=True)
class ProbeAgreement(Metric):
    """The canary's probe answers against the labels its manifest recorded (deterministic)."""

    min_answers: int
    max_mismatches: int
    name: ClassVar[str] = "probe_agreement"
    direction: ClassVar[str] = "canary answers a probe text differently from its manifest"
    effect_name: ClassVar[str] = "mismatch rate"
    unit: ClassVar[str] = "canary probe answers"
    worse: ClassVar[str] = "Canary answered known probe texts differently from its manifest"

    def needed(self) -> int:
        return self.min_answers

    def floor(self) -> float:
        return float(self.max_mismatches)

    def measure(self, ev: Evidence) -> Measurement:
        n = ev.probe_answers
        details = {
            "mismatches": ev.probe_mismatches,
            "examples": [list(e) for e in ev.mismatch_examples],
            "baseline_probe_answers": ev.baseline_probe_answers,
            "baseline_mismatches": ev.baseline_probe_mismatches,
            "power_formula": "1 - (1 - f)^n for a fault changing a fraction f of the answers",
        }
        return Measurement(
            n_baseline=ev.baseline_probe_answers,
            n_canary=n,
            test=f"rule: FAIL on more than {self.max_mismatches} mismatch(es) (deterministic models)",
            statistic=float(ev.probe_mismatches),
            p_value=None,
            effect=ev.probe_mismatches / n if n else None,
            harmful=ev.probe_mismatches > self.max_mismatches,
            broke_rule=ev.probe_mismatches > self.max_mismatches,
            details=details,
        )

    def describe(self, m: Measurement) -> str:
        return f"{m.details['mismatches']} mismatch(es) in {m.n_canary} answers"

    def have(self, m: Measurement) -> int:
        return m.n_canary  # the rule checks the canary's answers only


@dataclass(frozen=True)
class PairedLabels(Metric):
    """Per new label, one-sided CMH across (source, old label) strata, canary vs baseline."""

    min_pairs: int
    min_tvd: float
    exact_max_variance: float
    name: ClassVar[str] = "paired_labels"
    direction: ClassVar[str] = "given the old model's label, the canary's new label differs"
    effect_name: ClassVar[str] = "TVD of the Mantel-Haenszel label shift"
    unit: ClassVar[str] = "label pairs"
    worse: ClassVar[str] = "Canary's labels differ from the new model's, given the old model's label"

    def needed(self) -> int:
        return self.min_pairs

    def floor(self) -> float:
        return self.min_tvd

    def measure(self, ev: Evidence) -> Measurement:
        matched = ev.matched_probes
        per_label = {new: self._one_label(ev, matched, new) for new in LABELS}
        rds = [per_label[j]["risk_difference"] for j in LABELS]
        tvd = 0.5 * sum(abs(x) for x in rds) if all(math.isfinite(x) for x in rds) else math.nan
        worst = min(LABELS, key=lambda j: per_label[j]["p_value"])
        p = min(1.0, len(LABELS) * per_label[worst]["p_value"])  # Bonferroni over the labels
        live = {g.value: sum(v for (grp, *_), v in ev.live_pairs.items() if grp is g) for g in Group}
        details = {"label": worst, "per_label": per_label, "live_pairs": live, "probe_pairs": len(matched)}
        return Measurement(
            n_baseline=ev.pair_count(Group.BASELINE),
            n_canary=ev.pair_count(Group.CANARY),
            test="one-sided CMH per new label: live strata by old label + matched probe pairs, Bonferroni x3",
            statistic=per_label[worst]["z"],
            p_value=p,
            effect=tvd,
            harmful=math.isfinite(tvd) and tvd >= self.min_tvd,
            details=details,
        )

    def _one_label(self, ev: Evidence, matched: Sequence, new: str) -> dict[str, Any]:
        """CMH for "the canary says `new` more often": one stratum per old label of the live
        pairs (the groups' texts differ, so they are compared within old label), and one per
        matched probe pair (the same text in both groups: McNemar's test inside CMH; a pair
        that agrees adds nothing, so only the discordant ones become strata)."""
        k = LABELS.index(new)
        strata = []
        for old in LABELS:
            c = [ev.live_pairs.get((Group.CANARY, old, j), 0) for j in LABELS]
            b = [ev.live_pairs.get((Group.BASELINE, old, j), 0) for j in LABELS]
            if sum(c) + sum(b):
                strata.append(stats.Stratum(c[k], sum(c), c[k] + b[k], sum(c) + sum(b)))
        live_strata = list(strata)
        for (_, c_new), (_, b_new) in matched:
            if (c_new == new) != (b_new == new):
                strata.append(stats.Stratum(int(c_new == new), 1, 1, 2))
        result = stats.cmh_greater(strata, self.exact_max_variance)
        return {
            "p_value": result.p,
            "z": result.z,
            "exact": result.exact,
            "risk_difference": _risk_difference(live_strata, matched, new),
        }

    def describe(self, m: Measurement) -> str:
        label = m.details.get("label")
        rd = m.details.get("per_label", {}).get(label, {}).get("risk_difference")
        return f"TVD {_num(m.effect)} ({_num(rd, '+.3f')} to {label})"


def _risk_difference(live: Sequence[stats.Stratum], matched: Sequence, new: str) -> float:
    """Mantel-Haenszel risk difference (canary - baseline) of saying `new`, over the live strata
    and every matched probe pair (each a stratum of weight 1/2; agreeing pairs add 0 to it)."""
    num = den = 0.0
    for s in live:
        n2 = s.total - s.n1
        if s.n1 and n2:
            w = s.n1 * n2 / s.total
            num += w * (s.a / s.n1 - (s.m - s.a) / n2)
            den += w
    for (_, c_new), (_, b_new) in matched:
        num += 0.5 * ((c_new == new) - (b_new == new))
        den += 0.5
    return num / den if den > 0 else math.nan


@dataclass(frozen=True)
class Errors(Metric):
    """The canary's extra 5xx rate, stratified by source (live, probe)."""

    min_requests: int
    min_excess: float
    exact_max_variance: float
    name: ClassVar[str] = "errors"
    direction: ClassVar[str] = "canary answers more 5xx"
    effect_name: ClassVar[str] = "extra 5xx rate (Mantel-Haenszel)"
    unit: ClassVar[str] = "requests"
    worse: ClassVar[str] = "Canary answers more 5xx than the baseline"

    def needed(self) -> int:
        return self.min_requests

    def floor(self) -> float:
        return self.min_excess

    def measure(self, ev: Evidence) -> Measurement:
        strata = []
        for source in Source:
            n_c, n_b = (
                ev.requests.get((Group.CANARY, source), 0),
                ev.requests.get((Group.BASELINE, source), 0),
            )
            e_c, e_b = ev.errors.get((Group.CANARY, source), 0), ev.errors.get((Group.BASELINE, source), 0)
            strata.append(stats.Stratum(e_c, n_c, e_c + e_b, n_c + n_b))
        result = stats.cmh_greater(strata, self.exact_max_variance)
        excess = stats.mh_risk_difference(strata)
        n_b, n_c = ev.n(Group.BASELINE), ev.n(Group.CANARY)
        details = {
            "errors_baseline": sum(ev.errors.get((Group.BASELINE, s), 0) for s in Source),
            "errors_canary": sum(ev.errors.get((Group.CANARY, s), 0) for s in Source),
            "exact": result.exact,
        }
        return Measurement(
            n_baseline=n_b,
            n_canary=n_c,
            test="one-sided CMH across sources (exact conditional when small)",
            statistic=float(result.statistic),
            p_value=result.p if n_b and n_c else None,
            effect=excess,
            harmful=math.isfinite(excess) and excess >= self.min_excess,
            details=details,
        )

    def describe(self, m: Measurement) -> str:
        d = m.details
        rates = f"5xx {d['errors_canary']}/{m.n_canary} vs {d['errors_baseline']}/{m.n_baseline}"
        return f"{rates} (excess {_num(m.effect, '+.2%')})"


@dataclass(frozen=True)
class Latency(Metric):
    """Paired probe latencies: canary/baseline ratio against the expected ratio (the PreTraffic
    hook's measured reference; None: not known yet, the metric is NoData)."""

    expected_ratio: float | None
    min_pairs: int
    tolerance: float
    name: ClassVar[str] = "latency"
    direction: ClassVar[str] = "canary slower than expected relative to the baseline"
    effect_name: ClassVar[str] = "median paired ratio / expected ratio"
    unit: ClassVar[str] = "probe latency pairs"
    worse: ClassVar[str] = "Canary is slower than the pre-traffic reference expects"

    def needed(self) -> int:
        return self.min_pairs

    def floor(self) -> float:
        return self.tolerance

    def measure(self, ev: Evidence) -> Measurement:
        r0 = self.expected_ratio
        if r0 is None:
            pairs = len(ev.latency_pairs)
            return Measurement(
                pairs, pairs, "-", None, None, None, harmful=False,
                details={"expected_ratio": None, "pairs": pairs},
                pending=f"no latency reference yet for {ev.canary_model}/{ev.baseline_model} (the "
                "PreTraffic hook's measured ratio is not visible): latency cannot pass without it",
            )  # fmt: skip
        if not (math.isfinite(r0) and r0 > 0):
            raise ValueError(f"latency reference {ev.canary_model}/{ev.baseline_model} is {r0!r}")
        boundary = math.log(r0 * self.tolerance)
        logs = sorted(math.log(c / b) for c, b in ev.latency_pairs if c > 0 and b > 0)
        above = sum(1 for x in logs if x > boundary)
        below = sum(1 for x in logs if x < boundary)
        n = above + below  # pairs exactly on the boundary carry no sign
        median = math.exp(stats.median(logs)) if logs else math.nan
        details = {
            "expected_ratio": r0,
            "median_ratio": median,
            "pairs_above_boundary": above,
            "live_p50_ms": {g.value: _live_p50(ev, g) for g in Group},
        }
        return Measurement(
            n_baseline=len(logs),
            n_canary=len(logs),
            test=f"exact sign test, H0: median excess ratio <= {self.tolerance:g}",
            statistic=float(above),
            p_value=stats.binom_sf(above, n, 0.5) if n else None,
            effect=median / r0 if logs else None,
            harmful=bool(logs) and median / r0 > self.tolerance,
            details=details,
        )

    def describe(self, m: Measurement) -> str:
        d = m.details
        if d.get("expected_ratio") is None:
            return f"{d.get('pairs', 0)} pairs, no reference"
        ratio = f"median ratio {_num(d['median_ratio'], '.2f')} vs expected {d['expected_ratio']:.2f}"
        return f"{ratio} (x{_num(m.effect, '.2f')})"


def metrics_for(cfg: EvidenceConfig, expected_latency_ratio: float | None) -> tuple[Metric, ...]:
    """The judge's metrics under this configuration."""
    return (
        ProbeAgreement(cfg.probe_min, cfg.probe_max_mismatches),
        PairedLabels(cfg.labels_min_pairs, cfg.labels_min_tvd, cfg.exact_max_variance),
        Errors(cfg.errors_min_requests, cfg.errors_min_excess, cfg.exact_max_variance),
        Latency(expected_latency_ratio, cfg.latency_min_pairs, cfg.latency_tolerance),
    )


# --------------------------------------------------------------------------- classify and verdict


@dataclass(frozen=True)
class MetricResult:
    """One metric's classification at one look and everything needed to explain it."""

    name: str
    classification: Classification
    critical: bool
    n_baseline: int
    n_canary: int
    n_needed: int  # per group, to be able to pass
    test: str
    statistic: float | None
    p_value: float | None
    alpha: float | None  # the level the p-value was compared with (Holm, this look)
    effect_name: str
    effect: float | None
    floor: float
    reason: str  # one sentence for on-call
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.classification is Classification.HIGH

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["classification"] = self.classification.value
        for key in ("statistic", "p_value", "alpha", "effect"):
            out[key] = _finite(out[key])
        out["details"] = _jsonable(out["details"])
        return out


def classify(metrics: Sequence[Metric], ev: Evidence, alpha_look: float) -> tuple[MetricResult, ...]:
    """Measure every metric (a raising metric becomes an Error result), Holm across the ones with
    a p-value at this look's level, then one classification and reason per metric."""
    measured: list[tuple[Metric, Measurement | None, str | None]] = []
    for metric in metrics:
        try:
            measured.append((metric, metric.measure(ev), None))
        except Exception as exc:  # a broken metric must never pass silently
            measured.append((metric, None, f"{exc.__class__.__name__}: {exc}"))
    tested = [
        (metric.name, m.p_value) for metric, m, _ in measured if m is not None and m.p_value is not None
    ]
    level = max(alpha_look, 0.0)
    holm = stats.holm([p for _, p in tested], level) if tested else []
    decisions = {name: d for (name, _), d in zip(tested, holm, strict=True)}
    return tuple(
        _classify_one(metric, m, error, decisions.get(metric.name), level) for metric, m, error in measured
    )


def _classify_one(
    metric: Metric,
    m: Measurement | None,
    error: str | None,
    decision: tuple[bool, float] | None,
    level: float,
) -> MetricResult:
    needed = metric.needed()
    if m is None:
        return MetricResult(
            metric.name, Classification.ERROR, metric.critical, 0, 0, needed, "-", None, None, None,
            metric.effect_name, None, metric.floor(), f"{metric.name} could not be computed: {error}.",
        )  # fmt: skip
    significant = decision is not None and decision[0] and level > 0.0
    alpha = decision[1] if decision is not None else None
    try:
        effect = metric.describe(m)
    except Exception as exc:  # wording must not take the verdict down with it
        effect = f"{metric.effect_name} {_num(m.effect)} ({exc.__class__.__name__} describing it)"
    p = f"p={_fmt_p(m.p_value)} vs alpha={_fmt_p(alpha)}" if m.p_value is not None else "rule held"
    have = metric.have(m)
    if m.pending:
        cls, reason = Classification.NODATA, f"{m.pending} ({have} {metric.unit} so far)."
    elif m.broke_rule:
        cls, reason = Classification.HIGH, f"{metric.worse}: {effect}."
    elif significant and m.harmful:
        cls, reason = (
            Classification.HIGH,
            f"{metric.worse}: {effect} reaches the floor {metric.floor():g}; {p}.",
        )
    elif have < needed:
        cls, reason = (
            Classification.NODATA,
            f"{have} of the {needed} {metric.unit} needed to pass ({effect}).",
        )
    elif significant:
        cls, reason = (
            Classification.PASS,
            f"Significant ({p}) but {effect} is below the floor {metric.floor():g}.",
        )
    else:
        cls, reason = Classification.PASS, f"No significant harm with enough evidence: {effect}, {p}."
    return MetricResult(
        name=metric.name,
        classification=cls,
        critical=metric.critical,
        n_baseline=m.n_baseline,
        n_canary=m.n_canary,
        n_needed=needed,
        test=m.test,
        statistic=m.statistic,
        p_value=m.p_value,
        alpha=alpha,
        effect_name=metric.effect_name,
        effect=m.effect,
        floor=metric.floor(),
        reason=reason,
        details=m.details,
    )


def verdict(results: Sequence[MetricResult]) -> tuple[Verdict, str]:
    """FAIL on any critical failure; PASS only when every metric passed with enough evidence;
    otherwise INCONCLUSIVE, naming each metric that lacks evidence (and how much) or broke."""
    failed = [r for r in results if r.failed and r.critical]
    if failed:
        return Verdict.FAIL, f"Failed: {', '.join(r.name for r in failed)}. {failed[0].reason}"
    open_ = [r for r in results if r.classification is not Classification.PASS and not r.failed]
    if open_:
        return Verdict.INCONCLUSIVE, "Not enough evidence to pass: " + " ".join(
            f"{r.name}: {r.reason}" for r in open_
        )
    return Verdict.PASS, f"All {len(results)} metrics pass with enough evidence."


# --------------------------------------------------------------------------- entry points


@dataclass(frozen=True)
class EvidenceReport:
    """The evidence judge's answer at one look, self-explaining."""

    verdict: Verdict
    reason: str
    final: bool  # the PostTraffic gate's look (records complete)
    elapsed_s: float  # seconds since the canary started
    information: float  # planned information fraction at this look
    alpha_look: float  # the level this look spent, before Holm across metrics
    metrics: tuple[MetricResult, ...]
    groups: Mapping[str, Any]  # per group: model, n live/probe, 5xx, latency percentiles
    dropped: Mapping[str, int]
    config: EvidenceConfig

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "verdict": self.verdict.value,
            "verdict_value": VERDICT_VALUE[self.verdict],
            "reason": self.reason,
            "look": {
                "final": self.final,
                "elapsed_s": self.elapsed_s,
                "information_fraction": self.information,
                "alpha_look": self.alpha_look,
                "method": "Pocock-type spending over looks (union bound), Holm across metrics",
            },
            "metrics": [r.as_dict() for r in self.metrics],
            "groups": _jsonable(self.groups),
            "dropped": dict(self.dropped),
            "config": asdict(self.config),
        }


def judge(
    baseline: Iterable[EvidenceRecord],
    canary: Iterable[EvidenceRecord],
    *,
    baseline_model: str,
    canary_model: str,
    expected_latency_ratio: float | None,
    elapsed_s: float,
    final: bool = False,
    config: EvidenceConfig | None = None,
) -> EvidenceReport:
    """Judge the canary group's records against the baseline group's at one look.

    `elapsed_s`: seconds since the canary started (sets this look's share of alpha); `final`:
    the PostTraffic gate's look, after the window's records are complete (gets the rest of
    alpha). `expected_latency_ratio`: the canary/baseline handler latency ratio the PreTraffic
    hook measured for this deployment (canary.sources.latency_reference reads it on AWS; the
    emulator passes HookResult.latency_reference); None, while it is not visible yet, makes the
    latency metric NoData (INCONCLUSIVE: never a pass). Not the manifests' coarse ratio.
    """
    ev = collect(baseline, canary, baseline_model=baseline_model, canary_model=canary_model)
    return judge_evidence(
        ev, expected_latency_ratio=expected_latency_ratio, elapsed_s=elapsed_s, final=final, config=config
    )


def judge_evidence(
    ev: Evidence,
    *,
    expected_latency_ratio: float | None,
    elapsed_s: float,
    final: bool = False,
    config: EvidenceConfig | None = None,
) -> EvidenceReport:
    """judge() on evidence already collected (e.g. merged from batches as records arrive)."""
    cfg = config or EvidenceConfig()
    alpha_look = look_alpha(elapsed_s, cfg, final=final)
    results = classify(metrics_for(cfg, expected_latency_ratio), ev, alpha_look)
    outcome, reason = verdict(results)
    return EvidenceReport(
        verdict=outcome,
        reason=reason,
        final=final,
        elapsed_s=elapsed_s,
        information=1.0 if final else planned_information(elapsed_s, cfg),
        alpha_look=alpha_look,
        metrics=results,
        groups=_summaries(ev),
        dropped=ev.dropped,
        config=cfg,
    )


@dataclass(frozen=True)
class GateDecision:
    """What the PostTraffic hook reports to CodeDeploy."""

    succeeded: bool  # True: report Succeeded; False: report Failed (CodeDeploy rolls back)
    reason: str


def gate_decision(report: EvidenceReport | None) -> GateDecision:
    """The final look's rule: the deployment succeeds only on PASS at the final look. FAIL,
    INCONCLUSIVE, an interim report, or no report (the judge crashed or never ran) fail it."""
    if report is None:
        return GateDecision(
            False, "No verdict from the judge (it crashed or never ran): failing the deployment."
        )
    if not report.final:
        return GateDecision(False, "The gate needs the final look (records complete), got an interim one.")
    if report.verdict is Verdict.PASS:
        return GateDecision(True, f"PASS on the whole window: {report.reason}")
    return GateDecision(False, f"{report.verdict.value} at the final look is not a pass: {report.reason}")


def expected_latency_ratio(
    manifests: Mapping[str, Mapping[str, Any]], baseline_model: str, canary_model: str
) -> float | None:
    """The manifests' COARSE canary/baseline latency ratio, or None when they give none.

    Contract (training/latency.py): manifest["latency"]["ratio_to"][<other model>] = median over
    the probe texts of this model's time per text / the other's, with the runtime scorer on the
    training machine, rounded to 0.1. Same model: 1.0; otherwise the canary's entry, or the
    inverse of the baseline's. Only the PreTraffic hook uses it, as a sanity bound on the ratio it
    measures (a canary slow from the start); it is NOT the judge's expected_latency_ratio: a
    ratio timed on another machine is too far off for the sign test (15 % off: 64 % false
    failures). The judge and the gate use the hook's measured reference.
    """
    if baseline_model == canary_model:
        return 1.0
    for model, other, invert in ((canary_model, baseline_model, False), (baseline_model, canary_model, True)):
        entry = ((manifests.get(model) or {}).get("latency") or {}).get("ratio_to") or {}
        value = entry.get(other) if isinstance(entry, Mapping) else None
        if isinstance(value, (int, float)) and math.isfinite(value) and value > 0:
            return 1.0 / float(value) if invert else float(value)
    return None


# --------------------------------------------------------------------------- power and plan


@dataclass(frozen=True)
class DesignFaults:
    """The faults the plan sizes the probe for, and what it assumes about the healthy system."""

    power: float = 0.99  # wanted probability of catching each design fault at the gate alone
    forced_share: float = 0.20  # share of answers forced to one label
    probe_label_shares: tuple[float, float, float] = (1 / 3, 1 / 3, 1 / 3)  # probe set, canary labels
    baseline_error_rate: float = 0.001  # 5xx rate of a healthy version
    extra_errors: float = 0.02  # the +2 % errors fault
    latency_fault: float = 1.25  # the slowdown (beyond the expected ratio) that must fail
    latency_sigma: float = 0.40  # sd of a pair's log latency ratio (handler p50/p99, both versions)
    metrics_in_holm: int = 3  # errors, latency, paired_labels share each look's level
    margin: float = 1.15  # probe-count margin for records still lagging at the gate


def probe_power(f: float, n: int) -> float:
    """P(at least one mismatch in n probe answers) when a fault changes a fraction f of them."""
    return 1.0 - (1.0 - f) ** n


def probe_n_needed(f: float, power: float) -> int:
    """Probe answers needed so that probe_power(f, n) >= power."""
    if not 0.0 < f < 1.0:
        raise ValueError(f"f must be in (0, 1), got {f}")
    return math.ceil(math.log(1.0 - power) / math.log(1.0 - f) - 1e-9)


def errors_power(
    n: int, base_rate: float, extra: float, alpha: float, floor: float, n_baseline: int | None = None
) -> float:
    """Power of the one-sided exact test (Fisher: one stratum) with its excess floor, n canary and
    n_baseline (default n) requests, by enumerating both binomial counts."""
    nb = n if n_baseline is None else n_baseline
    pc, pb = base_rate + extra, base_rate
    total = 0.0
    for xb, wb in _binomial_bulk(nb, pb):
        for xc, wc in _binomial_bulk(n, pc):
            if xc / n - xb / nb >= floor and stats.fisher_greater(xc, n, xb, nb) <= alpha:
                total += wb * wc
    return total


def _binomial_bulk(n: int, p: float) -> list[tuple[int, float]]:
    """(x, P(X = x)) of Binomial(n, p) for every x whose probability is above 1e-12."""
    if p <= 0.0:
        return [(0, 1.0)]
    out = []
    for x in range(n + 1):
        w = math.exp(math.lgamma(n + 1) - math.lgamma(x + 1) - math.lgamma(n - x + 1)
                     + x * math.log(p) + (n - x) * math.log1p(-p))  # fmt: skip
        if w > 1e-12:
            out.append((x, w))
        elif x > n * p:
            break
    return out


def sign_test_power(n: int, fault: float, tolerance: float, sigma: float, alpha: float) -> float:
    """Power of the exact sign test with n pairs when the canary is `fault` x slower than
    expected and a pair's log ratio is normal with sd `sigma`."""
    q = stats.norm_sf((math.log(tolerance) - math.log(fault)) / sigma)
    return stats.binom_sf(_sign_critical(n, alpha), n, q)


def _sign_critical(n: int, alpha: float) -> int:
    """Smallest k with P(Binomial(n, 1/2) >= k) <= alpha."""
    lo, hi = 0, n + 1
    while lo < hi:
        mid = (lo + hi) // 2
        if stats.binom_sf(mid, n, 0.5) <= alpha:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _smallest_n(power_of, target: float, lo: int = 1, hi: int = 100_000) -> int:
    """Smallest n in [lo, hi] with power_of(n) >= target, by bisection (power rises with n, up
    to the small saw-tooth of exact tests), rounded up to a multiple of 10."""
    if power_of(hi) < target:
        raise ValueError(f"power {target} is not reached with {hi}")
    while lo < hi:
        mid = (lo + hi) // 2
        if power_of(mid) >= target:
            hi = mid
        else:
            lo = mid + 1
    return 10 * math.ceil(lo / 10)


@dataclass(frozen=True)
class Plan:
    """The probe rate and canary length, with the numbers behind them."""

    window_s: float
    probe_rps: float  # probe texts per second, each sent to both versions
    gate_alpha: float  # the gate's level before Holm
    metric_alpha: float  # the gate's level per metric, Holm's worst case
    probe_min: int  # canary probe answers needed
    errors_min_requests: int  # requests per group needed
    latency_min_pairs: int  # probe latency pairs needed
    power: Mapping[str, float]  # each design fault's power at the gate with the chosen probe
    reasoning: tuple[str, ...]


def plan(cfg: EvidenceConfig | None = None, design: DesignFaults | None = None) -> Plan:
    """Size the probe so that every design fault is caught with `design.power` at the gate alone
    (the interim looks only add to it), at any live traffic (the probe alone carries it)."""
    cfg = cfg or EvidenceConfig()
    d = design or DesignFaults()
    t_window = planned_information(cfg.window_s, cfg)
    gate = look_alpha(cfg.window_s, cfg, final=True)
    per_metric = gate / d.metrics_in_holm
    f = d.forced_share * (1.0 - max(d.probe_label_shares))
    n_probe = probe_n_needed(f, d.power)
    n_errors = _smallest_n(
        lambda n: errors_power(n, d.baseline_error_rate, d.extra_errors, per_metric, cfg.errors_min_excess),
        d.power,
        lo=50,
        hi=20_000,
    )
    n_latency = _smallest_n(
        lambda n: sign_test_power(n, d.latency_fault, cfg.latency_tolerance, d.latency_sigma, per_metric),
        d.power,
    )
    needed = max(n_probe, n_errors, n_latency)
    probe_rps = math.ceil(2.0 * needed * d.margin / cfg.window_s) / 2.0  # to the half request/s
    n = int(probe_rps * cfg.window_s)
    power = {
        "probe: 20 % forced to the majority": probe_power(f, n),
        "errors: +2 %": errors_power(
            n, d.baseline_error_rate, d.extra_errors, per_metric, cfg.errors_min_excess
        ),
        "latency: 1.25x": sign_test_power(
            n, d.latency_fault, cfg.latency_tolerance, d.latency_sigma, per_metric
        ),
        "latency: 1.5x": sign_test_power(n, 1.5, cfg.latency_tolerance, d.latency_sigma, per_metric),
    }
    reasoning = (
        f"window {cfg.window_s:g} s (Canary10Percent5Minutes): with a probe the window need not grow",
        f"log lag lognormal (median {cfg.lag_median_s:g} s, sigma {cfg.lag_sigma:g}, "
        f"max {cfg.lag_max_s:g} s): planned information at the window's end t = {t_window:.2f}",
        f"gate level alpha - S(t) = {gate:.5f}; per metric (Holm worst case, "
        f"{d.metrics_in_holm}) {per_metric:.5f}",
        f"probe: f = {d.forced_share:g} x (1 - {max(d.probe_label_shares):.2f}) = {f:.3f}, "
        f"n = ln(1 - {d.power}) / ln(1 - f) = {n_probe}",
        f"errors: {d.baseline_error_rate:.1%} -> {d.baseline_error_rate + d.extra_errors:.1%}, exact Fisher "
        f"power {d.power:.0%} needs {n_errors} requests per group",
        f"latency: {d.latency_fault:g}x beyond expected, tolerance {cfg.latency_tolerance:g}, "
        f"sd {d.latency_sigma:g}: sign test needs {n_latency} pairs",
        f"probe rate = ceil({needed} x margin {d.margin:g} / {cfg.window_s:g} s) = {probe_rps:g} "
        f"texts/s per version ({n} pairs per window)",
        f"live traffic alone would need {n_errors} / (rate x share) s: "
        + ", ".join(
            f"{_duration(live_window_needed(n_errors, r, 0.1))} at {r:g} req/s" for r in (0.004, 1, 5, 20, 50)
        ),
    )
    return Plan(cfg.window_s, probe_rps, gate, per_metric, n_probe, n_errors, n_latency, power, reasoning)


SCHEDULE_PERIOD_S = 60.0  # the probe's schedule (template.yaml: rate(1 minute))


def scheduled_rate(
    cfg: EvidenceConfig | None = None, run_seconds: float = 55.0, period_s: float = SCHEDULE_PERIOD_S
) -> float:
    """Texts/s that gives plan()'s probe count within the window in the worst case of a scheduled
    probe: the first run up to `period_s` after the canary started, then `run_seconds` of every
    `period_s`. Rounded up to the half text/s."""
    cfg = cfg or EvidenceConfig()
    wanted = plan(cfg).probe_rps * cfg.window_s
    probing = max(cfg.window_s - period_s, period_s) * min(1.0, run_seconds / period_s)
    return math.ceil(2.0 * wanted / probing) / 2.0


def live_window_needed(n: int, rate_rps: float, share: float) -> float:
    """Seconds of canary for n canary-side live requests at this traffic and canary share."""
    if rate_rps <= 0 or not 0 < share <= 1:
        raise ValueError(f"rate must be > 0 and share in (0, 1], got {rate_rps}, {share}")
    return n / (rate_rps * share)


# --------------------------------------------------------------------------- helpers


def _live_p50(ev: Evidence, group: Group) -> float | None:
    """Median live latency of a group: from its records, else from the aggregated percentiles."""
    raw = ev.latencies.get((group, Source.LIVE), ())
    if raw:
        return _finite(stats.median(raw))
    return _finite((ev.live_latency_ms.get(group) or {}).get("p50"))


def _summaries(ev: Evidence) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for group, model in ((Group.BASELINE, ev.baseline_model), (Group.CANARY, ev.canary_model)):
        lat = sorted(x for s in Source for x in ev.latencies.get((group, s), ()))
        out[group.value] = {
            "model_version": model,
            "requests": {s.value: ev.requests.get((group, s), 0) for s in Source},
            "errors": {s.value: ev.errors.get((group, s), 0) for s in Source},
            "label_pairs": ev.pair_count(group),
            "latency_ms": {f"p{q:g}": _finite(stats.quantile(lat, q / 100)) for q in (50, 90, 99)},
        }
        if ev.live_latency_ms.get(group):  # aggregated live records: their percentiles apart
            live = ev.live_latency_ms[group]
            out[group.value]["live_latency_ms"] = {k: _finite(v) for k, v in live.items()}
        out[group.value]["by_source"] = {s.value: _source_summary(ev, group, s) for s in Source}
    return out


def _source_summary(ev: Evidence, group: Group, source: Source) -> dict[str, Any]:
    """One group's answers from one source: latency percentiles (aggregated live records give
    theirs apart) and served label counts, as the on-call report shows them."""
    lat = ev.latencies.get((group, source), ())
    if lat:
        latency = {f"p{q:g}": _finite(stats.quantile(lat, q / 100)) for q in (50, 90, 99)}
    elif source is Source.LIVE and ev.live_latency_ms.get(group):
        latency = {k: _finite(v) for k, v in ev.live_latency_ms[group].items()}
    else:
        latency = {}
    return {
        "latency_ms": latency,
        "labels": {label: ev.labels.get((group, source, label), 0) for label in LABELS},
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        return _finite(value)
    return value


def _finite(x: float | None) -> float | None:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return None
    return x


def _num(x: float | None, spec: str = ".3f") -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


def _fmt_p(p: float | None) -> str:
    if p is None:
        return "n/a"
    return f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"
