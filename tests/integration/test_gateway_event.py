"""What the function receives and what the gateway makes of what it returns, over real HTTP.

A test double stands in for the inference handler here (the worker loads whatever Handler the
settings name): it echoes the proxy event, the Lambda context and its environment, or crashes,
sleeps, raises or returns malformed proxy responses when the body asks it to.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import signal
import threading
import time
import uuid

import pytest
import requests

from emulator.functions import Alias, FunctionVersion
from emulator.gateway import Gateway, api_key_id
from stack import load_settings

pytestmark = pytest.mark.integration

API_KEY = "event-test-key-0123456789abcdef"
HANDLER = f"{__name__}.echo_handler"
ENV_SHOWN = (
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_REGION",
    "MODEL_VERSION",
    "MAX_TEXT_CHARS",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "LOG_LEVEL",
    "TZ",
    "LAMBDA_TASK_ROOT",
    "_HANDLER",
)


def echo_handler(event, context):
    """The test double: echoes, or misbehaves as the body says."""
    body = event.get("body") or ""
    if body == "crash":
        os._exit(3)
    if body.startswith("sleep-crash "):
        time.sleep(float(body.split()[1]))
        os._exit(4)
    if body.startswith("sleep "):
        time.sleep(float(body.split()[1]))
    if body == "raise":
        raise RuntimeError("an unhandled exception")
    if body == "status as text":
        return {"statusCode": "abc", "body": ""}
    if body == "not an object":
        return "hello"
    if body == "unknown key":
        return {"statusCode": 200, "body": "", "cookies": ["a=b"]}
    if body == "body not text":
        return {"statusCode": 200, "body": {"a": 1}}
    if body == "binary":
        return {
            "statusCode": 200,
            "headers": {"Content-Type": "application/octet-stream"},
            "body": base64.b64encode(b"\x00\x01\xfe\xff").decode(),
            "isBase64Encoded": True,
        }
    if body == "reserved headers":
        return {
            "statusCode": 201,
            "headers": {"Server": "mine", "X-Mine": "yes"},
            "multiValueHeaders": {"X-Two": ["a", "b"]},
        }
    context_seen = {
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "aws_request_id": context.aws_request_id,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "log_group_name": context.log_group_name,
    }
    env = {key: os.environ.get(key) for key in ENV_SHOWN}
    env["secrets"] = sorted(k for k in os.environ if k == "HATE_API_KEY" or k.startswith("AWS_SECRET"))
    answer = {"event": event, "context": context_seen, "env": env, "pid": os.getpid()}
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": json.dumps(answer)}


def echo_settings(timeout_s: float | None = None):
    settings = load_settings().lifted(quota=True, throttle=True)
    inference = dataclasses.replace(settings.inference, handler=HANDLER)
    if timeout_s is not None:
        inference = dataclasses.replace(inference, timeout_s=timeout_s)
    return dataclasses.replace(settings, inference=inference)


@pytest.fixture(scope="module")
def stack():
    os.environ["HATE_API_KEY"] = API_KEY  # must not reach the function's environment
    try:
        settings = echo_settings()
        version = FunctionVersion("7", "v2", settings=settings)
        gateway = Gateway(settings, Alias("live", version), API_KEY, None).start()
        yield gateway, version
        gateway.stop()
    finally:
        os.environ.pop("HATE_API_KEY", None)


def call(gateway, body: bytes | str | None = None, path: str = "", **kwargs) -> requests.Response:
    headers = {"x-api-key": API_KEY, **kwargs.pop("headers", {})}
    return requests.post(gateway.route_url() + path, data=body, headers=headers, timeout=30, **kwargs)


def echoed(response: requests.Response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def test_the_proxy_event_has_api_gateways_shape(stack):
    """resource, path, method, headers and multiValueHeaders, query parameters, requestContext
    (requestId, stage, resourcePath, httpMethod, identity with sourceIp, apiKey and apiKeyId)."""
    gateway, _ = stack
    r = call(gateway, "hello", path="?a=1&a=2&b=", headers={"X-Custom": "One", "Content-Type": "text/plain"})
    event = echoed(r)["event"]
    assert event["resource"] == "/infer/hate-speech"
    assert event["path"] == "/infer/hate-speech"
    assert event["httpMethod"] == "POST"
    assert event["body"] == "hello" and event["isBase64Encoded"] is False
    assert event["headers"]["X-Custom"] == "One"  # names as sent
    assert event["multiValueHeaders"]["X-Custom"] == ["One"]
    assert all(isinstance(v, list) for v in event["multiValueHeaders"].values())
    assert event["queryStringParameters"] == {"a": "2", "b": ""}
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"], "b": [""]}
    assert event["pathParameters"] is None and event["stageVariables"] is None
    ctx = event["requestContext"]
    assert ctx["requestId"] == r.headers["x-amzn-RequestId"]
    assert (ctx["stage"], ctx["resourcePath"], ctx["httpMethod"]) == ("v1", "/infer/hate-speech", "POST")
    assert ctx["path"] == "/v1/infer/hate-speech"
    assert ctx["identity"]["sourceIp"] == "127.0.0.1"
    assert ctx["identity"]["apiKey"] == API_KEY
    assert ctx["identity"]["apiKeyId"] == api_key_id(API_KEY)
    assert abs(ctx["requestTimeEpoch"] / 1000 - time.time()) < 60


def test_no_body_and_no_query_string_are_null(stack):
    """Without a body or a query string the event says null, as API Gateway's does."""
    event = echoed(call(stack[0]))["event"]
    assert event["body"] is None
    assert event["queryStringParameters"] is None and event["multiValueQueryStringParameters"] is None


def test_trailing_slash_keeps_the_path_as_sent(stack):
    """/infer/hate-speech/ is routed to the resource; the event's path keeps the slash."""
    event = echoed(call(stack[0], "x", path="/"))["event"]
    assert (event["resource"], event["path"]) == ("/infer/hate-speech", "/infer/hate-speech/")


def test_binary_body_is_base64_encoded_in_the_event(stack):
    """Bytes that are not UTF-8 arrive base64-encoded with isBase64Encoded true."""
    raw = b"\x89PNG\r\n\x1a\n\xff\x00"
    event = echoed(call(stack[0], raw, headers={"Content-Type": "application/octet-stream"}))["event"]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == raw


def test_forwarding_and_trace_headers_are_added(stack):
    """X-Forwarded-For/-Port/-Proto and X-Amzn-Trace-Id are added; a client's X-Forwarded-For is kept."""
    gateway, _ = stack
    headers = echoed(call(gateway, "x", headers={"X-Forwarded-For": "203.0.113.9"}))["event"]["headers"]
    assert headers["X-Forwarded-For"] == "203.0.113.9, 127.0.0.1"
    assert headers["X-Forwarded-Port"] == str(gateway.port)
    assert headers["X-Forwarded-Proto"] == "http"
    assert headers["X-Amzn-Trace-Id"].startswith("Root=1-")


def test_a_clients_trace_header_is_passed_on_whatever_its_case(stack):
    """API Gateway adds a trace header only to a request without one: a client's x-amzn-trace-id
    reaches the function as sent, with no second trace header beside it, and the answer names it."""
    gateway, _ = stack
    r = call(gateway, "x", headers={"x-amzn-trace-id": "Root=1-00000000-client"})
    event = echoed(r)["event"]
    names = [name for name in event["multiValueHeaders"] if name.lower() == "x-amzn-trace-id"]
    assert len(names) == 1
    assert event["multiValueHeaders"][names[0]] == ["Root=1-00000000-client"]
    assert r.headers["X-Amzn-Trace-Id"] == "Root=1-00000000-client"


def test_duplicate_headers_keep_every_value_in_multi_value_headers(stack):
    """Two X-Tag headers: headers holds the last, multiValueHeaders both."""
    import http.client

    gateway, _ = stack
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    try:
        conn.putrequest("POST", "/v1/infer/hate-speech")
        for name, value in (("x-api-key", API_KEY), ("X-Tag", "a"), ("X-Tag", "b"), ("Content-Length", "1")):
            conn.putheader(name, value)
        conn.endheaders(b"x")
        event = json.loads(conn.getresponse().read())["event"]
    finally:
        conn.close()
    assert event["headers"]["X-Tag"] == "b"
    assert event["multiValueHeaders"]["X-Tag"] == ["a", "b"]


def test_the_handler_gets_a_lambda_context(stack):
    """function_name, function_version, the alias ARN, a request id, memory and remaining time."""
    gateway, version = stack
    context = echoed(call(gateway, "x"))["context"]
    assert context["function_name"] == version.settings.inference.name == "hate-speech-prod-infer"
    assert context["function_version"] == "7"
    assert context["invoked_function_arn"].endswith(":function:hate-speech-prod-infer:live")
    uuid.UUID(context["aws_request_id"])
    assert context["memory_limit_in_mb"] == "1769"  # a string, as the Python runtime gives it
    assert 0 < context["remaining_ms"] <= 10_000
    assert context["log_group_name"] == "/aws/lambda/hate-speech-prod-infer"


def test_the_environment_is_the_templates_and_holds_no_secret(stack):
    """The template's variables (Globals merged) and the runtime's; never the gateway's API key."""
    env = echoed(call(stack[0], "x"))["env"]
    assert env["MODEL_VERSION"] == "v2"
    assert env["MAX_TEXT_CHARS"] == "5000"
    assert env["POWERTOOLS_SERVICE_NAME"] == "hate-speech-prod"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "HateSpeechApi"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "7"
    assert env["TZ"] == ":UTC"
    assert env["_HANDLER"] == HANDLER
    assert env["secrets"] == []


def test_an_unhandled_exception_is_502_internal_server_error(stack):
    """The handler raises: Lambda reports a function error, API Gateway answers 502."""
    r = call(stack[0], "raise")
    assert r.status_code == 502
    assert r.json() == {"message": "Internal server error"}
    assert r.headers["x-amzn-ErrorType"] == "InternalServerErrorException"
    assert r.headers["Access-Control-Allow-Origin"] == "*"  # GatewayResponses DEFAULT_5XX


def test_malformed_proxy_responses_are_502(stack):
    """statusCode as text, a non-object, an unknown key, a non-string body -> 502."""
    for body in ("status as text", "not an object", "unknown key", "body not text"):
        r = call(stack[0], body)
        assert (r.status_code, r.json()) == (502, {"message": "Internal server error"}), body


def test_base64_responses_are_decoded_for_the_client(stack):
    """isBase64Encoded: true in the function's answer -> the client gets the bytes."""
    r = call(stack[0], "binary")
    assert r.status_code == 200 and r.content == b"\x00\x01\xfe\xff"


def test_reserved_response_headers_are_remapped(stack):
    """A function's Server header becomes x-amzn-Remapped-Server; others and multi-values pass."""
    r = call(stack[0], "reserved headers")
    assert r.status_code == 201
    assert r.headers["x-amzn-Remapped-Server"] == "mine"
    assert r.headers["X-Mine"] == "yes"
    assert r.headers["X-Two"] == "a, b"


def test_a_crash_is_502_and_the_next_request_gets_a_new_environment(stack):
    """The process exits mid-invocation: that request gets 502; the next one is served by a new
    execution environment (a new process, with its own cold start)."""
    gateway, version = stack
    before_pid = echoed(call(gateway, "x"))["pid"]
    environments, cold_starts = version.environments, len(version.cold_starts_ms)
    r = call(gateway, "crash")
    assert (r.status_code, r.json()) == (502, {"message": "Internal server error"})
    after = echoed(call(gateway, "x"))
    assert after["pid"] != before_pid
    assert version.environments == environments + 1
    assert len(version.cold_starts_ms) == cold_starts + 1


def test_requests_queued_behind_a_crash_are_served_by_the_new_environment(stack):
    """While one invocation crashes, the ones waiting for the environment are not lost: they run
    in the next one."""
    gateway, _ = stack
    results: dict[str, int] = {}

    def send(name: str, body: str) -> None:
        results[name] = call(gateway, body).status_code

    crasher = threading.Thread(target=send, args=("crash", "sleep-crash 0.4"))
    crasher.start()
    time.sleep(0.15)
    waiters = [threading.Thread(target=send, args=(f"w{i}", "x")) for i in range(4)]
    for t in waiters:
        t.start()
    for t in [crasher, *waiters]:
        t.join(30)
    assert results == {"crash": 502, "w0": 200, "w1": 200, "w2": 200, "w3": 200}


def test_an_environment_killed_while_idle_is_replaced_without_an_error(stack):
    """A worker killed between requests costs the next request a cold start, not an error."""
    gateway, version = stack
    pid = echoed(call(gateway, "x"))["pid"]
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    r = call(gateway, "x")
    assert echoed(r)["pid"] != pid


def test_an_invocation_past_the_function_timeout_is_502_and_the_environment_is_replaced():
    """Timeout 0.5 s, a handler sleeping 5 s: 502 after ~0.5 s, and a fresh environment after."""
    settings = echo_settings(timeout_s=0.5)
    version = FunctionVersion("8", "v2", settings=settings)
    with Gateway(settings, Alias("live", version), API_KEY, None) as gateway:
        pid = echoed(call(gateway, "x"))["pid"]
        started = time.monotonic()
        r = call(gateway, "sleep 5")
        assert (r.status_code, r.json()) == (502, {"message": "Internal server error"})
        assert time.monotonic() - started < 3.0
        assert echoed(call(gateway, "x"))["pid"] != pid
    assert not version.running


def test_the_context_deadline_starts_when_the_invocation_does(stack):
    """An invocation queued behind a slow one still gets the whole timeout when it starts."""
    gateway, _ = stack
    remaining: list[int] = []
    slow = threading.Thread(target=lambda: call(gateway, "sleep 0.5"))
    slow.start()
    time.sleep(0.1)
    remaining.append(echoed(call(gateway, "x"))["context"]["remaining_ms"])
    slow.join()
    assert remaining[0] > 9_000


def test_stopping_the_gateway_lets_requests_in_flight_finish():
    """stop() while an invocation runs: that request is still answered, then everything stops."""
    settings = echo_settings()
    version = FunctionVersion("9", "v2", settings=settings)
    gateway = Gateway(settings, Alias("live", version), API_KEY, None).start()
    statuses: list[int] = []
    client = threading.Thread(target=lambda: statuses.append(call(gateway, "sleep 0.5").status_code))
    client.start()
    time.sleep(0.15)
    gateway.stop()
    client.join(10)
    assert statuses == [200]
    assert not version.running


def test_no_answer_within_the_integration_timeout_is_504():
    """API Gateway waits 29 s (0.5 s here) for the function: past that, 504 {"message": "Endpoint
    request timed out"}, while the function keeps running and serves the next request."""
    settings = dataclasses.replace(echo_settings(), integration_timeout_s=0.5)
    version = FunctionVersion("10", "v2", settings=settings)
    with Gateway(settings, Alias("live", version), API_KEY, None) as gateway:
        pid = echoed(call(gateway, "x"))["pid"]
        r = call(gateway, "sleep 0.7")  # its environment is free again 0.2 s after the 504
        assert (r.status_code, r.json()) == (504, {"message": "Endpoint request timed out"})
        assert echoed(call(gateway, "x"))["pid"] == pid  # the same environment, not restarted


def test_crashes_timeouts_and_malformed_answers_leave_a_trace_under_their_request_id(tmp_path):
    """A 502 API Gateway answers for a crashed, timed-out, raising or malformed function: one
    console line each with the client's x-amzn-RequestId, the version and the cause; the crash
    and the timeout, which the handler cannot log, are in the function's log under Lambda's
    RequestId (as Lambda writes them). No line shows the request's body or the key."""
    settings = echo_settings(timeout_s=0.5)
    log_path = tmp_path / "fn.log"
    version = FunctionVersion("11", "v2", settings=settings, log_path=log_path)
    lines: list[str] = []
    bodies = {
        "crash": ("sleep-crash 0.01 secret-marker", "Runtime.ExitError: RequestId: "),
        "timeout": ("sleep 5 secret-marker", "Sandbox.Timedout: RequestId: "),
        "raise": ("raise", "RuntimeError raised by the handler"),
        "malformed": ("not an object", "malformed Lambda proxy response (not a proxy response object)"),
    }
    with Gateway(settings, Alias("live", version), API_KEY, None, error_log=lines.append) as gateway:
        answers = {name: call(gateway, body) for name, (body, _) in bodies.items()}
    log = log_path.read_text()
    for name, (_, cause) in bodies.items():
        r = answers[name]
        assert r.status_code == 502, name
        request_id = r.headers["x-amzn-RequestId"]
        line = next((x for x in lines if f"502 for request {request_id} " in x), None)
        assert line is not None, (name, lines)
        assert "from function version 11 (v2)" in line and cause in line, line
        assert f"function log {log_path}" in line
        if name in ("crash", "timeout"):
            lambda_id = line.split("Lambda RequestId ", 1)[1].split(":", 1)[0]
            assert f"END RequestId: {lambda_id}" in log and f"REPORT RequestId: {lambda_id}" in log
    assert "Runtime exited with error: exit status 4" in log
    assert "Task timed out after 0.50 seconds" in log and "Status: timeout" in log
    for text in ("\n".join(lines), log):
        assert "secret-marker" not in text and API_KEY not in text
