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

import math
import random
import threading
from collections.abc import Callable, Iterable
from contextlib import closing
from dataclasses import dataclass

from canary.records import ROW_COLUMNS, RecordStore, RequestRecord, from_row, to_row

LAG_SIGMA = 0.6  # log-sd of the lag (canary.evidence.EvidenceConfig.lag_sigma)
LAG_CUT = 5.0  # the lag never exceeds this many medians (120 s -> 600 s)
DEFAULT_LAG_S = 120.0
# canary.records' row, then when the judge may see it (on the reader's clock)
_INSERT = f"INSERT INTO records ({ROW_COLUMNS}, visible_at) VALUES ({', '.join('?' * 11)})"


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
        with self._lock:  # gauss() is not thread-safe; the gateway's and the probe's threads draw
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
        self, path, *, lag: LogLag | None = None, clock: Callable[[float], float] | None = None
    ) -> None:
        super().__init__(path)
        self.lag = lag or LogLag(0.0)
        self.clock = clock
        self._add_columns({"visible_at": "REAL"})

    def _visible_at(self, record: RequestRecord) -> float | None:
        if self.clock is None:
            return None
        return self.clock(record.timestamp) + self.lag.draw()

    def extend(self, records: Iterable[RequestRecord]) -> int:
        rows = [(*to_row(r), self._visible_at(r)) for r in records]
        with closing(self._connect()) as db, db:
            db.executemany(_INSERT, rows)
        return len(rows)

    def window(self, since: float, until: float, visible_by: float | None = None) -> list[RequestRecord]:
        """Records answered between since and until (wall epochs), oldest first; with
        `visible_by`, only those visible by then (on the store's clock)."""
        if visible_by is None:
            return super().window(since, until)
        with closing(self._connect()) as db:
            rows = db.execute(
                f"SELECT {ROW_COLUMNS} FROM records WHERE timestamp BETWEEN ? AND ?"
                " AND (visible_at IS NULL OR visible_at <= ?) ORDER BY timestamp, id",
                (since, until, visible_by),
            ).fetchall()
        return [from_row(row) for row in rows]
