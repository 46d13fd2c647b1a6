"""The scheduled canary judge (every minute): handler `canary.judge_lambda.lambda_handler`.

Each run reads the `live` alias. With no canary behind it the judge is idle and says so.
During a deployment it reads both versions' request records from the function's logs, judges
them (canary.judge), publishes the verdict as the CanaryVerdict metric (2 FAIL, 1
INCONCLUSIVE, 0 PASS; the judge alarm fires on Maximum >= 2) and logs the full report as one
record with message "canary verdict", which `make report` reads back.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger

from canary.config import ConfigError, JudgeLambdaConfig
from canary.judge import (
    JUDGE_LOG_MESSAGE,
    VERDICT_DIMENSION,
    VERDICT_METRIC,
    VERDICT_VALUE,
    JudgeReport,
    Verdict,
    judge_source,
)
from canary.manifests import ManifestError, load_manifests
from canary.sources import AliasRouting, LogsInsightsSource, SourceError, live_routing

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
        "Value": float(VERDICT_VALUE[verdict]),
        "Unit": "None",
    }
    cloudwatch.put_metric_data(Namespace=namespace, MetricData=[datum])
    return datum


def _routing_dict(routing: AliasRouting) -> dict[str, Any]:
    return {
        "function_name": routing.function_name,
        "alias": routing.alias,
        "baseline_version": routing.baseline_version,
        "canary_version": routing.canary_version,
        "canary_weight": routing.canary_weight,
    }


def run_once(
    config: JudgeLambdaConfig,
    *,
    lambda_client: Any,
    logs_client: Any,
    cloudwatch_client: Any,
    manifests: dict[str, dict[str, Any]],
    now: float | None = None,
    sleep: Any = time.sleep,
) -> dict[str, Any]:
    """One judge run; returns what it did (also the Lambda's return value)."""
    now = time.time() if now is None else now
    routing = live_routing(lambda_client, config.function_name, config.alias)
    if not routing.canary_running:
        logger.info("no canary behind the alias: idle", extra={"routing": _routing_dict(routing)})
        return {"status": "idle", "routing": _routing_dict(routing)}
    assert routing.canary_version is not None
    source = LogsInsightsSource(
        logs_client, config.log_group, (routing.baseline_version, routing.canary_version), sleep=sleep
    )
    try:
        report: JudgeReport = judge_source(
            source,
            baseline_version=routing.baseline_version,
            canary_version=routing.canary_version,
            manifests=manifests,
            now=now,
            window_s=config.window_minutes * 60.0,
            config=config.judge,
        )
    except SourceError as exc:
        # No evidence is not evidence of harm: INCONCLUSIVE keeps the alarm quiet, the log says why.
        publish_verdict(cloudwatch_client, config.namespace, config.function_name, Verdict.INCONCLUSIVE, now)
        logger.error("could not read the request records", extra={"reason": str(exc)})
        return {"status": "error", "verdict": Verdict.INCONCLUSIVE.value, "reason": str(exc)}
    publish_verdict(cloudwatch_client, config.namespace, config.function_name, report.verdict, now)
    body = report.as_dict()
    body["routing"] = _routing_dict(routing)
    body["judged_at"] = now
    if source.malformed:
        body["dropped"]["unreadable log rows"] = source.malformed
    logger.info(JUDGE_LOG_MESSAGE, extra={"verdict": report.verdict.value, "report": body})
    return {"status": "judged", "verdict": report.verdict.value, "reason": report.reason}


_CLIENTS: dict[str, Any] = {}
_MANIFESTS: dict[str, dict[str, Any]] | None = None


def _client(name: str) -> Any:
    if name not in _CLIENTS:
        import boto3

        _CLIENTS[name] = boto3.client(name)
    return _CLIENTS[name]


@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global _MANIFESTS
    try:
        config = JudgeLambdaConfig.from_env()
    except ConfigError as exc:
        logger.error("judge misconfigured", extra={"reason": str(exc)})
        return {"status": "error", "reason": str(exc)}
    if _MANIFESTS is None:
        try:
            _MANIFESTS = load_manifests(config.models_dir)
        except ManifestError as exc:
            # Without manifests the label metric is NoData (INCONCLUSIVE); errors and latency still count.
            logger.error("model manifests unreadable", extra={"reason": str(exc)})
            _MANIFESTS = {}
    return run_once(
        config,
        lambda_client=_client("lambda"),
        logs_client=_client("logs"),
        cloudwatch_client=_client("cloudwatch"),
        manifests=_MANIFESTS,
    )
