"""What `make rollout`, `make rollback` and `make prune-versions` read about a deployed stack.

One place for: the models the package ships (models/vN), samconfig.toml's parameter overrides of an
environment, the stack's parameters and status, its inference function and CodeDeploy deployment
group, the `live` alias, a version's model and code, and the versions a CodeDeploy deployment
shifts between (its AppSpec). Every AWS client is passed in, so tests use botocore's Stubber.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

# Re-exported: the tools catch PreflightError and name stacks through the one samconfig reader.
from deploy.aws_preflight import SAMCONFIG, deployed_environment
from deploy.aws_preflight import PreflightError as PreflightError
from deploy.aws_preflight import stack_name as stack_name

ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = ROOT / "models"
ALIAS = "live"
INFERENCE_FUNCTION = "InferenceFunction"  # the template's logical id
# A deployment that may still move the alias (CodeDeploy's DeploymentStatus values).
ACTIVE_STATUSES = ("Created", "Queued", "InProgress", "Baking", "Ready")
# The version's environment variables that come from stack parameters (template.yaml).
VERSION_PARAMETERS = {"MODEL_VERSION": "ModelVersion", "MAX_TEXT_CHARS": "MaxTextChars"}


class DeployError(Exception):
    """Why a rollout, rollback or prune stops, in one line."""


def samconfig_overrides(env: str, samconfig: Path = SAMCONFIG) -> dict[str, str]:
    """The environment's deploy parameter_overrides, as stack.read_samconfig reads them."""
    # The preflight's one-line errors for an unknown or local-only environment.
    return dict(deployed_environment(env, samconfig).parameter_overrides)


@dataclass(frozen=True)
class Stack:
    """describe_stacks' answer for one stack, reduced to what the tools use."""

    name: str
    status: str
    parameters: dict[str, str]
    outputs: dict[str, str]

    @property
    def busy(self) -> bool:
        """CloudFormation refuses another update while one is in progress."""
        return self.status.endswith("_IN_PROGRESS")


def describe_stack(cloudformation: Any, name: str) -> Stack | None:
    """The stack, or None when it does not exist (CloudFormation answers ValidationError)."""
    try:
        stacks = cloudformation.describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if error.get("Code") == "ValidationError" and "does not exist" in error.get("Message", ""):
            return None
        raise
    stack = stacks[0]
    return Stack(
        name=name,
        status=stack["StackStatus"],
        parameters={p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters") or []},
        outputs={o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs") or []},
    )


def require_stack(cloudformation: Any, name: str, env: str) -> Stack:
    stack = describe_stack(cloudformation, name)
    if stack is None:
        raise DeployError(f"stack {name} does not exist: create it first with `make deploy ENV={env}`")
    return stack


def stack_resources(cloudformation: Any, name: str) -> list[dict[str, Any]]:
    # Plain NextToken paging, not a paginator: a duck-typed client (the local stack's) needs one method.
    resources: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"StackName": name}
    while True:
        page = cloudformation.list_stack_resources(**kwargs)
        resources += page.get("StackResourceSummaries") or []
        if not page.get("NextToken"):
            return resources
        kwargs["NextToken"] = page["NextToken"]


@dataclass(frozen=True)
class Resources:
    """The stack's inference function and the CodeDeploy application and group that shift its alias."""

    function_name: str
    application: str | None
    deployment_group: str | None
    stack_versions: tuple[str, ...]  # the function versions the stack itself holds (ARN's last part)


def inference_resources(stack: Stack, resources: Iterable[Mapping[str, Any]]) -> Resources:
    resources = list(resources)
    function = stack.outputs.get("InferenceFunctionName") or next(
        (r["PhysicalResourceId"] for r in resources if r.get("LogicalResourceId") == INFERENCE_FUNCTION), None
    )
    if not function:
        raise DeployError(f"stack {stack.name} has no {INFERENCE_FUNCTION} (output InferenceFunctionName)")
    apps = [r for r in resources if r.get("ResourceType") == "AWS::CodeDeploy::Application"]
    groups = [r for r in resources if r.get("ResourceType") == "AWS::CodeDeploy::DeploymentGroup"]
    # SAM names the group <FunctionLogicalId>DeploymentGroup; only the inference function has one.
    group = next((g for g in groups if g["LogicalResourceId"].startswith(INFERENCE_FUNCTION)), None)
    if group is None and len(groups) == 1:
        group = groups[0]
    versions = tuple(
        r["PhysicalResourceId"].rsplit(":", 1)[-1]
        for r in resources
        if r.get("ResourceType") == "AWS::Lambda::Version"
        and r.get("LogicalResourceId", "").startswith(INFERENCE_FUNCTION)
        and r.get("PhysicalResourceId")
    )
    return Resources(
        function_name=function,
        application=apps[0]["PhysicalResourceId"] if apps else None,
        deployment_group=group["PhysicalResourceId"] if group else None,
        stack_versions=versions,
    )


@dataclass(frozen=True)
class AliasState:
    version: str  # FunctionVersion: what the alias serves (all of it, but for the weights)
    weights: dict[str, float]  # RoutingConfig.AdditionalVersionWeights: a canary in flight


def alias_state(lambda_client: Any, function: str, alias: str = ALIAS) -> AliasState:
    answer = lambda_client.get_alias(FunctionName=function, Name=alias)
    weights = (answer.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    return AliasState(version=str(answer["FunctionVersion"]), weights={str(k): v for k, v in weights.items()})


@dataclass(frozen=True)
class VersionInfo:
    version: str
    model: str | None  # MODEL_VERSION
    code_sha256: str
    environment: dict[str, str]
    description: str

    @property
    def parameters(self) -> dict[str, str]:
        """The stack parameters this version was published with (those its environment shows)."""
        return {p: self.environment[v] for v, p in VERSION_PARAMETERS.items() if v in self.environment}


def version_info(lambda_client: Any, function: str, version: str) -> VersionInfo | None:
    """get_function_configuration on one qualifier; None when that version does not exist."""
    try:
        config = lambda_client.get_function_configuration(FunctionName=function, Qualifier=version)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return None
        raise
    env = (config.get("Environment") or {}).get("Variables") or {}
    return VersionInfo(
        version=str(config.get("Version", version)),
        model=env.get("MODEL_VERSION"),
        code_sha256=str(config.get("CodeSha256", "")),
        environment=dict(env),
        description=str(config.get("Description", "")),
    )


def active_deployments(codedeploy: Any, application: str | None, group: str | None) -> list[str]:
    """Ids of the group's deployments that may still move the alias."""
    if not application or not group:
        return []
    ids: list[str] = []
    kwargs: dict[str, Any] = {
        "applicationName": application,
        "deploymentGroupName": group,
        "includeOnlyStatuses": list(ACTIVE_STATUSES),
    }
    while True:
        page = codedeploy.list_deployments(**kwargs)
        ids += page.get("deployments") or []
        if not page.get("nextToken"):
            return ids
        kwargs["nextToken"] = page["nextToken"]


def _lower_keys(value: Any) -> Any:
    # The AppSpec reference spells its keys in lower case, SAM's generated one capitalised.
    if isinstance(value, dict):
        return {str(k).lower(): _lower_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lower_keys(v) for v in value]
    return value


def appspec(function: str, alias: str, current: str, target: str) -> str:
    """The AppSpec SAM's CodeDeployLambdaAliasUpdate writes for one deployment (capitalised keys,
    one Lambda resource): what appspec_versions reads back (the local stack's stand-in and the
    tests write it)."""
    properties = {"Name": function, "Alias": alias, "CurrentVersion": current, "TargetVersion": target}
    resource = {"InferenceFunction": {"Type": "AWS::Lambda::Function", "Properties": properties}}
    return json.dumps({"version": 0.0, "Resources": [resource]})


# Lambda's answers to update_alias while the alias is being changed or calls are throttled: retry.
ALIAS_BUSY = ("ResourceConflictException", "TooManyRequestsException")


def run_cli(body: Callable[[], int]) -> int:
    """A deploy tool's main: body's exit status, or one line on stderr and 2 (the request or the
    stack is wrong) or 1 (AWS failed): what every tool's user sees the same way."""
    try:
        return body()
    except (DeployError, PreflightError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ClientError, BotoCoreError) as exc:
        print(f"error: AWS: {exc}", file=sys.stderr)
        return 1


def point_alias(lambda_client: Any, function: str, version: str) -> None:
    """`live` to `version` alone, no canary weight (update-alias: immediate, no CodeDeploy)."""
    lambda_client.update_alias(
        FunctionName=function,
        Name=ALIAS,
        FunctionVersion=version,
        RoutingConfig={"AdditionalVersionWeights": {}},
    )


def appspec_versions(deployment_info: Mapping[str, Any]) -> tuple[str, str] | None:
    """(CurrentVersion, TargetVersion) of a Lambda deployment, from get_deployment's revision:
    appSpecContent.content (or the older string.content), a JSON AppSpec whose resources list one
    AWS::Lambda::Function with properties name, alias, currentversion, targetversion."""
    revision = deployment_info.get("revision") or {}
    content = (revision.get("appSpecContent") or revision.get("string") or {}).get("content")
    if not content:
        return None
    try:
        spec = _lower_keys(json.loads(content))
    except ValueError:
        return None
    for resource in spec.get("resources") or []:
        for body in resource.values() if isinstance(resource, dict) else ():
            props = body.get("properties") if isinstance(body, dict) else None
            if props and props.get("currentversion") and props.get("targetversion"):
                return str(props["currentversion"]), str(props["targetversion"])
    return None


def shifted_versions(codedeploy: Any, deployment_id: str) -> tuple[str, str] | None:
    """(CurrentVersion, TargetVersion) of one deployment, from get_deployment's AppSpec."""
    return appspec_versions(codedeploy.get_deployment(deploymentId=deployment_id)["deploymentInfo"])


def aws_clients() -> tuple[Any, Any, Any]:
    """CloudFormation, Lambda and CodeDeploy clients of the default session (profile, region)."""
    import boto3

    session = boto3.session.Session()
    return session.client("cloudformation"), session.client("lambda"), session.client("codedeploy")
