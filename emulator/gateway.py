"""API Gateway, locally: the REST API of template.yaml on 127.0.0.1, in front of a Lambda alias.

For every request, in API Gateway's order:
  1. payload over 10 MB -> 413 (answered before anything else, as the edge does), and
     request line + headers over 10,240 bytes -> 413 {"message": "Request Too Long"};
  2. a path outside the stage -> 403 {"message": "Forbidden"}; a path or method the API does not
     serve -> 403 {"message": "Missing Authentication Token"} (a trailing slash still matches);
  3. OPTIONS on a route -> SAM's CORS mock integration: 200 with the template's Cors headers, no key;
  4. missing or wrong x-api-key -> 403 {"message": "Forbidden"} (the gateway's own key, or an
     enabled consumer key of emulator.consumers on one of the template's usage plans);
  5. the key's usage plan: over the key's token bucket (RateLimit tokens per second, BurstLimit
     deep; and its per-method bucket, if the plan throttles the method) -> 429 {"message": "Too
     Many Requests"}; over the key's quota for the period -> 429 {"message": "Limit Exceeded"};
  6. the Lambda proxy integration: the REST proxy event (requestContext with requestId, stage,
     resourcePath, httpMethod and identity {sourceIp, apiKey, apiKeyId}; headers and
     multiValueHeaders; query string parameters; a body that is not UTF-8 travels base64-encoded
     with isBase64Encoded true) goes to the alias; an event over Lambda's 6 MB invocation limit
     -> 413 {"message": "Request Too Long"}; a function error (crash, timeout, unhandled
     exception) or a malformed proxy response -> 502 {"message": "Internal server error"}; no
     answer within the integration timeout (29 s) -> 504 {"message": "Endpoint request timed out"};
     otherwise the function's own answer, with x-amzn-RequestId added.
Gateway errors carry x-amzn-ErrorType and the template's GatewayResponses headers (CORS).
One local extra, outside the stage: GET /openapi.yaml (or /openapi.json) answers the API's
OpenAPI document (openapi.yaml beside the template), with no key.
Every request that reached the function leaves one canary.records.RequestRecord in the store,
written in batches by a background thread (flush() waits for them).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import ipaddress
import json
import queue
import secrets
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

import yaml

from canary.proxy_event import rest_proxy_event
from canary.records import LABELS, RequestRecord
from emulator.functions import (
    Alias,
    CallerGaveUp,
    EnvironmentFailed,
    FunctionVersion,
    Invocation,
    RequestTooLarge,
    batch_request_records,
    request_record,
)
from emulator.settings import LOCAL_ACCOUNT, Route, StackSettings

MIN_API_KEY_CHARS = 20  # API Gateway refuses shorter key values
# Where the local gateway serves the API's OpenAPI document (README, "The API's contract").
OPENAPI_PATHS = ("/openapi.yaml", "/openapi.json")
SWITCH_INTERVAL_S = 0.0005  # the interpreter's thread switch interval while a gateway runs
_FORWARDED = frozenset({"x-forwarded-for", "x-forwarded-port", "x-forwarded-proto"})
_PROXY_KEYS = frozenset({"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"})
# Response headers API Gateway does not pass through as they are; it renames them x-amzn-Remapped-*.
_REMAPPED = frozenset(
    h.lower()
    for h in (
        "Authorization",
        "Connection",
        "Content-Length",
        "Content-MD5",
        "Date",
        "Expect",
        "Host",
        "Max-Forwards",
        "Proxy-Authenticate",
        "Server",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "User-Agent",
        "Via",
        "Warn",
        "WWW-Authenticate",
    )
)
_ERROR_TYPES = {
    "Forbidden": "ForbiddenException",
    "Missing Authentication Token": "IncompleteSignatureException",
    "Too Many Requests": "TooManyRequestsException",
    "Limit Exceeded": "LimitExceededException",
    "Request Too Long": "BadRequestException",
    "Bad Request": "BadRequestException",
    "Internal server error": "InternalServerErrorException",
    "Endpoint request timed out": "InternalServerErrorException",
}


class RecordSink(Protocol):
    """Where per-request records go (canary.records.RecordStore)."""

    def extend(self, records: Any) -> int: ...


class ConsumerKeys(Protocol):
    """Consumer keys accepted besides the gateway's own, each with its plan's limits
    (emulator.consumers.KeyRegistry)."""

    def admit(self, values: list[str] | None, method_key: str) -> Any:
        """None (403), or an answer with .key_id and .refusal (None or the 429 message)."""
        ...

    def start(self) -> Any: ...

    def stop(self) -> None: ...


def api_key_id(api_key: str) -> str:
    """A stable id for a key (requestContext.identity.apiKeyId); the key cannot be read back from it."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:10]


def generate_api_key() -> str:
    """A new random key value of API Gateway's usual length (40 characters)."""
    return secrets.token_urlsafe(30)


def check_api_key(api_key: str) -> str:
    """The key, if API Gateway would accept it as a key value; ValueError saying why otherwise."""
    if not isinstance(api_key, str) or len(api_key) < MIN_API_KEY_CHARS or len(api_key) > 128:
        raise ValueError(f"an API key must be {MIN_API_KEY_CHARS} to 128 characters long")
    if not all(33 <= ord(c) <= 126 for c in api_key):
        raise ValueError("an API key must be printable ASCII without spaces")
    return api_key


def _print_error(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class _SwitchInterval:
    """CPython's thread switch interval, shortened while any gateway runs in this process.

    The gateway's threads mostly wait on sockets and pipes; a thread whose answer has arrived
    should not wait out the default 5 ms behind another parsing a request. Measured at 1,000
    req/s on two busy cores: p50 100-800 ms with the default, a few ms with 0.5 ms."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._saved = sys.getswitchinterval()

    def acquire(self) -> None:
        with self._lock:
            if self._users == 0:
                self._saved = sys.getswitchinterval()
                sys.setswitchinterval(min(self._saved, SWITCH_INTERVAL_S))
            self._users += 1

    def release(self) -> None:
        with self._lock:
            self._users = max(0, self._users - 1)
            if self._users == 0:
                sys.setswitchinterval(self._saved)


_switch_interval = _SwitchInterval()


class TokenBucket:
    """The usage plan's per-key throttle: `rate` tokens per second into a bucket `burst` deep."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = float(rate)
        self.capacity = float(max(1, burst))
        self.clock = clock
        self.tokens = self.capacity
        self.updated = clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = self.clock()
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return True
            return False


class Quota:
    """The usage plan's quota: `limit` requests per key per calendar DAY, WEEK or MONTH (UTC)."""

    def __init__(
        self, limit: int, period: str, offset: int = 0, clock: Callable[[], float] = time.time
    ) -> None:
        self.limit = int(limit)
        self.period = period
        self.offset = int(offset)
        self.clock = clock
        self.used = 0
        self._start: float | None = None
        self._lock = threading.Lock()

    def period_start(self, now: float) -> float:
        """Epoch seconds at which the period holding `now` began (UTC; WEEK starts on Sunday + offset)."""
        t = time.gmtime(now)
        midnight = now - (t.tm_hour * 3600 + t.tm_min * 60 + t.tm_sec + (now % 1))
        if self.period == "DAY":
            return midnight
        if self.period == "WEEK":
            days_since = (t.tm_wday + 1 - self.offset) % 7  # tm_wday: Monday 0; API Gateway's week: Sunday 0
            return midnight - days_since * 86_400
        start = midnight - (t.tm_mday - 1) * 86_400 + self.offset * 86_400
        if start > now:  # before this month's offset day: the period began last month
            prev = time.gmtime(start - (self.offset + 1) * 86_400)
            start = start - (self.offset + prev.tm_mday) * 86_400 + self.offset * 86_400
        return start

    def take(self) -> bool:
        with self._lock:
            start = self.period_start(self.clock())
            if start != self._start:
                self._start, self.used = start, 0
            if self.used >= self.limit:
                return False
            self.used += 1
            return True

    @property
    def remaining(self) -> int:
        with self._lock:
            return max(0, self.limit - self.used)


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    close: bool = False
    drain: bool = False  # the request's body is unread: read it away before closing (no reset)


class _RecordWriter(threading.Thread):
    """Appends records to the store in batches, off the request path: a request only queues its
    record; the writer wakes every `interval_s` (or on flush) and writes all queued at once."""

    def __init__(self, store: RecordSink, interval_s: float) -> None:
        super().__init__(name="gateway-records", daemon=True)
        self.store = store
        self.interval_s = interval_s
        self.queue: queue.SimpleQueue[RequestRecord | threading.Event | None] = queue.SimpleQueue()
        self.wake = threading.Event()
        self.written = 0
        self.failed = 0

    def run(self) -> None:
        running = True
        while running:
            self.wake.wait(self.interval_s)
            self.wake.clear()
            batch: list[RequestRecord] = []
            waiters: list[threading.Event] = []
            try:
                while True:
                    item = self.queue.get_nowait()
                    if item is None:
                        running = False
                    elif isinstance(item, threading.Event):
                        waiters.append(item)
                    else:
                        batch.append(item)
            except queue.Empty:
                pass
            if batch:
                self._write(batch)
            for waiter in waiters:
                waiter.set()

    def put(self, record: RequestRecord) -> None:
        self.queue.put(record)

    def flush(self, timeout: float) -> bool:
        done = threading.Event()
        self.queue.put(done)
        self.wake.set()
        return done.wait(timeout)

    def close(self, timeout: float) -> None:
        self.queue.put(None)
        self.wake.set()
        self.join(timeout)

    def _write(self, batch: list[RequestRecord]) -> None:
        for attempt in range(5):
            try:
                self.store.extend(batch)
                self.written += len(batch)
                return
            except Exception as exc:  # a locked or full disk must not take the gateway down
                if attempt == 4:
                    self.failed += len(batch)
                    print(f"gateway: {len(batch)} records lost: {type(exc).__name__}: {exc}", file=sys.stderr)
                    return
                time.sleep(0.05 * (attempt + 1))


class Gateway:
    """The local API Gateway stage: start(), stop(), url."""

    def __init__(
        self,
        settings: StackSettings,
        alias: Alias,
        api_key: str,
        store: RecordSink | None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        record_interval_s: float = 0.25,
        access_log: Callable[[str], None] | None = None,
        start_functions: bool = True,
        error_log: Callable[[str], None] | None = _print_error,
        consumers: ConsumerKeys | None = None,
    ) -> None:
        if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"the local gateway listens on loopback only, not {host}")
        self.settings = settings
        self.alias = alias
        self.api_key = check_api_key(api_key)
        self.api_key_id = api_key_id(api_key)
        self.store = store
        self.host = host
        self.requested_port = int(port)
        self.access_log = access_log
        # One line per 5xx the integration produced (function error, timeout, no environment): the
        # request id and the cause, never the body or the key.
        self.error_log = error_log
        self.start_functions = start_functions
        # Consumer keys (make consumer-add ENV=local): accepted besides api_key, each limited by its
        # own plan; api_key keeps the settings' plan (quota_limit, rate_limit, burst_limit).
        self.consumers = consumers
        self.api_id = hashlib.sha256(settings.api_name.encode()).hexdigest()[:10]
        self.routes: dict[str, dict[str, Route]] = {}
        for route in settings.routes:
            self.routes.setdefault(route.path, {})[route.method] = route
        self.throttle = (
            TokenBucket(settings.rate_limit, settings.burst_limit or int(settings.rate_limit))
            if settings.rate_limit
            else None
        )
        self.quota = (
            Quota(settings.quota_limit, settings.quota_period, settings.quota_offset)
            if settings.quota_limit
            else None
        )
        self.counts: dict[int, int] = {}  # HTTP status -> how many answered
        self._counts_lock = threading.Lock()
        self.record_interval_s = record_interval_s
        self._writer: _RecordWriter | None = None  # one per start(); records queue to it
        self._written_before = 0  # records written by the writers of earlier starts
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the gateway is not started")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:PORT (no stage)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        """The stage's base URL, e.g. http://127.0.0.1:PORT/v1."""
        return f"{self.base_url}/{self.settings.stage_name}"

    def route_url(self, path: str | None = None) -> str:
        """The full URL of a route (the first route of the template by default)."""
        return self.url + (path or self.settings.routes[0].path)

    def start(self) -> Gateway:
        """Start the functions' environments (cold starts happen here), then listen."""
        if self._server is not None:
            return self
        _switch_interval.acquire()
        try:
            if self.start_functions:
                self.alias.start()
            self._server = _Server((self.host, self.requested_port), _Handler, self)
        except BaseException:
            _switch_interval.release()
            raise
        if self.store is not None:
            self._writer = _RecordWriter(self.store, self.record_interval_s)
            self._writer.start()
        if self.consumers is not None:
            self.consumers.start()
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="gateway", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, stop_functions: bool = True) -> None:
        """Stop listening, close open connections, write the pending records, stop the functions."""
        server, self._server = self._server, None
        started = server is not None
        if server is not None:
            server.shutdown()  # no new connections
            server.wait_idle(timeout=5.0)  # requests being answered finish
            server.close_all()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close(timeout=10)
            self._written_before += writer.written
        if started and self.consumers is not None:
            self.consumers.stop()
        if stop_functions:
            self.alias.stop()
        if started:
            _switch_interval.release()

    def __enter__(self) -> Gateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every record of the requests answered so far is in the store."""
        if self._writer is None or not self._writer.is_alive():
            return True
        return self._writer.flush(timeout)

    @property
    def records_written(self) -> int:
        writer = self._writer
        return self._written_before + (0 if writer is None else writer.written)

    def _count(self, status: int) -> None:
        with self._counts_lock:
            self.counts[status] = self.counts.get(status, 0) + 1

    # ------------------------------------------------------------------ answers

    def error(self, status: int, message: str, request_id: str, close: bool = False) -> _Answer:
        """One of API Gateway's own error answers, with the template's GatewayResponses headers."""
        body = json.dumps({"message": message}, separators=(",", ":")).encode()
        kind = "DEFAULT_5XX" if status >= 500 else "DEFAULT_4XX"
        headers = [
            ("Content-Type", "application/json"),
            ("x-amzn-RequestId", request_id),
            ("x-amzn-ErrorType", _ERROR_TYPES.get(message, "BadRequestException")),
            ("x-amz-apigw-id", _apigw_id()),
        ]
        headers += list((self.settings.gateway_response_headers.get(kind) or {}).items())
        return _Answer(status, headers, body, close)

    def handle(self, h: _Handler, raw_target: str, request_id: str) -> _Answer:
        """The answer to one parsed request (headers read, body not yet)."""
        method = h.command
        headers = h.headers
        # 1. Size limits, before anything else.
        header_bytes = len(h.raw_requestline) + sum(len(k) + len(v) + 4 for k, v in headers.items())
        body_or_answer = self._read_body(h, request_id)
        if isinstance(body_or_answer, _Answer):
            return body_or_answer
        body = body_or_answer
        if header_bytes > self.settings.header_limit_bytes:
            return self.error(413, "Request Too Long", request_id)

        # 2. Stage, resource and method.
        target = urlsplit(raw_target)
        raw_path = target.path or "/"
        path = unquote(raw_path)
        # The local stack's extra, outside every stage (so no API route can clash): the API's
        # OpenAPI document, for clients and generators (schemathesis); no key, as a docs page.
        if path in OPENAPI_PATHS and method in ("GET", "HEAD"):
            return self._openapi(path, request_id)
        stage_prefix = f"/{self.settings.stage_name}"
        if not (path == stage_prefix or path.startswith(stage_prefix + "/")):
            return self.error(403, "Forbidden", request_id)
        resource_path = path[len(stage_prefix) :] or "/"
        # API Gateway routes /resource/ to /resource (the event keeps the path as sent).
        key = resource_path[:-1] if len(resource_path) > 1 and resource_path.endswith("/") else resource_path
        methods = self.routes.get(key)
        if methods is None:
            return self.error(403, "Missing Authentication Token", request_id)
        cors = self.settings.cors
        if method == "OPTIONS" and cors is not None and "OPTIONS" not in methods:
            if not cors.preflight_needs_key or self._key_ok(headers):
                return self._preflight(request_id)
            return self.error(403, "Forbidden", request_id)
        route = methods.get(method)
        if route is None:
            return self.error(403, "Missing Authentication Token", request_id)

        # 3. Key, throttle, quota: the gateway's own key on the settings' plan, or a consumer's
        # key on its own plan (each key its own bucket and quota, as API Gateway keeps them).
        key_id = self.api_key_id
        if route.api_key_required and not self._key_ok(headers):
            admission = None
            if self.consumers is not None:
                admission = self.consumers.admit(headers.get_all("x-api-key"), f"{route.path}/{route.method}")
            if admission is None:
                return self.error(403, "Forbidden", request_id)
            if admission.refusal is not None:
                return self.error(429, admission.refusal, request_id)
            key_id = admission.key_id
        else:
            if self.throttle is not None and not self.throttle.take():
                return self.error(429, "Too Many Requests", request_id)
            if self.quota is not None and not self.quota.take():
                return self.error(429, "Limit Exceeded", request_id)

        # 4. The Lambda proxy integration.
        event = self._event(h, route, resource_path, target.query, body, request_id, key_id)
        trace_id = f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};Sampled=0"
        event["headers"]["X-Amzn-Trace-Id"] = trace_id
        event["multiValueHeaders"]["X-Amzn-Trace-Id"] = [trace_id]
        try:
            version, invocation = self.alias.invoke_detailed(
                event, trace_id=trace_id, max_wait_s=self.settings.integration_timeout_s
            )
        except RequestTooLarge:
            return self.error(413, "Request Too Long", request_id)
        except CallerGaveUp as exc:
            # The function is still busy with it (or with the ones before it); API Gateway stops waiting.
            answer = self.error(504, "Endpoint request timed out", request_id)
            self._record_failure(exc.version, exc.waited_ms, answer.status)
            timeout_s = self.settings.integration_timeout_s
            self._log_error(
                504, request_id, exc.version, f"no answer within the {timeout_s:g} s integration timeout"
            )
            return answer
        except EnvironmentFailed as exc:
            self._log_error(502, request_id, None, str(exc))
            return self.error(502, "Internal server error", request_id)
        answer = self._proxy_answer(invocation, request_id, trace_id)
        self._record(version, invocation, answer)
        if answer.status == 502 and (cause := _failure_cause(invocation)) is not None:
            self._log_error(502, request_id, version, cause, invocation.request_id)
        return answer

    def _log_error(
        self,
        status: int,
        request_id: str,
        version: FunctionVersion | None,
        cause: str,
        lambda_request_id: str | None = None,
    ) -> None:
        """The console line of a 5xx the integration made: API Gateway's request id (the client's
        x-amzn-RequestId), the function version, Lambda's RequestId (the one in the function's log)
        and the cause; never the request's body or key."""
        if self.error_log is None:
            return
        where = ""
        if version is not None:
            where = f" from function version {version.function_version} ({version.model_version})"
            if lambda_request_id:
                where += f", Lambda RequestId {lambda_request_id}"
        log = f"; function log {version.log_path}" if version is not None and version.log_path else ""
        try:
            self.error_log(f"gateway: {status} for request {request_id}{where}: {cause}{log}")
        except Exception:  # a broken console must not turn an answer into a crash
            pass

    def _key_ok(self, headers: Any) -> bool:
        values = headers.get_all("x-api-key") or []
        return len(values) == 1 and hmac.compare_digest(values[0].encode(), self.api_key.encode())

    def _read_body(self, h: _Handler, request_id: str) -> bytes | _Answer:
        limit = self.settings.payload_limit_bytes
        too_big = _Answer(
            413,
            [("Content-Type", "text/plain; charset=utf-8")],
            f"HTTP content length exceeded {limit} bytes.".encode(),
            close=True,
            drain=True,
        )
        encoding = (h.headers.get("Transfer-Encoding") or "").lower()
        lengths = h.headers.get_all("Content-Length") or []
        if encoding:
            if encoding.split(",")[-1].strip() != "chunked" or lengths:
                return self.error(400, "Bad Request", request_id, close=True)
            return _read_chunked(
                h.rfile, limit, too_big, lambda: self.error(400, "Bad Request", request_id, True)
            )
        if not lengths:
            return b""
        if len(set(lengths)) != 1 or not lengths[0].strip().isdigit():
            return self.error(400, "Bad Request", request_id, close=True)
        length = int(lengths[0])
        if length > limit:
            return too_big
        body = h.rfile.read(length) if length else b""
        if len(body) != length:  # the client went away mid-body
            return _Answer(400, [], b"", close=True)
        return body

    def _openapi(self, path: str, request_id: str) -> _Answer:
        """openapi.yaml beside the template, as it is (/openapi.yaml) or as JSON (/openapi.json);
        read afresh each time, so an edit shows at once."""
        source = self.settings.template_path.parent / "openapi.yaml"
        try:
            text = source.read_text(encoding="utf-8")
            if path.endswith(".json"):
                text = json.dumps(yaml.safe_load(text), indent=1)
        except (OSError, ValueError, yaml.YAMLError):
            return self.error(404, "Not Found", request_id)
        kind = "application/json" if path.endswith(".json") else "application/yaml"
        headers = [("Content-Type", f"{kind}; charset=utf-8"), ("x-amzn-RequestId", request_id)]
        return _Answer(200, headers, text.encode("utf-8"))

    def _preflight(self, request_id: str) -> _Answer:
        cors = self.settings.cors
        assert cors is not None
        headers = [("Content-Type", "application/json"), ("x-amzn-RequestId", request_id)]
        headers.append(("Access-Control-Allow-Origin", cors.allow_origin))
        if cors.allow_headers:
            headers.append(("Access-Control-Allow-Headers", cors.allow_headers))
        if cors.allow_methods:
            headers.append(("Access-Control-Allow-Methods", cors.allow_methods))
        if cors.max_age is not None:
            headers.append(("Access-Control-Max-Age", cors.max_age))
        return _Answer(200, headers, b"{}")

    def _event(
        self,
        h: _Handler,
        route: Route,
        resource_path: str,
        query: str,
        body: bytes,
        request_id: str,
        key_id: str | None = None,
    ) -> dict[str, Any]:
        source_ip = h.client_address[0]
        forwarded = h.headers.get("X-Forwarded-For")
        added = {
            "X-Forwarded-For": f"{forwarded}, {source_ip}" if forwarded else source_ip,
            "X-Forwarded-Port": str(h.server.server_address[1]),
            "X-Forwarded-Proto": "http",
        }
        # The client's X-Forwarded-* are replaced, whatever their case.
        headers = [(k, v) for k, v in h.headers.items() if k.lower() not in _FORWARDED]
        now = time.time()
        keyed = route.api_key_required
        return rest_proxy_event(
            h.command,
            route.path,
            resource_path,
            stage=self.settings.stage_name,
            request_id=request_id,
            headers=[*headers, *added.items()],
            query=parse_qsl(query, keep_blank_values=True) if query else (),
            body=body,
            identity={
                "sourceIp": source_ip,
                "userAgent": dict(headers).get("User-Agent"),
                "apiKey": h.headers.get("x-api-key") if keyed else None,
                "apiKeyId": (key_id or self.api_key_id) if keyed else None,
            },
            context={
                "resourceId": _resource_id(route.path),
                "extendedRequestId": _apigw_id(),
                "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
                "accountId": LOCAL_ACCOUNT,
                "protocol": h.request_version,
                "domainPrefix": self.api_id,
                "requestTimeEpoch": int(now * 1000),
                "domainName": h.headers.get("Host") or f"{self.host}:{self.port}",
                "apiId": self.api_id,
            },
        )

    def _proxy_answer(self, invocation: Invocation, request_id: str, trace_id: str) -> _Answer:
        if invocation.function_error is not None:
            return self.error(502, "Internal server error", request_id)
        response = invocation.payload
        try:
            status, headers, body = _validate_proxy_response(response)
        except ValueError:
            return self.error(502, "Internal server error", request_id)
        headers.append(("x-amzn-RequestId", request_id))
        headers.append(("x-amz-apigw-id", _apigw_id()))
        headers.append(("X-Amzn-Trace-Id", trace_id))
        if not any(name.lower() == "content-type" for name, _ in headers):
            headers.append(("Content-Type", "application/json"))
        return _Answer(status, headers, body)

    def _record_failure(self, version: FunctionVersion, latency_ms: float, status: int) -> None:
        writer = self._writer
        if writer is not None:
            writer.put(
                RequestRecord(
                    version.function_version,
                    version.model_version,
                    round(latency_ms, 3),
                    None,
                    status,
                    time.time(),
                )
            )

    def _record(self, version: FunctionVersion, invocation: Invocation, answer: _Answer) -> None:
        writer = self._writer
        if writer is None:
            return
        label = None
        if 200 <= answer.status < 300 and invocation.function_error is None:
            try:
                payload_body = json.loads(invocation.payload.get("body"))
                label = payload_body.get("label")
            except (AttributeError, TypeError, ValueError):
                payload_body, label = None, None
            if label not in LABELS:
                label = None
            # A batch's answer: one record per text, as the handler logs them (the judge counts texts).
            if invocation.batch_records and isinstance(payload_body, dict):
                labels = [_result_label(r) for r in payload_body.get("results") or []]
                records = batch_request_records(version, invocation, answer.status, labels, time.time())
                for record in records:
                    writer.put(record)
                if records:
                    return
        writer.put(request_record(version, invocation, answer.status, label, time.time()))


def _result_label(result: Any) -> str | None:
    """The label of one result of a batch answer (None unless it is one of LABELS)."""
    label = result.get("label") if isinstance(result, dict) else None
    return label if label in LABELS else None


def _failure_cause(invocation: Invocation) -> str | None:
    """Why an invocation made API Gateway answer 502, in words safe to log (None: the function
    answered 502 itself): Lambda's error type, and its message only when the platform wrote it (a
    crash, a timeout, an init failure); a handler's own exception message may quote the request."""
    payload = invocation.payload
    if invocation.function_error is None:
        try:
            _validate_proxy_response(payload)
        except ValueError as exc:
            return f"malformed Lambda proxy response ({exc})"
        return None
    if not isinstance(payload, dict):
        return "function error"
    error_type = str(payload.get("errorType") or "function error")
    if error_type.startswith(("Runtime.", "Sandbox.")):
        return f"{error_type}: {payload.get('errorMessage')}"
    return f"{error_type} raised by the handler"


def _validate_proxy_response(response: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, headers, body) of a Lambda proxy response; ValueError when API Gateway would call it
    malformed ("Malformed Lambda proxy response" -> 502)."""
    if not isinstance(response, dict) or not set(response) <= _PROXY_KEYS:
        raise ValueError("not a proxy response object")
    status = response.get("statusCode")
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise ValueError("statusCode is not an HTTP status")
    headers: list[tuple[str, str]] = []
    single = response.get("headers") or {}
    multi = response.get("multiValueHeaders") or {}
    if not isinstance(single, dict) or not isinstance(multi, dict):
        raise ValueError("headers are not objects")
    merged: dict[str, list[str]] = {}
    for name, values in multi.items():
        if not isinstance(values, list):
            raise ValueError("multiValueHeaders values are not lists")
        merged.setdefault(str(name), []).extend(_header_value(v) for v in values)
    for name, value in single.items():
        if isinstance(value, (list, dict)):
            raise ValueError("a header value is not a scalar")
        if str(name) not in merged:
            merged[str(name)] = [_header_value(value)]
    for name, values in merged.items():
        if not name or any(c in name for c in "\r\n: "):
            raise ValueError("a header name is invalid")
        out_name = f"x-amzn-Remapped-{name}" if name.lower() in _REMAPPED else name
        headers.extend((out_name, v) for v in values)
    body = response.get("body")
    if body is None:
        data = b""
    elif isinstance(body, str):
        if response.get("isBase64Encoded") is True:
            try:
                data = base64.b64decode(body, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("body is not base64") from None
        else:
            data = body.encode("utf-8")
    else:
        raise ValueError("body is not a string")
    if "isBase64Encoded" in response and not isinstance(response["isBase64Encoded"], bool):
        raise ValueError("isBase64Encoded is not a boolean")
    return status, headers, data


def _header_value(value: Any) -> str:
    text = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    if "\r" in text or "\n" in text:
        raise ValueError("a header value holds a line break")
    return text


@functools.lru_cache(maxsize=64)
def _resource_id(path: str) -> str:
    return hashlib.sha256(path.encode()).hexdigest()[:6]


def _apigw_id() -> str:
    return base64.b64encode(secrets.token_bytes(12)).decode()[:15] + "="


def _read_chunked(rfile: Any, limit: int, too_big: _Answer, bad: Callable[[], _Answer]) -> bytes | _Answer:
    """A chunked request body (Transfer-Encoding: chunked), refused past `limit` bytes."""
    parts: list[bytes] = []
    total = 0
    while True:
        line = rfile.readline(1026)
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            return bad()
        if size < 0:
            return bad()
        if size == 0:
            while True:  # trailers, up to the blank line
                trailer = rfile.readline(8194)
                if trailer in (b"\r\n", b"\n", b""):
                    return b"".join(parts)
        total += size
        if total > limit:
            return too_big
        chunk = rfile.read(size)
        if len(chunk) != size or rfile.readline(3) not in (b"\r\n", b"\n"):
            return bad()
        parts.append(chunk)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # a load test opens many connections at once

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], gateway: Gateway
    ) -> None:
        self.gateway = gateway
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        self.busy = 0  # requests between their request line and their answer
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.address_family = family
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def wait_idle(self, timeout: float) -> None:
        """Wait until no request is being answered (or the timeout passes)."""
        deadline = time.monotonic() + timeout
        while self.busy > 0 and time.monotonic() < deadline:
            time.sleep(0.01)

    def close_all(self) -> None:
        """Close every open connection (keep-alive clients would otherwise hold their threads)."""
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Headers:
    """A request's header lines, in order and as sent; lookups ignore case (first value wins,
    as email.message does). Lighter than http.client's email-based parser, which would cost
    more than the rest of the gateway's work on a request."""

    __slots__ = ("_items", "_index")

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = items
        index: dict[str, list[str]] = {}
        for name, value in items:
            index.setdefault(name.lower(), []).append(value)
        self._index = index

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self._index.get(name.lower())
        return values[0] if values else default

    def get_all(self, name: str) -> list[str] | None:
        return self._index.get(name.lower())

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index

    def __len__(self) -> int:
        return len(self._items)


_MAX_HEADERS = 100
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Server"
    sys_version = ""
    disable_nagle_algorithm = True
    timeout = 120  # idle keep-alive connections are closed after this many seconds
    server: _Server

    def handle_one_request(self) -> None:
        request_id = str(uuid.uuid4())
        self._request_id = request_id
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if len(self.raw_requestline) > 65536:
                self.requestline, self.request_version, self.command = "", "", ""
                self._send(self.server.gateway.error(413, "Request Too Long", request_id, close=True))
                return
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():
                return
            with self.server._open_lock:
                self.server.busy += 1
            try:
                answer = self.server.gateway.handle(self, self.path, request_id)
                self._send(answer)
            finally:
                with self.server._open_lock:
                    self.server.busy -= 1
            if answer.drain:
                self._linger()
        except (TimeoutError, ConnectionError):
            self.close_connection = True
        except Exception as exc:  # a bug here must not leave the client without an answer
            # Type and place only: the message could quote the request (its text, its key).
            where = traceback.extract_tb(exc.__traceback__)[-1]
            print(
                f"gateway: unexpected {type(exc).__name__} at {where.filename}:{where.lineno}",
                file=sys.stderr,
            )
            self.close_connection = True
            try:
                self._send(self.server.gateway.error(502, "Internal server error", request_id, close=True))
            except OSError:
                pass

    def _linger(self) -> None:
        """Close after an answer sent before the body was read: stop writing, then read and drop
        what the client still sends (bounded), so that closing does not reset the connection
        before the client has read the answer."""
        self.wfile.flush()
        try:
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(2.0)
            deadline = time.monotonic() + 5.0
            received = 0
            while time.monotonic() < deadline and received < 64 * 1024 * 1024:
                chunk = self.connection.recv(1 << 16)
                if not chunk:
                    break
                received += len(chunk)
        except OSError:
            pass

    def parse_request(self) -> bool:
        """The request line and headers (http.server's rules for versions, keep-alive and
        Expect: 100-continue; its email-based header parser replaced by a lighter one)."""
        self.command, self.request_version, self.close_connection = "", "HTTP/0.9", True
        self.headers = Headers([])  # type: ignore[assignment]
        self.requestline = requestline = self.raw_requestline.decode("latin-1").rstrip("\r\n")
        words = requestline.split()
        if len(words) != 3 or not words[2].startswith("HTTP/"):
            self.send_error(400)
            return False
        command, path, version = words
        try:
            major, minor = (int(part) for part in version[5:].split(".", 1))
        except ValueError:
            self.send_error(400)
            return False
        if (major, minor) >= (2, 0) or major < 1:
            self.send_error(400)
            return False
        self.command, self.path, self.request_version = command, path, version
        self.close_connection = (major, minor) < (1, 1)
        items: list[tuple[str, str]] = []
        while True:
            line = self.rfile.readline(65537)
            if len(line) > 65536 or len(items) >= _MAX_HEADERS:
                self.send_error(431)
                return False
            if line in (b"\r\n", b"\n", b""):
                break
            name, colon, value = line.decode("latin-1").partition(":")
            if not colon or not name or not _TOKEN.issuperset(name):
                self.send_error(400)  # no field name, spaces before the colon, or obsolete line folding
                return False
            items.append((name, value.strip()))
        self.headers = headers = Headers(items)  # type: ignore[assignment]
        connection = (headers.get("Connection") or "").lower()
        if connection == "close":
            self.close_connection = True
        elif connection == "keep-alive":
            self.close_connection = False
        expect = (headers.get("Expect") or "").lower()
        if expect == "100-continue" and (major, minor) >= (1, 1) and not self.handle_expect_100():
            return False
        return True

    def handle_expect_100(self) -> bool:
        length = self.headers.get("Content-Length", "")
        if length.strip().isdigit() and int(length) > self.server.gateway.settings.payload_limit_bytes:
            return True  # no 100 Continue: the 413 follows without reading the body
        return super().handle_expect_100()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (bad request line, header line too long, too many headers)
        answered the API Gateway way."""
        gateway = self.server.gateway
        request_id = getattr(self, "_request_id", str(uuid.uuid4()))
        if code == 431:
            answer = gateway.error(413, "Request Too Long", request_id, close=True)
        else:
            answer = gateway.error(400, "Bad Request", request_id, close=True)
        self.close_connection = True
        self._send(answer)

    def _send(self, answer: _Answer) -> None:
        # parse_request has already decided keep-alive from the request's version and Connection.
        if answer.close:
            self.close_connection = True
        reason = self.responses.get(answer.status, ("",))[0]
        lines = [f"HTTP/1.1 {answer.status} {reason}", f"Date: {formatdate(usegmt=True)}"]
        lines += [f"{name}: {value}" for name, value in answer.headers]
        lines.append(f"Content-Length: {len(answer.body)}")
        lines.append("Connection: close" if self.close_connection else "Connection: keep-alive")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        # A HEAD answer has the headers of the answer it stands for, and no body.
        self.wfile.write(head if getattr(self, "command", "") == "HEAD" else head + answer.body)
        gateway = self.server.gateway
        gateway._count(answer.status)
        if gateway.access_log is not None:
            path = urlsplit(getattr(self, "path", "") or "").path[:200]
            gateway.access_log(
                f"{self._request_id} {getattr(self, 'command', '') or '-'} {path} {answer.status}"
            )

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        """Quiet: the gateway writes its own access log (no query strings, no keys)."""
