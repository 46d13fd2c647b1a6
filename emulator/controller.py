"""The local deployment controller: what CodeDeploy does with the template's DeploymentPreference,
on a compressed clock.

    BeforeAllowTraffic  the REAL PreTraffic hook core (canary.hook.run_pretraffic) checks the new
                        version through an invoke that calls its FunctionVersion directly; Failed
                        blocks the deployment before any user request reaches it
    shift               the alias sends the canary its share (10 % for 5 minutes under
                        Canary10Percent5Minutes; Linear* steps up; AllAtOnce jumps to 100 %)
    every minute        the REAL judge (canary.judge) runs over the records in the store, then
                        every alarm of DeploymentPreference.Alarms is evaluated over that minute's
                        records as CloudWatch would (period, EvaluationPeriods, DatapointsToAlarm,
                        TreatMissingData notBreaching)
    first ALARM         rollback: the alias goes back to 0 % at once
    end of the plan     promotion: 100 % to the new version

With an evidence window (emulator.window.EvidenceWindow, issue 10) the canary is judged as on AWS
after issue 10: the probe runs during the window, the judge is the evidence judge (an interim look
every compressed minute, over the records VISIBLE by then: the store's log lag), and after the last
shift (AllowTraffic done, 100 % on the new version) the PostTraffic gate waits on the compressed
clock until the window's records are all visible (the lag's maximum after the window's end, alarms
still watched every minute), judges the whole window (final look) and promotes only on PASS;
anything else, a judge that crashed included, rolls back.
    traffic failure     with a `traffic` gauge: a generator that died or stalled stops the
                        deployment (ABORTED, back to 0 %): no verdict on missing evidence

One compressed minute lasts at least 60 / speed wall seconds. With a `traffic` gauge it also
lasts until the requests planned for it (rate x 60 / speed) have been answered, so a slow or
busy machine stretches the minute instead of thinning its evidence: the compressed clock
stops at the minute's end until its traffic is in. Request timestamps stay wall-clock epochs;
the judge's window and each alarm period are mapped from compressed time to the wall-clock
spans the minutes really took, so they read the store as they would read real records.
"""

from __future__ import annotations

import inspect
import math
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from canary.config import HookConfig
from canary.hook import HookError, HookResult, run_pretraffic
from canary.judge import VERDICT_VALUE, JudgeConfig, JudgeReport, judge
from canary.records import RecordSource, RequestRecord
from canary.stats import quantile

PROMOTED, ROLLED_BACK, BLOCKED = "PROMOTED", "ROLLED BACK", "BLOCKED"
# Stopped with no verdict: the evidence itself failed (the rehearsal's traffic died or stalled).
ABORTED = "ABORTED"
OK, ALARM, INSUFFICIENT = "OK", "ALARM", "INSUFFICIENT_DATA"
# Lambda counts a crash or a timeout as an Errors datapoint; API Gateway answers those 502 / 504.
# A 500 the handler chose to answer is no Lambda error (API 5XXError still counts it).
FUNCTION_ERROR_STATUSES = frozenset({502, 504})
HOOK_MIN_BUDGET_S = 60.0  # wall seconds the local PreTraffic hook gets at least

Event = dict[str, Any]


class Invocable(Protocol):
    """The part of emulator.functions.FunctionVersion the controller uses."""

    function_version: str
    model_version: str

    def invoke(self, event: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]: ...


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


@dataclass(frozen=True)
class Step:
    """One traffic step: the canary's share and how many minutes it is held."""

    weight: float
    minutes: float


@dataclass(frozen=True)
class Plan:
    """A CodeDeploy deployment configuration as a list of steps before 100 %."""

    name: str  # e.g. Canary10Percent5Minutes
    steps: tuple[Step, ...]  # empty for AllAtOnce

    @property
    def minutes(self) -> float:
        return sum(s.minutes for s in self.steps)


_CANARY = re.compile(r"Canary(\d+)Percent(\d+)Minutes?")
_LINEAR = re.compile(r"Linear(\d+)PercentEvery(\d+)Minutes?")


def plan_for(deployment_type: str) -> Plan:
    """The steps of a predefined Lambda deployment configuration (CodeDeployDefault.Lambda*)."""
    name = deployment_type.rsplit(".", 1)[-1].removeprefix("Lambda")
    if name == "AllAtOnce":
        return Plan(name, ())
    if m := _CANARY.fullmatch(name):
        percent, minutes = int(m.group(1)), int(m.group(2))
        if not 0 < percent < 100:
            raise ValueError(f"{deployment_type}: canary percent must be between 1 and 99")
        return Plan(name, (Step(percent / 100.0, float(minutes)),))
    if m := _LINEAR.fullmatch(name):
        percent, minutes = int(m.group(1)), int(m.group(2))
        if not 0 < percent < 100:
            raise ValueError(f"{deployment_type}: linear percent must be between 1 and 99")
        steps = tuple(Step(k * percent / 100.0, float(minutes)) for k in range(1, math.ceil(100 / percent)))
        return Plan(name, steps)
    raise ValueError(
        f"deployment preference {deployment_type!r} is not one the local controller knows "
        "(AllAtOnce, Canary<P>Percent<M>Minutes, Linear<P>PercentEvery<M>Minute(s))"
    )


@dataclass(frozen=True)
class AlarmRule:
    """One alarm of DeploymentPreference.Alarms, as the controller evaluates it locally."""

    name: str  # AlarmName
    namespace: str  # AWS/Lambda, AWS/ApiGateway or the project's (CanaryVerdict)
    metric: str  # MetricName; see datapoint() for the ones evaluated locally
    statistic: str  # Sum | Maximum | Minimum | Average | SampleCount | pNN
    threshold: float
    comparison: str  # GreaterThanThreshold | GreaterThanOrEqualToThreshold | LessThan...
    period_s: float = 60.0  # one datapoint per period (compressed seconds)
    evaluation_periods: int = 1
    datapoints_to_alarm: int = 1
    treat_missing_data: str = "notBreaching"  # notBreaching | breaching | ignore | missing
    new_version_only: bool = False  # dimension ExecutedVersion: only the new version's invocations

    @classmethod
    def from_settings(cls, alarm: Any) -> AlarmRule:
        """From an emulator.settings.AlarmSettings (the template's alarm, resolved)."""
        return cls(
            name=alarm.name,
            namespace=alarm.namespace,
            metric=alarm.metric,
            statistic=alarm.statistic,
            threshold=float(alarm.threshold),
            comparison=alarm.comparison,
            period_s=float(alarm.period_s),
            evaluation_periods=int(alarm.evaluation_periods),
            datapoints_to_alarm=int(alarm.datapoints_to_alarm),
            treat_missing_data=alarm.treat_missing_data,
            new_version_only="ExecutedVersion" in alarm.dimensions,
        )

    def breaches(self, value: float) -> bool:
        op = self.comparison
        if op == "GreaterThanThreshold":
            return value > self.threshold
        if op == "GreaterThanOrEqualToThreshold":
            return value >= self.threshold
        if op == "LessThanThreshold":
            return value < self.threshold
        if op == "LessThanOrEqualToThreshold":
            return value <= self.threshold
        raise ValueError(f"alarm {self.name}: comparison {op!r} is not supported locally")


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
    rule: AlarmRule, records: Sequence[RequestRecord], new_version: str, verdict: int | None
) -> float | None:
    """The alarm metric's value over one period of records (None: no data in that period).

    Lambda metrics scoped by ExecutedVersion count the new version's invocations only; API
    metrics count every request; CanaryVerdict is what the judge published for that minute.
    """
    if rule.metric == "CanaryVerdict":
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
    if not values:
        return None
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

    rule: AlarmRule
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
        if (rule.namespace, rule.metric) not in LOCAL_METRICS and rule.metric != "CanaryVerdict":
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


def short_names(names: Sequence[str]) -> dict[str, str]:
    """Alarm names without the prefix they all share ("hate-speech-prod-canary-errors" ->
    "canary-errors"), for progress lines and chart labels."""
    if len(names) < 2:
        return {n: n for n in names}
    parts = [n.split("-") for n in names]
    common = 0
    while all(len(p) > common + 1 and p[common] == parts[0][common] for p in parts):
        common += 1
    return {n: "-".join(p[common:]) for n, p in zip(names, parts, strict=True)}


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


def _ns(n: Mapping[str, int]) -> str:
    return f"{n.get('live', 0)}/{n.get('probe', 0)}"


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
    judge: JudgeReport | None = None  # the latest look
    looks: list[dict[str, Any]] = field(default_factory=list)  # every look's verdict, in short
    alarms: list[AlarmState] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    weight: float = 0.0
    shift_started: float | None = None  # wall epoch of the first shifted request
    gate: dict[str, Any] | None = None  # the PostTraffic gate's decision (evidence window only)
    probe: dict[str, Any] | None = None  # the probe's counts once it stopped
    judge_errors: list[str] = field(default_factory=list)  # looks at which the judge raised

    @property
    def status(self) -> str:
        """CodeDeploy's word for it."""
        if self.outcome is None:
            return "InProgress"
        return (
            "Succeeded"
            if self.outcome == PROMOTED
            else "Stopped"
            if self.outcome in (ROLLED_BACK, ABORTED)
            else "Failed"
        )


class Controller:
    """Runs one deployment of `canary` behind `alias`, time-compressed by `speed`."""

    def __init__(
        self,
        *,
        alias: Routable,
        baseline: Invocable,
        canary: Invocable,
        plan: Plan,
        alarms: Sequence[AlarmRule],
        store: RecordSource,
        manifests: Mapping[str, Mapping[str, Any]],
        hook_config: HookConfig,
        judge_config: JudgeConfig | None = None,
        judge_window_minutes: float = 10.0,
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
        window: Any | None = None,
        probe: Callable[[Callable[[], float]], Any] | None = None,
        lag_max_s: float = 0.0,
    ) -> None:
        if not math.isfinite(speed) or speed <= 0:
            raise ValueError(f"speed must be a positive number, got {speed}")
        self.alias = alias
        self.baseline = baseline
        self.canary = canary
        self.plan = plan
        self.store = store
        self.manifests = manifests
        self.hook_config = hook_config
        self.judge_config = judge_config or JudgeConfig()
        self.judge_window_sim_s = judge_window_minutes * 60.0
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
        self.traffic = traffic
        self.stall_s = stall_s
        self.pretraffic = pretraffic
        # Issue 10: the evidence judge and gate (emulator.window.EvidenceWindow); the probe, started
        # at the first shift with the compressed clock (returns a running ProbeRun); the longest
        # log lag, in simulated seconds, that the gate waits out after the window.
        self.window = window
        self.probe_factory = probe
        self.lag_max_s = float(lag_max_s)
        self.probe: Any | None = None
        self._shift_sim = 0.0
        self._traffic_seen = 0
        self._traffic_progress = 0.0
        self._hook_records: list[RequestRecord] = []
        self._probe_remaining_at_anchor = 0
        # Where the compressed clock was set, (wall, compressed s): the start, the shifts and every
        # minute's end. Between two it runs `speed` times faster than the wall clock; while a
        # minute waits for its traffic it stops at the minute's end (_sim_cap).
        self._anchors: list[tuple[float, float]] = []
        self._sim_cap: float | None = None
        self._outcomes_at_anchor = 0
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

    def _sim(self, wall: float) -> float:
        """Compressed seconds since the deployment started, at a wall time."""
        if not self._anchors:
            return (wall - self.deployment.started) * self.speed
        a_wall, a_sim = next((a for a in reversed(self._anchors) if a[0] <= wall), self._anchors[0])
        sim = a_sim + (wall - a_wall) * self.speed
        if self._sim_cap is not None and a_wall == self._anchors[-1][0]:
            sim = min(sim, self._sim_cap)
        return sim

    def _wall_at(self, sim: float) -> float:
        """The wall time at which the compressed clock read `sim` (the end of a minute that waited
        for its traffic maps to when it really ended)."""
        if not self._anchors:
            return self.deployment.started + sim / self.speed
        # A minute's end, computed as start + 60 s, may land an ulp off its anchor: tolerate it.
        a_wall, a_sim = next((a for a in reversed(self._anchors) if a[1] <= sim + 1e-6), self._anchors[0])
        offset = sim - a_sim
        return a_wall + (0.0 if abs(offset) <= 1e-6 else offset / self.speed)

    def sim_at(self, wall: float) -> float:
        """The compressed clock's reading at a wall time (simulated seconds)."""
        return self._sim(wall)

    def sim_now(self) -> float:
        """The compressed clock now (simulated seconds since the deployment started)."""
        return self._sim(self.clock())

    def _outcomes(self) -> int:
        """Requests answered so far by the replayed traffic and the probe (the minutes' pacing)."""
        probe = self.probe.outcomes() if self.probe is not None else 0
        return (self.traffic.outcomes() if self.traffic is not None else 0) + probe

    def _planned(self) -> int:
        """Requests planned for one compressed minute: the users' due in it, and the probe's, but
        never more of the probe's than it still has to send (a probe near the end of its run, or
        one that broke down, must not hold the next minute forever)."""
        users = math.floor(self.traffic.rate * self.minute_s) if self.traffic is not None else 0
        probe = self.probe
        if probe is None:
            return users
        ahead = 0 if getattr(probe, "failure", None) is not None else max(0, self._probe_remaining_at_anchor)
        return users + min(math.floor(probe.wall_rate * self.minute_s), ahead)

    def _anchor(self, wall: float, sim: float) -> None:
        self._anchors.append((wall, sim))
        self._sim_cap = None
        if self.traffic is not None:
            self._outcomes_at_anchor = self._outcomes()
        remaining = getattr(self.probe, "remaining", None)
        self._probe_remaining_at_anchor = remaining() if callable(remaining) else 10**9

    def _close_minute(self, label: str) -> tuple[float | None, str | None]:
        """Wait for the end of the compressed minute that began at the latest anchor: its wall
        time has passed and (with a traffic gauge) the requests planned for it have been answered.
        Returns (its end, None), or (None, why not): "interrupted", or the traffic's failure."""
        a_wall, a_sim = self._anchors[-1]
        nominal = a_wall + self.minute_s
        self._sim_cap = a_sim + 60.0
        traffic = self.traffic
        # The requests due within the minute (floor: at a few requests a real-world hour, most
        # compressed minutes plan none, and must not wait for one).
        target = None if traffic is None else self._outcomes_at_anchor + self._planned()
        # A stall: no answer for stall_s beyond the gap between two planned requests.
        stall_s = self.stall_s + (1.0 / traffic.rate if traffic is not None and traffic.rate > 0 else 0.0)
        seen, waited_noted = self._outcomes_at_anchor, False
        while not self.stop.is_set():
            now = self.clock()
            if traffic is not None:
                failure = traffic.failure()
                if failure is not None:
                    return None, failure
                own = traffic.outcomes()
                if own > self._traffic_seen or not self._traffic_progress:
                    self._traffic_seen, self._traffic_progress = own, now
                elif now - self._traffic_progress >= stall_s:
                    return None, f"stalled: no request answered for {now - self._traffic_progress:.0f} s"
                seen = self._outcomes()
            if now >= nominal and (target is None or seen >= target):
                self._anchor(now, a_sim + 60.0)
                return now, None
            if target is not None and not waited_noted and now >= nominal + self.minute_s:
                waited_noted = True  # said once per minute: the clock holds for the evidence
                self.note(
                    "traffic-wait",
                    f"{label}: the compressed clock holds for this minute's traffic "
                    f"({seen - self._outcomes_at_anchor} of {target - self._outcomes_at_anchor} planned "
                    "requests answered so far): the machine is slower than the replay",
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
            "t_sim_s": round(self._sim(now), 1),
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

    # ------------------------------------------------------------------ stages

    def run(self) -> Deployment:
        """The whole deployment; returns it decided (or stopped by `stop`, then rolled back)."""
        d = self.deployment
        d.started = self.clock()
        self._anchor(d.started, 0.0)
        d.stage = "pretraffic"
        self.note(
            "start",
            f"deployment {d.id}: {self.baseline.model_version} (version {d.baseline}) -> "
            f"{self.canary.model_version} (version {d.canary}), {self.plan.name}",
        )
        if not self._pretraffic():
            return self._finish(BLOCKED)
        hook_done = getattr(self.canary, "mark_hook_done", None)
        if callable(hook_done):  # faults with @hook start now
            hook_done()
        failure = self.traffic.failure() if self.traffic is not None else None
        if failure is not None:  # no traffic to judge the canary on: do not start the shift
            return self._abort(failure)
        for number, step in enumerate(self.plan.steps, 1):
            ended = self._hold(number, step)
            if ended is not None:
                self._stop_probe()
                return self._finish(ended)
        if self.window is not None:
            ended = self._post_traffic()
            if ended is not None:
                return self._finish(ended)
        d.stage = "promotion"
        if d.shift_started is None:  # AllAtOnce: the first user request to the canary is now
            d.shift_started = self.clock()
        self._route(1.0)
        promote = getattr(self.alias, "promote", None)
        if callable(promote):  # CodeDeploy's end state: the alias points at the new version alone
            promote()
        shifted = f"all traffic shifted to version {d.canary} ({self.canary.model_version})"
        if self.window is not None:
            d.reasons.append(f"the PostTraffic gate Succeeded ({d.gate['reason']}); {shifted}")
        elif self.plan.steps:
            d.reasons.append(f"no alarm during {self.plan.minutes:g} minutes of {self.plan.name}; {shifted}")
        else:
            d.reasons.append(f"{self.plan.name}: {shifted} once the PreTraffic hook passed")
        return self._finish(PROMOTED)

    def _pretraffic(self) -> bool:
        d = self.deployment
        self.note(
            "hook",
            f"PreTraffic hook: {self._golden_n()} known-answer requests to version {d.canary} "
            f"(within {self.hook_budget_s:.1f} wall s: the hook's timeout compressed, at least "
            f"{HOOK_MIN_BUDGET_S:g} s)",
        )
        try:
            deadline = time.monotonic() + self.hook_budget_s
            try:
                d.hook = self.pretraffic(
                    self.hook_config,
                    self._hook_invoke,
                    run_id=d.id,
                    deadline=deadline,
                    **self._baseline_pairing(),
                )
            finally:
                self._store_hook_records()
        except (HookError, OSError, ValueError) as exc:
            # The real hook reports Failed on any crash; so does the local one.
            d.hook_error = f"hook crashed: {type(exc).__name__}: {exc}"
            d.reasons.append(f"PreTraffic hook Failed: {d.hook_error}")
            self.note("hook-failed", d.reasons[-1])
            return False
        if not d.hook.passed:
            d.reasons.append(f"PreTraffic hook Failed: {d.hook.reason}")
            self.note("hook-failed", d.reasons[-1], hook=d.hook.status)
            return False
        self.note("hook-passed", f"PreTraffic hook Succeeded: {d.hook.reason}", hook=d.hook.status)
        if self.window is not None:
            # What the judge and the gate read from the hook's log record: its measured
            # canary/baseline handler-latency ratio (None: not measured; latency then lacks a reference).
            self.window.latency_reference = getattr(d.hook, "latency_reference", None)
        return True

    def _baseline_pairing(self) -> dict[str, Any]:
        """The PreTraffic hook's baseline pairing (every text to the baseline too: the latency
        reference), when the hook core takes it."""
        try:
            params = inspect.signature(self.pretraffic).parameters
        except (TypeError, ValueError):
            return {}
        takes = "invoke_baseline" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
        if not takes or self.window is None:
            return {}
        return {"invoke_baseline": self._baseline_invoke, "baseline_version": self.deployment.baseline}

    def _baseline_invoke(self, event: dict[str, Any]) -> Mapping[str, Any]:
        """The hook's request to the baseline version, straight to it (its record kept, source hook)."""
        return self._hook_invoke(event, self.baseline)

    def _golden_n(self) -> str:
        path = getattr(self.hook_config, "known_texts_path", self.hook_config.golden_path)
        try:
            with open(path, encoding="utf-8") as fh:
                return str(sum(1 for line in fh if line.strip()))
        except OSError:
            return "the"

    def _hook_invoke(self, event: dict[str, Any], version: Invocable | None = None) -> Mapping[str, Any]:
        """Invoke the new version (or `version`) directly, as lambda invoke on its qualified ARN
        would; its log record (source "hook") is kept for the store, as the function's logs hold it."""
        target = version or self.canary
        detailed = getattr(target, "invoke_detailed", None)
        if not callable(detailed) or not callable(getattr(self.store, "extend", None)):
            return self._as_hook_answer(target.invoke(event))
        from emulator.functions import request_record
        from emulator.window import status_label

        invocation = detailed(event)
        status, label = status_label(invocation)
        self._hook_records.append(request_record(target, invocation, status, label, time.time(), event))
        return self._as_hook_answer(invocation.payload)

    def _store_hook_records(self) -> None:
        records, self._hook_records = self._hook_records, []
        if records:
            try:
                self.store.extend(records)
            except Exception as exc:  # records lost must not change the hook's outcome
                self.note("warning", f"the hook's records could not be stored: {type(exc).__name__}")

    @staticmethod
    def _as_hook_answer(response: Any) -> Mapping[str, Any]:
        if isinstance(response, Mapping) and "statusCode" not in response and "errorType" in response:
            return {
                "statusCode": None,
                "headers": {},
                "body": "",
                "error": f"function error {response['errorType']}",
            }
        return response

    def _hold(self, number: int, step: Step) -> str | None:
        """Hold one traffic step, evaluating every compressed minute; the outcome when the
        deployment ended in it (ROLLED BACK, ABORTED), None when the step was held to its end."""
        d = self.deployment
        d.stage = f"shift {number}" if len(self.plan.steps) > 1 else "canary"
        self._route(step.weight)
        start = self.clock()
        self._anchor(start, self._sim(start))  # minutes count from the shift
        if d.shift_started is None:
            d.shift_started = start
            self._shift_sim = self._sim(start)
            if self.probe_factory is not None and self.probe is None:
                self.probe = self.probe_factory(self.sim_now)
                self._anchor(start, self._sim(start))  # the minute's plan now counts the probe
        self.note("shift", f"{step.weight:.0%} of traffic to version {d.canary} for {step.minutes:g} minutes")
        minutes = max(1, math.ceil(step.minutes))
        for minute in range(1, minutes + 1):
            label = f"{d.stage} minute {minute}"
            end, failure = self._close_minute(label)
            if failure == "interrupted":
                d.reasons.append("rehearsal interrupted: traffic returned to the baseline")
                self._route(0.0)
                return ROLLED_BACK
            if end is None:
                d.stage = label
                self._abort(failure or "failed")
                return ABORTED
            fired = self._evaluate(end, label)
            if fired:
                d.stage = f"{d.stage} minute {minute}"
                d.reasons += [f"{a.rule.name} in ALARM: {a.reason}" for a in fired]
                if d.judge is not None and any(a.rule.metric == "CanaryVerdict" for a in fired):
                    d.reasons.append(f"the judge said {d.judge.verdict.value}: {d.judge.reason}")
                self._route(0.0)
                names = short_names([a.rule.name for a in d.alarms])
                self.note(
                    "rollback", f"rollback to 0 %: {', '.join(names[a.rule.name] for a in fired)} in ALARM"
                )
                return ROLLED_BACK
        return None

    def _abort(self, failure: str) -> Deployment:
        """Stop the deployment without a verdict: the replayed traffic, the evidence, failed. Traffic
        returns to the baseline as a stopped CodeDeploy deployment's does."""
        d = self.deployment
        d.reasons.append(
            f"the rehearsal's traffic generator {failure}: the deployment was stopped with no verdict "
            "(too little evidence to promote or roll back on); traffic returned to the baseline"
        )
        self._route(0.0)
        self.note("aborted", f"stopped: the traffic generator {failure}")
        return self._finish(ABORTED)

    def _stop_probe(self) -> None:
        if self.probe is not None and self.deployment.probe is None:
            self.deployment.probe = {**self.probe.stop(), "failure": getattr(self.probe, "failure", None)}
            self.probe = None  # the minutes after the window are paced by the users' traffic alone

    def _records(self, since: float, until: float, visible_by: float | None = None) -> list[RequestRecord]:
        """The store's records in a wall window; with visible_by, only those the log lag has let
        through by then (a store without a lag sees them all)."""
        if visible_by is not None and self.lag_max_s > 0:
            return self.store.window(since, until, visible_by=visible_by)
        return self.store.window(since, until)

    def _evaluate(self, end: float, label: str) -> list[AlarmState]:
        """One compressed minute: the judge's look, then every alarm over that minute."""
        if self.window is not None:
            return self._evaluate_evidence(end, label, judge_look=True)
        d = self.deployment
        self.flush()
        sim_end = self._sim(end)
        # The scheduled judge of before issue 10 compares users' requests only.
        records = [
            r
            for r in self.store.window(self._wall_at(sim_end - self.judge_window_sim_s), end)
            if r.source == "live"
        ]
        d.judge = judge(
            records,
            baseline_version=d.baseline,
            canary_version=d.canary,
            manifests=self.manifests,
            config=self.judge_config,
        )
        verdict = VERDICT_VALUE[d.judge.verdict]
        d.looks.append(
            {
                "at": end,
                "t_sim_s": round(sim_end, 1),
                "verdict": d.judge.verdict.value,
                "reason": d.judge.reason,
                "metrics": {m.name: m.classification.value for m in d.judge.metrics},
                "n": {"baseline": d.judge.baseline.get("requests"), "canary": d.judge.canary.get("requests")},
            }
        )
        fired = self._fired(records, sim_end, end, verdict)
        self.note(
            "minute",
            f"{label}: judge {d.judge.verdict.value} "
            f"(n {d.judge.baseline.get('requests')}/{d.judge.canary.get('requests')}); "
            + self._alarm_summary(),
            verdict=d.judge.verdict.value,
            judge_reason=d.judge.reason,
        )
        return fired

    def _evaluate_evidence(self, end: float, label: str, *, judge_look: bool) -> list[AlarmState]:
        """One compressed minute with the evidence judge: its interim look over the window's
        records visible by now (judge_look), then every alarm over that minute's records (metrics
        reach CloudWatch within the minute: no log lag for them)."""
        from emulator.window import JudgeCrashed

        d = self.deployment
        self.flush()
        sim_end = self._sim(end)
        verdict, said = None, "waiting for the window's records"
        if judge_look:
            since = d.shift_started or d.started
            visible = self._records(since, end, visible_by=sim_end)
            try:
                report = self.window.look(visible, since, end, sim_end - self._shift_sim)
            except JudgeCrashed as exc:
                d.judge_errors.append(str(exc))
                d.looks.append(
                    {
                        "at": end,
                        "t_sim_s": round(sim_end, 1),
                        "verdict": None,
                        "reason": str(exc),
                        "final": False,
                    }
                )
                said = f"judge crashed, no verdict published ({exc})"
            else:
                if report is None:
                    said = "judge: no record of a version visible yet, no verdict published"
                else:
                    d.judge = report
                    verdict = VERDICT_VALUE[report.verdict]
                    d.looks.append(_look(report, end, sim_end))
                    n = d.looks[-1]["n"]
                    said = (
                        f"judge {report.verdict.value} (n live/probe visible: baseline "
                        f"{_ns(n['baseline'])}, canary {_ns(n['canary'])})"
                    )
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

    def _post_traffic(self) -> str | None:
        """AllowTraffic is done: 100 % on the new version; then the PostTraffic gate (AfterAllowTraffic)
        waits for the window's records on the compressed clock, the alarms still watched every
        minute, and judges the whole window. Returns ROLLED BACK or ABORTED when the deployment
        ended here, None when the gate Succeeded."""
        from emulator.window import GateInterrupted

        d = self.deployment
        self._stop_probe()
        window_end = self.clock()
        window_end_sim = self._sim(window_end)
        self._route(1.0)
        d.stage = "posttraffic"
        start = self.clock()
        self._anchor(start, self._sim(start))
        self._gate_minute = 0
        self._gate_ended: str | None = None
        cfg = self.window.gate_config
        self.note(
            "posttraffic",
            f"AllowTraffic done: 100 % to version {d.canary}; PostTraffic gate: waits "
            f"{cfg.max_log_lag_s:g} s after the window for late log records, then until none arrives "
            f"for {cfg.settle_s:g} s",
        )
        since = d.shift_started or d.started
        try:
            decision, report, complete = self.window.gate(
                lambda: self._records(since, window_end, visible_by=self.sim_now()),
                since=since,
                until=window_end,
                window_end=window_end_sim,
                window_s=window_end_sim - self._shift_sim,
                now=self.sim_now,
                sleep=self._gate_sleep,
            )
        except GateInterrupted:
            return self._gate_ended or ROLLED_BACK
        now_sim = self.sim_now()
        d.gate = {
            "succeeded": decision.succeeded,
            "status": "Succeeded" if decision.succeeded else "Failed",
            "reason": decision.reason,
            "records_complete": complete,
            "t_sim_s": round(now_sim, 1),
            "window_sim_s": [round(self._shift_sim, 1), round(window_end_sim, 1)],
        }
        if report is not None:
            d.judge = report
            d.looks.append(_look(report, self.clock(), now_sim))
        if decision.succeeded:
            self.note("gate-passed", f"PostTraffic gate Succeeded: {decision.reason}")
            return None
        d.reasons.append(f"PostTraffic gate Failed: {decision.reason}")
        self._route(0.0)
        self.note("rollback", f"rollback to 0 %: PostTraffic gate Failed: {decision.reason}")
        return ROLLED_BACK

    def _gate_sleep(self, seconds: float) -> None:
        """The gate's sleep, on the compressed clock: every compressed minute that ends meanwhile is
        closed as during the canary (traffic-paced) and its alarms evaluated; an alarm, a stop or a
        failed traffic generator ends the deployment (GateInterrupted)."""
        from emulator.window import GateInterrupted

        d = self.deployment
        target = self.sim_now() + max(0.0, seconds)
        while not self.stop.is_set():
            minute_end = self._anchors[-1][1] + 60.0
            if minute_end > target:
                now = self.sim_now()
                if now < target:
                    self.stop.wait((target - now) / self.speed)
                if self.sim_now() >= target - 1e-6:
                    return
                continue
            self._gate_minute += 1
            label = f"posttraffic minute {self._gate_minute}"
            end, failure = self._close_minute(label)
            if end is None:
                break
            fired = self._evaluate_evidence(end, label, judge_look=False)
            if fired:
                d.stage = label
                d.reasons += [f"{a.rule.name} in ALARM: {a.reason}" for a in fired]
                self._route(0.0)
                self.note(
                    "rollback", "rollback to 0 %: " + ", ".join(a.rule.name for a in fired) + " in ALARM"
                )
                self._gate_ended = ROLLED_BACK
                raise GateInterrupted("an alarm fired while the gate waited")
        if self.stop.is_set():
            d.reasons.append("rehearsal interrupted: traffic returned to the baseline")
            self._route(0.0)
            self._gate_ended = ROLLED_BACK
        else:
            d.stage = f"posttraffic minute {self._gate_minute}"
            self._abort(failure or "failed")
            self._gate_ended = ABORTED
        raise GateInterrupted("the deployment ended while the gate waited")

    def _fired(
        self, records: Sequence[RequestRecord], sim_end: float, end: float, verdict: int | None
    ) -> list[Any]:
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

    def _finish(self, outcome: str) -> Deployment:
        d = self.deployment
        if d.outcome is not None:  # decided already (an abort finishes itself)
            return d
        d.outcome = outcome
        d.completed = self.clock()
        if outcome == BLOCKED:
            d.stage = "pretraffic"
        self.note("end", f"{outcome}: " + "; ".join(d.reasons))
        return d
