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
3. The latency reference: the canary/baseline handler-latency ratio the PreTraffic hook measured
   on these two versions, from the hook's "pretraffic check" record of this deployment in the
   hook's log group (HOOK_LOG_GROUP, canary.sources.hook_record). The judge's latency metric
   tests against it (never against the manifests' coarse ratio). The gate waits for it like for
   the records (the hook logged it before the window began, so it is normally visible long
   before); without it by the deadline the deployment fails, saying so.
4. The verdict: canary.evidence.judge_evidence(..., final=True) on the whole window (the final
   look gets the false-alarm budget the interim looks left), and evidence.gate_decision: PASS is
   Succeeded; FAIL, INCONCLUSIVE, no records, no latency reference, a judge that raises, a
   CodeDeploy or Logs error are all Failed with the reason, and CodeDeploy rolls back.

Like the PreTraffic hook it always reports: put_lifecycle_event_hook_execution_status runs in a
`finally`; if that call itself fails, the error is logged and raised (CodeDeploy then times the
hook out, which also fails the deployment). The gate judges by itself, so a scheduled judge that
crashed or never ran cannot let a canary through.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from aws_lambda_powertools import Logger

from canary.config import GateConfig
from canary.evidence import (
    EvidenceConfig,
    EvidenceReport,
    GateDecision,
    Verdict,
    gate_decision,
    judge_evidence,
)
from canary.manifests import load_manifests
from canary.probe import expected_labels, load_known_answers
from canary.sources import (
    ALLOW_TRAFFIC,
    ExpectedLabel,
    LogsInsightsSource,
    SourceError,
    WindowRecords,
    aws_client,
    deployment_target,
    hook_record,
    latency_reference,
    report_status,
    window_evidence,
)

SUCCEEDED, FAILED = "Succeeded", "Failed"
GATE_LOG_MESSAGE = "posttraffic gate"
HOOK_LOOKBACK_S = 3600.0  # the hook runs before the window: CodeDeploy waits up to an hour for it
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
    """The deployment's canary window from CodeDeploy (GateError when it has none): its versions
    from canary.sources.deployment_target, its times from the AllowTraffic lifecycle event."""
    try:
        target = deployment_target(codedeploy, deployment_id)
    except SourceError as exc:
        raise GateError(str(exc)) from None
    event = target.event(ALLOW_TRAFFIC)
    start = _epoch((event or {}).get("startTime"))
    end = _epoch((event or {}).get("endTime"))
    if start is None or (require_end and (end is None or (event or {}).get("status") != "Succeeded")):
        status = (event or {}).get("status", "missing")
        raise GateError(f"deployment {deployment_id}: {ALLOW_TRAFFIC} has no finished window ({status})")
    return CanaryWindow(
        deployment_id=deployment_id,
        config_name=target.config_name,
        function_name=target.function_name,
        baseline_version=target.baseline_version,
        canary_version=target.canary_version,
        start=start,
        end=end,
    )


def await_reference(
    read: Callable[[], float | None],
    *,
    poll_s: float,
    deadline: float,
    now: Callable[[], float],
    sleep: Callable[[float], None],
) -> float | None:
    """The hook's latency reference, read until it is visible or `deadline` (epoch s) comes."""
    while True:
        reference = read()
        if reference is not None or now() + poll_s >= deadline:
            return reference
        sleep(poll_s)


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
    wait = min(first, deadline) - now()  # read once: a second read may be past it (sleep(< 0) raises)
    if wait > 0:
        sleep(wait)
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
    latency_reference: float | None = None  # the hook's measured canary/baseline ratio

    def as_dict(self) -> dict[str, Any]:
        return {
            "succeeded": self.decision.succeeded,
            "reason": self.decision.reason,
            "window": asdict(self.window) if self.window else None,
            "records_complete": self.complete,
            "queries": self.queries,
            "latency_reference": self.latency_reference,
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

    outcome = judge_window(
        lambda: source.evidence_window(window.start, window.end or window.start, manifests),
        lambda: _reference(window, config, logs=logs, deadline=deadline, now=now, sleep=sleep),
        baseline_version=window.baseline_version,
        canary_version=window.canary_version,
        window_end=window.end or window.start,
        elapsed_s=(window.end or window.start) - window.start,
        expected=expected,
        config=config,
        deadline=deadline,
        now=now,
        sleep=sleep,
    )
    return replace(outcome, window=window)


def judge_window(
    read: Callable[[], WindowRecords],
    reference: Callable[[], tuple[float | None, str | None]],
    *,
    baseline_version: str,
    canary_version: str,
    window_end: float,
    elapsed_s: float,
    expected: ExpectedLabel,
    config: GateConfig,
    deadline: float,
    now: Callable[[], float],
    sleep: Callable[[float], None],
    evidence_config: EvidenceConfig | None = None,
) -> GateOutcome:
    """The gate's core once the window is known (the local stack runs it too): wait for the
    window's records (`read`), then get the latency reference (`reference`: (ratio, None) or
    (None, why there is none)), judge the whole window (final look) and decide. The outcome has
    no window (the caller's). Raises on anything that keeps it from judging."""
    records, complete = await_records(
        read,
        window_end=window_end,
        max_log_lag_s=config.max_log_lag_s,
        settle_s=config.settle_s,
        poll_s=config.poll_s,
        deadline=deadline,
        now=now,
        sleep=sleep,
    )
    ratio, missing = reference()
    ev = window_evidence(
        records, baseline_version=baseline_version, canary_version=canary_version, expected=expected
    )
    report = judge_evidence(
        ev, expected_latency_ratio=ratio, elapsed_s=elapsed_s, final=True, config=evidence_config
    )
    decision = gate_decision(report)
    if missing and decision.succeeded:  # cannot happen (latency is NoData without it): belt and braces
        decision = GateDecision(False, missing)
    elif missing and report.verdict is not Verdict.FAIL:
        decision = GateDecision(False, f"{missing}. The judge said {report.verdict.value}: {report.reason}")
    elif missing:
        decision = GateDecision(False, f"{decision.reason} (and {missing})")
    if not complete and not decision.succeeded:
        decision = GateDecision(
            False, decision.reason + " (records may be incomplete: the gate ran out of time)"
        )
    return GateOutcome(decision, None, report, complete, records.queries, ratio)


def _reference(
    window: CanaryWindow,
    config: GateConfig,
    *,
    logs: Any,
    deadline: float,
    now: Callable[[], float],
    sleep: Callable[[float], None],
) -> tuple[float | None, str | None]:
    """(the hook's latency reference, None) or (None, why the gate has none)."""
    where = f"latency reference from the PreTraffic hook for {window.deployment_id}"
    if not config.hook_log_group:
        return None, f"no {where}: HOOK_LOG_GROUP (the hook's log group) is not set"

    def read() -> float | None:
        record = hook_record(
            logs,
            config.hook_log_group,
            window.deployment_id,
            window.start - HOOK_LOOKBACK_S,
            now(),
            sleep=sleep,
        )
        return latency_reference(record)

    reference = await_reference(read, poll_s=config.poll_s, deadline=deadline, now=now, sleep=sleep)
    if reference is None:
        return None, (
            f'no {where}: no "pretraffic check" record with a measured latency_reference in '
            f"{config.hook_log_group} by the gate's deadline (the latency metric cannot pass without it)"
        )
    return reference, None


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


def _client(name: str) -> Any:
    return aws_client(name, read_timeout=30)


@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle(
        event,
        codedeploy=_client("codedeploy"),
        logs=_client("logs"),
        remaining_ms=getattr(context, "get_remaining_time_in_millis", None),
    )
