"""RequestRecord validation and the local RecordStore (SQLite) the local stack writes to."""

from __future__ import annotations

import multiprocessing
import sqlite3
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


# ---------------------------------------------------------------- issue 10: source, probe id, shadow

OLD_LOG_RECORD = {  # a record logged before issue 10: none of its fields
    "function_version": "6",
    "model_version": "v1",
    "latency_ms": 0.8,
    "label": "neither",
    "status": 200,
    "timestamp": 20.0,
}
NEW_LOG_RECORD = {  # the handler's record of a probe request since issue 10
    **OLD_LOG_RECORD,
    "source": "probe",
    "probe_id": "run3-4312-17",
    "shadow": {"v2": "offensive_language"},
    "shadow_ms": 0.42,
}


def test_old_record_parses_with_the_new_fields_defaulted():
    """A record without source, probe_id, shadow or shadow_ms is a live record with no shadow."""
    record = RequestRecord.from_mapping(OLD_LOG_RECORD)
    assert record == RequestRecord("6", "v1", 0.8, "neither", 200, 20.0)
    assert (record.source, record.probe_id, record.shadow, record.shadow_ms) == ("live", None, (), None)


def test_new_record_round_trips_through_as_dict():
    """A probe record with a shadow label: from_mapping reads the log's dict, and as_dict() reads back
    to the same record."""
    record = RequestRecord.from_mapping(NEW_LOG_RECORD)
    assert record == RequestRecord(
        "6", "v1", 0.8, "neither", 200, 20.0, "probe", "run3-4312-17", (("v2", "offensive_language"),), 0.42
    )
    assert record.shadow_label("v2") == "offensive_language" and record.shadow_label("v3") is None
    assert RequestRecord.from_mapping(record.as_dict()) == record


def test_logs_insights_nulls_and_flattened_shadow_are_read():
    """Logs Insights gives nulls as "" or "null" and flattens the shadow object into
    "shadow.<model>" fields: both read as the log record itself."""
    row = {**OLD_LOG_RECORD, "source": "probe", "probe_id": "run3-4312-17", "shadow_ms": "0.42"}
    row.update({"shadow.v2": "offensive_language", "shadow.v3": "null"})
    assert RequestRecord.from_mapping(row) == RequestRecord.from_mapping(NEW_LOG_RECORD)
    nulls = {**OLD_LOG_RECORD, "source": "", "probe_id": "null", "shadow": "", "shadow_ms": "null"}
    assert RequestRecord.from_mapping(nulls) == RequestRecord.from_mapping(OLD_LOG_RECORD)


def test_shadow_pairs_are_sorted_by_model():
    """A shadow of several models becomes (model, label) pairs sorted by model, whatever the order."""
    data = {**OLD_LOG_RECORD, "model_version": "v2", "shadow": {"v3": "neither", "v1": "hate_speech"}}
    assert RequestRecord.from_mapping(data).shadow == (("v1", "hate_speech"), ("v3", "neither"))


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"source": "canary"}, "source 'canary'"),
        ({"source": "probe", "probe_id": None}, "needs a probe_id"),
        ({"source": "hook", "probe_id": None}, "needs a probe_id"),
        ({"source": "live", "probe_id": "p1"}, "carries no probe_id"),
        ({"shadow": {"v2": "spam"}}, "shadow label 'spam'"),
        ({"shadow": {"v1": "neither"}}, "shadow scores the served model"),
        ({"shadow": [["v2", "neither"], ["v2", "hate_speech"]]}, "shadow names a model twice"),
        ({"shadow": {"v2": "neither"}, "label": None, "status": 500}, "without a label"),
        ({"shadow_ms": "-1"}, "shadow_ms -1.0"),
        ({"shadow_ms": "inf"}, "shadow_ms inf"),
        ({"shadow": "{not json"}, "malformed"),
    ],
)
def test_new_fields_are_validated(changes, problem):
    """problem() checks the new fields: a known source, a probe id exactly for probe and hook
    records, shadow labels among the API's labels (one per model, never the served model's, only
    beside a served label), a sane shadow_ms."""
    with pytest.raises(ValueError, match="malformed request record") as raised:
        RequestRecord.from_mapping({**OLD_LOG_RECORD, **changes})
    assert problem in str(raised.value)


def test_problem_refuses_unsorted_shadow_pairs_built_directly():
    """A record built by hand with its shadow pairs out of order is not judged."""
    record = RequestRecord("6", "v3", 1.0, "neither", 200, 1.0, shadow=(("v2", "neither"), ("v1", "neither")))
    assert "sorted" in record.problem()


def test_store_round_trips_new_records(tmp_path):
    """The local store keeps source, probe id, shadow labels and shadow_ms."""
    store = RecordStore(tmp_path / "r.sqlite")
    records = [RequestRecord.from_mapping(NEW_LOG_RECORD), RequestRecord.from_mapping(OLD_LOG_RECORD)]
    store.extend(records)
    assert store.window(0, 100) == records


def test_store_created_before_issue_10_gains_the_new_columns(tmp_path):
    """A store file an older version created (six columns) opens, keeps its rows as live records
    without a shadow, and takes new records."""
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE records (id INTEGER PRIMARY KEY AUTOINCREMENT, timestamp REAL NOT NULL,"
            " function_version TEXT NOT NULL, model_version TEXT NOT NULL, latency_ms REAL NOT NULL,"
            " label TEXT, status INTEGER NOT NULL);"
            "INSERT INTO records (timestamp, function_version, model_version, latency_ms, label, status)"
            " VALUES (20.0, '6', 'v1', 0.8, 'neither', 200);"
        )
    store = RecordStore(path)
    store.append(RequestRecord.from_mapping({**NEW_LOG_RECORD, "timestamp": 21.0}))
    old, new = store.window(0, 100)
    assert old == RequestRecord.from_mapping(OLD_LOG_RECORD)
    assert new.shadow == (("v2", "offensive_language"),) and new.source == "probe"
    assert len(RecordStore(path)) == 2  # opening it again migrates nothing twice


# ---------------------------------------------------------------- the converter to the evidence judge


def _served(model: str, label: str, shadow: dict[str, str], **changes) -> RequestRecord:
    data = {**OLD_LOG_RECORD, "model_version": model, "label": label, "shadow": shadow, **changes}
    return RequestRecord.from_mapping(data)


def test_baseline_record_pairs_old_served_with_new_shadow():
    """Rollout v1 -> v2, a record of the baseline (serving v1): label is v1's, shadow_label v2's."""
    record = _served("v1", "neither", {"v2": "hate_speech"})
    evidence = record.to_evidence(baseline_model="v1", canary_model="v2")
    assert (evidence.model_version, evidence.label, evidence.shadow_label) == ("v1", "neither", "hate_speech")
    assert (evidence.source, evidence.probe_id, evidence.status, evidence.latency_ms) == (
        "live",
        None,
        200,
        0.8,
    )
    assert evidence.problem() is None


def test_canary_record_pairs_new_served_with_old_shadow():
    """The same rollout, a record of the canary (serving v2): label is v2's, shadow_label v1's; the
    judge's collect() turns both groups' records into (old, new) pairs the same way round."""
    from canary.evidence import Group, collect

    baseline = _served("v1", "neither", {"v2": "hate_speech"})
    canary = _served("v2", "hate_speech", {"v1": "neither"})
    evidence = canary.to_evidence(baseline_model="v1", canary_model="v2")
    assert (evidence.model_version, evidence.label, evidence.shadow_label) == ("v2", "hate_speech", "neither")
    pairs = collect(
        [baseline.to_evidence(baseline_model="v1", canary_model="v2")],
        [evidence],
        baseline_model="v1",
        canary_model="v2",
    ).live_pairs
    assert pairs == {
        (Group.BASELINE, "neither", "hate_speech"): 1,
        (Group.CANARY, "neither", "hate_speech"): 1,
    }


def test_probe_record_keeps_its_probe_id_and_expected_label():
    """A probe record converts with its probe id and the expected label the caller looked up."""
    record = _served("v2", "neither", {"v1": "neither"}, source="probe", probe_id="run3-4312-17")
    evidence = record.to_evidence(baseline_model="v1", canary_model="v2", expected_label="neither")
    assert (evidence.source, evidence.probe_id, evidence.expected_label) == (
        "probe",
        "run3-4312-17",
        "neither",
    )
    assert evidence.problem() is None


def test_record_without_the_other_models_shadow_has_no_pair():
    """Shadow scoring off (or the other model not loaded): shadow_label None, the record still counts."""
    evidence = _served("v1", "neither", {}).to_evidence(baseline_model="v1", canary_model="v2")
    assert evidence.shadow_label is None and evidence.problem() is None


def test_same_model_rollout_pairs_the_served_label_with_itself():
    """v2 -> v2 (a code or setting change): the other model is the served one, so its label is
    the served label (deterministic models), not a missing shadow."""
    evidence = _served("v2", "neither", {"v1": "hate_speech"}).to_evidence(
        baseline_model="v2", canary_model="v2"
    )
    assert evidence.shadow_label == "neither"


def test_hook_record_is_not_evidence():
    """The PreTraffic hook's golden requests are not converted: the judge leaves them out."""
    record = _served("v2", "neither", {"v1": "neither"}, source="hook", probe_id="run9-5")
    assert record.to_evidence(baseline_model="v1", canary_model="v2") is None
