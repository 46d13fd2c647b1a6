"""`make prune-versions`: which published versions deploy.prune deletes (botocore Stubber, no network)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber

from deploy import prune as pr
from deploy import stack as st

REGION = "us-east-1"
STACK = "hate-speech-prod"
FUNCTION = "hate-speech-prod-infer"
APP = "hate-speech-prod-ServerlessDeploymentApplication-X"
GROUP = "hate-speech-prod-InferenceFunctionDeploymentGroup-Y"
ARN = f"arn:aws:lambda:{REGION}:123456789012:function:{FUNCTION}"


def client(service: str):
    return boto3.client(
        service, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )


def stubbed_account(
    cfn, lam, cd, *, versions: int, alias: str, weights: dict, running: tuple[str, str] | None
):
    """The stack (holding version `versions`), its alias, and at most one deployment in progress."""
    s_cfn, s_lam, s_cd = Stubber(cfn), Stubber(lam), Stubber(cd)
    s_cfn.add_response(
        "describe_stacks",
        {
            "Stacks": [
                {
                    "StackName": STACK,
                    "CreationTime": datetime(2026, 11, 1, tzinfo=UTC),
                    "StackStatus": "UPDATE_COMPLETE",
                    "Outputs": [{"OutputKey": "InferenceFunctionName", "OutputValue": FUNCTION}],
                }
            ]
        },
    )
    rows = [
        ("InferenceFunction", FUNCTION, "AWS::Lambda::Function"),
        ("InferenceFunctionVersionabc123", f"{ARN}:{versions}", "AWS::Lambda::Version"),
        ("ServerlessDeploymentApplication", APP, "AWS::CodeDeploy::Application"),
        ("InferenceFunctionDeploymentGroup", GROUP, "AWS::CodeDeploy::DeploymentGroup"),
    ]
    summaries = [
        {
            "LogicalResourceId": logical,
            "PhysicalResourceId": physical,
            "ResourceType": kind,
            "LastUpdatedTimestamp": datetime(2026, 11, 30, tzinfo=UTC),
            "ResourceStatus": "UPDATE_COMPLETE",
        }
        for logical, physical, kind in rows
    ]
    s_cfn.add_response("list_stack_resources", {"StackResourceSummaries": summaries})
    s_cd.add_response("list_deployments", {"deployments": ["d-RUN"] if running else []})
    if running:
        spec = {
            "Resources": [
                {
                    "InferenceFunction": {
                        "Type": "AWS::Lambda::Function",
                        "Properties": {
                            "Name": FUNCTION,
                            "Alias": "live",
                            "CurrentVersion": running[0],
                            "TargetVersion": running[1],
                        },
                    }
                }
            ]
        }
        info = {"deploymentId": "d-RUN", "revision": {"appSpecContent": {"content": json.dumps(spec)}}}
        s_cd.add_response("get_deployment", {"deploymentInfo": info}, {"deploymentId": "d-RUN"})
    s_lam.add_response(
        "list_aliases",
        {
            "Aliases": [
                {
                    "Name": "live",
                    "FunctionVersion": alias,
                    "RoutingConfig": {"AdditionalVersionWeights": weights},
                }
            ]
        },
        {"FunctionName": FUNCTION},
    )
    listed = [{"Version": "$LATEST"}] + [{"Version": str(v)} for v in range(1, versions + 1)]
    s_lam.add_response("list_versions_by_function", {"Versions": listed}, {"FunctionName": FUNCTION})
    return s_cfn, s_lam, s_cd


def test_plan_keeps_the_newest_and_every_protected_version():
    """Pure: ten versions, KEEP=5: 1-5 are candidates, minus the protected 2 and 4."""
    plan = pr.plan_prune(
        [str(v) for v in range(1, 11)],
        5,
        {"2": "alias live", "4": "deployment d in progress", "9": "x"},
        FUNCTION,
    )
    assert plan.keep == ("6", "7", "8", "9", "10")
    assert plan.delete == ("1", "3", "5")
    assert plan.protected == {"2": "alias live", "4": "deployment d in progress"}


def test_plan_with_fewer_versions_than_keep_deletes_nothing():
    """Three versions, KEEP=5: nothing to delete."""
    assert pr.plan_prune(["1", "2", "3"], 5, {}, FUNCTION).delete == ()


def test_keep_below_one_is_refused():
    """KEEP=0 would delete the version the stack holds: refused."""
    with pytest.raises(st.DeployError, match="keep at least one"):
        pr.plan_prune(["1"], 0, {}, FUNCTION)


def test_dry_run_prints_what_it_would_delete_and_deletes_nothing(capsys):
    """Default: a plan on stdout, no DeleteFunction call (the stubber would reject one)."""
    cfn, lam, cd = client("cloudformation"), client("lambda"), client("codedeploy")
    stubs = stubbed_account(cfn, lam, cd, versions=9, alias="2", weights={}, running=None)
    for stub in stubs:
        stub.activate()
    assert pr.main(["--env", "prod", "--keep", "3"], clients=lambda: (cfn, lam, cd)) == 0
    for stub in stubs:
        stub.assert_no_pending_responses()
    out = capsys.readouterr().out
    assert "keep version 2: alias live" in out
    assert "would delete versions 1, 3, 4, 5, 6 (dry run: pass --yes / YES=1 to delete)" in out


def test_yes_deletes_only_unprotected_old_versions():
    """--yes, KEEP=2 of 12: never $LATEST, the alias's 3, its canary weight 5, a running deployment's
    7 and 8, or the stack's own 12 (also newest); every other old version is deleted, oldest first."""
    cfn, lam, cd = client("cloudformation"), client("lambda"), client("codedeploy")
    s_cfn, s_lam, s_cd = stubbed_account(
        cfn, lam, cd, versions=12, alias="3", weights={"5": 0.1}, running=("7", "8")
    )
    deleted = ["1", "2", "4", "6", "9", "10"]
    for version in deleted:
        s_lam.add_response("delete_function", {}, {"FunctionName": FUNCTION, "Qualifier": version})
    for stub in (s_cfn, s_lam, s_cd):
        stub.activate()
    assert pr.main(["--env", "prod", "--keep", "2", "--yes"], clients=lambda: (cfn, lam, cd)) == 0
    for stub in (s_cfn, s_lam, s_cd):
        stub.assert_no_pending_responses()


def test_a_delete_lambda_refuses_is_reported_and_the_rest_continue(capsys):
    """An alias gained version 1 since the plan: Lambda refuses, the others still go, exit 1."""
    cfn, lam, cd = client("cloudformation"), client("lambda"), client("codedeploy")
    s_cfn, s_lam, s_cd = stubbed_account(cfn, lam, cd, versions=4, alias="4", weights={}, running=None)
    s_lam.add_client_error(
        "delete_function", "ResourceConflictException", "version is referenced by an alias", 409
    )
    s_lam.add_response("delete_function", {}, {"FunctionName": FUNCTION, "Qualifier": "2"})
    for stub in (s_cfn, s_lam, s_cd):
        stub.activate()
    assert pr.main(["--env", "prod", "--keep", "2", "--yes"], clients=lambda: (cfn, lam, cd)) == 1
    out = capsys.readouterr().out
    assert "could not delete version 1: version is referenced by an alias" in out
    assert "deleted version 2" in out


def test_a_missing_stack_is_one_line_and_exit_2(capsys):
    """No stack: nothing to prune, say how to create it."""
    cfn = client("cloudformation")
    stub = Stubber(cfn)
    stub.add_client_error("describe_stacks", "ValidationError", f"Stack with id {STACK} does not exist", 400)
    stub.activate()
    assert pr.main(["--env", "prod"], clients=lambda: (cfn, None, None)) == 2
    assert capsys.readouterr().err == (
        f"error: stack {STACK} does not exist: create it first with `make deploy ENV=prod`\n"
    )
