"""The inference handler's HTTP behaviour, one row of issue 3's list per test, driven by events/."""

from __future__ import annotations

import base64
import json

import pytest

from infer.model import CATEGORIES, LABELS
from infer.request import NOTHING_TO_CLASSIFY
from tests.unit._infer_harness import ROUTE, event, invoke, load_app

# Error answers publish no metrics, and Powertools warns about each of them.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


@pytest.fixture(scope="module")
def app():
    """infer.app serving the committed v2 model with default settings."""
    return load_app({"MODEL_VERSION": "v2"})


def assert_cors(answer) -> None:
    assert answer.headers["access-control-allow-origin"] == "*"
    allowed_headers = {h.strip().lower() for h in answer.headers["access-control-allow-headers"].split(",")}
    assert {"content-type", "x-api-key"} <= allowed_headers
    allowed_methods = {m.strip() for m in answer.headers["access-control-allow-methods"].split(",")}
    assert allowed_methods == {"OPTIONS", "POST"}


def assert_issue(answer, status: int, *words: str) -> None:
    assert answer.status == status
    assert set(answer.body) == {"issue"}
    assert isinstance(answer.body["issue"], str) and answer.body["issue"]
    for word in words:
        assert word.lower() in answer.body["issue"].lower()
    assert answer.headers["content-type"] == "application/json"
    assert_cors(answer)


def assert_prediction(body) -> None:
    assert set(body) == {"category", "label", "scores"}
    assert body["label"] in LABELS
    assert body["category"] == CATEGORIES[body["label"]]
    assert set(body["scores"]) == set(LABELS)
    assert sum(body["scores"].values()) == pytest.approx(1.0)
    assert max(body["scores"], key=body["scores"].get) == body["label"]


def test_valid_post_returns_the_prediction(app):
    """POST {"text": ...} -> 200 {"category", "label", "scores"}, the version only in X-Model-Version."""
    answer = invoke(app, event("infer-post-valid"))
    assert answer.status == 200
    assert_prediction(answer.body)
    assert answer.headers["x-model-version"] == "v2"
    assert "v2" not in json.dumps(answer.body)
    assert answer.headers["content-type"] == "application/json"
    assert_cors(answer)


def test_prediction_is_the_model_s(app):
    """The body is the loaded model's own prediction for the text, unchanged."""
    text = json.loads(event("infer-post-valid")["body"])["text"]
    answer = invoke(app, event("infer-post-valid"))
    assert answer.body == app.SERVICE.model.predict(text).as_dict()


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_every_version_answers_with_the_same_schema(version):
    """v1 and v2 give the same body schema; only the X-Model-Version header tells them apart."""
    module = load_app({"MODEL_VERSION": version})
    try:
        answer = invoke(module, event("infer-post-valid"))
        assert answer.status == 200
        assert_prediction(answer.body)
        assert answer.headers["x-model-version"] == version
    finally:
        load_app({"MODEL_VERSION": "v2"})


def test_base64_encoded_body_is_decoded(app):
    """isBase64Encoded: the body is decoded first and scored like the plain one."""
    plain = invoke(app, event("infer-post-valid"))
    encoded = invoke(app, event("infer-post-base64-valid"))
    assert encoded.status == 200
    assert encoded.body == plain.body


def test_options_preflight_returns_cors_headers(app):
    """OPTIONS -> 200 with Allow-Origin, Allow-Headers (Content-Type, x-api-key), Allow-Methods."""
    answer = invoke(app, event("infer-options-preflight"))
    assert answer.status == 200
    assert answer.body == {}
    assert_cors(answer)


def test_missing_body_is_422(app):
    """No body at all (null) -> 422 saying a JSON body is needed."""
    assert_issue(invoke(app, event("infer-post-missing-body")), 422, "no body", '{"text"')


def test_empty_body_is_422(app):
    """An empty string body counts as missing -> 422."""
    assert_issue(invoke(app, event("infer-post-empty-body")), 422, "no body")


def test_body_that_is_not_json_is_400(app):
    """A form-encoded body -> 400 'not valid JSON'."""
    assert_issue(invoke(app, event("infer-post-not-json")), 400, "not valid JSON")


def test_body_that_is_not_utf8_is_400(app):
    """A base64 body whose bytes are Latin-1, not UTF-8 -> 400 'not UTF-8'."""
    assert_issue(invoke(app, event("infer-post-not-utf8")), 400, "UTF-8")


def test_body_that_is_not_valid_base64_is_400(app):
    """isBase64Encoded with characters outside base64 -> 400, not a crash or a guess."""
    assert_issue(invoke(app, event("infer-post-bad-base64")), 400, "base64")


def test_json_nested_too_deeply_is_400(app):
    """A body of 20,000 nested arrays (RecursionError in the parser) -> 400, not 500."""
    assert_issue(invoke(app, event("infer-post-nested-too-deep")), 400, "nested too deeply")


def test_json_array_body_is_422(app):
    """JSON that is an array, not an object -> 422."""
    assert_issue(invoke(app, event("infer-post-json-array")), 422, "array", "not a JSON object")


def test_json_string_body_is_422(app):
    """JSON that is a bare string, not an object -> 422."""
    assert_issue(invoke(app, event("infer-post-json-string")), 422, "string", "not a JSON object")


def test_text_missing_is_422(app):
    """An object without "text" -> 422 naming the field."""
    assert_issue(invoke(app, event("infer-post-text-missing")), 422, '"text"')


def test_text_not_a_string_is_422(app):
    """A "text" of 42 -> 422 saying it must be a string."""
    assert_issue(invoke(app, event("infer-post-text-not-string")), 422, "number", "string")


def test_text_null_is_422(app):
    """A "text" of null -> 422 saying it must be a string."""
    assert_issue(invoke(app, event("infer-post-text-null")), 422, "null", "string")


def test_empty_text_is_422(app):
    """An empty "text" -> 422 'empty'."""
    assert_issue(invoke(app, event("infer-post-text-empty")), 422, "empty")


def test_whitespace_text_is_422(app):
    """Only spaces, tabs, newlines and a no-break space -> 422."""
    assert_issue(invoke(app, event("infer-post-text-whitespace")), 422, "white space")


@pytest.mark.parametrize(
    "name",
    [
        "infer-post-text-no-words-control",
        "infer-post-text-no-words-zero-width",
        "infer-post-text-no-words-lone-surrogate",
        "infer-post-text-no-words-entities",
    ],
)
def test_text_with_nothing_to_classify_is_422(app, name):
    """NULs and controls, zero-width characters, an escaped lone surrogate, entities for invisible
    characters -> 422 saying there is nothing to classify, never a prediction."""
    answer = invoke(app, event(name))
    assert_issue(answer, 422, "no letters, digits, punctuation or emoji")
    assert answer.body["issue"] == NOTHING_TO_CLASSIFY


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_every_version_refuses_the_same_texts(version):
    """The rule is the request's, not a model's: v1 refuses the zero-width text as v2 does."""
    module = load_app({"MODEL_VERSION": version})
    try:
        answer = invoke(module, event("infer-post-text-no-words-zero-width"))
        assert answer.status == 422
        assert answer.headers["x-model-version"] == version
    finally:
        load_app({"MODEL_VERSION": "v2"})


@pytest.mark.parametrize("name", ["infer-post-text-emoji-only", "infer-post-text-punctuation-only"])
def test_emoji_only_and_punctuation_only_texts_are_scored(app, name):
    """Real tweets can be only emoji (sent as an escaped surrogate pair) or only "?!": they are scored."""
    answer = invoke(app, event(name))
    assert answer.status == 200
    assert_prediction(answer.body)
    text = json.loads(event(name)["body"])["text"]
    assert answer.body == app.SERVICE.model.predict(text).as_dict()


def test_text_over_the_limit_is_413(app):
    """5,001 characters with the default MAX_TEXT_CHARS of 5,000 -> 413 quoting both numbers."""
    assert_issue(invoke(app, event("infer-post-text-too-long")), 413, "5001", "5000")


def test_text_at_the_limit_is_scored(app):
    """Exactly MAX_TEXT_CHARS characters is still accepted."""
    answer = invoke(app, event("infer-post-text-at-limit"))
    assert answer.status == 200
    assert_prediction(answer.body)


def test_max_text_chars_is_configurable():
    """MAX_TEXT_CHARS=40 makes a 50-character text a 413 and a 40-character one a 200."""
    module = load_app({"MODEL_VERSION": "v2", "MAX_TEXT_CHARS": "40"})
    try:
        assert_issue(invoke(module, event("infer-post-valid")), 413, "limit is 40")
        ok = invoke(module, event("infer-post-valid", body=json.dumps({"text": "x" * 40})))
        assert ok.status == 200
    finally:
        load_app({"MODEL_VERSION": "v2"})


def test_get_on_the_route_is_405(app):
    """GET /infer/hate-speech -> 405 JSON with an Allow header, not a 5xx."""
    answer = invoke(app, event("infer-get-route"))
    assert_issue(answer, 405, "POST")
    assert answer.headers["allow"] == "OPTIONS, POST"


def test_unknown_route_is_404(app):
    """POST /infer/other -> 404 JSON naming the route the API serves."""
    assert_issue(invoke(app, event("infer-post-unknown-route")), 404, ROUTE)


def test_route_with_trailing_slash_is_served(app):
    """/infer/hate-speech/ is the same route (API Gateway may pass the slash through)."""
    answer = invoke(app, event("infer-post-valid", path=ROUTE + "/"))
    assert answer.status == 200


def test_unexpected_failure_is_a_bare_500(app, monkeypatch):
    """A bug in scoring -> 500 {"issue": "Internal server error"}: no stack, no message in the body."""

    def broken(text):
        raise RuntimeError("scorer exploded at /work/main/infer/model.py line 1")

    monkeypatch.setattr(app.SERVICE.model, "predict", broken)
    answer = invoke(app, event("infer-post-valid"))
    assert answer.status == 500
    assert answer.body == {"issue": "Internal server error"}
    assert "exploded" not in answer.raw["body"] and "Traceback" not in answer.raw["body"]
    assert_cors(answer)


def test_base64_body_of_a_json_array_is_422(app):
    """Decoding happens before validation: base64 of '[1]' is a JSON array -> 422."""
    ev = event("infer-post-base64-valid", body=base64.b64encode(b"[1]").decode())
    assert_issue(invoke(app, ev), 422, "array")


def test_model_is_loaded_at_init_not_per_request(app, monkeypatch):
    """Requests reuse the model loaded at import: with loading made impossible, they still succeed."""

    def no_loading(path):
        raise AssertionError("the model was loaded during a request")

    monkeypatch.setattr("infer.service.load_model", no_loading)
    for _ in range(3):
        assert invoke(app, event("infer-post-valid")).status == 200
