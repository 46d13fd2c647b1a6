"""The synthetic probe (issue 10): handler `canary.probe.lambda_handler`, scheduled every minute.

While a canary runs (the `live` alias has an additional version weight), it sends texts with
known answers straight to BOTH function versions, one text to both at the same moment under one
probe id, so the evidence judge has paired answers at any live traffic, down to none at all. It
never goes through API Gateway: no key, no quota, no business metrics (the inference function
counts a request as a probe by its request id, "probe-<probe id>", see infer.sources).

The core, run_probe, takes an `invoke(version, event)` callable, a clock and a sleep, so the
local stack drives the same code against its own function processes.

Rate. evidence.plan() sizes the probe at 5 texts/s for the 300 s window (1,500 pairs, 1.15x the
1,270 requests the errors metric needs). A scheduled probe loses up to one schedule period at the
start of the canary (it starts at the first run after the shift) and the gap between runs
(`run_seconds` of every 60 s), so it sends faster: evidence.scheduled_rate() = that need over the worst
case's probing seconds, (300 - 60) x 55/60 = 220 s -> 7 texts/s.

Latency. Each answer carries the handler's own time in the X-Handler-Latency-Ms header (infer.app
sets it on probe and hook requests only); the run reports each version's median of it, as a
summary for on-call. The judge does not read it from here: its one source of the probe's
latencies is the inference function's log records (latency_ms, the very number the header
carries), which it reads with the labels and statuses of the same requests; a second path
through the probe's own record would have to be joined back to them and could disagree.

The probe set is built from the test split at `sam build` (training.golden writes probe.jsonl,
the union of every model's probe rows, next to the golden set; it is never committed): JSON lines
{"id": "<row id>", "text": "..."}. The label each model must give each row is in the model's
known answers, models/<version>/answers.json (load_known_answers). Texts are never logged.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger

from canary.config import ConfigError, ProbeConfig
from canary.evidence import LABELS, SCHEDULE_PERIOD_S, scheduled_rate
from canary.hook import direct_event, handler_ms
from canary.sources import aws_client, live_routing
from canary.stats import median
from infer.sources import PROBE_REQUEST_PREFIX

PROBE_LOG_MESSAGE = "probe run"
KNOWN_ANSWERS = "answers.json"  # models/<version>/answers.json (training/answers.py), named by the manifest
KNOWN_ANSWERS_FORMAT = "known-answers/1"
_ROW_ID = re.compile(r"^[A-Za-z0-9_.]{1,64}$")  # no "-": it separates the parts of a probe id
# (function version, API Gateway proxy event) -> the proxy response
Invoke = Callable[[str, dict[str, Any]], Mapping[str, Any]]

logger = Logger(service="canary-probe")


class ProbeError(RuntimeError):
    """The probe cannot run (missing or malformed probe set, unreadable known answers)."""


@dataclass(frozen=True)
class ProbeText:
    """One text of the probe set."""

    row_id: str
    text: str


@dataclass(frozen=True)
class ProbeResult:
    """What one probe run did (counts only: texts are never logged)."""

    run_id: str
    baseline_version: str
    canary_version: str
    texts: int  # probe texts sent (each to both versions)
    answered: Mapping[str, int]  # version -> 200 answers with a label
    failed: Mapping[str, int]  # version -> anything else (5xx, invoke error, no label)
    seconds: float
    stopped: str  # why the run ended
    # version -> median X-Handler-Latency-Ms of its answered requests (None: no header seen);
    # a summary: the judge reads each request's latency_ms from the logs
    handler_ms_p50: Mapping[str, float | None] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def probe_request_id(run_id: str, row_id: str, seq: int) -> str:
    """The request id of one probe send: "probe-<run>-<row id>-<seq>" (the same for both versions)."""
    return f"{PROBE_REQUEST_PREFIX}{run_id}-{row_id}-{seq}"


def probe_text_id(probe_id: str) -> str:
    """The probe set row a probe id ("<run>-<row id>-<seq>", the request id after "probe-") names."""
    parts = probe_id.rsplit("-", 2)
    if len(parts) != 3 or not parts[1]:
        raise ValueError(f"{probe_id!r} is not a probe id <run>-<row id>-<seq>")
    return parts[1]


def load_probe_set(path: str | Path) -> list[ProbeText]:
    """The probe set: JSON lines {"id": "<row id>", "text": "..."}; row ids unique, without "-"."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ProbeError(f"{path}: probe set missing (built with the golden set at sam build)") from None
    rows, seen = [], set()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            row = ProbeText(row_id=str(data["id"]), text=str(data["text"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ProbeError(f"{path}:{number}: not a probe row ({exc.__class__.__name__})") from None
        if not _ROW_ID.match(row.row_id) or row.row_id in seen:
            raise ProbeError(f"{path}:{number}: id {row.row_id!r} is repeated or not [A-Za-z0-9_.]")
        seen.add(row.row_id)
        rows.append(row)
    if not rows:
        raise ProbeError(f"{path}: probe set is empty")
    return rows


def load_known_answers(models_dir: str | Path) -> dict[str, dict[str, str]]:
    """model -> row id -> the label that model gave the text: each models_dir/<version>/manifest.json's
    known_answers file (training/answers.py, format known-answers/1: row_ids, labels, and answers,
    one digit per row indexing labels). A model without one has no known answers (its probe answers
    cannot be checked and the judge leaves them out: probe_agreement then lacks evidence)."""
    out: dict[str, dict[str, str]] = {}
    for manifest_path in sorted(Path(models_dir).glob("*/manifest.json")):
        try:
            manifest = json.loads(manifest_path.read_bytes())
            entry = manifest.get("known_answers")
            if not entry:
                continue
            path = manifest_path.parent / str(entry.get("file") or KNOWN_ANSWERS)
            doc = json.loads(path.read_bytes())
            out[str(manifest["version"])] = _labels_by_row(doc)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ProbeError(f"{manifest_path.parent}: unreadable known answers ({exc})") from None
    return out


def _labels_by_row(doc: Mapping[str, Any]) -> dict[str, str]:
    """{row id: label} of a known-answers/1 document (ValueError if it is not one)."""
    if doc.get("format") != KNOWN_ANSWERS_FORMAT:
        raise ValueError(f"not a {KNOWN_ANSWERS_FORMAT} document")
    row_ids, labels, answers = doc["row_ids"], doc["labels"], doc["answers"]
    if len(row_ids) != len(answers) or any(label not in LABELS for label in labels):
        raise ValueError("row_ids and answers differ in length, or a label is not the API's")
    return {str(r): labels[int(a)] for r, a in zip(row_ids, answers, strict=True)}


def expected_labels(answers: Mapping[str, Mapping[str, str]]) -> Callable[[str, str], str | None]:
    """(served model, probe id) -> the known answer, None when unknown (canary.sources.ExpectedLabel)."""

    def expected(model: str, probe_id: str) -> str | None:
        try:
            row = probe_text_id(probe_id)
        except ValueError:
            return None
        return (answers.get(model) or {}).get(row)

    return expected


def probe_event(text: str, request_id: str, api_path: str, api_stage: str) -> dict[str, Any]:
    """The API Gateway REST proxy event of one probe send (canary.hook.direct_event)."""
    return direct_event(text, request_id, api_path, api_stage, check="probe")


def _answered(response: Mapping[str, Any]) -> tuple[bool, float | None]:
    """(a 200 with one of the API's labels, the handler's ms from its header or None)."""
    if response.get("error") or response.get("statusCode") != 200:
        return False, None
    try:
        ok = json.loads(response.get("body") or "")["label"] in LABELS
    except (ValueError, KeyError, TypeError):
        return False, None
    return ok, handler_ms(response) if ok else None


def run_probe(
    invoke: Invoke,
    texts: Sequence[ProbeText],
    baseline_version: str,
    canary_version: str,
    *,
    rate: float,
    duration_s: float,
    run_id: str,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    keep_going: Callable[[], bool] | None = None,
    start: int = 0,
    began: float | None = None,
    api_path: str = "/infer/hate-speech",
    api_stage: str = "v1",
) -> ProbeResult:
    """Send texts[start:] (cycling) at `rate` texts/s for `duration_s`, each to both versions at
    once under one probe id. `keep_going`, asked about every 10 s and whenever a sleep ends before
    the next text is due, stops the run early (e.g. the canary ended). Text k is due at
    began + k / rate on `clock` (`began`: now, unless a caller pacing itself on the schedule fixed
    it). A failed invoke is a failed answer, never a crash."""
    if not texts:
        raise ProbeError("no probe texts")
    if not (rate > 0 and "-" not in run_id and run_id):
        raise ProbeError(f"rate must be > 0 and run id non-empty without '-', got {rate}, {run_id!r}")
    answered: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    timed: dict[str, list[float]] = {baseline_version: [], canary_version: []}
    began = clock() if began is None else began
    sent, stopped, checked = 0, "duration reached", clock()

    def ask(version: str, event: dict[str, Any]) -> tuple[str, bool, float | None]:
        try:
            return version, *_answered(invoke(version, event))
        except Exception:  # an invoke that fails is a failed answer: the judge counts it
            return version, False, None

    with ThreadPoolExecutor(max_workers=2) as pool:
        while True:
            due = began + sent / rate
            now = clock()
            if due - began >= duration_s:
                break
            if keep_going is not None and now - checked >= 10.0:
                checked = now
                if not keep_going():
                    stopped = "canary no longer running"
                    break
            if due > now:
                sleep(due - now)
                if clock() < due:  # the sleep ended early (a clock that paused, a stop): not due yet
                    if keep_going is not None and not keep_going():
                        stopped = "canary no longer running"
                        break
                    continue
            row = texts[(start + sent) % len(texts)]
            rid = probe_request_id(run_id, row.row_id, sent)
            events = [
                (v, probe_event(row.text, rid, api_path, api_stage))
                for v in (baseline_version, canary_version)
            ]
            for version, ok, ms in pool.map(lambda pair: ask(*pair), events):
                (answered if ok else failed)[version] += 1
                if ms is not None:
                    timed[version].append(ms)
            sent += 1
    return ProbeResult(
        run_id=run_id,
        baseline_version=baseline_version,
        canary_version=canary_version,
        texts=sent,
        answered=dict(answered),
        failed=dict(failed),
        seconds=clock() - began,
        stopped=stopped,
        handler_ms_p50={v: round(median(sorted(ms)), 4) if ms else None for v, ms in timed.items()},
    )


def lambda_invoke(lambda_client: Any, function_name: str) -> Invoke:
    """An Invoke that calls function_name:<version> synchronously (never the alias, never the API)."""
    from canary.hook import lambda_invoker

    invokers: dict[str, Any] = {}

    def invoke(version: str, event: dict[str, Any]) -> Mapping[str, Any]:
        if version not in invokers:
            invokers[version] = lambda_invoker(lambda_client, f"{function_name}:{version}")
        return invokers[version](event)

    return invoke


def handle(
    *,
    lambda_client: Any,
    config: ProbeConfig,
    run_id: str,
    remaining_ms: Callable[[], int] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """One scheduled run: idle without a canary, else probe both versions for ~run_seconds."""
    routing = live_routing(lambda_client, config.function_name, config.alias)
    if not routing.canary_running:
        return {"status": "idle", "baseline_version": routing.baseline_version}
    assert routing.canary_version is not None
    texts = load_probe_set(config.probe_set_path)
    duration = config.run_seconds
    if remaining_ms is not None:
        duration = min(duration, remaining_ms() / 1000.0 - config.time_margin_s)

    def keep_going() -> bool:
        now = live_routing(lambda_client, config.function_name, config.alias)
        return now.canary_running and now.canary_version == routing.canary_version

    result = run_probe(
        lambda_invoke(lambda_client, config.function_name),
        texts,
        routing.baseline_version,
        routing.canary_version,
        rate=config.rate or scheduled_rate(run_seconds=config.run_seconds),
        duration_s=max(duration, 0.0),
        run_id=run_id,
        clock=clock,
        sleep=sleep,
        keep_going=keep_going,
        start=int(time.time() // SCHEDULE_PERIOD_S) * 97 % len(texts),  # each minute from another row
        api_path=config.api_path,
        api_stage=config.api_stage,
    )
    logger.info(PROBE_LOG_MESSAGE, extra={"result": result.as_dict()})
    return {"status": "probed", **result.as_dict()}


def _client(name: str) -> Any:
    return aws_client(name, read_timeout=15)  # a hung invoke must not outlive the run


@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        config = ProbeConfig.from_env()
        return handle(
            lambda_client=_client("lambda"),
            config=config,
            run_id=str(getattr(context, "aws_request_id", "") or "local").replace("-", "")[:16],
            remaining_ms=getattr(context, "get_remaining_time_in_millis", None),
        )
    except (ConfigError, ProbeError) as exc:
        # No probe means the gate finds too little evidence and fails the deployment: say why here.
        logger.error("probe cannot run", extra={"reason": str(exc)})
        return {"status": "error", "reason": str(exc)}
