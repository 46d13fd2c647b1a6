"""emulator.worker's side of the protocol: the handler's log records read off its stdout and sent
back with each answer, one invocation's records never mixed with the next one's."""

from __future__ import annotations

import io
import json

from emulator.worker import RecordTap, _invoke


def _logging_handler(tap: RecordTap, records: list[dict], fail: bool):
    def handler(event, context):
        for record in records:
            tap.write(json.dumps({"message": "inference", "text_chars": 9, **record}) + "\n")
        if fail:
            raise RuntimeError("the model broke")
        return {"statusCode": 200, "body": "{}"}

    return handler


def _answer(handler, tap: RecordTap, request_id: str) -> dict:
    message = {"id": request_id, "event": {}, "timeout_ms": 1000, "invoked_function_arn": "arn"}
    line, _ = _invoke(handler, None, message, tap)
    return json.loads(line)


def test_each_answer_carries_only_its_own_invocations_records(monkeypatch):
    """A batch that logs two texts and then raises answers with no records; the next invocation's
    answer carries its one record alone (the failed batch's are not left over for it), with only
    the fields the judge reads."""
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "")
    tap = RecordTap(io.StringIO())
    batch = [{"label": "neither", "batch_index": i, "batch_size": 2} for i in range(2)]
    failed = _answer(_logging_handler(tap, batch, fail=True), tap, "r-1")
    served = _answer(_logging_handler(tap, [{"label": "hate_speech", "latency_ms": 1.5}], False), tap, "r-2")
    assert (failed["ok"], failed["records"]) == (False, [])
    assert (served["ok"], served["records"]) == (True, [{"label": "hate_speech", "latency_ms": 1.5}])


def test_a_batch_answer_carries_one_record_per_text_in_the_order_logged(monkeypatch):
    """A batch request's answer holds every text's record, in the order the handler logged them,
    and the tap passes the handler's output through unchanged."""
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "")
    out = io.StringIO()
    tap = RecordTap(out)
    batch = [{"label": label, "batch_index": i, "batch_size": 2} for i, label in enumerate(("a", "b"))]
    answer = _answer(_logging_handler(tap, batch, fail=False), tap, "r-1")
    assert answer["records"] == batch
    assert out.getvalue().count('"message": "inference"') == 2
