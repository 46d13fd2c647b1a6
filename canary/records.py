"""Per-request records the judge compares, and the local store the local stack writes them to.

A RequestRecord is what the inference function logs once per request (contract: keys
model_version, function_version, label, latency_ms, status), plus when it happened. On AWS
they come from CloudWatch Logs (canary.sources); locally the gateway appends them to a
RecordStore, an SQLite file that several writer processes share safely (WAL journal, one
short transaction per append, a busy timeout instead of failing on a locked database).
"""

from __future__ import annotations

import math
import os
import sqlite3
from collections.abc import Iterable, Mapping
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

LABELS = ("hate_speech", "offensive_language", "neither")  # the API's labels (infer.model.LABELS)


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request answered by one function version."""

    function_version: str  # the Lambda version that answered ("7"); tells baseline from canary
    model_version: str  # the model it serves ("v1", "v2"); picks the manifests
    latency_ms: float  # handler-measured latency of this request
    label: str | None  # predicted label, None when the request failed
    status: int  # HTTP status answered
    timestamp: float  # epoch seconds (UTC) when the request was answered

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

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
        return None


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
_COLUMNS = "function_version, model_version, latency_ms, label, status, timestamp"


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
        rows = [
            (r.function_version, r.model_version, r.latency_ms, r.label, r.status, r.timestamp)
            for r in records
        ]
        with closing(self._connect()) as db, db:
            db.executemany(f"INSERT INTO records ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)", rows)
        return len(rows)

    def window(self, since: float, until: float) -> list[RequestRecord]:
        """Records with since <= timestamp <= until, in the order they were answered."""
        with closing(self._connect()) as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM records WHERE timestamp BETWEEN ? AND ? ORDER BY timestamp, id",
                (since, until),
            ).fetchall()
        return [RequestRecord(*row) for row in rows]

    def __len__(self) -> int:
        with closing(self._connect()) as db:
            return int(db.execute("SELECT COUNT(*) FROM records").fetchone()[0])
