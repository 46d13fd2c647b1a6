"""emulator.local_aws: the Lambda, CodeDeploy and CloudFormation stand-ins `--then-rollback` drives
deploy.rollback through, over fake function versions (no execution environment is started)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from botocore.exceptions import ClientError

from deploy import rollback as rb
from deploy import stack as st
from emulator.controller import PROMOTED, Deployment
from emulator.functions import Alias
from emulator.local_aws import (
    LocalCloudFormation,
    LocalCodeDeploy,
    LocalLambda,
    local_clients,
    package_sha256,
)
from stack import plan_for

FUNCTION = "hate-speech-prod-infer"
ARN = f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION}"
STACK = "hate-speech-prod"


class FakeVersion:
    """What the stand-ins read of an emulator.functions.FunctionVersion."""

    def __init__(self, number: str, model: str) -> None:
        self.function_version, self.model_version = number, model
        self.name, self.unqualified_arn, self.arn = FUNCTION, ARN, f"{ARN}:{number}"
        self.settings = SimpleNamespace(inference=SimpleNamespace(environment={"MAX_TEXT_CHARS": "5000"}))


def promoted_deployment() -> Deployment:
    d = Deployment(id="d-REHEARSAL7", plan=plan_for("Canary10Percent5Minutes"), baseline="1", canary="2")
    d.started, d.completed, d.outcome = 1_000.0, 1_060.0, PROMOTED
    return d


def stack_of(v1: FakeVersion, v2: FakeVersion):
    settings = SimpleNamespace(
        stack_name=STACK, region="us-east-1", parameters={"Environment": "prod", "ModelVersion": "v1"}
    )
    alias = Alias("live", v2)
    return alias, local_clients(settings, alias, [v1, v2], [promoted_deployment()])


def update(version: str, weights: dict) -> dict:
    routing = {"AdditionalVersionWeights": weights}
    return {"FunctionName": FUNCTION, "Name": "live", "FunctionVersion": version, "RoutingConfig": routing}


def code(exc: pytest.ExceptionInfo) -> str:
    return exc.value.response["Error"]["Code"]


def test_lambda_stand_in_answers_the_alias_versions_and_latest_as_deploy_stack_reads_them():
    """get_alias gives the primary and any weight; each version has its model and one CodeSha256;
    $LATEST is the newest; an unknown version is ResourceNotFoundException (version_info: None)."""
    v1, v2 = FakeVersion("1", "v1"), FakeVersion("2", "v2")
    alias = Alias("live", v1, v2, weight=0.1)
    lam = LocalLambda(alias, [v1, v2], code_sha256="sha")
    assert st.alias_state(lam, FUNCTION) == st.AliasState("1", {"2": 0.1})
    assert st.alias_state(lam, ARN) == st.AliasState("1", {"2": 0.1})  # an ARN names it too
    info = st.version_info(lam, FUNCTION, "1")
    assert (info.version, info.model, info.code_sha256) == ("1", "v1", "sha")
    assert info.parameters == {"ModelVersion": "v1", "MaxTextChars": "5000"}
    assert st.version_info(lam, FUNCTION, "$LATEST").model == "v2"
    assert st.version_info(lam, FUNCTION, "9") is None
    with pytest.raises(ClientError) as exc:
        lam.get_alias(FunctionName="other-function", Name="live")
    assert code(exc) == "ResourceNotFoundException"


def test_lambda_update_alias_repoints_the_rehearsal_alias_and_records_when():
    """update_alias(FunctionVersion=1, no weights) makes version 1 the alias's only version at once
    (Alias.set_primary) and records the switch; a weight to the primary itself is refused."""
    v1, v2 = FakeVersion("1", "v1"), FakeVersion("2", "v2")
    alias = Alias("live", v2)
    lam = LocalLambda(alias, [v1, v2], code_sha256="sha", clock=lambda: 42.0)
    answer = lam.update_alias(**update("1", {}))
    assert answer["FunctionVersion"] == "1" and alias.primary is v1 and alias.canary is None
    assert lam.updates == [{"at": 42.0, "version": "1", "weights": {}}]
    with pytest.raises(ClientError) as exc:
        lam.update_alias(**update("1", {"1": 0.1}))
    assert code(exc) == "InvalidParameterValueException"
    assert alias.primary is v1


def test_codedeploy_stand_in_gives_the_promoted_deployment_with_its_appspec():
    """The rehearsal's deployment is Succeeded, none is active, its AppSpec says 1 -> 2 (so
    rollback.previous_version finds 1), and stopping it answers DeploymentAlreadyCompletedException."""
    cd = LocalCodeDeploy("app", "group", FUNCTION, [promoted_deployment()])
    assert st.active_deployments(cd, "app", "group") == []
    assert rb.previous_version(cd, "app", "group", "2") == "1"
    assert st.shifted_versions(cd, "d-REHEARSAL7") == ("1", "2")
    with pytest.raises(ClientError) as exc:
        cd.stop_deployment(deploymentId="d-REHEARSAL7", autoRollbackEnabled=True)
    assert code(exc) == "DeploymentAlreadyCompletedException"
    with pytest.raises(ClientError) as exc:
        cd.list_deployments(applicationName="other", deploymentGroupName="group")
    assert code(exc) == "ApplicationDoesNotExistException"


def test_cloudformation_stand_in_records_the_update_and_says_what_it_would_change():
    """update_stack with the previous template records the request, applies the changed parameter and
    stays UPDATE_COMPLETE; describe_updates says "would update ModelVersion v2 -> v1"; a stack of
    another name does not exist (describe_stack: None)."""
    resources = [
        ("InferenceFunction", FUNCTION, "AWS::Lambda::Function"),
        ("ServerlessDeploymentApplication", "a", "AWS::CodeDeploy::Application"),
        ("InferenceFunctionDeploymentGroup", "g", "AWS::CodeDeploy::DeploymentGroup"),
    ]
    cfn = LocalCloudFormation(STACK, {"Environment": "prod", "ModelVersion": "v2"}, resources)
    stack = st.describe_stack(cfn, STACK)
    cfn.update_stack(**rb.reconcile_request(stack, {"ModelVersion": "v1"}))
    assert cfn.describe_updates() == "would update ModelVersion v2 -> v1"
    after = st.describe_stack(cfn, STACK)
    assert after.status == "UPDATE_COMPLETE" and after.parameters["ModelVersion"] == "v1"
    assert st.describe_stack(cfn, "hate-speech-uat") is None
    res = st.inference_resources(after, st.stack_resources(cfn, STACK))
    assert (res.function_name, res.application, res.deployment_group) == (FUNCTION, "a", "g")
    with pytest.raises(ClientError) as exc:
        cfn.update_stack(**rb.reconcile_request(after, {"ModelVersion": "v1"}))
    assert code(exc) == "ValidationError"  # no change: CloudFormation's "No updates are to be performed."


def test_the_rollback_controller_runs_to_done_over_the_stand_ins():
    """deploy.rollback.Rollback over local_clients after 1 -> 2 was promoted: target 1 (from the
    deployment's AppSpec), the alias moves to 1, the stack update is recorded, the watch sees
    UPDATE_COMPLETE at once: DONE, exit 0, no sleep."""
    v1, v2 = FakeVersion("1", "v1"), FakeVersion("2", "v2")
    alias, (cfn, lam, cd) = stack_of(v1, v2)
    assert cfn.parameters["ModelVersion"] == "v2"  # the stack holds the model rolled out
    lines: list[str] = []
    sleeps: list[float] = []
    controller = rb.Rollback("prod", STACK, rb.Clients(cfn, lam, cd), yes=True, out=lines.append)
    assert controller.run(sleep=sleeps.append) == rb.EXIT_OK
    assert controller.phase is rb.Phase.DONE and sleeps == []
    assert alias.primary is v1 and alias.canary is None
    assert [line.split(":", 1)[0] for line in lines][-2:] == ["RECONCILE", "WATCH"]
    assert cfn.describe_updates() == "would update ModelVersion v2 -> v1"


def test_package_sha256_is_stable_and_base64():
    """Every version of the rehearsal runs the same code: one CodeSha256, as Lambda prints it."""
    first = package_sha256()
    assert first == package_sha256() and len(first) == 44 and first.endswith("=")


def test_rollback_section_measures_the_switch_from_the_users_records():
    """--then-rollback's report section from live records: seconds to the switch and to version 2's
    last answer after the command, 5xx after the command, and only requests answered more than
    SWITCH_SETTLE_S after the switch counted as served after it (a request routed just before the switch
    may still be answered by version 2); probe records and records before the command are left out."""
    from canary.records import RequestRecord
    from emulator.rehearse import SWITCH_SETTLE_S, rollback_section

    def rec(version: str, at: float, status: int = 200, source: str = "live") -> RequestRecord:
        model = {"1": "v1", "2": "v2"}[version]
        probe_id = None if source == "live" else "p-1"
        return RequestRecord(version, model, 5.0, "neither", status, at, source, probe_id)

    run = {"ran": True, "state": "DONE", "exit_code": 0, "from_version": "2", "command_at": 100.0}
    run["switched_at"] = 100.25
    records = [
        rec("2", 99.0, status=502),  # before the command: not the rollback's
        rec("2", 100.3),  # routed before the switch, answered after it
        rec("1", 100.5),
        rec("2", 101.0, source="probe"),  # the probe calls versions directly, never the alias
        rec("1", 100.25 + SWITCH_SETTLE_S + 0.5),
        rec("1", 100.25 + SWITCH_SETTLE_S + 0.6, status=500),
    ]
    section = rollback_section(run, records)
    assert section["switch_s"] == 0.25
    assert section["last_answer_from_old_version_s"] == 0.3
    assert section["5xx"] == 1 and section["requests_after_command"] == 4
    assert section["served_after_switch"] == {"1": {"models": {"v1": 2}, "requests": 2, "5xx": 1}}
    assert "command_at" not in section and "switched_at" not in section
    skipped = {"ran": False, "state": None, "reason": "nothing to roll back"}
    assert rollback_section(skipped, records) == skipped
