"""The on-call report: the pure renderer on a recorded fixture, collection from AWS (Stubber), the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from botocore.stub import ANY, Stubber

from canary import report as cli
from canary.render import alarm_in_words, outcome_of, render_report

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
CREDS = {"region_name": "us-east-1", "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
NOW = 1795478700.0


@pytest.fixture
def rolled_back() -> dict:
    return json.loads((FIXTURES / "canary_report_rolled_back.json").read_text())


def test_recorded_report_renders_in_80_columns(rolled_back):
    """The recorded rolled-back report fits an 80-column terminal and says what on-call needs."""
    text = render_report(rolled_back)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert lines[2] == "Outcome: ROLLED BACK"
    assert any(line.startswith("  ALARM") and "canary-judge-fail" in line for line in lines)
    assert "Deployment d-7QX4EXAMPLE  Stopped" in text
    # per version: n, 5xx, latency percentiles, label shares; the expected canary mix
    assert any(line.startswith("  baseline 1") and "2666" in line for line in lines)
    assert any(line.startswith("  expected canary mix") for line in lines)
    # per metric: result, n per side, p-value, alpha, effect, floor, test and reason
    labels_row = next(line for line in lines if line.startswith("  labels "))
    assert labels_row.split()[:3] == ["labels", "High", "2664/299"]
    assert "chi-square homogeneity" in text and "Mann-Whitney" in text and "Fisher exact" in text
    assert "Holm" in text


def test_renderer_is_pure_and_tolerates_a_sparse_report():
    """A report with no deployment, alarms or judge (e.g. nothing deployed yet) still renders."""
    report = {"stack": "s", "outcome": outcome_of(None, [])}
    text = render_report(report)
    assert "Outcome: NO DEPLOYMENT" in text
    assert "no verdict logged" in text
    assert render_report(report) == text


def test_renderer_wraps_narrower_terminals(rolled_back):
    """The width is a parameter: at 60 columns nothing overflows either."""
    assert max(len(line) for line in render_report(rolled_back, width=60).splitlines()) <= 60


@pytest.mark.parametrize(
    ("status", "error", "state"),
    [
        ("Succeeded", None, "PROMOTED"),
        ("Stopped", "ALARM_ACTIVE One or more alarms", "ROLLED BACK"),
        ("Failed", "HOOK_EXECUTION_FAILURE the BeforeAllowTraffic hook failed", "BLOCKED"),
        ("InProgress", None, "IN PROGRESS"),
    ],
)
def test_outcome_in_on_call_words(status, error, state):
    """CodeDeploy's status (and error) map to promoted / rolled back / blocked / in progress."""
    deployment = {"status": status, "error": error, "error_code": (error or "").split(" ")[0]}
    assert outcome_of(deployment, [{"name": "a", "state": "ALARM"}])["state"] == state


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def test_collect_report_reads_alarms_deployment_and_the_judges_last_verdict(rolled_back):
    """Stack resources -> alarm states, latest deployment, the judge's and the hook's logged results."""
    cfn, cw, cd, logs = (
        boto3.client(n, **CREDS) for n in ("cloudformation", "cloudwatch", "codedeploy", "logs")
    )
    resources = [
        ("CanaryJudgeAlarm", "hs-prod-canary-judge", "AWS::CloudWatch::Alarm"),
        ("ErrorsAlarm", "hs-prod-canary-errors", "AWS::CloudWatch::Alarm"),
        ("ServerlessDeploymentApplication", "hs-prod-app", "AWS::CodeDeploy::Application"),
        ("InferenceFunctionDeploymentGroup", "hs-prod-group", "AWS::CodeDeploy::DeploymentGroup"),
        ("CanaryJudgeFunction", "hs-prod-CanaryJudge-1A2B", "AWS::Lambda::Function"),
        ("InferenceFunction", "hs-prod-Inference-3C4D", "AWS::Lambda::Function"),
        ("PreTrafficHookFunction", "CodeDeployHook_hs-prod-pretraffic", "AWS::Lambda::Function"),
    ]
    hook_record = {
        "message": "pretraffic check",
        "status": "Succeeded",
        "reason": "all 7 pre-traffic checks passed on 300 golden requests",
        "result": {
            "status": "Succeeded",
            "sent": 300,
            "checks": [
                {"name": "accuracy", "passed": True, "reason": "265/300 correct = 0.883 >= floor 0.853"}
            ],
        },
    }
    judge_record = {"level": "INFO", "message": "canary verdict", "report": rolled_back["judge"]}
    with Stubber(cfn) as s_cfn, Stubber(cw) as s_cw, Stubber(cd) as s_cd, Stubber(logs) as s_logs:
        s_cfn.add_response(
            "list_stack_resources",
            {
                "StackResourceSummaries": [
                    {
                        "LogicalResourceId": logical,
                        "PhysicalResourceId": physical,
                        "ResourceType": kind,
                        "LastUpdatedTimestamp": _dt(NOW - 9000),
                        "ResourceStatus": "UPDATE_COMPLETE",
                    }
                    for logical, physical, kind in resources
                ]
            },
            {"StackName": "hs-prod"},
        )
        s_cw.add_response(
            "describe_alarms",
            {
                "MetricAlarms": [
                    {
                        "AlarmName": "hs-prod-canary-judge",
                        "StateValue": "ALARM",
                        "StateReason": "Threshold Crossed: 1 datapoint [2.0] >= 2.0",
                        "StateUpdatedTimestamp": _dt(NOW - 200),
                        "MetricName": "CanaryVerdict",
                    },
                    {"AlarmName": "hs-prod-canary-errors", "StateValue": "OK", "MetricName": "Errors"},
                ]
            },
            {"AlarmNames": ["hs-prod-canary-judge", "hs-prod-canary-errors"]},
        )
        s_cd.add_response(
            "list_deployments",
            {"deployments": ["d-OLD", "d-NEW"]},
            {"applicationName": "hs-prod-app", "deploymentGroupName": "hs-prod-group"},
        )
        s_cd.add_response(
            "batch_get_deployments",
            {
                "deploymentsInfo": [
                    {"deploymentId": "d-OLD", "status": "Succeeded", "createTime": _dt(NOW - 86400)},
                    {
                        "deploymentId": "d-NEW",
                        "status": "Stopped",
                        "createTime": _dt(NOW - 400),
                        "completeTime": _dt(NOW - 150),
                        "errorInformation": {"code": "ALARM_ACTIVE", "message": "One or more alarms fired"},
                    },
                ]
            },
            {"deploymentIds": ["d-OLD", "d-NEW"]},
        )
        s_logs.add_response(
            "start_query",
            {"queryId": "q"},
            {
                "logGroupName": "/aws/lambda/hs-prod-CanaryJudge-1A2B",
                "startTime": int(NOW - 400),
                "endTime": int(NOW - 30) + 1,
                "queryString": ANY,
                "limit": 1,
            },
        )
        s_logs.add_response(
            "get_query_results",
            {"status": "Complete", "results": [[{"field": "@message", "value": json.dumps(judge_record)}]]},
        )
        s_logs.add_response(
            "start_query",
            {"queryId": "q2"},
            {
                "logGroupName": "/aws/lambda/CodeDeployHook_hs-prod-pretraffic",
                "startTime": int(NOW - 400 - 900),
                "endTime": int(NOW - 30) + 1,
                "queryString": ANY,
                "limit": 1,
            },
        )
        s_logs.add_response(
            "get_query_results",
            {"status": "Complete", "results": [[{"field": "@message", "value": json.dumps(hook_record)}]]},
        )
        report = cli.collect_report(
            "hs-prod",
            cloudformation=cfn,
            cloudwatch=cw,
            codedeploy=cd,
            logs=logs,
            environment="prod",
            now=NOW,
        )
    assert report["deployment"]["id"] == "d-NEW"
    assert report["outcome"]["state"] == "ROLLED BACK"
    assert "hs-prod-canary-judge" in report["outcome"]["reason"]
    assert [a["state"] for a in report["alarms"]] == ["ALARM", "OK"]
    assert report["judge"]["verdict"] == "FAIL"
    assert report["pretraffic"]["status"] == "Succeeded"
    json.dumps(report)
    text = render_report(report)
    assert "Pre-traffic hook: Succeeded (300 golden requests)" in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_report_without_credentials_says_so_in_one_line(monkeypatch, tmp_path, capsys):
    """No AWS credentials: exit 2 and one line on stderr, no traceback."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    code = cli.main(["--stack", "hs-prod", "--region", "us-east-1"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: no AWS credentials found")
    assert "Traceback" not in err


def test_report_finds_the_stack_in_samconfig(tmp_path):
    """--env picks stack_name and region from samconfig.toml; a missing environment is one clear error."""
    path = tmp_path / "samconfig.toml"
    path.write_text(
        'version = 0.1\n[prod.deploy.parameters]\nstack_name = "hs-prod"\nregion = "eu-west-1"\n'
        '[prod.global.parameters]\nstack_name = "ignored-by-deploy"\n'
    )
    assert cli.stack_from_samconfig("prod", path) == ("hs-prod", "eu-west-1")
    with pytest.raises(cli.ReportError, match="no stack_name for environment 'uat'"):
        cli.stack_from_samconfig("uat", path)


def test_report_turns_aws_errors_into_one_line(capsys):
    """An AWS error (here: the stack does not exist) exits 1 with a one-line message."""

    class Session:
        region_name = "us-east-1"

        def __init__(self, region_name=None):
            pass

        def get_credentials(self):
            return object()

        def client(self, name):
            c = boto3.client(name, **CREDS)
            stub = Stubber(c)
            if name == "cloudformation":
                stub.add_client_error(
                    "list_stack_resources", "ValidationError", "Stack with id nope does not exist"
                )
            stub.activate()
            return c

    code = cli.main(["--stack", "nope"], session_factory=Session)
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "does not exist" in err


def test_alarms_are_worded_from_their_fields():
    """An alarm dict that carries threshold, comparison and datapoints (describe_alarms' fields)
    reads as a sentence: which values breached, against what, over how many periods."""
    p99 = {
        "state": "ALARM",
        "metric": "Duration",
        "statistic": "p99",
        "threshold": 100.0,
        "comparison": "GreaterThanThreshold",
        "evaluation_periods": 2,
        "datapoints_to_alarm": 2,
        "datapoints": [3.0, 120.5, 130.25],
    }
    assert alarm_in_words(p99) == (
        "Canary p99 duration: 120.5 ms and 130.2 ms in 2 of the last 2 minutes, "
        "above the alarm threshold (100 ms)."
    )
    verdict = {
        "state": "OK",
        "metric": "CanaryVerdict",
        "threshold": 2,
        "comparison": ">=",
        "datapoints": [1.0],
    }
    assert alarm_in_words(verdict) == (
        "Judge's verdict: 1 = INCONCLUSIVE at the last check; the alarm fires at or above 2 = FAIL."
    )


def test_local_alarm_reasons_are_worded_and_unknown_ones_kept(rolled_back):
    """The local controller's "[2] >= 2" becomes the verdict in words in the text report; a reason
    it cannot read (CloudWatch's own) is printed as it is."""
    judge_alarm = {
        "name": "hs-prod-canary-judge-fail",
        "state": "ALARM",
        "metric": "CanaryVerdict",
        "reason": "1 of the last 1 datapoints [2] >= 2 (CanaryVerdict Maximum per 60 s)",
    }
    text = render_report({**rolled_back, "alarms": [judge_alarm]})
    assert "[2] >= 2" not in text
    assert "Judge's verdict: 2 = FAIL in the last minute, at or above" in " ".join(text.split())
    cloudwatch = rolled_back["alarms"][0]
    assert alarm_in_words(cloudwatch) is None
    assert "Threshold Crossed: 1 out of the last 1 datapoints" in render_report(rolled_back)
    assert alarm_in_words({"state": "INSUFFICIENT_DATA", "reason": "no datapoints yet"}) == "No data yet."


def test_an_old_judge_report_without_floors_still_renders(rolled_back):
    """A verdict logged by a judge that predates floors shows its effect and single threshold."""
    judge = json.loads(json.dumps(rolled_back["judge"]))
    for m in judge["metrics"]:
        del m["floors"], m["decided_by"]
    text = render_report({**rolled_back, "judge": judge})
    assert "effect 0.2701, floor 0.0500" in text
    assert "* marks" not in text


def test_floor_cells_line_up_in_80_columns(rolled_back):
    """Every floor starts in one column, whatever the width of the p-value (here 2.6e-299)."""
    rolled_back["judge"]["metrics"][1]["p_value"] = 2.6e-299
    text = render_report(rolled_back)
    cells = [f["text"] for m in rolled_back["judge"]["metrics"] for f in m["floors"]]
    lines = [line for line in text.splitlines() if any(line.rstrip(" *").endswith(c) for c in cells)]
    assert len(lines) == len(cells) == 7
    assert len({line.index(c) for line, c in zip(lines, cells, strict=True)}) == 1
    assert max(len(line) for line in text.splitlines()) <= 80
