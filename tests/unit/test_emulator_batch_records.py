"""emulator.functions.batch_request_records: a batch answer becomes one record per text in the
local store, as the handler logged them (the judge counts texts)."""

from __future__ import annotations

from types import SimpleNamespace

from emulator.functions import Invocation, batch_request_records

VERSION = SimpleNamespace(function_version="7", model_version="v2")


def _log(index: int, size: int, label: str, shadow: str) -> dict:
    return {
        "label": label,
        "latency_ms": 0.5,
        "source": "live",
        "probe_id": None,
        "shadow": {"v1": shadow},
        "shadow_ms": 0.1,
        "batch_index": index,
        "batch_size": size,
    }


def _invocation(logs: list[dict]) -> Invocation:
    return Invocation("req", "7", {"statusCode": 200}, None, 9.0, False, None, tuple(logs))


def test_one_record_per_text_with_the_answer_s_label_and_the_logged_shadow():
    """Three logged texts (logged out of order) -> three records in batch order: the answer's
    labels, each text's own shadow label and latency share."""
    logs = [
        _log(2, 3, "neither", "neither"),
        _log(0, 3, "hate_speech", "offensive_language"),
        _log(1, 3, "neither", "hate_speech"),
    ]
    labels = ["hate_speech", "neither", "neither"]
    records = batch_request_records(VERSION, _invocation(logs), 200, labels, 100.0)
    assert [(r.label, r.shadow_label("v1")) for r in records] == [
        ("hate_speech", "offensive_language"),
        ("neither", "hate_speech"),
        ("neither", "neither"),
    ]
    assert all(r.latency_ms == 0.5 and r.status == 200 and r.problem() is None for r in records)


def test_logs_that_do_not_match_the_answer_give_no_batch_records():
    """A missing text record (or a count that differs from the answer's) gives [], so the gateway
    keeps one record for the request instead of inventing texts."""
    logs = [_log(0, 3, "neither", "neither"), _log(2, 3, "neither", "neither")]
    assert batch_request_records(VERSION, _invocation(logs), 200, ["neither"] * 3, 100.0) == []
    assert batch_request_records(VERSION, _invocation(logs[:1]), 200, ["neither"] * 2, 100.0) == []
