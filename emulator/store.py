"""The rehearsal's record store: canary.records.RecordStore plus the log lag.

On AWS a request's log record reaches CloudWatch Logs, and so the judge, minutes after the request
(ingestion, Logs Insights indexing). A rehearsal that judged records the instant they were written
would show a canary that decides on evidence AWS never has in time. So every record written here
gets a visibility time, `visible_at`, on the clock the reader asks with (the deployment controller's
compressed clock, in simulated seconds): when it was answered plus a log lag drawn from `lag`. A
reader that passes `visible_by` only sees the records visible by then; one that does not (the
report, `serve`) sees them all.

The lag model (LogLag): lognormal with median `median_s` and log-sd 0.6 (the evidence judge's
planning assumption, canary.evidence.EvidenceConfig), cut at 5 x the median (600 s for the
default 120 s), seeded; median 0 makes every record visible at once.

A store created before (no visible_at column) gets the column added; its old rows count as
visible at once.
"""

from __future__ import annotations

import json
import math
import random
import threading
from collections.abc import Callable, Iterable
from contextlib import closing
from dataclasses import dataclass

from canary.records import RecordStore, RequestRecord

LAG_SIGMA = 0.6  # log-sd of the lag (canary.evidence.EvidenceConfig.lag_sigma)
LAG_CUT = 5.0  # the lag never exceeds this many medians (120 s -> 600 s)
DEFAULT_LAG_S = 120.0

_COLUMNS = (
    "function_version",
    "model_version",
    "latency_ms",
    "label",
    "status",
    "timestamp",
    "source",
    "probe_id",
    "shadow",
    "shadow_ms",
    "visible_at",
)


@dataclass
class LogLag:
    """Seeded draws of how long a record takes to reach the judge, in real-world seconds."""

    median_s: float = DEFAULT_LAG_S
    seed: int = 0

    def __post_init__(self) -> None:
        if not math.isfinite(self.median_s) or self.median_s < 0:
            raise ValueError(f"the log lag must be a number of seconds >= 0, got {self.median_s}")
        self._rng = random.Random(f"{self.seed}:log-lag")
        self._lock = threading.Lock()

    @property
    def max_s(self) -> float:
        """The longest lag drawn: every record is visible this long after it was answered."""
        return self.median_s * LAG_CUT

    def draw(self) -> float:
        if self.median_s == 0:
            return 0.0
        with self._lock:
            z = self._rng.gauss(0.0, 1.0)
        return min(self.max_s, self.median_s * math.exp(LAG_SIGMA * z))

    def describe(self) -> str:
        if self.median_s == 0:
            return "none (records visible at once)"
        return f"lognormal, median {self.median_s:g} s, at most {self.max_s:g} s (seed {self.seed})"


class LaggedStore(RecordStore):
    """A RecordStore whose records become visible `lag` after they were answered.

    `clock(timestamp)` maps a record's wall timestamp to the reader's clock (simulated seconds);
    None (the default) stores no visibility time: every record is visible at once.
    """

    def __init__(
        self,
        path,
        *,
        lag: LogLag | None = None,
        clock: Callable[[float], float] | None = None,
        busy_timeout_s: float = 30.0,
    ) -> None:
        super().__init__(path, busy_timeout_s=busy_timeout_s)
        self.lag = lag or LogLag(0.0)
        self.clock = clock
        with closing(self._connect()) as db, db:
            have = {row[1] for row in db.execute("PRAGMA table_info(records)")}
            if "visible_at" not in have:
                db.execute("ALTER TABLE records ADD COLUMN visible_at REAL")

    def _visible_at(self, record: RequestRecord) -> float | None:
        if self.clock is None:
            return None
        return self.clock(record.timestamp) + self.lag.draw()

    def extend(self, records: Iterable[RequestRecord]) -> int:
        rows = [
            (
                r.function_version,
                r.model_version,
                r.latency_ms,
                r.label,
                r.status,
                r.timestamp,
                r.source,
                r.probe_id,
                json.dumps(dict(r.shadow), sort_keys=True),
                r.shadow_ms,
                self._visible_at(r),
            )
            for r in records
        ]
        marks = ", ".join("?" * len(_COLUMNS))
        with closing(self._connect()) as db, db:
            db.executemany(f"INSERT INTO records ({', '.join(_COLUMNS)}) VALUES ({marks})", rows)
        return len(rows)

    def window(self, since: float, until: float, visible_by: float | None = None) -> list[RequestRecord]:
        """Records answered between since and until (wall epochs), oldest first; with
        `visible_by`, only those visible by then (on the store's clock)."""
        query = f"SELECT {', '.join(_COLUMNS[:-1])} FROM records WHERE timestamp BETWEEN ? AND ?"
        args: tuple[float, ...] = (since, until)
        if visible_by is not None:
            query += " AND (visible_at IS NULL OR visible_at <= ?)"
            args += (visible_by,)
        with closing(self._connect()) as db:
            rows = db.execute(query + " ORDER BY timestamp, id", args).fetchall()
        return [
            RequestRecord(*row[:8], tuple(sorted(json.loads(row[8] or "{}").items())), row[9]) for row in rows
        ]
