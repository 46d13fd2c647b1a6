"""`make rollout`: deploy.rollout's refusals and the sam commands it runs (botocore Stubber, no network)."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber

from canary.manifests import trained_versions
from deploy import rollout as ro
from deploy import stack as st

REGION = "us-east-1"
STACK = "hate-speech-prod"
FUNCTION = "hate-speech-prod-infer"
APP = "hate-speech-prod-ServerlessDeploymentApplication-X"
GROUP = "hate-speech-prod-InferenceFunctionDeploymentGroup-Y"


def client(service: str):
    return boto3.client(
        service, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )


class Scene:
    def __init__(self) -> None:
        self.cfn, self.lam, self.cd = client("cloudformation"), client("lambda"), client("codedeploy")
        self.stubs = [Stubber(self.cfn), Stubber(self.lam), Stubber(self.cd)]
        self.commands: list[list[str]] = []

    def __enter__(self) -> Scene:
        for stub in self.stubs:
            stub.activate()
        return self

    def __exit__(self, *exc) -> None:
        for stub in self.stubs:
            stub.deactivate()

    def clients(self):
        return self.cfn, self.lam, self.cd

    def runner(self, status: int = 0):
        def run(command):
            self.commands.append(list(command))
            return status

        return run

    def stack(self, status: str = "UPDATE_COMPLETE", environment: str = "prod") -> None:
        answer = {
            "Stacks": [
                {
                    "StackName": STACK,
                    "CreationTime": datetime(2026, 11, 1, tzinfo=UTC),
                    "StackStatus": status,
                    "Parameters": [
                        {"ParameterKey": "Environment", "ParameterValue": environment},
                        {"ParameterKey": "ModelVersion", "ParameterValue": "v1"},
                    ],
                    "Outputs": [{"OutputKey": "InferenceFunctionName", "OutputValue": FUNCTION}],
                }
            ]
        }
        self.stubs[0].add_response("describe_stacks", answer, {"StackName": STACK})

    def resources(self) -> None:
        rows = [
            {
                "LogicalResourceId": logical,
                "PhysicalResourceId": physical,
                "ResourceType": kind,
                "LastUpdatedTimestamp": datetime(2026, 11, 30, tzinfo=UTC),
                "ResourceStatus": "UPDATE_COMPLETE",
            }
            for logical, physical, kind in (
                ("InferenceFunction", FUNCTION, "AWS::Lambda::Function"),
                ("ServerlessDeploymentApplication", APP, "AWS::CodeDeploy::Application"),
                ("InferenceFunctionDeploymentGroup", GROUP, "AWS::CodeDeploy::DeploymentGroup"),
            )
        ]
        self.stubs[0].add_response(
            "list_stack_resources", {"StackResourceSummaries": rows}, {"StackName": STACK}
        )

    def active(self, ids: list[str]) -> None:
        expected = {
            "applicationName": APP,
            "deploymentGroupName": GROUP,
            "includeOnlyStatuses": list(st.ACTIVE_STATUSES),
        }
        self.stubs[2].add_response("list_deployments", {"deployments": ids}, expected)

    def live(self, version: str, model: str) -> None:
        self.stubs[1].add_response(
            "get_alias",
            {"Name": "live", "FunctionVersion": version, "RoutingConfig": {"AdditionalVersionWeights": {}}},
            {"FunctionName": FUNCTION, "Name": "live"},
        )
        self.stubs[1].add_response(
            "get_function_configuration",
            {"Version": version, "CodeSha256": "sha", "Environment": {"Variables": {"MODEL_VERSION": model}}},
            {"FunctionName": FUNCTION, "Qualifier": version},
        )


def rollout(scene: Scene, model: str = "v2", status: int = 0) -> int:
    return ro.main(
        ["--env", "prod", "--model", model, "--sam", "sam"],
        clients=scene.clients,
        runner=scene.runner(status),
    )


def test_rollout_prints_the_change_then_builds_and_deploys_with_every_parameter(capsys):
    """v1 live on version 6, MODEL=v2: one line says stack, from version/model and to model, then sam
    build and sam deploy run with samconfig's Environment=prod AND ModelVersion=v2 in one list."""
    with Scene() as scene:
        scene.stack()
        scene.resources()
        scene.active([])
        scene.live("6", "v1")
        assert rollout(scene) == 0
    assert scene.commands == [
        ["sam", "build", "--build-in-source"],
        [
            "sam",
            "deploy",
            "--config-env",
            "prod",
            "--parameter-overrides",
            "Environment=prod",
            "ModelVersion=v2",
        ],
    ]
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith(
        f"rollout: stack {STACK}, function {FUNCTION}: live is version 6 (model v1) -> model v2"
    )


def test_rollout_refuses_a_stack_that_does_not_exist(capsys):
    """No stack: a rollout would create one from defaults; say `make deploy ENV=prod` first, build nothing."""
    with Scene() as scene:
        scene.stubs[0].add_client_error(
            "describe_stacks", "ValidationError", f"Stack with id {STACK} does not exist", 400
        )
        assert rollout(scene) == 2
    assert scene.commands == []
    assert capsys.readouterr().err == (
        f"error: stack {STACK} does not exist: create it first with `make deploy ENV=prod`\n"
    )


def test_rollout_refuses_the_model_already_live(capsys):
    """v2 already behind live: sam would deploy nothing and exit 0, so refuse, naming the version."""
    with Scene() as scene:
        scene.stack()
        scene.resources()
        scene.active([])
        scene.live("7", "v2")
        assert rollout(scene, "v2") == 2
    assert scene.commands == []
    assert "already serves model v2 (version 7): nothing to roll out" in capsys.readouterr().err


def test_rollout_refuses_when_the_stack_already_names_the_model_but_live_serves_another(capsys):
    """The stack says ModelVersion=v1 but live serves version 9 with v2 (the alias moved by hand, the
    stack not reconciled): `make rollout MODEL=v1` would deploy nothing; refuse, say how to reconcile."""
    with Scene() as scene:
        scene.stack()  # ModelVersion=v1 on the stack
        scene.resources()
        scene.active([])
        scene.live("9", "v2")
        assert rollout(scene, "v1") == 2
    err = capsys.readouterr().err
    assert "already names model v1 but live serves version 9 (model v2)" in err
    assert "make rollback ENV=prod TO=9" in err and scene.commands == []


def test_rollout_refuses_a_model_models_does_not_ship(capsys):
    """MODEL=v9: refused before any AWS call, listing the models/ folders."""
    with Scene() as scene:
        assert rollout(scene, "v9") == 2
    assert capsys.readouterr().err == "error: MODEL=v9 is not in models/; use one of v1, v2, v3\n"


def test_rollout_refuses_while_a_deployment_is_in_progress(capsys):
    """A CodeDeploy deployment of the group is running: refuse, naming it and the way out."""
    with Scene() as scene:
        scene.stack()
        scene.resources()
        scene.active(["d-RUN"])
        assert rollout(scene) == 2
    err = capsys.readouterr().err
    assert "d-RUN" in err and "in progress" in err and scene.commands == []


def test_rollout_refuses_a_busy_stack(capsys):
    """A stack update in progress: refuse before reading anything else."""
    with Scene() as scene:
        scene.stack("UPDATE_IN_PROGRESS")
        assert rollout(scene) == 2
    assert "is UPDATE_IN_PROGRESS" in capsys.readouterr().err


def test_rollout_refuses_a_stack_whose_environment_differs_from_samconfig(capsys):
    """hate-speech-prod created with Environment=dev (the old bug): a rollout must not also flip it."""
    with Scene() as scene:
        scene.stack(environment="dev")
        assert rollout(scene) == 2
    err = capsys.readouterr().err
    assert "Environment is 'dev' on the stack, 'prod' in samconfig" in err
    assert "make deploy ENV=prod" in err


def test_a_failed_build_stops_before_the_deploy():
    """sam build fails: its status comes back and sam deploy never runs."""
    with Scene() as scene:
        scene.stack()
        scene.resources()
        scene.active([])
        scene.live("6", "v1")
        assert rollout(scene, status=3) == 3
    assert [c[1] for c in scene.commands] == ["build"]


def test_rollout_parameters_put_the_model_last_over_any_samconfig_model():
    """Pure: samconfig's list plus ModelVersion, which wins over a ModelVersion in samconfig."""
    got = ro.rollout_parameters({"Environment": "prod", "ModelVersion": "v1", "QuotaLimit": "5"}, "v2")
    assert got == {"Environment": "prod", "QuotaLimit": "5", "ModelVersion": "v2"}


def test_samconfig_overrides_of_each_environment():
    """Read from samconfig.toml: prod has Environment=prod; local is refused (never deployed)."""
    assert st.samconfig_overrides("prod") == {"Environment": "prod"}
    assert st.samconfig_overrides("uat") == {"Environment": "uat"}
    with pytest.raises(st.PreflightError, match="not deployed"):
        st.samconfig_overrides("local")


def test_model_versions_are_the_models_folders_with_a_manifest_in_number_order(tmp_path):
    """v10 sorts after v2; a folder without a manifest or not named vN is not a model."""
    for name in ("v2", "v10", "v1", "drafts"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text("{}")
    (tmp_path / "v3").mkdir()
    assert trained_versions(tmp_path) == ("v1", "v2", "v10")
    assert trained_versions() == ("v1", "v2", "v3")
    with pytest.raises(FileNotFoundError, match="no such folder"):
        trained_versions(tmp_path / "modles")  # mistyped: an error, not "no model trained"
