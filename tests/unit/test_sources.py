"""The AWS metric sources: the live alias's routing and request records from Logs Insights (Stubber)."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import ANY, Stubber

from canary.evidence import (
    EvidenceRecord,
    Group,
    LiveCount,
    Source,
    collect,
    collect_live_counts,
    judge_evidence,
)
from canary.probe import expected_labels
from canary.records import RequestRecord
from canary.sources import (
    LogsInsightsSource,
    SourceError,
    latest_logged,
    live_counts_query,
    live_routing,
    parse_insights_timestamp,
    probe_query,
    record_from_row,
    window_evidence,
)
from tests.unit import _canary_logs as logs_fixture

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


def _stub_query(stub, query_id, rows, start, end, *, log_group="g", limit=10_000):
    params = {"logGroupName": log_group, "startTime": int(T0) + start, "endTime": int(T0) + end}
    stub.add_response("start_query", {"queryId": query_id}, {**params, "queryString": ANY, "limit": limit})
    stub.add_response("get_query_results", {"status": "Complete", "results": rows}, {"queryId": query_id})


def test_probe_rows_become_records_and_an_unreadable_row_is_counted():
    """The window's probe rows become RequestRecords (UTC timestamps, null label for errors), oldest
    first; a row that cannot be read is counted as malformed, not fatal."""
    logs = client("logs")
    rows = [
        row("2026-11-24 00:00:02.000", "7", "v2", "0.9", None, "500"),
        row("2026-11-24 00:00:01.250", "6", "v1", "3.2", "neither", "200"),
        row("2026-11-24 00:00:03.000", "7", "v2", "oops", "neither", "200"),
    ]
    with Stubber(logs) as stub:
        logs_fixture.stub_window(
            stub, [], [], rows, log_group="/aws/lambda/f", start=int(T0), end=int(T0) + 60
        )
        source = LogsInsightsSource(logs, "/aws/lambda/f", ["6", "7"], sleep=lambda s: None)
        window = source.evidence_window(T0, T0 + 60, ["v1", "v2"])
    assert list(window.probes) == [
        RequestRecord("6", "v1", 3.2, "neither", 200, T0 + 1.25),
        RequestRecord("7", "v2", 0.9, None, 500, T0 + 2.0),
    ]
    assert window.unreadable == source.malformed == 1


def test_logs_source_splits_a_window_that_fills_a_query():
    """A query that returns `limit` rows is split in two halves, each queried again."""
    logs = client("logs")
    full = [row("2026-11-24 00:00:10.000", "6", "v1", "3", "neither", "200")] * 2
    with Stubber(logs) as stub:
        _stub_query(stub, "counts", [], 0, 100, limit=2)
        _stub_query(stub, "latency", [], 0, 100, limit=2)
        _stub_query(stub, "probes", full, 0, 100, limit=2)
        _stub_query(stub, "first half", full[:1], 0, 50, limit=2)
        _stub_query(stub, "second half", [], 51, 100, limit=2)
        source = LogsInsightsSource(logs, "g", ["6"], limit=2, sleep=lambda s: None)
        window = source.evidence_window(T0, T0 + 100, ["v1"])
        stub.assert_no_pending_responses()
    assert len(window.probes) == 1 and window.queries == 5


def test_logs_source_reports_a_failed_query():
    """A query that ends Failed raises SourceError naming the log group."""
    logs = client("logs")
    with Stubber(logs) as stub:
        stub.add_response("start_query", {"queryId": "q1"})
        stub.add_response("get_query_results", {"status": "Failed", "results": []})
        source = LogsInsightsSource(logs, "/aws/lambda/f", ["6"], sleep=lambda s: None)
        with pytest.raises(SourceError, match="/aws/lambda/f"):
            source.evidence_window(T0, T0 + 60, ["v1"])


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
            source.evidence_window(T0, T0 + 60, ["v1"])
        stub.assert_no_pending_responses()


def test_latest_logged_stops_a_query_that_never_completes():
    """A component's record query still running after its timeout is stopped and raises SourceError
    (the same polling as the request records': one budget, the query stopped, the group named)."""
    logs = client("logs")
    slept: list[float] = []
    with Stubber(logs) as stub:
        stub.add_response(
            "start_query",
            {"queryId": "q9"},
            {
                "logGroupName": "/aws/lambda/judge",
                "startTime": int(T0),
                "endTime": int(T0) + 61,
                "queryString": ANY,
                "limit": 1,
            },
        )
        for _ in range(3):
            stub.add_response("get_query_results", {"status": "Running", "results": []}, {"queryId": "q9"})
        stub.add_response("stop_query", {"success": True}, {"queryId": "q9"})
        with pytest.raises(SourceError, match="q9 on /aws/lambda/judge still Running after 2 s"):
            latest_logged(logs, "/aws/lambda/judge", "judge", T0, T0 + 60, sleep=slept.append, timeout_s=2.0)
        stub.assert_no_pending_responses()
    assert slept == [1.0, 1.0]


def test_insights_timestamps_are_utc():
    """Logs Insights' '@timestamp' text is read as UTC."""
    assert parse_insights_timestamp("2026-11-24 00:00:00.500") == T0 + 0.5
    assert parse_insights_timestamp("2026-11-24 00:00:00") == T0
    with pytest.raises(ValueError):
        parse_insights_timestamp("yesterday")


# --------------------------------------------------------------------------- evidence at any traffic


def test_live_counts_query_aggregates_live_requests_and_leaves_probe_and_hook_out():
    """Live requests are counted per version, model, status, label and each model's shadow label;
    the probe's and the hook's requests (by API Gateway request id) are not live."""
    query = live_counts_query(["7", "6"], ["v2", "v1"])
    assert 'function_version in ["6", "7"]' in query
    assert "correlation_id not like /^(pretraffic-|probe-)/" in query
    assert (
        "stats count(*) as n by function_version, model_version, status, answer, shadow_v1, shadow_v2"
        in query
    )
    assert 'coalesce(shadow.v2, "-") as shadow_v2' in query
    assert query.rstrip().endswith("| limit 10000")
    assert "correlation_id like /^probe-/" in probe_query(["6", "7"], ["v1", "v2"])
    with pytest.raises(ValueError, match="cannot name a log field"):
        live_counts_query(["6"], ["v1) | fields @message"])


def test_a_probe_row_is_a_probe_record_even_from_a_version_without_the_source_field():
    """correlation_id "probe-..." makes the row a probe record with its probe id, whatever the
    logging version wrote (a baseline deployed before issue 10 logs no source)."""
    record = record_from_row(
        logs_fixture.cells(
            **{"@timestamp": "2026-11-24 00:00:01.000"},
            correlation_id="probe-run1-r7-12",
            function_version="6",
            model_version="v1",
            latency_ms=0.3,
            status=200,
            label="neither",
            shadow__v2="offensive_language",
        )
    )
    assert (record.source, record.probe_id) == ("probe", "run1-r7-12")
    assert record.shadow_label("v2") == "offensive_language"


@pytest.mark.parametrize(("forced", "verdict"), [(0.0, "PASS"), (0.2, "FAIL")])
def test_at_1000_requests_a_second_the_judge_decides_without_any_query_above_10000_rows(forced, verdict):
    """The usage plan's 1,000 req/s for the 300 s window (300,000 live requests, 30,000 on the
    canary) plus the probe's 1,500 pairs: raw rows would need 30 full queries; counts take a few
    dozen rows. The judge reaches the right verdict (a canary forcing 20 % of its answers to
    hate_speech fails) and no query asks for or returns more than 10,000 rows."""
    logs = client("logs")
    texts = logs_fixture.probe_texts()
    live = logs_fixture.live_count_rows(1000.0, forced=forced)
    probes = logs_fixture.probe_rows(texts, forced=forced)
    with Stubber(logs) as stub:
        logs_fixture.stub_window(
            stub, live, logs_fixture.latency_rows(), probes, start=int(T0), end=int(T0) + 300
        )
        source = LogsInsightsSource(logs, "/aws/lambda/fn", ["6", "7"], sleep=lambda s: None)
        window = source.evidence_window(T0, T0 + 300, ["v1", "v2"])
        stub.assert_no_pending_responses()
    assert window.queries == 3 and window.largest_result <= 10_000
    assert sum(a.count for a in window.live) == 300_000 and len(window.probes) == 3_000
    ev = window_evidence(
        window,
        baseline_version="6",
        canary_version="7",
        expected=expected_labels(logs_fixture.known_answers(texts)),
    )
    assert ev.n(Group.CANARY, Source.LIVE) == 30_000 and ev.n(Group.BASELINE, Source.LIVE) == 270_000
    assert ev.live_latency_ms[Group.CANARY]["p99"] == 1.4
    report = judge_evidence(ev, expected_latency_ratio=logs_fixture.RATIO, elapsed_s=300.0, final=True)
    assert report.verdict.value == verdict, report.reason
    if forced:
        assert "probe_agreement" in report.reason and "paired_labels" in report.reason


def test_live_counts_judge_like_the_records_they_count():
    """collect_live_counts gives the same requests, errors and label pairs as collect() on the
    records the counts stand for (the one difference: no live latencies)."""
    rows = [
        LiveCount("v1", "neither", "offensive_language", 200, 3),
        LiveCount("v1", None, None, 500, 2),
        LiveCount("v2", "neither", "neither", 200, 4),  # another model than the group's: dropped
        LiveCount("v1", "nonsense", None, 200, 5),  # malformed: dropped
    ]
    canary = [LiveCount("v2", "hate_speech", "neither", 200, 6)]
    counted = collect_live_counts(rows, canary, baseline_model="v1", canary_model="v2")

    def expand(counts):
        return [
            EvidenceRecord(c.model_version, c.label, c.shadow_label, c.status, 1.0, "live")
            for c in counts
            for _ in range(c.count)
        ]

    records = collect(expand(rows), expand(canary), baseline_model="v1", canary_model="v2")
    for name in ("requests", "errors", "live_pairs", "dropped"):
        assert getattr(counted, name) == getattr(records, name), name


def test_a_window_without_any_record_of_a_version_cannot_be_judged():
    """No record of the canary version at all: SourceError names the version (the gate fails)."""
    logs = client("logs")
    with Stubber(logs) as stub:
        logs_fixture.stub_window(stub, [], [], [])
        window = LogsInsightsSource(logs, "/aws/lambda/fn", ["6", "7"], sleep=lambda s: None).evidence_window(
            T0, T0 + 60, ["v1", "v2"]
        )
    with pytest.raises(SourceError, match="baseline version 6"):
        window_evidence(window, baseline_version="6", canary_version="7", expected=lambda m, p: None)


def test_the_source_never_asks_logs_insights_for_more_than_10000_rows():
    """Logs Insights answers at most 10,000 rows a query: a larger limit is refused up front."""
    with pytest.raises(ValueError, match="1..10000"):
        LogsInsightsSource(client("logs"), "g", ["6"], limit=20_000)


# --------------------------------------------------------------------------- CodeDeploy and the hook's record


def test_deployment_target_reads_both_versions_before_traffic_shifts():
    """During BeforeAllowTraffic (the PreTraffic hook's moment) the deployment's Lambda target
    already names the alias's current version (the baseline) and the target version (the canary)."""
    from canary.sources import deployment_target
    from tests.unit.test_hook import stub_target

    codedeploy = client("codedeploy")
    with Stubber(codedeploy) as stub:
        stub_target(stub, current="6", target="7")
        target = deployment_target(codedeploy, "d-ABC123")
        stub.assert_no_pending_responses()
    assert (target.baseline_version, target.canary_version) == ("6", "7")
    assert target.function_name == "hate-speech-fn" and target.event("AllowTraffic") is None
    assert target.event("BeforeAllowTraffic")["status"] == "InProgress"


def test_deployment_target_refuses_a_deployment_without_one_lambda_target():
    """Two targets, or none: SourceError naming the deployment (the callers report Failed)."""
    from canary.sources import deployment_target

    codedeploy = client("codedeploy")
    with Stubber(codedeploy) as stub:
        stub.add_response("get_deployment", {"deploymentInfo": {"deploymentId": "d-ABC123"}})
        stub.add_response("list_deployment_targets", {"targetIds": ["a", "b"]})
        with pytest.raises(SourceError, match="d-ABC123 has 2 targets"):
            deployment_target(codedeploy, "d-ABC123")


def test_hook_record_asks_for_this_deployments_record_in_the_hooks_log_group():
    """One query on the hook's log group, filtered on the message and the deployment id, newest
    first, one row; the record comes back parsed, and its reference read by latency_reference."""
    from canary.sources import hook_record, latency_reference

    logs = client("logs")
    record = logs_fixture.hook_record(1.8)
    with Stubber(logs) as stub:
        stub.add_response(
            "start_query",
            {"queryId": "q"},
            {
                "logGroupName": "/aws/lambda/hook",
                "startTime": int(T0) - 3600,
                "endTime": int(T0) + 1,
                "queryString": 'fields @timestamp, @message\n| filter message = "pretraffic check" and '
                'deployment_id = "d-ABC123"\n| sort @timestamp desc\n| limit 1',
                "limit": 1,
            },
        )
        stub.add_response(
            "get_query_results",
            {
                "status": "Complete",
                "results": [logs_fixture.cells(**{"@timestamp": "x", "@message": json.dumps(record)})],
            },
        )
        found = hook_record(logs, "/aws/lambda/hook", "d-ABC123", T0 - 3600, T0, sleep=lambda s: None)
    assert found == record and latency_reference(found) == 1.8


def test_hook_record_refuses_what_is_not_a_deployment_id():
    """The id goes into the query: anything but CodeDeploy's d-XXXX form is refused, unqueried."""
    from canary.sources import hook_record

    with pytest.raises(SourceError, match="not a CodeDeploy deployment id"):
        hook_record(None, "/g", 'd-1" or message = "x', 0, 1)


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"result": {"latency_reference": {"ratio": 1.8}}}, 1.8),  # the logged record
        ({"latency_reference": {"ratio": 0.9}}, 0.9),  # HookResult.as_dict()
        ({"result": {"latency_reference": {"ratio": None, "reason": "no pairs"}}}, None),
        ({"result": {"latency_reference": None}}, None),
        ({"result": None}, None),
        ({"result": {"latency_reference": {"ratio": float("nan")}}}, None),
        ({"result": {"latency_reference": {"ratio": -1}}}, None),
        ({"result": {"latency_reference": {"ratio": True}}}, None),
        (None, None),
    ],
)
def test_latency_reference_is_a_positive_finite_ratio_or_none(record, expected):
    """Only a positive finite number is a reference; anything else (missing, null, NaN) is None."""
    from canary.sources import latency_reference

    assert latency_reference(record) == expected
