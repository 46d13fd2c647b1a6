"""The one REST proxy event builder (canary.proxy_event): the shape API Gateway sends, used by the
local gateway, the PreTraffic hook and the probe."""

from __future__ import annotations

import base64
import json

import pytest

from canary.proxy_event import IDENTITY_FIELDS, event_body, rest_proxy_event
from infer.sources import PROBE, RequestSource, source_of_event


def test_event_has_the_proxy_shape_with_the_stage_in_the_context_path():
    """resource, path and method at the top and in requestContext; the stage prefixes the context's
    path; no path parameters or stage variables; the request id where infer.sources reads it."""
    event = rest_proxy_event(
        "POST", "/infer/hate-speech", "/infer/hate-speech/", stage="v1", request_id="probe-r-7-0", body="{}"
    )
    assert (event["resource"], event["path"], event["httpMethod"]) == (
        "/infer/hate-speech",
        "/infer/hate-speech/",
        "POST",
    )
    assert event["pathParameters"] is None and event["stageVariables"] is None
    ctx = event["requestContext"]
    assert ctx["path"] == "/v1/infer/hate-speech/" and ctx["resourcePath"] == "/infer/hate-speech"
    assert (ctx["stage"], ctx["httpMethod"], ctx["requestId"]) == ("v1", "POST", "probe-r-7-0")
    assert source_of_event(event) == RequestSource(PROBE, "r-7-0")
    json.dumps(event)  # what the Invoke API is sent: JSON through and through


def test_repeated_headers_and_parameters_keep_every_value_in_the_lists_and_the_last_in_the_map():
    """headers / queryStringParameters hold the last value of a name, the multiValue forms all of
    them in order; no parameters at all is null, not an empty map."""
    event = rest_proxy_event(
        "GET",
        "/r",
        "/r",
        stage="v1",
        request_id="x",
        headers=[("X-Tag", "a"), ("Accept", "*/*"), ("X-Tag", "b")],
        query=[("q", "1"), ("q", "2")],
    )
    assert event["headers"] == {"X-Tag": "b", "Accept": "*/*"}
    assert event["multiValueHeaders"] == {"X-Tag": ["a", "b"], "Accept": ["*/*"]}
    assert event["queryStringParameters"] == {"q": "2"}
    assert event["multiValueQueryStringParameters"] == {"q": ["1", "2"]}
    bare = rest_proxy_event("GET", "/r", "/r", stage="v1", request_id="x")
    assert bare["queryStringParameters"] is None and bare["multiValueQueryStringParameters"] is None


def test_identity_has_every_field_api_gateway_sends_null_unless_given():
    """The caller's identity fields are set, every other one is null; a name API Gateway does not
    send is refused rather than passed on."""
    event = rest_proxy_event(
        "POST", "/r", "/r", stage="v1", request_id="x", identity={"sourceIp": "10.0.0.1", "apiKey": "k"}
    )
    identity = event["requestContext"]["identity"]
    assert list(identity) == list(IDENTITY_FIELDS)
    assert identity["sourceIp"] == "10.0.0.1" and identity["apiKey"] == "k"
    assert identity["userArn"] is None and identity["apiKeyId"] is None
    with pytest.raises(ValueError, match="sourceIP"):
        rest_proxy_event("POST", "/r", "/r", stage="v1", request_id="x", identity={"sourceIP": "1"})


def test_further_context_fields_are_kept_but_cannot_override_the_request_s_own():
    """Extra requestContext fields (the gateway's API id, request time) are added; the stage, path
    and request id always come from the request itself."""
    event = rest_proxy_event(
        "POST", "/r", "/r", stage="v1", request_id="x", context={"apiId": "abc", "requestId": "other"}
    )
    assert event["requestContext"]["apiId"] == "abc"
    assert event["requestContext"]["requestId"] == "x"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (None, (None, False)),
        (b"", (None, False)),
        ("", (None, False)),
        ('{"text": "é"}', ('{"text": "é"}', False)),
        ("é".encode(), ("é", False)),
        (b"\xff\xfe", (base64.b64encode(b"\xff\xfe").decode(), True)),
    ],
)
def test_bodies_travel_as_text_and_only_bytes_that_are_not_utf8_as_base64(body, expected):
    """Text and UTF-8 bytes are the body as text; other bytes are base64 with isBase64Encoded;
    no body, or an empty one, is null."""
    assert event_body(body) == expected
    event = rest_proxy_event("POST", "/r", "/r", stage="v1", request_id="x", body=body)
    assert (event["body"], event["isBase64Encoded"]) == expected
