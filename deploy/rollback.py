"""Put the `live` alias back on the previous version at once: `make rollback ENV=prod [TO=N] [YES=1]`.

    python -m deploy.rollback --env prod [--to VERSION] [--yes]

A small controller, one step per tick over a closed list of phases, each printing one line:

  CHECK            stack exists, function and deployment group, the alias's version, the target:
                   --to N, else the CurrentVersion of a deployment in progress, else the CurrentVersion
                   of the latest Succeeded deployment whose TargetVersion is the alias's version
                   (CodeDeploy's AppSpec); the target must exist (its MODEL_VERSION is read).
  CONFIRM          says what will change; asks unless --yes.
  STOP_DEPLOYMENT  stop_deployment(autoRollbackEnabled=True) for each deployment in progress.
  SHIFT_ALIAS      update_alias(FunctionVersion=target, no additional weights): immediate, consults
                   no alarm and no CodeDeploy, so it works while alarms are in ALARM.
  RECONCILE        makes the stack agree, so the next `sam deploy` does not undo the rollback: when
                   the target runs the stack's current code, update_stack with the previous template
                   and the target's ModelVersion/MaxTextChars (every other parameter kept); when the
                   code differs, says to redeploy the previous commit and ends with EXIT_DRIFT.
  WATCH            after update_stack: every tick, the alias. The update publishes a new version of
                   the target's model and CodeDeploy shifts to it from a CurrentVersion CloudFormation
                   takes from its own record of the alias, which a manual rollback made stale (it may
                   name the version rolled back from; that is not verifiable offline). A primary or
                   weighted version with another model or code than the target is removed at once
                   (update_alias back to the target, no weights). Ends when the stack is stable: DONE
                   on UPDATE_COMPLETE with no re-shift, else EXIT_DRIFT; after WATCH_TIMEOUT_S too.
  DONE / FAILED

Exit codes: 0 done; 1 failed, or refused before the alias moved; 2 bad arguments or no such stack;
4 (EXIT_DRIFT) the alias is back but the stack still describes the version rolled back from, or its
reconcile update did not complete cleanly (rolled back, timed out, or the watch had to re-shift).
"""

from __future__ import annotations

import argparse
import enum
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from deploy import stack as st

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_DRIFT = 0, 1, 2, 4
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"]  # the SAM transform is a macro
MAX_HISTORY = 50  # succeeded deployments read to find the previous version
SHIFT_ATTEMPTS = 5  # CodeDeploy's own rollback may update the alias at the same moment
STACK_WAIT_S = 900.0  # a stopped deployment makes CloudFormation roll back first
WATCH_TIMEOUT_S = 1200.0  # the reconcile update: canary window + hooks (~10 min in prod), twice over


class Phase(enum.Enum):
    CHECK = "CHECK"
    CONFIRM = "CONFIRM"
    STOP_DEPLOYMENT = "STOP_DEPLOYMENT"
    SHIFT_ALIAS = "SHIFT_ALIAS"
    RECONCILE = "RECONCILE"
    WATCH = "WATCH"
    DONE = "DONE"
    FAILED = "FAILED"


FINAL = (Phase.DONE, Phase.FAILED)


@dataclass
class Clients:
    cloudformation: Any
    lambda_client: Any
    codedeploy: Any


@dataclass
class Rollback:
    """The controller's state; `tick()` runs the current phase once and returns the next."""

    env: str
    stack_name: str
    clients: Clients
    to: str | None = None
    yes: bool = False
    confirm: Callable[[str], bool] = lambda question: False
    out: Callable[[str], None] = print
    clock: Callable[[], float] = time.monotonic
    phase: Phase = Phase.CHECK
    exit_code: int = EXIT_OK
    # Learnt in CHECK:
    function: str = ""
    current: str = ""
    weights: dict[str, float] = field(default_factory=dict)
    target: st.VersionInfo | None = None
    deployments: list[str] = field(default_factory=list)
    shift_attempts: int = 0
    wait_started: float | None = None
    # Learnt in RECONCILE / WATCH:
    changes: dict[str, str] = field(default_factory=dict)  # the parameters update_stack changed
    watch_started: float | None = None
    reshifts: list[str] = field(default_factory=list)  # versions the watch removed from the alias
    seen: dict[str, st.VersionInfo | None] = field(default_factory=dict)  # version -> its info

    def tick(self) -> Phase:
        if self.phase in FINAL:
            return self.phase
        step = {
            Phase.CHECK: self._check,
            Phase.CONFIRM: self._confirm,
            Phase.STOP_DEPLOYMENT: self._stop,
            Phase.SHIFT_ALIAS: self._shift,
            Phase.RECONCILE: self._reconcile,
            Phase.WATCH: self._watch,
        }[self.phase]
        try:
            self.phase = step()
        except st.DeployError as exc:
            self._fail(str(exc))
        except (ClientError, BotoCoreError) as exc:
            self._fail(f"AWS error in {self.phase.value}: {exc}")
        return self.phase

    def run(self, sleep: Callable[[float], None] = time.sleep, interval: float = 5.0) -> int:
        while self.phase not in FINAL:
            before = self.phase
            # A phase that stays put is waiting (a busy stack, an alias CodeDeploy is updating).
            if self.tick() is before:
                sleep(interval)
        return self.exit_code

    def say(self, text: str) -> None:
        self.out(f"{self.phase.value}: {text}")

    def _fail(self, reason: str) -> None:
        self.say(reason)
        if self.phase in (Phase.RECONCILE, Phase.WATCH):  # the alias moved; the stack may not agree
            self.exit_code = EXIT_DRIFT
            if self.phase is Phase.WATCH and self.target is not None:
                self.say(f"the watch stopped. {self._hint()}")
        elif self.exit_code == EXIT_OK:
            self.exit_code = EXIT_FAILED
        self.phase = Phase.FAILED

    # ------------------------------------------------------------------ phases
    def _check(self) -> Phase:
        cfn, lam, cd = self.clients.cloudformation, self.clients.lambda_client, self.clients.codedeploy
        stack = st.describe_stack(cfn, self.stack_name)
        if stack is None:
            self.exit_code = EXIT_USAGE
            raise st.DeployError(f"stack {self.stack_name} does not exist: there is nothing to roll back")
        res = st.inference_resources(stack, st.stack_resources(cfn, self.stack_name))
        self.function = res.function_name
        alias = st.alias_state(lam, self.function)
        self.current, self.weights = alias.version, alias.weights
        self.deployments = st.active_deployments(cd, res.application, res.deployment_group)
        baseline = self._baseline()
        if self.to and baseline and self.to != baseline:
            # Stopping the deployment makes CodeDeploy and CloudFormation put the alias back on the
            # baseline themselves, which would silently undo a shift to any other version.
            raise st.DeployError(
                f"deployment {', '.join(self.deployments)} is in progress from version {baseline}; stopping "
                f"it returns the alias to {baseline}: roll back without --to first, then --to {self.to}"
            )
        target = self.to or baseline or self._previous(res)
        info = st.version_info(lam, self.function, target)
        if info is None:
            raise st.DeployError(
                f"version {target} of {self.function} does not exist; "
                f"list them: aws lambda list-versions-by-function --function-name {self.function}"
            )
        self.target = info
        current = st.version_info(lam, self.function, self.current)
        canary = f" + canary {self.weights}" if self.weights else ""
        self.say(
            f"{self.function}:{st.ALIAS} is on version {self.current} (model "
            f"{current.model if current else 'unknown'}){canary}; target version {info.version} "
            f"(model {info.model or 'unknown'}); deployments in progress: "
            f"{', '.join(self.deployments) or 'none'}"
        )
        return Phase.CONFIRM

    def _baseline(self) -> str | None:
        """During a canary the alias's FunctionVersion is still the baseline: that is the way back."""
        for deployment_id in self.deployments:
            versions = st.shifted_versions(self.clients.codedeploy, deployment_id)
            if versions:
                return versions[0]
        return None

    def _previous(self, res: st.Resources) -> str:
        found = previous_version(self.clients.codedeploy, res.application, res.deployment_group, self.current)
        if found is None:
            raise st.DeployError(
                f"no previous version known for {self.function}:{st.ALIAS} (version {self.current}): "
                "no succeeded CodeDeploy deployment targets it; pass the version with --to N (make rollback "
                f"TO=N), see aws lambda list-versions-by-function --function-name {self.function}"
            )
        return found

    def _confirm(self) -> Phase:
        assert self.target is not None
        stops = f"stop deployment {', '.join(self.deployments)}, then " if self.deployments else ""
        question = f"{stops}point {self.function}:{st.ALIAS} at version {self.target.version}"
        if not self.yes and not self.confirm(question + "? [y/N] "):
            self.say(f"not confirmed: nothing changed (to proceed: {question}, pass --yes / YES=1)")
            self.exit_code = EXIT_FAILED
            return Phase.FAILED
        self.say(f"confirmed: {question}")
        return Phase.STOP_DEPLOYMENT

    def _stop(self) -> Phase:
        if not self.deployments:
            self.say("no CodeDeploy deployment in progress")
            return Phase.SHIFT_ALIAS
        for deployment_id in self.deployments:
            try:
                answer = self.clients.codedeploy.stop_deployment(
                    deploymentId=deployment_id, autoRollbackEnabled=True
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "DeploymentAlreadyCompletedException":
                    raise
                # It ended between CHECK and now: the alias shift below still decides where live points.
                self.say(f"deployment {deployment_id} had already completed")
                continue
            self.say(
                f"stopped deployment {deployment_id} with auto-rollback ({answer.get('status', '?')}: "
                f"{answer.get('statusMessage', '')}); CloudFormation will roll the stack update back"
            )
        return Phase.SHIFT_ALIAS

    def _shift(self) -> Phase:
        assert self.target is not None
        lam, target = self.clients.lambda_client, self.target.version
        before = st.alias_state(lam, self.function)
        if before.version == target and not before.weights:
            self.say(f"{self.function}:{st.ALIAS} already on version {target}, no canary weight")
            return Phase.RECONCILE
        try:
            st.point_alias(lam, self.function, target)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            self.shift_attempts += 1
            if code in st.ALIAS_BUSY and (self.shift_attempts < SHIFT_ATTEMPTS):
                self.say(f"alias busy ({code}), retrying")
                return Phase.SHIFT_ALIAS
            raise
        self.say(
            f"{self.function}:{st.ALIAS} version {before.version}"
            f"{f' + canary {before.weights}' if before.weights else ''} -> version {target} "
            f"(model {self.target.model or 'unknown'}), all traffic"
        )
        return Phase.RECONCILE

    def _reconcile(self) -> Phase:
        assert self.target is not None
        cfn, lam = self.clients.cloudformation, self.clients.lambda_client
        stack = st.require_stack(cfn, self.stack_name, self.env)
        if stack.busy:
            now = self.clock()
            if self.wait_started is None:
                self.wait_started = now
            if now - self.wait_started > STACK_WAIT_S:
                raise st.DeployError(
                    f"stack {self.stack_name} still {stack.status} after {STACK_WAIT_S:.0f} s; "
                    f"the alias is on version {self.target.version}: rerun `make rollback ENV={self.env} "
                    f"TO={self.target.version}` once the stack is stable, to reconcile it"
                )
            self.say(f"stack {self.stack_name} is {stack.status}: waiting before reconciling")
            return Phase.RECONCILE
        self.wait_started = None
        latest = st.version_info(lam, self.function, "$LATEST")
        if latest is None or latest.code_sha256 != self.target.code_sha256:
            return self._drift()
        wanted = {k: v for k, v in self.target.parameters.items() if k in stack.parameters}
        changes = {k: v for k, v in wanted.items() if stack.parameters[k] != v}
        if not changes:
            self.say(f"stack {self.stack_name} already has {_fmt(wanted)}: nothing to reconcile")
            return Phase.DONE
        cfn.update_stack(**reconcile_request(stack, changes))
        self.changes = {k: f"{stack.parameters[k]} -> {v}" for k, v in changes.items()}
        said = ", ".join(f"{k} {v}" for k, v in self.changes.items())
        self.say(
            f"update_stack {self.stack_name} (previous template) {said}: publishes a version "
            f"of model {self.target.model} like version {self.target.version}; its canary should compare the "
            f"same model on both sides. Watching the alias until the stack is stable (make report "
            f"ENV={self.env} shows the deployment)"
        )
        self.watch_started = self.clock()
        return Phase.WATCH

    # ------------------------------------------------------------------ the watch
    def _watch(self) -> Phase:
        """One look: the stack's status first, then the alias (so a stable stack's last look at the
        alias comes after it settled); re-shift any version that is not the target's model and code."""
        assert self.target is not None
        stack = st.require_stack(self.clients.cloudformation, self.stack_name, self.env)
        alias = self._guard_alias()
        if not stack.busy:
            return self._watch_end(stack, alias)
        if self.watch_started is None:
            self.watch_started = self.clock()
        if self.clock() - self.watch_started > WATCH_TIMEOUT_S:
            self.say(
                f"stack {self.stack_name} still {stack.status} after {WATCH_TIMEOUT_S:.0f} s: the watch "
                f"stops with the alias on version {alias.version}. Once the stack is stable, check it "
                f"again: `make rollback ENV={self.env} TO={self.target.version}`. {self._hint()}"
            )
            self.exit_code = EXIT_DRIFT
            return Phase.FAILED
        return Phase.WATCH

    def _acceptable(self, version: str) -> bool:
        """The target itself, or a version of the same model and code (the reconcile's new one)."""
        assert self.target is not None
        if version == self.target.version:
            return True
        if version not in self.seen:
            self.seen[version] = st.version_info(self.clients.lambda_client, self.function, version)
        info = self.seen[version]
        return info is not None and (info.model, info.code_sha256) == (
            self.target.model,
            self.target.code_sha256,
        )

    def _guard_alias(self) -> st.AliasState:
        """The alias as it is after this look: re-shifted to the target when it served another model
        or code, as primary or with any weight."""
        assert self.target is not None
        lam, target = self.clients.lambda_client, self.target.version
        alias = st.alias_state(lam, self.function)
        served = [(alias.version, "as primary")]
        served += [(v, f"with weight {w:.0%}") for v, w in sorted(alias.weights.items())]
        bad = [(v, how) for v, how in served if not self._acceptable(v)]
        if not bad:
            return alias
        try:
            st.point_alias(lam, self.function, target)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code not in st.ALIAS_BUSY:
                raise
            self.say(f"alias busy ({code}) while removing version {bad[0][0]}: retrying at the next look")
            return alias
        removed = ", ".join(f"version {v} {how} (model {self._model_of(v)})" for v, how in bad)
        self.reshifts += [v for v, _ in bad]
        self.say(
            f"{self.function}:{st.ALIAS} served {removed}, not the target's model and code: removed it, "
            f"re-shifted to version {target} (model {self.target.model}), all traffic"
        )
        return st.AliasState(target, {})

    def _model_of(self, version: str) -> str:
        info = self.seen.get(version)
        return (info.model if info else None) or "unknown"

    def _watch_end(self, stack: st.Stack, alias: st.AliasState) -> Phase:
        assert self.target is not None
        on = f"{self.function}:{st.ALIAS} is on version {alias.version} (model {self.target.model})"
        if stack.status == "UPDATE_COMPLETE" and not self.reshifts:
            target = self.target.version
            same = "" if alias.version == target else f", the code of version {target}"
            self.say(f"stack {self.stack_name} UPDATE_COMPLETE; {on}{same}: rolled back and reconciled")
            return Phase.DONE
        if self.reshifts:
            why = (
                f"its CodeDeploy deployment put version {', '.join(dict.fromkeys(self.reshifts))} back on "
                "the alias and the watch removed it"
            )
        else:
            why = (
                "the update did not complete (likely the PreTraffic hook refused a deployment that would "
                "shift from a version the alias no longer serves)"
            )
        self.say(
            f"stack {self.stack_name} ended {stack.status}: the stack's record of the alias is stale after "
            f"a manual rollback; {why}. {on}. {self._hint()}"
        )
        self.exit_code = EXIT_DRIFT
        return Phase.FAILED

    def _hint(self) -> str:
        assert self.target is not None
        return (
            f"Do not run make deploy or make rollout from here; if the alias moves again, `make rollback "
            f"ENV={self.env} TO={self.target.version}` re-shifts it; reconcile the stack by hand (README, "
            "Rolling back), rehearsing the steps in uat first"
        )

    def _drift(self) -> Phase:
        assert self.target is not None
        self.say(
            f"the alias is back on version {self.target.version}, but the stack still holds other code "
            f"(CodeSha256 of $LATEST differs from version {self.target.version}'s): this was a code "
            f"rollout, and the next deploy or rollout from this commit would canary that code again. "
            f"The stack is NOT reconciled: redeploy the previous commit, "
            f"git checkout <previous commit> && make deploy ENV={self.env}"
        )
        self.exit_code = EXIT_DRIFT
        return Phase.FAILED


def _fmt(parameters: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in parameters.items()) or "(no version parameters)"


def reconcile_request(stack: st.Stack, changes: dict[str, str]) -> dict[str, Any]:
    """update_stack's arguments: the previous template, the changed parameters, every other one kept."""
    parameters = [
        {"ParameterKey": k, "ParameterValue": changes[k]}
        if k in changes
        else {"ParameterKey": k, "UsePreviousValue": True}
        for k in stack.parameters
    ]
    return {
        "StackName": stack.name,
        "UsePreviousTemplate": True,
        "Parameters": parameters,
        "Capabilities": list(CAPABILITIES),
    }


def previous_version(codedeploy: Any, application: str | None, group: str | None, current: str) -> str | None:
    """CurrentVersion of the latest Succeeded deployment of the group whose TargetVersion is `current`."""
    if not application or not group:
        return None
    ids: list[str] = []
    kwargs: dict[str, Any] = {
        "applicationName": application,
        "deploymentGroupName": group,
        "includeOnlyStatuses": ["Succeeded"],
    }
    while len(ids) < MAX_HISTORY:
        page = codedeploy.list_deployments(**kwargs)
        ids += page.get("deployments") or []
        if not page.get("nextToken"):
            break
        kwargs["nextToken"] = page["nextToken"]
    best: tuple[Any, str] | None = None
    for deployment_id in ids[:MAX_HISTORY]:
        info = codedeploy.get_deployment(deploymentId=deployment_id)["deploymentInfo"]
        versions = st.appspec_versions(info)
        if versions and versions[1] == current and versions[0] != current:
            created = info.get("createTime")
            if best is None or (created is not None and (best[0] is None or created > best[0])):
                best = (created, versions[0])
    return best[1] if best else None


def _ask(question: str) -> bool:
    if not sys.stdin.isatty():
        return False
    return input(question).strip().lower() in ("y", "yes")


def main(argv: list[str] | None = None, *, clients: Clients | None = None, sleep=time.sleep) -> int:
    parser = argparse.ArgumentParser(prog="deploy.rollback", description=__doc__.splitlines()[0])
    parser.add_argument("--env", required=True, help="samconfig.toml environment (dev, uat, prod)")
    parser.add_argument("--to", default=None, help="version to put live (default: the previous one)")
    parser.add_argument("--yes", action="store_true", help="do not ask before changing anything")
    args = parser.parse_args(argv)
    if args.to is not None and not args.to.isdigit():
        print(f"error: --to {args.to!r} is not a published version number", file=sys.stderr)
        return EXIT_USAGE
    try:
        name = st.stack_name(args.env)
        clients = clients or Clients(*st.aws_clients())
    except st.PreflightError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BotoCoreError as exc:  # no region, no credentials file: before anything changed
        print(f"error: AWS: {exc}", file=sys.stderr)
        return EXIT_FAILED
    controller = Rollback(args.env, name, clients, to=args.to, yes=args.yes, confirm=_ask)
    return controller.run(sleep=sleep)


if __name__ == "__main__":
    sys.exit(main())
