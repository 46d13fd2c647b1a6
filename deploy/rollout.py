"""Canary a model into a deployed stack: `make rollout MODEL=v2 ENV=prod`.

    python -m deploy.rollout --env prod --model v2 [--dry-run]

Refuses, with one line on stderr and exit 2, before anything is built: a stack that does not exist
(run `make deploy ENV=...` first), a stack that is busy, a model that models/ does not ship, the
model the `live` alias already serves (sam would deploy nothing and exit 0), a CodeDeploy deployment
already in progress, and a stack whose parameters differ from samconfig.toml's (a rollout changes the
model only). Then it prints what changes and runs `sam build` and `sam deploy` with every parameter
the environment needs in one --parameter-overrides list: a command-line list replaces samconfig's
rather than merging with it (aws/aws-sam-cli issue 2380), so passing only ModelVersion would deploy
the template's defaults (Environment=dev) for the others.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from canary.manifests import trained_versions
from deploy import stack as st

Runner = Callable[[Sequence[str]], int]


@dataclass(frozen=True)
class RolloutPlan:
    env: str
    stack: str
    function: str
    from_version: str
    from_model: str | None
    to_model: str
    parameters: dict[str, str]  # every --parameter-overrides entry, ModelVersion included

    def describe(self) -> str:
        return (
            f"rollout: stack {self.stack}, function {self.function}: live is version {self.from_version} "
            f"(model {self.from_model or 'unknown'}) -> model {self.to_model} "
            f"(canary of a new version; parameters {format_overrides(self.parameters)})"
        )


def format_overrides(parameters: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in parameters.items())


def rollout_parameters(env_overrides: dict[str, str], model: str) -> dict[str, str]:
    """samconfig's overrides of the environment plus ModelVersion, one list (ModelVersion wins)."""
    return {**{k: v for k, v in env_overrides.items() if k != "ModelVersion"}, "ModelVersion": model}


def sam_commands(sam: str, env: str, parameters: dict[str, str]) -> list[list[str]]:
    """The two commands a rollout runs: the build `make build` runs, then the environment's deploy."""
    overrides = [f"{k}={v}" for k, v in parameters.items()]
    return [
        [sam, "build", "--build-in-source"],
        [sam, "deploy", "--config-env", env, "--parameter-overrides", *overrides],
    ]


def plan_rollout(
    env: str,
    model: str,
    *,
    cloudformation: Any,
    lambda_client: Any,
    codedeploy: Any,
    models: Sequence[str],
    env_overrides: dict[str, str],
    stack_name: str,
) -> RolloutPlan:
    """What the rollout changes; DeployError (one line) when it must not run."""
    if model not in models:
        raise st.DeployError(f"MODEL={model} is not in models/; use one of {', '.join(models) or '(none)'}")
    stack = st.require_stack(cloudformation, stack_name, env)
    if stack.busy:
        raise st.DeployError(f"stack {stack_name} is {stack.status}: wait for it to finish, then retry")
    differing = {
        k: (stack.parameters.get(k), v) for k, v in env_overrides.items() if stack.parameters.get(k) != v
    }
    if differing:
        said = ", ".join(f"{k} is {a!r} on the stack, {b!r} in samconfig" for k, (a, b) in differing.items())
        raise st.DeployError(
            f"stack {stack_name}: {said}; a rollout changes only the model: run `make deploy ENV={env}` first"
        )
    res = st.inference_resources(stack, st.stack_resources(cloudformation, stack_name))
    running = st.active_deployments(codedeploy, res.application, res.deployment_group)
    if running:
        raise st.DeployError(
            f"CodeDeploy deployment {', '.join(running)} of {res.deployment_group} is in progress: "
            f"wait for it (make report ENV={env}) or roll it back (make rollback ENV={env})"
        )
    alias = st.alias_state(lambda_client, res.function_name)
    live = st.version_info(lambda_client, res.function_name, alias.version)
    live_model = live.model if live else None
    if live_model == model:
        raise st.DeployError(
            f"{res.function_name}:{st.ALIAS} already serves model {model} (version {alias.version}): "
            "nothing to roll out"
        )
    if stack.parameters.get("ModelVersion") == model:
        # sam would find nothing to change and exit 0 with no canary: the alias was moved by hand.
        raise st.DeployError(
            f"stack {stack_name} already names model {model} but live serves version {alias.version} "
            f"(model {live_model or 'unknown'}), a rollback not reconciled: run "
            f"`make rollback ENV={env} TO={alias.version}` first"
        )
    return RolloutPlan(
        env=env,
        stack=stack_name,
        function=res.function_name,
        from_version=alias.version,
        from_model=live_model,
        to_model=model,
        parameters=rollout_parameters(env_overrides, model),
    )


def run_rollout(plan: RolloutPlan, sam: str, runner: Runner, out: Callable[[str], None] = print) -> int:
    """Print the plan, then build and deploy; the first failing command's status is returned."""
    out(plan.describe())
    for command in sam_commands(sam, plan.env, plan.parameters):
        out("$ " + " ".join(command))
        status = runner(command)
        if status != 0:
            out(f"rollout: `{' '.join(command[:2])}` failed with status {status}")
            return status
    return 0


def default_sam() -> str:
    # The sam the project pins lives next to this interpreter (.venv/bin/sam).
    local = Path(sys.executable).parent / "sam"
    return str(local) if local.exists() else "sam"


def _subprocess_runner(command: Sequence[str]) -> int:
    return subprocess.run(list(command), check=False).returncode


def main(
    argv: list[str] | None = None,
    *,
    clients: Callable[[], tuple[Any, Any, Any]] | None = None,
    runner: Runner = _subprocess_runner,
) -> int:
    parser = argparse.ArgumentParser(prog="deploy.rollout", description=__doc__.splitlines()[0])
    parser.add_argument("--env", required=True, help="samconfig.toml environment (dev, uat, prod)")
    parser.add_argument("--model", required=True, help="model version to canary (a models/ folder)")
    parser.add_argument("--sam", default=None, help="sam executable (default: the .venv's)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and the commands, run nothing")
    args = parser.parse_args(argv)

    def body() -> int:
        name = st.stack_name(args.env)
        overrides = st.samconfig_overrides(args.env)
        cfn, lam, cd = (clients or st.aws_clients)()
        plan = plan_rollout(
            args.env,
            args.model,
            cloudformation=cfn,
            lambda_client=lam,
            codedeploy=cd,
            models=trained_versions(),
            env_overrides=overrides,
            stack_name=name,
        )
        planned.append(plan)
        return 0

    planned: list[Any] = []
    status = st.run_cli(body)
    if status or not planned:
        return status
    return run_rollout(planned[0], args.sam or default_sam(), (lambda command: 0) if args.dry_run else runner)


if __name__ == "__main__":
    sys.exit(main())
