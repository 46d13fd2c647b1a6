"""Open-loop HTTP load on the local gateway, in one place: the rehearsal's replayed user traffic
(emulator.traffic, in its own process) and the gateway benchmark (bench.gateway_load) both send
their requests through OpenLoop.

Open loop: request i is due at start + i / rate whether or not earlier ones have been answered,
so a slow gateway shows up as latency instead of as a lower offered rate. One thread drives a
fixed set of keep-alive connections with a selector (threads or an HTTP library would cost the
client more CPU than the gateway it measures: the benchmark offers 1,000 req/s on two cores).
The gateway answers every request with a Content-Length, which is all this client reads.

Each request ends in exactly one outcome: an answer (on_answer, with its status, its latency
from the due time and from the last send), or an error (on_error, with its kind). A 429 is sent
again after a back-off (0.05 s x 2^attempt, as AWS SDKs do) up to `max_retries` times
(on_throttled for each); a request whose connection fails before it is sent goes out again on a
fresh connection.
"""

from __future__ import annotations

import heapq
import selectors
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

# Errors (on_error's kinds)
SEND_FAILED = "send failed"  # not counted as a request: it is sent again on a new connection
CONNECTION_CLOSED = "connection closed"  # closed while the request waited for its answer
TIMED_OUT = "no answer in time"  # no answer within timeout_s of its send (the connection is dropped)
UNANSWERED = "no answer at the end"  # still waiting when the run's grace period ran out
CONNECT_FAILED = "connect failed"  # due while no connection could be opened: never sent


def post_requests(
    host: str, port: int, path: str, api_key: str, bodies: Sequence[bytes], agent: str
) -> list[bytes]:
    """Each body as a whole HTTP/1.1 keep-alive POST of JSON to `path` with the API key."""
    requests = []
    for body in bodies:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: {agent}\r\n"
            f"Accept: application/json\r\nContent-Type: application/json\r\nx-api-key: {api_key}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        requests.append(head.encode() + body)
    return requests


@dataclass(frozen=True)
class Answer:
    """One request's HTTP answer."""

    status: int
    head: bytes  # the status line and headers, lower-cased
    latency_s: float  # from the request's due time (waiting for a free connection counts)
    service_s: float  # from its (last) send

    def header(self, name: bytes) -> str | None:
        """A response header's value (name lower-case), None when absent."""
        value = _header(self.head, name)
        return None if value is None else value.decode("latin-1")


def _header(head: bytes, name: bytes) -> bytes | None:
    """The first value of a header in a lower-cased response head (name lower-case), or None."""
    marker = head.find(b"\r\n" + name + b":")
    if marker < 0:
        return None
    start = marker + len(name) + 3
    end = head.find(b"\r\n", start)
    return head[start : end if end >= 0 else len(head)].strip()


@dataclass(slots=True)
class _Conn:
    sock: socket.socket
    buffer: bytearray = field(default_factory=bytearray)
    due: float = 0.0
    sent: float = 0.0
    busy: bool = False
    index: int = 0  # the request it carries
    attempt: int = 0


class OpenLoop:
    """Requests[i % len(requests)] due at start + i / rate over `connections` keep-alive
    connections, until `total` requests are sent (None: no limit) or `stop` is set; then up to
    `grace_s` for the answers still due. A request still unanswered `timeout_s` after its send
    (None: never) is an error and its connection is replaced; a request due while no connection
    can be opened is an error too (CONNECT_FAILED). `on_tick` is called about every `tick_s`
    while the loop runs. `sent` counts requests (not retries)."""

    def __init__(
        self,
        host: str,
        port: int,
        requests: Sequence[bytes],
        rate: float,
        connections: int,
        *,
        on_answer: Callable[[Answer], None],
        on_error: Callable[[str], None],
        on_throttled: Callable[[], None] = lambda: None,
        on_tick: Callable[[], None] = lambda: None,
        tick_s: float = 0.1,
        max_retries: int = 0,
        timeout_s: float | None = None,
        grace_s: float = 15.0,
    ) -> None:
        if not requests or not rate > 0 or connections < 1:
            raise ValueError("need requests, a positive rate and at least one connection")
        self.host, self.port, self.requests = host, port, list(requests)
        self.rate, self.connections = rate, connections
        self.on_answer, self.on_error, self.on_throttled = on_answer, on_error, on_throttled
        self.on_tick, self.tick_s = on_tick, tick_s
        self.max_retries, self.timeout_s, self.grace_s = max_retries, timeout_s, grace_s
        self.sent = 0
        self.late_sends = 0  # sends > 1 ms after their due time (no free connection / busy loop)
        self.start = 0.0
        self.last_answer = 0.0
        self._selector = selectors.DefaultSelector()
        self._idle: list[_Conn] = []
        self._missing = 0  # connections to open (again)
        self._retries: list[tuple[float, int, int, float]] = []  # (ready, index, attempt, due): a heap
        self._busy = 0

    # ------------------------------------------------------------------ connections

    def _open_missing(self) -> None:
        while self._missing:
            try:
                sock = socket.create_connection((self.host, self.port), timeout=5.0)
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Conn(sock)
            self._selector.register(sock, selectors.EVENT_READ, conn)
            self._idle.append(conn)
            self._missing -= 1

    def _drop(self, conn: _Conn, error: str = CONNECTION_CLOSED) -> None:
        """Close a connection; it is opened again before the next send. The request it was
        waiting for the answer to, if any, ends as `error`."""
        if conn.busy:
            conn.busy = False
            self._busy -= 1
            self.on_error(error)
        self._selector.unregister(conn.sock)
        conn.sock.close()
        if conn in self._idle:
            self._idle.remove(conn)
        self._missing += 1
        self._open_missing()

    def _close_all(self) -> None:
        for key in list(self._selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        self._selector.close()

    # ------------------------------------------------------------------ the loop

    def run(self, total: int | None = None, stop: threading.Event | None = None) -> None:
        """Drive the load until done (see the class); the outcomes go to the callbacks."""
        self._missing = self.connections
        self._open_missing()
        interval = 1.0 / self.rate
        self.start = self.last_answer = time.perf_counter() + 0.05
        ended_at: float | None = None  # when the last request was sent, or stop was seen
        next_tick = self.start
        try:
            while True:
                now = time.perf_counter()
                if ended_at is None and (
                    (total is not None and self.sent >= total) or (stop and stop.is_set())
                ):
                    ended_at = now
                now = self._send_due(now, interval, total if ended_at is None else 0)
                if ended_at is not None and self._busy == 0 and not self._retries:
                    break
                if ended_at is not None and now > ended_at + self.grace_s:
                    for _ in range(self._busy + len(self._retries)):
                        self.on_error(UNANSWERED)
                    break
                if now >= next_tick:
                    self.on_tick()
                    next_tick = now + self.tick_s
                self._expire(now)
                self._receive(self._wait(now, interval, ended_at is None))
        finally:
            self._close_all()

    def _wait(self, now: float, interval: float, sending: bool) -> float:
        """How long the selector may wait: until the next request is due, a retry is ready, or
        the next tick (while no connection is free, an answer frees one)."""
        wait = self.tick_s
        if sending and (self._idle or self._missing):
            wait = min(wait, max(0.0, self.start + self.sent * interval - now))
        if self._retries and (self._idle or self._missing):
            wait = min(wait, max(0.0, self._retries[0][0] - now))
        return wait

    def _send_due(self, now: float, interval: float, total: int | None) -> float:
        """Send every retry that is ready and every new request that is due while fewer than
        `total` are sent (None: no limit; 0 once sending has ended), while a connection is free;
        returns the clock after the last send."""
        if self._missing:
            self._open_missing()
        while True:
            retry = bool(self._retries) and self._retries[0][0] <= now
            due = self.start + self.sent * interval
            sending = total is None or self.sent < total
            if not retry and not (sending and due <= now):
                return now
            if not self._idle:
                if self._missing < self.connections:
                    return now  # every open connection is busy: an answer frees one
                # No connection can be opened: the request is due and cannot be sent.
                if retry:
                    heapq.heappop(self._retries)
                else:
                    self.sent += 1
                self.on_error(CONNECT_FAILED)
                continue
            if retry:
                _, index, attempt, due = heapq.heappop(self._retries)
            else:
                index, attempt = self.sent, 0
            sent_at = self._send(index, attempt, due)
            if sent_at is None:
                if retry:
                    heapq.heappush(self._retries, (now, index, attempt, due))
                continue  # the same request again, on the next connection
            if not retry:
                self.sent += 1
                if sent_at - due > 0.001:
                    self.late_sends += 1
            now = sent_at

    def _send(self, index: int, attempt: int, due: float) -> float | None:
        """Send on a free connection: the clock after the send, None when the send failed."""
        conn = self._idle.pop()
        try:
            conn.sock.sendall(self.requests[index % len(self.requests)])
        except OSError:
            self.on_error(SEND_FAILED)
            self._drop(conn)
            return None
        conn.due, conn.index, conn.attempt = due, index, attempt
        conn.sent = time.perf_counter()
        conn.busy = True
        self._busy += 1
        return conn.sent

    def _expire(self, now: float) -> None:
        if self.timeout_s is None:
            return
        for key in list(self._selector.get_map().values()):
            conn = key.data
            if conn.busy and now - conn.sent > self.timeout_s:
                self._drop(conn, TIMED_OUT)

    def _receive(self, wait: float) -> None:
        if not self._selector.get_map():
            time.sleep(wait)  # nothing open to wait on
            return
        for key, _ in self._selector.select(timeout=wait):
            conn = key.data
            try:
                chunk = conn.sock.recv(1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                self._drop(conn, CONNECTION_CLOSED)
                continue
            conn.buffer += chunk
            self._answer(conn)

    def _answer(self, conn: _Conn) -> None:
        """Take the answer off the connection's buffer once it is whole."""
        end = conn.buffer.find(b"\r\n\r\n")
        if end < 0 or not conn.busy:
            return
        head = bytes(conn.buffer[:end]).lower()
        length = int(_header(head, b"content-length") or 0)
        if len(conn.buffer) < end + 4 + length:
            return
        done = time.perf_counter()
        del conn.buffer[: end + 4 + length]
        conn.busy = False
        self._busy -= 1
        if b"\r\nconnection: close" in head:
            self._drop(conn)
        else:
            self._idle.append(conn)
        status = int(head[9:12])
        if status == 429 and conn.attempt < self.max_retries:
            self.on_throttled()
            heapq.heappush(
                self._retries, (done + 0.05 * 2**conn.attempt, conn.index, conn.attempt + 1, conn.due)
            )
            return
        self.last_answer = done
        self.on_answer(Answer(status, head, done - conn.due, done - conn.sent))
