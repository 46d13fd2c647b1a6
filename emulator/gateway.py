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
Malformed HTTP (a bad request line or chunk size, Content-Length beside Transfer-Encoding) -> 400
{"message": "Bad Request"}; an encoded slash (%2F) stays inside its path segment, so it matches no
route. Every request that reached the function leaves one canary.records.RequestRecord in the
store, written in batches by a background thread (flush() writes the queued ones at once).

The HTTP/1.1 server is aiohttp's (its low-level web.Server: the routing above is API Gateway's
own, not a URL dispatcher's), on an asyncio loop in one thread; the blocking Lambda invoke of each
request runs in a thread pool, where it waits on the function's pipe.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import functools
import hashlib
import hmac
import ipaddress
import json
import secrets
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import KW_ONLY, dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

import yaml
from aiohttp import web
from aiohttp.http import HttpVersion11
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.web_protocol import ERROR as PARSE_ERROR  # its stand-in for an unparsable request
from multidict import CIMultiDict

from canary.proxy_event import rest_proxy_event
from canary.records import LABELS, RecordStore, RequestRecord
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
from stack import LOCAL_ACCOUNT, PlanSettings, Route, StackSettings

if TYPE_CHECKING:  # emulator.consumers imports this module
    from emulator.consumers import KeyRegistry

MIN_API_KEY_CHARS = 20  # API Gateway refuses shorter key values
# Where the local gateway serves the API's OpenAPI document (README, "The API's contract").
OPENAPI_PATHS = ("/openapi.yaml", "/openapi.json")
# Threads for the blocking Lambda invokes: each waits on its function's pipe, so the pool is wide
# (a thread per request in flight, as the load test's connections keep many in flight).
INVOKE_THREADS = 256
RECORD_INTERVAL_S = 0.25  # how often the queued records are written to the store
# Request headers the gateway sets itself, replacing the client's (whatever their case).
_REPLACED = frozenset({"x-forwarded-for", "x-forwarded-port", "x-forwarded-proto"})
_PROXY_KEYS = frozenset({"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"})
# Response headers API Gateway does not pass through as they are; it renames them x-amzn-Remapped-*.
_REMAPPED = frozenset(
    "authorization connection content-length content-md5 date expect host max-forwards proxy-authenticate "
    "server te trailer transfer-encoding upgrade user-agent via warn www-authenticate".split()
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


@dataclass(eq=False)
class Quota:
    """The usage plan's quota: `limit` requests per key per calendar DAY, WEEK or MONTH (UTC).
    `start` and `used` continue a period counted before (a restarted gateway's saved usage)."""

    limit: int
    period: str
    offset: int = 0
    clock: Callable[[], float] = time.time
    _: KW_ONLY
    start: float | None = None  # epoch seconds at which the counted period began
    used: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def period_start(self, now: float) -> float:
        """Epoch seconds at which the period holding `now` began (UTC; WEEK starts on Sunday + offset)."""
        t = time.gmtime(now)
        midnight = now - (t.tm_hour * 3600 + t.tm_min * 60 + t.tm_sec + (now % 1))
        if self.period == "DAY":
            return midnight
        if self.period == "WEEK":
            days_since = (t.tm_wday + 1 - self.offset) % 7  # tm_wday: Monday 0; API Gateway's week: Sunday 0
            return midnight - days_since * 86_400
        first = midnight - (t.tm_mday - 1) * 86_400  # this month's first day
        start = first + self.offset * 86_400
        if start > now:  # before this month's offset day: the period began last month
            start -= time.gmtime(first - 86_400).tm_mday * 86_400  # as many days as last month has
        return start

    def take(self) -> bool:
        with self._lock:
            start = self.period_start(self.clock())
            if start != self.start:
                self.start, self.used = start, 0
            if self.used >= self.limit:
                return False
            self.used += 1
            return True


@dataclass(frozen=True, eq=False)
class KeyLimits:
    """One API key's limits on its usage plan, kept per key as API Gateway keeps them: the key's
    token bucket, its per-method buckets (the plan's method throttling, by "/path/METHOD"), then
    its quota. The gateway's own key and every consumer key (emulator.consumers) each have one,
    built by for_plan."""

    bucket: TokenBucket | None
    methods: Mapping[str, TokenBucket]
    quota: Quota | None

    @classmethod
    def for_plan(
        cls,
        plan: PlanSettings | None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        saved: Mapping[str, Any] | None = None,
    ) -> KeyLimits:
        """A key's limits on `plan` (None: a key on no plan, unlimited); `saved` ({"period_start",
        "used"}) continues the quota period a restarted gateway wrote."""
        if plan is None:
            return cls(None, {}, None)
        bucket = None
        if plan.rate_limit:
            bucket = TokenBucket(plan.rate_limit, plan.burst_limit or int(plan.rate_limit), monotonic)
        methods = {m: TokenBucket(r, b, monotonic) for m, (r, b) in plan.method_throttles.items()}
        quota = None
        if plan.quota_limit is not None:
            saved = saved or {}
            start = saved.get("period_start")
            quota = Quota(
                plan.quota_limit,
                plan.quota_period,
                plan.quota_offset,
                clock,
                start=None if start is None else float(start),
                used=int(saved.get("used", 0)),
            )
        return cls(bucket, methods, quota)

    def take(self, method_key: str = "") -> str | None:
        """None when the request may pass, else API Gateway's 429 message. A throttled request
        costs no quota."""
        method_bucket = self.methods.get(method_key)
        if method_bucket is not None and not method_bucket.take():
            return "Too Many Requests"
        if self.bucket is not None and not self.bucket.take():
            return "Too Many Requests"
        if self.quota is not None and not self.quota.take():
            return "Limit Exceeded"
        return None


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    close: bool = False


class _RecordWriter:
    """Appends records to the store in batches, off the request path: a request only queues its
    record; one thread writes all queued every `interval_s`, or at once when flush() asks and
    waits (bounded by its timeout: a store that hangs must not hang the caller)."""

    def __init__(self, store: RecordStore, interval_s: float) -> None:
        self.store = store
        self.interval_s = interval_s
        self.pending: collections.deque[RequestRecord] = collections.deque()  # append/popleft: thread-safe
        self.written = 0  # over every start of the gateway
        self._wake = threading.Event()
        self._waiters: collections.deque[threading.Event] = collections.deque()  # flush() calls
        self._stopped = threading.Event()  # one per start: a thread left in a write ends on its own
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(self._stopped,), name="gateway-records", daemon=True
        )
        self._thread.start()

    def _run(self, stopped: threading.Event) -> None:
        while True:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            # Waiters first: every record queued before a flush() call is in the batch taken next.
            waiters = [self._waiters.popleft() for _ in range(len(self._waiters))]
            batch = [self.pending.popleft() for _ in range(len(self.pending))]
            if batch:
                self._write(batch)
            for waiter in waiters:
                waiter.set()
            if stopped.is_set():
                return

    def flush(self, timeout: float) -> bool:
        """Wait until every record queued so far is written; False after `timeout` seconds."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return not self.pending
        done = threading.Event()
        self._waiters.append(done)
        self._wake.set()
        return done.wait(timeout)

    def close(self, timeout: float) -> None:
        """Stop the thread once it has written what is queued; say how many records it left when
        the store did not answer within `timeout`."""
        self._stopped.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.pending:
            left = len(self.pending)
            print(f"gateway: {left} records not written: the store did not answer", file=sys.stderr)

    def _write(self, batch: list[RequestRecord]) -> None:
        for attempt in range(5):
            try:
                self.store.extend(batch)
                self.written += len(batch)
                return
            except Exception as exc:  # a locked or full disk must not take the gateway down
                if attempt == 4:
                    print(f"gateway: {len(batch)} records lost: {type(exc).__name__}: {exc}", file=sys.stderr)
                    return
                time.sleep(0.05 * (attempt + 1))


class GatewayError(Exception):
    """One of API Gateway's own answers ({"message": ...}), raised wherever a request's pipeline
    refuses it; Gateway.error turns it into the response."""

    def __init__(self, status: int, message: str, close: bool = False) -> None:
        super().__init__(message)
        self.status, self.message, self.close = status, message, close


def _gateway_error(exc: BaseException | None) -> GatewayError:
    """Every refusal as API Gateway answers it, in one place. The pipeline's own GatewayError as it
    is; Lambda's refusals of the invoke: an event over its 6 MB limit -> 413 Request Too Long, no
    answer within the integration timeout -> 504, no environment -> 502; aiohttp's refusals of
    malformed HTTP: a line or header section too long -> 413 Request Too Long, any other framing
    error (request line, header syntax, chunk size, Content-Length beside Transfer-Encoding) ->
    400 Bad Request; anything else is a bug -> 502 (logged by type and place only: its message
    could quote the request). Malformed HTTP and bugs close the connection."""
    if isinstance(exc, GatewayError):
        return exc
    if isinstance(exc, RequestTooLarge):
        return GatewayError(413, "Request Too Long")
    if isinstance(exc, CallerGaveUp):
        return GatewayError(504, "Endpoint request timed out")
    if isinstance(exc, EnvironmentFailed):
        return GatewayError(502, "Internal server error")
    if isinstance(exc, LineTooLong) or "Too many headers" in str(exc):
        return GatewayError(413, "Request Too Long", close=True)
    if isinstance(exc, HttpProcessingError):
        return GatewayError(400, "Bad Request", close=True)
    if exc is not None:
        where = traceback.extract_tb(exc.__traceback__)[-1]
        print(f"gateway: unexpected {type(exc).__name__} at {where.filename}:{where.lineno}", file=sys.stderr)
    return GatewayError(502, "Internal server error", close=True)


class _Protocol(web.RequestHandler):
    """aiohttp's connection handler, answering its own parse errors the API Gateway way (its
    default is a text/plain page and a logged traceback, which could quote the request)."""

    def handle_error(
        self, request: Any, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        gateway: Gateway = self._manager.gateway  # type: ignore[attr-defined]
        return gateway.respond(request, gateway.error(_gateway_error(exc), str(uuid.uuid4())))


class _Server(web.Server):
    """aiohttp's low-level server with _Protocol for each connection."""

    def __init__(self, gateway: Gateway, **kwargs: Any) -> None:
        super().__init__(gateway.serve, request_factory=self._request, **kwargs)
        self.gateway = gateway

    def __call__(self) -> web.RequestHandler:
        return _Protocol(self, loop=self._loop, **self._kwargs)

    def _request(self, message: Any, payload: Any, protocol: Any, writer: Any, task: Any) -> web.BaseRequest:
        if message is PARSE_ERROR:  # aiohttp's stand-in request is HTTP/1.0; API Gateway answers 1.1
            message = message._replace(version=HttpVersion11)
        return web.BaseRequest(message, payload, protocol, writer, task, self._loop)


class Gateway:
    """The local API Gateway stage: start(), stop(), url."""

    def __init__(
        self,
        settings: StackSettings,
        alias: Alias,
        api_key: str,
        store: RecordStore | None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        access_log: Callable[[str], None] | None = None,
        error_log: Callable[[str], None] | None = _print_error,
        consumers: KeyRegistry | None = None,
    ) -> None:
        if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"the local gateway listens on loopback only, not {host}")
        self.settings = settings
        self.alias = alias
        self.api_key = check_api_key(api_key)
        self.api_key_id = api_key_id(api_key)
        self.host = host
        self.requested_port = int(port)
        self.access_log = access_log
        # One line per 5xx the integration produced (function error, timeout, no environment): the
        # request id and the cause, never the body or the key.
        self.error_log = error_log
        # Consumer keys (make consumer-add ENV=local): accepted besides api_key, each limited by its
        # own plan; api_key by the stack's own key's plan (settings.key_plan).
        self.consumers = consumers
        self.api_id = hashlib.sha256(settings.api_name.encode()).hexdigest()[:10]
        self.routes: dict[str, dict[str, Route]] = {}
        for route in settings.routes:
            self.routes.setdefault(route.path, {})[route.method] = route
        self.limits = KeyLimits.for_plan(settings.key_plan)
        self.counts: dict[int, int] = {}  # HTTP status -> how many answered
        # Records queue to it; None: no store, no records.
        self._records = None if store is None else _RecordWriter(store, RECORD_INTERVAL_S)
        self._loop: asyncio.AbstractEventLoop | None = None  # the server's, run by one thread
        self._server: _Server
        self._listener: asyncio.Server
        self._thread: threading.Thread | None = None
        self._port: int | None = None
        self._pool: ThreadPoolExecutor | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the gateway is not started")
        return self._port

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
        if self._loop is not None:
            return self
        self.alias.start()
        loop = asyncio.new_event_loop()
        try:
            self._port = loop.run_until_complete(self._listen())
        except BaseException:
            loop.close()
            raise
        self._loop = loop
        self._pool = ThreadPoolExecutor(max_workers=INVOKE_THREADS, thread_name_prefix="gateway-invoke")
        if self._records is not None:
            self._records.start()
        if self.consumers is not None:
            self.consumers.start()
        self._thread = threading.Thread(target=loop.run_forever, name="gateway", daemon=True)
        self._thread.start()
        return self

    async def _listen(self) -> int:
        """Listen (inside the loop: aiohttp's server belongs to it); the port."""
        # Header lines up to 64 KB reach handle(), which answers 413 past the 10,240-byte limit.
        # A refused body is read away for at most 5 s before the connection closes.
        self._server = _Server(
            self,
            max_line_size=65536,
            max_field_size=65536,
            max_headers=100,
            lingering_time=5.0,
            keepalive_timeout=120.0,  # idle keep-alive connections close after two minutes
            access_log=None,  # the gateway writes its own (no query strings, no keys)
        )
        # Bound here (not by asyncio) for the OS's own error ("Address already in use"); a load
        # test opens many connections at once.
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.create_server((self.host, self.requested_port), family=family, backlog=1024)
        self._listener = await asyncio.get_running_loop().create_server(self._server, sock=sock)
        return self._listener.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        self._listener.close()  # no new connections
        await self._server.shutdown(timeout=5.0)  # requests being answered finish; then all close
        # What is left (a connection still reading away a refused body) ends with the loop.
        left = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)

    def stop(self, stop_functions: bool = True) -> None:
        """Stop listening, close open connections, write the pending records, stop the functions."""
        loop, self._loop = self._loop, None
        if loop is not None:
            asyncio.run_coroutine_threadsafe(self._close(), loop).result(timeout=30)
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=5)
                self._thread = None
            loop.close()
            self._port = None
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        if self._records is not None:
            self._records.close(timeout=10)
        if loop is not None and self.consumers is not None:
            self.consumers.stop()
        if stop_functions:
            self.alias.stop()

    def __enter__(self) -> Gateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every record of the requests answered so far is in the store."""
        return self._records is None or self._records.flush(timeout)

    @property
    def records_written(self) -> int:
        return 0 if self._records is None else self._records.written

    # ------------------------------------------------------------------ answers

    def error(self, error: GatewayError, request_id: str) -> _Answer:
        """One of API Gateway's own error answers, with the template's GatewayResponses headers."""
        body = json.dumps({"message": error.message}, separators=(",", ":")).encode()
        kind = "DEFAULT_5XX" if error.status >= 500 else "DEFAULT_4XX"
        headers = [
            ("Content-Type", "application/json"),
            ("x-amzn-RequestId", request_id),
            ("x-amzn-ErrorType", _ERROR_TYPES.get(error.message, "BadRequestException")),
            ("x-amz-apigw-id", _apigw_id()),
        ]
        headers += list((self.settings.gateway_response_headers.get(kind) or {}).items())
        return _Answer(error.status, headers, body, error.close)

    def respond(self, request: web.BaseRequest, answer: _Answer) -> web.Response:
        """The HTTP response of an answer, counted and access-logged (no query string, no key)."""
        headers = CIMultiDict(answer.headers)
        # API Gateway says keep-alive on every answer it does not close the connection after.
        headers["Connection"] = "keep-alive" if request.keep_alive and not answer.close else "close"
        response = web.Response(status=answer.status, body=answer.body, headers=headers)
        if answer.close:
            response.force_close()
        self.counts[answer.status] = self.counts.get(answer.status, 0) + 1  # one loop thread: no lock
        if self.access_log is not None:
            request_id = headers.get("x-amzn-RequestId", "-")
            path = request.raw_path.partition("?")[0][:200]
            self.access_log(f"{request_id} {request.method or '-'} {path} {answer.status}")
        return response

    async def serve(self, request: web.BaseRequest) -> web.Response:
        """aiohttp's handler of every request: API Gateway's answer, errors mapped in one place."""
        request_id = str(uuid.uuid4())
        try:
            answer = await self.handle(request, request_id)
        except (ConnectionError, asyncio.CancelledError):
            raise  # the client went away: nobody to answer
        except Exception as exc:
            answer = self.error(_gateway_error(exc), request_id)
        return self.respond(request, answer)

    async def handle(self, request: web.BaseRequest, request_id: str) -> _Answer:
        """API Gateway's answer to one request (headers read, body not yet); raises GatewayError."""
        method = request.method
        # 1. Size limits, before anything else.
        header_bytes = len(method) + len(request.raw_path) + 12  # the request line, "HTTP/1.1" and CRLF
        header_bytes += sum(len(k) + len(v) + 4 for k, v in request.raw_headers)
        body = await self._read_body(request)
        if isinstance(body, _Answer):
            return body
        if header_bytes > self.settings.header_limit_bytes:
            raise GatewayError(413, "Request Too Long")

        # 2. Stage, resource and method.
        raw_path, _, query = request.raw_path.partition("?")
        # Decoded segment by segment: an encoded slash (%2F) stays in its segment, not a separator.
        path = "/".join(unquote(part).replace("/", "%2F") for part in raw_path.split("/")) or "/"
        # The local stack's extra, outside every stage (so no API route can clash): the API's
        # OpenAPI document, for clients and generators (schemathesis); no key, as a docs page.
        if path in OPENAPI_PATHS and method in ("GET", "HEAD"):
            return self._openapi(path, request_id)
        route, resource_path = self._route(request, path)
        if route is None:
            return self._preflight(request_id)

        # 3. Key, throttle, quota: the gateway's own key on the settings' plan, or a consumer's
        # key on its own plan (each key its own bucket and quota, as API Gateway keeps them).
        key_id = self._admit(request, route)

        # 4. The Lambda proxy integration.
        event = self._event(request, route, resource_path, query, body, request_id, key_id)
        # API Gateway adds a trace header only to a request that has none: a client's is passed on.
        trace_id = request.headers.get("X-Amzn-Trace-Id") or event["headers"]["X-Amzn-Trace-Id"]
        invoke = functools.partial(self._invoke, event, trace_id, request_id)
        version, invocation = await asyncio.get_running_loop().run_in_executor(self._pool, invoke)
        answer, cause = self._proxy_answer(invocation, request_id, trace_id)
        self._record(version, invocation, answer.status)
        if cause is not None:
            self._log_error(502, request_id, version, cause, invocation.request_id)
        return answer

    def _route(self, request: web.BaseRequest, path: str) -> tuple[Route | None, str]:
        """The route a decoded path and method reach, and the path inside the stage; (None, path)
        for a CORS preflight (SAM's mock integration). Raises API Gateway's 403s."""
        stage_prefix = f"/{self.settings.stage_name}"
        if not (path == stage_prefix or path.startswith(stage_prefix + "/")):
            raise GatewayError(403, "Forbidden")
        resource_path = path[len(stage_prefix) :] or "/"
        # API Gateway routes /resource/ to /resource (the event keeps the path as sent).
        key = resource_path[:-1] if len(resource_path) > 1 and resource_path.endswith("/") else resource_path
        methods = self.routes.get(key)
        if methods is None:
            raise GatewayError(403, "Missing Authentication Token")
        cors = self.settings.cors
        if request.method == "OPTIONS" and cors is not None and "OPTIONS" not in methods:
            if not cors.preflight_needs_key or self._key_ok(request.headers):
                return None, resource_path
            raise GatewayError(403, "Forbidden")
        route = methods.get(request.method)
        if route is None:
            raise GatewayError(403, "Missing Authentication Token")
        return route, resource_path

    def _admit(self, request: web.BaseRequest, route: Route) -> str:
        """The id of the key the request may pass with, or API Gateway's 403 / 429."""
        method_key = f"{route.path}/{route.method}"  # as the plans' method throttles name it
        if route.api_key_required and not self._key_ok(request.headers):
            admission = None
            if self.consumers is not None:
                admission = self.consumers.admit(request.headers.getall("x-api-key", None), method_key)
            if admission is None:
                raise GatewayError(403, "Forbidden")
            if admission.refusal is not None:
                raise GatewayError(429, admission.refusal)
            return admission.key_id
        refusal = self.limits.take(method_key)
        if refusal is not None:
            raise GatewayError(429, refusal)
        return self.api_key_id

    def _invoke(
        self, event: dict[str, Any], trace_id: str, request_id: str
    ) -> tuple[FunctionVersion, Invocation]:
        """The alias's invocation (in the thread pool: it blocks on the function's pipe); a timeout
        or a lost environment is logged (and a timeout recorded) before _gateway_error maps it."""
        timeout_s = self.settings.integration_timeout_s
        try:
            return self.alias.invoke_detailed(event, trace_id=trace_id, max_wait_s=timeout_s)
        except CallerGaveUp as exc:
            # The function is still busy with it (or with the ones before it); API Gateway stops waiting.
            if self._records is not None:
                version, waited_ms = exc.version, round(exc.waited_ms, 3)
                record = RequestRecord(
                    version.function_version, version.model_version, waited_ms, None, 504, time.time()
                )
                self._records.pending.append(record)
            self._log_error(
                504, request_id, exc.version, f"no answer within the {timeout_s:g} s integration timeout"
            )
            raise
        except EnvironmentFailed as exc:
            self._log_error(502, request_id, None, str(exc))
            raise

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
        values = headers.getall("x-api-key", [])
        return len(values) == 1 and hmac.compare_digest(values[0].encode(), self.api_key.encode())

    async def _read_body(self, request: web.BaseRequest) -> bytes | _Answer:
        """The body (sized or chunked; aiohttp has checked the framing), or the edge's 413 past
        the payload limit, answered without reading the rest (aiohttp reads it away before closing,
        so the client sees the answer, not a reset)."""
        limit = self.settings.payload_limit_bytes
        too_big = _Answer(
            413,
            [("Content-Type", "text/plain; charset=utf-8")],
            f"HTTP content length exceeded {limit} bytes.".encode(),
            close=True,
        )
        if request.content_length is not None and request.content_length > limit:
            return too_big  # and no 100 Continue: the client need not send the body
        if request.headers.get("Expect", "").lower() == "100-continue" and request.version >= HttpVersion11:
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        parts: list[bytes] = []
        total = 0
        while chunk := await request.content.readany():
            total += len(chunk)
            if total > limit:
                return too_big
            parts.append(chunk)
        return b"".join(parts)

    def _openapi(self, path: str, request_id: str) -> _Answer:
        """openapi.yaml beside the template, as it is (/openapi.yaml) or as JSON (/openapi.json);
        read afresh each time, so an edit shows at once."""
        source = self.settings.template_path.parent / "openapi.yaml"
        try:
            text = source.read_text(encoding="utf-8")
            if path.endswith(".json"):
                text = json.dumps(yaml.safe_load(text), indent=1)
        except (OSError, ValueError, yaml.YAMLError):
            raise GatewayError(404, "Not Found") from None
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
        request: web.BaseRequest,
        route: Route,
        resource_path: str,
        query: str,
        body: bytes,
        request_id: str,
        key_id: str,
    ) -> dict[str, Any]:
        """The request's REST proxy event (canary.proxy_event), with the headers API Gateway adds."""
        source_ip = request.remote or self.host
        sent = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers]
        forwarded = request.headers.get("X-Forwarded-For")
        now = time.time()
        added = {
            "X-Forwarded-For": f"{forwarded}, {source_ip}" if forwarded else source_ip,
            "X-Forwarded-Port": str(self.port),
            "X-Forwarded-Proto": "http",
        }
        if "X-Amzn-Trace-Id" not in request.headers:  # any case: a client's is passed on as it is
            added["X-Amzn-Trace-Id"] = f"Root=1-{int(now):08x}-{secrets.token_hex(12)};Sampled=0"
        headers = [(k, v) for k, v in sent if k.lower() not in _REPLACED]
        keyed = route.api_key_required
        return rest_proxy_event(
            request.method,
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
                "apiKey": request.headers.get("x-api-key") if keyed else None,
                "apiKeyId": key_id if keyed else None,
            },
            context={
                "resourceId": _resource_id(route.path),
                "extendedRequestId": _apigw_id(),
                "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
                "accountId": LOCAL_ACCOUNT,
                "protocol": f"HTTP/{request.version.major}.{request.version.minor}",
                "domainPrefix": self.api_id,
                "requestTimeEpoch": int(now * 1000),
                "domainName": request.headers.get("Host") or f"{self.host}:{self.port}",
                "apiId": self.api_id,
            },
        )

    def _proxy_answer(
        self, invocation: Invocation, request_id: str, trace_id: str
    ) -> tuple[_Answer, str | None]:
        """The client's answer to an invocation, and why API Gateway made it a 502, in words safe to
        log (None when the answer is the function's own, a 502 of its own included)."""
        if invocation.function_error is not None:
            cause = _function_error_cause(invocation.payload)
            return self.error(GatewayError(502, "Internal server error"), request_id), cause
        try:
            status, headers, body = _validate_proxy_response(invocation.payload)
        except ValueError as exc:
            cause = f"malformed Lambda proxy response ({exc})"
            return self.error(GatewayError(502, "Internal server error"), request_id), cause
        headers.append(("x-amzn-RequestId", request_id))
        headers.append(("x-amz-apigw-id", _apigw_id()))
        headers.append(("X-Amzn-Trace-Id", trace_id))
        if not any(name.lower() == "content-type" for name, _ in headers):
            headers.append(("Content-Type", "application/json"))
        return _Answer(status, headers, body), None

    def _record(self, version: FunctionVersion, invocation: Invocation, status: int) -> None:
        """Queue the records of an answered request: one, with the label of a 2xx answer; a batch's
        answer one per text, as the handler logs them (the judge counts texts)."""
        if self._records is None:
            return
        answer = None
        if 200 <= status < 300 and invocation.function_error is None:
            try:
                answer = json.loads(invocation.payload.get("body"))
            except (AttributeError, TypeError, ValueError):
                pass
        now = time.time()
        records: list[RequestRecord] = []
        if isinstance(answer, dict) and invocation.batch_records:
            labels = [_label(r) for r in answer.get("results") or []]
            records = batch_request_records(version, invocation, status, labels, now)
        if not records:
            records = [request_record(version, invocation, status, _label(answer), now)]
        self._records.pending.extend(records)


def _label(answer: Any) -> str | None:
    """The label of an answer, or of one result of a batch answer (None unless it is one of LABELS)."""
    label = answer.get("label") if isinstance(answer, dict) else None
    return label if label in LABELS else None


def _function_error_cause(payload: Any) -> str:
    """Why a function error made API Gateway answer 502: Lambda's error type, and its message only
    when the platform wrote it (a crash, a timeout, an init failure); a handler's own exception
    message may quote the request."""
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
            except ValueError:  # binascii.Error included
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
