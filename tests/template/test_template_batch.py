"""The batch route in SAM's transform of template.yaml: POST /infer/hate-speech/batch is served by
the same live alias as the single route, needs the API key, and has the same CORS preflight."""

from __future__ import annotations

import pytest

from tests.template.cfn import resources_of_type, transform

ROUTE = "/infer/hate-speech"
BATCH_ROUTE = "/infer/hate-speech/batch"


@pytest.fixture(scope="module")
def prod():
    return transform({"Environment": "prod"})


def api_body(cfn: dict) -> dict:
    return cfn["Resources"]["HateSpeechApi"]["Properties"]["Body"]


def test_batch_route_is_deployed_with_the_key_like_the_single_route(prod):
    """The transform has POST (api_key required) and OPTIONS (no key) on the batch path, and the
    API serves exactly the two routes."""
    paths = api_body(prod)["paths"]
    assert set(paths) == {ROUTE, BATCH_ROUTE}
    methods = paths[BATCH_ROUTE]
    assert set(methods) == {"post", "options"}
    assert {"api_key": []} in methods["post"]["security"]
    assert not any("api_key" in requirement for requirement in methods["options"].get("security", []))


def test_batch_route_invokes_the_live_alias(prod):
    """Both routes integrate with alias `live` (so CodeDeploy's canary shifts batch traffic too)."""
    for path in (ROUTE, BATCH_ROUTE):
        integration = api_body(prod)["paths"][path]["post"]["x-amazon-apigateway-integration"]
        assert integration["type"] == "aws_proxy"
        assert "${InferenceFunctionAliaslive}" in integration["uri"]["Fn::Sub"], path


def test_batch_preflight_has_the_single_route_s_cors_headers(prod):
    """The batch path's CORS preflight answers the same headers as the single route's."""
    paths = api_body(prod)["paths"]

    def cors(path: str) -> dict:
        responses = paths[path]["options"]["x-amazon-apigateway-integration"]["responses"]
        return responses["default"]["responseParameters"]

    assert cors(BATCH_ROUTE) == cors(ROUTE)
    allowed = cors(BATCH_ROUTE)["method.response.header.Access-Control-Allow-Headers"]
    assert allowed == "'Content-Type,X-Api-Key'"


def test_api_gateway_may_invoke_the_alias_on_the_batch_path(prod):
    """SAM's Lambda permission for the batch event names the batch path on the API's stages."""
    permissions = resources_of_type(prod, "AWS::Lambda::Permission")
    arns = [str(p["Properties"].get("SourceArn")) for p in permissions.values()]
    assert any(BATCH_ROUTE in arn for arn in arns), arns
