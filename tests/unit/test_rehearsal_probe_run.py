"""The rehearsal's probe run (emulator.window.ProbeRun): what the controller paces its minutes on."""

from __future__ import annotations

import json
import time

from canary.probe import ProbeText
from emulator.functions import EnvironmentFailed, Invocation
from emulator.window import ProbeRun

TEXTS = [ProbeText(row_id=str(i), text=f"text {i}") for i in range(5)]


class AnsweringVersion:
    """A function version that answers every request with a label."""

    function_version, model_version = "1", "v1"

    def invoke_detailed(self, event):
        body = json.dumps({"label": "neither"})
        return Invocation("r", "1", {"statusCode": 200, "body": body}, None, 1.0, False, None)


class BrokenVersion:
    """A function version whose execution environment cannot start: Lambda refuses every call."""

    function_version, model_version = "2", "v2"

    def invoke_detailed(self, event):
        raise EnvironmentFailed("init crashed")


def _probe_run(canary, *, duration_s: float, clock, speed: float, sink) -> ProbeRun:
    """A probe at 10 texts per compressed second from baseline "1" (answering) to canary "2"."""
    versions = {"1": AnsweringVersion(), "2": canary}
    return ProbeRun(versions, TEXTS, "1", "2", 10.0, duration_s, clock, speed, sink)


def test_a_text_whose_invoke_failed_still_counts_as_finished():
    """The canary's environment cannot start, so each of its invocations raises InvokeError and
    leaves no log record. The probe still finishes all 20 texts it planned, and says so: a count of
    records only would stay at 0 and hold the controller's minute for pairs that never come. Only
    the baseline's 20 answers reach the store."""
    stored: list = []
    began = time.monotonic()
    clock = lambda: (time.monotonic() - began) * 100.0  # noqa: E731
    run = _probe_run(BrokenVersion(), duration_s=2.0, clock=clock, speed=100.0, sink=stored.extend).start()
    assert run._thread is not None
    run._thread.join(timeout=30.0)
    summary = run.stop()
    assert run.failure is None and summary["texts"] == 20
    assert run.outcomes() == 20 and run.due_by(1e9) == 20
    assert summary["failed"] == {"2": 20} and summary["answered"] == {"1": 20}
    assert len(stored) == 20 and {r.function_version for r in stored} == {"1"}


def _wait_for(condition, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


def test_a_held_clock_lets_the_probe_finish_exactly_what_its_schedule_says_is_due():
    """The controller holds the compressed clock at a minute's end until the probe has answered
    due_by(that end). So due_by must never promise a text the held clock does not make due (the
    minute would wait for ever), nor fall more than one short: at 10 texts per compressed second,
    held at 6.05 s (texts 0..60 due) and then at exactly 12 s (a text due on the edge), the probe
    answers what due_by says and sends nothing beyond what is due."""
    now = [0.0]
    run = _probe_run(AnsweringVersion(), duration_s=60.0, clock=lambda: now[0], speed=1000.0, sink=len)
    assert run.due_by(100.0) == 0, "nothing is due before the run starts"
    run.start()
    try:
        for held, due in ((6.05, 61), (12.0, 121)):
            now[0] = held
            assert due - 1 <= run.due_by(held) <= due
            assert _wait_for(lambda held=held: run.outcomes() >= run.due_by(held)), (held, run.outcomes())
            time.sleep(0.05)
            assert run.outcomes() <= due, "the probe sent a text that was not due yet"
        assert run.due_by(1e9) == 600, "60 s at 10 texts/s"
    finally:
        run.stop()
