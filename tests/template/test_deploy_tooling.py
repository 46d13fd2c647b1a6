"""samconfig.toml, the deploy Make targets and their credentials check, all without AWS."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import tomllib

import boto3
import pytest
from botocore.stub import Stubber

from tests.template.cfn import REGION, ROOT, load_template
from tests.usermake import user_env

SAMCONFIG = ROOT / "samconfig.toml"
DEPLOYABLE = ("dev", "uat", "prod")
FUNCTIONS = (
    "InferenceFunction",
    "PreTrafficHookFunction",
    "CanaryJudgeFunction",
    "PostTrafficGateFunction",
    "CanaryProbeFunction",
)


def _load_preflight():
    spec = importlib.util.spec_from_file_location("aws_preflight", ROOT / "deploy" / "aws_preflight.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


preflight = _load_preflight()


@pytest.fixture(scope="module")
def samconfig():
    return tomllib.loads(SAMCONFIG.read_text(encoding="utf-8"))


def overrides(section: dict) -> dict[str, str]:
    return dict(item.split("=", 1) for item in section["deploy"]["parameters"]["parameter_overrides"])


def no_credentials_env() -> dict[str, str]:
    # Also drop make's own variables (tests.usermake): the child runs as a user's make.
    env = user_env({k: v for k, v in os.environ.items() if not k.startswith("AWS_")})
    env.update(
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


def make(*args: str) -> subprocess.CompletedProcess[str]:
    """`make` in the project without remaking .venv and without any AWS credentials."""
    return subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/.installed", *args],
        cwd=ROOT,
        env=no_credentials_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_samconfig_has_the_stages_with_what_sam_deploy_needs(samconfig):
    """version 0.1; dev, uat, prod each name a stack and deploy it with resolve_s3 and CAPABILITY_IAM."""
    assert samconfig["version"] == 0.1
    for env in DEPLOYABLE:
        section = samconfig[env]
        deploy = section["deploy"]["parameters"]
        assert section["global"]["parameters"]["stack_name"] == f"hate-speech-{env}"
        assert deploy["resolve_s3"] is True
        assert deploy["capabilities"] == "CAPABILITY_IAM"
        assert isinstance(deploy["confirm_changeset"], bool)
        assert overrides(section)["Environment"] == env
        assert section["build"]["parameters"]["build_in_source"] is True
    assert samconfig["prod"]["deploy"]["parameters"]["confirm_changeset"] is True


def test_samconfig_names_no_bucket_and_never_pins_the_model(samconfig):
    """No hard-coded bucket anywhere, and no ModelVersion: deploys keep the live model, rollouts change it."""
    text = SAMCONFIG.read_text(encoding="utf-8")
    assert "s3_bucket" not in text
    for env, section in samconfig.items():
        if isinstance(section, dict) and "deploy" in section:
            assert "ModelVersion" not in overrides(section), env


def test_every_samconfig_override_is_a_valid_template_parameter(samconfig):
    """Override names exist in template.yaml and their values pass its constraints."""
    parameters = load_template()["Parameters"]
    for env, section in samconfig.items():
        if not (isinstance(section, dict) and "deploy" in section):
            continue
        for name, value in overrides(section).items():
            spec = parameters[name]
            if "AllowedValues" in spec:
                assert value in spec["AllowedValues"], (env, name, value)
            if spec["Type"] == "Number":
                assert int(value) >= spec.get("MinValue", 0), (env, name, value)


def test_the_local_stack_gets_production_settings_with_a_small_quota(samconfig):
    """[local] (read by the offline local stack) rehearses prod's canary with a quota reached in seconds."""
    local = overrides(samconfig["local"])
    assert local["Environment"] == "prod"
    assert int(local["QuotaLimit"]) < int(load_template()["Parameters"]["QuotaLimit"]["Default"])
    assert int(local["BurstLimit"]) >= int(local["RateLimit"])


@pytest.mark.parametrize("name", FUNCTIONS)
def test_make_has_the_build_target_sam_runs_for_each_function(name):
    """`make build-<LogicalId>` exists (dry run) for every function the template builds with make."""
    result = make("-n", f"build-{name}", "ARTIFACTS_DIR=/nonexistent/artifacts")
    assert result.returncode == 0, result.stderr
    assert "/nonexistent/artifacts" in result.stdout


def test_build_targets_stay_out_of_make_help():
    """`make help` lists the front-door targets, not SAM's build-<LogicalId> entry points."""
    listed = make("help").stdout
    for target in ("build", "validate", "deploy", "rollout", "rollback", "prune-versions", "decommission"):
        assert re.search(rf"\b{target}\b", listed), target
    assert "build-" not in listed


def test_rollout_runs_the_rollout_tool_with_the_environment_and_the_model():
    """`make rollout MODEL=v2 ENV=prod` runs `python -m deploy.rollout --env prod --model v2` (which
    checks the stack and passes every samconfig override itself), not a bare sam deploy."""
    result = make("-n", "rollout", "MODEL=v2", "ENV=prod")
    assert result.returncode == 0, result.stderr
    (run,) = [line for line in result.stdout.splitlines() if "-m deploy.rollout" in line]
    assert run.endswith("-m deploy.rollout --env prod --model v2")
    assert not re.search(r"\bsam deploy\b", result.stdout), result.stdout


@pytest.mark.parametrize("target", ["deploy", "rollout", "rollback", "prune-versions", "decommission"])
def test_aws_targets_say_in_one_line_that_credentials_are_missing(target):
    """Without credentials the target stops before building, with one line and a non-zero status."""
    result = make(target, "ENV=dev", "MODEL=v2")
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if not line.startswith("make:")]
    assert len(errors) == 1 and errors[0].startswith("error: no AWS credentials"), result.stderr
    assert "Building codeuri" not in result.stdout


def test_an_unknown_environment_is_refused_with_the_ones_that_exist():
    """ENV must be a samconfig.toml stage; the message lists them."""
    result = make("deploy", "ENV=staging")
    assert result.returncode != 0
    assert "error: ENV=staging is not in samconfig.toml; use one of dev, prod, uat" in result.stderr


def test_a_rollout_to_an_unknown_model_is_refused():
    """MODEL must be one of the shipped models."""
    result = make("rollout", "MODEL=v9", "ENV=prod")
    assert result.returncode != 0
    assert "error: MODEL=v9 is not a model version; use one of v1, v2, v3" in result.stderr


def test_preflight_reports_whose_credentials_they_are():
    """With credentials, STS's answer (account and ARN) comes back as is."""
    sts = boto3.client("sts", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    answer = {"UserId": "AID", "Account": "123456789012", "Arn": "arn:aws:iam::123456789012:user/ml"}
    with Stubber(sts) as stub:
        stub.add_response("get_caller_identity", answer, {})
        assert preflight.caller_identity(sts)["Account"] == "123456789012"


def test_preflight_turns_rejected_credentials_into_one_line():
    """Expired or wrong credentials give a one-line reason, not a traceback."""
    sts = boto3.client("sts", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(sts) as stub:
        stub.add_client_error(
            "get_caller_identity", "ExpiredToken", "The security token included in the request is expired"
        )
        with pytest.raises(
            preflight.PreflightError, match="AWS rejected the credentials: The security token"
        ):
            preflight.caller_identity(sts)


def test_the_local_stack_settings_are_never_deployed():
    """ENV=local holds the offline local stack's settings; deploying it is refused before any build."""
    result = make("deploy", "ENV=local")
    assert result.returncode != 0
    assert "error: ENV=local configures the offline local stack and is not deployed" in result.stderr
