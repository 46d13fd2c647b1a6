"""The scheduled judge Lambda: idle without a canary; in one, publishes CanaryVerdict and logs the report."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import ANY, Stubber

from canary.config import ConfigError, JudgeLambdaConfig, judge_config_from_env
from canary.judge_lambda import run_once

CREDS = {"region_name": "us-east-1", "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
NOW = 1795478700.0
CONFIG = JudgeLambdaConfig(function_name="hate-speech-fn", log_group="/aws/lambda/hate-speech-fn")
MANIFESTS = {"v1": {"version": "v1"}}


def clients():
    return boto3.client("lambda", **CREDS), boto3.client("logs", **CREDS), boto3.client("cloudwatch", **CREDS)


def log_rows(canary_error_every: int = 0):
    """Three minutes of traffic as Logs Insights rows: version 6 (baseline) and 7 (canary, 10 %)."""
    rows = []
    labels = ["neither", "offensive_language", "offensive_language", "hate_speech", "offensive_language"]
    seen = {True: 0, False: 0}
    for i in range(3000):
        ts = NOW - 180 + i * 0.06
        canary = i % 10 == 0
        seen[canary] += 1
        failed = canary and canary_error_every and (i // 10) % canary_error_every == 0
        stamp = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        cells = [
            {"field": "@timestamp", "value": stamp},
            {"field": "function_version", "value": "7" if canary else "6"},
            {"field": "model_version", "value": "v1"},
            {"field": "latency_ms", "value": str(2.0 + (i * 7919 % 100) / 50)},
            {"field": "status", "value": "500" if failed else "200"},
        ]
        if not failed:
            cells.append({"field": "label", "value": labels[seen[canary] % 5]})
        rows.append(cells)
    return rows


def stub_alias(stub, weights):
    response = {"FunctionVersion": "6", "Name": "live"}
    if weights:
        response["RoutingConfig"] = {"AdditionalVersionWeights": weights}
    stub.add_response("get_alias", response, {"FunctionName": "hate-speech-fn", "Name": "live"})


def expect_verdict(stub, value):
    stub.add_response(
        "put_metric_data",
        {},
        {
            "Namespace": "HateSpeechApi",
            "MetricData": [
                {
                    "MetricName": "CanaryVerdict",
                    "Dimensions": [{"Name": "FunctionName", "Value": "hate-speech-fn"}],
                    "Timestamp": ANY,
                    "Value": value,
                    "Unit": "None",
                }
            ],
        },
    )


def test_idle_without_a_canary_publishes_nothing():
    """No AdditionalVersionWeights on the alias: the judge returns idle, no metric, no error."""
    lam, logs, cw = clients()
    with Stubber(lam) as s_lam, Stubber(logs), Stubber(cw):
        stub_alias(s_lam, None)
        result = run_once(
            CONFIG, lambda_client=lam, logs_client=logs, cloudwatch_client=cw, manifests=MANIFESTS, now=NOW
        )
    assert result["status"] == "idle"


@pytest.mark.parametrize(("error_every", "verdict", "value"), [(0, "PASS", 0.0), (3, "FAIL", 2.0)])
def test_during_a_canary_publishes_the_verdict_and_logs_the_report(caplog, error_every, verdict, value):
    """Canary behind the alias: records read from Logs Insights, CanaryVerdict published, report logged."""
    lam, logs, cw = clients()
    with Stubber(lam) as s_lam, Stubber(logs) as s_logs, Stubber(cw) as s_cw:
        stub_alias(s_lam, {"7": 0.1})
        s_logs.add_response(
            "start_query",
            {"queryId": "q"},
            {
                "logGroupName": "/aws/lambda/hate-speech-fn",
                "startTime": int(NOW - 600),
                "endTime": int(NOW),
                "queryString": ANY,
                "limit": 10000,
            },
        )
        s_logs.add_response("get_query_results", {"status": "Complete", "results": log_rows(error_every)})
        expect_verdict(s_cw, value)
        result = run_once(
            CONFIG, lambda_client=lam, logs_client=logs, cloudwatch_client=cw, manifests=MANIFESTS, now=NOW
        )
        s_cw.assert_no_pending_responses()
    assert result["verdict"] == verdict
    report = next(r.report for r in caplog.records if r.getMessage() == "canary verdict")
    json.dumps(report)  # the logged report is plain JSON
    assert report["verdict"] == verdict
    assert report["routing"]["canary_version"] == "7" and report["routing"]["canary_weight"] == 0.1
    assert {m["name"] for m in report["metrics"]} == {"errors", "latency", "labels"}
    assert report["canary"]["requests"] == 300 and report["baseline"]["requests"] == 2700


def test_unreadable_logs_publish_inconclusive():
    """A failed Logs Insights query publishes INCONCLUSIVE (1): no evidence is not evidence of harm."""
    lam, logs, cw = clients()
    with Stubber(lam) as s_lam, Stubber(logs) as s_logs, Stubber(cw) as s_cw:
        stub_alias(s_lam, {"7": 0.1})
        s_logs.add_response("start_query", {"queryId": "q"})
        s_logs.add_response("get_query_results", {"status": "Failed", "results": []})
        expect_verdict(s_cw, 1.0)
        result = run_once(
            CONFIG, lambda_client=lam, logs_client=logs, cloudwatch_client=cw, manifests=MANIFESTS, now=NOW
        )
    assert result["status"] == "error" and result["verdict"] == "INCONCLUSIVE"


def test_judge_lambda_config_from_env():
    """FUNCTION_NAME is required; the log group defaults from it; JUDGE_* override the thresholds."""
    config = JudgeLambdaConfig.from_env({"FUNCTION_NAME": "fn", "JUDGE_ALPHA": "0.005", "JUDGE_LOOKS": "6"})
    assert config.log_group == "/aws/lambda/fn" and config.alias == "live"
    assert config.judge.alpha == 0.005 and config.judge.looks == 6
    with pytest.raises(ConfigError, match="FUNCTION_NAME"):
        JudgeLambdaConfig.from_env({})
    with pytest.raises(ConfigError, match="JUDGE_ALPHA"):
        judge_config_from_env({"JUDGE_ALPHA": "lots"})
    with pytest.raises(ConfigError, match="alpha"):
        judge_config_from_env({"JUDGE_ALPHA": "2"})
