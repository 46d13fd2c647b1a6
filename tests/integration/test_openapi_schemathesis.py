"""A real client of openapi.yaml: schemathesis drives every operation of the document against the
local stack (the real handler, model v2, behind the local gateway) and holds each answer to the
document: no 5xx (not_a_server_error), every status documented for its operation
(status_code_conformance), every body valid against its schema (response_schema_conformance).

Bounded and repeatable: at most MAX_EXAMPLES generated requests per operation, derandomized, no
example database; positive and negative cases (schemathesis' defaults: wrong types, missing
fields, bodies outside the schema). What it finds is fixed in the API or the document, never
skipped here. The usage plan is opened wide: the throttle and quota are test_gateway_limits.py's.

The schema is read from the file when this module is imported: schemathesis' lazy loading from a
fixture (schemathesis.pytest.from_fixture, which would read it from the gateway's /openapi.yaml)
fails under pytest 9.2 (it sets `request.node._nodeid`, which pytest 9.2 no longer has).
test_the_gateway_serves_this_very_document checks the two are the same document.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
import schemathesis
import yaml
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from tests.integration.conftest import unthrottled_gateway

pytestmark = pytest.mark.integration

API_KEY = "schemathesis-key-0123456789abcdef"
OPENAPI = Path(__file__).resolve().parents[2] / "openapi.yaml"
MAX_EXAMPLES = 50
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    gateway, _ = unthrottled_gateway(API_KEY, tmp_path_factory.mktemp("records"))
    yield gateway
    gateway.stop()


schema = schemathesis.openapi.from_path(OPENAPI)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented(case, gateway):
    """Each generated request to each operation (both routes' POST and OPTIONS) gets a documented
    status with a body valid against its schema, and never a 5xx."""
    case.call_and_validate(base_url=gateway.url, headers={"x-api-key": API_KEY}, checks=CHECKS, timeout=30)


def test_schemathesis_sees_every_operation_of_the_document():
    """The client reads all four operations: POST and OPTIONS on the single and the batch route."""
    seen = {(op.ok().method.upper(), op.ok().path) for op in schema.get_all_operations()}
    assert seen == {
        ("POST", "/infer/hate-speech"),
        ("OPTIONS", "/infer/hate-speech"),
        ("POST", "/infer/hate-speech/batch"),
        ("OPTIONS", "/infer/hate-speech/batch"),
    }


def test_the_gateway_serves_this_very_document(gateway):
    """GET /openapi.yaml (no key) is openapi.yaml as it is, GET /openapi.json the same document
    as JSON; both outside the stage, so no route of the API can clash with them."""
    text = OPENAPI.read_text(encoding="utf-8")
    as_yaml = requests.get(f"{gateway.base_url}/openapi.yaml", timeout=10)
    assert as_yaml.status_code == 200 and as_yaml.headers["Content-Type"].startswith("application/yaml")
    assert as_yaml.content.decode("utf-8") == text
    as_json = requests.get(f"{gateway.base_url}/openapi.json", timeout=10)
    assert as_json.status_code == 200 and as_json.json() == yaml.safe_load(text)
    inside_stage = requests.get(f"{gateway.url}/openapi.yaml", timeout=10)
    assert inside_stage.status_code == 403
