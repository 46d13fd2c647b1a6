"""Where the judge's inputs come from on AWS: the `live` alias and the function's logs.

- live_routing: which versions sit behind the alias, with which weights (lambda get_alias:
  FunctionVersion is the baseline, RoutingConfig.AdditionalVersionWeights the canary).
- LogsInsightsSource: the per-request records of those versions, from the inference
  function's structured log records (message "inference") via CloudWatch Logs Insights.
  `evidence_window` reads what the evidence judge needs at any traffic: live requests as counts
  (stats count(*) by function_version, model_version, status, label, shadow.<model>: a few dozen
  rows whatever the traffic) and live latency percentiles per version, probe requests as rows (a
  few thousand per window).
- insights_rows: one Logs Insights query, polled to its end within a time budget (every query
  here goes through it).
- window_evidence: those records as canary.evidence.Evidence for one baseline/canary pair.
- deployment_target: which versions a CodeDeploy deployment shifts between and its lifecycle
  events (the PreTraffic hook, the gate and the judge all find the versions here).
- latest_logged / hook_record / latency_reference: a component's own Powertools log record
  through Logs Insights; the PreTraffic hook's "pretraffic check" record of one deployment and
  the latency reference it measured (the judge's and the gate's expected latency ratio).

A Logs Insights query returns at most 10,000 rows (StartQuery's limit), so raw rows break near
130 req/s over a 5-minute window with logs still arriving; counts do not. Any query that fills
its limit is split into two time slices and each asked again (counts add up across slices).
The source of a record (live, probe, hook) is read from correlation_id, API Gateway's request id
(infer.sources), so it holds for versions that predate the `source` field too.

The EMF metrics are not used for judging: their only dimension is ModelVersion, which cannot
tell two function versions of the same model apart. Clients are passed in (tests use Stubber).
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from canary.evidence import (
    Evidence,
    EvidenceRecord,
    Group,
    LiveCount,
    collect,
    collect_live_counts,
)
from canary.records import RequestRecord
from canary.stats import quantile

# The PreTraffic hook's and the probe's requests carry these API Gateway request id prefixes,
# which Powertools logs as correlation_id: the hook's are the golden set, never judged; the
# probe's are judged as probe evidence, apart from the live requests.
from infer.sources import LIVE, PRETRAFFIC_REQUEST_PREFIX, PROBE, PROBE_REQUEST_PREFIX

REQUEST_LOG_MESSAGE = "inference"  # infer.app.REQUEST_LOG_MESSAGE
HOOK_LOG_MESSAGE = "pretraffic check"  # the hook logs its result under this message
INSIGHTS_LIMIT = 10_000  # rows one Logs Insights query returns by default
_FIELDS = ("function_version", "model_version", "latency_ms", "label", "status")
_NULL = "-"  # the counts query's stand-in for a missing label (so stats ... by drops no record)
# Live requests are those whose API Gateway request id is neither the hook's nor the probe's.
_NOT_LIVE = f"/^({PRETRAFFIC_REQUEST_PREFIX}|{PROBE_REQUEST_PREFIX})/"
_MODEL_NAME = re.compile(r"^[A-Za-z0-9_]{1,32}$")  # model names go into field names of the query
LATENCY_PERCENTILES = (50, 90, 99)
# Expected label of a probe answer: (served model, probe id) -> the label its manifest recorded.
ExpectedLabel = Callable[[str, str], str | None]


class SourceError(RuntimeError):
    """The records could not be read (the message says what to check)."""


# --------------------------------------------------------------------------- CodeDeploy

ALLOW_TRAFFIC = "AllowTraffic"  # the Lambda deployment lifecycle event that shifts traffic
_DEPLOYMENT_ID = re.compile(r"^d-[A-Z0-9]{1,32}$")  # CodeDeploy's ids; they go into a query


@dataclass(frozen=True)
class DeploymentTarget:
    """What one Lambda deployment shifts: the alias's function, from which version to which."""

    deployment_id: str
    config_name: str  # e.g. CodeDeployDefault.LambdaCanary10Percent5Minutes
    function_name: str
    baseline_version: str  # currentVersion: what the alias serves before the shift
    canary_version: str  # targetVersion: the version being rolled out
    lifecycle_events: tuple[Mapping[str, Any], ...]  # the target's, as CodeDeploy returns them

    def event(self, name: str) -> Mapping[str, Any] | None:
        return next((e for e in self.lifecycle_events if e.get("lifecycleEventName") == name), None)


def deployment_target(codedeploy: Any, deployment_id: str) -> DeploymentTarget:
    """The deployment's one Lambda target (codedeploy get_deployment, list_deployment_targets,
    get_deployment_target: lambdaFunctionInfo's currentVersion / targetVersion, known from the
    deployment's start, so the PreTraffic hook can read them too). SourceError when it has none."""
    info = codedeploy.get_deployment(deploymentId=deployment_id)["deploymentInfo"]
    targets: list[str] = []
    kwargs: dict[str, Any] = {"deploymentId": deployment_id}
    while True:
        page = codedeploy.list_deployment_targets(**kwargs)
        targets += page.get("targetIds") or []
        if not page.get("nextToken"):
            break
        kwargs["nextToken"] = page["nextToken"]
    if len(targets) != 1:
        raise SourceError(f"deployment {deployment_id} has {len(targets)} targets, expected one Lambda alias")
    target = codedeploy.get_deployment_target(deploymentId=deployment_id, targetId=targets[0])
    lam = (target.get("deploymentTarget") or {}).get("lambdaTarget")
    if not lam:
        raise SourceError(f"deployment {deployment_id}: target {targets[0]} is not a Lambda target")
    fn = lam.get("lambdaFunctionInfo") or {}
    if not fn.get("currentVersion") or not fn.get("targetVersion"):
        raise SourceError(f"deployment {deployment_id}: target names no current/target version")
    return DeploymentTarget(
        deployment_id=deployment_id,
        config_name=str(info.get("deploymentConfigName") or ""),
        function_name=str(fn.get("functionName") or ""),
        baseline_version=str(fn["currentVersion"]),
        canary_version=str(fn["targetVersion"]),
        lifecycle_events=tuple(lam.get("lifecycleEvents") or ()),
    )


def report_status(codedeploy: Any, deployment_id: str, execution_id: str, status: str) -> None:
    """A lifecycle hook's answer to CodeDeploy (the PreTraffic hook's and the PostTraffic gate's)."""
    codedeploy.put_lifecycle_event_hook_execution_status(
        deploymentId=deployment_id, lifecycleEventHookExecutionId=execution_id, status=status
    )


_CLIENTS: dict[tuple[str, int, int | None], Any] = {}


def aws_client(name: str, *, read_timeout: int, max_pool_connections: int | None = None) -> Any:
    """A boto3 client, made once per Lambda environment, with bounded waits (a hung call must not
    outlive the function, which still has to report) and standard retries."""
    key = (name, read_timeout, max_pool_connections)
    if key not in _CLIENTS:
        import boto3
        from botocore.config import Config

        pool = {} if max_pool_connections is None else {"max_pool_connections": max_pool_connections}
        config = Config(read_timeout=read_timeout, retries={"mode": "standard"}, **pool)
        _CLIENTS[key] = boto3.client(name, config=config)
    return _CLIENTS[key]


# --------------------------------------------------------------------------- one Logs Insights query

_QUERY_FAILED = ("Failed", "Cancelled", "Timeout", "Unknown")  # GetQueryResults' final statuses but Complete


def insights_rows(
    logs: Any,
    log_group: str,
    start: int,
    end: int,
    query: str,
    limit: int,
    *,
    sleep: Callable[[float], None],
    poll_s: float,
    timeout_s: float,
    waited: float = 0.0,
) -> tuple[list[list[dict[str, str]]], float]:
    """Run one Logs Insights query over [start, end] (epoch seconds) and poll it every `poll_s`
    until it completes: (its rows, the seconds waited so far). `waited` is what earlier queries
    already spent of the shared `timeout_s` budget. A failed query raises SourceError; one still
    running when the budget is spent is stopped (best effort) and raises SourceError."""
    query_id = logs.start_query(
        logGroupName=log_group, startTime=start, endTime=end, queryString=query, limit=limit
    )["queryId"]
    while True:
        response = logs.get_query_results(queryId=query_id)
        status = response.get("status")
        if status == "Complete":
            return list(response.get("results") or []), waited
        if status in _QUERY_FAILED:
            raise SourceError(f"Logs Insights query {query_id} on {log_group} ended {status}")
        if waited >= timeout_s:
            with contextlib.suppress(Exception):  # best effort: the error below matters more
                logs.stop_query(queryId=query_id)
            raise SourceError(
                f"Logs Insights query {query_id} on {log_group} still {status} after {waited:.0f} s"
            )
        sleep(poll_s)
        waited += poll_s


# --------------------------------------------------------------------------- a component's own records


def latest_logged(
    logs: Any,
    log_group: str,
    message: str,
    since: float,
    until: float,
    *,
    where: str = "",
    sleep: Callable[[float], None] = time.sleep,
    timeout_s: float = 60.0,
) -> dict[str, Any] | None:
    """The most recent Powertools log record with this message in [since, until], or None.
    `where`: an extra Logs Insights condition (built by the caller from checked values)."""
    condition = f'message = "{message}"' + (f" and {where}" if where else "")
    query = f"fields @timestamp, @message\n| filter {condition}\n| sort @timestamp desc\n| limit 1"
    rows, _ = insights_rows(
        logs, log_group, int(since), int(until) + 1, query, 1, sleep=sleep, poll_s=1.0, timeout_s=timeout_s
    )
    for row in rows:
        cells = {c["field"]: c.get("value") for c in row}
        try:
            record = json.loads(cells.get("@message") or "")
        except ValueError:
            continue
        if isinstance(record, dict):
            return record
    return None


def hook_record(
    logs: Any,
    log_group: str,
    deployment_id: str,
    since: float,
    until: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
    timeout_s: float = 60.0,
) -> dict[str, Any] | None:
    """The PreTraffic hook's "pretraffic check" record of this deployment (its `deployment_id`
    field), from the hook's log group; None while it is not visible (log lag) or absent."""
    if not _DEPLOYMENT_ID.match(deployment_id):
        raise SourceError(f"{deployment_id!r} is not a CodeDeploy deployment id")
    return latest_logged(
        logs,
        log_group,
        HOOK_LOG_MESSAGE,
        since,
        until,
        where=f'deployment_id = "{deployment_id}"',
        sleep=sleep,
        timeout_s=timeout_s,
    )


def latency_reference(record: Mapping[str, Any] | None) -> float | None:
    """The canary/baseline latency ratio the hook measured, from its record (or its result,
    HookResult.as_dict()); None when the record is missing or measured none."""
    if not isinstance(record, Mapping):
        return None
    result = record.get("result") if isinstance(record.get("result"), Mapping) else record
    reference = result.get("latency_reference")
    value = reference.get("ratio") if isinstance(reference, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None


@dataclass(frozen=True)
class AliasRouting:
    """Which function versions the alias sends traffic to."""

    function_name: str
    alias: str
    baseline_version: str  # the alias's FunctionVersion
    canary_version: str | None  # the one AdditionalVersionWeights entry, if any
    canary_weight: float  # its share of traffic (0.0 without a canary)

    @property
    def canary_running(self) -> bool:
        return self.canary_version is not None and self.canary_weight > 0.0


def live_routing(lambda_client: Any, function_name: str, alias: str = "live") -> AliasRouting:
    """Read the alias's routing (lambda get_alias)."""
    response = lambda_client.get_alias(FunctionName=function_name, Name=alias)
    weights = (response.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    canary, weight = None, 0.0
    if weights:
        # Lambda allows one additional version; take the heaviest should that ever change.
        canary, weight = max(weights.items(), key=lambda kv: kv[1])
    return AliasRouting(
        function_name=function_name,
        alias=alias,
        baseline_version=str(response["FunctionVersion"]),
        canary_version=None if canary is None else str(canary),
        canary_weight=float(weight),
    )


def _version_filter(versions: Iterable[str]) -> str:
    quoted = ", ".join(f'"{v}"' for v in sorted(set(versions)))
    return f'filter message = "{REQUEST_LOG_MESSAGE}" and function_version in [{quoted}]'


def _checked_models(models: Iterable[str]) -> list[str]:
    names = sorted(set(models))
    bad = [m for m in names if not _MODEL_NAME.match(m)]
    if bad:
        raise ValueError(f"model names {bad} cannot name a log field (letters, digits, _ only)")
    return names


def live_counts_query(versions: Iterable[str], models: Iterable[str], limit: int = INSIGHTS_LIMIT) -> str:
    """Live requests of these versions as counts per (version, model, status, label, shadow label
    of each model): the evidence judge's live input, a few dozen rows at any traffic."""
    shadows = [f'coalesce(shadow.{m}, "{_NULL}") as shadow_{m}' for m in _checked_models(models)]
    by = ", ".join(
        [
            "function_version",
            "model_version",
            "status",
            "answer",
            *(f"shadow_{m}" for m in _checked_models(models)),
        ]
    )
    return (
        _version_filter(versions) + "\n"
        f"| filter correlation_id not like {_NOT_LIVE}\n"
        f'| fields coalesce(label, "{_NULL}") as answer' + "".join(f", {x}" for x in shadows) + "\n"
        f"| stats count(*) as n by {by}\n"
        f"| limit {limit}"
    )


def live_latency_query(versions: Iterable[str]) -> str:
    """Percentiles of the live latencies of each version's answered (non-5xx) requests."""
    pcts = ", ".join(f"pct(latency_ms, {q}) as p{q}" for q in LATENCY_PERCENTILES)
    return (
        _version_filter(versions) + "\n"
        f"| filter correlation_id not like {_NOT_LIVE} and status < 500\n"
        f"| stats count(*) as n, {pcts} by function_version"
    )


def probe_query(versions: Iterable[str], models: Iterable[str], limit: int = INSIGHTS_LIMIT) -> str:
    """The probe's request records of these versions, one row each (a few thousand a window)."""
    shadows = "".join(f", shadow.{m}" for m in _checked_models(models))
    return (
        "fields @timestamp, correlation_id, " + ", ".join(_FIELDS) + shadows + "\n"
        f"| {_version_filter(versions)}\n"
        f"| filter correlation_id like /^{PROBE_REQUEST_PREFIX}/\n"
        "| sort @timestamp asc\n"
        f"| limit {limit}"
    )


def parse_insights_timestamp(value: str) -> float:
    """'2024-05-01 12:00:00.123' (UTC, Logs Insights' format) -> epoch seconds."""
    text = value.strip().replace("T", " ").rstrip("Z")
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    raise ValueError(f"unrecognised Logs Insights timestamp {value!r}")


def record_from_row(row: Iterable[dict[str, str]]) -> RequestRecord:
    """One Logs Insights result row ([{field, value}, ...]) -> RequestRecord (ValueError if bad).
    A probe's row (correlation_id "probe-<probe id>") is a probe record whatever the version
    that logged it knew about sources."""
    data = {cell["field"]: cell.get("value") for cell in row}
    correlation = str(data.get("correlation_id") or "")
    if correlation.startswith(PROBE_REQUEST_PREFIX):
        data["source"], data["probe_id"] = PROBE, correlation[len(PROBE_REQUEST_PREFIX) :]
    if "@timestamp" not in data:
        raise ValueError("row has no @timestamp")
    data["timestamp"] = parse_insights_timestamp(str(data["@timestamp"]))
    data.setdefault("label", None)
    return RequestRecord.from_mapping(data)


@dataclass(frozen=True)
class LiveAggregate:
    """`count` live requests of one function version that agree on model, status and labels."""

    function_version: str
    model_version: str
    status: int
    label: str | None
    shadow: tuple[tuple[str, str], ...]  # (model, label) of the other models, sorted
    count: int


def aggregate_from_row(row: Iterable[dict[str, str]], models: Iterable[str]) -> LiveAggregate:
    """One row of live_counts_query -> LiveAggregate (ValueError if malformed)."""
    data = {cell["field"]: cell.get("value") for cell in row}

    def label(value: Any) -> str | None:
        return None if value in (None, "", _NULL, "null") else str(value)

    try:
        shadow = tuple(
            sorted((m, lab) for m in models if (lab := label(data.get(f"shadow_{m}"))) is not None)
        )
        return LiveAggregate(
            function_version=str(data["function_version"]),
            model_version=str(data["model_version"]),
            status=int(float(data["status"])),
            label=label(data.get("answer")),
            shadow=shadow,
            count=int(data["n"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed count row ({exc.__class__.__name__}: {exc})") from None


@dataclass(frozen=True)
class WindowRecords:
    """What the evidence judge reads of one time window: live counts, live latency percentiles
    per version, the probe's records, and how the reading went."""

    since: float
    until: float
    live: tuple[LiveAggregate, ...]
    live_latency_ms: Mapping[str, Mapping[str, float]]  # function version -> {"p50": ms, ...}
    probes: tuple[RequestRecord, ...]
    unreadable: int  # rows that could not be read (left out, counted)
    queries: int  # Logs Insights queries run
    largest_result: int  # most rows any one query returned (never above the limit)

    @classmethod
    def from_records(cls, records: Iterable[RequestRecord], since: float, until: float) -> WindowRecords:
        """Raw records as LogsInsightsSource.evidence_window reads them from the logs (the local
        stack's reading): live requests as counts per (version, model, status, label, shadow
        labels), live latency percentiles per version (answered requests), the probe's records one
        by one; the hook's are left out. One "query" that returned every row."""
        counts: Counter[tuple[Any, ...]] = Counter()
        latencies: dict[str, list[float]] = {}
        probes = []
        for r in records:
            if r.source == LIVE:
                counts[(r.function_version, r.model_version, r.status, r.label, r.shadow)] += 1
                if r.status < 500:
                    latencies.setdefault(r.function_version, []).append(r.latency_ms)
            elif r.source == PROBE:
                probes.append(r)
        live = tuple(LiveAggregate(*key, count=n) for key, n in sorted(counts.items(), key=str))
        pcts = {
            v: {f"p{q}": quantile(sorted(xs), q / 100.0) for q in LATENCY_PERCENTILES}
            for v, xs in latencies.items()
        }
        return cls(since, until, live, pcts, tuple(probes), 0, 1, len(probes) + len(live))

    @property
    def total(self) -> int:
        """Records (live and probe) of every version read."""
        return sum(a.count for a in self.live) + len(self.probes)

    def count(self, version: str) -> int:
        """Records (live and probe) of one function version."""
        live = sum(a.count for a in self.live if a.function_version == version)
        return live + sum(1 for r in self.probes if r.function_version == version)

    def model_of(self, version: str) -> str | None:
        """The model a function version served (the most frequent, should there be several)."""
        seen: Counter[str] = Counter()
        for a in self.live:
            if a.function_version == version:
                seen[a.model_version] += a.count
        seen.update(r.model_version for r in self.probes if r.function_version == version)
        return seen.most_common(1)[0][0] if seen else None


class LogsInsightsSource:
    """Request records from the inference function's log group, through Logs Insights.

    A query returns at most `limit` rows, so a window that fills a query is split in two and
    each half queried again, up to `max_queries` queries in all. All polling together stops
    after `timeout_seconds`, so the caller finishes inside its Lambda timeout.
    """

    def __init__(
        self,
        logs_client: Any,
        log_group: str,
        versions: Iterable[str],
        *,
        limit: int = INSIGHTS_LIMIT,
        max_queries: int = 16,
        poll_seconds: float = 1.0,
        timeout_seconds: float = 40.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 0 < limit <= INSIGHTS_LIMIT:
            raise ValueError(f"limit must be in 1..{INSIGHTS_LIMIT} (Logs Insights' maximum), got {limit}")
        self.logs = logs_client
        self.log_group = log_group
        self.versions = tuple(versions)
        self.limit = limit
        self.max_queries = max_queries
        self.poll_seconds = poll_seconds
        self.timeout_seconds = timeout_seconds
        self.sleep = sleep
        self.malformed = 0  # rows skipped because they could not be read as records
        self.largest_result = 0  # most rows one query returned
        self._queries = 0
        self._waited = 0.0

    def evidence_window(self, since: float, until: float, models: Iterable[str]) -> WindowRecords:
        """Live counts, live latency percentiles and probe records of the window (to the second).
        `models`: every model the packages ship (their shadow labels are read)."""
        self._reset()
        models = _checked_models(models)
        start, end = math.floor(since), math.ceil(until)
        live = []
        for row in self._sliced(start, end, live_counts_query(self.versions, models, self.limit)):
            try:
                live.append(aggregate_from_row(row, models))
            except ValueError:
                self.malformed += 1
        latency: dict[str, dict[str, float]] = {}
        for row in self._run(start, end, live_latency_query(self.versions)):
            data = {cell["field"]: cell.get("value") for cell in row}
            with contextlib.suppress(KeyError, TypeError, ValueError):
                latency[str(data["function_version"])] = {
                    f"p{q}": float(data[f"p{q}"]) for q in LATENCY_PERCENTILES
                }
        probes = self._records(self._sliced(start, end, probe_query(self.versions, models, self.limit)))
        probes.sort(key=lambda r: r.timestamp)
        return WindowRecords(
            since,
            until,
            tuple(live),
            latency,
            tuple(probes),
            self.malformed,
            self._queries,
            self.largest_result,
        )

    def _reset(self) -> None:
        self._queries = 0
        self._waited = 0.0
        self.malformed = 0
        self.largest_result = 0

    def _sliced(self, start: int, end: int, query: str) -> list[list[dict[str, str]]]:
        """The query's rows over [start, end]; a slice that fills the limit is split in two."""
        rows = self._run(start, end, query)
        if len(rows) < self.limit:
            return rows
        if end <= start:
            raise SourceError(
                f"more than {self.limit} rows in one second of {self.log_group}: raise the query limit"
            )
        middle = (start + end) // 2
        return self._sliced(start, middle, query) + self._sliced(middle + 1, end, query)

    def _records(self, rows: list[list[dict[str, str]]]) -> list[RequestRecord]:
        out = []
        for row in rows:
            try:
                out.append(record_from_row(row))
            except ValueError:
                self.malformed += 1
        return out

    def _run(self, start: int, end: int, query: str) -> list[list[dict[str, str]]]:
        if self._queries >= self.max_queries:
            raise SourceError(f"needed more than {self.max_queries} Logs Insights queries for one window")
        self._queries += 1
        rows, self._waited = insights_rows(
            self.logs,
            self.log_group,
            start,
            end,
            query,
            self.limit,
            sleep=self.sleep,
            poll_s=self.poll_seconds,
            timeout_s=self.timeout_seconds,
            waited=self._waited,
        )
        self.largest_result = max(self.largest_result, len(rows))
        return rows


def window_evidence(
    window: WindowRecords, *, baseline_version: str, canary_version: str, expected: ExpectedLabel
) -> Evidence:
    """The window's records as the evidence judge's input for this baseline/canary pair: the
    probe records through canary.evidence.collect, the live counts through collect_live_counts.
    Raises SourceError when a version has no record at all (nothing to judge it on)."""
    models = {}
    for role, version in (("baseline", baseline_version), ("canary", canary_version)):
        model = window.model_of(version)
        if model is None:
            raise SourceError(f"no request records of the {role} version {version} in the window")
        models[version] = model
    base_model, canary_model = models[baseline_version], models[canary_version]
    other = {baseline_version: canary_model, canary_version: base_model}

    def live(version: str) -> list[LiveCount]:
        theirs = other[version]
        return [
            LiveCount(
                a.model_version,
                a.label,
                a.label if theirs == a.model_version else dict(a.shadow).get(theirs),
                a.status,
                a.count,
            )
            for a in window.live
            if a.function_version == version
        ]

    def probes(version: str) -> list[EvidenceRecord]:
        out = []
        for r in window.probes:
            if r.function_version != version:
                continue
            known = expected(r.model_version, r.probe_id) if r.probe_id else None
            ev = r.to_evidence(baseline_model=base_model, canary_model=canary_model, expected_label=known)
            if ev is not None:  # the window holds probe records only: always one
                out.append(ev)
        return out

    latency = {
        group: window.live_latency_ms[version]
        for group, version in ((Group.BASELINE, baseline_version), (Group.CANARY, canary_version))
        if version in window.live_latency_ms
    }
    ev = collect(
        probes(baseline_version), probes(canary_version), baseline_model=base_model, canary_model=canary_model
    ) + collect_live_counts(
        live(baseline_version),
        live(canary_version),
        baseline_model=base_model,
        canary_model=canary_model,
        live_latency_ms=latency,
    )
    if window.unreadable:
        ev = replace(ev, dropped={**ev.dropped, "unreadable log rows": window.unreadable})
    return ev
