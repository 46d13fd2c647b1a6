"""The canary window of a rehearsal (issue 10): the probe, the evidence judge's looks, the gate.

    ProbeRun        during the window, the REAL probe core (canary.probe.run_probe) sends each
                    probe text to BOTH function versions, straight to their execution environments
                    (no gateway, key or quota), at the plan's rate on the controller's compressed
                    clock; every answer's log record goes to the store like any other (log lag)
    EvidenceWindow  the store's records, as canary.sources reads them from CloudWatch Logs (live
                    requests as counts, live latency percentiles, the probe's records: WindowRecords),
                    through the same code as the scheduled judge and the gate
                    (WindowRecords.from_records, window_evidence, judge_evidence for the interim
                    looks; the gate's own core, canary.gate.judge_window: its wait for late records
                    on the compressed clock, the final look, gate_decision)

The probe set and the known answers are the ones `sam build` ships: training.golden writes the
probe set next to the golden set, each model's answers.json holds its labels (canary.probe).
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from canary import evidence
from canary.probe import expected_labels, run_probe
from canary.records import RequestRecord
from canary.sources import SourceError, WindowRecords, window_evidence
from emulator.functions import request_record
from infer.sources import HOOK, LIVE, PROBE

PROBE_RUN_ID = "REHEARSAL"  # no "-": it separates the parts of a probe id


class JudgeCrashed(RuntimeError):
    """The judge raised (the `judge=crash` fault, or a real bug): no verdict at this look."""


def status_label(invocation: Any) -> tuple[int, str | None]:
    """The status a direct caller sees (a function error counts as 502, as API Gateway would say)
    and the answered label."""
    payload = invocation.payload
    if invocation.function_error is not None or not isinstance(payload, Mapping):
        return 502, None
    status = payload.get("statusCode")
    if not isinstance(status, int):
        return 502, None
    label = None
    if 200 <= status < 300:
        with contextlib.suppress(AttributeError, TypeError, ValueError):
            label = json.loads(payload.get("body") or "").get("label")
    return status, label if label in evidence.LABELS else None


def invoke_direct(
    version: Any, event: dict[str, Any], keep: Callable[[RequestRecord], Any]
) -> Mapping[str, Any]:
    """Invoke a FunctionVersion as `lambda invoke` on its qualified ARN would (the hook, the probe):
    its log record goes to `keep` (for the store, as the function's logs hold it). Returns what the
    direct caller sees: the proxy response, or, for a function error, a response with no status and
    the error named. An InvokeError propagates."""
    invocation = version.invoke_detailed(event)
    status, label = status_label(invocation)
    keep(request_record(version, invocation, status, label, time.time(), event))
    payload = invocation.payload
    if isinstance(payload, Mapping) and "statusCode" not in payload and "errorType" in payload:
        return {
            "statusCode": None,
            "headers": {},
            "body": "",
            "error": f"function error {payload['errorType']}",
        }
    return payload


# --------------------------------------------------------------------------- the probe


@dataclass
class ProbeRun:
    """canary.probe.run_probe over the canary window, in its own thread, with an invoke that calls
    the two execution environments directly and stores each answer's log record."""

    versions: Mapping[str, Any]  # function version -> FunctionVersion
    texts: Sequence[Any]  # canary.probe.ProbeText
    baseline: str  # function versions
    canary: str
    rate: float  # probe texts per simulated second (each to both versions)
    duration_s: float  # simulated seconds
    clock: Callable[[], float]  # the controller's compressed clock (simulated seconds)
    speed: float
    sink: Callable[[list[RequestRecord]], Any]  # the store's extend
    answers: int = 0  # invocations finished (either version), answered or failed
    result: Any = None  # canary.probe.ProbeResult once it ended
    failure: str | None = None
    began: float | None = None  # compressed time the schedule starts at (start())
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _pending: list[RequestRecord] = field(default_factory=list)
    _flushed: float = 0.0
    _thread: threading.Thread | None = None

    def outcomes(self) -> int:
        """Probe texts finished by both versions so far (answered or failed)."""
        return self.answers // 2

    def due_by(self, sim: float) -> int:
        """Probe texts the schedule sends by compressed time `sim` (run_probe's: text k at
        began + k / rate, while k / rate < duration_s): what the controller's minute ending at
        `sim` waits for. Rounded down at the edges: planning one text too few costs a pair, one
        too many would hold the minute for a text the stopped clock never makes due. Once the run
        is over (ended, stopped or broken down) no more will come: what it finished."""
        if self.result is not None or self.failure is not None:
            return self.outcomes()
        if self.began is None:
            return 0
        due = math.floor((sim - self.began) * self.rate - 1e-6) + 1
        return max(0, min(due, math.ceil(self.duration_s * self.rate - 1e-6)))

    def start(self) -> ProbeRun:
        self.began = self.clock()
        self._thread = threading.Thread(target=self._run, name="probe", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30.0)
        self._flush(force=True)
        r = self.result
        return {
            "texts": r.texts if r else self.outcomes(),
            "answered": dict(r.answered) if r else {},
            "failed": dict(r.failed) if r else {},
            "stopped": r.stopped if r else (self.failure or "stopped"),
            "failure": self.failure,
        }

    def _run(self) -> None:
        try:
            self.result = run_probe(
                self._invoke,
                self.texts,
                self.baseline,
                self.canary,
                rate=self.rate,
                duration_s=self.duration_s,
                run_id=PROBE_RUN_ID,
                clock=self.clock,
                began=self.began,
                sleep=lambda s: self._stop.wait(max(0.0, s) / self.speed),
                keep_going=lambda: not self._stop.is_set(),
            )
        except Exception as exc:  # a probe that dies leaves the gate short of evidence: never a pass
            self.failure = f"{type(exc).__name__}: {exc}"

    def _invoke(self, version: str, event: dict[str, Any]) -> Mapping[str, Any]:
        # An InvokeError is run_probe's failed answer; it leaves no record but still counts as
        # finished, or the controller would hold its minute for a pair that will never come.
        try:
            return invoke_direct(self.versions[version], event, self._keep)
        finally:
            with self._lock:
                self.answers += 1
            self._flush()

    def _keep(self, record: RequestRecord) -> None:
        with self._lock:
            self._pending.append(record)

    def _flush(self, force: bool = False) -> None:
        with self._lock:
            if not self._pending or (not force and time.monotonic() - self._flushed < 0.25):
                return
            batch, self._pending, self._flushed = self._pending, [], time.monotonic()
        self.sink(batch)


# --------------------------------------------------------------------------- records as the judge reads them


def counts_by_source(records: Sequence[RequestRecord]) -> dict[str, dict[str, int]]:
    """n per function version per source (live, probe, hook)."""
    out: dict[str, dict[str, int]] = {}
    for r in records:
        side = out.setdefault(r.function_version, {LIVE: 0, PROBE: 0, HOOK: 0})
        side[r.source] = side.get(r.source, 0) + 1
    return out


# --------------------------------------------------------------------------- the judge and the gate


@dataclass
class EvidenceWindow:
    """The evidence judge and the PostTraffic gate over one deployment's canary window."""

    baseline_version: str  # function versions
    canary_version: str
    known_answers: Mapping[str, Mapping[str, str]]  # canary.probe.load_known_answers
    gate_config: Any  # canary.config.GateConfig (the template's gate function environment)
    gate_timeout_s: float = 900.0  # the gate function's Timeout
    config: evidence.EvidenceConfig = field(default_factory=evidence.EvidenceConfig)
    crash: bool = False  # the `judge=crash` fault: every look raises
    # The canary/baseline handler-latency ratio the PreTraffic hook measured on these two versions
    # (the judge and the gate read it from the hook's log record): the latency metric's reference.
    latency_reference: float | None = None

    def _crash_if_injected(self) -> None:
        if self.crash:
            raise JudgeCrashed("injected fault judge=crash: the judge raised before judging")

    def look(self, records: Sequence[RequestRecord], since: float, until: float, elapsed_s: float) -> Any:
        """An interim look at the records visible now: the report, or None when a version has no
        visible record yet (the scheduled judge then publishes nothing). JudgeCrashed when it raises."""
        try:
            window = WindowRecords.from_records(records, since, until)
            self._crash_if_injected()
            ev = window_evidence(
                window,
                baseline_version=self.baseline_version,
                canary_version=self.canary_version,
                expected=expected_labels(self.known_answers),
            )
            return evidence.judge_evidence(
                ev,
                expected_latency_ratio=self.latency_reference,
                elapsed_s=elapsed_s,
                final=False,
                config=self.config,
            )
        except SourceError:
            return None
        except JudgeCrashed:
            raise
        except Exception as exc:
            raise JudgeCrashed(f"{type(exc).__name__}: {exc}") from exc

    def gate(
        self,
        read: Callable[[], Sequence[RequestRecord]],
        *,
        since: float,
        until: float,
        window_end: float,
        window_s: float,
        now: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> tuple[evidence.GateDecision, evidence.EvidenceReport | None, bool]:
        """The PostTraffic gate (canary.gate.judge_window with the store as the logs): wait for the
        window's records on the compressed clock (`window_end`, now() and sleep() in simulated
        seconds), judge the whole window (final look), PASS or Failed. (decision, report, complete)."""
        from canary.gate import judge_window

        def reference() -> tuple[float | None, str | None]:
            self._crash_if_injected()  # where the judge starts: after the wait, before the evidence is read
            return self.latency_reference, None

        deadline = now() + self.gate_timeout_s - self.gate_config.time_margin_s
        try:
            outcome = judge_window(
                lambda: WindowRecords.from_records(read(), since, until),
                reference,
                baseline_version=self.baseline_version,
                canary_version=self.canary_version,
                window_end=window_end,
                elapsed_s=window_s,
                expected=expected_labels(self.known_answers),
                config=self.gate_config,
                deadline=deadline,
                now=now,
                sleep=sleep,
                evidence_config=self.config,
            )
        except GateInterrupted:
            raise
        except Exception as exc:  # canary.gate.handle: any exception is Failed, with the reason
            reason = f"gate could not judge the canary: {type(exc).__name__}: {exc}"
            return evidence.GateDecision(False, reason), None, False
        return outcome.decision, outcome.report, outcome.complete


class GateInterrupted(RuntimeError):
    """The deployment ended while the gate waited (an alarm, a stop): no gate decision."""
