"""The AWS metric sources: the live alias's routing and request records from Logs Insights (Stubber)."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import ANY, Stubber

from canary.records import RequestRecord
from canary.sources import (
    LogsInsightsSource,
    SourceError,
    insights_query,
    live_routing,
    parse_insights_timestamp,
)

CREDS = {"region_name": "us-east-1", "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
T0 = 1795478400.0  # 2026-11-24 00:00:00 UTC


def client(name):
    return boto3.client(name, **CREDS)


def row(ts: str, version: str, model: str, latency: str, label: str | None, status: str):
    cells = [
        {"field": "@timestamp", "value": ts},
        {"field": "function_version", "value": version},
        {"field": "model_version", "value": model},
        {"field": "latency_ms", "value": latency},
        {"field": "status", "value": status},
    ]
    if label is not None:  # Logs Insights leaves out fields that are null
        cells.append({"field": "label", "value": label})
    return cells


def test_live_routing_finds_baseline_and_canary_with_weight():
    """get_alias with AdditionalVersionWeights: FunctionVersion is the baseline, the extra one the canary."""
    lam = client("lambda")
    with Stubber(lam) as stub:
        stub.add_response(
            "get_alias",
            {
                "FunctionVersion": "6",
                "Name": "live",
                "RoutingConfig": {"AdditionalVersionWeights": {"7": 0.1}},
            },
            {"FunctionName": "hate-speech", "Name": "live"},
        )
        routing = live_routing(lam, "hate-speech")
    assert (routing.baseline_version, routing.canary_version, routing.canary_weight) == ("6", "7", 0.1)
    assert routing.canary_running


def test_live_routing_without_a_canary():
    """An alias pointing at one version has no canary running."""
    lam = client("lambda")
    with Stubber(lam) as stub:
        stub.add_response(
            "get_alias", {"FunctionVersion": "6", "Name": "live"}, {"FunctionName": "f", "Name": "live"}
        )
        routing = live_routing(lam, "f")
    assert routing.canary_version is None and not routing.canary_running


def test_insights_query_filters_versions_and_pretraffic_requests():
    """The query reads the request records of the two versions and leaves the hook's golden requests out."""
    query = insights_query(["7", "6"])
    assert 'filter message = "inference" and function_version in ["6", "7"]' in query
    assert "correlation_id not like /^pretraffic-/" in query
    assert query.rstrip().endswith("| limit 10000")


def test_logs_source_reads_records_and_skips_unreadable_rows():
    """Rows become RequestRecords (UTC timestamps, null label for errors); a bad row is counted, not fatal."""
    logs = client("logs")
    rows = [
        row("2026-11-24 00:00:01.250", "6", "v1", "3.2", "neither", "200"),
        row("2026-11-24 00:00:02.000", "7", "v2", "0.9", None, "500"),
        row("2026-11-24 00:00:03.000", "7", "v2", "oops", "neither", "200"),
    ]
    with Stubber(logs) as stub:
        stub.add_response(
            "start_query",
            {"queryId": "q1"},
            {
                "logGroupName": "/aws/lambda/f",
                "startTime": int(T0),
                "endTime": int(T0) + 60,
                "queryString": ANY,
                "limit": 10000,
            },
        )
        stub.add_response("get_query_results", {"status": "Running", "results": []}, {"queryId": "q1"})
        stub.add_response("get_query_results", {"status": "Complete", "results": rows}, {"queryId": "q1"})
        source = LogsInsightsSource(logs, "/aws/lambda/f", ["6", "7"], sleep=lambda s: None)
        records = source.window(T0, T0 + 60)
    assert records == [
        RequestRecord("6", "v1", 3.2, "neither", 200, T0 + 1.25),
        RequestRecord("7", "v2", 0.9, None, 500, T0 + 2.0),
    ]
    assert source.malformed == 1


def test_logs_source_splits_a_window_that_fills_a_query():
    """A query that returns `limit` rows is split in two halves, each queried again."""
    logs = client("logs")
    full = [row("2026-11-24 00:00:10.000", "6", "v1", "3", "neither", "200")] * 2
    with Stubber(logs) as stub:
        for query_id, (start, end), result in (
            ("q1", (0, 100), full),
            ("q2", (0, 50), full[:1]),
            ("q3", (51, 100), []),
        ):
            params = {"logGroupName": "g", "startTime": int(T0) + start, "endTime": int(T0) + end}
            stub.add_response(
                "start_query", {"queryId": query_id}, {**params, "queryString": ANY, "limit": 2}
            )
            stub.add_response(
                "get_query_results", {"status": "Complete", "results": result}, {"queryId": query_id}
            )
        records = LogsInsightsSource(logs, "g", ["6"], limit=2, sleep=lambda s: None).window(T0, T0 + 100)
    assert len(records) == 1


def test_logs_source_reports_a_failed_query():
    """A query that ends Failed raises SourceError naming the log group."""
    logs = client("logs")
    with Stubber(logs) as stub:
        stub.add_response("start_query", {"queryId": "q1"})
        stub.add_response("get_query_results", {"status": "Failed", "results": []})
        with pytest.raises(SourceError, match="/aws/lambda/f"):
            LogsInsightsSource(logs, "/aws/lambda/f", ["6"], sleep=lambda s: None).window(T0, T0 + 60)


def test_logs_source_gives_up_on_a_query_that_never_completes():
    """A query still running after the timeout is stopped and raises SourceError."""
    logs = client("logs")
    with Stubber(logs) as stub:
        stub.add_response("start_query", {"queryId": "q1"})
        for _ in range(3):
            stub.add_response("get_query_results", {"status": "Running", "results": []})
        stub.add_response("stop_query", {"success": True}, {"queryId": "q1"})
        source = LogsInsightsSource(
            logs, "g", ["6"], poll_seconds=1.0, timeout_seconds=2.0, sleep=lambda s: None
        )
        with pytest.raises(SourceError, match="still Running"):
            source.window(T0, T0 + 60)
        stub.assert_no_pending_responses()


def test_insights_timestamps_are_utc():
    """Logs Insights' '@timestamp' text is read as UTC."""
    assert parse_insights_timestamp("2026-11-24 00:00:00.500") == T0 + 0.5
    assert parse_insights_timestamp("2026-11-24 00:00:00") == T0
    with pytest.raises(ValueError):
        parse_insights_timestamp("yesterday")
