"""The scheduled canary judge (every minute): handler `canary.judge_lambda.lambda_handler`.

Each run reads the `live` alias. With no canary behind it the judge is idle and says so.
During a deployment it takes an interim look with the evidence judge (canary.evidence): the
records since the canary started (the running deployment's AllowTraffic start, from CodeDeploy),
live requests as counts and the probe's as rows (canary.sources), judged at the elapsed time's
share of the false-alarm budget. It publishes the verdict as the CanaryVerdict metric (2 FAIL,
1 INCONCLUSIVE, 0 PASS; the judge alarm fires on Maximum >= 2, so a FAIL rolls back at once) and
logs the full report as one record with message "canary verdict", which `make report` reads.

The latency metric tests the canary's probe latencies against the reference the PreTraffic hook
measured on these two versions (its "pretraffic check" record of the running deployment, in
HOOK_LOG_GROUP, canary.sources.hook_record; once seen it is kept for the deployment's later
looks). Until that record is visible (log lag) latency is NoData: the look can FAIL on the other
metrics but never PASS. The manifests' coarse ratio is only the hook's sanity bound.

An interim look can only stop a bad canary early: promotion is the PostTraffic gate's
(canary.gate), which judges the whole window itself. A judge that crashes publishes nothing and
its alarm treats missing data as not breaching; the gate still fails such a deployment unless
its own look passes.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger

from canary.config import ConfigError, JudgeLambdaConfig
from canary.evidence import (
    JUDGE_LOG_MESSAGE,
    VERDICT_DIMENSION,
    VERDICT_METRIC,
    VERDICT_VALUE,
    Verdict,
    judge_evidence,
)
from canary.gate import HOOK_LOOKBACK_S, CanaryWindow, GateError, find_window
from canary.manifests import ManifestError, load_manifests
from canary.probe import ProbeError, expected_labels, load_known_answers
from canary.report_model import JudgeLook, ScheduledLook
from canary.sources import (
    LogsInsightsSource,
    SourceError,
    hook_record,
    latency_reference,
    live_routing,
    window_evidence,
)

logger = Logger(service="canary-judge")


def publish_verdict(
    cloudwatch: Any, namespace: str, function_name: str, verdict: Verdict, now: float
) -> dict[str, Any]:
    """Put one CanaryVerdict datapoint, dimensioned by the inference function's name only (the
    judge alarm finds the metric by exactly that dimension set)."""
    datum = {
        "MetricName": VERDICT_METRIC,
        "Dimensions": [{"Name": VERDICT_DIMENSION, "Value": function_name}],
        "Timestamp": datetime.fromtimestamp(now, tz=UTC),
        "Value": float(VERDICT_VALUE[Verdict(verdict.value)]),
        "Unit": "None",
    }
    cloudwatch.put_metric_data(Namespace=namespace, MetricData=[datum])
    return datum


def canary_window(codedeploy: Any, config: JudgeLambdaConfig, canary_version: str) -> CanaryWindow:
    """The running canary: the in-progress deployment that shifts to `canary_version` (its id and
    AllowTraffic start), in DEPLOYMENT_GROUP or, unset, any group of the application (the
    template cannot name SAM's group here: its alarms depend on this function). SourceError if
    there is none."""
    if not config.application:
        raise SourceError("CODEDEPLOY_APPLICATION is not set: cannot date the canary")
    groups = [config.deployment_group] if config.deployment_group else []
    if not groups:
        groups = (
            codedeploy.list_deployment_groups(applicationName=config.application).get("deploymentGroups")
            or []
        )
    for group in groups:
        deployments = (
            codedeploy.list_deployments(
                applicationName=config.application,
                deploymentGroupName=group,
                includeOnlyStatuses=["InProgress"],
            ).get("deployments")
            or []
        )
        for deployment_id in deployments:
            try:
                window = find_window(codedeploy, deployment_id, require_end=False)
            except GateError:
                continue
            if window.canary_version == canary_version:
                return window
    raise SourceError(f"no in-progress deployment shifts traffic to version {canary_version}")


def read_reference(
    logs_client: Any,
    config: JudgeLambdaConfig,
    window: CanaryWindow,
    now: float,
    cache: dict[str, float] | None,
    sleep: Any,
) -> tuple[float | None, str]:
    """(the hook's latency reference for this deployment or None, how it was found or why not).
    A failed query is no reference this look (latency NoData), not a failed look."""
    if cache is not None and window.deployment_id in cache:
        return cache[window.deployment_id], "the hook's record (seen at an earlier look)"
    if not config.hook_log_group:
        return None, "HOOK_LOG_GROUP (the hook's log group) is not set"
    try:
        record = hook_record(
            logs_client,
            config.hook_log_group,
            window.deployment_id,
            window.start - HOOK_LOOKBACK_S,
            now,
            sleep=sleep,
            timeout_s=20.0,
        )
    except SourceError as exc:
        return None, f"the hook's record could not be read: {exc}"
    reference = latency_reference(record)
    if reference is None:
        return None, f"no measured reference in {config.hook_log_group} for {window.deployment_id} yet"
    if cache is not None:
        cache[window.deployment_id] = reference
    return reference, "the hook's record"


def run_once(
    config: JudgeLambdaConfig,
    *,
    lambda_client: Any,
    logs_client: Any,
    cloudwatch_client: Any,
    codedeploy_client: Any,
    manifests: dict[str, dict[str, Any]],
    known_answers: dict[str, dict[str, str]] | None = None,
    now: float | None = None,
    sleep: Any = time.sleep,
    references: dict[str, float] | None = None,
) -> dict[str, Any]:
    """One judge run (an interim look); returns what it did (also the Lambda's return value).
    `references`: deployment id -> the hook's latency reference, kept across runs (None: none)."""
    now = time.time() if now is None else now
    routing = live_routing(lambda_client, config.function_name, config.alias)
    if not routing.canary_running:
        logger.info("no canary behind the alias: idle", extra={"routing": asdict(routing)})
        return {"status": "idle", "routing": asdict(routing)}
    assert routing.canary_version is not None
    try:
        window = canary_window(codedeploy_client, config, routing.canary_version)
        start = window.start
        source = LogsInsightsSource(
            logs_client, config.log_group, (routing.baseline_version, routing.canary_version), sleep=sleep
        )
        records = source.evidence_window(start, now, manifests or {})
        ev = window_evidence(
            records,
            baseline_version=routing.baseline_version,
            canary_version=routing.canary_version,
            expected=expected_labels(known_answers or {}),
        )
        reference, found = read_reference(logs_client, config, window, now, references, sleep)
        report = judge_evidence(ev, expected_latency_ratio=reference, elapsed_s=now - start)
    except SourceError as exc:
        # No evidence is not evidence of harm: INCONCLUSIVE keeps the alarm quiet, the log says why
        # (the gate, which needs a PASS, fails a canary that stays without evidence).
        publish_verdict(cloudwatch_client, config.namespace, config.function_name, Verdict.INCONCLUSIVE, now)
        logger.error("could not read the request records", extra={"reason": str(exc)})
        return {"status": "error", "verdict": Verdict.INCONCLUSIVE.value, "reason": str(exc)}
    publish_verdict(cloudwatch_client, config.namespace, config.function_name, report.verdict, now)
    scheduled = ScheduledLook(start, window.deployment_id, records.queries, reference, found)
    body = JudgeLook(report, routing, judged_at=now, scheduled=scheduled).to_dict()
    logger.info(JUDGE_LOG_MESSAGE, extra={"verdict": report.verdict.value, "report": body})
    return {"status": "judged", "verdict": report.verdict.value, "reason": report.reason}


_CLIENTS: dict[str, Any] = {}
_REFERENCES: dict[str, float] = {}  # deployment id -> the hook's reference, once seen
_MANIFESTS: dict[str, dict[str, Any]] | None = None
_ANSWERS: dict[str, dict[str, str]] = {}


def _client(name: str) -> Any:
    if name not in _CLIENTS:
        import boto3

        _CLIENTS[name] = boto3.client(name)
    return _CLIENTS[name]


@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global _MANIFESTS, _ANSWERS
    try:
        config = JudgeLambdaConfig.from_env()
    except ConfigError as exc:
        logger.error("judge misconfigured", extra={"reason": str(exc)})
        return {"status": "error", "reason": str(exc)}
    if _MANIFESTS is None:
        try:
            _MANIFESTS = load_manifests(config.models_dir)
            _ANSWERS = load_known_answers(config.models_dir)
        except (ManifestError, ProbeError) as exc:
            # Without them no shadow label or known answer is read (INCONCLUSIVE): the gate fails it.
            logger.error("model manifests or probe answers unreadable", extra={"reason": str(exc)})
            _MANIFESTS, _ANSWERS = {}, {}
    return run_once(
        config,
        lambda_client=_client("lambda"),
        logs_client=_client("logs"),
        cloudwatch_client=_client("cloudwatch"),
        codedeploy_client=_client("codedeploy"),
        manifests=_MANIFESTS,
        known_answers=_ANSWERS,
        references=_REFERENCES,
    )
