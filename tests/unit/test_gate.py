"""The PostTraffic gate (canary/gate.py): finds the canary window in CodeDeploy, waits for its
records, judges the whole window, and always reports; Succeeded only on PASS (Stubber)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from canary import gate
from canary.gate import await_records, find_window, handle
from canary.sources import WindowRecords
from tests.unit import _canary_logs as fx

CREDS = {"region_name": "us-east-1", "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
EVENT = {"DeploymentId": "d-ABC123", "LifecycleEventHookExecutionId": "exec-1"}
START, END = fx.T0, fx.T0 + fx.WINDOW


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    """Manifests (with v2's expected latency ratio) and each model's known answers."""
    fx.write_models(tmp_path, fx.probe_texts())
    return tmp_path


def env(models_dir: Path, **extra: str) -> dict[str, str]:
    # No log lag to wait for in unit tests: the waiting itself is tested on await_records.
    return {
        "FUNCTION_NAME": "fn",
        "MANIFESTS_DIR": str(models_dir),
        "GATE_MAX_LOG_LAG_S": "0",
        "GATE_SETTLE_S": "0",
        "HOOK_LOG_GROUP": fx.HOOK_LOG_GROUP,
        **extra,
    }


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += max(seconds, 0.0)


def stub_deployment(stub, config="CodeDeployDefault.LambdaCanary10Percent5Minutes", running=False):
    """get_deployment, list_deployment_targets, get_deployment_target of a finished canary 6 -> 7."""
    stub.add_response(
        "get_deployment",
        {
            "deploymentInfo": {
                "deploymentId": "d-ABC123",
                "deploymentConfigName": config,
                "status": "InProgress",
            }
        },
        {"deploymentId": "d-ABC123"},
    )
    stub.add_response("list_deployment_targets", {"targetIds": ["fn:live"]}, {"deploymentId": "d-ABC123"})
    target = {
        "deploymentTargetType": "LambdaTarget",
        "lambdaTarget": {
            "deploymentId": "d-ABC123",
            "targetId": "fn:live",
            "status": "InProgress",
            "lifecycleEvents": [
                {"lifecycleEventName": "BeforeAllowTraffic", "status": "Succeeded"},
                {
                    "lifecycleEventName": "AllowTraffic",
                    "status": "InProgress" if running else "Succeeded",
                    "startTime": datetime.fromtimestamp(START, UTC),
                    **({} if running else {"endTime": datetime.fromtimestamp(END, UTC)}),
                },
                {"lifecycleEventName": "AfterAllowTraffic", "status": "InProgress"},
            ],
            "lambdaFunctionInfo": {
                "functionName": "fn",
                "functionAlias": "live",
                "currentVersion": "6",
                "targetVersion": "7",
            },
        },
    }
    stub.add_response(
        "get_deployment_target",
        {"deploymentTarget": target},
        {"deploymentId": "d-ABC123", "targetId": "fn:live"},
    )


def expect_report(stub, status):
    stub.add_response(
        "put_lifecycle_event_hook_execution_status",
        {"lifecycleEventHookExecutionId": "exec-1"},
        {"deploymentId": "d-ABC123", "lifecycleEventHookExecutionId": "exec-1", "status": status},
    )


def healthy(forced=0.0, probe_rate=5.0):
    texts = fx.probe_texts()
    return fx.live_count_rows(0.004, forced=forced), fx.probe_rows(texts, forced=forced, rate=probe_rate)


def test_pass_on_the_whole_window_reports_succeeded(models_dir):
    """A healthy v2 at the usage plan's 0.004 req/s: the probe alone gives PASS, so Succeeded."""
    live, probes = healthy()
    result = run_with_report(models_dir, "Succeeded", live=live, probes=probes)
    assert result["status"] == "Succeeded", result["reason"]
    assert result["reason"].startswith("PASS on the whole window")


HOOK_RECORD = fx.hook_record(fx.RATIO)


def run_with_report(
    models_dir, status, *, live, probes, config=None, extra_env=None, cd_setup=None, hook=(HOOK_RECORD,)
):
    """handle() on stubbed CodeDeploy and Logs, expecting `status` reported; every stub is used.
    `hook`: what each read of the hook's record finds, in turn (None: not visible yet)."""
    codedeploy, logs = boto3.client("codedeploy", **CREDS), boto3.client("logs", **CREDS)
    clock = Clock(END + 5.0)
    with Stubber(codedeploy) as s_cd, Stubber(logs) as s_logs:
        if cd_setup is None:
            stub_deployment(s_cd, **({"config": config} if config else {}))
            expect_report(s_cd, status)
        else:
            cd_setup(s_cd)
        if live is not None:
            fx.stub_window(s_logs, live, fx.latency_rows(), probes)
            for i, record in enumerate(hook):
                fx.stub_hook_record(s_logs, record, query_id=f"hook{i}")
        result = handle(
            EVENT,
            codedeploy=codedeploy,
            logs=logs,
            environ=env(models_dir, **(extra_env or {})),
            remaining_ms=lambda: 900_000,
            now=clock,
            sleep=clock.sleep,
        )
        s_cd.assert_no_pending_responses()
        s_logs.assert_no_pending_responses()
    return result


def test_the_gate_tests_latency_against_the_hooks_reference_not_the_manifests(models_dir):
    """The manifests say v2 is RATIO x v1 and so do the probe pairs, but the hook measured only
    RATIO / 1.5 on these deployed versions: against that reference the canary is 1.5x slower
    than expected, so latency FAILs and the deployment fails."""
    live, probes = healthy()
    result = run_with_report(
        models_dir, "Failed", live=live, probes=probes, hook=(fx.hook_record(fx.RATIO / 1.5),)
    )
    assert result["reason"].startswith("FAIL at the final look") and "latency" in result["reason"]


def test_a_reference_that_arrives_late_is_waited_for(models_dir):
    """The hook's record not visible at the first read (log lag), there at the next: the gate
    waits for it like for the records, then passes."""
    live, probes = healthy()
    result = run_with_report(models_dir, "Succeeded", live=live, probes=probes, hook=(None, HOOK_RECORD))
    assert result["status"] == "Succeeded", result["reason"]


def test_a_reference_that_never_comes_fails_with_the_reason(models_dir):
    """No "pretraffic check" record with a reference by the deadline (three reads 400 s apart in
    the 840 s the gate has): Failed, saying so, even though every other metric passed."""
    live, probes = healthy()
    result = run_with_report(
        models_dir,
        "Failed",
        live=live,
        probes=probes,
        hook=(None, None, None),
        extra_env={"GATE_POLL_S": "400"},
    )
    assert result["reason"].startswith("no latency reference from the PreTraffic hook for d-ABC123")
    assert fx.HOOK_LOG_GROUP in result["reason"] and "INCONCLUSIVE" in result["reason"]


def test_a_hook_record_without_a_ratio_is_no_reference(models_dir):
    """The hook logged its record but measured no ratio (e.g. a baseline without the header): the
    gate keeps waiting and fails for want of a reference."""
    live, probes = healthy()
    result = run_with_report(
        models_dir,
        "Failed",
        live=live,
        probes=probes,
        hook=(fx.hook_record(None),) * 3,
        extra_env={"GATE_POLL_S": "400"},
    )
    assert result["reason"].startswith("no latency reference from the PreTraffic hook")


def test_without_the_hooks_log_group_the_gate_fails_saying_so(models_dir):
    """HOOK_LOG_GROUP unset: no reference can be read: Failed, naming the setting."""
    live, probes = healthy()
    result = run_with_report(
        models_dir, "Failed", live=live, probes=probes, hook=(), extra_env={"HOOK_LOG_GROUP": ""}
    )
    assert "HOOK_LOG_GROUP (the hook's log group) is not set" in result["reason"]


def test_fail_reports_failed(models_dir):
    """A canary forcing 20 % of its answers to hate_speech: FAIL at the final look, Failed."""
    live, probes = healthy(forced=0.2)
    result = run_with_report(models_dir, "Failed", live=live, probes=probes)
    assert result["status"] == "Failed" and result["reason"].startswith("FAIL at the final look")
    assert "probe_agreement" in result["reason"]


def test_inconclusive_reports_failed(models_dir):
    """Too few probe answers (the probe ran 1 text/s): INCONCLUSIVE is never a pass."""
    live, probes = healthy(probe_rate=1.0)
    result = run_with_report(models_dir, "Failed", live=live, probes=probes)
    assert result["status"] == "Failed" and result["reason"].startswith("INCONCLUSIVE at the final look")


def test_no_records_reports_failed(models_dir):
    """Nothing in the logs for the window (no probe, no traffic): Failed, naming the version."""
    result = run_with_report(models_dir, "Failed", live=[], probes=[])
    assert result["status"] == "Failed" and "no request records" in result["reason"]


def test_a_judge_that_raises_reports_failed(models_dir, monkeypatch):
    """An exception inside the judge fails the deployment with the exception in the reason."""
    live, probes = healthy()

    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(gate, "judge_evidence", broken)
    result = run_with_report(models_dir, "Failed", live=live, probes=probes)
    assert result["status"] == "Failed" and "ZeroDivisionError" in result["reason"]


def test_a_codedeploy_error_is_reported_as_failed(models_dir):
    """GetDeployment refused: the gate cannot find the window, reports Failed and says why."""

    def setup(stub):
        stub.add_client_error("get_deployment", "AccessDeniedException", "not authorized to GetDeployment")
        expect_report(stub, "Failed")

    result = run_with_report(models_dir, "Failed", live=None, probes=None, cd_setup=setup)
    assert result["status"] == "Failed" and "AccessDeniedException" in result["reason"]


def test_a_failing_report_call_is_logged_and_raised(models_dir, caplog):
    """PutLifecycleEventHookExecutionStatus itself fails: logged with the status, then raised
    (CodeDeploy times the hook out, which fails the deployment too)."""
    live, probes = healthy()

    def setup(stub):
        stub_deployment(stub)
        stub.add_client_error("put_lifecycle_event_hook_execution_status", "ThrottlingException", "slow down")

    caplog.set_level(logging.ERROR)
    with pytest.raises(Exception, match="ThrottlingException"):
        codedeploy, logs = boto3.client("codedeploy", **CREDS), boto3.client("logs", **CREDS)
        clock = Clock(END + 5.0)
        with Stubber(codedeploy) as s_cd, Stubber(logs) as s_logs:
            setup(s_cd)
            fx.stub_window(s_logs, live, fx.latency_rows(), probes)
            fx.stub_hook_record(s_logs, HOOK_RECORD)
            handle(
                EVENT, codedeploy=codedeploy, logs=logs, environ=env(models_dir), now=clock, sleep=clock.sleep
            )
    assert any(r.getMessage() == "could not report to CodeDeploy" for r in caplog.records)


@pytest.mark.parametrize(("allowed", "status"), [("true", "Succeeded"), ("false", "Failed")])
def test_all_at_once_has_no_window_and_passes_only_where_allowed(models_dir, allowed, status):
    """dev's AllAtOnce shifts everything at once: nothing to judge. It passes only with
    GATE_ALLOW_ALL_AT_ONCE=true (the template sets it in dev only)."""
    result = run_with_report(
        models_dir,
        status,
        live=None,
        probes=None,
        config="CodeDeployDefault.LambdaAllAtOnce",
        extra_env={"GATE_ALLOW_ALL_AT_ONCE": allowed},
    )
    assert result["status"] == status and "AllAtOnce" in result["reason"]


def test_an_event_without_ids_reports_nothing():
    """Not a CodeDeploy event: nothing to report to, Failed returned."""
    assert handle({}, codedeploy=None, logs=None)["status"] == "Failed"


def test_find_window_reads_the_versions_and_the_allow_traffic_event():
    """currentVersion is the baseline, targetVersion the canary; AllowTraffic's start and end
    are the window. While AllowTraffic still runs, the gate has no window (the judge Lambda,
    which looks during it, asks with require_end=False)."""
    codedeploy = boto3.client("codedeploy", **CREDS)
    with Stubber(codedeploy) as stub:
        stub_deployment(stub)
        window = find_window(codedeploy, "d-ABC123")
    assert (window.baseline_version, window.canary_version) == ("6", "7")
    assert (window.start, window.end) == (START, END) and not window.all_at_once
    with Stubber(codedeploy) as stub:
        stub_deployment(stub, running=True)
        with pytest.raises(gate.GateError, match="no finished window"):
            find_window(codedeploy, "d-ABC123")
        stub_deployment(stub, running=True)
        assert find_window(codedeploy, "d-ABC123", require_end=False).end is None


def records(total: int) -> WindowRecords:
    probes = tuple(object() for _ in range(total))
    return WindowRecords(START, END, (), {}, probes, 0, 3, total)  # type: ignore[arg-type]


def test_the_wait_lasts_past_the_log_lag_and_until_records_stop_arriving():
    """Reads begin at end + lag - settle; records still arriving at end + lag (lag tail) keep the
    gate waiting until they stop growing for settle_s; reads are poll_s apart."""
    clock, seen = Clock(END), []
    arriving = iter([100, 120, 130, 130, 130, 130])

    def read():
        seen.append(clock())
        return records(next(arriving))

    got, complete = await_records(
        read,
        window_end=END,
        max_log_lag_s=600,
        settle_s=60,
        poll_s=30,
        deadline=END + 840,
        now=clock,
        sleep=clock.sleep,
    )
    assert complete and got.total == 130
    assert [t - END for t in seen] == [540, 570, 600, 630, 660]


def test_the_first_wait_never_sleeps_a_negative_time_on_a_busy_machine():
    """The clock read to decide the first wait and the one to size it may differ on a busy
    machine: a second read past the first read time must not become sleep(<0) (time.sleep
    raises ValueError, and the gate would fail on no evidence)."""
    first_read = END + 540  # end + lag - settle
    clock = Clock(first_read - 0.001)

    def now() -> float:
        value = clock()
        clock.t += 0.002  # each read takes the machine 2 ms
        return value

    def strict_sleep(seconds: float) -> None:
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        clock.sleep(seconds)

    got, complete = await_records(
        lambda: records(130),
        window_end=END, max_log_lag_s=600, settle_s=60, poll_s=30, deadline=END + 840,
        now=now, sleep=strict_sleep,
    )  # fmt: skip
    assert complete and got.total == 130


def test_the_wait_is_bounded_by_the_deadline():
    """Records that never settle: the gate stops reading at its deadline and says incomplete."""
    clock, counter = Clock(END), iter(range(1000))
    got, complete = await_records(
        lambda: records(next(counter)),
        window_end=END, max_log_lag_s=600, settle_s=60, poll_s=30, deadline=END + 700,
        now=clock, sleep=clock.sleep,
    )  # fmt: skip
    assert not complete and clock() <= END + 700
