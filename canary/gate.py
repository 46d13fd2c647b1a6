"""The PostTraffic gate (issue 10): handler `canary.gate.lambda_handler`, CodeDeploy's
AfterAllowTraffic hook. Nothing is promoted blind: the deployment succeeds only when the evidence
judge says PASS on the whole canary window.

1. The window: the deployment's AllowTraffic lifecycle event, from its start (the alias shifted
   10 % to the new version) to its end (the last shift), with the two versions
   (codedeploy get_deployment, list_deployment_targets, get_deployment_target: LambdaTarget's
   lambdaFunctionInfo currentVersion / targetVersion and lifecycleEvents).
2. The records: CloudWatch Logs may deliver a record minutes after the request, so the gate waits
   until at least `max_log_lag_s` after the window's end and until the records seen stopped
   growing for `settle_s`, bounded by the Lambda timeout (CodeDeploy waits up to an hour for a
   hook; the function's own 15-minute limit is the bound that matters).
3. The verdict: canary.evidence.judge_evidence(..., final=True) on the whole window (the final
   look gets the false-alarm budget the interim looks left), and evidence.gate_decision: PASS is
   Succeeded; FAIL, INCONCLUSIVE, no records, a judge that raises, a CodeDeploy or Logs error are
   all Failed with the reason, and CodeDeploy rolls back.

Like the PreTraffic hook it always reports: put_lifecycle_event_hook_execution_status runs in a
`finally`; if that call itself fails, the error is logged and raised (CodeDeploy then times the
hook out, which also fails the deployment). The gate judges by itself, so a scheduled judge that
crashed or never ran cannot let a canary through.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from aws_lambda_powertools import Logger

from canary.config import GateConfig
from canary.evidence import (
    EvidenceReport,
    GateDecision,
    expected_latency_ratio,
    gate_decision,
    judge_evidence,
)
from canary.manifests import load_manifests
from canary.probe import expected_labels, load_known_answers
from canary.sources import LogsInsightsSource, WindowRecords, window_evidence

SUCCEEDED, FAILED = "Succeeded", "Failed"
GATE_LOG_MESSAGE = "posttraffic gate"
ALLOW_TRAFFIC = "AllowTraffic"  # the Lambda deployment lifecycle event that shifts traffic
logger = Logger(service="canary-posttraffic")


class GateError(RuntimeError):
    """The gate cannot find or read the canary window (the message says what)."""


@dataclass(frozen=True)
class CanaryWindow:
    """One deployment's canary: which versions, and when traffic was shifted."""

    deployment_id: str
    config_name: str  # e.g. CodeDeployDefault.LambdaCanary10Percent5Minutes
    function_name: str
    baseline_version: str  # lambdaFunctionInfo.currentVersion
    canary_version: str  # lambdaFunctionInfo.targetVersion
    start: float  # AllowTraffic startTime (epoch s): the canary's first request
    end: float | None  # AllowTraffic endTime: the last shift (None while it runs)

    @property
    def all_at_once(self) -> bool:
        return "AllAtOnce" in self.config_name


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    return float(value.timestamp()) if hasattr(value, "timestamp") else float(value)


def find_window(codedeploy: Any, deployment_id: str, *, require_end: bool = True) -> CanaryWindow:
    """The deployment's canary window from CodeDeploy (GateError when it has none)."""
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
        raise GateError(f"deployment {deployment_id} has {len(targets)} targets, expected one Lambda alias")
    target = codedeploy.get_deployment_target(deploymentId=deployment_id, targetId=targets[0])
    lam = (target.get("deploymentTarget") or {}).get("lambdaTarget")
    if not lam:
        raise GateError(f"deployment {deployment_id}: target {targets[0]} is not a Lambda target")
    fn = lam.get("lambdaFunctionInfo") or {}
    event = next(
        (e for e in lam.get("lifecycleEvents") or [] if e.get("lifecycleEventName") == ALLOW_TRAFFIC), None
    )
    start = _epoch((event or {}).get("startTime"))
    end = _epoch((event or {}).get("endTime"))
    if start is None or (require_end and (end is None or event.get("status") != "Succeeded")):
        status = (event or {}).get("status", "missing")
        raise GateError(f"deployment {deployment_id}: {ALLOW_TRAFFIC} has no finished window ({status})")
    if not fn.get("currentVersion") or not fn.get("targetVersion"):
        raise GateError(f"deployment {deployment_id}: target names no current/target version")
    return CanaryWindow(
        deployment_id=deployment_id,
        config_name=str(info.get("deploymentConfigName") or ""),
        function_name=str(fn.get("functionName") or ""),
        baseline_version=str(fn["currentVersion"]),
        canary_version=str(fn["targetVersion"]),
        start=start,
        end=end,
    )


def await_records(
    read: Callable[[], WindowRecords],
    *,
    window_end: float,
    max_log_lag_s: float,
    settle_s: float,
    poll_s: float,
    deadline: float,
    now: Callable[[], float],
    sleep: Callable[[float], None],
) -> tuple[WindowRecords, bool]:
    """Read the window until its records are complete: at least `max_log_lag_s` after its end
    and no new record for `settle_s`. Stops at `deadline` (epoch s) with what it has.
    Returns (records, complete)."""
    first = window_end + max_log_lag_s - settle_s  # no read before it could end the wait
    if now() < min(first, deadline):
        sleep(min(first, deadline) - now())
    last_total, changed = -1, now()
    while True:
        records = read()
        t = now()
        total = records.total
        if total != last_total:
            last_total, changed = total, t
        if t >= window_end + max_log_lag_s and t - changed >= settle_s:
            return records, True
        if t + poll_s >= deadline:
            return records, False
        sleep(poll_s)


@dataclass(frozen=True)
class GateOutcome:
    """What the gate decided and everything behind it (logged as one record)."""

    decision: GateDecision
    window: CanaryWindow | None
    report: EvidenceReport | None
    complete: bool  # the records were complete (False: the clock ran out first)
    queries: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "succeeded": self.decision.succeeded,
            "reason": self.decision.reason,
            "window": asdict(self.window) if self.window else None,
            "records_complete": self.complete,
            "queries": self.queries,
            "report": self.report.as_dict() if self.report else None,
        }


def run_gate(
    deployment_id: str,
    config: GateConfig,
    *,
    codedeploy: Any,
    logs: Any,
    deadline: float,
    now: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> GateOutcome:
    """Find the window, wait for its records, judge it (final look). Raises on anything that
    keeps it from judging (the caller reports Failed)."""
    window = find_window(codedeploy, deployment_id)
    if window.all_at_once:
        ok = config.allow_all_at_once
        why = "AllAtOnce: no canary window to judge" + (
            " (allowed here: GATE_ALLOW_ALL_AT_ONCE=true)" if ok else "; only a judged canary may pass"
        )
        return GateOutcome(GateDecision(ok, why), window, None, True, 0)
    manifests = load_manifests(config.models_dir)
    expected = expected_labels(load_known_answers(config.models_dir))
    versions = (window.baseline_version, window.canary_version)
    source = LogsInsightsSource(logs, config.log_group, versions, sleep=sleep, timeout_seconds=120.0)

    records, complete = await_records(
        lambda: source.evidence_window(window.start, window.end or window.start, manifests),
        window_end=window.end or window.start,
        max_log_lag_s=config.max_log_lag_s,
        settle_s=config.settle_s,
        poll_s=config.poll_s,
        deadline=deadline,
        now=now,
        sleep=sleep,
    )
    ev = window_evidence(
        records,
        baseline_version=window.baseline_version,
        canary_version=window.canary_version,
        expected=expected,
    )
    report = judge_evidence(
        ev,
        expected_latency_ratio=expected_latency_ratio(manifests, ev.baseline_model, ev.canary_model),
        elapsed_s=(window.end or window.start) - window.start,
        final=True,
    )
    decision = gate_decision(report)
    if not complete and not decision.succeeded:
        decision = GateDecision(
            False, decision.reason + " (records may be incomplete: the gate ran out of time)"
        )
    return GateOutcome(decision, window, report, complete, records.queries)


def report_status(codedeploy: Any, deployment_id: str, execution_id: str, status: str) -> None:
    codedeploy.put_lifecycle_event_hook_execution_status(
        deploymentId=deployment_id, lifecycleEventHookExecutionId=execution_id, status=status
    )


def handle(
    event: Mapping[str, Any],
    *,
    codedeploy: Any,
    logs: Any,
    environ: Mapping[str, str] | None = None,
    remaining_ms: Callable[[], int] | None = None,
    now: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """The gate's whole job for one CodeDeploy event; Failed on any exception, always reported."""
    deployment_id = event.get("DeploymentId")
    execution_id = event.get("LifecycleEventHookExecutionId")
    if not deployment_id or not execution_id:
        logger.error("not a CodeDeploy lifecycle event: nothing to report")
        return {"status": FAILED, "reason": "event lacks DeploymentId or LifecycleEventHookExecutionId"}
    status, reason, outcome = FAILED, "gate did not finish", None
    try:
        config = GateConfig.from_env(environ)
        budget = (remaining_ms() / 1000.0) if remaining_ms is not None else 900.0
        deadline = now() + budget - config.time_margin_s
        outcome = run_gate(
            str(deployment_id),
            config,
            codedeploy=codedeploy,
            logs=logs,
            deadline=deadline,
            now=now,
            sleep=sleep,
        )
        status = SUCCEEDED if outcome.decision.succeeded else FAILED
        reason = outcome.decision.reason
    except Exception as exc:
        status, reason = FAILED, f"gate could not judge the canary: {type(exc).__name__}: {exc}"
        logger.exception("post-traffic gate failed to judge: reporting Failed")
    finally:
        try:
            report_status(codedeploy, str(deployment_id), str(execution_id), status)
        except Exception:
            logger.exception("could not report to CodeDeploy", extra={"status": status, "reason": reason})
            raise
    logger.info(
        GATE_LOG_MESSAGE,
        extra={"status": status, "reason": reason, "outcome": outcome.as_dict() if outcome else None},
    )
    return {"status": status, "reason": reason}


_CLIENTS: dict[str, Any] = {}


def _client(name: str) -> Any:
    if name not in _CLIENTS:
        import boto3
        from botocore.config import Config

        _CLIENTS[name] = boto3.client(name, config=Config(read_timeout=30, retries={"mode": "standard"}))
    return _CLIENTS[name]


@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle(
        event,
        codedeploy=_client("codedeploy"),
        logs=_client("logs"),
        remaining_ms=getattr(context, "get_remaining_time_in_millis", None),
    )
