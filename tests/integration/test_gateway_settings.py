"""The local stack's settings come from template.yaml and samconfig.toml (no second copy): the
template's defaults, a samconfig environment's overrides, and the intrinsics resolved."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from emulator.settings import SettingsError, load_settings, load_template

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE, SAMCONFIG = ROOT / "template.yaml", ROOT / "samconfig.toml"


def samconfig_with(tmp_path: Path, overrides: str) -> Path:
    """samconfig.toml plus a [try] environment with the given parameter_overrides."""
    path = tmp_path / "samconfig.toml"
    shutil.copy(SAMCONFIG, path)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(f"\n[try.deploy.parameters]\nparameter_overrides = {overrides}\n")
    return path


def test_short_form_tags_are_read_as_intrinsics():
    """!Ref, !Sub, !If and !GetAtt come back in their long forms, as CloudFormation reads them."""
    fn = load_template(TEMPLATE)["Resources"]["InferenceFunction"]["Properties"]
    assert fn["FunctionName"] == {"Fn::Sub": "${AppName}-${Environment}-infer"}
    assert fn["DeploymentPreference"]["Type"]["Fn::If"][0] == "IsGradual"


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


def test_the_deployment_preference_follows_the_environment():
    """Environment=prod (the local env) -> Canary10Percent5Minutes; dev -> AllAtOnce."""
    local, dev = load_settings(env="local"), load_settings(env="dev")
    assert (local.deployment_type, local.canary_percent, local.interval_minutes) == (
        "Canary10Percent5Minutes",
        10,
        5,
    )
    assert (dev.deployment_type, dev.traffic_shift) == ("AllAtOnce", "all_at_once")
    assert local.pre_traffic_hook == "PreTrafficHookFunction"


def test_the_deployment_alarms_are_read_with_their_thresholds():
    """The three alarms of DeploymentPreference.Alarms, in order, with metric, statistic and
    threshold: the API-wide 5xx pages but no longer gates, so the local stack does not gate on it."""
    s = load_settings()
    alarms = {a.logical_id: a for a in s.alarms}
    assert list(alarms) == ["CanaryErrorsAlarm", "CanaryLatencyAlarm", "CanaryJudgeAlarm"]
    latency = alarms["CanaryLatencyAlarm"]
    assert (latency.metric, latency.statistic, latency.threshold) == ("Duration", "p99", s.latency_slo_ms)
    assert (latency.evaluation_periods, latency.datapoints_to_alarm) == (2, 2)
    judge = alarms["CanaryJudgeAlarm"]
    assert (judge.metric, judge.comparison, judge.threshold) == (
        "CanaryVerdict",
        "GreaterThanOrEqualToThreshold",
        2.0,
    )
    assert all(a.treat_missing_data == "notBreaching" for a in s.alarms)


def test_an_override_of_an_unknown_parameter_is_refused(tmp_path):
    """A typo in parameter_overrides names the file, the environment and the parameter."""
    samconfig = samconfig_with(tmp_path, '["QuotaLimt=5"]')
    with pytest.raises(SettingsError, match=r"\[try\] overrides parameters the template lacks: QuotaLimt"):
        load_settings(TEMPLATE, samconfig, env="try")


def test_an_override_outside_allowed_values_is_refused(tmp_path):
    """ModelVersion=v9 is not in the parameter's AllowedValues."""
    samconfig = samconfig_with(tmp_path, '["ModelVersion=v9"]')
    with pytest.raises(SettingsError, match="ModelVersion='v9' is not one of v1, v2"):
        load_settings(TEMPLATE, samconfig, env="try")


def test_an_override_below_min_value_is_refused(tmp_path):
    """RateLimit=0 is below the parameter's MinValue of 1."""
    samconfig = samconfig_with(tmp_path, '["RateLimit=0"]')
    with pytest.raises(SettingsError, match="below MinValue"):
        load_settings(TEMPLATE, samconfig, env="try")


def test_overrides_as_one_string_are_read_like_sam_reads_them(tmp_path):
    """parameter_overrides may be one space-separated string, as `sam deploy` accepts."""
    s = load_settings(TEMPLATE, samconfig_with(tmp_path, '"QuotaLimit=7 ModelVersion=v2"'), env="try")
    assert (s.quota_limit, s.model_version, s.inference.environment["MODEL_VERSION"]) == (7, "v2", "v2")


def test_an_unknown_environment_lists_the_known_ones():
    """--env with a name samconfig does not have says which ones it has."""
    with pytest.raises(SettingsError, match=r"no environment \[nowhere.*local"):
        load_settings(env="nowhere")


def test_a_broken_template_is_reported_with_its_path(tmp_path):
    """YAML that does not parse -> SettingsError naming the file."""
    bad = tmp_path / "template.yaml"
    bad.write_text("Resources: [unclosed\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="not valid YAML"):
        load_settings(bad, SAMCONFIG)
