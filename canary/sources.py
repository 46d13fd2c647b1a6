"""Where the judge's inputs come from on AWS: the `live` alias and the function's logs.

- live_routing: which versions sit behind the alias, with which weights (lambda get_alias:
  FunctionVersion is the baseline, RoutingConfig.AdditionalVersionWeights the canary).
- LogsInsightsSource: the per-request records of those versions, from the inference
  function's structured log records (message "inference") via CloudWatch Logs Insights.

The EMF metrics are not used for judging: their only dimension is ModelVersion, which cannot
tell two function versions of the same model apart, and they hold aggregates, while the
Mann-Whitney test needs the individual latencies. Clients are passed in (tests use Stubber).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from canary.records import RequestRecord

REQUEST_LOG_MESSAGE = "inference"  # infer.app.REQUEST_LOG_MESSAGE
# The PreTraffic hook's requests carry this API Gateway request id prefix, which Powertools logs
# as correlation_id: they are the golden set, not live traffic, and must not be judged.
PRETRAFFIC_REQUEST_PREFIX = "pretraffic-"
HOOK_LOG_MESSAGE = "pretraffic check"  # the hook logs its result under this message
INSIGHTS_LIMIT = 10_000  # rows one Logs Insights query returns by default
_FIELDS = ("function_version", "model_version", "latency_ms", "label", "status")


class SourceError(RuntimeError):
    """The records could not be read (the message says what to check)."""


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


def insights_query(versions: Iterable[str], limit: int = INSIGHTS_LIMIT) -> str:
    """The Logs Insights query for the request records of these function versions."""
    quoted = ", ".join(f'"{v}"' for v in sorted(set(versions)))
    return (
        "fields @timestamp, " + ", ".join(_FIELDS) + "\n"
        f'| filter message = "{REQUEST_LOG_MESSAGE}" and function_version in [{quoted}]\n'
        f"| filter correlation_id not like /^{PRETRAFFIC_REQUEST_PREFIX}/\n"
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
    """One Logs Insights result row ([{field, value}, ...]) -> RequestRecord (ValueError if bad)."""
    data = {cell["field"]: cell.get("value") for cell in row}
    if "@timestamp" not in data:
        raise ValueError("row has no @timestamp")
    data["timestamp"] = parse_insights_timestamp(str(data["@timestamp"]))
    data.setdefault("label", None)
    return RequestRecord.from_mapping(data)


class LogsInsightsSource:
    """Request records from the inference function's log group, through Logs Insights.

    A query returns at most `limit` rows, so a window that fills a query is split in two and
    each half queried again, up to `max_queries` queries in all. All polling together stops
    after `timeout_seconds`, so the judge finishes inside its Lambda timeout.
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
        self.logs = logs_client
        self.log_group = log_group
        self.versions = tuple(versions)
        self.limit = limit
        self.max_queries = max_queries
        self.poll_seconds = poll_seconds
        self.timeout_seconds = timeout_seconds
        self.sleep = sleep
        self.malformed = 0  # rows skipped because they could not be read as records
        self._queries = 0
        self._waited = 0.0

    def window(self, since: float, until: float) -> list[RequestRecord]:
        """Records with since <= timestamp <= until (to the second), oldest first."""
        self._queries = 0
        self._waited = 0.0
        records = self._window(math.floor(since), math.ceil(until))
        records.sort(key=lambda r: r.timestamp)
        return records

    def _window(self, start: int, end: int) -> list[RequestRecord]:
        rows = self._run(start, end)
        if len(rows) < self.limit:
            return self._records(rows)
        if end <= start:
            raise SourceError(
                f"more than {self.limit} records in one second of {self.log_group}: raise the query limit"
            )
        middle = (start + end) // 2
        return self._window(start, middle) + self._window(middle + 1, end)

    def _records(self, rows: list[list[dict[str, str]]]) -> list[RequestRecord]:
        out = []
        for row in rows:
            try:
                out.append(record_from_row(row))
            except ValueError:
                self.malformed += 1
        return out

    def _run(self, start: int, end: int) -> list[list[dict[str, str]]]:
        if self._queries >= self.max_queries:
            raise SourceError(f"needed more than {self.max_queries} Logs Insights queries for one window")
        self._queries += 1
        query_id = self.logs.start_query(
            logGroupName=self.log_group,
            startTime=start,
            endTime=end,
            queryString=insights_query(self.versions, self.limit),
            limit=self.limit,
        )["queryId"]
        while True:
            response = self.logs.get_query_results(queryId=query_id)
            status = response.get("status")
            if status == "Complete":
                return list(response.get("results") or [])
            if status in ("Failed", "Cancelled", "Timeout", "Unknown"):
                raise SourceError(f"Logs Insights query {query_id} on {self.log_group} ended {status}")
            if self._waited >= self.timeout_seconds:
                with contextlib.suppress(Exception):  # best effort: the error below matters more
                    self.logs.stop_query(queryId=query_id)
                raise SourceError(f"Logs Insights query {query_id} still {status} after {self._waited:.0f} s")
            self.sleep(self.poll_seconds)
            self._waited += self.poll_seconds
