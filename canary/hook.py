"""The PreTraffic hook: handler `canary.hook.lambda_handler`, run by CodeDeploy before any user
request reaches the new version.

It sends the golden set (golden.jsonl, built from the test split at `sam build`) to the new
version as API Gateway proxy events, then checks: the artifacts it ships verify against their
manifest (sha256), no golden request fails (a model whose files failed their checksum answers
500 to everything), the answers come from the expected model, accuracy reaches the manifest's
accuracy_floor, the label mix matches manifest["golden"]["label_distribution"] (the same
texts through the same model must give the same labels), and the median round trip is sane.

Whatever happens (a failed check, a missing file, an exception, the clock running out) it
reports Succeeded or Failed with put_lifecycle_event_hook_execution_status: CodeDeploy is
never left waiting. The checking core, run_pretraffic, takes an `invoke` callable, so the
local stack runs this same code against its own function processes.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger

from canary.config import HookConfig
from canary.records import LABELS
from canary.sources import HOOK_LOG_MESSAGE, PRETRAFFIC_REQUEST_PREFIX
from canary.stats import median

# An API Gateway proxy event in, the proxy response ({"statusCode", "headers", "body"}) out.
Invoke = Callable[[dict[str, Any]], Mapping[str, Any]]

SUCCEEDED, FAILED = "Succeeded", "Failed"
logger = Logger(service="canary-pretraffic")


class HookError(RuntimeError):
    """The hook cannot check the new version (missing golden set, unreadable manifest, ...)."""


@dataclass(frozen=True)
class GoldenRow:
    """One golden text and its true label."""

    text: str
    label: str


@dataclass(frozen=True)
class Answer:
    """What the new version answered to one golden request."""

    status: int | None  # HTTP status; None when nothing came back
    label: str | None
    model_version: str | None  # the X-Model-Version header
    latency_ms: float
    error: str | None = None  # why the request counts as failed


@dataclass(frozen=True)
class Check:
    """One pre-traffic check and its outcome."""

    name: str
    passed: bool
    observed: Any
    threshold: Any
    reason: str


@dataclass(frozen=True)
class HookResult:
    """All checks of one pre-traffic run."""

    checks: tuple[Check, ...]
    sent: int
    answered: int
    model_version: str | None
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def status(self) -> str:
        return SUCCEEDED if self.passed else FAILED

    @property
    def reason(self) -> str:
        failed = [c for c in self.checks if not c.passed]
        if not failed:
            return f"all {len(self.checks)} pre-traffic checks passed on {self.sent} golden requests"
        return "; ".join(f"{c.name}: {c.reason}" for c in failed)

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reason": self.reason,
            "sent": self.sent,
            "answered": self.answered,
            "model_version": self.model_version,
            "checks": [asdict(c) for c in self.checks],
            "details": dict(self.details),
        }


def load_golden(path: str | Path) -> list[GoldenRow]:
    """The golden set: JSON lines {"text": ..., "label": <one of LABELS>}."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise HookError(
            f"{path}: golden set missing (built by `python -m training.golden` at sam build)"
        ) from None
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            row = GoldenRow(text=str(data["text"]), label=str(data["label"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise HookError(f"{path}:{number}: not a golden row ({exc.__class__.__name__})") from None
        if row.label not in LABELS:
            raise HookError(f"{path}:{number}: label {row.label!r} is not one of {LABELS}")
        rows.append(row)
    if not rows:
        raise HookError(f"{path}: golden set is empty")
    return rows


def verify_artifacts(models_dir: Path, version: str) -> tuple[Check, dict[str, Any] | None]:
    """sha256 of every file the model's manifest lists (infer.artifacts), and the manifest."""
    from infer.artifacts import ArtifactDir, ArtifactError

    try:
        art = ArtifactDir(models_dir / version)
    except ArtifactError as exc:
        return Check("artifacts", False, str(exc), "every file matches its sha256", f"{exc}"), None
    files = len(art.manifest.get("files") or {})
    return (
        Check(
            "artifacts",
            True,
            f"{files} files verified",
            "every file matches its sha256",
            f"{files} files match",
        ),
        art.manifest,
    )


def golden_event(text: str, index: int, config: HookConfig, run_id: str) -> dict[str, Any]:
    """The API Gateway REST proxy event for one golden request. Its request id starts with
    "pretraffic-" so the judge leaves these requests out of the live comparison."""
    request_id = f"{PRETRAFFIC_REQUEST_PREFIX}{run_id}-{index}"
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "X-Canary-Check": "pretraffic",
    }
    return {
        "resource": config.api_path,
        "path": config.api_path,
        "httpMethod": "POST",
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "httpMethod": "POST",
            "path": f"/{config.api_stage}{config.api_path}",
            "resourcePath": config.api_path,
            "stage": config.api_stage,
            "requestId": request_id,
            "identity": {"sourceIp": "127.0.0.1", "userAgent": "canary-pretraffic"},
        },
        "body": json.dumps({"text": text}, ensure_ascii=False),
        "isBase64Encoded": False,
    }


def response_header(response: Mapping[str, Any], name: str) -> str | None:
    """A header of a proxy response, from "headers" or "multiValueHeaders" (Powertools' REST
    resolver answers with the latter only), case-insensitively."""
    wanted = name.lower()
    for key, value in (response.get("headers") or {}).items():
        if str(key).lower() == wanted:
            return str(value)
    for key, values in (response.get("multiValueHeaders") or {}).items():
        if str(key).lower() == wanted and values:
            return str(values[-1])
    return None


def _ask(invoke: Invoke, event: dict[str, Any], deadline: float | None, clock: Callable[[], float]) -> Answer:
    if deadline is not None and clock() >= deadline:
        return Answer(None, None, None, 0.0, error="not sent: out of time")
    started = clock()
    try:
        response = invoke(event)
    except Exception as exc:  # a failed invoke is a failed golden request, not a hook crash
        return Answer(
            None, None, None, (clock() - started) * 1000.0, error=f"invoke failed: {type(exc).__name__}"
        )
    elapsed = (clock() - started) * 1000.0
    status = response.get("statusCode")
    version = response_header(response, "X-Model-Version")
    if response.get("error"):
        return Answer(status, None, version, elapsed, error=str(response["error"]))
    if status != 200:
        return Answer(status, None, version, elapsed, error=f"HTTP {status}")
    try:
        body = json.loads(response.get("body") or "")
        label = body["label"]
    except (ValueError, KeyError, TypeError):
        return Answer(status, None, version, elapsed, error="200 without a label in a JSON body")
    if label not in LABELS:
        return Answer(status, None, version, elapsed, error="label not one of the API's labels")
    return Answer(status, label, version, elapsed)


def check_answers(
    golden: Sequence[GoldenRow],
    answers: Sequence[Answer],
    manifest: Mapping[str, Any] | None,
    config: HookConfig,
    expected_version: str | None,
) -> list[Check]:
    """The checks on what the new version answered (pure)."""
    n = len(golden)
    failed = [a for a in answers if a.error]
    answered = [(g, a) for g, a in zip(golden, answers, strict=True) if not a.error]
    checks = []

    error_rate = len(failed) / n
    first = failed[0].error if failed else None
    hint = (
        " (a model that failed to load, e.g. a bad checksum, answers 500 to every request)" if failed else ""
    )
    checks.append(
        Check(
            "errors",
            error_rate <= config.max_error_rate,
            f"{len(failed)}/{n} failed" + (f", first: {first}" if first else ""),
            f"<= {config.max_error_rate:.1%}",
            f"{len(failed)} of {n} golden requests failed{hint}" if failed else f"all {n} answered 200",
        )
    )

    served = Counter(a.model_version for _, a in answered)
    if expected_version is None:
        checks.append(Check("model version", False, dict(served), None, "no expected model version"))
    else:
        wrong = {v: k for v, k in served.items() if v != expected_version}
        checks.append(
            Check(
                "model version",
                not wrong,
                dict(served),
                expected_version,
                f"answers came from {sorted(map(str, wrong))}, expected {expected_version}"
                if wrong
                else f"every answer came from {expected_version}",
            )
        )

    if manifest is None:
        checks.append(Check("accuracy", False, None, None, "no manifest to read accuracy_floor from"))
        checks.append(Check("label distribution", False, None, None, "no manifest golden distribution"))
    else:
        floor = float(manifest.get("accuracy_floor", 1.0))
        correct = sum(1 for g, a in answered if a.label == g.label)
        accuracy = correct / n  # failed requests count as wrong
        checks.append(
            Check(
                "accuracy",
                accuracy >= floor,
                round(accuracy, 4),
                floor,
                f"{correct}/{n} correct = {accuracy:.3f} {_cmp(accuracy >= floor)} floor {floor:.3f}",
            )
        )
        expected = (manifest.get("golden") or {}).get("label_distribution") or {}
        observed_counts = Counter(a.label for _, a in answered)
        total = sum(observed_counts.values())
        if not expected or not total:
            checks.append(Check("label distribution", False, None, None, "nothing to compare"))
        else:
            shares = {k: observed_counts.get(k, 0) / total for k in LABELS}
            tvd = 0.5 * sum(abs(shares[k] - float(expected.get(k, 0.0))) for k in LABELS)
            checks.append(
                Check(
                    "label distribution",
                    tvd <= config.max_label_tvd,
                    {k: round(v, 4) for k, v in shares.items()},
                    {"expected": expected, "max_tvd": config.max_label_tvd},
                    f"total variation distance {tvd:.3f} "
                    f"{_cmp(tvd <= config.max_label_tvd, '<=', '>')} {config.max_label_tvd:.3f}",
                )
            )

    latencies = sorted(a.latency_ms for _, a in answered)
    if latencies:
        med = median(latencies)
        checks.append(
            Check(
                "latency",
                med <= config.max_median_ms,
                round(med, 1),
                config.max_median_ms,
                f"median round trip {med:.1f} ms {'<=' if med <= config.max_median_ms else '>'} "
                f"{config.max_median_ms:g} ms",
            )
        )
    else:
        checks.append(Check("latency", False, None, config.max_median_ms, "no answer to time"))
    return checks


def _cmp(ok: bool, yes: str = ">=", no: str = "<") -> str:
    return yes if ok else no


def run_pretraffic(
    config: HookConfig,
    invoke: Invoke,
    *,
    run_id: str = "local",
    deadline: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> HookResult:
    """Check the new version through `invoke`; never raises for a bad version, only for a hook
    that cannot run (HookError and the like: the caller reports Failed).

    `deadline` is a clock() value after which no more golden requests are sent.
    """
    golden = load_golden(config.golden_path)
    expected_version = config.model_version
    artifacts, manifest = (
        verify_artifacts(config.models_dir, expected_version)
        if expected_version
        else (Check("artifacts", False, None, None, "MODEL_VERSION unset: nothing to verify"), None)
    )
    checks = [artifacts]
    golden_n = (manifest or {}).get("golden", {}).get("n")
    checks.append(
        Check(
            "golden set",
            golden_n in (None, len(golden)),
            len(golden),
            golden_n,
            f"{len(golden)} rows"
            + ("" if golden_n in (None, len(golden)) else f" but the manifest's are {golden_n}"),
        )
    )
    events = [golden_event(row.text, i, config, run_id) for i, row in enumerate(golden)]
    with ThreadPoolExecutor(max_workers=config.concurrency) as pool:
        answers = list(pool.map(lambda e: _ask(invoke, e, deadline, clock), events))
    unsent = sum(1 for a in answers if a.error == "not sent: out of time")
    if unsent:
        checks.append(
            Check(
                "time",
                False,
                f"{len(golden) - unsent}/{len(golden)} sent",
                "all",
                "ran out of time before the end",
            )
        )
    checks += check_answers(golden, answers, manifest, config, expected_version)
    return HookResult(
        checks=tuple(checks),
        sent=len(golden) - unsent,
        answered=sum(1 for a in answers if not a.error),
        model_version=expected_version,
        details={"new_version_arn": config.new_version_arn},
    )


def lambda_invoker(lambda_client: Any, qualified_arn: str) -> Invoke:
    """An Invoke that calls the new version synchronously (lambda invoke RequestResponse)."""
    expected = qualified_arn.rsplit(":", 1)[-1]

    def invoke(event: dict[str, Any]) -> Mapping[str, Any]:
        response = lambda_client.invoke(
            FunctionName=qualified_arn, InvocationType="RequestResponse", Payload=json.dumps(event).encode()
        )
        payload = response["Payload"].read()
        if response.get("FunctionError"):
            return {
                "statusCode": None,
                "headers": {},
                "body": "",
                "error": f"function error {response['FunctionError']}",
            }
        executed = response.get("ExecutedVersion")
        if executed is not None and executed != expected:
            return {"statusCode": None, "headers": {}, "body": "", "error": f"ran version {executed}"}
        return json.loads(payload)

    return invoke


def report_status(codedeploy: Any, deployment_id: str, execution_id: str, status: str) -> None:
    codedeploy.put_lifecycle_event_hook_execution_status(
        deploymentId=deployment_id, lifecycleEventHookExecutionId=execution_id, status=status
    )


def handle(
    event: Mapping[str, Any],
    *,
    codedeploy: Any,
    lambda_client: Any,
    environ: Mapping[str, str] | None = None,
    remaining_ms: Callable[[], int] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """The hook's whole job for one CodeDeploy event; reports Failed on any exception."""
    deployment_id = event.get("DeploymentId")
    execution_id = event.get("LifecycleEventHookExecutionId")
    if not deployment_id or not execution_id:
        # Nothing to report to; CodeDeploy never sends such an event.
        logger.error("not a CodeDeploy lifecycle event: nothing to report")
        return {"status": FAILED, "reason": "event lacks DeploymentId or LifecycleEventHookExecutionId"}
    status, reason, result = FAILED, "hook did not finish", None
    try:
        config = HookConfig.from_env(environ)
        deadline = None
        if remaining_ms is not None:
            deadline = clock() + remaining_ms() / 1000.0 - config.time_margin_s
        result = run_pretraffic(
            config,
            lambda_invoker(lambda_client, config.new_version_arn),
            run_id=str(deployment_id),
            deadline=deadline,
            clock=clock,
        )
        status, reason = result.status, result.reason
    except Exception as exc:
        status, reason = FAILED, f"hook crashed: {type(exc).__name__}: {exc}"
        logger.exception("pre-traffic hook crashed: reporting Failed")
    finally:
        report_status(codedeploy, str(deployment_id), str(execution_id), status)
    logger.info(
        HOOK_LOG_MESSAGE,
        extra={"status": status, "reason": reason, "result": result.as_dict() if result else None},
    )
    return {"status": status, "reason": reason}


_CLIENTS: dict[str, Any] = {}


def _client(name: str) -> Any:
    if name not in _CLIENTS:
        import boto3
        from botocore.config import Config

        # Bounded waits: a hung invoke must not outlive the hook, which still has to report.
        _CLIENTS[name] = boto3.client(name, config=Config(read_timeout=30, retries={"mode": "standard"}))
    return _CLIENTS[name]


@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle(
        event,
        codedeploy=_client("codedeploy"),
        lambda_client=_client("lambda"),
        remaining_ms=getattr(context, "get_remaining_time_in_millis", None),
    )
