"""What the local gateway serves comes from template.yaml through the stack reader (no second copy):
the inference function's routes and environment, the API's CORS answer and gateway responses.
The reader itself (intrinsics, samconfig, errors) is tested in tests/unit/test_stack*.py."""

from __future__ import annotations

import pytest

from stack import load_settings

pytestmark = pytest.mark.integration


def test_the_inference_function_is_found_with_its_route_and_environment():
    """The function whose Handler is infer.app.lambda_handler, its Api event, and its variables
    with the Globals merged in and every intrinsic resolved."""
    s = load_settings()
    assert s.inference.name == "hate-speech-prod-infer"
    assert (s.inference.memory_mb, s.inference.timeout_s, s.inference.alias) == (1769, 10.0, "live")
    assert [(r.method, r.path, r.api_key_required) for r in s.routes] == [
        ("POST", "/infer/hate-speech", True),
        ("POST", "/infer/hate-speech/batch", True),
    ]
    assert s.stage_name == "v1"
    env = s.inference.environment
    assert env["MODEL_VERSION"] == s.model_version == "v1"
    assert env["POWERTOOLS_SERVICE_NAME"] == "hate-speech-prod"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "HateSpeechApi"
    assert env["MAX_TEXT_CHARS"] == "5000"


def test_cors_and_gateway_responses_come_from_the_api():
    """Cors values lose SAM's quotes; the preflight needs no key; 4XX/5XX carry Allow-Origin."""
    s = load_settings()
    assert s.cors is not None
    assert (s.cors.allow_origin, s.cors.allow_methods, s.cors.max_age) == ("*", "OPTIONS,POST", "600")
    assert s.cors.preflight_needs_key is False
    assert s.gateway_response_headers["DEFAULT_4XX"]["Access-Control-Allow-Origin"] == "*"
    assert s.gateway_response_headers["DEFAULT_5XX"]["Access-Control-Allow-Origin"] == "*"


def test_the_usage_plans_give_the_local_keys_their_limits():
    """The local environment's overrides (QuotaLimit=500, RateLimit=50, BurstLimit=100) land on the
    standard plan, the stack key's; the free plan keeps its Free* defaults."""
    s = load_settings()
    assert s.default_plan == "standard"
    own = s.key_plan
    assert (own.quota_limit, own.rate_limit, own.burst_limit, own.quota_period) == (500, 50.0, 100, "MONTH")
    free = s.plans["free"]
    assert (free.quota_limit, free.rate_limit, free.burst_limit) == (1000, 5.0, 10)
