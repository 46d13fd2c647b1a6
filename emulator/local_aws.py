"""Local stand-ins for the three AWS clients `deploy.rollback` uses, over a rehearsal's local stack.

`python -m emulator rehearse --then-rollback` runs the SAME controller as `make rollback`
(deploy.rollback.Rollback) against these, so the rollback is rehearsed with users' traffic flowing:

  LocalLambda          get_alias, get_function_configuration (MODEL_VERSION, CodeSha256 of each
                       published version; $LATEST is the newest) and update_alias, which repoints
                       the rehearsal's emulator.functions.Alias (set_primary, plus at most one weight).
  LocalCodeDeploy      the rehearsal's deployment(s): list_deployments by status, get_deployment with
                       the AppSpec SAM writes (CurrentVersion / TargetVersion), stop_deployment.
  LocalCloudFormation  the stack as samconfig deploys it (its parameters, ModelVersion = the model
                       rolled out) with the inference function and the CodeDeploy application and group
                       (emulator.consumers makes one with the usage plans); there is no real
                       stack: update_stack checks and records the request, applies its parameters
                       and stays UPDATE_COMPLETE (no new version is published).

Errors are botocore ClientErrors with the codes AWS answers, so the controller's handling is the real one.
Only the keyword arguments deploy.stack and deploy.rollback pass are supported (no paging: every
list is one page, so no nextToken ever comes back).
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from deploy import stack as st
from deploy.stack import ACTIVE_STATUSES
from stack import LOCAL_ACCOUNT, ROOT

PACKAGE_DIRS = ("infer",)  # what the inference function's package holds besides its dependencies
STACK_STATUS = "UPDATE_COMPLETE"  # the stack's and its resources' status: update_stack deploys nothing


def client_error(operation: str, code: str, message: str, status: int = 400) -> ClientError:
    """The exception botocore raises for an AWS error answer."""
    answer = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(answer, operation)  # type: ignore[arg-type]


def _not_found(operation: str, message: str) -> ClientError:
    """Lambda's answer for a function, version or alias it does not have."""
    return client_error(operation, "ResourceNotFoundException", message, 404)


def package_sha256() -> str:
    """A CodeSha256 for the local package (base64 SHA-256, as Lambda reports it): every published
    version of the rehearsal runs this same code; only MODEL_VERSION differs between them."""
    digest = hashlib.sha256()
    for folder in PACKAGE_DIRS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            digest.update(path.relative_to(ROOT).as_posix().encode())
            digest.update(path.read_bytes())
    return base64.b64encode(digest.digest()).decode("ascii")


class LocalLambda:
    """The Lambda API over one function's published versions and its alias."""

    def __init__(
        self,
        alias: Any,
        versions: Sequence[Any],
        *,
        code_sha256: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not versions:
            raise ValueError("LocalLambda needs at least one published version")
        self.alias = alias
        self.versions = {str(v.function_version): v for v in versions}
        self.function = str(versions[0].name)
        self.code_sha256 = code_sha256 if code_sha256 is not None else package_sha256()
        self.clock = clock
        self.updates: list[dict[str, Any]] = []  # every update_alias: wall time, version, weights

    def _function(self, operation: str, name: str, alias: str | None = None) -> None:
        # A name, or an ARN (qualified or not) ending in it: what Lambda accepts as FunctionName.
        base = str(name).split(":function:", 1)[-1].split(":", 1)[0]
        if base != self.function:
            raise _not_found(operation, f"Function not found: {name}")
        if alias is not None and alias != self.alias.name:
            raise _not_found(operation, f"Alias not found: {alias}")

    @property
    def latest(self) -> Any:
        """$LATEST: the newest published version."""
        return self.versions[max(self.versions, key=int)]

    def _version(self, operation: str, version: str) -> Any:
        if version == "$LATEST":
            return self.latest
        found = self.versions.get(str(version))
        if found is None:
            raise _not_found(operation, f"Function not found: {self.function}:{version}")
        return found

    def get_alias(self, *, FunctionName: str, Name: str) -> dict[str, Any]:
        self._function("GetAlias", FunctionName, Name)
        routing = self.alias.routing
        weights = {}
        if routing.canary is not None and routing.weight > 0:
            weights = {routing.canary.function_version: routing.weight}
        return {
            "AliasArn": f"{routing.primary.unqualified_arn}:{Name}",
            "Name": Name,
            "FunctionVersion": routing.primary.function_version,
            "RoutingConfig": {"AdditionalVersionWeights": weights},
        }

    def get_function_configuration(self, *, FunctionName: str, Qualifier: str = "$LATEST") -> dict[str, Any]:
        self._function("GetFunctionConfiguration", FunctionName)
        version = self._version("GetFunctionConfiguration", Qualifier)
        variables = {**version.settings.inference.environment, "MODEL_VERSION": version.model_version}
        return {
            "FunctionName": self.function,
            "FunctionArn": version.arn if Qualifier != "$LATEST" else f"{version.unqualified_arn}:$LATEST",
            "Version": "$LATEST" if Qualifier == "$LATEST" else version.function_version,
            "CodeSha256": self.code_sha256,
            "Description": f"model {version.model_version}",
            "Environment": {"Variables": variables},
        }

    def update_alias(
        self,
        *,
        FunctionName: str,
        Name: str,
        FunctionVersion: str | None = None,
        RoutingConfig: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        self._function("UpdateAlias", FunctionName, Name)
        weights = dict((RoutingConfig or {}).get("AdditionalVersionWeights") or {})
        primary_id = str(FunctionVersion or self.alias.primary.function_version)
        primary = self._version("UpdateAlias", primary_id)
        if len(weights) > 1 or any(str(v) == primary_id for v in weights):
            raise client_error(
                "UpdateAlias",
                "InvalidParameterValueException",
                "AdditionalVersionWeights takes one version other than the alias's FunctionVersion",
            )
        extra = [(self._version("UpdateAlias", str(v)), float(w)) for v, w in weights.items()]
        self.alias.set_primary(primary)
        if extra:
            self.alias.set_routing(*extra[0])
        self.updates.append({"at": self.clock(), "version": primary_id, "weights": weights})
        return self.get_alias(FunctionName=FunctionName, Name=Name)


class LocalCodeDeploy:
    """The CodeDeploy API over the rehearsal's deployment(s) (emulator.controller.Deployment: id,
    baseline, canary, status, started, completed)."""

    def __init__(
        self, application: str, group: str, function: str, deployments: Sequence[Any], alias: str = "live"
    ) -> None:
        self.application, self.group, self.function, self.alias = application, group, function, alias
        self.deployments = {d.id: d for d in deployments}

    def _group(self, operation: str, application: str, group: str) -> None:
        if application != self.application:
            raise client_error(
                operation, "ApplicationDoesNotExistException", f"No application found for name: {application}"
            )
        if group != self.group:
            raise client_error(
                operation, "DeploymentGroupDoesNotExistException", f"No deployment group found: {group}"
            )

    def _deployment(self, operation: str, deployment_id: str) -> Any:
        found = self.deployments.get(deployment_id)
        if found is None:
            message = f"The deployment {deployment_id} could not be found"
            raise client_error(operation, "DeploymentDoesNotExistException", message)
        return found

    def list_deployments(
        self,
        *,
        applicationName: str,
        deploymentGroupName: str,
        includeOnlyStatuses: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        self._group("ListDeployments", applicationName, deploymentGroupName)
        wanted = set(includeOnlyStatuses or ())
        newest_first = sorted(self.deployments.values(), key=lambda d: d.started or 0.0, reverse=True)
        return {"deployments": [d.id for d in newest_first if not wanted or d.status in wanted]}

    def get_deployment(self, *, deploymentId: str) -> dict[str, Any]:
        d = self._deployment("GetDeployment", deploymentId)
        info: dict[str, Any] = {
            "applicationName": self.application,
            "deploymentGroupName": self.group,
            "deploymentId": d.id,
            "status": d.status,
            "createTime": datetime.fromtimestamp(d.started or 0.0, UTC),
            "revision": {
                "revisionType": "AppSpecContent",
                "appSpecContent": {"content": st.appspec(self.function, self.alias, d.baseline, d.canary)},
            },
        }
        if d.completed is not None:
            info["completeTime"] = datetime.fromtimestamp(d.completed, UTC)
        return {"deploymentInfo": info}

    def stop_deployment(self, *, deploymentId: str, autoRollbackEnabled: bool = False) -> dict[str, Any]:
        d = self._deployment("StopDeployment", deploymentId)
        # The rehearsal's controller has decided before the rollback runs: nothing is left to stop.
        if d.status not in ACTIVE_STATUSES:
            message = f"{deploymentId} is already completed"
            raise client_error("StopDeployment", "DeploymentAlreadyCompletedException", message)
        message = "the local stack stops its deployments itself (emulator.controller)"
        raise client_error("StopDeployment", "InvalidDeploymentStatusException", message)


class LocalCloudFormation:
    """The CloudFormation API over a stack that is not really there: its parameters, status and the
    resources the caller looks up ((logical id, physical id, type) each); update_stack is checked and
    recorded (`updates`), not deployed. The rehearsal's rollback and the local consumer commands
    (emulator.consumers) each make one."""

    def __init__(
        self,
        stack_name: str,
        parameters: Mapping[str, str],
        resources: Sequence[tuple[str, str, str]],
        region: str = "us-east-1",
    ) -> None:
        self.stack_name = stack_name
        self.parameters = dict(parameters)
        self.stack_id = f"arn:aws:cloudformation:{region}:{LOCAL_ACCOUNT}:stack/{stack_name}/local"
        self.resources = list(resources)
        self.updates: list[dict[str, Any]] = []  # {"request": ..., "changes": {key: (old, new)}}

    def _stack(self, operation: str, name: str) -> None:
        if name not in (self.stack_name, self.stack_id):
            raise client_error(operation, "ValidationError", f"Stack with id {name} does not exist")

    def describe_stacks(self, *, StackName: str) -> dict[str, Any]:
        self._stack("DescribeStacks", StackName)
        stack = {
            "StackId": self.stack_id,
            "StackName": self.stack_name,
            "StackStatus": STACK_STATUS,
            "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in self.parameters.items()],
            "Outputs": [],
        }
        return {"Stacks": [stack]}

    def list_stack_resources(self, *, StackName: str) -> dict[str, Any]:
        self._stack("ListStackResources", StackName)
        rows = [
            {
                "LogicalResourceId": logical,
                "PhysicalResourceId": physical,
                "ResourceType": kind,
                "ResourceStatus": STACK_STATUS,
            }
            for logical, physical, kind in self.resources
        ]
        return {"StackResourceSummaries": rows}

    def update_stack(self, **request: Any) -> dict[str, Any]:
        self._stack("UpdateStack", request.get("StackName", ""))
        if not request.get("UsePreviousTemplate"):
            message = "the local stack only takes UsePreviousTemplate"
            raise client_error("UpdateStack", "ValidationError", message)
        changes: dict[str, tuple[str, str]] = {}
        for p in request.get("Parameters") or ():
            key = p.get("ParameterKey")
            if key not in self.parameters:
                raise client_error("UpdateStack", "ValidationError", f"Parameters: [{key}] do not exist")
            if not p.get("UsePreviousValue") and p.get("ParameterValue") != self.parameters[key]:
                changes[key] = (self.parameters[key], str(p.get("ParameterValue")))
        if not changes:
            raise client_error("UpdateStack", "ValidationError", "No updates are to be performed.")
        self.updates.append({"request": dict(request), "changes": changes})
        self.parameters.update({k: new for k, (_old, new) in changes.items()})
        return {"StackId": self.stack_id}

    def describe_updates(self) -> str:
        """What the recorded update_stack calls would have changed, in words."""
        if not self.updates:
            return "no stack update"
        said = [f"{k} {old} -> {new}" for u in self.updates for k, (old, new) in u["changes"].items()]
        return "would update " + ", ".join(said)


def local_clients(
    settings: Any, alias: Any, versions: Sequence[Any], deployments: Sequence[Any]
) -> tuple[LocalCloudFormation, LocalLambda, LocalCodeDeploy]:
    """The three stand-ins over one rehearsal: the stack as `settings` (stack.load_settings) deploys it,
    with ModelVersion the model of the newest version (the one rolled out)."""
    stack = settings.stack_name
    application = f"{stack}-ServerlessDeploymentApplication"
    group = f"{stack}-InferenceFunctionDeploymentGroup"
    lam = LocalLambda(alias, versions)
    parameters = {**settings.parameters, "ModelVersion": lam.latest.model_version}
    resources = [
        ("InferenceFunction", lam.function, "AWS::Lambda::Function"),
        ("ServerlessDeploymentApplication", application, "AWS::CodeDeploy::Application"),
        ("InferenceFunctionDeploymentGroup", group, "AWS::CodeDeploy::DeploymentGroup"),
    ]
    cfn = LocalCloudFormation(stack, parameters, resources, settings.region)
    return cfn, lam, LocalCodeDeploy(application, group, lam.function, deployments, alias=alias.name)
