"""The stack reader: template.yaml read with SAM's loader, set for one samconfig environment and
resolved through the one resolver (stack.template.resolve); a bad template is a clear SettingsError."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from stack import SettingsError, allowed_model_versions, load_settings, load_template
from stack.template import pseudo_parameters, resolve

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE, SAMCONFIG = ROOT / "template.yaml", ROOT / "samconfig.toml"

# The smallest template the reader accepts: the inference function behind one Api event.
MINI = """\
Transform: AWS::Serverless-2016-10-31
Parameters:
  Environment: {Type: String, Default: dev}
Conditions:
  IsProd: !Equals [!Ref Environment, prod]
  IsNotProd: !Not [!Condition IsProd]
Resources:
  Api:
    Type: AWS::Serverless::Api
    Properties: {Name: !Sub "api-${Environment}", StageName: v1}
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: !Sub "fn-${Environment}"
      Handler: infer.app.lambda_handler
      Runtime: python3.12
      Environment:
        Variables:
          STAGE: !If [IsNotProd, !Ref Environment, !Ref AWS::NoValue]
          LITERAL: !Sub ["${!Keep} ${Who}", {Who: !Ref Environment}]
          ARN: !GetAtt Fn.Arn
          GENERATED: !Ref ServerlessDeploymentApplication
      Events:
        Post:
          Type: Api
          Properties: {RestApiId: !Ref Api, Path: /infer, Method: post}
"""


def write(tmp_path: Path, template: str, samconfig: str = "") -> tuple[Path, Path]:
    """A template and a samconfig with a [try] environment (plus `samconfig`'s lines) in tmp_path."""
    t, s = tmp_path / "template.yaml", tmp_path / "samconfig.toml"
    t.write_text(template, encoding="utf-8")
    s.write_text('[try.deploy.parameters]\nstack_name = "hs-try"\n' + samconfig, encoding="utf-8")
    return t, s


def samconfig_with(tmp_path: Path, overrides: str) -> Path:
    """samconfig.toml plus a [try] environment with the given parameter_overrides."""
    path = tmp_path / "samconfig.toml"
    shutil.copy(SAMCONFIG, path)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(f'\n[try.deploy.parameters]\nstack_name = "hs-try"\nparameter_overrides = {overrides}\n')
    return path


def test_short_form_tags_are_read_as_intrinsics():
    """!Ref, !Sub, !If and !GetAtt come back in their long forms, as CloudFormation reads them."""
    fn = load_template(TEMPLATE)["Resources"]["InferenceFunction"]["Properties"]
    assert fn["FunctionName"] == {"Fn::Sub": "${AppName}-${Environment}-infer"}
    assert fn["DeploymentPreference"]["Type"]["Fn::If"][0] == "IsGradual"


def test_intrinsics_resolve_with_conditions_literals_and_stand_ins(tmp_path):
    """Conditions naming conditions, Fn::If with AWS::NoValue (the variable is dropped), a Sub's own
    variables and its ${!Literal} escape, and references to resources as their stand-in names."""
    template, samconfig = write(tmp_path, MINI)
    dev = load_settings(template, samconfig, env="try")
    assert dev.conditions == {"IsProd": False, "IsNotProd": True}
    assert dict(dev.inference.environment) == {
        "STAGE": "dev",
        "LITERAL": "${Keep} dev",
        "ARN": "fn-dev.Arn",
        "GENERATED": "ServerlessDeploymentApplication",
    }
    assert (dev.api_name, dev.stage_name, dev.stack_name) == ("api-dev", "v1", "hs-try")
    template, samconfig = write(tmp_path, MINI, 'parameter_overrides = ["Environment=prod"]\n')
    prod = load_settings(template, samconfig, env="try")
    assert "STAGE" not in prod.inference.environment and prod.inference.name == "fn-prod"


def test_references_can_be_kept_for_the_transformed_template():
    """With stand_ins=False (the template tests' view of SAM's output) a Ref or GetAtt of a resource
    stays as it is and a Sub keeps its "${Resource}" text; parameters and pseudo parameters resolve."""
    doc = load_template(TEMPLATE)
    parameters = {name: str(spec.get("Default", "")) for name, spec in doc["Parameters"].items()}
    sections, conditions = resolve(doc, parameters, pseudo_parameters("eu-west-1", "s"), stand_ins=False)
    env = sections["Resources"]["CanaryJudgeFunction"]["Properties"]["Environment"]["Variables"]
    assert env["FUNCTION_NAME"] == {"Ref": "InferenceFunction"}
    assert conditions == {"IsGradual": False, "HasOnCallEmail": False}
    url = sections["Outputs"]["ApiUrl"]["Value"]
    assert url.startswith("https://${HateSpeechApi}.execute-api.eu-west-1.amazonaws.com/")


def test_the_deployment_preference_follows_the_environment():
    """Environment=prod (the local env) -> Canary10Percent5Minutes; dev -> AllAtOnce."""
    local, dev = load_settings(env="local"), load_settings(env="dev")
    assert (local.deployment_type, local.canary_percent) == ("Canary10Percent5Minutes", 10)
    assert [(s.weight, s.minutes) for s in local.plan.steps] == [(0.1, 5.0)]
    assert (dev.deployment_type, dev.canary_percent, dev.plan.steps) == ("AllAtOnce", 100, ())
    assert local.pre_traffic_hook == "PreTrafficHookFunction"


def test_the_deployment_alarms_are_read_with_their_thresholds():
    """The three alarms of DeploymentPreference.Alarms, in order, with metric, statistic and
    threshold: the API-wide 5xx pages but no longer gates, so the local stack does not gate on it."""
    s = load_settings()
    alarms = {a.logical_id: a for a in s.alarms}
    assert list(alarms) == ["CanaryErrorsAlarm", "CanaryLatencyAlarm", "CanaryJudgeAlarm"]
    latency = alarms["CanaryLatencyAlarm"]
    assert (latency.metric, latency.statistic, latency.threshold) == ("Duration", "p99", s.latency_slo_ms)
    assert (latency.evaluation_periods, latency.datapoints_to_alarm, latency.period_s) == (2, 2, 60.0)
    assert latency.dimensions["FunctionName"] == s.inference.name
    judge = alarms["CanaryJudgeAlarm"]
    assert (judge.metric, judge.comparison, judge.threshold) == (
        "CanaryVerdict",
        "GreaterThanOrEqualToThreshold",
        2.0,
    )
    assert all(a.treat_missing_data == "notBreaching" for a in s.alarms)
    # ExecutedVersion scopes the two Lambda alarms to the new version; the verdict has no version.
    assert [a.new_version_only for a in s.alarms] == [True, True, False]


def test_the_allowed_model_versions_are_the_templates():
    """ModelVersion's AllowedValues, read without a samconfig: what the preflight accepts."""
    assert allowed_model_versions() == load_settings().model_versions == ("v1", "v2", "v3")


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
    assert (s.key_plan.quota_limit, s.model_version, s.inference.environment["MODEL_VERSION"]) == (
        7,
        "v2",
        "v2",
    )


def test_a_broken_template_is_reported_with_its_path(tmp_path):
    """YAML that does not parse -> SettingsError naming the file."""
    template, samconfig = write(tmp_path, "Resources: [unclosed\n")
    with pytest.raises(SettingsError, match=r"template\.yaml: not valid YAML"):
        load_settings(template, samconfig, env="try")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("Resources:", "Nothing:"), "not a CloudFormation template"),
        (
            ("!Not [!Condition IsProd]", "!Not [!Condition Missing]"),
            "condition Missing but does not define it",
        ),
        (("!Not [!Condition IsProd]", "!Not [!Condition IsNotProd]"), "condition IsNotProd refers to itself"),
        (("infer.app.lambda_handler", "other.handler"), "no function has Handler infer.app.lambda_handler"),
        (("Type: Api", "Type: Schedule"), "Fn has no Api event"),
    ],
)
def test_a_template_the_stack_cannot_use_is_a_clear_settings_error(tmp_path, change, message):
    """Each defect the reader meets is one SettingsError naming the template and what is wrong."""
    template, samconfig = write(tmp_path, MINI.replace(*change))
    with pytest.raises(SettingsError, match=message) as raised:
        load_settings(template, samconfig, env="try")
    assert str(template) in str(raised.value)


def test_an_unknown_deployment_type_is_a_settings_error(tmp_path):
    """A DeploymentPreference.Type CodeDeploy has no predefined configuration for names the type."""
    broken = MINI.replace("      Events:", "      DeploymentPreference: {Type: Blue/Green}\n      Events:")
    template, samconfig = write(tmp_path, broken)
    with pytest.raises(SettingsError, match="DeploymentPreference.Type.*Blue/Green"):
        load_settings(template, samconfig, env="try")


def test_a_deployment_alarm_that_is_no_alarm_is_refused(tmp_path):
    """DeploymentPreference.Alarms must name AWS::CloudWatch::Alarm resources."""
    broken = MINI.replace(
        "      Events:", "      DeploymentPreference: {Type: AllAtOnce, Alarms: [!Ref Api]}\n      Events:"
    )
    template, samconfig = write(tmp_path, broken)
    with pytest.raises(SettingsError, match="alarm Api is no AWS::CloudWatch::Alarm"):
        load_settings(template, samconfig, env="try")


def test_an_intrinsic_the_resolver_cannot_evaluate_is_a_settings_error(tmp_path):
    """A malformed intrinsic (Fn::Join of one argument) is a SettingsError, not SAM CLI's exception."""
    broken = MINI.replace('!Sub "fn-${Environment}"', "!Join [only-one]")
    template, samconfig = write(tmp_path, broken)
    with pytest.raises(SettingsError, match="cannot resolve the template"):
        load_settings(template, samconfig, env="try")


def test_lifting_the_limits_changes_every_plan_and_only_what_was_asked():
    """lifted(quota=True) drops every plan's quota and keeps its throttles; lifted(throttle=True)
    drops the plan's throttle and its methods' and keeps the quota (serve --no-quota / --no-throttle)."""
    s = load_settings(TEMPLATE, SAMCONFIG, env="prod")
    no_quota, no_throttle = s.lifted(quota=True), s.lifted(throttle=True)
    assert set(no_quota.plans) == set(no_throttle.plans) == {"standard", "free"}
    for name, plan in s.plans.items():
        assert no_quota.plans[name].quota_limit is None
        assert no_quota.plans[name].method_throttles == plan.method_throttles != {}
        assert (no_quota.plans[name].rate_limit, no_quota.plans[name].burst_limit) == (
            plan.rate_limit,
            plan.burst_limit,
        )
        lifted = no_throttle.plans[name]
        assert (lifted.rate_limit, lifted.burst_limit, dict(lifted.method_throttles)) == (None, None, {})
        assert lifted.quota_limit == plan.quota_limit is not None
    assert s.key_plan.quota_limit == 10_000  # the original is unchanged
