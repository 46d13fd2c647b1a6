"""openapi.yaml describes the API as it is: valid OpenAPI 3.0, the template's routes and no others,
and every answer the real handler gives to the sample events in events/ documented with its body.

The gateway's own answers (403, 429, 502, 504) cannot come from the handler; their routes,
security and CORS headers are checked against SAM's transform of template.yaml instead.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Any

import pytest
import yaml
from jsonschema.exceptions import ValidationError
from openapi_schema_validator import OAS30Validator
from openapi_schema_validator import validate as validate_instance
from openapi_spec_validator import OpenAPIV30SpecValidator
from openapi_spec_validator import validate as validate_spec
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from infer.model import CATEGORIES, LABELS
from infer.request import MAX_BATCH_TEXTS
from infer.service import ModelService
from tests.template.cfn import load_template, resources_of_type, transform
from tests.unit._infer_harness import ROOT, event, event_names, invoke, load_app
from tests.unit.test_readme import README_TEXT, examples, newest_model_version

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

OPENAPI = ROOT / "openapi.yaml"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# The function's answers (status -> body schema name) the sample events must all produce between them.
FUNCTION_STATUSES = {200, 400, 413, 422}
ROUTE, BATCH_ROUTE = "/infer/hate-speech", "/infer/hate-speech/batch"


@cache
def _document_text() -> str:
    return OPENAPI.read_text(encoding="utf-8")


def document() -> dict[str, Any]:
    """openapi.yaml, parsed afresh (tests may edit their copy)."""
    return yaml.safe_load(_document_text())


def operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(path, METHOD) -> operation object, for every operation of the document."""
    return {
        (path, method.upper()): op
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in HTTP_METHODS
    }


def check(instance: Any, schema: dict[str, Any], doc: dict[str, Any]) -> None:
    """Validate `instance` against an OpenAPI 3.0 schema of `doc` (its #/components refs resolved
    against the document); raises jsonschema's ValidationError."""
    rooted = {"allOf": [schema], "components": doc["components"]}
    validate_instance(instance, rooted, cls=OAS30Validator)


def resolved(node: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    """A header, response or schema object with its local $ref followed."""
    while "$ref" in node:
        target: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


@pytest.fixture(scope="module")
def doc():
    return document()


@pytest.fixture(scope="module")
def sam_api_body():
    """The OpenAPI body SAM generates for the template's API (its transform, offline)."""
    apis = resources_of_type(transform(), "AWS::ApiGateway::RestApi")
    assert list(apis) == ["HateSpeechApi"], "the template should declare exactly one REST API"
    return apis["HateSpeechApi"]["Properties"]["Body"]


@pytest.fixture(scope="module")
def template():
    return load_template()


@pytest.fixture(scope="module")
def app():
    """infer.app serving the newest model, the one README's examples (and the document's) describe."""
    return load_app({"MODEL_VERSION": newest_model_version()})


# ---------------------------------------------------------------- (a) a valid document


def test_document_is_valid_openapi_30(doc):
    """openapi.yaml passes openapi-spec-validator as an OpenAPI 3.0 document."""
    assert str(doc["openapi"]).startswith("3.0.")
    validate_spec(doc, cls=OpenAPIV30SpecValidator)


def test_validator_refuses_a_broken_document(doc):
    """The check above can fail: a response without its required description is refused."""
    broken = copy.deepcopy(doc)
    del broken["paths"]["/infer/hate-speech"]["post"]["responses"]["200"]["description"]
    with pytest.raises(OpenAPIValidationError):
        validate_spec(broken, cls=OpenAPIV30SpecValidator)


def test_every_example_matches_its_schema(doc):
    """Each request and response example in the document validates against the schema beside it."""
    checked = 0
    for (path, method), op in operations(doc).items():
        media = [("request", op.get("requestBody", {}).get("content", {}))]
        media += [(status, resolved(r, doc).get("content", {})) for status, r in op["responses"].items()]
        for where, content in media:
            for media_type, body in content.items():
                for name, example in body.get("examples", {}).items():
                    try:
                        check(example["value"], body["schema"], doc)
                    except ValidationError as exc:
                        pytest.fail(f"{method} {path} {where} {media_type} example {name!r}: {exc.message}")
                    checked += 1
    assert checked >= 10, "the document lost its examples"


def test_examples_are_readme_s(doc):
    """The 200 example is README's curl example: the same request text and the same answer."""
    op = operations(doc)[("/infer/hate-speech", "POST")]
    request = op["requestBody"]["content"]["application/json"]["examples"]["neither"]["value"]
    answer = op["responses"]["200"]["content"]["application/json"]["examples"]["neither"]["value"]
    documented = {
        json.loads(ex.body)["text"]: (ex.status, json.loads(ex.answer))
        for ex in examples(README_TEXT)
        if ex.path == ROUTE
    }
    assert request["text"] in documented, "the document's example request is not one of README's"
    assert documented[request["text"]] == (200, answer)


def test_batch_examples_are_readme_s(doc):
    """The batch operation's examples are README's batch curl example: the same texts, the same
    results at the digits shown."""
    op = operations(doc)[(BATCH_ROUTE, "POST")]
    request = op["requestBody"]["content"]["application/json"]["examples"]["two"]["value"]
    answer = op["responses"]["200"]["content"]["application/json"]["examples"]["two"]["value"]
    batches = [ex for ex in examples(README_TEXT) if ex.path == BATCH_ROUTE and ex.status == 200]
    assert [(json.loads(ex.body), json.loads(ex.answer)) for ex in batches] == [(request, answer)]


# ---------------------------------------------------------------- (b) the template's routes


def test_operations_are_the_template_s(doc, sam_api_body):
    """The document's operations are exactly the routes and methods of the API SAM deploys."""
    deployed = {
        (path, method.upper())
        for path, item in sam_api_body["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }
    assert set(operations(doc)) == deployed


def test_operations_are_the_function_events_and_cors(doc, template):
    """The template's own declaration: each Api event of InferenceFunction is a documented
    operation, plus OPTIONS on its path because the API has Cors, and nothing else."""
    declared = set()
    for spec in template["Resources"]["InferenceFunction"]["Properties"]["Events"].values():
        if spec["Type"] == "Api":
            declared.add((spec["Properties"]["Path"], spec["Properties"]["Method"].upper()))
    if "Cors" in template["Resources"]["HateSpeechApi"]["Properties"]:
        declared |= {(path, "OPTIONS") for path, _ in declared}
    assert set(operations(doc)) == declared


def test_key_is_required_exactly_where_the_template_requires_it(doc, sam_api_body):
    """POST needs the x-api-key header and OPTIONS (the CORS preflight) does not, as deployed."""
    scheme = doc["components"]["securitySchemes"]["api_key"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "x-api-key")
    deployed = sam_api_body["components"]["securitySchemes"]["api_key"]
    assert (deployed["in"], deployed["name"]) == (scheme["in"], scheme["name"])
    for (path, method), op in operations(doc).items():
        needs_key = bool(op.get("security", doc.get("security")))
        deployed_op = sam_api_body["paths"][path][method.lower()]
        assert needs_key == bool(deployed_op.get("security")), f"{method} {path}"


def test_cors_headers_are_the_template_s(doc, template):
    """The documented CORS header values are the template's Cors settings (quotes stripped)."""
    cors = template["Resources"]["HateSpeechApi"]["Properties"]["Cors"]
    headers = doc["components"]["headers"]
    for name in ("AllowOrigin", "AllowHeaders", "AllowMethods"):
        assert headers[name]["schema"]["enum"] == [cors[name].strip("'")], name


def test_servers_are_the_stage(doc, template):
    """Every server URL ends with the template's stage name."""
    stage = template["Resources"]["HateSpeechApi"]["Properties"]["StageName"]
    assert doc["servers"]
    for server in doc["servers"]:
        assert server["url"].endswith(f"/{stage}"), server["url"]


# ---------------------------------------------------------------- (c) the handler's answers


def documented_events(doc: dict[str, Any]) -> list[str]:
    """The sample events whose path and method are an operation of the document."""
    ops = operations(doc)
    return [n for n in event_names() if (event(n)["path"], event(n)["httpMethod"]) in ops]


def problems_with(answer: Any, op: dict[str, Any], doc: dict[str, Any]) -> list[str]:
    """How a handler answer departs from the operation's documented responses (empty: it conforms)."""
    response = op["responses"].get(str(answer.status))
    if response is None:
        return [f"status {answer.status} is not documented"]
    response = resolved(response, doc)
    content_type = answer.headers.get("content-type", "")
    content = response.get("content", {})
    if content_type not in content:
        return [f"{answer.status} with Content-Type {content_type!r}, documented {sorted(content)}"]
    found = []
    try:
        check(answer.body, content[content_type]["schema"], doc)
    except ValidationError as exc:
        found.append(f"{answer.status} body {answer.body}: {exc.message}")
    for name, header in response.get("headers", {}).items():
        header = resolved(header, doc)
        value = answer.headers.get(name.lower())
        if value is None:
            if header.get("required"):
                found.append(f"{answer.status} lacks the header {name}")
            continue
        try:
            check(value, header["schema"], doc)
        except ValidationError as exc:
            found.append(f"{answer.status} header {name}: {exc.message}")
    return found


@pytest.mark.parametrize("name", documented_events(document()))
def test_handler_answer_to_each_sample_event_is_documented(app, doc, name):
    """The real handler's answer to each sample event of a documented operation has a documented
    status, a body valid against that status's schema and its required headers."""
    ev = event(name)
    op = operations(doc)[(ev["path"], ev["httpMethod"])]
    answer = invoke(app, ev)
    problems = problems_with(answer, op, doc)
    assert not problems, f"events/{name}.json: " + "; ".join(problems)


@pytest.mark.parametrize("path", [ROUTE, BATCH_ROUTE])
def test_sample_events_cover_the_function_s_statuses(app, doc, path):
    """Between them, the sample events make the handler give every status it documents for POST
    (200, 400, 413, 422) on each route: no function answer escapes the check above."""
    statuses = set()
    for name in documented_events(doc):
        ev = event(name)
        if ev["httpMethod"] == "POST" and ev["path"] == path:
            statuses.add(invoke(app, ev).status)
    assert statuses == FUNCTION_STATUSES


def test_events_outside_the_document_are_gateway_403s(doc):
    """Sample events of a path or method the document does not list (the function answers them 404
    or 405 when invoked directly) never reach it: API Gateway answers 403, which POST documents."""
    outside = sorted(set(event_names()) - set(documented_events(doc)))
    assert outside == ["infer-get-route", "infer-post-unknown-route"]
    gateway_403 = resolved(operations(doc)[("/infer/hate-speech", "POST")]["responses"]["403"], doc)[
        "content"
    ]
    names = gateway_403["application/json"]["examples"]
    assert {"message": "Missing Authentication Token"} in [ex["value"] for ex in names.values()]


@pytest.mark.parametrize("name", ["infer-post-valid", "infer-batch-post-valid"])
def test_function_500_is_documented(app, doc, monkeypatch, tmp_path, name):
    """An environment without a model answers 500 on either route with a body and headers the
    document describes."""
    service = ModelService.start({"MODEL_VERSION": "v2", "MODELS_DIR": str(tmp_path)})
    assert service.model is None
    monkeypatch.setattr(app, "SERVICE", service)
    ev = event(name)
    answer = invoke(app, ev)
    assert answer.status == 500
    problems = problems_with(answer, operations(doc)[(ev["path"], "POST")], doc)
    assert not problems, "; ".join(problems)


def test_an_undocumented_answer_is_caught(app, doc):
    """The conformance check itself: a prediction missing a score, or a status the operation does
    not list, is reported."""
    op = operations(doc)[("/infer/hate-speech", "POST")]
    answer = invoke(app, event("infer-post-valid"))
    del answer.body["scores"]["neither"]
    assert any("neither" in p for p in problems_with(answer, op, doc))
    answer = invoke(app, event("infer-post-valid"))
    answer.status = 418
    assert problems_with(answer, op, doc) == ["status 418 is not documented"]


# ---------------------------------------------------------------- (d) one source of truth


def test_labels_are_the_model_s(doc):
    """The label enum, the category enum and the score properties are infer.model's."""
    prediction = doc["components"]["schemas"]["Prediction"]["properties"]
    assert prediction["label"]["enum"] == list(LABELS)
    assert prediction["category"]["enum"] == [CATEGORIES[label] for label in LABELS]
    assert list(prediction["scores"]["properties"]) == list(LABELS)
    assert prediction["scores"]["required"] == list(LABELS)


def test_text_limit_is_the_template_s(doc, template):
    """`text`'s maxLength is the default of the template's MaxTextChars parameter."""
    text = doc["components"]["schemas"]["ClassifyRequest"]["properties"]["text"]
    assert text["maxLength"] == int(template["Parameters"]["MaxTextChars"]["Default"])


def test_batch_limits_are_the_handler_s_and_the_template_s(doc, template):
    """A batch's texts: 1 to MAX_BATCH_TEXTS items (infer.request), each with the single route's
    maxLength (MaxTextChars' default), and as many results."""
    texts = doc["components"]["schemas"]["BatchRequest"]["properties"]["texts"]
    assert (texts["minItems"], texts["maxItems"]) == (1, MAX_BATCH_TEXTS)
    single = doc["components"]["schemas"]["ClassifyRequest"]["properties"]["text"]
    assert texts["items"]["maxLength"] == single["maxLength"]
    assert texts["items"]["maxLength"] == int(template["Parameters"]["MaxTextChars"]["Default"])
    results = doc["components"]["schemas"]["BatchResult"]["properties"]["results"]
    assert results["maxItems"] == MAX_BATCH_TEXTS
    assert results["items"] == {"$ref": "#/components/schemas/Prediction"}


def test_batch_answer_conforms_and_is_the_single_answers(app, doc):
    """The documented batch example request, answered by the real handler, conforms to the batch
    operation, and each result is the single route's answer to that text."""
    op = operations(doc)[(BATCH_ROUTE, "POST")]
    texts = op["requestBody"]["content"]["application/json"]["examples"]["two"]["value"]["texts"]
    answer = invoke(app, event("infer-batch-post-valid", body=json.dumps({"texts": texts})))
    assert answer.status == 200
    assert not problems_with(answer, op, doc)
    singles = [invoke(app, event("infer-post-valid", body=json.dumps({"text": t}))).body for t in texts]
    assert answer.body["results"] == singles
