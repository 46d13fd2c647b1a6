"""The one open-loop load generator (emulator.load.OpenLoop), against a tiny loopback HTTP server
whose answers each test scripts: every request ends in exactly one outcome."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from emulator.load import (
    CONNECT_FAILED,
    CONNECTION_CLOSED,
    TIMED_OUT,
    UNANSWERED,
    Answer,
    OpenLoop,
    post_requests,
)

pytestmark = pytest.mark.integration

# (request number, from 0) -> the raw answer to write, None to say nothing, CLOSE to hang up
Script = Callable[[int], bytes | None]
CLOSE = b"<close>"


def http(status: int, body: bytes = b"{}", extra: str = "") -> bytes:
    return (
        f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


@contextmanager
def server(script: Script) -> Iterator[tuple[int, list[bytes]]]:
    """A keep-alive HTTP server on loopback answering request n with script(n); the bodies it
    received, in order."""
    listener = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []
    lock = threading.Lock()
    done = threading.Event()

    def serve(conn: socket.socket) -> None:
        buffer = b""
        with conn:
            while not done.is_set():
                while b"\r\n\r\n" not in buffer:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, rest = buffer.partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                while len(rest) < length:
                    rest += conn.recv(65536)
                body, buffer = rest[:length], rest[length:]
                with lock:
                    n = len(received)
                    received.append(body)
                answer = script(n)
                if answer is None:
                    continue
                if answer == CLOSE:
                    return
                conn.sendall(answer)
                if b"Connection: close" in answer:
                    return

    def accept() -> None:
        listener.settimeout(0.2)
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield listener.getsockname()[1], received
    finally:
        done.set()
        acceptor.join()
        listener.close()


def drive(
    port: int,
    *,
    total: int | None = None,
    stop: threading.Event | None = None,
    rate: float = 200.0,
    **options,
):
    answers: list[Answer] = []
    errors: list[str] = []
    throttled: list[int] = []
    bodies = [json.dumps({"text": t}).encode() for t in ("a", "b", "c")]
    requests = post_requests("127.0.0.1", port, "/v1/infer", "key", bodies, agent="test/1")
    options = {"on_answer": answers.append, "on_error": errors.append, **options}
    load = OpenLoop("127.0.0.1", port, requests, rate, 2, on_throttled=lambda: throttled.append(1), **options)
    load.run(total=total, stop=stop)
    return load, answers, errors, len(throttled)


def test_every_request_is_sent_once_in_order_and_answered():
    """`total` requests, texts cycling in order, each answered once with its status and headers."""
    with server(lambda n: http(200, extra="X-Model-Version: v2\r\n")) as (port, received):
        load, answers, errors, _ = drive(port, total=7)
    assert load.sent == 7 and errors == []
    assert [json.loads(b)["text"] for b in received] == list("abcabca")
    assert [a.status for a in answers] == [200] * 7
    assert {a.header(b"x-model-version") for a in answers} == {"v2"}
    assert all(a.latency_s >= a.service_s >= 0 for a in answers)


def test_requests_due_together_stop_at_the_total():
    """A rate far above what two connections carry: the requests fall due together, and still
    exactly `total` go out, each answered once."""
    with server(lambda n: http(200)) as (port, received):
        load, answers, errors, _ = drive(port, total=9, rate=100_000.0)
    assert (load.sent, len(received), len(answers), errors) == (9, 9, 9, [])


def test_a_429_is_sent_again_up_to_the_retry_limit():
    """A 429 goes out again (counted as throttled, not as another request); past max_retries the
    429 is the answer."""
    with server(lambda n: http(429) if n < 3 else http(200)) as (port, received):
        load, answers, errors, throttled = drive(port, total=1, max_retries=2)
    assert (load.sent, throttled, errors) == (1, 2, [])
    assert [a.status for a in answers] == [429]
    assert len(received) == 3


def test_a_connection_closed_after_its_answer_is_replaced():
    """Connection: close after an answer: the next requests go out on new connections."""
    with server(lambda n: http(200, extra="Connection: close\r\n")) as (port, _):
        load, answers, errors, _ = drive(port, total=5)
    assert (load.sent, len(answers), errors) == (5, 5, [])


def test_a_connection_closed_before_the_answer_is_an_error():
    """The server hangs up on a request without answering: that request ends as an error, and
    the next one goes out on a new connection."""
    with server(lambda n: CLOSE if n == 0 else http(200)) as (port, _):
        load, answers, errors, _ = drive(port, total=2)
    assert load.sent == 2 and errors == [CONNECTION_CLOSED] and [a.status for a in answers] == [200]


def test_an_unanswered_request_times_out():
    """No answer within timeout_s of the send: an error, the connection replaced."""
    with server(lambda n: None if n == 0 else http(200)) as (port, _):
        load, answers, errors, _ = drive(port, total=2, timeout_s=0.3)
    assert load.sent == 2 and errors == [TIMED_OUT] and [a.status for a in answers] == [200]


def test_answers_still_due_when_the_grace_period_ends_are_unanswered():
    """Without a per-request timeout, what is unanswered when the grace period ends is an error."""
    with server(lambda n: None) as (port, _):
        load, answers, errors, _ = drive(port, total=2, grace_s=0.2)
    assert load.sent == 2 and answers == [] and errors == [UNANSWERED, UNANSWERED]


def test_stop_ends_an_unbounded_run_after_the_answers_in_flight():
    """With no total, the run sends until stop is set, then waits for the answers in flight."""
    stop = threading.Event()

    def script(n: int) -> bytes:
        if n == 5:
            stop.set()
        return http(200)

    with server(script) as (port, _):
        load, answers, errors, _ = drive(port, stop=stop)
    assert load.sent >= 6 and len(answers) == load.sent and errors == []


def test_requests_due_while_nothing_listens_fail_to_connect():
    """No server: each due request is an error (never sent), and the run still ends."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    load, answers, errors, _ = drive(port, total=3)
    assert load.sent == 3 and answers == [] and errors == [CONNECT_FAILED] * 3


def test_the_generator_refuses_nonsense():
    """No requests, a rate that is not positive or no connection is refused up front."""
    for requests, rate, connections in (([], 1.0, 1), ([b"x"], 0.0, 1), ([b"x"], 1.0, 0)):
        with pytest.raises(ValueError):
            OpenLoop("127.0.0.1", 1, requests, rate, connections, on_answer=print, on_error=print)
