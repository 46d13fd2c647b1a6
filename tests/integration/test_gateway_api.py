"""The API contract over real HTTP: the local gateway in front of the real handler (model v2).

The request bodies of the bad-input scenarios are those of the event files in events/ (the
ones the handler's unit tests use), sent as HTTP bodies, so the gateway's proxy event and the
handler's answer are checked together. The usage plan is opened wide here (see
test_gateway_limits.py for throttle and quota).
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import time
from pathlib import Path

import pytest
import requests

from infer.model import LABELS as MODEL_LABELS
from tests.integration.conftest import unthrottled_gateway

pytestmark = pytest.mark.integration

EVENTS = Path(__file__).resolve().parents[2] / "events"
API_KEY = "integration-key-0123456789abcdef"
LABELS = set(MODEL_LABELS)


def event_body(name: str) -> bytes | None:
    """The HTTP body that produces events/<name>.json's body at the function."""
    event = json.loads((EVENTS / f"{name}.json").read_text(encoding="utf-8"))
    body = event.get("body")
    if body is None:
        return None
    return base64.b64decode(body) if event.get("isBase64Encoded") else body.encode("utf-8")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    gateway, store = unthrottled_gateway(API_KEY, tmp_path_factory.mktemp("records"))
    yield gateway, store
    gateway.stop()


@pytest.fixture(scope="module")
def url(stack):
    return stack[0].route_url()


@pytest.fixture(scope="module")
def session():
    with requests.Session() as s:
        s.headers["x-api-key"] = API_KEY
        yield s


def post(session, url, body, **kwargs):
    return session.post(url, data=body, timeout=15, **kwargs)


def test_valid_text_is_classified_with_the_model_version_in_a_header(session, url):
    """POST a text -> 200 {category, label, scores}; the version shows only in X-Model-Version."""
    r = post(session, url, event_body("infer-post-valid"), headers={"Content-Type": "application/json"})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"category", "label", "scores"}
    assert body["label"] in LABELS and set(body["scores"]) == LABELS
    assert abs(sum(body["scores"].values()) - 1.0) < 1e-6
    assert r.headers["X-Model-Version"] == "v2"
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert len(r.headers["x-amzn-RequestId"]) == 36


def test_each_request_gets_its_own_request_id(session, url):
    """x-amzn-RequestId differs from one request to the next."""
    ids = {post(session, url, event_body("infer-post-valid")).headers["x-amzn-RequestId"] for _ in range(5)}
    assert len(ids) == 5


def test_missing_body_is_422(session, url):
    """No body at all -> 422 with an issue saying so."""
    r = post(session, url, None)
    assert r.status_code == 422
    assert "no body" in r.json()["issue"]


def test_empty_body_is_422(session, url):
    """An empty body (Content-Length: 0) -> 422."""
    r = post(session, url, event_body("infer-post-empty-body"))
    assert r.status_code == 422


def test_body_that_is_not_json_is_400(session, url):
    """A form-encoded body -> 400 "not valid JSON"."""
    r = post(session, url, event_body("infer-post-not-json"))
    assert r.status_code == 400
    assert "not valid JSON" in r.json()["issue"]


def test_body_that_is_not_utf8_travels_base64_and_is_400(session, url):
    """Bytes that are not UTF-8 reach the function base64-encoded; it decodes them and answers 400."""
    body = event_body("infer-post-not-utf8")
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")
    r = post(session, url, body)
    assert r.status_code == 400
    assert "not UTF-8" in r.json()["issue"]


def test_json_array_is_422(session, url):
    """A JSON array is not an object -> 422."""
    r = post(session, url, event_body("infer-post-json-array"))
    assert r.status_code == 422
    assert "an array" in r.json()["issue"]


def test_json_string_is_422(session, url):
    """A JSON string is not an object -> 422."""
    assert post(session, url, event_body("infer-post-json-string")).status_code == 422


def test_text_missing_is_422(session, url):
    """An object without "text" -> 422."""
    r = post(session, url, event_body("infer-post-text-missing"))
    assert r.status_code == 422
    assert '"text"' in r.json()["issue"]


def test_text_not_a_string_is_422(session, url):
    """A number as "text" -> 422."""
    assert post(session, url, event_body("infer-post-text-not-string")).status_code == 422


def test_text_null_is_422(session, url):
    """A null "text" -> 422."""
    assert post(session, url, event_body("infer-post-text-null")).status_code == 422


def test_text_empty_is_422(session, url):
    """An empty "text" -> 422."""
    assert post(session, url, event_body("infer-post-text-empty")).status_code == 422


def test_text_only_whitespace_is_422(session, url):
    """A "text" of spaces, tabs, newlines and a no-break space -> 422."""
    assert post(session, url, event_body("infer-post-text-whitespace")).status_code == 422


def test_text_at_the_limit_is_classified(session, url):
    """A text of exactly MaxTextChars (5,000) characters -> 200."""
    assert post(session, url, event_body("infer-post-text-at-limit")).status_code == 200


def test_text_over_the_limit_is_413_from_the_function(session, url):
    """5,001 characters -> the function's 413 {"issue"}, not a gateway error."""
    r = post(session, url, event_body("infer-post-text-too-long"))
    assert r.status_code == 413
    assert "limit is 5000" in r.json()["issue"]


def test_json_nested_too_deep_is_400(session, url):
    """A body nested 20,000 levels deep -> 400, never a 5xx."""
    assert post(session, url, event_body("infer-post-nested-too-deep")).status_code == 400


def test_base64_event_body_sent_as_bytes_is_classified(session, url):
    """The base64 event's decoded bytes are UTF-8 JSON: they travel as text and are classified."""
    assert post(session, url, event_body("infer-post-base64-valid")).status_code == 200


def test_utf8_text_with_emoji_and_accents_is_classified(session, url):
    """Non-ASCII UTF-8 (accents, emoji, CJK) -> 200."""
    body = json.dumps({"text": "café déjà vu 😀 你好"}, ensure_ascii=False).encode("utf-8")
    assert post(session, url, body).status_code == 200


def test_wrong_content_type_is_still_classified(session, url):
    """API Gateway passes the body through whatever its Content-Type says; so does the gateway."""
    r = post(session, url, event_body("infer-post-valid"), headers={"Content-Type": "text/plain"})
    assert r.status_code == 200


def test_chunked_body_is_classified(session, url):
    """Transfer-Encoding: chunked (a generator body) is read like a sized one."""
    chunks = (part for part in (b'{"text": "have a ', b"nice day", b'"}'))
    assert post(session, url, chunks).status_code == 200


def test_query_string_is_accepted(session, url):
    """A query string does not change the answer."""
    assert post(session, url + "?debug=1&x=2", event_body("infer-post-valid")).status_code == 200


def test_trailing_slash_reaches_the_route(session, url):
    """POST /v1/infer/hate-speech/ is routed to /infer/hate-speech, as API Gateway does."""
    assert post(session, url + "/", event_body("infer-post-valid")).status_code == 200


def test_unknown_path_is_403_missing_authentication_token(session, stack):
    """POST /v1/infer/other -> 403 {"message": "Missing Authentication Token"} even with the key."""
    gateway, _ = stack
    r = post(session, gateway.url + "/infer/other", event_body("infer-post-unknown-route"))
    assert r.status_code == 403
    assert r.json() == {"message": "Missing Authentication Token"}
    assert r.headers["x-amzn-ErrorType"] == "IncompleteSignatureException"
    assert r.headers["Access-Control-Allow-Origin"] == "*"  # GatewayResponses DEFAULT_4XX


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_other_methods_on_the_route_are_403_missing_authentication_token(session, url, method):
    """Only POST (and the CORS OPTIONS) exist on the route: any other method -> 403."""
    r = session.request(method, url, data=event_body("infer-post-valid"), timeout=15)
    assert r.status_code == 403
    assert r.json() == {"message": "Missing Authentication Token"}


def test_head_on_the_route_is_403_without_a_body(session, url):
    """HEAD -> 403 with the headers of the error and no body."""
    r = session.head(url, timeout=15)
    assert r.status_code == 403
    assert r.content == b""
    assert int(r.headers["Content-Length"]) > 0


def test_path_outside_the_stage_is_403_forbidden(session, stack):
    """/v2/... or / is no stage of this API -> 403 {"message": "Forbidden"}."""
    gateway, _ = stack
    for path in ("/v2/infer/hate-speech", "/infer/hate-speech", "/"):
        r = post(session, gateway.base_url + path, event_body("infer-post-valid"))
        assert (r.status_code, r.json()) == (403, {"message": "Forbidden"}), path


def test_payload_over_10mb_is_413_before_the_function(session, url, stack):
    """11 MB -> 413 from the gateway without invoking the function (no record)."""
    _, store = stack
    stack[0].flush()
    before = len(store)
    r = post(session, url, b"x" * (11 * 1024 * 1024))
    assert r.status_code == 413
    assert "10485760" in r.text
    stack[0].flush()
    assert len(store) == before


def test_payload_over_lambdas_6mb_invoke_limit_is_413_request_too_long(session, url):
    """7 MB passes API Gateway's 10 MB but not Lambda's 6 MB invoke limit -> 413 Request Too Long."""
    r = post(session, url, json.dumps({"text": "a" * (7 * 1024 * 1024)}).encode())
    assert r.status_code == 413
    assert r.json() == {"message": "Request Too Long"}


def test_headers_over_10kb_are_413_request_too_long(session, url):
    """Request line + headers over 10,240 bytes -> 413 {"message": "Request Too Long"}."""
    r = post(session, url, event_body("infer-post-valid"), headers={"X-Padding": "p" * 11_000})
    assert r.status_code == 413
    assert r.json() == {"message": "Request Too Long"}


def test_a_header_line_over_64kb_is_refused_cleanly(url):
    """A single 70 KB header line -> 413 and the connection closed, no traceback, no hang."""
    host, port = url.split("/")[2].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/infer/hate-speech HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 70_000 + b"\r\n\r\n"
        )
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413")


def test_malformed_request_line_is_400(url):
    """Garbage instead of a request line -> 400 {"message": "Bad Request"}."""
    host, port = url.split("/")[2].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"HELLO\r\n\r\n")
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400")
    assert b'{"message":"Bad Request"}' in answer


def test_keep_alive_connection_serves_many_requests(url):
    """One HTTP/1.1 connection carries many requests and answers."""
    host, port = url.split("/")[2].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        for _ in range(20):
            conn.request(
                "POST",
                "/v1/infer/hate-speech",
                body=event_body("infer-post-valid"),
                headers={"x-api-key": API_KEY},
            )
            response = conn.getresponse()
            assert response.status == 200
            response.read()
            assert response.getheader("Connection") == "keep-alive"
    finally:
        conn.close()


def test_every_proxied_request_leaves_one_record(session, url, stack):
    """Answers from the function leave a RequestRecord each (status, label, version); gateway
    refusals leave none."""
    gateway, store = stack
    gateway.flush()
    since = time.time()
    ok = post(session, url, event_body("infer-post-valid"))
    bad = post(session, url, event_body("infer-post-text-empty"))
    requests.post(url, data=event_body("infer-post-valid"), timeout=15)  # no key: no record
    assert gateway.flush()
    records = store.window(since, time.time() + 1)
    assert [(r.status, r.function_version, r.model_version) for r in records] == [
        (200, "1", "v2"),
        (422, "1", "v2"),
    ]
    assert records[0].label == ok.json()["label"]
    assert records[1].label is None and bad.status_code == 422
    assert all(0 < r.latency_ms < 1000 for r in records)
