"""The deployed API answers as the README says (run with AWS_SAM_STACK_NAME=hate-speech-dev)."""

from __future__ import annotations

import requests

pytestmark = __import__("pytest").mark.e2e
LABELS = {"hate_speech", "offensive_language", "neither"}  # the API contract, written out on purpose


def test_a_valid_text_is_classified_with_the_model_version_in_a_header(stack):
    """POST with the key: 200, the documented body, X-Model-Version v1 or v2."""
    r = requests.post(
        stack["url"], json={"text": "have a lovely day"}, headers={"x-api-key": stack["api_key"]}, timeout=15
    )
    assert r.status_code == 200
    body = r.json()
    assert body["label"] in LABELS and set(body["scores"]) == LABELS
    assert r.headers["X-Model-Version"] in {"v1", "v2"}


def test_a_request_without_the_key_is_forbidden(stack):
    """No x-api-key: API Gateway's 403 Forbidden, the function is never reached."""
    r = requests.post(stack["url"], json={"text": "hello"}, timeout=15)
    assert r.status_code == 403
    assert r.json() == {"message": "Forbidden"}


def test_bad_input_gets_a_4xx_with_an_issue(stack):
    """An empty text is a 422 with the original API's "issue" key, never a 5xx."""
    r = requests.post(stack["url"], json={"text": "  "}, headers={"x-api-key": stack["api_key"]}, timeout=15)
    assert r.status_code == 422
    assert "issue" in r.json()


def test_cors_preflight_needs_no_key(stack):
    """OPTIONS answers 200 with the CORS headers, without a key."""
    r = requests.options(stack["url"], timeout=15)
    assert r.status_code == 200
    assert "x-api-key" in r.headers["Access-Control-Allow-Headers"].lower()


def test_a_batch_is_answered_in_order_as_single_requests_are(stack):
    """POST <url>/batch with 3 texts: 200, one result per text in order, each the single route's."""
    texts = ["have a lovely day", "Congrats to the team on a great season", "see you at the game"]
    headers = {"x-api-key": stack["api_key"]}
    r = requests.post(stack["url"] + "/batch", json={"texts": texts}, headers=headers, timeout=15)
    assert r.status_code == 200
    singles = [requests.post(stack["url"], json={"text": t}, headers=headers, timeout=15) for t in texts]
    assert [res["label"] for res in r.json()["results"]] == [s.json()["label"] for s in singles]


def test_a_bad_text_in_a_batch_is_a_4xx_naming_its_index(stack):
    """A number among the texts: 422 whose issue names texts[1], never a 5xx."""
    headers = {"x-api-key": stack["api_key"]}
    r = requests.post(stack["url"] + "/batch", json={"texts": ["fine", 7]}, headers=headers, timeout=15)
    assert r.status_code == 422
    assert r.json()["issue"].startswith("texts[1]")
