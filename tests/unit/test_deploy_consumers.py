"""`make consumer-*` against AWS: deploy.consumers over stubbed API Gateway and CloudFormation
clients (botocore Stubber, no network); the local stack's stand-ins are tested in
tests/integration/test_gateway_consumers.py."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.stub import ANY, Stubber

from deploy import consumers as co
from deploy import stack as st

REGION = "us-east-1"
STACK = "hate-speech-prod"
PREFIX = "hate-speech-prod-"
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
PLANS = {
    "standard": ("UsagePlan", "std111", 10_000, 1000.0, 1000),
    "free": ("FreeUsagePlan", "fre222", 1000, 5.0, 10),
}
VALUE = "k" * 40  # what create_api_key answers as the new key's value


def client(service: str):
    return boto3.client(
        service, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )


def tags(consumer: str, plan: str, **extra: str) -> dict[str, str]:
    return {"consumer": consumer, "plan": plan, "stack": STACK, **extra}


def api_key(key_id: str, consumer: str, plan: str, enabled: bool = True, **extra: str) -> dict:
    return {
        "id": key_id,
        "name": PREFIX + consumer,
        "enabled": enabled,
        "createdDate": datetime(2026, 11, 1, tzinfo=UTC),
        "tags": tags(consumer, plan, **extra),
    }


class Account:
    """Stubbed clients of one stack with the two plans; expectations are queued in call order."""

    def __init__(self) -> None:
        self.apigw, self.cfn = client("apigateway"), client("cloudformation")
        self.s_apigw, self.s_cfn = Stubber(self.apigw), Stubber(self.cfn)
        self.s_cfn.add_response(
            "describe_stacks",
            {
                "Stacks": [
                    {
                        "StackName": STACK,
                        "CreationTime": NOW,
                        "StackStatus": "UPDATE_COMPLETE",
                        "Parameters": [
                            {"ParameterKey": "AppName", "ParameterValue": "hate-speech"},
                            {"ParameterKey": "Environment", "ParameterValue": "prod"},
                        ],
                    }
                ]
            },
            {"StackName": STACK},
        )
        self.s_cfn.add_response(
            "list_stack_resources",
            {
                "StackResourceSummaries": [
                    {
                        "LogicalResourceId": logical,
                        "PhysicalResourceId": plan_id,
                        "ResourceType": "AWS::ApiGateway::UsagePlan",
                        "LastUpdatedTimestamp": NOW,
                        "ResourceStatus": "UPDATE_COMPLETE",
                    }
                    for logical, plan_id, *_ in PLANS.values()
                ]
            },
        )
        self.planned = False

    def plans(self) -> Account:
        """The get_usage_plan calls that read the plans (once per Consumers)."""
        for name, (_, plan_id, quota, rate, burst) in PLANS.items():
            self.s_apigw.add_response(
                "get_usage_plan",
                {
                    "id": plan_id,
                    "name": PREFIX + name,
                    "quota": {"limit": quota, "offset": 0, "period": "MONTH"},
                    "throttle": {"rateLimit": rate, "burstLimit": burst},
                },
                {"usagePlanId": plan_id},
            )
        return self

    def keys(self, keys: list[dict], attached: dict[str, str]) -> Account:
        """keys(): the usage plan keys of each plan, then the stack's API keys."""
        for name, (_, plan_id, *_) in PLANS.items():
            items = [{"id": k, "type": "API_KEY"} for k, plan in attached.items() if plan == name]
            self.s_apigw.add_response(
                "get_usage_plan_keys", {"items": items}, {"usagePlanId": plan_id, "limit": 500}
            )
        self.s_apigw.add_response(
            "get_api_keys", {"items": keys}, {"nameQuery": PREFIX, "includeValues": False, "limit": 500}
        )
        return self

    def expect(self, operation: str, params: dict, answer: dict | None = None) -> Account:
        self.s_apigw.add_response(operation, answer or {}, params)
        return self

    def consumers(self, sleeps: list[float] | None = None) -> co.Consumers:
        self.s_apigw.activate()
        self.s_cfn.activate()
        return co.Consumers(
            self.apigw,
            self.cfn,
            STACK,
            "prod",
            now=lambda: NOW,
            sleep=(sleeps.append if sleeps is not None else lambda s: None),
        )

    def done(self) -> None:
        self.s_apigw.assert_no_pending_responses()
        self.s_cfn.assert_no_pending_responses()


def args(command: str, **kw) -> argparse.Namespace:
    return argparse.Namespace(command=command, **kw)


def disable_ops(acct: Account, key_id: str, plan_id: str, tag: str, when: str) -> None:
    acct.expect(
        "update_api_key",
        {"apiKey": key_id, "patchOperations": [{"op": "replace", "path": "/enabled", "value": "false"}]},
        {"id": key_id},
    )
    acct.expect("delete_usage_plan_key", {"usagePlanId": plan_id, "keyId": key_id})
    acct.expect(
        "tag_resource",
        {"resourceArn": f"arn:aws:apigateway:{REGION}::/apikeys/{key_id}", "tags": {tag: when}},
    )


def test_add_creates_a_tagged_key_on_the_plan_and_prints_its_value_once(capsys):
    """add: key <app>-<env>-acme tagged with consumer, plan and stack, enabled, on the free plan's id;
    the value appears once in the output, with the plan's limits."""
    acct = Account().plans().keys([], {})
    acct.expect(
        "create_api_key",
        {
            "name": PREFIX + "acme",
            "description": ANY,
            "enabled": True,
            "tags": tags("acme", "free"),
        },
        {"id": "new1", "value": VALUE, "name": PREFIX + "acme", "enabled": True},
    )
    acct.expect("create_usage_plan_key", {"usagePlanId": "fre222", "keyId": "new1", "keyType": "API_KEY"})
    assert co.run(acct.consumers(), args("add", name="acme", plan="free")) == 0
    out = capsys.readouterr().out
    assert out.count(VALUE) == 1
    assert "consumer acme added on plan free (1000 requests per month, 5 req/s, burst 10), key id new1" in out
    acct.done()


def test_add_refuses_an_unknown_plan_naming_the_plans():
    """add PLAN=gold: a clear error listing the stack's plans, and no key is made."""
    acct = Account().plans()
    with pytest.raises(st.DeployError, match=r"unknown plan 'gold': the stack's plans are free, standard"):
        acct.consumers().add("acme", "gold")
    acct.done()


def test_add_refuses_a_consumer_that_has_an_enabled_key():
    """add twice: the second is refused, naming the existing key and what to do instead."""
    acct = Account().plans().keys([api_key("old1", "acme", "standard")], {"old1": "standard"})
    with pytest.raises(st.DeployError, match=r"consumer 'acme' exists \(key old1, plan standard\): rotate"):
        acct.consumers().add("acme", "free")
    acct.done()


@pytest.mark.parametrize("name", ["", "Acme", "a b", "-acme", "x" * 41, "key"])
def test_add_refuses_a_bad_or_reserved_name(name):
    """Names are 1-40 lower-case letters, digits, hyphens; "key" is the stack's own key."""
    acct = Account()
    with pytest.raises(st.DeployError, match="consumer name"):
        acct.consumers().add(name, "free")


def test_a_key_that_cannot_go_on_its_plan_is_deleted_again():
    """create_usage_plan_key fails: the new key is deleted (no key without limits is left) and the
    AWS error reaches the user."""
    acct = Account().plans().keys([], {})
    acct.expect(
        "create_api_key",
        {"name": ANY, "description": ANY, "enabled": True, "tags": ANY},
        {"id": "new1", "value": VALUE},
    )
    acct.s_apigw.add_client_error("create_usage_plan_key", "BadRequestException", "Invalid stage")
    acct.expect("delete_api_key", {"apiKey": "new1"})
    with pytest.raises(Exception, match="Invalid stage"):
        acct.consumers().add("acme", "standard")
    acct.done()


def test_a_concurrent_modification_conflict_is_retried():
    """API Gateway's ConflictException on create_usage_plan_key is retried after a pause."""
    acct = Account().plans().keys([], {})
    acct.expect(
        "create_api_key",
        {"name": ANY, "description": ANY, "enabled": True, "tags": ANY},
        {"id": "new1", "value": VALUE},
    )
    acct.s_apigw.add_client_error(
        "create_usage_plan_key", "ConflictException", "concurrent modification", 409
    )
    acct.expect("create_usage_plan_key", {"usagePlanId": "std111", "keyId": "new1", "keyType": "API_KEY"})
    sleeps: list[float] = []
    assert acct.consumers(sleeps).add("acme", "standard") == ("new1", VALUE)
    assert sleeps == [1.0]
    acct.done()


def test_list_shows_plan_state_and_this_months_use_of_each_consumer_key(capsys):
    """list: the stack's consumer keys only (not another stack's, not the stack's own key), plan from
    the usage plan keys, use summed over the month's days from get_usage."""
    keys = [
        api_key("a1", "acme", "standard"),
        api_key("g1", "globex", "free"),
        {**api_key("z1", "zeta", "free"), "tags": {"consumer": "zeta", "stack": "hate-speech-dev"}},
        {"id": "own", "name": PREFIX + "key", "enabled": True},
        api_key("r1", "rex", "free", enabled=False, **{"revoked-at": "2026-11-02T00:00:00Z"}),
    ]
    attached = {"a1": "standard", "g1": "free"}
    acct = Account().plans().keys(keys, attached)  # the expire sweep (nothing due)
    acct.keys(keys, attached)  # the table
    window = {"startDate": "2026-11-01", "endDate": "2026-11-30", "limit": 500}
    acct.expect("get_usage", {"usagePlanId": "std111", **window}, {"items": {"a1": [[3, 9997], [4, 9993]]}})
    acct.expect("get_usage", {"usagePlanId": "fre222", **window}, {"items": {"g1": [[1000, 0]]}})
    assert co.run(acct.consumers(), args("list")) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["CONSUMER", "PLAN", "STATE", "KEY", "ID", "USED", "THIS", "MONTH"]
    assert lines[1].split() == ["acme", "standard", "active", "a1", "7", "of", "10000"]
    assert lines[2].split() == ["globex", "free", "active", "g1", "1000", "of", "1000"]
    assert lines[3].split() == ["rex", "free", "revoked", "2026-11-02T00:00:00Z", "r1", "-"]
    assert len(lines) == 4
    acct.done()


def test_revoke_disables_detaches_and_tags_every_enabled_key(capsys):
    """revoke: enabled false, off its plan, tagged revoked-at; the key itself is kept."""
    acct = Account().plans().keys([api_key("a1", "acme", "standard")], {"a1": "standard"})
    disable_ops(acct, "a1", "std111", "revoked-at", "2026-11-30T12:00:00Z")
    assert co.run(acct.consumers(), args("revoke", name="acme")) == 0
    assert "revoked key a1 of consumer acme" in capsys.readouterr().out
    acct.done()


def test_revoke_of_an_unknown_consumer_says_so():
    """revoke NAME=nobody: a clear error, nothing changed."""
    acct = Account().plans().keys([api_key("a1", "acme", "standard")], {"a1": "standard"})
    with pytest.raises(st.DeployError, match=r"unknown consumer 'nobody'"):
        acct.consumers().revoke("nobody")
    acct.done()


def test_rotate_makes_a_new_key_on_the_same_plan_and_tags_the_old_ones_deadline(capsys):
    """rotate: new key on the old key's plan (free), value printed once; the old key stays enabled,
    tagged retire-after now + the grace."""
    keys = [api_key("a1", "acme", "free")]
    acct = Account().plans().keys(keys, {"a1": "free"})  # the expire sweep
    acct.keys(keys, {"a1": "free"})  # the consumer's keys
    acct.expect(
        "create_api_key",
        {"name": PREFIX + "acme", "description": ANY, "enabled": True, "tags": tags("acme", "free")},
        {"id": "a2", "value": VALUE},
    )
    acct.expect("create_usage_plan_key", {"usagePlanId": "fre222", "keyId": "a2", "keyType": "API_KEY"})
    acct.expect(
        "tag_resource",
        {
            "resourceArn": f"arn:aws:apigateway:{REGION}::/apikeys/a1",
            "tags": {"retire-after": "2026-12-01T12:00:00Z"},
        },
    )
    assert co.run(acct.consumers(), args("rotate", name="acme", grace_hours=24.0)) == 0
    out = capsys.readouterr().out
    assert out.count(VALUE) == 1
    assert "old key a1 keeps working until 2026-12-01T12:00:00Z" in out
    acct.done()


def test_expire_disables_only_the_keys_past_their_grace(capsys):
    """expire: a rotated key past its deadline is disabled, detached and tagged retired-at; one whose
    deadline is still ahead, and an active key, are left alone."""
    keys = [
        api_key("a1", "acme", "free", **{"retire-after": "2026-11-30T11:59:59Z"}),
        api_key("a2", "acme", "free"),
        api_key("g1", "globex", "standard", **{"retire-after": "2026-12-01T00:00:00Z"}),
    ]
    acct = Account().plans().keys(keys, {"a1": "free", "a2": "free", "g1": "standard"})
    disable_ops(acct, "a1", "fre222", "retired-at", "2026-11-30T12:00:00Z")
    assert co.run(acct.consumers(), args("expire")) == 0
    assert capsys.readouterr().out.strip() == (
        "retired key a1 of consumer acme (grace ended 2026-11-30T11:59:59Z)"
    )
    acct.done()


def test_rotate_without_an_active_key_is_refused():
    """rotate a revoked consumer: nothing to rotate, say to add it again."""
    keys = [api_key("a1", "acme", "free", enabled=False)]
    acct = Account().plans().keys(keys, {}).keys(keys, {})
    with pytest.raises(st.DeployError, match="no active key on a plan to rotate"):
        acct.consumers().rotate("acme", timedelta(hours=1))
    acct.done()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--env", "prod", "add", "--plan", "free"], "NAME is required: make consumer-add NAME=acme"),
        (["--env", "prod", "add", "--name", "acme"], "PLAN is required"),
        (["--env", "prod", "revoke"], "NAME is required: make consumer-revoke"),
        (["--env", "staging", "list"], "ENV=staging is not in samconfig.toml"),
    ],
)
def test_the_command_line_refuses_missing_arguments_in_one_line(argv, message, capsys):
    """Missing NAME/PLAN or an unknown ENV: exit 2 and one line on stderr, before any AWS call."""
    assert co.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
