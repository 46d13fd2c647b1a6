"""The on-call report: the pure renderer on a recorded fixture, collection from AWS (Stubber), the CLI."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from botocore.stub import ANY, Stubber

from canary import report as cli
from canary.records import RequestRecord
from canary.render import alarm_in_words, outcome_of, render_report
from canary.report_model import CanaryReport, LocalRun, version_table

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
CREDS = {"region_name": "us-east-1", "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
NOW = 1795478700.0


@pytest.fixture(scope="module")
def evidence_reports() -> dict:
    """Reports recorded by tests/fixtures/record_evidence_reports.py (real judge, gate and collection)."""
    return json.loads((FIXTURES / "canary_report_evidence.json").read_text())


def test_renderer_is_pure_and_tolerates_a_sparse_report():
    """A report with no deployment, alarms or judge (e.g. nothing deployed yet) still renders."""
    report = {"stack": "s", "outcome": outcome_of(None, [])}
    text = render_report(report)
    assert "Outcome: NO DEPLOYMENT" in text
    assert "no verdict logged" in text
    assert render_report(report) == text


def test_renderer_wraps_narrower_terminals(evidence_reports):
    """The width is a parameter: at 60 columns nothing overflows either."""
    for report in evidence_reports.values():
        assert max(len(line) for line in render_report(report, width=60).splitlines()) <= 60


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


def _stack_page(resources: list[tuple[str, str, str]], updated: float) -> dict:
    """list_stack_resources' answer for (logical id, physical id, type) rows."""
    return {
        "StackResourceSummaries": [
            {
                "LogicalResourceId": logical,
                "PhysicalResourceId": physical,
                "ResourceType": kind,
                "LastUpdatedTimestamp": _dt(updated),
                "ResourceStatus": "UPDATE_COMPLETE",
            }
            for logical, physical, kind in resources
        ]
    }


def _logged(
    s_logs: Stubber, group: str, since: float | None, until: float | None, record: dict, query_id: str
):
    """One Logs Insights query of `group` over [since, until] (None: any) answering with `record`."""
    s_logs.add_response(
        "start_query",
        {"queryId": query_id},
        {
            "logGroupName": group,
            "startTime": ANY if since is None else int(since),
            "endTime": ANY if until is None else int(until) + 1,
            "queryString": ANY,
            "limit": 1,
        },
    )
    s_logs.add_response(
        "get_query_results",
        {"status": "Complete", "results": [[{"field": "@message", "value": json.dumps(record)}]]},
    )


STACK_RESOURCES = [
    ("CanaryJudgeAlarm", "hs-prod-canary-judge", "AWS::CloudWatch::Alarm"),
    ("ErrorsAlarm", "hs-prod-canary-errors", "AWS::CloudWatch::Alarm"),
    ("ServerlessDeploymentApplication", "hs-prod-app", "AWS::CodeDeploy::Application"),
    ("InferenceFunctionDeploymentGroup", "hs-prod-group", "AWS::CodeDeploy::DeploymentGroup"),
    ("CanaryJudgeFunction", "hs-prod-CanaryJudge-1A2B", "AWS::Lambda::Function"),
    ("InferenceFunction", "hs-prod-Inference-3C4D", "AWS::Lambda::Function"),
    ("PreTrafficHookFunction", "CodeDeployHook_hs-prod-pretraffic", "AWS::Lambda::Function"),
]
HOOK_RECORD = {
    "message": "pretraffic check",
    "status": "Succeeded",
    "reason": "all 7 pre-traffic checks passed on 300 golden requests",
    "result": {
        "status": "Succeeded",
        "sent": 300,
        "checks": [{"name": "accuracy", "passed": True, "reason": "265/300 correct = 0.883 >= floor 0.853"}],
    },
}


def _stub_alarms(s_cw: Stubber) -> None:
    """The judge alarm in ALARM, the errors alarm OK."""
    judge_alarm = {
        "AlarmName": "hs-prod-canary-judge",
        "StateValue": "ALARM",
        "StateReason": "Threshold Crossed: 1 datapoint [2.0] >= 2.0",
        "StateUpdatedTimestamp": _dt(NOW - 200),
        "MetricName": "CanaryVerdict",
    }
    errors_alarm = {"AlarmName": "hs-prod-canary-errors", "StateValue": "OK", "MetricName": "Errors"}
    s_cw.add_response(
        "describe_alarms",
        {"MetricAlarms": [judge_alarm, errors_alarm]},
        {"AlarmNames": ["hs-prod-canary-judge", "hs-prod-canary-errors"]},
    )


def _stub_deployments(s_cd: Stubber) -> None:
    """Two deployments, the newer one stopped by the judge alarm."""
    s_cd.add_response(
        "list_deployments",
        {"deployments": ["d-OLD", "d-NEW"]},
        {"applicationName": "hs-prod-app", "deploymentGroupName": "hs-prod-group"},
    )
    stopped = {
        "deploymentId": "d-NEW",
        "status": "Stopped",
        "createTime": _dt(NOW - 400),
        "completeTime": _dt(NOW - 150),
        "errorInformation": {"code": "ALARM_ACTIVE", "message": "One or more alarms fired"},
    }
    old = {"deploymentId": "d-OLD", "status": "Succeeded", "createTime": _dt(NOW - 86400)}
    s_cd.add_response(
        "batch_get_deployments", {"deploymentsInfo": [old, stopped]}, {"deploymentIds": ["d-OLD", "d-NEW"]}
    )


def test_collect_report_reads_alarms_deployment_and_the_judges_last_verdict(evidence_reports):
    """Stack resources -> alarm states, latest deployment, the judge's and the hook's logged results."""
    cfn, cw, cd, logs = (
        boto3.client(n, **CREDS) for n in ("cloudformation", "cloudwatch", "codedeploy", "logs")
    )
    judge_record = {
        "level": "INFO",
        "message": "canary verdict",
        "report": evidence_reports["alarm_rollback"]["judge"],
    }
    with Stubber(cfn) as s_cfn, Stubber(cw) as s_cw, Stubber(cd) as s_cd, Stubber(logs) as s_logs:
        s_cfn.add_response(
            "list_stack_resources", _stack_page(STACK_RESOURCES, NOW - 9000), {"StackName": "hs-prod"}
        )
        _stub_alarms(s_cw)
        _stub_deployments(s_cd)
        _logged(s_logs, "/aws/lambda/hs-prod-CanaryJudge-1A2B", NOW - 400, NOW - 30, judge_record, "q")
        _logged(
            s_logs, "/aws/lambda/CodeDeployHook_hs-prod-pretraffic", NOW - 1300, NOW - 30, HOOK_RECORD, "q2"
        )
        report = cli.collect_report(
            "hs-prod",
            cloudformation=cfn,
            cloudwatch=cw,
            codedeploy=cd,
            logs=logs,
            environment="prod",
            now=NOW,
        ).to_dict()
    assert report["deployment"]["id"] == "d-NEW"
    assert report["outcome"]["state"] == "ROLLED BACK"
    assert "hs-prod-canary-judge" in report["outcome"]["reason"]
    assert [a["state"] for a in report["alarms"]] == ["ALARM", "OK"]
    assert report["judge"]["verdict"] == "FAIL"
    assert report["pretraffic"]["status"] == "Succeeded"
    json.dumps(report)
    text = render_report(report)
    assert "Pre-traffic hook: Succeeded (300 known-answer requests)" in text
    assert max(len(line) for line in text.splitlines()) <= 80


class _CredentialedSession:
    """A boto3.Session stand-in with credentials; each test's subclass says what its clients answer."""

    region_name = "us-east-1"

    def __init__(self, region_name=None):
        pass

    def get_credentials(self):
        return object()


def _stubbed_session(judge: dict) -> type:
    """A boto3.Session stand-in whose clients answer one collection of hs-prod (Stubber)."""

    class Session(_CredentialedSession):
        def client(self, name):
            c = boto3.client(name, **CREDS)
            stub = Stubber(c)
            if name == "cloudformation":
                stub.add_response("list_stack_resources", _stack_page(STACK_RESOURCES, NOW - 9000))
            elif name == "cloudwatch":
                _stub_alarms(stub)
            elif name == "codedeploy":
                _stub_deployments(stub)
            else:
                record = {"level": "INFO", "message": "canary verdict", "report": judge}
                _logged(stub, "/aws/lambda/hs-prod-CanaryJudge-1A2B", None, None, record, "q")
                _logged(stub, "/aws/lambda/CodeDeployHook_hs-prod-pretraffic", None, None, HOOK_RECORD, "q2")
            stub.activate()
            return c

    return Session


def test_report_html_writes_the_page_of_what_aws_has(evidence_reports, tmp_path, capsys):
    """--html PATH writes the AWS report as one page: outcome, hook, alarms, the judge's last look
    with its checks, the on-call text; the rehearsal-only charts and tables are left out."""
    page = tmp_path / "out" / "report.html"
    session = _stubbed_session(evidence_reports["alarm_rollback"]["judge"])
    code = cli.main(["--stack", "hs-prod", "--html", str(page)], session_factory=session)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "Canary report hs-prod: ROLLED BACK" in html
    assert "<svg" not in html and "Per-version table" not in html
    assert "<h2>PreTraffic hook</h2>" in html and "<h2>Canary judge, last look</h2>" in html
    assert "effect floor: excess" in html and "(decided)</b>" in html
    assert "CANARY REPORT  hs-prod" in html  # the on-call text, embedded
    assert captured.out.startswith("CANARY REPORT  hs-prod")


def test_report_html_refuses_an_unwritable_place_before_reading_aws(tmp_path, capsys):
    """--html under a file (not a folder): exit 2 with one line, before any AWS call."""
    (tmp_path / "file").write_text("x")
    code = cli.main(["--stack", "hs-prod", "--html", str(tmp_path / "file" / "page.html")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: --html") and err.count("\n") == 1


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
    with pytest.raises(cli.ReportError, match=r"no environment \[uat\]"):
        cli.stack_from_samconfig("uat", path)


def test_report_turns_aws_errors_into_one_line(capsys):
    """An AWS error (here: the stack does not exist) exits 1 with a one-line message."""

    class Session(_CredentialedSession):
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


def test_local_alarm_reasons_are_worded_and_unknown_ones_kept(evidence_reports):
    """The local controller's "[2] >= 2" becomes the verdict in words in the text report; a reason
    it cannot read (CloudWatch's own) is printed as it is."""
    judge_alarm = {
        "name": "hs-prod-canary-judge-fail",
        "state": "ALARM",
        "metric": "CanaryVerdict",
        "reason": "1 of the last 1 datapoints [2] >= 2 (CanaryVerdict Maximum per 60 s)",
    }
    rolled_back = evidence_reports["alarm_rollback"]
    text = render_report({**rolled_back, "alarms": [judge_alarm]})
    assert "[2] >= 2" not in text
    assert "Judge's verdict: 2 = FAIL in the last minute, at or above" in " ".join(text.split())
    cloudwatch = rolled_back["alarms"][0]
    assert alarm_in_words(cloudwatch) is None
    assert "Threshold Crossed: 1 out of the last 1 datapoints" in render_report(rolled_back)
    assert alarm_in_words({"state": "INSUFFICIENT_DATA", "reason": "no datapoints yet"}) == "No data yet."


# --------------------------------------------------------------------------- issue 10: the evidence


def _lines(text: str, start: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip().startswith(start)]


def _metric(report: dict, name: str) -> dict:
    return next(m for m in report["metrics"] if m["name"] == name)


def test_pass_at_the_gate_names_the_gate_and_why_every_metric_passed(evidence_reports):
    """PROMOTED by the gate: the outcome names the stage, the final look and every metric's deciding
    check (here: not significant at the look's alpha, with enough n)."""
    report = evidence_reports["pass_at_gate"]
    text = render_report(report)
    assert report["outcome"] == {
        "state": "PROMOTED",
        "stage": "gate",
        "reason": "the PostTraffic gate passed it on the whole window: "
        "All 4 metrics pass with enough evidence",
    }
    assert text.splitlines()[2] == "Outcome: PROMOTED  (decided by the PostTraffic gate)"
    assert "PASS at the final look after 300 s of canary, records complete." in text
    gate_report = report["gate"]["report"]
    for name in ("paired_labels", "errors", "latency"):
        m = _metric(gate_report, name)
        assert f"p {m['p_value']:.4f} > alpha" in text
    assert sum(1 for line in _lines(text, "significance p") if line.endswith(" *")) == 3
    # per version and per source apart: n and 5xx of live and probe
    rows = _lines(text, "baseline live") + _lines(text, "v2 ver 2 probe")
    assert len(rows) == 2
    assert rows[0].split()[2] == str(gate_report["groups"]["baseline"]["requests"]["live"])


def test_fail_by_probe_agreement_names_the_mismatching_answers(evidence_reports):
    """ROLLED BACK by the gate's FAIL on probe_agreement: the outcome and the deciding floor say how
    many probe answers differed from the manifest, with examples."""
    report = evidence_reports["fail_probe_agreement"]
    m = _metric(report["gate"]["report"], "probe_agreement")
    k, n = m["details"]["mismatches"], m["n_canary"]
    assert k == 3
    text = render_report(report)
    assert report["outcome"]["state"] == "ROLLED BACK" and report["outcome"]["stage"] == "gate"
    worded = (
        f"Canary answered known probe texts differently from its manifest: {k} mismatch(es) in {n} answers"
    )
    assert f"FAIL: probe_agreement: {worded}" in report["outcome"]["reason"]
    assert _lines(text, "effect floor 3 mismatching")[0].endswith("3 mismatching answers > 0 allowed *")
    assert "expected neither, answered hate_speech" in " ".join(text.split())
    assert m["decided_by"] == ["effect floor"]


def test_inconclusive_at_the_gate_names_what_lacks_how_much(evidence_reports):
    """INCONCLUSIVE at the final look fails the deployment; the outcome names each metric short of
    its minimum n and by how much, and the text marks those minimum n's as deciding."""
    report = evidence_reports["inconclusive_at_gate"]
    gate_report = report["gate"]["report"]
    assert gate_report["verdict"] == "INCONCLUSIVE"
    text = render_report(report)
    lacking = [m for m in gate_report["metrics"] if m["classification"] == "NoData"]
    assert {m["name"] for m in lacking} == {"errors", "latency"}
    for m in lacking:
        have = min(m["n_baseline"], m["n_canary"])
        assert f"{m['name']} has {have} of the {m['n_needed']}" in report["outcome"]["reason"]
        assert any(line.endswith(f"{have} < {m['n_needed']} {_unit(m)} *") for line in _lines(text, "min n"))
    assert "judged the whole window INCONCLUSIVE: not enough evidence" in report["outcome"]["reason"]


def _unit(m: dict) -> str:
    return {"errors": "requests", "latency": "probe latency pairs"}[m["name"]]


def test_a_crashed_judge_leaves_the_gates_reason(evidence_reports):
    """The gate could not judge (its judging raised) and the scheduled judge logged nothing: the
    outcome is the gate's reason, and the text says there is no report rather than a blank."""
    report = evidence_reports["judge_crashed"]
    assert report["gate"]["report"] is None and report["judge"] is None
    text = render_report(report)
    assert report["outcome"]["stage"] == "gate"
    assert report["outcome"]["reason"] == (
        "the PostTraffic gate failed it without a verdict: "
        "gate could not judge the canary: ZeroDivisionError: float division by zero"
    )
    assert "No judge report: the gate could not judge the canary" in text
    assert "no verdict logged in this window" in text


def test_a_rollback_by_an_alarm_names_the_alarm_and_the_judges_failing_metric(evidence_reports):
    """An alarm stopped the canary (the gate never ran): the outcome names the alarm CodeDeploy
    reported and the judge's failing metric; its deciding checks are marked."""
    report = evidence_reports["alarm_rollback"]
    assert report["gate"] is None
    text = render_report(report)
    outcome = report["outcome"]
    assert outcome["state"] == "ROLLED BACK" and outcome["stage"] == "alarm"
    assert outcome["reason"].startswith(
        "the alarm hate-speech-prod-canary-judge-fail fired during the canary"
    )
    assert "said FAIL: errors: Canary answers more 5xx than the baseline" in outcome["reason"]
    assert "(decided by an alarm during the canary)" in text
    assert "PostTraffic gate:" not in text
    errors = _metric(report["judge"], "errors")
    assert errors["decided_by"] == ["significance", "effect floor"]
    assert _lines(text, "effect floor excess")[0].endswith(" *")
    assert "FAIL at the interim look at 180 s, information fraction 0.20." in text


def test_every_evidence_report_fits_80_columns_even_a_long_one(evidence_reports):
    """Every recorded report, and one inflated with long names, reasons and numbers, fits 80 columns."""
    for report in evidence_reports.values():
        assert max(len(line) for line in render_report(report).splitlines()) <= 80
    long = json.loads(json.dumps(evidence_reports["fail_probe_agreement"]))
    gate_report = long["gate"]["report"]
    long["gate"]["reason"] = "FAIL at the final look is not a pass: " + "very-long-reason-" * 30
    long["gate"]["window"]["canary_version"] = "123456789012345678901234567890"
    for m in gate_report["metrics"]:
        m.update(name=m["name"] * 3, n_baseline=10**12, n_canary=10**12, p_value=2.6e-299, statistic=1e300)
        m["reason"] = "x" * 300
        m["test"] = "a test whose description goes on " * 8
    gate_report["metrics"][0]["details"]["examples"] = [["probe-" + "9" * 120, "neither", "hate_speech"]]
    gate_report["groups"]["canary"]["requests"]["live"] = 10**15
    gate_report["dropped"] = {"a reason with no spaces" * 10: 10**9}
    text = render_report(long)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "probe_agreementprobe_agreement" in text


def test_per_source_latency_and_label_shares_render_when_the_groups_carry_them(evidence_reports):
    """Groups with a by_source part (per source: latency_ms, labels) fill the per-source columns;
    without it the table says latency is for all sources together and shows no label shares."""
    report = json.loads(json.dumps(evidence_reports["pass_at_gate"]))
    assert "no label shares" not in render_report(report)  # the judge's groups carry by_source
    for group in report["gate"]["report"]["groups"].values():
        del group["by_source"]  # as a report logged before the groups had it
    assert "carries latency for all sources together and no label shares" in " ".join(
        render_report(report).split()
    )
    baseline = report["gate"]["report"]["groups"]["baseline"]
    baseline["by_source"] = {
        "live": {
            "latency_ms": {"p50": 3.25, "p90": 4.5, "p99": 9.0},
            "labels": {"hate_speech": 1, "neither": 3},
        },
        "probe": {"label_shares": {"offensive_language": 1.0}},
    }
    text = render_report(report)
    live = _lines(text, "baseline live")[0].split()
    assert live[4:10] == ["3.2", "4.5", "9.0", "25.0%", "-", "75.0%"]
    assert _lines(text, "v1 ver 1 probe")[0].split()[-2] == "100.0%"
    assert "no label shares" not in text


def test_json_carries_the_stage_the_gate_and_the_deciding_checks(evidence_reports):
    """JSON=1 prints the same dict: the outcome's stage, the gate's record and its final look, and per
    evidence metric the checks with the deciding ones (what the text marks with *)."""
    for report in evidence_reports.values():
        parts = [report["judge"], (report["gate"] or {}).get("report")]
        for part in (p for p in parts if p):
            assert part["schema"] == "canary-evidence/1"
            for m in part["metrics"]:
                assert {c["check"] for c in m["checks"]} >= {"min n", "effect floor"}
                assert m["decided_by"] == [c["check"] for c in m["checks"] if c["decided"]]
        # The text shows in full the look that decided: the gate's, else the judge's.
        shown = next((p for p in reversed(parts) if p), None)
        text = render_report(report)
        for m in (shown or {}).get("metrics", []):
            assert all(f"{c['text']} *" in text for c in m["checks"] if c["decided"])
    assert evidence_reports["fail_probe_agreement"]["gate"]["status"] == "Failed"


def test_the_rehearsals_gate_shows_its_final_look_once(evidence_reports):
    """The rehearsal puts the gate at evidence.gate and its final look as the judge: the gate section
    shows that look, and it is not shown a second time as the judge's."""
    recorded = evidence_reports["fail_probe_agreement"]
    gate = {k: recorded["gate"][k] for k in ("status", "succeeded", "reason", "records_complete")}
    report = {
        "outcome": {"state": "ROLLED BACK"},
        "judge": recorded["gate"]["report"],
        "evidence": {"gate": gate},
    }
    text = render_report(report)
    assert "PostTraffic gate: Failed" in text
    assert len(_lines(text, "metric          result")) == 1
    assert "Canary judge" not in text


@pytest.mark.parametrize(
    ("pretraffic", "gate", "state", "stage", "says"),
    [
        (
            {"status": "Failed", "reason": "3 texts answered wrongly"},
            None,
            "BLOCKED",
            "hook",
            "3 texts answered",
        ),
        ({"status": "Succeeded"}, None, "ROLLED BACK", "gate", "its record is not visible"),
        (
            {"status": "Succeeded"},
            {"status": "Failed", "reason": "no records"},
            "ROLLED BACK",
            "gate",
            "no records",
        ),
    ],
)
def test_a_hook_failure_is_told_apart_from_a_gate_failure(pretraffic, gate, state, stage, says):
    """CodeDeploy says HOOK_EXECUTION_FAILURE for both hooks: the hook's and the gate's records decide."""
    deployment = {
        "status": "Failed",
        "error_code": "HOOK_EXECUTION_FAILURE",
        "error": "HOOK_EXECUTION_FAILURE x",
    }
    outcome = outcome_of(deployment, [], pretraffic=pretraffic, gate=gate)
    assert (outcome["state"], outcome["stage"]) == (state, stage)
    assert says in outcome["reason"]


def test_collect_report_reads_the_gates_record_of_this_deployment():
    """The gate's "posttraffic gate" record is read from its log group; a record of another deployment
    is left out (and the outcome says the gate's record is not visible)."""
    cfn, cw, cd, logs = (
        boto3.client(n, **CREDS) for n in ("cloudformation", "cloudwatch", "codedeploy", "logs")
    )
    resources = [
        ("ServerlessDeploymentApplication", "hs-app", "AWS::CodeDeploy::Application"),
        ("InferenceFunctionDeploymentGroup", "hs-group", "AWS::CodeDeploy::DeploymentGroup"),
        ("PostTrafficGateFunction", "CodeDeployHook_hs-posttraffic", "AWS::Lambda::Function"),
    ]
    outcome = {"succeeded": False, "reason": "r", "window": {"deployment_id": "d-GATE"}, "report": None}
    record = {"message": "posttraffic gate", "status": "Failed", "reason": "no records", "outcome": outcome}
    reports = []
    for logged_for in ("d-GATE", "d-OTHER"):
        outcome["window"]["deployment_id"] = logged_for
        with Stubber(cfn) as s_cfn, Stubber(cw) as s_cw, Stubber(cd) as s_cd, Stubber(logs) as s_logs:
            s_cfn.add_response("list_stack_resources", _stack_page(resources, NOW))
            s_cw.add_response("describe_alarms", {"MetricAlarms": []}, {"AlarmNames": []})
            s_cd.add_response("list_deployments", {"deployments": ["d-GATE"]})
            failed = {
                "deploymentId": "d-GATE",
                "status": "Failed",
                "createTime": _dt(NOW - 900),
                "completeTime": _dt(NOW - 60),
                "errorInformation": {"code": "HOOK_EXECUTION_FAILURE", "message": "a hook failed"},
            }
            s_cd.add_response("batch_get_deployments", {"deploymentsInfo": [failed]})
            _logged(s_logs, "/aws/lambda/CodeDeployHook_hs-posttraffic", NOW - 900, NOW, record, "q")
            reports.append(
                cli.collect_report(
                    "hs", cloudformation=cfn, cloudwatch=cw, codedeploy=cd, logs=logs, now=NOW
                ).to_dict()
            )
    mine, other = reports
    assert mine["gate"]["status"] == "Failed" and mine["gate"]["reason"] == "no records"
    assert mine["outcome"] == {
        "state": "ROLLED BACK",
        "stage": "gate",
        "reason": "the PostTraffic gate failed it without a verdict: no records",
    }
    assert other["gate"] is None
    # Neither the hook's record nor this deployment's gate record: which hook failed is unknown.
    assert other["outcome"]["state"] == "FAILED" and other["outcome"]["stage"] is None
    assert "which one is unknown" in other["outcome"]["reason"]


# --------------------------------------------------------------------------- the report object


def test_the_report_object_gives_each_source_its_keys_and_a_fresh_dict(evidence_reports):
    """CanaryReport.to_dict(): the AWS report carries "gate" and no rehearsal parts; the rehearsal's
    carries its own parts (stage, looks, versions, ...) and "rollback" only when asked for, in the
    order the renderers and --json have always shown; changing one dict never changes the next."""
    recorded = evidence_reports["alarm_rollback"]
    common = {k: recorded[k] for k in ("generated_at", "stack", "environment", "region", "outcome")}
    parts = {"deployment": recorded["deployment"], "pretraffic": None, "alarms": tuple(recorded["alarms"])}
    aws = CanaryReport(source="aws", judge=recorded["judge"], gate=None, **common, **parts)
    assert sorted(aws.to_dict()) == sorted(recorded)  # the recorded AWS report's own keys
    assert list(aws.to_dict())[:7] == [
        "schema",
        "generated_at",
        "source",
        "stack",
        "environment",
        "region",
        "outcome",
    ]
    assert list(aws.to_dict())[7:] == ["deployment", "pretraffic", "alarms", "judge", "gate", "notes"]
    local = LocalRun("canary minute 1", ("r",), (), {"gate": None}, (), {}, (), {"seed": 7})
    rehearsal = CanaryReport(source="local", judge=None, local=local, **common, **parts)
    keys = list(rehearsal.to_dict())
    assert keys[7:9] == ["stage", "reasons"] and "gate" not in keys and keys[-1] == "notes"
    assert keys[13:19] == ["looks", "evidence", "versions", "traffic", "timeline", "rehearsal"]
    with_rollback = dataclasses.replace(rehearsal, local=dataclasses.replace(local, rollback={"ran": False}))
    assert list(with_rollback.to_dict())[-1] == "rollback"
    first = aws.to_dict()
    first["alarms"][0]["state"] = "changed"
    assert aws.to_dict()["alarms"][0]["state"] == "ALARM"


def test_version_table_bins_every_version_on_shared_log_edges():
    """Per version: n, 5xx, percentiles, label shares; one set of log-spaced edges for all, each
    successful latency counted once in its bin."""
    answered = [RequestRecord("1", "v1", ms, "neither", 200, 1.0 + i) for i, ms in enumerate((0.2, 0.3, 4.0))]
    records = [*answered, RequestRecord("2", "v2", 1.0, None, 502, 9.0)]
    baseline, canary = version_table(records, {"1": "baseline", "2": "canary"}, bins=4)
    assert (baseline["requests"], baseline["errors"], canary["errors"]) == (3, 0, 1)
    assert baseline["label_shares"]["neither"] == 1.0 and canary["label_shares"]["neither"] is None
    edges = baseline["latency_histogram"]["edges"]
    assert edges == canary["latency_histogram"]["edges"] and edges[0] == 0.1 and edges[-1] == 10.0
    assert sum(baseline["latency_histogram"]["counts"]) == 3
    assert sum(canary["latency_histogram"]["counts"]) == 0
