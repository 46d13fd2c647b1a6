"""Delete old published versions of the inference function: `make prune-versions ENV=prod [KEEP=5] [YES=1]`.

    python -m deploy.prune --env prod [--keep 5] [--yes]

Every rollout publishes a version and the stack retains the old ones (so `make rollback` has
somewhere to go); they count against Lambda's code storage. This keeps the newest KEEP and never
deletes $LATEST, a version an alias serves (FunctionVersion or an additional weight), a version a
deployment in progress shifts from or to, or a version the stack itself holds. Dry run by default:
it prints what it would delete; --yes deletes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from deploy import stack as st

DEFAULT_KEEP = 5


@dataclass(frozen=True)
class PrunePlan:
    function: str
    keep: tuple[str, ...]  # newest KEEP
    protected: dict[str, str]  # version -> why it is kept although older
    delete: tuple[str, ...]


def published_versions(lambda_client: Any, function: str) -> list[str]:
    """Every published version number, oldest first ($LATEST left out)."""
    versions: list[str] = []
    for page in lambda_client.get_paginator("list_versions_by_function").paginate(FunctionName=function):
        versions += [v["Version"] for v in page.get("Versions") or [] if v["Version"].isdigit()]
    return sorted(set(versions), key=int)


def alias_versions(lambda_client: Any, function: str) -> dict[str, str]:
    """version -> the alias (and role) that serves it."""
    used: dict[str, str] = {}
    for page in lambda_client.get_paginator("list_aliases").paginate(FunctionName=function):
        for alias in page.get("Aliases") or []:
            used.setdefault(str(alias["FunctionVersion"]), f"alias {alias['Name']}")
            weights = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
            for version in weights:
                used.setdefault(str(version), f"alias {alias['Name']} (additional weight)")
    return used


def deployment_versions(codedeploy: Any, deployment_ids: Iterable[str]) -> dict[str, str]:
    """version -> the deployment in progress that shifts from or to it."""
    used: dict[str, str] = {}
    for deployment_id in deployment_ids:
        for version in st.shifted_versions(codedeploy, deployment_id) or ():
            used.setdefault(version, f"deployment {deployment_id} in progress")
    return used


def plan_prune(versions: list[str], keep: int, protected: dict[str, str], function: str) -> PrunePlan:
    """Pure: which of `versions` (oldest first) go, given the ones that must stay."""
    if keep < 1:
        raise st.DeployError(f"KEEP={keep}: keep at least one version")
    newest = tuple(versions[-keep:])
    older = versions[:-keep] if len(versions) > keep else []
    kept = {v: why for v, why in protected.items() if v in older}
    return PrunePlan(
        function=function,
        keep=newest,
        protected=kept,
        delete=tuple(v for v in older if v not in kept),
    )


def collect_plan(
    cloudformation: Any, lambda_client: Any, codedeploy: Any, stack_name: str, env: str, keep: int
) -> PrunePlan:
    stack = st.require_stack(cloudformation, stack_name, env)
    res = st.inference_resources(stack, st.stack_resources(cloudformation, stack_name))
    function = res.function_name
    running = st.active_deployments(codedeploy, res.application, res.deployment_group)
    protected = {
        **dict.fromkeys(res.stack_versions, "held by the stack"),
        **deployment_versions(codedeploy, running),
        **alias_versions(lambda_client, function),  # the strongest reason, said last
    }
    return plan_prune(published_versions(lambda_client, function), keep, protected, function)


def apply_plan(plan: PrunePlan, lambda_client: Any, yes: bool, out: Callable[[str], None] = print) -> int:
    out(f"{plan.function}: keeping the newest {len(plan.keep)} ({', '.join(plan.keep) or 'none'})")
    for version, why in sorted(plan.protected.items(), key=lambda item: int(item[0])):
        out(f"  keep version {version}: {why}")
    if not plan.delete:
        out("nothing to delete")
        return 0
    if not yes:
        out(f"would delete versions {', '.join(plan.delete)} (dry run: pass --yes / YES=1 to delete)")
        return 0
    failed = 0
    for version in plan.delete:
        try:
            lambda_client.delete_function(FunctionName=plan.function, Qualifier=version)
            out(f"  deleted version {version}")
        except ClientError as exc:
            # Lambda refuses a version an alias gained since the plan: keep going, report it.
            failed += 1
            out(f"  could not delete version {version}: {exc.response.get('Error', {}).get('Message', exc)}")
    return 1 if failed else 0


def main(argv: list[str] | None = None, *, clients: Callable[[], tuple[Any, Any, Any]] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deploy.prune", description=__doc__.splitlines()[0])
    parser.add_argument("--env", required=True, help="samconfig.toml environment (dev, uat, prod)")
    parser.add_argument("--keep", type=int, default=DEFAULT_KEEP, help="newest versions to keep (default 5)")
    parser.add_argument("--yes", action="store_true", help="delete (default: print what would be deleted)")
    args = parser.parse_args(argv)

    def body() -> int:
        cfn, lam, cd = (clients or st.aws_clients)()
        plan = collect_plan(cfn, lam, cd, st.stack_name(args.env), args.env, args.keep)
        return apply_plan(plan, lam, args.yes)

    return st.run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
