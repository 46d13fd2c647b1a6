"""The scheduled judge Lambda: idle without a canary; in one, an interim evidence look: publishes
CanaryVerdict and logs the report."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import ANY, Stubber

from canary.config import ConfigError, JudgeLambdaConfig
from canary.judge_lambda import run_once
from tests.unit import _canary_logs as fx
from tests.unit.test_gate import stub_deployment

CREDS = {"region_name": "us-east-1", "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
NOW = fx.T0 + 300.0
CONFIG = JudgeLambdaConfig(
    function_name="hate-speech-fn",
    log_group="/aws/lambda/hate-speech-fn",
    application="app",
    hook_log_group=fx.HOOK_LOG_GROUP,
)


def clients():
    return tuple(boto3.client(name, **CREDS) for name in ("lambda", "logs", "cloudwatch", "codedeploy"))


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
    lam, logs, cw, cd = clients()
    with Stubber(lam) as s_lam, Stubber(logs), Stubber(cw), Stubber(cd):
        stub_alias(s_lam, None)
        result = run(lam, logs, cw, cd)
    assert result["status"] == "idle"


def run(lam, logs, cw, cd, now=NOW, known=None, references=None):
    return run_once(
        CONFIG,
        lambda_client=lam,
        logs_client=logs,
        cloudwatch_client=cw,
        codedeploy_client=cd,
        manifests=fx.MANIFESTS,
        known_answers=known,
        now=now,
        references=references,
    )


def stub_running_deployment(stub):
    stub.add_response("list_deployment_groups", {"deploymentGroups": ["group"]}, {"applicationName": "app"})
    stub.add_response(
        "list_deployments",
        {"deployments": ["d-ABC123"]},
        {"applicationName": "app", "deploymentGroupName": "group", "includeOnlyStatuses": ["InProgress"]},
    )
    stub_deployment(stub, running=True)


@pytest.mark.parametrize(("forced", "verdict", "value"), [(0.0, "PASS", 0.0), (0.2, "FAIL", 2.0)])
def test_during_a_canary_publishes_the_evidence_verdict_and_logs_the_report(caplog, forced, verdict, value):
    """5 minutes into the canary (AllowTraffic's start, from CodeDeploy), the records since then
    are judged at that look's share of alpha: a healthy v2 passes on the probe's evidence, a v2
    forcing 20 % of its answers to hate_speech fails; CanaryVerdict carries it, the report is logged."""
    lam, logs, cw, cd = clients()
    texts = fx.probe_texts()
    with Stubber(lam) as s_lam, Stubber(logs) as s_logs, Stubber(cw) as s_cw, Stubber(cd) as s_cd:
        stub_alias(s_lam, {"7": 0.1})
        stub_running_deployment(s_cd)
        fx.stub_window(
            s_logs,
            fx.live_count_rows(1.0, forced=forced),
            fx.latency_rows(),
            fx.probe_rows(texts, forced=forced),
            log_group="/aws/lambda/hate-speech-fn",
            start=int(fx.T0),
            end=int(NOW),
        )
        fx.stub_hook_record(s_logs, fx.hook_record(fx.RATIO))
        expect_verdict(s_cw, value)
        result = run(lam, logs, cw, cd, known=fx.known_answers(texts))
        s_cw.assert_no_pending_responses()
        s_logs.assert_no_pending_responses()
    assert result["verdict"] == verdict, result["reason"]
    report = next(r.report for r in caplog.records if r.getMessage() == "canary verdict")
    json.dumps(report)  # the logged report is plain JSON
    assert report["verdict"] == verdict and report["schema"] == "canary-evidence/1"
    assert report["look"]["final"] is False and report["look"]["elapsed_s"] == NOW - fx.T0
    assert report["routing"]["canary_version"] == "7" and report["canary_start"] == fx.T0
    assert {m["name"] for m in report["metrics"]} == {"probe_agreement", "paired_labels", "errors", "latency"}
    assert report["latency_reference"]["ratio"] == pytest.approx(fx.RATIO)
    assert report["deployment_id"] == "d-ABC123"


def look(forced=0.0, hook=(None,), references=None, caplog=None):
    """One interim look 5 minutes in; `hook`: what each read of the hook's record finds."""
    lam, logs, cw, cd = clients()
    texts = fx.probe_texts()
    with Stubber(lam) as s_lam, Stubber(logs) as s_logs, Stubber(cw) as s_cw, Stubber(cd) as s_cd:
        stub_alias(s_lam, {"7": 0.1})
        stub_running_deployment(s_cd)
        fx.stub_window(
            s_logs,
            fx.live_count_rows(1.0, forced=forced),
            fx.latency_rows(),
            fx.probe_rows(texts, forced=forced),
            log_group=CONFIG.log_group,
        )
        for i, record in enumerate(hook):
            fx.stub_hook_record(s_logs, record, query_id=f"hook{i}")
        s_cw.add_response("put_metric_data", {})
        result = run(lam, logs, cw, cd, known=fx.known_answers(texts), references=references)
        s_logs.assert_no_pending_responses()
    return result


def test_an_interim_look_without_the_reference_has_latency_nodata_never_a_pass(caplog):
    """The hook's record not visible yet (log lag): a healthy canary's look is INCONCLUSIVE with
    latency NoData, saying the reference is missing, where it would otherwise PASS."""
    result = look(hook=(None,))
    assert result["verdict"] == "INCONCLUSIVE"
    assert "latency: no latency reference yet for v2/v1" in result["reason"]
    report = next(r.report for r in caplog.records if r.getMessage() == "canary verdict")
    latency = next(m for m in report["metrics"] if m["name"] == "latency")
    assert latency["classification"] == "NoData"
    assert report["latency_reference"]["ratio"] is None
    assert "no measured reference in" in report["latency_reference"]["source"]


def test_an_interim_look_without_the_reference_still_fails_a_bad_canary():
    """No reference yet, but a canary forcing 20 % of its answers: FAIL all the same."""
    assert look(forced=0.2, hook=(None,))["verdict"] == "FAIL"


def test_the_reference_once_seen_is_kept_for_the_deployments_later_looks():
    """The first look reads the hook's record; the next one, with the same cache, asks no more
    (its Stubber has no hook query) and still passes against the same reference."""
    references: dict[str, float] = {}
    assert look(hook=(fx.hook_record(fx.RATIO),), references=references)["verdict"] == "PASS"
    assert references == {"d-ABC123": pytest.approx(fx.RATIO)}
    assert look(hook=(), references=references)["verdict"] == "PASS"


def test_a_failed_reference_query_is_no_reference_not_a_failed_look():
    """The hook's log group query fails: this look has latency NoData (INCONCLUSIVE), the records
    are judged all the same."""
    lam, logs, cw, cd = clients()
    texts = fx.probe_texts()
    with Stubber(lam) as s_lam, Stubber(logs) as s_logs, Stubber(cw) as s_cw, Stubber(cd) as s_cd:
        stub_alias(s_lam, {"7": 0.1})
        stub_running_deployment(s_cd)
        fx.stub_window(
            s_logs,
            fx.live_count_rows(1.0),
            fx.latency_rows(),
            fx.probe_rows(texts),
            log_group=CONFIG.log_group,
        )
        s_logs.add_response("start_query", {"queryId": "hook"})
        s_logs.add_response("get_query_results", {"status": "Failed", "results": []})
        expect_verdict(s_cw, 1.0)
        result = run(lam, logs, cw, cd, known=fx.known_answers(texts))
    assert result["status"] == "judged" and result["verdict"] == "INCONCLUSIVE"


def test_unreadable_logs_publish_inconclusive():
    """A failed Logs Insights query publishes INCONCLUSIVE (1): no evidence is not evidence of harm."""
    lam, logs, cw, cd = clients()
    with Stubber(lam) as s_lam, Stubber(logs) as s_logs, Stubber(cw) as s_cw, Stubber(cd) as s_cd:
        stub_alias(s_lam, {"7": 0.1})
        stub_running_deployment(s_cd)
        s_logs.add_response("start_query", {"queryId": "q"})
        s_logs.add_response("get_query_results", {"status": "Failed", "results": []})
        expect_verdict(s_cw, 1.0)
        result = run(lam, logs, cw, cd)
    assert result["status"] == "error" and result["verdict"] == "INCONCLUSIVE"


def test_a_canary_without_a_running_deployment_is_inconclusive():
    """Weights on the alias but no in-progress CodeDeploy deployment to date the canary from:
    INCONCLUSIVE, with the reason (the look's share of alpha needs the elapsed time)."""
    lam, logs, cw, cd = clients()
    with Stubber(lam) as s_lam, Stubber(logs), Stubber(cw) as s_cw, Stubber(cd) as s_cd:
        stub_alias(s_lam, {"7": 0.1})
        s_cd.add_response("list_deployment_groups", {"deploymentGroups": ["group"]})
        s_cd.add_response("list_deployments", {"deployments": []})
        expect_verdict(s_cw, 1.0)
        result = run(lam, logs, cw, cd)
    assert result["verdict"] == "INCONCLUSIVE" and "no in-progress deployment" in result["reason"]


def test_judge_lambda_config_from_env():
    """FUNCTION_NAME is required; the log group defaults from it."""
    config = JudgeLambdaConfig.from_env({"FUNCTION_NAME": "fn", "DEPLOYMENT_GROUP": "g"})
    assert config.log_group == "/aws/lambda/fn" and config.alias == "live"
    assert (config.application, config.deployment_group) == (None, "g")
    assert config.hook_log_group == ""
    assert JudgeLambdaConfig.from_env({"FUNCTION_NAME": "fn", "HOOK_LOG_GROUP": "/h"}).hook_log_group == "/h"
    with pytest.raises(ConfigError, match="FUNCTION_NAME"):
        JudgeLambdaConfig.from_env({})
