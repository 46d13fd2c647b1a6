"""The on-call canary report from AWS: `python -m canary.report` (`make report ENV=prod`).

    python -m canary.report [--env prod] [--stack NAME] [--region R] [--hours 6] [--json] [--html PATH]

Finds the stack (samconfig.toml's stack_name for --env, or --stack), then reads: the stack's
alarms and their states (cloudwatch describe_alarms), its latest CodeDeploy deployment, and
the judge's latest report (its "canary verdict" log record, through Logs Insights), the
pre-traffic hook's result (its "pretraffic check" record) and the PostTraffic gate's decision
with its final look (its "posttraffic gate" record), and prints them with
canary.render.render_report (or the dict itself with --json, each evidence metric with the checks
that decided it); --html PATH also writes it as an HTML page (canary.report_html). Without AWS
credentials it says so in one line and exits 2; an AWS error exits 1, also in one line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from canary.config import PACKAGE_ROOT
from canary.evidence import JUDGE_LOG_MESSAGE
from canary.gate import GATE_LOG_MESSAGE
from canary.render import checked, gate_from_record, outcome_of, render_report
from canary.report_html import check_writable, render_html
from canary.report_model import CanaryReport
from canary.sources import HOOK_LOG_MESSAGE, SourceError, latest_logged

SAMCONFIG = PACKAGE_ROOT / "samconfig.toml"
NO_CREDENTIALS = (
    "no AWS credentials found: set AWS_PROFILE (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) "
    "or run `aws configure`; the offline rehearsal needs none: `make demo`"
)


class ReportError(RuntimeError):
    """Something the report cannot do, said in one line."""


def stack_from_samconfig(env: str, path: Path = SAMCONFIG) -> tuple[str, str | None]:
    """(stack_name, region) of a samconfig.toml environment, read by the stack's one samconfig reader."""
    from stack import SettingsError, read_samconfig  # the CLI's alone: no Lambda package imports it

    try:
        config = read_samconfig(path, env)
    except SettingsError as exc:
        raise ReportError(f"{exc}: pass --stack NAME") from None
    return config.stack_name, config.region


def _ts(value: Any) -> float | None:
    return value.timestamp() if hasattr(value, "timestamp") else value


def stack_resources(cloudformation: Any, stack: str) -> list[dict[str, Any]]:
    resources: list[dict[str, Any]] = []
    for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack):
        resources += page.get("StackResourceSummaries") or []
    return resources


def alarm_states(cloudwatch: Any, names: list[str]) -> list[dict[str, Any]]:
    alarms = []
    for start in range(0, len(names), 100):
        response = cloudwatch.describe_alarms(AlarmNames=names[start : start + 100])
        for a in response.get("MetricAlarms") or []:
            alarms.append(
                {
                    "name": a["AlarmName"],
                    "state": a.get("StateValue"),
                    "reason": a.get("StateReason"),
                    "updated": _ts(a.get("StateUpdatedTimestamp")),
                    "metric": a.get("MetricName"),
                }
            )
    return alarms


def latest_deployment(codedeploy: Any, application: str, group: str) -> dict[str, Any] | None:
    ids = codedeploy.list_deployments(applicationName=application, deploymentGroupName=group).get(
        "deployments"
    )
    if not ids:
        return None
    infos = codedeploy.batch_get_deployments(deploymentIds=ids[:25]).get("deploymentsInfo") or []
    if not infos:
        return None
    info = max(infos, key=lambda d: _ts(d.get("createTime")) or 0.0)
    error = info.get("errorInformation") or {}
    return {
        "id": info.get("deploymentId"),
        "status": info.get("status"),
        "created": _ts(info.get("createTime")),
        "completed": _ts(info.get("completeTime")),
        "error_code": error.get("code"),
        "error": " ".join(x for x in (error.get("code"), error.get("message")) if x) or None,
        "application": application,
        "group": group,
    }


def _pick(resources: list[dict[str, Any]], kind: str, hint: str = "") -> list[dict[str, Any]]:
    found = [r for r in resources if r.get("ResourceType") == kind]
    if hint:
        found = [r for r in found if hint.lower() in r.get("LogicalResourceId", "").lower()]
    return found


def _latest_of_stack(
    resources: list[dict[str, Any]], codedeploy: Any, notes: list[str]
) -> dict[str, Any] | None:
    """The stack's latest CodeDeploy deployment over its deployment groups (None: none yet)."""
    apps = _pick(resources, "AWS::CodeDeploy::Application")
    groups = _pick(resources, "AWS::CodeDeploy::DeploymentGroup")
    if not (apps and groups):
        notes.append("the stack has no CodeDeploy deployment group (is DeploymentPreference set?)")
        return None
    candidates = [
        latest_deployment(codedeploy, apps[0]["PhysicalResourceId"], g["PhysicalResourceId"]) for g in groups
    ]
    candidates = [d for d in candidates if d]
    return max(candidates, key=lambda d: d.get("created") or 0.0) if candidates else None


def _logged_results(
    resources: list[dict[str, Any]],
    logs: Any,
    span: tuple[float, float],
    notes: list[str],
    sleep: Callable[[float], None],
) -> tuple[Any, Any]:
    """(the judge's latest report, the PreTraffic hook's result) from their "canary verdict" and
    "pretraffic check" log records in the span; a failed read is a note, not an error."""
    since, until = span
    judge = pretraffic = None
    judges = _pick(resources, "AWS::Lambda::Function", "judge")
    hooks = _pick(resources, "AWS::Lambda::Function", "pretraffic")
    if not judges:
        notes.append("no canary judge function found in the stack (logical id containing 'Judge')")
    try:
        if judges:
            group = f"/aws/lambda/{judges[0]['PhysicalResourceId']}"
            record = latest_logged(logs, group, JUDGE_LOG_MESSAGE, since, until, sleep=sleep)
            judge = (record or {}).get("report")
        if hooks:
            group = f"/aws/lambda/{hooks[0]['PhysicalResourceId']}"
            record = latest_logged(logs, group, HOOK_LOG_MESSAGE, since - 900.0, until, sleep=sleep)
            if record:
                pretraffic = record.get("result") or {"status": record.get("status"), "checks": []}
                pretraffic.setdefault("reason", record.get("reason"))
    except SourceError as exc:
        notes.append(str(exc))
    return judge, pretraffic


def collect_report(
    stack: str,
    *,
    cloudformation: Any,
    cloudwatch: Any,
    codedeploy: Any,
    logs: Any,
    environment: str | None = None,
    region: str | None = None,
    hours: float = 6.0,
    now: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> CanaryReport:
    """The report (schema canary-report/1) for one deployed stack."""
    now = time.time() if now is None else now
    notes: list[str] = []
    resources = stack_resources(cloudformation, stack)
    alarms = alarm_states(
        cloudwatch, [r["PhysicalResourceId"] for r in _pick(resources, "AWS::CloudWatch::Alarm")]
    )
    deployment = _latest_of_stack(resources, codedeploy, notes)
    # The judge's, the hook's and the gate's own log records for this deployment (or the last `hours`).
    since = (deployment or {}).get("created") or now - hours * 3600.0
    until = min(now, ((deployment or {}).get("completed") or now) + 120.0)
    judge, pretraffic = _logged_results(resources, logs, (since, until), notes, sleep)
    gate = None
    gates = _pick(resources, "AWS::Lambda::Function", "posttraffic")
    try:  # apart: the gate's decision matters most when the others cannot be read
        if gates:
            group = f"/aws/lambda/{gates[0]['PhysicalResourceId']}"
            gate = _gate_of(
                deployment, latest_logged(logs, group, GATE_LOG_MESSAGE, since, until, sleep=sleep)
            )
    except SourceError as exc:
        notes.append(str(exc))
    outcome = outcome_of(
        deployment, alarms, pretraffic=pretraffic, gate=gate, judge=judge, has_gate=bool(gates)
    )
    if gate is not None:
        gate = {**gate, "report": checked(gate.get("report"))}
    return CanaryReport(
        generated_at=now,
        source="aws",
        stack=stack,
        environment=environment,
        region=region,
        outcome=outcome,
        deployment=deployment,
        pretraffic=pretraffic,
        alarms=tuple(alarms),
        judge=checked(judge),
        gate=gate,
        notes=tuple(notes),
    )


def _gate_of(deployment: dict[str, Any] | None, record: dict[str, Any] | None) -> dict[str, Any] | None:
    """The gate's record as the report's "gate", when it is this deployment's (a gate that could not
    find its window logs no window: it is taken as this deployment's, having run in its time span)."""
    gate = gate_from_record(record)
    logged_for = ((gate or {}).get("window") or {}).get("deployment_id")
    if gate and deployment and logged_for and logged_for != deployment.get("id"):
        return None
    return gate


def has_credentials(session: Any) -> bool:
    try:
        return session.get_credentials() is not None
    except Exception:  # a broken profile is as good as none for this purpose
        return False


def main(argv: list[str] | None = None, *, session_factory: Callable[..., Any] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m canary.report", description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="dev", help="samconfig.toml environment (default dev)")
    parser.add_argument("--stack", help="stack name (default: samconfig.toml's for --env)")
    parser.add_argument("--region", help="AWS region (default: samconfig.toml's, else the AWS config)")
    parser.add_argument("--hours", type=float, default=6.0, help="how far back to look (default 6)")
    parser.add_argument("--json", action="store_true", help="print the report dict as JSON")
    parser.add_argument(
        "--html", type=Path, metavar="PATH", help="also write the report as one self-contained HTML page"
    )
    args = parser.parse_args(argv)
    try:
        if args.html is not None:
            check_writable(args.html)
    except OSError as exc:
        print(f"error: --html {args.html}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:
        stack, region = (args.stack, args.region) if args.stack else stack_from_samconfig(args.env)
        region = args.region or region
        if session_factory is None:
            import boto3

            session_factory = boto3.Session
        session = session_factory(region_name=region)
        if not has_credentials(session):
            raise ReportError(NO_CREDENTIALS)
        report = collect_report(
            stack,
            cloudformation=session.client("cloudformation"),
            cloudwatch=session.client("cloudwatch"),
            codedeploy=session.client("codedeploy"),
            logs=session.client("logs"),
            environment=args.env,
            region=session.region_name,
            hours=args.hours,
        ).to_dict()
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # botocore errors: one line for on-call, not a traceback
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2, default=str) if args.json else render_report(report), end="")
    if args.json:
        print()
    if args.html is not None:
        args.html.write_text(render_html(report), encoding="utf-8")
        print(f"HTML report: {args.html.resolve()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
