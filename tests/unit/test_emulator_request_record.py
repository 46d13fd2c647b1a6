"""emulator.functions.request_record: the record the local judge reads of one direct invocation."""

from __future__ import annotations

from types import SimpleNamespace

from emulator.functions import Invocation, request_record

VERSION = SimpleNamespace(function_version="7", model_version="v2")


def _probe_event() -> dict:
    return {"requestContext": {"requestId": "probe-RUN-r3-1"}, "body": "{}"}


def _invocation(record: dict) -> Invocation:
    return Invocation("req", "7", {"statusCode": 200}, None, 12.5, False, None, (record,))


def test_a_probe_answer_with_an_unreadable_log_record_stays_a_probe_record():
    """A probe answer whose log record cannot be read (a shadow label that is no label) falls back
    to the caller's figures, with the source and probe id its request id names: never live."""
    log = {"source": "probe", "probe_id": "RUN-r3-1", "shadow": {"v1": "not a label"}, "latency_ms": 3.0}
    record = request_record(VERSION, _invocation(log), 200, "neither", 100.0, _probe_event())
    assert (record.source, record.probe_id) == ("probe", "RUN-r3-1")
    assert record.latency_ms == 12.5  # the Invoke API's figure: the log record was not read


def test_a_probe_answer_logged_with_a_null_source_is_read_as_the_probe_it_is():
    """A log record with source null (as an older handler might log it) takes the request id's
    source, as Logs Insights reads correlation_id: the probe's answer is not counted as a user's."""
    log = {"source": None, "probe_id": None, "latency_ms": 3.0}
    record = request_record(VERSION, _invocation(log), 200, "neither", 100.0, _probe_event())
    assert (record.source, record.probe_id, record.latency_ms) == ("probe", "RUN-r3-1", 3.0)
