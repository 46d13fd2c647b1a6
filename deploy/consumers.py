"""Consumers of the API: an API key each, on one of the stack's usage plans (template.yaml).

    python -m deploy.consumers --env ENV add --name acme --plan standard
    python -m deploy.consumers --env ENV list
    python -m deploy.consumers --env ENV revoke --name acme
    python -m deploy.consumers --env ENV rotate --name acme [--grace-hours 24]
    python -m deploy.consumers --env ENV expire

ENV is a samconfig.toml environment (dev, uat, prod: the deployed stack, through boto3) or `local`
(the local stack of `make serve`: emulator.consumers stands in for API Gateway and CloudFormation,
so the same code runs). A consumer's key is named <AppName>-<Environment>-<name> and tagged with the
consumer, its plan and the stack; its value is printed once, by add and rotate, and never again.
The plans are the stack's AWS::ApiGateway::UsagePlan resources, named after what their
UsagePlanName adds to <AppName>-<Environment>- ("standard", "free").

revoke disables the consumer's keys and takes them off their plan; they stay, for the record.
rotate makes a new key on the same plan and tags the old one `retire-after` (now + the grace);
nothing runs on a schedule: list, rotate and expire disable and detach every key past its grace
(run `make consumer-expire` from cron for a deadline kept to the hour).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from deploy import stack as st
from stack import name_prefix

TAG_CONSUMER, TAG_PLAN, TAG_STACK = "consumer", "plan", "stack"
TAG_RETIRE_AFTER = "retire-after"  # the grace deadline of a rotated key (ISO 8601, UTC)
TAG_REVOKED, TAG_RETIRED = "revoked-at", "retired-at"
NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?")
RESERVED = frozenset({"key"})  # <AppName>-<Environment>-key is the stack's own ApiKey
DEFAULT_GRACE_HOURS = 24.0
PLAN_RESOURCE = "AWS::ApiGateway::UsagePlan"


@dataclass(frozen=True)
class Plan:
    name: str  # "standard"
    id: str  # the usage plan's id
    quota: int | None  # requests per key per period
    period: str  # "MONTH"
    rate: float | None  # requests per second per key
    burst: int | None


@dataclass(frozen=True)
class Key:
    id: str
    consumer: str
    enabled: bool
    created: datetime | None
    tags: dict[str, str]
    plan: str | None  # the plan it is attached to now (None: detached)

    @property
    def retire_after(self) -> datetime | None:
        raw = self.tags.get(TAG_RETIRE_AFTER)
        return datetime.fromisoformat(raw) if raw else None

    @property
    def state(self) -> str:
        if not self.enabled:
            if TAG_REVOKED in self.tags:
                return f"revoked {self.tags[TAG_REVOKED]}"
            if TAG_RETIRED in self.tags:
                return f"retired {self.tags[TAG_RETIRED]}"
            return "disabled"
        if self.retire_after is not None:
            return f"retiring after {self.tags[TAG_RETIRE_AFTER]}"
        return "active"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _pages(call: Callable[..., dict[str, Any]], **kwargs: Any) -> list[Any]:
    """Every item of a position-paged API Gateway list call."""
    items: list[Any] = []
    while True:
        page = call(**kwargs)
        items += page.get("items") or []
        if not page.get("position"):
            return items
        kwargs["position"] = page["position"]


class Consumers:
    """The consumer commands over one stack; the AWS clients (or their local stand-ins) passed in."""

    def __init__(
        self,
        apigateway: Any,
        cloudformation: Any,
        stack_name: str,
        env: str,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.apigw = apigateway
        self.cfn = cloudformation
        self.stack_name = stack_name
        self.env = env
        self.now = now
        self.sleep = sleep
        stack = st.require_stack(cloudformation, stack_name, env)
        self.prefix = name_prefix(stack.parameters, env)
        self._plans: dict[str, Plan] | None = None

    # ------------------------------------------------------------------ reading

    def plans(self) -> dict[str, Plan]:
        """The stack's usage plans by name."""
        if self._plans is None:
            plans: dict[str, Plan] = {}
            for res in st.stack_resources(self.cfn, self.stack_name):
                if res.get("ResourceType") != PLAN_RESOURCE or not res.get("PhysicalResourceId"):
                    continue
                plan = self.apigw.get_usage_plan(usagePlanId=res["PhysicalResourceId"])
                full = str(plan.get("name", ""))
                name = full[len(self.prefix) :] if full.startswith(self.prefix) else full
                quota, throttle = plan.get("quota") or {}, plan.get("throttle") or {}
                plans[name] = Plan(
                    name=name,
                    id=plan["id"],
                    quota=quota.get("limit"),
                    period=quota.get("period", "MONTH"),
                    rate=throttle.get("rateLimit"),
                    burst=throttle.get("burstLimit"),
                )
            if not plans:
                raise st.DeployError(f"stack {self.stack_name} has no usage plan")
            self._plans = plans
        return self._plans

    def plan(self, name: str) -> Plan:
        plans = self.plans()
        if name not in plans:
            raise st.DeployError(f"unknown plan {name!r}: the stack's plans are {', '.join(sorted(plans))}")
        return plans[name]

    def keys(self) -> list[Key]:
        """The stack's consumer keys, oldest first, each with the plan it is on now."""
        attached = {
            item["id"]: plan.name
            for plan in self.plans().values()
            for item in _pages(self.apigw.get_usage_plan_keys, usagePlanId=plan.id, limit=500)
        }
        found = []
        for item in _pages(self.apigw.get_api_keys, nameQuery=self.prefix, includeValues=False, limit=500):
            tags = dict(item.get("tags") or {})
            if tags.get(TAG_STACK) != self.stack_name or not tags.get(TAG_CONSUMER):
                continue
            found.append(
                Key(
                    id=item["id"],
                    consumer=tags[TAG_CONSUMER],
                    enabled=bool(item.get("enabled")),
                    created=item.get("createdDate"),
                    tags=tags,
                    plan=attached.get(item["id"]),
                )
            )
        epoch = datetime.min.replace(tzinfo=UTC)
        return sorted(found, key=lambda k: (k.consumer, k.created or epoch, k.id))

    def consumer_keys(self, name: str) -> list[Key]:
        keys = [k for k in self.keys() if k.consumer == name]
        if not keys:
            raise st.DeployError(f"unknown consumer {name!r} (make consumer-list ENV={self.env})")
        return keys

    def usage(self) -> dict[str, tuple[int, int | None]]:
        """key id -> (requests this calendar month, remaining quota), for the keys on a plan."""
        today = self.now().astimezone(UTC).date()
        used: dict[str, tuple[int, int | None]] = {}
        for plan in self.plans().values():
            items: dict[str, list[list[int]]] = {}
            kwargs = {
                "usagePlanId": plan.id,
                "startDate": today.replace(day=1).isoformat(),
                "endDate": today.isoformat(),
                "limit": 500,
            }
            while True:  # get_usage pages on `position` too, its items a map, not a list
                page = self.apigw.get_usage(**kwargs)
                items.update(page.get("items") or {})
                if not page.get("position"):
                    break
                kwargs["position"] = page["position"]
            for key_id, days in items.items():
                total = sum(int(day[0]) for day in days if day)
                remaining = int(days[-1][1]) if days and len(days[-1]) > 1 else None
                used[key_id] = (total, remaining)
        return used

    # ------------------------------------------------------------------ changing

    def _check_name(self, name: str) -> None:
        if not NAME.fullmatch(name or ""):
            raise st.DeployError(
                f"consumer name {name!r}: 1-40 lower-case letters, digits and hyphens (NAME=acme)"
            )
        if name in RESERVED:
            raise st.DeployError(f"consumer name {name!r} is reserved (the stack's key {self.prefix}key)")

    def _create(self, name: str, plan: Plan) -> tuple[str, str]:
        """A new enabled key for `name` on `plan`: (key id, value). A key that cannot go on the plan
        is deleted again, so that no key without limits is left behind."""
        created = self.apigw.create_api_key(
            name=f"{self.prefix}{name}",
            description=f"Consumer {name} of stack {self.stack_name}, plan {plan.name}",
            enabled=True,
            tags={TAG_CONSUMER: name, TAG_PLAN: plan.name, TAG_STACK: self.stack_name},
        )
        try:
            self._attach(created["id"], plan)
        except ClientError:
            self.apigw.delete_api_key(apiKey=created["id"])
            raise
        return created["id"], created["value"]

    def _attach(self, key_id: str, plan: Plan) -> None:
        # API Gateway takes one usage-plan-key change at a time per region: retry a conflict.
        for attempt in range(4):
            try:
                self.apigw.create_usage_plan_key(usagePlanId=plan.id, keyId=key_id, keyType="API_KEY")
                return
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ConflictException" or attempt == 3:
                    raise
                self.sleep(1.0 + attempt)

    def _tag(self, key_id: str, tags: dict[str, str]) -> None:
        region = self.apigw.meta.region_name
        self.apigw.tag_resource(resourceArn=f"arn:aws:apigateway:{region}::/apikeys/{key_id}", tags=tags)

    def _disable(self, key: Key, tag: str) -> None:
        """Disable and detach one key, kept (tagged when and why) for the record."""
        self.apigw.update_api_key(
            apiKey=key.id, patchOperations=[{"op": "replace", "path": "/enabled", "value": "false"}]
        )
        if key.plan is not None:
            self.apigw.delete_usage_plan_key(usagePlanId=self.plans()[key.plan].id, keyId=key.id)
        self._tag(key.id, {tag: _iso(self.now())})

    def add(self, name: str, plan_name: str) -> tuple[str, str]:
        """(key id, key value) of a new consumer on plan `plan_name`."""
        self._check_name(name)
        plan = self.plan(plan_name)
        live = [k for k in self.keys() if k.consumer == name and k.enabled]
        if live:
            raise st.DeployError(
                f"consumer {name!r} exists (key {live[0].id}, plan {live[0].plan}): "
                "rotate its key or revoke it first"
            )
        return self._create(name, plan)

    def revoke(self, name: str) -> list[Key]:
        """Disable and detach every enabled key of `name`; the keys it revoked."""
        live = [k for k in self.consumer_keys(name) if k.enabled]
        if not live:
            raise st.DeployError(f"consumer {name!r} has no enabled key: already revoked")
        for key in live:
            self._disable(key, TAG_REVOKED)
        return live

    def rotate(self, name: str, grace: timedelta) -> tuple[str, str, Key, datetime]:
        """A new key for `name` on its current plan; the old one retires after `grace`:
        (new id, new value, old key, its deadline)."""
        if grace < timedelta(0):
            raise st.DeployError("the grace period cannot be negative")
        self.expire()
        active = [k for k in self.consumer_keys(name) if k.enabled and k.retire_after is None]
        if len(active) != 1 or active[0].plan is None:
            raise st.DeployError(f"consumer {name!r} has no active key on a plan to rotate: add it again")
        old = active[0]
        key_id, value = self._create(name, self.plans()[old.plan])
        deadline = self.now() + grace
        self._tag(old.id, {TAG_RETIRE_AFTER: _iso(deadline)})
        if grace == timedelta(0):
            self.expire()
        return key_id, value, old, deadline

    def expire(self) -> list[Key]:
        """Disable and detach every enabled key past its grace deadline; the keys it retired."""
        now = self.now()
        due = [k for k in self.keys() if k.enabled and k.retire_after is not None and k.retire_after <= now]
        for key in due:
            self._disable(key, TAG_RETIRED)
        return due


# ----------------------------------------------------------------------------- command line


def _print_retired(retired: list[Key]) -> None:
    for key in retired:
        print(f"retired key {key.id} of consumer {key.consumer} (grace ended {key.tags[TAG_RETIRE_AFTER]})")


def list_table(consumers: Consumers) -> list[str]:
    """One line per key: consumer, plan, state, key id, requests this month of the quota."""
    plans = consumers.plans()
    keys = consumers.keys()
    usage = consumers.usage()
    rows = [("CONSUMER", "PLAN", "STATE", "KEY ID", "USED THIS MONTH")]
    for key in keys:
        plan = key.plan or key.tags.get(TAG_PLAN, "-")
        if key.id in usage:
            quota = plans[key.plan].quota if key.plan in plans else None
            used = f"{usage[key.id][0]}" + (f" of {quota}" if quota else "")
        else:
            used = "-"
        rows.append((key.consumer, plan, key.state, key.id, used))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def _limits(plan: Plan) -> str:
    quota = f"{plan.quota} requests per {plan.period.lower()}" if plan.quota else "no quota"
    throttle = f"{plan.rate:g} req/s, burst {plan.burst}" if plan.rate else "no throttle"
    return f"{quota}, {throttle}"


def run(consumers: Consumers, args: argparse.Namespace) -> int:
    if args.command == "add":
        key_id, value = consumers.add(args.name, args.plan)
        plan = consumers.plan(args.plan)
        print(f"consumer {args.name} added on plan {plan.name} ({_limits(plan)}), key id {key_id}")
        print(f"API key (shown this once; send it as x-api-key): {value}")
    elif args.command == "list":
        _print_retired(consumers.expire())
        print("\n".join(list_table(consumers)))
    elif args.command == "revoke":
        for key in consumers.revoke(args.name):
            print(f"revoked key {key.id} of consumer {args.name}: disabled, off its plan, kept on record")
    elif args.command == "rotate":
        grace = timedelta(hours=args.grace_hours)
        key_id, value, old, deadline = consumers.rotate(args.name, grace)
        print(f"consumer {args.name}: new key {key_id} on plan {old.plan}")
        print(f"API key (shown this once; send it as x-api-key): {value}")
        if grace > timedelta(0):
            print(
                f"old key {old.id} keeps working until {_iso(deadline)}; after that, "
                f"make consumer-list ENV={consumers.env} (or consumer-expire) disables it"
            )
        else:
            print(f"old key {old.id} disabled now (no grace)")
    else:  # expire
        retired = consumers.expire()
        _print_retired(retired)
        if not retired:
            print("no key past its grace period")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m deploy.consumers", description=__doc__.splitlines()[0])
    p.add_argument("--env", required=True, help="dev, uat, prod (AWS) or local (the local stack)")
    p.add_argument("--store", type=Path, default=None, help="ENV=local: the consumer store")
    p.add_argument("--template", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--samconfig", type=Path, default=None, help=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="a new consumer key on a plan (prints the key once)")
    add.add_argument("--name", default="", help="the consumer, e.g. acme")
    add.add_argument("--plan", default="", help="the plan, e.g. standard or free")
    sub.add_parser("list", help="every consumer key: plan, state, use this month")
    revoke = sub.add_parser("revoke", help="disable a consumer's keys and take them off their plan")
    revoke.add_argument("--name", default="")
    rotate = sub.add_parser("rotate", help="a new key on the same plan; the old one retires after the grace")
    rotate.add_argument("--name", default="")
    rotate.add_argument("--grace-hours", type=float, default=DEFAULT_GRACE_HOURS)
    sub.add_parser("expire", help="disable the keys past their grace period")
    return p


def _clients(args: argparse.Namespace) -> tuple[Any, Any, str]:
    """(API Gateway, CloudFormation, stack name): the local stack's stand-ins or boto3's clients."""
    if args.env == "local":
        from emulator.consumers import DEFAULT_STORE, local_clients
        from stack import DEFAULT_SAMCONFIG, DEFAULT_TEMPLATE, SettingsError, load_settings

        try:
            settings = load_settings(args.template or DEFAULT_TEMPLATE, args.samconfig or DEFAULT_SAMCONFIG)
        except SettingsError as exc:
            raise st.DeployError(str(exc)) from None
        cfn, apigw = local_clients(settings, args.store or DEFAULT_STORE)
        return apigw, cfn, settings.stack_name
    import boto3

    name = st.stack_name(args.env)
    session = boto3.session.Session()
    return session.client("apigateway"), session.client("cloudformation"), name


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)

    def body() -> int:
        if args.command in ("add", "revoke", "rotate") and not args.name:
            raise st.DeployError(f"NAME is required: make consumer-{args.command} NAME=acme ENV={args.env}")
        if args.command == "add" and not args.plan:
            raise st.DeployError(f"PLAN is required: make consumer-add NAME={args.name} PLAN=standard")
        apigw, cfn, stack_name = _clients(args)
        try:
            return run(Consumers(apigw, cfn, stack_name, args.env), args)
        except ValueError as exc:  # the local store is unreadable
            raise st.DeployError(str(exc)) from None

    return st.run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
