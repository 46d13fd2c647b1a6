"""The API Gateway REST proxy event (Lambda proxy integration, payload format 1.0), built in one
place: the local gateway (emulator.gateway) builds one per HTTP request it routes, the PreTraffic
hook and the probe (canary.hook.direct_event) one per request they send straight to a function
version, and the tests build theirs here too.

It lives in canary/ because the canary functions' packages ship canary/ and infer/ only, and
the emulator may import canary/ (never the other way round).

Shape: as API Gateway sends it to the inference function: headers both as a map (the last value
of each name) and as lists, query parameters likewise (None when there are none), no path
parameters or stage variables (the API has none), and requestContext with the stage, the
request id (what infer.sources reads the request's source from) and the caller's identity.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from typing import Any

# Every identity field API Gateway sends; those a request does not set are null.
IDENTITY_FIELDS = (
    "cognitoIdentityPoolId",
    "accountId",
    "cognitoIdentityId",
    "caller",
    "sourceIp",
    "principalOrgId",
    "accessKey",
    "cognitoAuthenticationType",
    "cognitoAuthenticationProvider",
    "userArn",
    "userAgent",
    "user",
    "apiKey",
    "apiKeyId",
)


def event_body(body: str | bytes | None) -> tuple[str | None, bool]:
    """(the event's body, isBase64Encoded). Text travels as text. Bytes that are not UTF-8 travel
    base64-encoded, as API Gateway sends binary media types. (The template declares none, and API
    Gateway would then pass such bytes as text it cannot decode; base64 keeps them intact so the
    function can say 400.) No body, or an empty one, is null."""
    if not body:
        return None, False
    if isinstance(body, str):
        return body, False
    try:
        return body.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), True


def _single_and_multi(pairs: Iterable[tuple[str, str]]) -> tuple[dict[str, str], dict[str, list[str]]]:
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in pairs:
        single[name] = value
        multi.setdefault(name, []).append(value)
    return single, multi


def rest_proxy_event(
    method: str,
    resource: str,
    path: str,
    *,
    stage: str,
    request_id: str,
    headers: Iterable[tuple[str, str]] = (),
    query: Iterable[tuple[str, str]] = (),
    body: str | bytes | None = None,
    identity: Mapping[str, Any] | None = None,
    context: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The proxy event of one request: `resource` is the route's path template, `path` the path
    asked for (after the stage); `headers` and `query` as (name, value) pairs in the order they
    came; `identity` the identity fields the caller has (the others are null); `context` further
    requestContext fields (the gateway's request time, API id, domain, ...)."""
    single, multi = _single_and_multi(headers)
    qs_single, qs_multi = _single_and_multi(query)
    text, is_b64 = event_body(body)
    unknown = set(identity or {}) - set(IDENTITY_FIELDS)
    if unknown:
        raise ValueError(f"not API Gateway identity fields: {sorted(unknown)}")
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": single,
        "multiValueHeaders": multi,
        "queryStringParameters": qs_single or None,
        "multiValueQueryStringParameters": qs_multi or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            **(context or {}),
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/{stage}{path}",
            "stage": stage,
            "requestId": request_id,
            "identity": {name: (identity or {}).get(name) for name in IDENTITY_FIELDS},
        },
        "body": text,
        "isBase64Encoded": is_b64,
    }
