"""The local deployment controller: what CodeDeploy does with the template's DeploymentPreference,
on a compressed clock, one step per tick over a closed list of phases (Phase), as Flagger runs its
analysis: `step()` makes at most one phase transition or one evaluation, `run()` steps until done.

    CREATED             `start`: the clock starts
    PRE_TRAFFIC         BeforeAllowTraffic: the REAL PreTraffic hook core (canary.hook.run_pretraffic)
                        checks the new version through an invoke that calls its FunctionVersion
                        directly; Failed blocks the deployment (BLOCKED) before any user request
                        reaches it
    SHIFTING            AllowTraffic, step by step: a tick shifts the alias to the step's share (10 %
                        for 5 minutes under Canary10Percent5Minutes; Linear* steps up), then each tick
                        closes one compressed minute: the evidence judge's interim look over the
                        records VISIBLE by then (the store's log lag), then every alarm of
                        DeploymentPreference.Alarms over that minute's records as CloudWatch would
                        (period, EvaluationPeriods, DatapointsToAlarm, TreatMissingData); the first
                        ALARM rolls back (ROLLED_BACK: the alias goes back to 0 % at once)
    POST_TRAFFIC        AfterAllowTraffic: 100 % on the new version (AllAtOnce comes straight here);
                        the PostTraffic gate (emulator.window.EvidenceWindow.gate, the REAL gate
                        core) waits on the compressed clock until the window's records are all
                        visible (the lag's maximum after the window's end), a tick per compressed
                        minute (its alarms still watched), judges the whole window and promotes
                        (PROMOTED) only on PASS; anything else, a crashed judge included, rolls back
    ABORTED             with a `traffic` gauge: a generator that died or stalled, or a probe that
                        stalled, stops the deployment (back to 0 %): no verdict on missing evidence

One compressed minute lasts at least 60 / speed wall seconds. With a `traffic` gauge it also
lasts until the users' requests planned for it (rate x 60 / speed) and the probe's texts due by
its end have each been answered, so a slow or busy machine stretches the minute instead of
thinning its evidence: the compressed clock stops at the minute's end until both are in.
Request timestamps stay wall-clock epochs; the judge's window and each alarm period are mapped
from compressed time to the wall-clock spans the minutes really took, so they read the store as
they would read real records.
"""

from __future__ import annotations

import contextlib
import functools
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from canary.config import HookConfig
from canary.evidence import VERDICT_METRIC, VERDICT_VALUE, EvidenceReport
from canary.hook import HookError, HookResult, run_pretraffic
from canary.records import RequestRecord
from canary.render import short_names
from canary.stats import quantile
from emulator.store import LaggedStore
from emulator.window import GateInterrupted, JudgeCrashed, invoke_direct
from stack import AlarmSettings, Plan, Step


class Phase(StrEnum):
    """Where a deployment is: CodeDeploy's Lambda lifecycle, then how it ended (a closed list)."""

    CREATED = "created"
    PRE_TRAFFIC = "BeforeAllowTraffic"
    SHIFTING = "AllowTraffic"
    POST_TRAFFIC = "AfterAllowTraffic"
    # The outcomes (Deployment.outcome), same words as PROMOTED, ROLLED_BACK, BLOCKED, ABORTED.
    PROMOTED = "PROMOTED"
    ROLLED_BACK = "ROLLED BACK"
    BLOCKED = "BLOCKED"
    ABORTED = "ABORTED"


FINAL = frozenset({Phase.PROMOTED, Phase.ROLLED_BACK, Phase.BLOCKED, Phase.ABORTED})
# The outcomes by their names (Deployment.outcome; a StrEnum equals its string). ABORTED: stopped with
# no verdict, the evidence itself failed (the rehearsal's traffic died or stalled).
PROMOTED, ROLLED_BACK, BLOCKED, ABORTED = Phase.PROMOTED, Phase.ROLLED_BACK, Phase.BLOCKED, Phase.ABORTED

OK, ALARM, INSUFFICIENT = "OK", "ALARM", "INSUFFICIENT_DATA"
# Lambda counts a crash or a timeout as an Errors datapoint; API Gateway answers those 502 / 504.
# A 500 the handler chose to answer is no Lambda error (API 5XXError still counts it).
FUNCTION_ERROR_STATUSES = frozenset({502, 504})
HOOK_MIN_BUDGET_S = 60.0  # wall seconds the local PreTraffic hook gets at least

Event = dict[str, Any]


class Invocable(Protocol):
    """The part of emulator.functions.FunctionVersion the controller uses (the hook's requests go
    through emulator.window.invoke_direct)."""

    function_version: str
    model_version: str

    def invoke_detailed(self, event: dict[str, Any]) -> Any: ...


class TrafficGauge(Protocol):
    """The replayed traffic, as the controller watches it (emulator.traffic.Traffic)."""

    rate: float  # requests planned per wall second

    def outcomes(self) -> int:
        """Requests answered or lost so far."""
        ...

    def failure(self) -> str | None:
        """Why the traffic stopped on its own (e.g. "died (killed by SIGKILL)"), None while it runs."""
        ...


class Routable(Protocol):
    """The part of emulator.functions.Alias the controller uses."""

    def set_routing(self, canary: Any, weight: float) -> None: ...


_SYMBOL = {
    "GreaterThanThreshold": ">",
    "GreaterThanOrEqualToThreshold": ">=",
    "LessThanThreshold": "<",
    "LessThanOrEqualToThreshold": "<=",
}


# The metrics the local stack can compute from its records (others stay INSUFFICIENT_DATA).
LOCAL_METRICS = {
    ("AWS/Lambda", "Errors"),
    ("AWS/Lambda", "Invocations"),
    ("AWS/Lambda", "Duration"),
    ("AWS/ApiGateway", "5XXError"),
    ("AWS/ApiGateway", "4XXError"),
    ("AWS/ApiGateway", "Count"),
    ("AWS/ApiGateway", "Latency"),
}


def datapoint(
    rule: AlarmSettings, records: Sequence[RequestRecord], new_version: str, verdict: int | None
) -> float | None:
    """The alarm metric's value over one period of records (None: no data in that period).

    Lambda metrics scoped by ExecutedVersion count the new version's invocations only; API
    metrics count every request; CanaryVerdict is what the judge published for that minute.
    """
    if rule.metric == VERDICT_METRIC:
        return None if verdict is None else float(verdict)
    if (rule.namespace, rule.metric) not in LOCAL_METRICS:
        return None
    if rule.namespace == "AWS/ApiGateway":  # the API counts its own requests: not the probe's or hook's
        records = [r for r in records if r.source == "live"]
    if rule.new_version_only:
        records = [r for r in records if r.function_version == new_version]
    if not records:
        return None
    if rule.metric == "Errors":
        values = [1.0 if r.status in FUNCTION_ERROR_STATUSES else 0.0 for r in records]
    elif rule.metric == "5XXError":
        values = [1.0 if r.status >= 500 else 0.0 for r in records]
    elif rule.metric == "4XXError":
        values = [1.0 if 400 <= r.status < 500 else 0.0 for r in records]
    elif rule.metric in ("Invocations", "Count"):
        values = [1.0 for _ in records]
    else:  # Duration, Latency
        values = sorted(r.latency_ms for r in records)
    return _statistic(rule.statistic, values)


def _statistic(statistic: str, values: Sequence[float]) -> float | None:
    if statistic.lower().startswith("p"):
        return quantile(values, float(statistic[1:]) / 100.0)
    return {
        "Sum": float(sum(values)),
        "Maximum": max(values),
        "Minimum": min(values),
        "Average": sum(values) / len(values),
        "SampleCount": float(len(values)),
    }.get(statistic)


@dataclass
class AlarmState:
    """An alarm's datapoints so far and the state they put it in."""

    rule: AlarmSettings
    values: list[float | None] = field(default_factory=list)
    state: str = INSUFFICIENT
    reason: str = "not evaluated yet"
    updated: float | None = None

    def evaluate(self, value: float | None, now: float) -> bool:
        """Add one period's datapoint; True when this turned the alarm to ALARM.

        M of the last N datapoints breaching -> ALARM, as CloudWatch does; a missing datapoint
        counts as TreatMissingData says (notBreaching, breaching, or left out).
        """
        self.values.append(value)
        rule = self.rule
        recent = self.values[-rule.evaluation_periods :]
        missing = rule.treat_missing_data
        if missing in ("ignore", "missing"):
            recent = [v for v in recent if v is not None]
        breaching = [
            v
            for v in recent
            if (v is None and missing == "breaching") or (v is not None and rule.breaches(v))
        ]
        before = self.state
        symbol = _SYMBOL.get(rule.comparison, rule.comparison)
        if (rule.namespace, rule.metric) not in LOCAL_METRICS and rule.metric != VERDICT_METRIC:
            self.state, self.reason = INSUFFICIENT, f"{rule.namespace} {rule.metric} is not measured locally"
        elif len(breaching) >= rule.datapoints_to_alarm:
            self.state = ALARM
            shown = ", ".join("missing" if v is None else _num(v) for v in breaching)
            self.reason = (
                f"{len(breaching)} of the last {len(recent)} datapoints [{shown}] {symbol} "
                f"{_num(rule.threshold)} ({rule.metric} {rule.statistic} per {rule.period_s:g} s)"
            )
        elif not recent:
            self.state, self.reason = INSUFFICIENT, "no datapoints yet"
        else:
            self.state = OK
            last = "no data (not breaching)" if value is None else f"latest {_num(value)}"
            self.reason = (
                f"{last}; alarms at {rule.datapoints_to_alarm} of {rule.evaluation_periods} "
                f"datapoints {symbol} {_num(rule.threshold)}"
            )
        if self.state != before:
            self.updated = now
        return self.state == ALARM and before != ALARM

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.rule.name,
            "state": self.state,
            "reason": self.reason,
            "updated": self.updated,
            "metric": self.rule.metric,
            "datapoints": list(self.values),
        }


def _look(report: Any, at: float, sim: float) -> dict[str, Any]:
    """An evidence judge's look, in short: verdict, metrics, n per group per source."""
    groups = report.groups
    return {
        "at": at,
        "t_sim_s": round(sim, 1),
        "verdict": report.verdict.value,
        "reason": report.reason,
        "final": report.final,
        "alpha": report.alpha_look,
        "metrics": {m.name: m.classification.value for m in report.metrics},
        "n": {g: dict(groups.get(g, {}).get("requests", {})) for g in ("baseline", "canary")},
    }


def _num(x: float) -> str:
    return f"{x:.0f}" if float(x).is_integer() else f"{x:.2f}"


@dataclass
class Deployment:
    """What happened to one deployment, as it goes (read it after run() returns)."""

    id: str
    plan: Plan
    baseline: str  # function version
    canary: str  # function version
    started: float = 0.0  # wall epoch
    completed: float | None = None
    outcome: str | None = None  # PROMOTED | ROLLED BACK | BLOCKED | ABORTED
    stage: str = "created"  # where it is, or where it was decided
    reasons: list[str] = field(default_factory=list)
    hook: HookResult | None = None
    hook_error: str | None = None
    judge: EvidenceReport | None = None  # the latest look
    looks: list[dict[str, Any]] = field(default_factory=list)  # every look's verdict, in short
    alarms: list[AlarmState] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    weight: float = 0.0
    shift_started: float | None = None  # wall epoch of the first shifted request
    gate: dict[str, Any] | None = None  # the PostTraffic gate's decision
    probe: dict[str, Any] | None = None  # the probe's counts once it stopped
    judge_errors: list[str] = field(default_factory=list)  # looks at which the judge raised

    @property
    def status(self) -> str:
        """CodeDeploy's word for it."""
        if self.outcome is None:
            return "InProgress"
        return {PROMOTED: "Succeeded", ROLLED_BACK: "Stopped", ABORTED: "Stopped"}.get(self.outcome, "Failed")


class _GateRun:
    """The PostTraffic gate's core (EvidenceWindow.gate: canary.gate.judge_window owns its waiting
    loop, as the gate function does on AWS) run as a coroutine on a thread of its own: each sleep
    it asks for hands control back to the controller, whose ticks advance the compressed clock to
    the end of that sleep minute by minute, then resume it. One side runs at a time."""

    def __init__(self, call: Callable[[Callable[[float], None]], Any]) -> None:
        self._call = call
        self._asks: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=1)  # gate -> controller
        self._resumes: queue.Queue[bool] = queue.Queue(maxsize=1)  # controller -> gate
        self._thread: threading.Thread | None = None

    def next(self) -> Any:
        """Run the gate until it asks to sleep (the seconds, a float) or decides (its result)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._main, name="posttraffic-gate", daemon=True)
            self._thread.start()
        kind, value = self._asks.get()
        if kind == "raised":
            raise value
        return value

    def resume(self) -> None:
        """End the sleep the gate asked for."""
        self._resumes.put(True)

    def cancel(self) -> None:
        """The deployment was decided without the gate: its current or next sleep raises
        GateInterrupted, which ends its thread."""
        with contextlib.suppress(queue.Full):
            self._resumes.put_nowait(False)

    def _sleep(self, seconds: float) -> None:
        self._asks.put(("sleep", float(seconds)))
        if not self._resumes.get():
            raise GateInterrupted("the deployment ended while the gate waited")

    def _main(self) -> None:
        try:
            self._asks.put(("decided", self._call(self._sleep)))
        except GateInterrupted:
            pass  # the controller decided without the gate, and no longer listens
        except BaseException as exc:  # the controller's tick raises it
            self._asks.put(("raised", exc))


class Controller:
    """Runs one deployment of `canary` behind `alias`, time-compressed by `speed`, a step at a time."""

    def __init__(
        self,
        *,
        alias: Routable,
        baseline: Invocable,
        canary: Invocable,
        plan: Plan,
        alarms: Sequence[AlarmSettings],
        store: LaggedStore,  # read as the judge reads its records, and the hook's records go to it
        hook_config: HookConfig,
        window: Any,
        hook_timeout_s: float = 300.0,
        speed: float = 10.0,
        deployment_id: str = "d-LOCAL",
        on_event: Callable[[Event], None] | None = None,
        clock: Callable[[], float] = time.time,
        stop: threading.Event | None = None,
        flush: Callable[[], Any] | None = None,
        traffic: TrafficGauge | None = None,
        stall_s: float = 40.0,
        pretraffic: Callable[..., HookResult] = run_pretraffic,
        probe: Callable[[Callable[[], float]], Any] | None = None,
        lag_max_s: float = 0.0,
    ) -> None:
        if not math.isfinite(speed) or speed <= 0:
            raise ValueError(f"speed must be a positive number, got {speed}")
        self.alias, self.baseline, self.canary, self.plan = alias, baseline, canary, plan
        self.store = store
        self.hook_config = hook_config
        # The hook function's Timeout, less the margin it keeps to report, on the compressed clock;
        # at least HOOK_MIN_BUDGET_S: Lambda would answer the hook's concurrent requests in parallel
        # environments, the local stack in one, so a busy machine must not time the hook out.
        self.hook_budget_s = max(
            HOOK_MIN_BUDGET_S, max(1.0, hook_timeout_s - hook_config.time_margin_s) / speed
        )
        self.speed = speed
        self.on_event = on_event or (lambda _event: None)
        self.clock = clock
        self.stop = stop or threading.Event()
        # Waits until the records of the requests answered so far are in the store (the gateway
        # writes them in batches), as CloudWatch's ingestion delay is waited out by alarm periods.
        self.flush = flush or (lambda: None)
        # Paces the compressed minutes and is watched for death; stall_s without a single answer
        # counts as a stall (past the traffic's own per-request timeout, so a slow canary is not one).
        self.traffic, self.stall_s = traffic, stall_s
        self.pretraffic = pretraffic
        # Issue 10: the evidence judge and gate (emulator.window.EvidenceWindow); the probe, started
        # at the first shift with the compressed clock (returns a running ProbeRun); the log lag's
        # maximum in simulated seconds (0: every record is visible at once, the store is read
        # without visible_by).
        self.window, self.probe_factory, self.lag_max_s = window, probe, float(lag_max_s)
        self.probe: Any | None = None
        self.phase = Phase.CREATED
        self._step_index = 0  # the plan's step being held (SHIFTING)
        # The minutes closed so far of the step being held (None: not shifted to yet) or, once
        # AllowTraffic is done, of the PostTraffic gate's wait.
        self._minute: int | None = None
        self._window_end = 0.0  # wall epoch at which AllowTraffic ended (POST_TRAFFIC)
        # The PostTraffic gate on its thread; the compressed time its current wait ends (None: the
        # gate's turn).
        self._gate: _GateRun | None = None
        self._gate_target: float | None = None
        # Per source watched for a stall: its outcomes when last seen to change, and when.
        self._progress: dict[str, tuple[int, float]] = {}
        # Where the compressed clock was set, (wall, compressed s): the start, the shifts and every
        # minute's end. Between two it runs `speed` times faster than the wall clock; while a
        # minute waits for its traffic it stops at the minute's end (_sim_cap).
        self._anchors: list[tuple[float, float]] = []
        self._sim_cap: float | None = None
        self._traffic_at_anchor = 0  # the traffic's outcomes when the clock was last anchored
        self.deployment = Deployment(
            id=deployment_id,
            plan=plan,
            baseline=baseline.function_version,
            canary=canary.function_version,
            alarms=[AlarmState(rule) for rule in alarms],
        )

    # ------------------------------------------------------------------ time

    @property
    def minute_s(self) -> float:
        """Wall seconds in one compressed minute."""
        return 60.0 / self.speed

    def sim_at(self, wall: float) -> float:
        """The compressed clock's reading at a wall time (simulated seconds since the deployment
        started)."""
        a_wall, a_sim = next((a for a in reversed(self._anchors) if a[0] <= wall), self._anchors[0])
        sim = a_sim + (wall - a_wall) * self.speed
        if self._sim_cap is not None and a_wall == self._anchors[-1][0]:
            sim = min(sim, self._sim_cap)
        return sim

    def _wall_at(self, sim: float) -> float:
        """The wall time at which the compressed clock read `sim` (the end of a minute that waited
        for its traffic maps to when it really ended)."""
        # A minute's end, computed as start + 60 s, may land an ulp off its anchor: tolerate it.
        a_wall, a_sim = next((a for a in reversed(self._anchors) if a[1] <= sim + 1e-6), self._anchors[0])
        offset = sim - a_sim
        return a_wall + (0.0 if abs(offset) <= 1e-6 else offset / self.speed)

    def sim_now(self) -> float:
        """The compressed clock now (simulated seconds since the deployment started)."""
        return self.sim_at(self.clock())

    def _since(self) -> float:
        """The wall epoch the evidence window starts at: the first shift (AllAtOnce: the start)."""
        return self.deployment.shift_started or self.deployment.started

    def _traffic_outcomes(self) -> int:
        """Requests the replayed traffic got answered (or lost) so far."""
        return self.traffic.outcomes() if self.traffic is not None else 0

    def _minute_answered(self, users: int, sim_end: float) -> tuple[bool, bool, str]:
        """Whether the users' traffic and the probe have each answered their own plan for the
        minute ending at compressed time sim_end, and the counts in words. Apart, not summed: the
        users' traffic is open loop and keeps arriving on a busy machine, so a sum could close a
        minute the probe has fallen behind in and leave the judge short of probe pairs. The
        probe's plan is its own schedule's (the texts due by sim_end, all it can send while the
        clock holds there)."""
        done = self._traffic_outcomes() - self._traffic_at_anchor
        said = f"users' {done} of {users}"
        if self.probe is None:
            return done >= users, True, said
        answered, due = self.probe.outcomes(), self.probe.due_by(sim_end)
        return done >= users, answered >= due, f"{said}, probe's {answered} of {due} so far"

    def _stalled(self, now: float, stall_s: float, probe_owes: bool) -> str | None:
        """What made no progress for stall_s: the traffic (no request answered), or the probe while
        the minute waits for it (a probe that stopped answering must not hold the clock for ever;
        an idle probe, ahead of its schedule, is not stalled)."""
        watched = {"traffic generator": self.traffic, "probe": self.probe if probe_owes else None}
        for name, source in watched.items():
            if source is None:
                self._progress.pop(name, None)
                continue
            n = source.outcomes()
            seen, since = self._progress.get(name, (None, now))
            if n != seen:
                self._progress[name] = (n, now)
            elif now - since >= stall_s:
                return f"{name} stalled: no request answered for {now - since:.0f} s"
        return None

    def _anchor_now(self) -> float:
        """Set the compressed clock where it reads now; returns the wall time."""
        now = self.clock()
        self._anchor(now, self.sim_at(now))
        return now

    def _anchor(self, wall: float, sim: float) -> None:
        self._anchors.append((wall, sim))
        self._sim_cap = None
        self._traffic_at_anchor = self._traffic_outcomes()

    def _close_minute(self, label: str) -> tuple[float | None, str | None]:
        """Wait for the end of the compressed minute that began at the latest anchor: its wall
        time has passed and (with a traffic gauge) the users' requests and the probe's texts planned
        for it have each been answered. Returns (its end, None), or (None, why not): "interrupted",
        the traffic generator's failure, or what stalled (the generator, or the probe it waits for)."""
        a_wall, a_sim = self._anchors[-1]
        nominal = a_wall + self.minute_s
        self._sim_cap = a_sim + 60.0
        traffic = self.traffic
        # The users' requests due within the minute (floor: at a few requests a real-world hour,
        # most compressed minutes plan none, and must not wait for one).
        users = math.floor(traffic.rate * self.minute_s) if traffic is not None else 0
        # A stall: no answer for stall_s beyond the gap between two planned requests.
        stall_s = self.stall_s + (1.0 / traffic.rate if traffic is not None and traffic.rate > 0 else 0.0)
        waited_noted = False
        while not self.stop.is_set():
            now = self.clock()
            users_done, probe_done, counts = True, True, ""
            if traffic is not None:
                failure = traffic.failure()
                if failure is not None:
                    return None, f"traffic generator {failure}"
                users_done, probe_done, counts = self._minute_answered(users, a_sim + 60.0)
                stalled = self._stalled(now, stall_s, probe_owes=not probe_done)
                if stalled is not None:
                    return None, stalled
            if now >= nominal and users_done and probe_done:
                self._anchor(now, a_sim + 60.0)
                return now, None
            if not (users_done and probe_done) and not waited_noted and now >= nominal + self.minute_s:
                waited_noted = True  # said once per minute: the clock holds for the evidence
                self.note(
                    "traffic-wait",
                    f"{label}: the compressed clock holds for this minute's traffic (planned requests "
                    f"answered: {counts}): the machine is slower than the replay",
                )
            self.stop.wait(min(nominal - now, 0.25) if now < nominal else 0.02)
        return None, "interrupted"

    # ------------------------------------------------------------------ events

    def note(self, kind: str, message: str, **extra: Any) -> None:
        """Add an entry to the timeline (and tell on_event): time, stage, weight, alarm states."""
        now = self.clock()
        d = self.deployment
        entry = {
            "kind": kind,
            "at": now,
            "t_wall_s": round(now - d.started, 3),
            "t_sim_s": round(self.sim_at(now), 1),
            "stage": d.stage,
            "weight": d.weight,
            "alarms": {a.rule.name: a.state for a in d.alarms},
            "message": message,
            **extra,
        }
        d.timeline.append(entry)
        self.on_event(entry)

    def _route(self, weight: float) -> None:
        self.alias.set_routing(self.canary if weight > 0 else None, weight)
        self.deployment.weight = weight

    # ------------------------------------------------------------------ phases

    def run(self) -> Deployment:
        """The whole deployment, a step at a time; returns it decided (or stopped by `stop`, then
        rolled back)."""
        while self.phase not in FINAL:
            self.step()
        return self.deployment

    def step(self) -> Phase:
        """One tick: at most one phase transition or one evaluation (a compressed minute closed and
        judged, or the PostTraffic gate's decision); returns the phase it leaves the deployment in.
        What it did is on the timeline (note). A decided deployment stays as it is."""
        if self.phase in FINAL:
            return self.phase
        tick = {
            Phase.CREATED: self._start,
            Phase.PRE_TRAFFIC: self._pretraffic_tick,
            Phase.SHIFTING: self._shifting_tick,
            Phase.POST_TRAFFIC: self._post_traffic,
        }[self.phase]
        self.phase = tick()
        return self.phase

    def _start(self) -> Phase:
        d = self.deployment
        d.started = self.clock()
        self._anchor(d.started, 0.0)
        d.stage = "pretraffic"
        self.note(
            "start",
            f"deployment {d.id}: {self.baseline.model_version} (version {d.baseline}) -> "
            f"{self.canary.model_version} (version {d.canary}), {self.plan.name}",
        )
        return Phase.PRE_TRAFFIC

    def _pretraffic_tick(self) -> Phase:
        """BeforeAllowTraffic: the hook (Failed blocks the deployment); then the first shift's tick,
        or the gate (AllAtOnce)."""
        d = self.deployment
        self.note(
            "hook",
            f"PreTraffic hook: {self._golden_n()} known-answer requests to version {d.canary} "
            f"(within {self.hook_budget_s:.1f} wall s: the hook's timeout compressed, at least "
            f"{HOOK_MIN_BUDGET_S:g} s)",
        )
        # The hook invokes each version directly, as lambda invoke on its qualified ARN would; its
        # log records (source "hook") go to the store, as the function's logs hold them.
        records: list[RequestRecord] = []
        try:
            deadline = time.monotonic() + self.hook_budget_s
            try:
                d.hook = self.pretraffic(
                    self.hook_config,
                    functools.partial(invoke_direct, self.canary, keep=records.append),
                    # Every text to the baseline too: the latency reference the judge and gate read.
                    invoke_baseline=functools.partial(invoke_direct, self.baseline, keep=records.append),
                    baseline_version=d.baseline,
                    run_id=d.id,
                    deadline=deadline,
                )
            finally:
                self._store_hook_records(records)
        except (HookError, OSError, ValueError) as exc:
            # The real hook reports Failed on any crash; so does the local one.
            d.hook_error = f"hook crashed: {type(exc).__name__}: {exc}"
            d.reasons.append(f"PreTraffic hook Failed: {d.hook_error}")
            self.note("hook-failed", d.reasons[-1])
            return self._finish(BLOCKED)
        if not d.hook.passed:
            d.reasons.append(f"PreTraffic hook Failed: {d.hook.reason}")
            self.note("hook-failed", d.reasons[-1], hook=d.hook.status)
            return self._finish(BLOCKED)
        self.note("hook-passed", f"PreTraffic hook Succeeded: {d.hook.reason}", hook=d.hook.status)
        # What the judge and the gate read from the hook's log record: its measured canary/baseline
        # handler-latency ratio (None: not measured; latency then lacks a reference).
        self.window.latency_reference = getattr(d.hook, "latency_reference", None)
        hook_done = getattr(self.canary, "mark_hook_done", None)
        if callable(hook_done):  # faults with @hook start now
            hook_done()
        failure = self.traffic.failure() if self.traffic is not None else None
        if failure is not None:  # no traffic to judge the canary on: do not start the shift
            return self._abort(f"traffic generator {failure}")
        return Phase.SHIFTING if self.plan.steps else self._open_gate()

    def _shifting_tick(self) -> Phase:
        """AllowTraffic: the current step's shift, or one of its compressed minutes, evaluated."""
        if self._minute is None:
            self._shift(self._step_index + 1, self.plan.steps[self._step_index])
            self._minute = 0
            return Phase.SHIFTING
        self._minute += 1
        ended = self._minute_tick(f"{self.deployment.stage} minute {self._minute}", judge_look=True)
        if ended is not None:
            return ended
        if self._minute < max(1, math.ceil(self.plan.steps[self._step_index].minutes)):
            return Phase.SHIFTING
        self._step_index, self._minute = self._step_index + 1, None
        return Phase.SHIFTING if self._step_index < len(self.plan.steps) else self._open_gate()

    def _shift(self, number: int, step: Step) -> None:
        """Send the canary the step's share; the first shift starts the window (and the probe)."""
        d = self.deployment
        d.stage = f"shift {number}" if len(self.plan.steps) > 1 else "canary"
        self._route(step.weight)
        start = self._anchor_now()  # minutes count from the shift
        if d.shift_started is None:
            d.shift_started = start
            if self.probe_factory is not None:
                self.probe = self.probe_factory(self.sim_now)
        self.note("shift", f"{step.weight:.0%} of traffic to version {d.canary} for {step.minutes:g} minutes")

    def _promote(self) -> Phase:
        """The gate Succeeded: CodeDeploy's end state, the alias on the new version alone."""
        d = self.deployment
        d.stage = "promotion"
        if d.shift_started is None:  # AllAtOnce: the first user request to the canary is now
            d.shift_started = self.clock()
        self._route(1.0)
        promote = getattr(self.alias, "promote", None)
        if callable(promote):
            promote()
        shifted = f"all traffic shifted to version {d.canary} ({self.canary.model_version})"
        d.reasons.append(f"the PostTraffic gate Succeeded ({d.gate['reason']}); {shifted}")
        return self._finish(PROMOTED)

    def _minute_tick(self, label: str, *, judge_look: bool) -> Phase | None:
        """Close one compressed minute and evaluate it: the phase the deployment ended in (an alarm
        rolls back; a stop too; failed traffic aborts), None when it goes on."""
        d = self.deployment
        end, failure = self._close_minute(label)
        if failure == "interrupted":
            return self._interrupted()
        if end is None:
            d.stage = label
            return self._abort(failure or "traffic failed")
        fired = self._evaluate(end, label, judge_look=judge_look)
        if not fired:
            return None
        d.stage = label
        reasons = [f"{a.rule.name} in ALARM: {a.reason}" for a in fired]
        if judge_look and d.judge is not None and any(a.rule.metric == VERDICT_METRIC for a in fired):
            reasons.append(f"the judge said {d.judge.verdict.value}: {d.judge.reason}")
        # The canary's minutes say the short names; the gate's minutes the full ones.
        names = short_names([a.rule.name for a in d.alarms]) if judge_look else {}
        shown = ", ".join(names.get(a.rule.name, a.rule.name) for a in fired)
        return self._to_baseline(ROLLED_BACK, reasons, f"rollback to 0 %: {shown} in ALARM")

    def _interrupted(self) -> Phase:
        return self._to_baseline(ROLLED_BACK, ["rehearsal interrupted: traffic returned to the baseline"])

    def _to_baseline(self, outcome: str, reasons: Sequence[str], said: str | None = None) -> Phase:
        """End the deployment with all traffic back on the baseline (a rollback, or a stop without a
        verdict): its reasons, then the alias, then the timeline's word on it."""
        self.deployment.reasons.extend(reasons)
        self._route(0.0)
        if said is not None:
            self.note("rollback" if outcome == ROLLED_BACK else "aborted", said)
        return self._finish(outcome)

    def _golden_n(self) -> str:
        path = getattr(self.hook_config, "known_texts_path", self.hook_config.golden_path)
        try:
            with open(path, encoding="utf-8") as fh:
                return str(sum(1 for line in fh if line.strip()))
        except OSError:
            return "the"

    def _store_hook_records(self, records: list[RequestRecord]) -> None:
        if records:
            try:
                self.store.extend(records)
            except Exception as exc:  # records lost must not change the hook's outcome
                self.note("warning", f"the hook's records could not be stored: {type(exc).__name__}")

    def _abort(self, failure: str) -> Phase:
        """Stop the deployment without a verdict: the replayed traffic, the evidence, failed. Traffic
        returns to the baseline as a stopped CodeDeploy deployment's does."""
        reason = (
            f"the rehearsal's {failure}: the deployment was stopped with no verdict "
            "(too little evidence to promote or roll back on); traffic returned to the baseline"
        )
        return self._to_baseline(ABORTED, [reason], f"stopped: the {failure}")

    def _stop_probe(self) -> None:
        if self.probe is not None:
            self.deployment.probe = self.probe.stop()
            self.probe = None  # the minutes after the window are paced by the users' traffic alone

    def _records(self, since: float, until: float, visible_by: float | None = None) -> list[RequestRecord]:
        """The store's records in a wall window; with visible_by, only those the log lag has let
        through by then (a store without a lag sees them all)."""
        if visible_by is not None and self.lag_max_s > 0:
            return self.store.window(since, until, visible_by=visible_by)
        return self.store.window(since, until)

    def _evaluate(self, end: float, label: str, *, judge_look: bool) -> list[AlarmState]:
        """One compressed minute with the evidence judge: its interim look over the window's
        records visible by now (judge_look), then every alarm over that minute's records (metrics
        reach CloudWatch within the minute: no log lag for them)."""
        d = self.deployment
        self.flush()
        sim_end = self.sim_at(end)
        verdict, said = None, "waiting for the window's records"
        if judge_look:
            verdict, said = self._judge_look(end, sim_end)
        longest = max((a.rule.period_s for a in d.alarms), default=60.0)
        records = self._records(self._wall_at(sim_end - longest), end)
        fired = self._fired(records, sim_end, end, verdict)
        self.note(
            "minute",
            f"{label}: {said}; " + self._alarm_summary(),
            verdict=None if verdict is None else d.judge.verdict.value,
            judge_reason=None if verdict is None else d.judge.reason,
        )
        return fired

    def _judge_look(self, end: float, sim_end: float) -> tuple[int | None, str]:
        """The judge's interim look at `end`: the verdict it publishes (None: none) and what it said."""
        d = self.deployment
        since = self._since()
        visible = self._records(since, end, visible_by=sim_end)
        try:
            report = self.window.look(visible, since, end, sim_end - self.sim_at(since))
        except JudgeCrashed as exc:
            d.judge_errors.append(str(exc))
            d.looks.append(
                {"at": end, "t_sim_s": round(sim_end, 1), "verdict": None, "reason": str(exc), "final": False}
            )
            return None, f"judge crashed, no verdict published ({exc})"
        if report is None:
            return None, "judge: no record of a version visible yet, no verdict published"
        d.judge = report
        d.looks.append(_look(report, end, sim_end))
        n = {group: f"{c.get('live', 0)}/{c.get('probe', 0)}" for group, c in d.looks[-1]["n"].items()}
        return VERDICT_VALUE[report.verdict], (
            f"judge {report.verdict.value} (n live/probe visible: baseline {n['baseline']}, "
            f"canary {n['canary']})"
        )

    def _open_gate(self) -> Phase:
        """AllowTraffic is done: the probe stops, 100 % goes to the new version, and the PostTraffic
        gate (AfterAllowTraffic) is next."""
        d = self.deployment
        self._stop_probe()
        self._window_end = self.clock()
        self._route(1.0)
        d.stage = "posttraffic"
        self._anchor_now()
        self._minute = 0
        self._gate = _GateRun(self._run_gate)
        cfg = self.window.gate_config
        self.note(
            "posttraffic",
            f"AllowTraffic done: 100 % to version {d.canary}; PostTraffic gate: waits "
            f"{cfg.max_log_lag_s:g} s after the window for late log records, then until none arrives "
            f"for {cfg.settle_s:g} s",
        )
        return Phase.POST_TRAFFIC

    def _run_gate(self, sleep: Callable[[float], None]) -> tuple[Any, Any, bool]:
        """The gate's call, on the gate's thread: it waits (sleep, on the compressed clock) for the
        window's records, judges the whole window and decides: (decision, report, complete)."""
        window_end, since = self._window_end, self._since()
        window_end_sim = self.sim_at(window_end)
        return self.window.gate(
            lambda: self._records(since, window_end, visible_by=self.sim_now()),
            since=since,
            until=window_end,
            window_end=window_end_sim,
            window_s=window_end_sim - self.sim_at(since),
            now=self.sim_now,
            sleep=sleep,
        )

    def _post_traffic(self) -> Phase:
        """AfterAllowTraffic, a tick at a time: the gate runs until it waits or decides; each tick of
        its wait then closes one compressed minute (traffic-paced, alarms evaluated: an alarm ends
        the deployment, the gate undecided) or, within the minute, ends the wait."""
        if self.stop.is_set():
            return self._interrupted()
        if self._gate_target is None:  # the gate's turn
            asked = self._gate.next()
            if isinstance(asked, tuple):
                return self._gate_decided(*asked)
            self._gate_target = self.sim_now() + max(0.0, asked)
            return Phase.POST_TRAFFIC
        if self._anchors[-1][1] + 60.0 <= self._gate_target:  # a whole minute ends within the wait
            self._minute += 1
            return self._minute_tick(f"posttraffic minute {self._minute}", judge_look=False) or (
                Phase.POST_TRAFFIC
            )
        now = self.sim_now()
        if now < self._gate_target:
            self.stop.wait((self._gate_target - now) / self.speed)
        if self.sim_now() >= self._gate_target - 1e-6 and not self.stop.is_set():
            self._gate_target = None
            self._gate.resume()
        return Phase.POST_TRAFFIC

    def _gate_decided(self, decision: Any, report: Any, complete: bool) -> Phase:
        """The gate's decision: PROMOTED when it Succeeded, else ROLLED BACK from 100 %."""
        d = self.deployment
        now_sim = self.sim_now()
        d.gate = {
            "succeeded": decision.succeeded,
            "status": "Succeeded" if decision.succeeded else "Failed",
            "reason": decision.reason,
            "records_complete": complete,
            "t_sim_s": round(now_sim, 1),
            "window_sim_s": [round(self.sim_at(self._since()), 1), round(self.sim_at(self._window_end), 1)],
        }
        if report is not None:
            d.judge = report
            d.looks.append(_look(report, self.clock(), now_sim))
        if decision.succeeded:
            self.note("gate-passed", f"PostTraffic gate Succeeded: {decision.reason}")
            return self._promote()
        failed = f"PostTraffic gate Failed: {decision.reason}"
        return self._to_baseline(ROLLED_BACK, [failed], f"rollback to 0 %: {failed}")

    def _fired(
        self, records: Sequence[RequestRecord], sim_end: float, end: float, verdict: int | None
    ) -> list[AlarmState]:
        """The alarms that fire at `end`, each on the records of its own period (of `records`)."""
        d = self.deployment
        fired = []
        for alarm in d.alarms:
            since = self._wall_at(sim_end - alarm.rule.period_s)
            period = [r for r in records if since <= r.timestamp <= end]
            if alarm.evaluate(datapoint(alarm.rule, period, d.canary, verdict), end):
                fired.append(alarm)
        return fired

    def _alarm_summary(self) -> str:
        """ "alarms OK", or the ones that are not, by their short names."""
        alarms = self.deployment.alarms
        if not alarms:
            return "no alarms"
        names = short_names([a.rule.name for a in alarms])
        odd = [f"{names[a.rule.name]} {a.state}" for a in alarms if a.state != OK]
        return "alarms: " + ", ".join(odd) if odd else f"all {len(alarms)} alarms OK"

    def _finish(self, outcome: str) -> Phase:
        """Decide the deployment (once: an abort inside the gate's wait finishes it first)."""
        d = self.deployment
        if d.outcome is not None:
            return Phase(d.outcome)
        self._stop_probe()
        if self._gate is not None:
            self._gate.cancel()  # decided while the gate waited (an alarm, a stop): it ends undecided
        d.outcome = outcome
        d.completed = self.clock()
        self.note("end", f"{outcome}: " + "; ".join(d.reasons))
        return Phase(outcome)
