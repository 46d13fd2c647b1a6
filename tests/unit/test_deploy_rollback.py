"""`make rollback`: deploy.rollback driven tick by tick against botocore Stubbers (no network)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber

from deploy import rollback as rb
from deploy import stack as st

REGION = "us-east-1"
STACK = "hate-speech-prod"
FUNCTION = "hate-speech-prod-infer"
APP = "hate-speech-prod-ServerlessDeploymentApplication-X"
GROUP = "hate-speech-prod-InferenceFunctionDeploymentGroup-Y"
PARAMS = {"Environment": "prod", "AppName": "hate-speech", "ModelVersion": "v2", "MaxTextChars": "5000"}
CODE = "sha-of-the-package"


def client(service: str):
    return boto3.client(
        service, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )


def appspec(current: str, target: str) -> str:
    return st.appspec(FUNCTION, "live", current, target)


def deployment(deployment_id: str, current: str, target: str, minute: int) -> dict:
    return {
        "deploymentInfo": {
            "deploymentId": deployment_id,
            "createTime": datetime(2026, 11, 30, 6, minute, tzinfo=UTC),
            "revision": {
                "revisionType": "AppSpecContent",
                "appSpecContent": {"content": appspec(current, target)},
            },
        }
    }


class Scene:
    """Three stubbed clients and the calls a scenario expects, in order; records every operation."""

    def __init__(self) -> None:
        self.cfn, self.lam, self.cd = client("cloudformation"), client("lambda"), client("codedeploy")
        self.stubs = {name: Stubber(c) for name, c in (("cfn", self.cfn), ("lam", self.lam), ("cd", self.cd))}
        self.calls: list[str] = []
        for c in (self.cfn, self.lam, self.cd):
            c.meta.events.register("before-call.*.*", self._record)
        self.lines: list[str] = []

    def _record(self, model, **kwargs) -> None:
        self.calls.append(model.name)

    def clients(self) -> rb.Clients:
        return rb.Clients(self.cfn, self.lam, self.cd)

    def controller(self, **kwargs) -> rb.Rollback:
        return rb.Rollback("prod", STACK, self.clients(), out=self.lines.append, **kwargs)

    def __enter__(self) -> Scene:
        for stub in self.stubs.values():
            stub.activate()
        return self

    def __exit__(self, *exc) -> None:
        for stub in self.stubs.values():
            stub.deactivate()

    def done(self) -> None:
        for stub in self.stubs.values():
            stub.assert_no_pending_responses()

    # ------------------------------------------------------------ CloudFormation
    def stack(self, status: str = "UPDATE_COMPLETE", params: dict | None = None) -> None:
        parameters = [{"ParameterKey": k, "ParameterValue": v} for k, v in (params or PARAMS).items()]
        answer = {
            "Stacks": [
                {
                    "StackName": STACK,
                    "CreationTime": datetime(2026, 11, 1, tzinfo=UTC),
                    "StackStatus": status,
                    "Parameters": parameters,
                    "Outputs": [{"OutputKey": "InferenceFunctionName", "OutputValue": FUNCTION}],
                }
            ]
        }
        self.stubs["cfn"].add_response("describe_stacks", answer, {"StackName": STACK})

    def no_stack(self) -> None:
        self.stubs["cfn"].add_client_error(
            "describe_stacks", "ValidationError", f"Stack with id {STACK} does not exist", 400
        )

    def resources(self) -> None:
        def row(logical: str, physical: str, kind: str) -> dict:
            return {
                "LogicalResourceId": logical,
                "PhysicalResourceId": physical,
                "ResourceType": kind,
                "LastUpdatedTimestamp": datetime(2026, 11, 30, tzinfo=UTC),
                "ResourceStatus": "UPDATE_COMPLETE",
            }

        rows = [
            row("InferenceFunction", FUNCTION, "AWS::Lambda::Function"),
            row("ServerlessDeploymentApplication", APP, "AWS::CodeDeploy::Application"),
            row("InferenceFunctionDeploymentGroup", GROUP, "AWS::CodeDeploy::DeploymentGroup"),
        ]
        self.stubs["cfn"].add_response(
            "list_stack_resources", {"StackResourceSummaries": rows}, {"StackName": STACK}
        )

    # ------------------------------------------------------------ Lambda
    def alias(self, version: str, weights: dict | None = None) -> None:
        answer = {
            "AliasArn": f"arn:aws:lambda:{REGION}:123456789012:function:{FUNCTION}:live",
            "Name": "live",
            "FunctionVersion": version,
            "RoutingConfig": {"AdditionalVersionWeights": weights or {}},
        }
        self.stubs["lam"].add_response("get_alias", answer, {"FunctionName": FUNCTION, "Name": "live"})

    def version(self, version: str, model: str | None = None, code: str = CODE) -> None:
        expected = {"FunctionName": FUNCTION, "Qualifier": version}
        if model is None:
            self.stubs["lam"].add_client_error(
                "get_function_configuration", "ResourceNotFoundException", "Function not found", 404, expected
            )
            return
        answer = {
            "FunctionName": FUNCTION,
            "Version": version,
            "CodeSha256": code,
            "Description": f"model {model}, max 5000 chars",
            "Environment": {
                "Variables": {"MODEL_VERSION": model, "MAX_TEXT_CHARS": "5000", "LOG_LEVEL": "INFO"}
            },
        }
        self.stubs["lam"].add_response("get_function_configuration", answer, expected)

    def update_alias(self, version: str) -> None:
        expected = {
            "FunctionName": FUNCTION,
            "Name": "live",
            "FunctionVersion": version,
            "RoutingConfig": {"AdditionalVersionWeights": {}},
        }
        self.stubs["lam"].add_response("update_alias", {"FunctionVersion": version}, expected)

    # ------------------------------------------------------------ CodeDeploy
    def active(self, ids: list[str]) -> None:
        expected = {
            "applicationName": APP,
            "deploymentGroupName": GROUP,
            "includeOnlyStatuses": list(st.ACTIVE_STATUSES),
        }
        self.stubs["cd"].add_response("list_deployments", {"deployments": ids}, expected)

    def succeeded(self, ids: list[str]) -> None:
        expected = {
            "applicationName": APP,
            "deploymentGroupName": GROUP,
            "includeOnlyStatuses": ["Succeeded"],
        }
        self.stubs["cd"].add_response("list_deployments", {"deployments": ids}, expected)

    def get_deployment(self, deployment_id: str, current: str, target: str, minute: int = 0) -> None:
        self.stubs["cd"].add_response(
            "get_deployment",
            deployment(deployment_id, current, target, minute),
            {"deploymentId": deployment_id},
        )


def promoted(scene: Scene) -> None:
    """CHECK after v1 (version 6) -> v2 (version 7) was promoted: history names 6 as the previous."""
    scene.stack()
    scene.resources()
    scene.alias("7")
    scene.active([])
    scene.succeeded(["d-OLD", "d-NEW"])
    scene.get_deployment("d-OLD", "5", "6", minute=1)
    scene.get_deployment("d-NEW", "6", "7", minute=30)
    scene.version("6", "v1")
    scene.version("7", "v2")


def test_plain_rollback_after_a_promotion_goes_back_and_reconciles_the_stack():
    """v1 -> v2 promoted (6 -> 7): rollback points live at 6 at once, then sets the stack's ModelVersion
    back to v1 with the previous template, every other parameter kept; one line per phase, exit 0."""
    with Scene() as scene:
        promoted(scene)
        scene.alias("7")
        scene.update_alias("6")
        scene.stack()
        scene.version("$LATEST", "v2")  # same package: only the model changed
        expected_update = {
            "StackName": STACK,
            "UsePreviousTemplate": True,
            "Parameters": [
                {"ParameterKey": "Environment", "UsePreviousValue": True},
                {"ParameterKey": "AppName", "UsePreviousValue": True},
                {"ParameterKey": "ModelVersion", "ParameterValue": "v1"},
                {"ParameterKey": "MaxTextChars", "UsePreviousValue": True},
            ],
            "Capabilities": ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
        }
        scene.stubs["cfn"].add_response("update_stack", {"StackId": "arn:stack"}, expected_update)
        scene.stack("UPDATE_COMPLETE", {**PARAMS, "ModelVersion": "v1"})
        scene.alias("8")
        scene.version("8", "v1")  # the reconcile's new version: the target's model and code
        controller = scene.controller(yes=True)
        phases = [controller.tick() for _ in range(6)]
        scene.done()
    assert phases == [
        rb.Phase.CONFIRM,
        rb.Phase.STOP_DEPLOYMENT,
        rb.Phase.SHIFT_ALIAS,
        rb.Phase.RECONCILE,
        rb.Phase.WATCH,
        rb.Phase.DONE,
    ]
    assert controller.exit_code == rb.EXIT_OK
    assert [line.split(":", 1)[0] for line in scene.lines] == [
        "CHECK",
        "CONFIRM",
        "STOP_DEPLOYMENT",
        "SHIFT_ALIAS",
        "RECONCILE",
        "WATCH",
    ]
    assert "version 7 -> version 6 (model v1)" in scene.lines[3]
    assert "ModelVersion v2 -> v1" in scene.lines[4]


def test_rollback_during_a_canary_stops_the_deployment_and_clears_the_canary_weight():
    """A canary 7 -> 8 in flight: the target is the deployment's CurrentVersion (7, the alias's baseline);
    the deployment is stopped with auto-rollback, the weight cleared, and the reconcile waits for
    CloudFormation's own rollback, after which the stack already names v1: nothing to update."""
    with Scene() as scene:
        scene.stack()
        scene.resources()
        scene.alias("7", {"8": 0.1})
        scene.active(["d-RUN"])
        scene.get_deployment("d-RUN", "7", "8")
        scene.version("7", "v1")
        scene.version("7", "v1")
        stop = {"deploymentId": "d-RUN", "autoRollbackEnabled": True}
        scene.stubs["cd"].add_response(
            "stop_deployment", {"status": "Pending", "statusMessage": "stopping"}, stop
        )
        scene.alias("7", {"8": 0.1})
        scene.update_alias("7")
        scene.stack("UPDATE_ROLLBACK_IN_PROGRESS", {**PARAMS, "ModelVersion": "v2"})
        scene.stack("UPDATE_ROLLBACK_COMPLETE", {**PARAMS, "ModelVersion": "v1"})
        scene.version("$LATEST", "v1")
        controller = scene.controller(yes=True, clock=lambda: 0.0)
        sleeps: list[float] = []
        code = controller.run(sleep=sleeps.append, interval=5.0)
        scene.done()
    assert code == rb.EXIT_OK and controller.phase is rb.Phase.DONE
    assert "stopped deployment d-RUN with auto-rollback" in "\n".join(scene.lines)
    assert "version 7 + canary {'8': 0.1} -> version 7" in "\n".join(scene.lines)
    assert sleeps == [5.0]  # one wait while the stack rolled back
    assert "nothing to reconcile" in scene.lines[-1]
    assert "UpdateStack" not in scene.calls


def test_rollback_to_another_version_during_a_canary_is_refused():
    """A canary 7 -> 8 in flight and --to 5: stopping it returns the alias to 7 on CodeDeploy's and
    CloudFormation's own, which would undo the shift to 5: refuse before changing anything."""
    with Scene() as scene:
        scene.stack()
        scene.resources()
        scene.alias("7", {"8": 0.1})
        scene.active(["d-RUN"])
        scene.get_deployment("d-RUN", "7", "8")
        controller = scene.controller(to="5", yes=True)
        assert controller.tick() is rb.Phase.FAILED
        scene.done()
    assert controller.exit_code == rb.EXIT_FAILED
    assert "roll back without --to first, then --to 5" in scene.lines[0]
    assert "StopDeployment" not in scene.calls


def test_a_deployment_that_completes_before_the_stop_does_not_stop_the_rollback():
    """stop_deployment answers DeploymentAlreadyCompletedException (it ended after CHECK): say so and
    still shift the alias."""
    with Scene() as scene:
        scene.stack()
        scene.resources()
        scene.alias("7", {"8": 0.1})
        scene.active(["d-RUN"])
        scene.get_deployment("d-RUN", "7", "8")
        scene.version("7", "v1")
        scene.version("7", "v1")
        scene.stubs["cd"].add_client_error(
            "stop_deployment", "DeploymentAlreadyCompletedException", "done", 400
        )
        scene.alias("8")
        scene.update_alias("7")
        controller = scene.controller(yes=True)
        phases = [controller.tick() for _ in range(4)]
        scene.done()
    assert phases[-1] is rb.Phase.RECONCILE
    assert "STOP_DEPLOYMENT: deployment d-RUN had already completed" in scene.lines
    assert "version 8 -> version 7" in scene.lines[-1]


def test_rollback_while_alarms_are_in_alarm_reads_no_alarm_and_creates_no_deployment():
    """Alarms in ALARM stop CodeDeploy deployments, never this rollback: the whole run talks to
    CloudFormation, Lambda and CodeDeploy's read APIs only (no DescribeAlarms, no CreateDeployment),
    and the alias moves with one UpdateAlias."""
    with Scene() as scene:
        promoted(scene)
        scene.alias("7")
        scene.update_alias("6")
        scene.stack()
        scene.version("$LATEST", "v2")
        scene.stubs["cfn"].add_response("update_stack", {"StackId": "arn:stack"})
        scene.stack("UPDATE_COMPLETE", {**PARAMS, "ModelVersion": "v1"})
        scene.alias("6")
        code = scene.controller(yes=True).run(sleep=lambda s: None)
        scene.done()
    assert code == rb.EXIT_OK
    assert scene.calls.count("UpdateAlias") == 1
    assert not {"DescribeAlarms", "CreateDeployment", "ContinueDeployment"} & set(scene.calls)


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def reconciled(scene: Scene) -> None:
    """Everything up to RECONCILE's update_stack after v1 (6) -> v2 (7) was promoted: the alias moved
    to 6, and the stack is asked for ModelVersion v1 (publishes 8, which CodeDeploy shifts to)."""
    promoted(scene)
    scene.alias("7")
    scene.update_alias("6")
    scene.stack()
    scene.version("$LATEST", "v2")
    scene.stubs["cfn"].add_response("update_stack", {"StackId": "arn:stack"})


def to_watch(controller: rb.Rollback) -> None:
    for _ in range(5):
        controller.tick()
    assert controller.phase is rb.Phase.WATCH, controller


def test_watch_reconcile_completes_cleanly():
    """The reconcile's canary runs 6 -> 8 (8: model v1, same code): a 10 % weight to 8 is the target's
    model and code, so nothing is touched; UPDATE_COMPLETE with the alias on 8: DONE, exit 0, the final
    version named; one sleep of the run's interval while the stack was busy."""
    with Scene() as scene:
        reconciled(scene)
        scene.stack("UPDATE_IN_PROGRESS", {**PARAMS, "ModelVersion": "v1"})
        scene.alias("6", {"8": 0.1})
        scene.version("8", "v1")
        scene.stack("UPDATE_COMPLETE", {**PARAMS, "ModelVersion": "v1"})
        scene.alias("8")
        sleeps: list[float] = []
        code = scene.controller(yes=True, clock=FakeClock()).run(sleep=sleeps.append, interval=5.0)
        scene.done()
    assert code == rb.EXIT_OK
    assert sleeps == [5.0]
    assert scene.calls.count("UpdateAlias") == 1  # the SHIFT_ALIAS one only
    assert scene.lines[-1].startswith("WATCH: stack hate-speech-prod UPDATE_COMPLETE")
    assert "is on version 8 (model v1), the code of version 6: rolled back and reconciled" in scene.lines[-1]


def test_watch_codedeploy_puts_the_bad_version_back_as_primary():
    """CloudFormation's stale record of the alias names 7: the alias is found on 7 (model v2) as
    primary; the watch points it back at 6 at once, says it removed 7, and even though the stack then
    completes, the run ends with EXIT_DRIFT and says the record is stale and what to do."""
    with Scene() as scene:
        reconciled(scene)
        scene.stack("UPDATE_IN_PROGRESS", {**PARAMS, "ModelVersion": "v1"})
        scene.alias("7")
        scene.version("7", "v2")
        scene.update_alias("6")
        scene.stack("UPDATE_COMPLETE", {**PARAMS, "ModelVersion": "v1"})
        scene.alias("6")
        controller = scene.controller(yes=True, clock=FakeClock())
        code = controller.run(sleep=lambda s: None)
        scene.done()
    assert code == rb.EXIT_DRIFT == 4
    assert controller.reshifts == ["7"]
    removed = [line for line in scene.lines if "removed it," in line]
    assert removed == [
        f"WATCH: {FUNCTION}:live served version 7 as primary (model v2), not the target's model and code: "
        "removed it, re-shifted to version 6 (model v1), all traffic"
    ]
    assert "record of the alias is stale after a manual rollback" in scene.lines[-1]
    assert "make rollback ENV=prod TO=6" in scene.lines[-1] and "uat" in scene.lines[-1]


def test_watch_a_ten_percent_weight_to_the_bad_version_is_removed():
    """CodeDeploy canaries 6 -> 7 (the version rolled back from) with 10 %: the weight is removed at
    the first look (update_alias to 6, no weights), and the run ends with EXIT_DRIFT."""
    with Scene() as scene:
        reconciled(scene)
        scene.stack("UPDATE_IN_PROGRESS", {**PARAMS, "ModelVersion": "v1"})
        scene.alias("6", {"7": 0.1})
        scene.version("7", "v2")
        scene.update_alias("6")
        scene.stack("UPDATE_IN_PROGRESS", {**PARAMS, "ModelVersion": "v1"})
        scene.alias("6")
        scene.stack("UPDATE_COMPLETE", {**PARAMS, "ModelVersion": "v1"})
        scene.alias("6")
        controller = scene.controller(yes=True, clock=FakeClock())
        code = controller.run(sleep=lambda s: None)
        scene.done()
    assert code == rb.EXIT_DRIFT
    assert scene.calls.count("UpdateAlias") == 2
    assert any("served version 7 with weight 10% (model v2)" in line for line in scene.lines)
    assert "put version 7 back on the alias and the watch removed it" in scene.lines[-1]


def test_watch_the_stack_update_rolls_back():
    """The reconcile's deployment fails (the PreTraffic hook refuses a shift from a version the alias
    no longer serves) and CloudFormation rolls back; the alias stayed on 6: no re-shift, but the stack
    still holds v2, so EXIT_DRIFT with the status and why."""
    with Scene() as scene:
        reconciled(scene)
        scene.stack("UPDATE_ROLLBACK_IN_PROGRESS")
        scene.alias("6")
        scene.stack("UPDATE_ROLLBACK_COMPLETE")
        scene.alias("6")
        controller = scene.controller(yes=True, clock=FakeClock())
        code = controller.run(sleep=lambda s: None)
        scene.done()
    assert code == rb.EXIT_DRIFT
    assert controller.reshifts == []
    assert scene.lines[-1].startswith("WATCH: stack hate-speech-prod ended UPDATE_ROLLBACK_COMPLETE")
    assert "the update did not complete" in scene.lines[-1]
    assert "is on version 6 (model v1)" in scene.lines[-1]


def test_watch_times_out():
    """The stack stays UPDATE_IN_PROGRESS: tick by tick on a fake clock, the watch goes on up to
    WATCH_TIMEOUT_S after the update and then ends with EXIT_DRIFT and the command to resume."""
    clock = FakeClock()
    with Scene() as scene:
        reconciled(scene)
        for _ in range(3):
            scene.stack("UPDATE_IN_PROGRESS", {**PARAMS, "ModelVersion": "v1"})
            scene.alias("6")
        controller = scene.controller(yes=True, clock=clock)
        to_watch(controller)
        clock.now = 5.0
        assert controller.tick() is rb.Phase.WATCH
        clock.now = rb.WATCH_TIMEOUT_S
        assert controller.tick() is rb.Phase.WATCH
        clock.now = rb.WATCH_TIMEOUT_S + 5.0
        assert controller.tick() is rb.Phase.FAILED
        scene.done()
    assert controller.exit_code == rb.EXIT_DRIFT
    assert "still UPDATE_IN_PROGRESS after 1200 s" in scene.lines[-1]
    assert "`make rollback ENV=prod TO=6`" in scene.lines[-1]


def test_rollback_to_a_version_that_does_not_exist_changes_nothing():
    """--to 99: CHECK finds no such version and fails with how to list them; nothing is stopped or moved."""
    with Scene() as scene:
        scene.stack()
        scene.resources()
        scene.alias("7")
        scene.active([])
        scene.version("99")
        controller = scene.controller(to="99", yes=True)
        assert controller.tick() is rb.Phase.FAILED
        scene.done()
    assert controller.exit_code == rb.EXIT_FAILED
    assert scene.lines == [
        f"CHECK: version 99 of {FUNCTION} does not exist; list them: "
        f"aws lambda list-versions-by-function --function-name {FUNCTION}"
    ]
    assert "UpdateAlias" not in scene.calls


def test_rollback_with_no_previous_version_known_says_to_pass_to():
    """No succeeded deployment targets the live version (e.g. the stack's first): fail, naming --to."""
    with Scene() as scene:
        scene.stack()
        scene.resources()
        scene.alias("1")
        scene.active([])
        scene.succeeded([])
        controller = scene.controller(yes=True)
        assert controller.tick() is rb.Phase.FAILED
        scene.done()
    assert controller.exit_code == rb.EXIT_FAILED
    assert "no previous version known" in scene.lines[0] and "--to N" in scene.lines[0]


def test_a_code_rollback_moves_the_alias_but_leaves_the_stack_and_exits_with_the_drift_code():
    """Version 6 runs other code than the stack's $LATEST: the alias is back on 6, no update_stack
    (the previous template would redeploy the new code), and the exit code is EXIT_DRIFT."""
    with Scene() as scene:
        promoted(scene)
        scene.alias("7")
        scene.update_alias("6")
        scene.stack()
        scene.version("$LATEST", "v2", code="sha-of-the-new-package")
        controller = scene.controller(yes=True)
        code = controller.run(sleep=lambda s: None)
        scene.done()
    assert code == rb.EXIT_DRIFT == 4
    assert "UpdateStack" not in scene.calls
    assert "alias is back on version 6" in scene.lines[-1]
    assert "git checkout <previous commit> && make deploy ENV=prod" in scene.lines[-1]


def test_rollback_of_a_stack_that_does_not_exist_exits_2():
    """No stack: one CHECK line saying so, exit 2, no Lambda call."""
    with Scene() as scene:
        scene.no_stack()
        controller = scene.controller(yes=True)
        code = controller.run(sleep=lambda s: None)
        scene.done()
    assert code == rb.EXIT_USAGE
    assert scene.lines == [f"CHECK: stack {STACK} does not exist: there is nothing to roll back"]
    assert scene.calls == ["DescribeStacks"]


def test_rollback_not_confirmed_changes_nothing():
    """Without --yes the operator is asked; a no stops before any stop_deployment or update_alias."""
    asked: list[str] = []
    with Scene() as scene:
        promoted(scene)
        controller = scene.controller(confirm=lambda q: asked.append(q) or False)
        code = controller.run(sleep=lambda s: None)
        scene.done()
    assert code == rb.EXIT_FAILED
    assert asked == [f"point {FUNCTION}:live at version 6? [y/N] "]
    assert "UpdateAlias" not in scene.calls and "StopDeployment" not in scene.calls


def test_a_stack_that_stays_busy_ends_with_the_drift_code_and_says_how_to_finish():
    """The alias moved but the stack never became stable: give up after STACK_WAIT_S with EXIT_DRIFT
    and the command that reconciles later (make rollback ... TO=6)."""
    now = iter([0.0, rb.STACK_WAIT_S + 1])
    with Scene() as scene:
        promoted(scene)
        scene.alias("7")
        scene.update_alias("6")
        scene.stack("UPDATE_IN_PROGRESS")
        scene.stack("UPDATE_IN_PROGRESS")
        code = scene.controller(yes=True, clock=lambda: next(now)).run(sleep=lambda s: None)
        scene.done()
    assert code == rb.EXIT_DRIFT
    assert "make rollback ENV=prod TO=6" in scene.lines[-1]


def test_reconcile_request_keeps_every_other_parameter_and_the_template():
    """update_stack's arguments: previous template, the changed parameter, UsePreviousValue for the rest."""
    stack = st.Stack(STACK, "UPDATE_COMPLETE", {"Environment": "prod", "ModelVersion": "v2"}, {})
    assert rb.reconcile_request(stack, {"ModelVersion": "v1"}) == {
        "StackName": STACK,
        "UsePreviousTemplate": True,
        "Parameters": [
            {"ParameterKey": "Environment", "UsePreviousValue": True},
            {"ParameterKey": "ModelVersion", "ParameterValue": "v1"},
        ],
        "Capabilities": ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
    }


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (appspec("3", "4"), ("3", "4")),
        (
            json.dumps(
                {
                    "resources": [
                        {
                            "fn": {
                                "type": "AWS::Lambda::Function",
                                "properties": {"currentversion": "1", "targetversion": "2"},
                            }
                        }
                    ]
                }
            ),
            ("1", "2"),
        ),
        ("not json", None),
        (json.dumps({"Resources": []}), None),
    ],
)
def test_appspec_versions_reads_both_spellings_and_rejects_the_rest(content, expected):
    """SAM's capitalised AppSpec and the reference's lower-case one both give (current, target)."""
    info = {"revision": {"revisionType": "AppSpecContent", "appSpecContent": {"content": content}}}
    assert st.appspec_versions(info) == expected


def test_main_refuses_a_to_that_is_not_a_version_number(capsys):
    """--to latest is refused before any AWS call (exit 2, one line)."""
    assert (
        rb.main(["--env", "prod", "--to", "$LATEST"], clients=rb.Clients(None, None, None)) == rb.EXIT_USAGE
    )
    assert capsys.readouterr().err.strip() == "error: --to '$LATEST' is not a published version number"


def test_main_refuses_the_local_environment(capsys):
    """ENV=local is the offline stack: exit 2 with samconfig's one-line reason."""
    assert rb.main(["--env", "local"], clients=rb.Clients(None, None, None)) == rb.EXIT_USAGE
    assert "not deployed" in capsys.readouterr().err
