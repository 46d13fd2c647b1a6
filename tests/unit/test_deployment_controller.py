"""The local deployment controller: CodeDeploy's traffic plans, the alarms evaluated the
CloudWatch way over the records of one period, a deployment driven tick by tick through its
phases, and a whole deployment on a fake clock with fake traffic: compressed minutes paced by the
traffic, and a traffic generator that dies or stalls."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from canary.hook import Check, HookResult
from canary.records import RequestRecord
from emulator.controller import (
    ABORTED,
    ALARM,
    BLOCKED,
    INSUFFICIENT,
    OK,
    PROMOTED,
    ROLLED_BACK,
    AlarmState,
    Controller,
    Phase,
    datapoint,
    short_names,
)
from stack import AlarmSettings, plan_for


def _record(version: str, status: int = 200, latency: float = 1.0, label: str | None = "neither"):
    return RequestRecord(
        version, "v2" if version == "2" else "v1", latency, label if status < 400 else None, status, 0.0
    )


def _rule(new_version_only: bool = True, **overrides) -> AlarmSettings:
    fields = {
        "name": "errors",
        "namespace": "AWS/Lambda",
        "metric": "Errors",
        "statistic": "Sum",
        "threshold": 0.0,
        "comparison": "GreaterThanThreshold",
        # Scoped to the new version as the template scopes Lambda's metrics: by ExecutedVersion.
        "dimensions": {"ExecutedVersion": "2"} if new_version_only else {},
    }
    return AlarmSettings(**{**fields, **overrides})


def test_errors_count_only_the_new_versions_crashes():
    """Lambda's Errors (scoped by ExecutedVersion) counts the canary's 502/504, not a 500 the
    handler chose to answer, and nothing of the baseline's."""
    records = [_record("1", 502), _record("2", 502), _record("2", 500), _record("2", 504), _record("2")]
    assert datapoint(_rule(), records, "2", None) == 2.0
    assert datapoint(_rule(), [_record("1")], "2", None) is None


def test_api_5xx_counts_every_version_and_p99_duration_is_the_canarys():
    """API 5XXError counts all 5xx answers; Duration p99 reads the canary's latencies."""
    records = [_record("1", 500), _record("2", 502)] + [_record("2", latency=float(i)) for i in range(1, 101)]
    api = _rule(namespace="AWS/ApiGateway", metric="5XXError", new_version_only=False)
    assert datapoint(api, records, "2", None) == 2.0
    p99 = _rule(metric="Duration", statistic="p99", threshold=100.0)
    assert 98.0 <= datapoint(p99, records, "2", None) <= 100.0


def test_the_verdict_alarm_reads_what_the_judge_published():
    """CanaryVerdict is the judge's value for the period (2 FAIL), None when it published none."""
    verdict = _rule(
        namespace="HateSpeechApi",
        metric="CanaryVerdict",
        statistic="Maximum",
        threshold=2.0,
        comparison="GreaterThanOrEqualToThreshold",
        new_version_only=False,
    )
    assert datapoint(verdict, [], "2", 2) == 2.0
    assert datapoint(verdict, [], "2", None) is None


def test_two_of_two_datapoints_are_needed_and_missing_data_does_not_breach():
    """The p99 alarm (EvaluationPeriods 2, DatapointsToAlarm 2, notBreaching): one slow minute is
    OK, a missing minute resets nothing into ALARM, two slow minutes in a row are ALARM."""
    state = AlarmState(
        _rule(
            metric="Duration", statistic="p99", threshold=100.0, evaluation_periods=2, datapoints_to_alarm=2
        )
    )
    assert state.state == INSUFFICIENT
    assert not state.evaluate(150.0, 1.0) and state.state == OK
    assert not state.evaluate(None, 2.0) and state.state == OK
    assert not state.evaluate(150.0, 3.0) and state.state == OK
    assert state.evaluate(180.0, 4.0) and state.state == ALARM
    assert "2 of the last 2 datapoints" in state.reason
    assert not state.evaluate(190.0, 5.0), "already in ALARM: not a new transition"


def test_treat_missing_as_breaching_turns_silence_into_an_alarm():
    """TreatMissingData breaching: a minute without data counts against the canary."""
    state = AlarmState(_rule(treat_missing_data="breaching"))
    assert state.evaluate(None, 1.0) and state.state == ALARM


def test_a_metric_the_local_stack_cannot_measure_stays_insufficient():
    """An alarm on a metric with no local counterpart never fires and says why."""
    state = AlarmState(_rule(namespace="AWS/Lambda", metric="Throttles"))
    assert not state.evaluate(datapoint(state.rule, [_record("2")], "2", None), 1.0)
    assert state.state == INSUFFICIENT and "not measured locally" in state.reason


def test_short_names_drop_the_shared_prefix():
    """hate-speech-prod-canary-errors and hate-speech-prod-api-5xx read canary-errors and api-5xx."""
    names = ["hate-speech-prod-canary-errors", "hate-speech-prod-api-5xx"]
    assert short_names(names) == {names[0]: "canary-errors", names[1]: "api-5xx"}


# --------------------------------------------------------------------------- a whole deployment


class FakeClock:
    """Wall time that moves only when the controller waits (its `stop` event is this object)."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def is_set(self) -> bool:
        return False

    def wait(self, seconds: float) -> bool:
        self.now += max(seconds, 0.001)
        return False


class FakeTraffic:
    """Replayed traffic planned at `rate` req/s that gets `throughput` req/s answered, from the
    moment it is made; it can die at a wall time, or stop making progress (stall)."""

    def __init__(self, clock, rate=100.0, throughput=100.0, dies_at=None, stalls_at=None) -> None:
        self.clock, self.rate, self.throughput = clock, rate, throughput
        self.start, self.dies_at, self.stalls_at = clock.now, dies_at, stalls_at

    def outcomes(self) -> int:
        elapsed = self.clock.now - self.start
        if self.stalls_at is not None:
            elapsed = min(elapsed, self.stalls_at)
        return int(elapsed * self.throughput + 1e-9)

    def failure(self):
        if self.dies_at is not None and self.clock.now - self.start >= self.dies_at:
            return "died (killed by SIGKILL)"
        return None


class FakeStore:
    """One baseline record per request the traffic got answered, stamped when it was; remembers
    the windows the judge read."""

    def __init__(self, traffic: FakeTraffic | None) -> None:
        self.traffic = traffic
        self.windows: list[tuple[float, float]] = []

    def window(self, since: float, until: float) -> list:
        self.windows.append((since, until))
        if self.traffic is None:
            return []
        t = self.traffic
        stamps = (t.start + (i + 1) / t.throughput for i in range(t.outcomes()))
        return [RequestRecord("1", "v1", 1.0, "neither", 200, ts) for ts in stamps if since <= ts <= until]


class FakeAlias:
    def __init__(self) -> None:
        self.weights: list[float] = []

    def set_routing(self, canary, weight: float) -> None:
        self.weights.append(weight)


def _passing_hook(config, invoke, **_):
    check = Check("errors", True, 0, 0, "no golden request failed")
    return HookResult((check,), sent=300, answered=300, model_version="v2")


def _controller(clock: FakeClock, **overrides) -> Controller:
    """Canary10Percent5Minutes at speed 60 (a compressed minute = 1 wall second), a passing hook, no
    alarms, no traffic gauge, an evidence window whose gate passes at once; `overrides` replace any."""
    args = {
        "alias": FakeAlias(),
        "baseline": SimpleNamespace(function_version="1", model_version="v1"),
        "canary": SimpleNamespace(function_version="2", model_version="v2"),
        "plan": plan_for("Canary10Percent5Minutes"),
        "alarms": [],
        "store": FakeStore(None),
        "hook_config": SimpleNamespace(time_margin_s=0.0, golden_path="/nonexistent"),
        "speed": 60.0,
        "clock": clock,
        "stop": clock,
        "pretraffic": _passing_hook,
        "window": FakeWindow([], gate=True, gate_wait_s=0.0),
    }
    return Controller(**{**args, **overrides})


def _deployment(traffic_args: dict | None, stall_s: float = 40.0):
    """Canary10Percent5Minutes at speed 60 (a compressed minute = 1 wall second), a passing hook,
    no alarms; traffic planned at 100 req/s with the given behaviour (None: no traffic gauge)."""
    clock = FakeClock()
    traffic = None if traffic_args is None else FakeTraffic(clock, **traffic_args)
    store, alias = FakeStore(traffic), FakeAlias()
    at_minutes: list[tuple[float, int]] = []

    def on_event(entry: dict) -> None:
        if entry["kind"] in ("shift", "minute") and traffic is not None:
            at_minutes.append((entry["at"], traffic.outcomes()))

    window = FakeWindow([], gate=True, gate_wait_s=0.0)
    controller = _controller(
        clock,
        alias=alias,
        # Never fires; its datapoints count each compressed minute's requests.
        alarms=[_rule(name="count", metric="Invocations", threshold=1e9, new_version_only=False)],
        store=store,
        on_event=on_event,
        traffic=traffic,
        stall_s=stall_s,
        window=window,
    )
    return controller.run(), window, alias, at_minutes


def test_a_slow_machine_stretches_the_minutes_instead_of_thinning_their_traffic():
    """The traffic gets only 40 of its planned 100 req/s through: each compressed minute waits
    until its 100 planned requests are answered (2.5 wall seconds instead of 1), says so once,
    and still reads 1:00, 2:00, ... on the compressed clock; each alarm period holds that
    minute's 100 requests, and the judge's last look still reads all five minutes since the shift
    (~500 requests), though they took 12.5 s of wall time instead of 5."""
    deployment, window, _, at_minutes = _deployment({"throughput": 40.0})
    assert deployment.outcome == PROMOTED
    assert len(at_minutes) == 6, "the shift, then five minutes"
    pairs = list(zip(at_minutes, at_minutes[1:], strict=False))
    assert all(n1 - n0 >= 100 for (_, n0), (_, n1) in pairs), at_minutes
    assert all(t1 - t0 == pytest.approx(2.5, abs=0.03) for (t0, _), (t1, _) in pairs), at_minutes
    shift = next(e for e in deployment.timeline if e["kind"] == "shift")
    minutes = [e["t_sim_s"] for e in deployment.timeline if e["kind"] == "minute"]
    assert minutes == [pytest.approx(shift["t_sim_s"] + 60 * k, abs=0.1) for k in range(1, 6)]
    assert sum(e["kind"] == "traffic-wait" for e in deployment.timeline) == 5
    assert deployment.alarms[0].values == [pytest.approx(100, abs=2)] * 5
    assert len(window.looks) == 5 and len(window.looks[-1][0]) == pytest.approx(500, abs=2)


def test_traffic_that_keeps_up_leaves_the_minutes_at_their_nominal_length():
    """Traffic at its planned rate: no minute waits beyond its 1 wall second (plus the polling
    step), and no wait is reported."""
    deployment, _, _, at_minutes = _deployment({"throughput": 100.0})
    assert deployment.outcome == PROMOTED
    walls = [t1 - t0 for (t0, _), (t1, _) in zip(at_minutes, at_minutes[1:], strict=False)]
    assert len(walls) == 5 and all(w == pytest.approx(1.0, abs=0.03) for w in walls), walls
    assert not any(e["kind"] == "traffic-wait" for e in deployment.timeline)


def test_a_traffic_generator_that_dies_mid_canary_aborts_without_a_verdict():
    """The generator dies in the second canary minute: the deployment is ABORTED (not promoted,
    not rolled back on the canary's account), traffic goes back to 0 %, and the reason names the
    dead generator and says there is no verdict."""
    deployment, _, alias, _ = _deployment({"dies_at": 1.5})
    assert deployment.outcome == ABORTED and deployment.status == "Stopped"
    assert alias.weights[-1] == 0.0 and 0.1 in alias.weights and 1.0 not in alias.weights
    assert "traffic generator died (killed by SIGKILL)" in deployment.reasons[-1]
    assert "no verdict" in deployment.reasons[-1]
    assert deployment.stage == "canary minute 2" and len(deployment.looks) == 1


def test_a_stalled_traffic_generator_aborts_after_the_stall_limit():
    """The generator is alive but nothing is answered any more: after stall_s without progress
    the deployment is ABORTED and the reason says the generator stalled."""
    deployment, _, alias, _ = _deployment({"stalls_at": 1.2}, stall_s=5.0)
    assert deployment.outcome == ABORTED
    assert "traffic generator stalled: no request answered for 5 s" in deployment.reasons[-1]
    assert alias.weights[-1] == 0.0


def test_a_traffic_generator_dead_before_the_shift_never_sends_the_canary_traffic():
    """Died during the PreTraffic hook: the shift never happens (the canary gets 0 % throughout)."""
    deployment, _, alias, _ = _deployment({"dies_at": 0.0})
    assert deployment.outcome == ABORTED
    assert set(alias.weights) == {0.0} and deployment.looks == []


# --------------------------------------------------------------------------- issue 10: evidence window


class FakeReport:
    """What the controller reads of an evidence judge's report."""

    def __init__(self, verdict: str, final: bool = False) -> None:
        from canary.evidence import Verdict

        self.verdict, self.final, self.reason = Verdict(verdict), final, f"said {verdict}"
        self.alpha_look, self.metrics = 0.001, ()
        self.groups = {
            "baseline": {"requests": {"live": 1, "probe": 2}},
            "canary": {"requests": {"probe": 2}},
        }


class FakeWindow:
    """An EvidenceWindow: interim looks say `verdicts` in turn (an exception is raised); the gate
    sleeps `gate_wait_s` simulated seconds on the controller's clock, then decides."""

    def __init__(self, verdicts, gate: bool = True, gate_wait_s: float = 660.0) -> None:
        from canary.config import GateConfig

        self.verdicts, self.gate_ok, self.gate_wait_s = list(verdicts), gate, gate_wait_s
        self.gate_config = GateConfig(function_name="f")
        self.looks: list[tuple[list, float]] = []
        self.gate_calls: list[dict] = []

    def look(self, records, since, until, elapsed_s):
        self.looks.append((records, elapsed_s))
        said = self.verdicts.pop(0) if self.verdicts else "INCONCLUSIVE"
        if isinstance(said, Exception):
            raise said
        return FakeReport(said)

    def gate(self, read, *, since, until, window_end, window_s, now, sleep):
        from canary.evidence import GateDecision

        started = now()
        sleep(self.gate_wait_s)
        self.gate_calls.append({"window_end": window_end, "window_s": window_s, "waited": now() - started})
        read()
        return (
            GateDecision(self.gate_ok, "PASS" if self.gate_ok else "INCONCLUSIVE at the final look"),
            (FakeReport("PASS" if self.gate_ok else "INCONCLUSIVE", final=True)),
            True,
        )


class LaggedFakeStore(FakeStore):
    """Remembers the visibility time each read asked for."""

    def __init__(self, traffic) -> None:
        super().__init__(traffic)
        self.visible_by: list[float | None] = []

    def window(self, since, until, visible_by=None):
        self.visible_by.append(visible_by)
        return super().window(since, until)


class FakeProbe:
    """A probe scheduled at 10 texts per compressed minute (at speed 60, 10 per wall second) that
    gets `throughput` texts per wall second answered."""

    def __init__(self, clock, sim_clock, throughput: float = 10.0) -> None:
        self.clock, self.start, self.stopped, self.throughput = clock, clock.now, False, throughput
        self.began = sim_clock()

    def outcomes(self) -> int:
        return int((self.clock.now - self.start) * self.throughput + 1e-9)

    def due_by(self, sim: float) -> int:
        return int((sim - self.began) / 6.0 + 1e-9)

    def stop(self):
        self.stopped = True
        return {"texts": self.outcomes(), "answered": {}, "failed": {}, "stopped": "stopped"}


def _evidence_deployment(
    window: FakeWindow, alarms=(), lag_max_s: float = 600.0, traffic_args=None, probe_throughput=10.0
):
    """Canary10Percent5Minutes at speed 60 with traffic, a probe and the evidence window."""
    clock = FakeClock()
    traffic = FakeTraffic(clock, **(traffic_args or {}))
    store, alias = LaggedFakeStore(traffic), FakeAlias()
    alias.promoted = False
    alias.promote = lambda: setattr(alias, "promoted", True)
    canary = SimpleNamespace(function_version="2", model_version="v2", hook_done=0)
    canary.mark_hook_done = lambda: setattr(canary, "hook_done", canary.hook_done + 1)
    probes: list[FakeProbe] = []
    controller = _controller(
        clock,
        alias=alias,
        canary=canary,
        alarms=list(alarms),
        store=store,
        traffic=traffic,
        window=window,
        probe=lambda sim_clock: probes.append(FakeProbe(clock, sim_clock, probe_throughput)) or probes[-1],
        lag_max_s=lag_max_s,
    )
    return controller.run(), store, alias, canary, probes


def test_the_gate_promotes_only_after_the_window_and_the_wait_for_late_records():
    """Evidence window: five interim looks (INCONCLUSIVE never rolls back), the probe runs during
    the canary only, 100 % goes to the new version before the gate (AllowTraffic is over), the
    gate waits 660 s on the compressed clock with the alarms evaluated every minute meanwhile,
    and its Succeeded promotes. @hook faults were told the hook is done, once."""
    window = FakeWindow(["INCONCLUSIVE"] * 5, gate=True)
    count = _rule(name="count", metric="Invocations", threshold=1e9, new_version_only=False)
    deployment, store, alias, canary, probes = _evidence_deployment(window, alarms=[count])
    assert deployment.outcome == PROMOTED and alias.promoted
    # 10 % for the canary, 100 % once AllowTraffic is done, then promotion (100 %, the alias moved).
    assert alias.weights[alias.weights.index(0.1) :] == [0.1, 1.0, 1.0]
    assert canary.hook_done == 1
    assert len(window.looks) == 5 and [round(e) for _, e in window.looks] == [60, 120, 180, 240, 300]
    assert probes and probes[0].stopped and deployment.probe is not None
    (gate,) = window.gate_calls
    assert gate["waited"] == pytest.approx(660.0, abs=1.0) and gate["window_s"] == pytest.approx(
        300.0, abs=1.0
    )
    assert len(deployment.alarms[0].values) == 5 + 11, "the alarms kept being evaluated while the gate waited"
    assert deployment.gate["status"] == "Succeeded"
    assert any("PostTraffic gate Succeeded" in r for r in deployment.reasons)
    # The interim looks read only what the log lag let through by their simulated time.
    assert [v for v in store.visible_by if v is not None] == sorted(
        v for v in store.visible_by if v is not None
    )


def test_traffic_ahead_of_its_plan_does_not_close_a_minute_the_probe_is_behind_in():
    """On a busy machine the users' open-loop traffic gets 300 req/s answered (three times its
    plan) while the probe gets only 4 of its 10 texts per wall second through. Each canary minute
    holds until the probe has answered its own 10 (2.5 wall seconds, not 1): the users' surplus does
    not stand in for the probe's pairs, which the judge's label and latency metrics need. The wait
    is said with each source's count."""
    window = FakeWindow(["INCONCLUSIVE"] * 5, gate=True)
    deployment, _, _, _, probes = _evidence_deployment(
        window, traffic_args={"throughput": 300.0}, probe_throughput=4.0
    )
    assert deployment.outcome == PROMOTED
    ends = [e["at"] for e in deployment.timeline if e["kind"] in ("shift", "minute")][:6]
    walls = [t1 - t0 for t0, t1 in zip(ends, ends[1:], strict=False)]
    assert len(walls) == 5 and all(w == pytest.approx(2.5, abs=0.05) for w in walls), walls
    waits = [e["message"] for e in deployment.timeline if e["kind"] == "traffic-wait"]
    assert len(waits) == 5 and "users' " in waits[0] and "probe's " in waits[0], waits
    assert " of 10 so far" in waits[0], "the probe's plan for the first minute: 10 texts"


def test_a_probe_that_stops_answering_aborts_the_deployment_instead_of_holding_the_clock():
    """The probe stops getting answers in the first canary minute (an invoke that never returns)
    while the users' traffic flows: the minute cannot close on the probe's plan, so after the stall
    limit the deployment is ABORTED with no verdict (traffic back to the baseline) and the reason
    names the probe, rather than the rehearsal waiting for ever."""
    window = FakeWindow(["INCONCLUSIVE"] * 5, gate=True)
    deployment, _, alias, _, _ = _evidence_deployment(window, probe_throughput=0.0)
    assert deployment.outcome == ABORTED and alias.weights[-1] == 0.0
    assert "probe stalled: no request answered for 40 s" in deployment.reasons[-1], deployment.reasons


def test_a_gate_that_does_not_pass_rolls_back_after_full_traffic():
    """The gate says INCONCLUSIVE (not a pass): the deployment is ROLLED BACK from 100 % to 0 %,
    at stage posttraffic, with the gate's reason."""
    deployment, _, alias, _, _ = _evidence_deployment(FakeWindow([], gate=False))
    assert deployment.outcome == ROLLED_BACK and not alias.promoted
    assert alias.weights[-2:] == [1.0, 0.0]
    assert deployment.stage == "posttraffic" and deployment.gate["status"] == "Failed"
    assert "PostTraffic gate Failed: INCONCLUSIVE" in deployment.reasons[-1]


def test_an_interim_fail_rolls_back_through_the_verdict_alarm_and_stops_the_probe():
    """The second look says FAIL: CanaryVerdict = 2 breaches the judge alarm, the canary is rolled
    back in minute 2, the probe is stopped and the gate never runs."""
    judge_alarm = _rule(
        name="judge-fail",
        namespace="HateSpeech",
        metric="CanaryVerdict",
        statistic="Maximum",
        threshold=2.0,
        comparison="GreaterThanOrEqualToThreshold",
        new_version_only=False,
    )
    window = FakeWindow(["INCONCLUSIVE", "FAIL"])
    deployment, _, alias, _, probes = _evidence_deployment(window, alarms=[judge_alarm])
    assert deployment.outcome == ROLLED_BACK and deployment.stage == "canary minute 2"
    assert alias.weights[-1] == 0.0 and 1.0 not in alias.weights
    assert probes[0].stopped and window.gate_calls == []


def test_a_judge_that_crashes_publishes_nothing_and_the_gate_decides():
    """Every interim look raises: no verdict datapoint (missing data does not breach the judge
    alarm), each crash is kept, and the gate still runs and decides (here: Failed)."""
    from emulator.window import JudgeCrashed

    judge_alarm = _rule(
        name="judge-fail",
        metric="CanaryVerdict",
        threshold=2.0,
        comparison="GreaterThanOrEqualToThreshold",
        new_version_only=False,
    )
    window = FakeWindow([JudgeCrashed("boom")] * 5, gate=False)
    deployment, _, _, _, _ = _evidence_deployment(window, alarms=[judge_alarm])
    assert deployment.judge_errors == ["boom"] * 5
    assert deployment.alarms[0].state != ALARM and deployment.alarms[0].values[:5] == [None] * 5
    assert deployment.outcome == ROLLED_BACK and deployment.gate["status"] == "Failed"


def test_an_alarm_while_the_gate_waits_rolls_back_without_a_gate_decision():
    """An alarm only full traffic can breach (the canary's invocations per minute, 10x more at 100 %
    than at 10 %) fires during the gate's wait: rolled back from 100 % to 0 % at a posttraffic
    minute, with no gate decision; the gate's thread ends."""
    # 100 req/s for a 1 s compressed minute: ~10 canary requests at 10 %, ~100 at 100 %.
    busy = _rule(name="busy", metric="Invocations", threshold=50.0, new_version_only=True)

    class CanaryStore(LaggedFakeStore):
        def __init__(self, traffic, alias) -> None:
            super().__init__(traffic)
            self.alias = alias

        def window(self, since, until, visible_by=None):
            records = super().window(since, until, visible_by)
            share = self.alias.weights[-1] if self.alias.weights else 0.0
            n = int(len(records) * share)
            return [
                RequestRecord("2", "v2", 1.0, "neither", 200, r.timestamp) for r in records[:n]
            ] + records[n:]

    window = FakeWindow([], gate=True)
    clock = FakeClock()
    traffic = FakeTraffic(clock)
    alias = FakeAlias()
    store = CanaryStore(traffic, alias)
    controller = _controller(
        clock, alias=alias, alarms=[busy], store=store, traffic=traffic, window=window, lag_max_s=600.0
    )
    deployment = controller.run()
    assert deployment.outcome == ROLLED_BACK and deployment.stage.startswith("posttraffic minute")
    assert deployment.gate is None and window.gate_calls == []
    assert alias.weights[-2:] == [1.0, 0.0]
    # The gate, left waiting on its own thread, was told the deployment ended: its thread ends too.
    gates = [t for t in threading.enumerate() if t.name == "posttraffic-gate"]
    for thread in gates:
        thread.join(timeout=10.0)
    assert not any(t.is_alive() for t in gates)


def test_the_lagged_store_shows_a_record_only_once_its_lag_has_passed(tmp_path):
    """LaggedStore: each record gets its answer time on the reader's clock plus a seeded lognormal
    lag (median 120 s, at most 600 s); a read with visible_by sees only the records visible by
    then, a read without it sees them all; --log-lag 0 shows each at once. A store written before
    (no visible_at column) is brought up to date and its rows count as visible."""
    import sqlite3

    from emulator.store import LaggedStore, LogLag

    lag = LogLag(120.0, seed=3)
    draws = [lag.draw() for _ in range(2000)]
    assert max(draws) <= 600.0 and sorted(draws)[1000] == pytest.approx(120.0, rel=0.1)
    store = LaggedStore(tmp_path / "r.sqlite", lag=LogLag(120.0, seed=1), clock=lambda ts: ts - 1000.0)
    records = [RequestRecord("1", "v1", 1.0, "neither", 200, 1000.0 + i) for i in range(100)]
    store.extend(records)
    assert len(store.window(0, 2000)) == 100
    early = store.window(0, 2000, visible_by=60.0)
    late = store.window(0, 2000, visible_by=700.0)
    assert 0 < len(early) < 50 and len(late) == 100
    instant = LaggedStore(tmp_path / "i.sqlite", lag=LogLag(0.0), clock=lambda ts: ts - 1000.0)
    instant.extend(records)
    assert len(instant.window(0, 2000, visible_by=99.0)) == 100
    old = tmp_path / "old.sqlite"
    with sqlite3.connect(old) as db:
        db.execute(
            "CREATE TABLE records (id INTEGER PRIMARY KEY AUTOINCREMENT, timestamp REAL NOT NULL, "
            "function_version TEXT NOT NULL, model_version TEXT NOT NULL, latency_ms REAL NOT NULL, "
            "label TEXT, status INTEGER NOT NULL)"
        )
        db.execute("INSERT INTO records VALUES (1, 5.0, '1', 'v1', 1.0, 'neither', 200)")
    (row,) = LaggedStore(old).window(0, 10, visible_by=0.0)
    assert (row.source, row.function_version) == ("live", "1")


def test_the_hook_pairs_with_the_baseline_and_its_latency_reference_reaches_the_judge():
    """With an evidence window the PreTraffic hook core gets the baseline to pair every text with
    (invoke_baseline, baseline_version); the latency reference it measured is what the judge's and
    the gate's latency metric then test against."""
    seen = {}

    def hook(config, invoke, **kwargs):
        seen.update(kwargs)
        return SimpleNamespace(passed=True, reason="ok", status="Succeeded", latency_reference=4.2)

    window = FakeWindow([], gate=True)
    window.latency_reference = None
    controller = _controller(FakeClock(), store=LaggedFakeStore(None), pretraffic=hook, window=window)
    assert controller.run().outcome == PROMOTED
    assert seen["baseline_version"] == "1" and callable(seen["invoke_baseline"])
    assert window.latency_reference == 4.2


def test_a_baseline_5xx_trips_none_of_the_templates_gating_alarms():
    """The baseline answers a live request with a 502 (its worker died) while the canary answers
    every request well: none of the template's DeploymentPreference alarms (the new version's
    errors and p99, the judge's verdict) breaches, so the good canary is not rolled back. The
    API-wide 5xx alarm pages on-call but is no longer among them (issue 11)."""
    from stack import load_settings

    rules = list(load_settings().alarms)
    assert rules and not any(r.namespace == "AWS/ApiGateway" for r in rules)
    minute = [_record("1", status=502)] + [_record("1") for _ in range(8)] + [_record("2") for _ in range(2)]
    for rule in rules:
        state = AlarmState(rule)
        state.evaluate(datapoint(rule, minute, new_version="2", verdict=None), 60.0)
        assert state.state != ALARM, rule.name


# --------------------------------------------------------------------------- tick by tick


def _ticks(controller: Controller) -> list[tuple[Phase, float, str]]:
    """Step the controller to its end: after each tick, (its phase, the canary's share, its stage)."""
    seen = []
    while controller.phase not in (Phase.PROMOTED, Phase.ROLLED_BACK, Phase.BLOCKED, Phase.ABORTED):
        assert len(seen) < 50, "the deployment never ended"
        phase = controller.step()
        seen.append((phase, controller.deployment.weight, controller.deployment.stage))
    return seen


def test_tick_by_tick_a_failed_hook_blocks_the_deployment_before_any_traffic():
    """The PreTraffic hook fails: the start tick, then the hook's tick ends the deployment BLOCKED
    (CodeDeploy: Failed) with the alias never moved; a further tick changes nothing."""

    def failing_hook(config, invoke, **_):
        check = Check("errors", False, 3, 0, "3 golden requests failed")
        return HookResult((check,), sent=300, answered=297, model_version="v2")

    alias = FakeAlias()
    controller = _controller(FakeClock(), alias=alias, pretraffic=failing_hook)
    assert controller.phase is Phase.CREATED
    assert _ticks(controller) == [(Phase.PRE_TRAFFIC, 0.0, "pretraffic"), (Phase.BLOCKED, 0.0, "pretraffic")]
    deployment = controller.deployment
    assert deployment.outcome == BLOCKED and deployment.status == "Failed" and alias.weights == []
    assert "PreTraffic hook Failed" in deployment.reasons[-1]
    assert controller.step() is Phase.BLOCKED and len(deployment.timeline) == len(controller.run().timeline)


def test_tick_by_tick_an_alarm_in_the_canary_window_rolls_back():
    """The judge's third interim look says FAIL: the verdict alarm fires on that minute's tick and
    the canary goes back to 0 % (ROLLED BACK at canary minute 3); one tick shifted, one per minute."""
    judge_alarm = _rule(
        name="judge-fail",
        metric="CanaryVerdict",
        statistic="Maximum",
        threshold=2.0,
        comparison="GreaterThanOrEqualToThreshold",
        new_version_only=False,
    )
    window = FakeWindow(["INCONCLUSIVE", "INCONCLUSIVE", "FAIL"])
    controller = _controller(FakeClock(), alarms=[judge_alarm], window=window)
    assert _ticks(controller) == [
        (Phase.PRE_TRAFFIC, 0.0, "pretraffic"),
        (Phase.SHIFTING, 0.0, "pretraffic"),
        (Phase.SHIFTING, 0.1, "canary"),
        (Phase.SHIFTING, 0.1, "canary"),
        (Phase.SHIFTING, 0.1, "canary"),
        (Phase.ROLLED_BACK, 0.0, "canary minute 3"),
    ]
    deployment = controller.deployment
    assert deployment.outcome == ROLLED_BACK and deployment.alarms[0].state == ALARM
    assert "the judge said FAIL" in deployment.reasons[-1] and window.gate_calls == []


def test_tick_by_tick_a_healthy_linear_deployment_is_promoted():
    """Linear34PercentEvery1Minute: each step is a shift tick then a minute tick (34 %, then 68 %);
    the last minute's tick opens the PostTraffic gate (100 %). The gate's tick runs it until it
    asks to wait 150 s: two ticks close a compressed minute each (alarms evaluated), one ends the
    wait, and the gate's last tick decides: PROMOTED."""
    alias = FakeAlias()
    alias.promoted = False
    alias.promote = lambda: setattr(alias, "promoted", True)
    window = FakeWindow(["INCONCLUSIVE"] * 2, gate=True, gate_wait_s=150.0)
    count = _rule(name="count", metric="Invocations", threshold=1e9, new_version_only=False)
    controller = _controller(
        FakeClock(), alias=alias, alarms=[count], plan=plan_for("Linear34PercentEvery1Minute"), window=window
    )
    assert _ticks(controller) == [
        (Phase.PRE_TRAFFIC, 0.0, "pretraffic"),
        (Phase.SHIFTING, 0.0, "pretraffic"),
        (Phase.SHIFTING, 0.34, "shift 1"),
        (Phase.SHIFTING, 0.34, "shift 1"),
        (Phase.SHIFTING, 0.68, "shift 2"),
        (Phase.POST_TRAFFIC, 1.0, "posttraffic"),
        (Phase.POST_TRAFFIC, 1.0, "posttraffic"),
        (Phase.POST_TRAFFIC, 1.0, "posttraffic"),
        (Phase.POST_TRAFFIC, 1.0, "posttraffic"),
        (Phase.POST_TRAFFIC, 1.0, "posttraffic"),
        (Phase.PROMOTED, 1.0, "promotion"),
    ]
    deployment = controller.deployment
    assert deployment.outcome == PROMOTED and deployment.status == "Succeeded" and alias.promoted
    assert len(window.looks) == 2 and deployment.gate["status"] == "Succeeded"
    minutes = [e["message"].split(":")[0] for e in deployment.timeline if e["kind"] == "minute"]
    assert minutes == ["shift 1 minute 1", "shift 2 minute 1", "posttraffic minute 1", "posttraffic minute 2"]
    assert len(deployment.alarms[0].values) == 4
    assert window.gate_calls[0]["waited"] == pytest.approx(150.0, abs=1.0)


def test_tick_by_tick_failed_evidence_aborts_without_a_verdict():
    """The traffic generator dies in the second canary minute: that minute's tick cannot close it,
    and the deployment is ABORTED there (back to 0 %, no verdict), never reaching the gate."""
    clock = FakeClock()
    traffic = FakeTraffic(clock, dies_at=1.5)
    window = FakeWindow([])
    controller = _controller(clock, store=FakeStore(traffic), traffic=traffic, window=window)
    assert _ticks(controller) == [
        (Phase.PRE_TRAFFIC, 0.0, "pretraffic"),
        (Phase.SHIFTING, 0.0, "pretraffic"),
        (Phase.SHIFTING, 0.1, "canary"),
        (Phase.SHIFTING, 0.1, "canary"),
        (Phase.ABORTED, 0.0, "canary minute 2"),
    ]
    deployment = controller.deployment
    assert deployment.outcome == ABORTED and deployment.status == "Stopped"
    assert "no verdict" in deployment.reasons[-1] and window.gate_calls == []
