"""The on-call canary report (schema "canary-report/1") as frozen objects, each built once.

Two sources build it: `make report` from what AWS says (canary.report.collect_report) and the
offline rehearsal from its own run (emulator.rehearse). Each assembles every part first and
constructs the report in one go; nothing patches it afterwards. `to_dict()` gives the JSON the
text (canary.render) and HTML (canary.report_html) renderers read, `--json` prints, and the
judge Lambda logs (its look, JudgeLook):

    {"schema", "generated_at", "source": "aws"|"local", "stack", "environment", "region",
     "outcome", ["stage", "reasons",] "deployment", "pretraffic", "alarms", "judge",
     ["gate"] (AWS) | ["looks", "evidence", "versions", "traffic", "timeline", "rehearsal"]
     (rehearsal), "notes", ["rollback"] (rehearsal --then-rollback)}

The parts below the top level (a deployment, an alarm, a gate record...) stay the plain JSON
mappings their producers log or answer: the report carries them, it does not re-type them.
"""

from __future__ import annotations

import copy
import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from canary.evidence import EvidenceReport
from canary.records import LABELS, RequestRecord
from canary.sources import AliasRouting
from canary.stats import quantile

REPORT_SCHEMA = "canary-report/1"
HISTOGRAM_BINS = 36

Json = Mapping[str, Any]


@dataclass(frozen=True)
class ScheduledLook:
    """What the scheduled judge Lambda adds to its look: the running deployment it judged, from
    when, with how many Logs Insights queries, against which latency reference."""

    canary_start: float
    deployment_id: str
    queries: int
    latency_ratio: float | None  # the hook's measured reference (None: latency stays NoData)
    latency_source: str  # how the reference was found, or why not


@dataclass(frozen=True)
class JudgeLook:
    """One look of the evidence judge as it is reported: the judge's report, the alias routing it
    judged, when, and (the judge Lambda's looks) the deployment and reference it used."""

    report: EvidenceReport
    routing: AliasRouting
    judged_at: float | None
    scheduled: ScheduledLook | None = None

    def to_dict(self) -> dict[str, Any]:
        out = self.report.as_dict()
        out["routing"] = asdict(self.routing)
        out["judged_at"] = self.judged_at
        if self.scheduled is not None:
            s = self.scheduled
            out.update(
                canary_start=s.canary_start,
                deployment_id=s.deployment_id,
                queries=s.queries,
                latency_reference={"ratio": s.latency_ratio, "source": s.latency_source},
            )
        return out


@dataclass(frozen=True)
class LocalRun:
    """The rehearsal's own parts of the report: what the local stack saw that AWS does not keep."""

    stage: str | None  # where the deployment was decided ("pretraffic", "canary minute 2", ...)
    reasons: tuple[str, ...]  # why, as the controller said it
    looks: tuple[Json, ...]  # every look of the judge, in short
    evidence: Json  # n per version per source, the probe, the gate, the judge's crashes
    versions: tuple[Json, ...]  # version_table() of the users' requests
    traffic: Json  # the replayed traffic's accounting
    timeline: tuple[Json, ...]  # the controller's events
    rehearsal: Json  # what was asked for (models, faults, speed, seed, ...)
    rollback: Json | None = None  # --then-rollback's section (None: not asked for)


@dataclass(frozen=True)
class CanaryReport:
    """The whole report, one source's view of one deployment."""

    generated_at: float
    source: str  # "aws" or "local"
    stack: str | None
    environment: str | None
    region: str | None
    outcome: Json  # canary.render.outcome_of, or the rehearsal's decision
    deployment: Json | None
    pretraffic: Json | None  # the PreTraffic hook's result
    alarms: tuple[Json, ...]
    judge: Json | None  # the judge's latest look (JudgeLook.to_dict(), or as the Lambda logged it)
    notes: tuple[str, ...] = ()
    gate: Json | None = None  # AWS: the PostTraffic gate's record (the rehearsal's is in local.evidence)
    local: LocalRun | None = None  # the rehearsal's own parts; None for the AWS report

    def to_dict(self) -> dict[str, Any]:
        """The canary-report/1 dict (a fresh copy: callers may change it)."""
        out: dict[str, Any] = {
            "schema": REPORT_SCHEMA,
            "generated_at": self.generated_at,
            "source": self.source,
            "stack": self.stack,
            "environment": self.environment,
            "region": self.region,
            "outcome": self.outcome,
        }
        local = self.local
        if local is not None:
            out.update(stage=local.stage, reasons=list(local.reasons))
        out.update(
            deployment=self.deployment, pretraffic=self.pretraffic, alarms=list(self.alarms), judge=self.judge
        )
        if local is None:
            out["gate"] = self.gate
        else:
            out.update(
                looks=list(local.looks),
                evidence=local.evidence,
                versions=list(local.versions),
                traffic=local.traffic,
                timeline=list(local.timeline),
                rehearsal=local.rehearsal,
            )
        out["notes"] = list(self.notes)
        if local is not None and local.rollback is not None:
            out["rollback"] = local.rollback
        return copy.deepcopy(out)


@dataclass(frozen=True)
class _Histogram:
    """Log-spaced latency bins shared by every version of one table."""

    edges: list[float] = field(default_factory=list)

    @classmethod
    def over(cls, latencies: Sequence[float], bins: int) -> _Histogram:
        if not latencies:
            return cls()
        lo = 10 ** math.floor(math.log10(min(latencies)))
        hi = 10 ** math.ceil(math.log10(max(latencies) * 1.0001))
        if hi <= lo:
            hi = lo * 10
        step = (math.log10(hi) - math.log10(lo)) / bins
        return cls([10 ** (math.log10(lo) + i * step) for i in range(bins + 1)])

    def counts(self, latencies: Sequence[float], bins: int) -> list[int]:
        counts = [0] * bins
        if not self.edges:
            return counts
        lo, hi = math.log10(self.edges[0]), math.log10(self.edges[-1])
        for x in latencies:
            if x > 0:
                i = int((math.log10(x) - lo) / (hi - lo) * bins)
                counts[min(max(i, 0), bins - 1)] += 1
        return counts


def version_table(
    records: Sequence[RequestRecord], roles: Mapping[str, str], bins: int = HISTOGRAM_BINS
) -> list[dict[str, Any]]:
    """Per function version, over every request given: n, 5xx, latency percentiles and a
    log-spaced histogram (shared edges), label counts and shares."""
    by_version: dict[str, list[RequestRecord]] = defaultdict(list)
    for r in records:
        by_version[r.function_version].append(r)
    histogram = _Histogram.over([r.latency_ms for r in records if r.status < 500 and r.latency_ms > 0], bins)
    table = []
    for version in sorted(by_version, key=lambda v: (roles.get(v, "z"), v)):
        rs = by_version[version]
        lat = sorted(r.latency_ms for r in rs if r.status < 500)
        labels = Counter(r.label for r in rs if r.label is not None and r.status < 500)
        labelled = sum(labels.values())
        models = Counter(r.model_version for r in rs)
        errors = sum(1 for r in rs if r.status >= 500)
        table.append(
            {
                "role": roles.get(version, "other"),
                "function_version": version,
                "model_version": models.most_common(1)[0][0] if models else None,
                "requests": len(rs),
                "errors": errors,
                "error_rate": errors / len(rs) if rs else None,
                "statuses": {str(k): v for k, v in sorted(Counter(r.status for r in rs).items())},
                "latency_ms": {
                    "p50": quantile(lat, 0.5) if lat else None,
                    "p90": quantile(lat, 0.9) if lat else None,
                    "p99": quantile(lat, 0.99) if lat else None,
                    "max": lat[-1] if lat else None,
                },
                "labels": {k: labels.get(k, 0) for k in LABELS},
                "label_shares": {k: (labels.get(k, 0) / labelled if labelled else None) for k in LABELS},
                "latency_histogram": {"edges": histogram.edges, "counts": histogram.counts(lat, bins)},
            }
        )
    return table
