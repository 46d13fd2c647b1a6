"""Property: whatever API Gateway passes on, the handler answers with JSON and never with a 5xx."""

from __future__ import annotations

import base64
import io
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infer.model import LABELS, load_model
from infer.predict import run
from infer.request import NOTHING_TO_CLASSIFY
from infer.text import classifiable
from tests.unit._infer_harness import ROUTE, event, invoke, load_app

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

# The autouse network guard of tests/unit/conftest.py is function-scoped; it holds for every example.
SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=4)
# Lone surrogates too: a JSON event can carry "\ud800" escapes that decode to them.
surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
text_fields = st.one_of(
    st.text(max_size=200),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=6000),
    st.text(alphabet=st.characters() | surrogates, max_size=30),
    json_values,
)
bodies_of_json = st.one_of(
    json_values.map(json.dumps),
    st.builds(lambda obj, text: json.dumps({**obj, "text": text}), json_objects, text_fields),
)
raw_bodies = st.one_of(st.none(), st.text(max_size=300), bodies_of_json)
methods = st.one_of(
    st.sampled_from(["POST", "OPTIONS", "GET", "PUT", "DELETE", "HEAD", "post"]), st.text(max_size=10)
)
paths = st.one_of(
    st.sampled_from(
        [ROUTE, ROUTE + "/", ROUTE + "//", "/", "", "/infer", "/infer/hate-speech/x", "/INFER/HATE-SPEECH"]
    ),
    st.text(max_size=60),
    st.text(max_size=40).map(lambda s: "/" + s),
)
header_maps = st.one_of(st.none(), st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=6))


@st.composite
def proxy_events(draw):
    """A REST proxy event with any method, path, headers and body (plain or base64)."""
    ev = event("infer-post-valid")
    if draw(st.booleans()):  # half of the events go to the route itself, where the body matters
        ev["httpMethod"] = draw(st.sampled_from(["POST", "post"]))
        ev["path"] = draw(st.sampled_from([ROUTE, ROUTE + "/"]))
    else:
        ev["httpMethod"] = draw(methods)
        ev["path"] = draw(paths)
    headers = draw(header_maps)
    ev["headers"] = headers
    ev["multiValueHeaders"] = None if headers is None else {k: [v] for k, v in headers.items()}
    body = draw(raw_bodies)
    if body is not None and draw(st.booleans()):
        raw = draw(st.one_of(st.just(body.encode("utf-8", "surrogatepass")), st.binary(max_size=200)))
        body = base64.b64encode(raw).decode("ascii") if draw(st.booleans()) else draw(st.text(max_size=50))
        ev["isBase64Encoded"] = True
    else:
        ev["isBase64Encoded"] = draw(st.sampled_from([False, None]))
    ev["body"] = body
    return ev


@pytest.fixture(scope="module")
def app():
    """infer.app with the committed v2 model loaded."""
    return load_app({"MODEL_VERSION": "v2"})


@SETTINGS
@given(ev=proxy_events())
def test_any_event_gets_a_json_answer_below_500(app, ev):
    """Arbitrary bodies, headers, methods and paths: status < 500, a JSON body, the CORS headers,
    and either a prediction or an "issue"."""
    answer = invoke(app, ev)
    assert 200 <= answer.status < 500
    assert isinstance(answer.body, dict)
    assert answer.headers["access-control-allow-origin"] == "*"
    assert answer.headers["x-model-version"] == "v2"
    if answer.status == 200 and ev["httpMethod"].upper() == "POST":
        assert set(answer.body) == {"category", "label", "scores"}
        assert answer.body["label"] in LABELS
    elif answer.status != 200:
        assert set(answer.body) == {"issue"} and answer.body["issue"]


@SETTINGS
@given(obj=json_objects, text=text_fields)
def test_any_json_object_on_the_route_is_scored_or_refused_with_4xx(app, obj, text):
    """POST to the route with any JSON object: 200 exactly when "text" is a non-blank string of at
    most MAX_TEXT_CHARS characters with something to classify, else a 4xx."""
    ev = event("infer-post-valid", body=json.dumps({**obj, "text": text}))
    answer = invoke(app, ev)
    if isinstance(text, str) and text.strip() != "" and len(text) <= 5000 and classifiable(text):
        assert answer.status == 200
        assert answer.body["label"] in LABELS
    else:
        assert answer.status in (413, 422)
        assert set(answer.body) == {"issue"}


# Characters with nothing to read (white space, control, format, lone surrogates, combining marks,
# U+FFFD, noncharacters), some written as HTML entities as tweets carry them.
invisible_chars = st.characters(categories=["Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Mn", "Mc", "Me"]) | (
    st.sampled_from(["\ufffd", "\ufdd0", "\uffff", "\U0010fffe"])
)
invisible_entities = st.characters(categories=["Zs", "Cf"], min_codepoint=0xA0).map(lambda c: f"&#{ord(c)};")
# A high surrogate right before a low one is no lone surrogate: JSON's "\ud800\udc00" decodes to one
# supplementary character (U+10000, a letter), which is readable. Hypothesis found this pair.
_SURROGATE_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")
invisible_texts = (
    st.lists(invisible_chars | invisible_entities, min_size=1, max_size=40)
    .map("".join)
    .filter(lambda t: not _SURROGATE_PAIR.search(t))
)
readable_chars = st.characters(categories=["L", "N", "P", "S"]).filter(lambda c: c != "\ufffd")


@SETTINGS
@given(text=invisible_texts)
def test_no_text_without_words_gets_a_label(app, text):
    """Property: a text of invisible characters only (raw, JSON-escaped or as entities) never gets a 200
    with a label: 422, with the white-space issue when Python calls it blank, else the no-words one."""
    for body in (json.dumps({"text": text}), json.dumps({"text": text}, ensure_ascii=False)):
        try:
            body.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate can only travel JSON-escaped
            continue
        answer = invoke(app, event("infer-post-valid", body=body))
        assert answer.status == 422
        assert "label" not in answer.body
        if text.strip():
            assert answer.body["issue"] == NOTHING_TO_CLASSIFY


@SETTINGS
@given(before=invisible_texts, readable=readable_chars, after=st.text(max_size=20))
def test_one_readable_character_among_invisible_ones_is_scored(app, before, readable, after):
    """Property: a letter, digit, punctuation mark or symbol anywhere among invisible characters gets a
    200 with the model's own prediction: the rule refuses only texts with nothing to read."""
    text = before + readable + after
    answer = invoke(app, event("infer-post-valid", body=json.dumps({"text": text})))
    assert answer.status == 200
    assert answer.body == app.SERVICE.model.predict(text).as_dict()


@pytest.fixture(scope="module")
def v2_model(models_dir):
    """The committed v2 model, loaded as the batch CLI loads it."""
    return load_model(models_dir / "v2")


@SETTINGS
@given(text=st.one_of(invisible_texts, st.text(max_size=60), st.text(alphabet=st.characters() | surrogates)))
def test_batch_cli_and_lambda_agree_on_every_text(app, v2_model, text):
    """Property: python -m infer.predict writes, for any text, the Lambda's body: the same prediction
    or the same issue (both read texts through infer.request.read_text)."""
    line = json.dumps({"text": text})
    out = io.StringIO()
    run(v2_model, io.StringIO(line + "\n"), out)
    row = json.loads(out.getvalue())
    answer = invoke(app, event("infer-post-valid", body=line))
    if answer.status == 200:
        assert row == answer.body
    else:
        assert row == {"line": 1, "issue": answer.body["issue"]}


def test_a_json_escaped_surrogate_pair_is_one_readable_character(app):
    """`"\\ud800\\udc00"` in the JSON is U+10000 (a letter) once decoded, not two lone surrogates:
    scored (200), while a lone `"\\ud800"` is refused (422)."""
    pair = invoke(app, event("infer-post-valid", body='{"text": "\\ud800\\udc00"}'))
    lone = invoke(app, event("infer-post-valid", body='{"text": "\\ud800"}'))
    assert (pair.status, lone.status) == (200, 422)
    assert pair.body["label"] in LABELS
