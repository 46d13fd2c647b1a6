"""RequestRecord validation and the local RecordStore (SQLite) the local stack writes to."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import pytest

from canary.records import RecordStore, RequestRecord


def _record(i: int, version: str = "1") -> RequestRecord:
    return RequestRecord(version, "v1", 1.0 + i / 1000, "neither", 200, 1000.0 + i)


def _write_many(args: tuple[str, str, int]) -> int:
    path, version, n = args
    store = RecordStore(path)
    for i in range(n):
        store.append(_record(i, version))
    return n


def test_store_returns_the_window_in_time_order(tmp_path):
    """window(since, until) returns exactly the records inside the bounds, oldest first."""
    store = RecordStore(tmp_path / "records.sqlite")
    store.extend([_record(5), _record(1), _record(3)])
    store.append(_record(9))
    window = store.window(1001.0, 1005.0)
    assert [r.timestamp for r in window] == [1001.0, 1003.0, 1005.0]
    assert window[0] == _record(1)
    assert len(store) == 4


def test_store_is_safe_for_several_writer_processes(tmp_path):
    """Four processes appending at once lose and corrupt nothing."""
    path = str(tmp_path / "shared.sqlite")
    RecordStore(path)
    # spawn, not fork: real writers are separate programs, and fork() of a threaded pytest is unsafe
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=4, mp_context=context) as pool:
        written = sum(pool.map(_write_many, [(path, str(v), 150) for v in range(4)]))
    records = RecordStore(path).window(0, 1e12)
    assert written == len(records) == 600
    assert {r.function_version for r in records} == {"0", "1", "2", "3"}
    assert all(r.label == "neither" and r.status == 200 for r in records)


def test_store_keeps_failed_requests_without_a_label(tmp_path):
    """A 5xx record round-trips with label None."""
    store = RecordStore(tmp_path / "r.sqlite")
    failed = RequestRecord("2", "v2", 0.4, None, 500, 5.0)
    store.append(failed)
    assert store.window(0, 10) == [failed]


def test_record_from_mapping_reads_a_log_record():
    """A log record's fields (strings from Logs Insights, null label) become a RequestRecord."""
    record = RequestRecord.from_mapping(
        {
            "function_version": 7,
            "model_version": "v2",
            "latency_ms": "0.41",
            "label": "null",
            "status": "500",
            "timestamp": 12.5,
        }
    )
    assert record == RequestRecord("7", "v2", 0.41, None, 500, 12.5)


@pytest.mark.parametrize(
    "bad",
    [
        {"latency_ms": "nan"},
        {"latency_ms": -2},
        {"status": 42},
        {"label": "spam"},
        {"label": None, "status": 200},
        {"drop": "function_version"},
    ],
)
def test_record_from_mapping_refuses_malformed_records(bad):
    """Impossible latencies, statuses, labels, or a missing key raise ValueError naming the problem."""
    data = {
        "function_version": "7",
        "model_version": "v2",
        "latency_ms": 1.0,
        "label": "neither",
        "status": 200,
        "timestamp": 1.0,
    }
    data.update({k: v for k, v in bad.items() if k != "drop"})
    if "drop" in bad:
        del data[bad["drop"]]
    with pytest.raises(ValueError, match="malformed request record"):
        RequestRecord.from_mapping(data)
