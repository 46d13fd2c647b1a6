"""Per-request records the judge compares, and the local store the local stack writes them to.

A RequestRecord is what the inference function logs once per request (contract: keys
model_version, function_version, label, latency_ms, status; since issue 10 also source, probe_id,
shadow and shadow_ms, optional so older records still parse), plus when it happened. On AWS
they come from CloudWatch Logs (canary.sources); locally the gateway appends them to a
RecordStore, an SQLite file that several writer processes share safely (WAL journal, one
short transaction per append, a busy timeout instead of failing on a locked database).
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from infer.model import LABELS  # the API's labels: one home
from infer.sources import LIVE, SOURCES

if TYPE_CHECKING:
    from canary.evidence import EvidenceRecord

_NULLS = (None, "", "null")  # how a null arrives: JSON null, Logs Insights' "" or "null"


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request answered by one function version."""

    function_version: str  # the Lambda version that answered ("7"); tells baseline from canary
    model_version: str  # the model it serves ("v1", "v2"); picks the manifests
    latency_ms: float  # handler-measured latency of this request
    label: str | None  # predicted label, None when the request failed
    status: int  # HTTP status answered
    timestamp: float  # epoch seconds (UTC) when the request was answered
    source: str = LIVE  # "live" (a user), "probe" (the synthetic probe) or "hook" (PreTraffic)
    probe_id: str | None = None  # probe and hook: the id of the text sent (both versions get it)
    shadow: tuple[tuple[str, str], ...] = ()  # (model, label) of each other shipped model, sorted
    shadow_ms: float | None = None  # time the shadow scoring took (not part of latency_ms)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def shadow_label(self, model: str) -> str | None:
        """The label `model` gave this request's text in the shadow, None when it gave none."""
        return dict(self.shadow).get(model)

    def to_evidence(
        self, *, baseline_model: str, canary_model: str, expected_label: str | None = None
    ) -> EvidenceRecord | None:
        """What the evidence judge reads of this record, for a rollout from `baseline_model` to
        `canary_model` (the one converter). The served label stays the served label; the shadow
        label is the one the pair's *other* model gave the same text: a baseline record carries
        (old served, new shadow), a canary record (new served, old shadow), and collect() orders
        them. When both groups serve the same model, the other label is the served one (the
        models are deterministic). `expected_label`: a probe's label for this text and the served
        model, from the probe set. None for the hook's records: the golden set is not evidence."""
        from canary.evidence import EvidenceRecord, Source  # here: evidence may come to import records

        if self.source not in {s.value for s in Source}:
            return None
        other = canary_model if self.model_version == baseline_model else baseline_model
        return EvidenceRecord(
            model_version=self.model_version,
            label=self.label,
            shadow_label=self.label if other == self.model_version else self.shadow_label(other),
            status=self.status,
            latency_ms=self.latency_ms,
            source=self.source,
            expected_label=expected_label,
            probe_id=self.probe_id,
        )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> RequestRecord:
        """Build from a log record or a stored row; raises ValueError on anything malformed."""
        try:
            label = data.get("label")
            record = cls(
                function_version=str(data["function_version"]),
                model_version=str(data["model_version"]),
                latency_ms=float(data["latency_ms"]),
                label=None if label in (None, "", "null") else str(label),
                status=int(float(data["status"])),
                timestamp=float(data["timestamp"]),
                source=LIVE if data.get("source") in _NULLS else str(data["source"]),
                probe_id=None if data.get("probe_id") in _NULLS else str(data["probe_id"]),
                shadow=_shadow_pairs(data),
                shadow_ms=None if data.get("shadow_ms") in _NULLS else float(data["shadow_ms"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed request record ({exc.__class__.__name__}: {exc})") from None
        problem = record.problem()
        if problem:
            raise ValueError(f"malformed request record: {problem}")
        return record

    def problem(self) -> str | None:
        """Why this record cannot be judged, or None when it is sound."""
        if not math.isfinite(self.latency_ms) or self.latency_ms < 0:
            return f"latency_ms {self.latency_ms!r} is not a finite non-negative number"
        if not 100 <= self.status <= 599:
            return f"status {self.status} is not an HTTP status"
        if self.label is not None and self.label not in LABELS:
            return f"label {self.label!r} is not one of {LABELS}"
        if self.status < 400 and self.label is None:
            return f"status {self.status} without a label"
        if not math.isfinite(self.timestamp):
            return "timestamp is not finite"
        return self._issue10_problem()

    def _issue10_problem(self) -> str | None:
        """The checks of the fields issue 10 added (source, probe_id, shadow, shadow_ms)."""
        if self.source not in SOURCES:
            return f"source {self.source!r} is not one of {SOURCES}"
        if self.source == LIVE and self.probe_id is not None:
            return "a live record carries no probe_id"
        if self.source != LIVE and not self.probe_id:
            return f"a {self.source} record needs a probe_id"
        models = [pair[0] if isinstance(pair, tuple) and len(pair) == 2 else None for pair in self.shadow]
        if any(not isinstance(m, str) or not m for m in models) or models != sorted(set(models)):
            return "shadow must be sorted (model, label) pairs, one per model"
        if self.model_version in models:
            return f"shadow scores the served model {self.model_version!r}"
        bad = [label for _, label in self.shadow if label not in LABELS]
        if bad:
            return f"shadow label {bad[0]!r} is not one of {LABELS}"
        if self.shadow and self.label is None:
            return "shadow labels on a request without a label"
        if self.shadow_ms is not None and not (math.isfinite(self.shadow_ms) and self.shadow_ms >= 0):
            return f"shadow_ms {self.shadow_ms!r} is not a finite non-negative number"
        return None


def _shadow_pairs(data: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """The shadow labels of a log record or row, sorted by model. Accepted forms: a mapping
    {model: label} (the log record), its JSON text (the local store), (model, label) pairs, or
    Logs Insights' flattened fields "shadow.<model>" (it flattens JSON objects that way)."""
    raw = data.get("shadow")
    if isinstance(raw, str):
        raw = json.loads(raw) if raw.strip() not in _NULLS else None
    if raw is None:
        raw = {k[len("shadow.") :]: v for k, v in data.items() if k.startswith("shadow.") and v not in _NULLS}
    items = raw.items() if isinstance(raw, Mapping) else raw
    pairs = [(str(model), str(label)) for model, label in items]
    if len({model for model, _ in pairs}) != len(pairs):
        raise ValueError("shadow names a model twice")
    return tuple(sorted(pairs))


class RecordSource(Protocol):
    """Anything the judge can read a time window of records from (local store, CloudWatch)."""

    def window(self, since: float, until: float) -> list[RequestRecord]:
        """Records with since <= timestamp <= until, oldest first."""
        ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    timestamp REAL NOT NULL,
    function_version TEXT NOT NULL,
    model_version TEXT NOT NULL,
    latency_ms REAL NOT NULL,
    label TEXT,
    status INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS records_by_time ON records (timestamp);
"""
# Issue 10's columns, added to a store an older version created (ALTER TABLE ... ADD COLUMN).
_ADDED_COLUMNS = {
    "source": "TEXT NOT NULL DEFAULT 'live'",
    "probe_id": "TEXT",
    "shadow": "TEXT NOT NULL DEFAULT '{}'",  # JSON {model: label}
    "shadow_ms": "REAL",
}
ROW_COLUMNS = ", ".join(
    ("function_version", "model_version", "latency_ms", "label", "status", "timestamp", *_ADDED_COLUMNS)
)


def to_row(r: RequestRecord) -> tuple[Any, ...]:
    """A record as the store's row, in ROW_COLUMNS order (the one home of the row format)."""
    return (
        *(r.function_version, r.model_version, r.latency_ms, r.label, r.status, r.timestamp),
        *(r.source, r.probe_id, json.dumps(dict(r.shadow), sort_keys=True), r.shadow_ms),
    )


def from_row(row: Sequence[Any]) -> RequestRecord:
    """The record of a row read as SELECT {ROW_COLUMNS}."""
    return RequestRecord(*row[:8], tuple(sorted(json.loads(row[8]).items())), row[9])


class RecordStore:
    """An append-only SQLite store of RequestRecords, safe for several writer processes.

    Each call opens its own short-lived connection, so an instance may be shared across
    fork() and threads; SQLite's file locking serialises the writers.
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db, db:
            db.executescript(_SCHEMA)
        self._add_columns()

    def _add_columns(self, columns: Mapping[str, str] = _ADDED_COLUMNS) -> None:
        """Bring a store created before issue 10 up to date (old rows get the defaults); a subclass
        adds its own `columns` ({name: SQL type}) the same way (emulator.store)."""
        with closing(self._connect()) as db:
            db.isolation_level = None  # the transaction below is explicit
            db.execute("BEGIN IMMEDIATE")  # one process at a time, so two never add the same column
            try:
                have = {row[1] for row in db.execute("PRAGMA table_info(records)")}
                for name, kind in columns.items():
                    if name not in have:
                        db.execute(f"ALTER TABLE records ADD COLUMN {name} {kind}")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.isolation_level = "DEFERRED"
        return db

    def append(self, record: RequestRecord) -> None:
        """Add one record (one transaction)."""
        self.extend((record,))

    def extend(self, records: Iterable[RequestRecord]) -> int:
        """Add many records in one transaction; returns how many."""
        rows = [to_row(r) for r in records]
        with closing(self._connect()) as db, db:
            db.executemany(f"INSERT INTO records ({ROW_COLUMNS}) VALUES ({', '.join('?' * 10)})", rows)
        return len(rows)

    def window(self, since: float, until: float) -> list[RequestRecord]:
        """Records with since <= timestamp <= until, in the order they were answered."""
        with closing(self._connect()) as db:
            rows = db.execute(
                f"SELECT {ROW_COLUMNS} FROM records WHERE timestamp BETWEEN ? AND ? ORDER BY timestamp, id",
                (since, until),
            ).fetchall()
        return [from_row(row) for row in rows]

    def __len__(self) -> int:
        with closing(self._connect()) as db:
            return int(db.execute("SELECT COUNT(*) FROM records").fetchone()[0])
