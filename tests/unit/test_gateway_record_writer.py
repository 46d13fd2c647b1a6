"""The gateway's record writer: requests only queue their records; one thread writes them, and a
flush waits for it no longer than its timeout (a store that hangs must not hang the caller)."""

from __future__ import annotations

import threading

from emulator.gateway import _RecordWriter


class SlowStore:
    """A record store whose writes wait until `release` is set."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.batches: list[list[int]] = []

    def extend(self, records):
        self.release.wait(30)
        self.batches.append(list(records))
        return len(records)


def test_a_flush_on_a_hung_store_gives_up_at_its_timeout_and_the_records_follow():
    """With the store stuck in a write, flush(0.2) answers False (not after the write), and the
    queued records are written, in order, once the store answers again."""
    store = SlowStore()
    writer = _RecordWriter(store, interval_s=60.0)
    writer.start()
    writer.pending.extend([1, 2, 3])
    assert writer.flush(0.2) is False
    writer.pending.append(4)
    store.release.set()
    assert writer.flush(10.0) is True
    assert [r for batch in store.batches for r in batch] == [1, 2, 3, 4]
    assert writer.written == 4
    writer.close(5.0)


def test_a_restart_after_a_close_that_gave_up_runs_one_writer(capsys):
    """close() on a hung store gives up after its timeout and says how many records it left; a
    restart runs one new writer (the old one ends after its write) and writes them."""
    store = SlowStore()
    writer = _RecordWriter(store, interval_s=60.0)
    writer.start()
    writer.pending.append(1)
    assert writer.flush(0.1) is False  # the writer holds record 1 in a hung write
    writer.pending.append(2)
    writer.close(0.1)
    assert "1 records not written" in capsys.readouterr().err
    stuck = writer._thread
    writer.start()
    store.release.set()
    assert writer.flush(10.0) is True
    writer.close(5.0)
    stuck.join(5.0)  # the first writer ends after its write, as its own stop says
    assert not stuck.is_alive() and not writer._thread.is_alive()
    assert sorted(r for batch in store.batches for r in batch) == [1, 2]
