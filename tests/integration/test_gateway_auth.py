"""The API key and CORS over real HTTP, as template.yaml configures them (ApiKeyRequired, Cors,
AddApiKeyRequiredToCorsPreflight: false, GatewayResponses with Access-Control-Allow-Origin)."""

from __future__ import annotations

import http.client
import json

import pytest
import requests

from emulator.functions import Alias, FunctionVersion
from emulator.gateway import Gateway, api_key_id, check_api_key, generate_api_key
from stack import load_settings

pytestmark = pytest.mark.integration

API_KEY = "auth-test-key-0123456789abcdef"
BODY = json.dumps({"text": "see you at the game tonight"})


@pytest.fixture(scope="module")
def settings():
    return load_settings().lifted(quota=True, throttle=True)


@pytest.fixture(scope="module")
def gateway(settings):
    gw = Gateway(
        settings, Alias("live", FunctionVersion("1", "v1", settings=settings)), API_KEY, None
    ).start()
    yield gw
    gw.stop()


def test_no_key_is_403_forbidden(gateway):
    """POST without x-api-key -> 403 {"message": "Forbidden"}, readable by a browser (CORS)."""
    r = requests.post(gateway.route_url(), data=BODY, timeout=15)
    assert r.status_code == 403
    assert r.json() == {"message": "Forbidden"}
    assert r.headers["x-amzn-ErrorType"] == "ForbiddenException"
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert r.headers["Content-Type"] == "application/json"


def test_wrong_key_is_403_forbidden(gateway):
    """A key that is not the API's -> 403 Forbidden."""
    r = requests.post(gateway.route_url(), data=BODY, headers={"x-api-key": API_KEY[:-1] + "X"}, timeout=15)
    assert (r.status_code, r.json()) == (403, {"message": "Forbidden"})


def test_empty_key_is_403_forbidden(gateway):
    """An empty x-api-key header -> 403 Forbidden."""
    r = requests.post(gateway.route_url(), data=BODY, headers={"x-api-key": ""}, timeout=15)
    assert r.status_code == 403


def test_key_header_name_is_case_insensitive(gateway):
    """X-API-KEY, X-Api-Key and x-api-key all carry the key (header names ignore case)."""
    for name in ("X-API-KEY", "X-Api-Key", "x-api-key"):
        r = requests.post(gateway.route_url(), data=BODY, headers={name: API_KEY}, timeout=15)
        assert r.status_code == 200, name


def test_key_value_is_case_sensitive(gateway):
    """The key's value must match exactly: upper-cased -> 403."""
    r = requests.post(gateway.route_url(), data=BODY, headers={"x-api-key": API_KEY.upper()}, timeout=15)
    assert r.status_code == 403


def test_two_key_headers_are_403_forbidden(gateway):
    """Two x-api-key headers (one right, one wrong) are refused rather than guessed between."""
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    try:
        conn.putrequest("POST", "/v1/infer/hate-speech")
        conn.putheader("x-api-key", API_KEY)
        conn.putheader("x-api-key", "wrong-key-0123456789abcdef")
        conn.putheader("Content-Length", str(len(BODY)))
        conn.endheaders(BODY.encode())
        assert conn.getresponse().status == 403
    finally:
        conn.close()


def test_unknown_path_without_key_is_403_missing_authentication_token(gateway):
    """The route is checked before the key: an unknown path says Missing Authentication Token."""
    r = requests.post(gateway.url + "/nothing-here", data=BODY, timeout=15)
    assert r.json() == {"message": "Missing Authentication Token"}


def test_options_preflight_without_key_is_200_with_cors_headers(gateway):
    """The browser's preflight carries no key: 200 with the template's Cors headers."""
    r = requests.options(
        gateway.route_url(),
        headers={
            "Origin": "https://example.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-api-key",
        },
        timeout=15,
    )
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert r.headers["Access-Control-Allow-Methods"] == "OPTIONS,POST"
    allowed = {h.strip().lower() for h in r.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"content-type", "x-api-key"} <= allowed
    assert r.headers["Access-Control-Max-Age"] == "600"


def test_options_preflight_with_a_wrong_key_is_still_200(gateway):
    """The preflight needs no key, so a wrong one does not matter either."""
    r = requests.options(gateway.route_url(), headers={"x-api-key": "nope-nope-nope-nope-nope"}, timeout=15)
    assert r.status_code == 200


def test_options_on_an_unknown_path_is_403(gateway):
    """CORS is configured on the route only: OPTIONS elsewhere -> Missing Authentication Token."""
    r = requests.options(gateway.url + "/elsewhere", timeout=15)
    assert r.status_code == 403


def test_successful_answers_carry_cors_headers(gateway):
    """A 200 from the function is readable cross-origin (the function adds the headers)."""
    r = requests.post(gateway.route_url(), data=BODY, headers={"x-api-key": API_KEY}, timeout=15)
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == "*"


def test_short_or_spaced_keys_are_refused_at_start():
    """API Gateway takes key values of 20 to 128 printable characters; so does the local one."""
    for bad in ("short", "a" * 19, "has a space in it 0123", "a" * 129):
        with pytest.raises(ValueError):
            check_api_key(bad)
    assert check_api_key(generate_api_key())


def test_key_id_does_not_reveal_the_key():
    """identity.apiKeyId is stable per key and does not contain it."""
    key = generate_api_key()
    assert api_key_id(key) == api_key_id(key)
    assert api_key_id(key) not in key and len(api_key_id(key)) == 10


def test_the_gateway_listens_on_loopback_only(settings):
    """Any other address is refused before anything is started."""
    with pytest.raises(ValueError, match="loopback"):
        Gateway(
            settings,
            Alias("live", FunctionVersion("1", "v1", settings=settings)),
            API_KEY,
            None,
            host="0.0.0.0",
        )
