"""Consumers on the local stack: `make consumer-add ENV=local` keys, each held to its own plan by the
local gateway (quota and throttle per key, API Gateway's 429 bodies), revoked and rotated keys, and
the usage `consumer-list` reports. Tiny plans come from a samconfig override or settings."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from deploy import consumers as co
from emulator.consumers import KeyRegistry, local_clients, read_usage, usage_path
from emulator.functions import Alias
from emulator.gateway import Gateway, api_key_id
from stack import DEFAULT_SAMCONFIG, PlanSettings, load_settings
from tests.integration.test_gateway_cli import Served
from tests.usermake import run_make

pytestmark = pytest.mark.integration

BODY = json.dumps({"text": "what a lovely morning"})
SERVE_KEY = "serve-own-key-0123456789abcdef"
KEY_LINE = re.compile(r"^API key \(shown this once; send it as x-api-key\): (\S+)$", re.M)


def tiny_samconfig(tmp_path: Path, **overrides: int) -> Path:
    """samconfig.toml whose [local] environment sets the plans' parameters given."""
    text = DEFAULT_SAMCONFIG.read_text(encoding="utf-8")
    items = ", ".join(f'"{k}={v}"' for k, v in {"Environment": "prod", **overrides}.items())
    text = re.sub(r"(\[local\.deploy\.parameters\]\nparameter_overrides = )\[[^\]]*\]", rf"\1[{items}]", text)
    path = tmp_path / "samconfig.toml"
    path.write_text(text, encoding="utf-8")
    return path


def make_consumer(command: str, store: Path, samconfig: Path, **variables: str) -> str:
    """`make consumer-<command> ENV=local ...` on the given store; its stdout."""
    extra = [f"{k}={v}" for k, v in variables.items()]
    args = f"ARGS=--store {store} --samconfig {samconfig}"
    done = run_make("--no-print-directory", f"consumer-{command}", "ENV=local", args, *extra)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def post(url: str, key: str, session: requests.Session | None = None) -> requests.Response:
    return (session or requests).post(url, data=BODY, headers={"x-api-key": key}, timeout=15)


def test_two_keys_on_two_plans_have_their_own_quotas(tmp_path):
    """Done-when of issue 12: `make consumer-add` twice with two plans against a running `serve`
    gives two keys; acme (free, 3 a month) is refused with Limit Exceeded after 3 requests while
    globex (standard) still gets 200, and so does serve's own --api-key; consumer-list shows the use."""
    samconfig = tiny_samconfig(tmp_path, FreeQuotaLimit=3, QuotaLimit=1000)
    store = tmp_path / "consumers.json"
    served = Served(
        ["--api-key", SERVE_KEY, "--consumers", str(store), "--samconfig", str(samconfig)], tmp_path
    )
    try:
        assert f"consumers: 0 keys on plans standard, free in {store}" in served.banner
        acme_out = make_consumer("add", store, samconfig, NAME="acme", PLAN="free")
        globex_out = make_consumer("add", store, samconfig, NAME="globex", PLAN="standard")
        acme, globex = KEY_LINE.search(acme_out).group(1), KEY_LINE.search(globex_out).group(1)
        assert "on plan free (3 requests per month" in acme_out and acme != globex
        assert acme not in json.dumps(json.loads(store.read_text()))  # only its hash is kept

        with requests.Session() as s:
            assert [post(served.url, acme, s).status_code for _ in range(3)] == [200, 200, 200]
            over = post(served.url, acme, s)
            assert (over.status_code, over.json()) == (429, {"message": "Limit Exceeded"})
            assert over.headers["x-amzn-ErrorType"] == "LimitExceededException"
            assert [post(served.url, globex, s).status_code for _ in range(4)] == [200] * 4
            assert post(served.url, SERVE_KEY, s).status_code == 200
            assert post(served.url, "not-a-consumer-key-0123456789", s).status_code == 403

        deadline = time.monotonic() + 10  # the gateway writes the usage every 0.5 s
        while True:
            table = make_consumer("list", store, samconfig)
            if "3 of 3" in table and "4 of 1000" in table or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        rows = {line.split()[0]: line.split() for line in table.splitlines()[1:]}
        assert rows["acme"][1:3] == ["free", "active"] and rows["acme"][-3:] == ["3", "of", "3"]
        assert rows["globex"][1:3] == ["standard", "active"] and rows["globex"][-3:] == ["4", "of", "1000"]
    finally:
        code, out = served.stop()
    assert code == 0
    assert acme not in out and globex not in out and SERVE_KEY not in out  # keys never logged


@pytest.fixture
def stack(version, tmp_path):
    """A gateway over consumers in tmp_path with tiny plans: free 1 req/s burst 1 (quota 1000),
    standard 1000 req/s (quota 1000); and the consumer commands over the same store."""
    plans = {
        "standard": PlanSettings("standard", "UsagePlan", 1000, "MONTH", 0, 1000.0, 1000),
        "free": PlanSettings("free", "FreeUsagePlan", 1000, "MONTH", 0, 1.0, 1),
    }
    settings = dataclasses.replace(load_settings(), plans=plans)
    store = tmp_path / "consumers.json"
    gateway = Gateway(
        settings, Alias("live", version), SERVE_KEY, None, consumers=KeyRegistry(settings, store)
    )
    gateway.start()
    cfn, apigw = local_clients(settings, store)
    yield gateway, co.Consumers(apigw, cfn, settings.stack_name, "local"), store
    gateway.stop(stop_functions=False)


def test_throttles_are_per_key(stack):
    """acme's free bucket (burst 1) refuses its second request at once with Too Many Requests,
    while globex's standard bucket lets all of its requests through."""
    gateway, consumers, _ = stack
    _, acme = consumers.add("acme", "free")
    _, globex = consumers.add("globex", "standard")
    with requests.Session() as s:
        first, second = post(gateway.route_url(), acme, s), post(gateway.route_url(), acme, s)
        assert first.status_code == 200
        assert (second.status_code, second.json()) == (429, {"message": "Too Many Requests"})
        assert second.headers["x-amzn-ErrorType"] == "TooManyRequestsException"
        assert [post(gateway.route_url(), globex, s).status_code for _ in range(5)] == [200] * 5


def test_a_revoked_key_is_refused_and_a_rotated_one_retires_with_its_grace(stack):
    """revoke: 403 at the next request. rotate with grace: both keys work; expire after the
    deadline (grace 0 here) leaves only the new key working."""
    gateway, consumers, _ = stack
    _, acme = consumers.add("acme", "standard")
    _, globex = consumers.add("globex", "standard")
    url = gateway.route_url()
    assert post(url, acme).status_code == 200
    consumers.revoke("acme")
    assert (post(url, acme).status_code, post(url, acme).json()) == (403, {"message": "Forbidden"})

    new_id, new_globex, old, _ = consumers.rotate("globex", timedelta(hours=1))
    assert post(url, globex).status_code == 200 and post(url, new_globex).status_code == 200
    assert old.plan == "standard" and new_id != old.id
    newer_id, newest, _, _ = consumers.rotate("globex", timedelta(0))
    assert post(url, newest).status_code == 200
    assert post(url, new_globex).status_code == 403  # rotated without grace: disabled at once
    assert post(url, globex).status_code == 200  # its own grace (1 h) has not ended


def test_the_event_names_the_consumers_key_id(stack):
    """requestContext.identity.apiKeyId is the consumer key's id (the access log's apiKeyId)."""
    gateway, consumers, _ = stack
    key_id, value = consumers.add("acme", "standard")
    assert key_id == api_key_id(value)
    seen = []
    invoke = gateway.alias.invoke_detailed

    def spy(event, **kwargs):
        seen.append(event["requestContext"]["identity"]["apiKeyId"])
        return invoke(event, **kwargs)

    gateway.alias.invoke_detailed = spy
    try:
        assert post(gateway.route_url(), value).status_code == 200
    finally:
        del gateway.alias.invoke_detailed
    assert seen == [key_id]


def test_quota_use_survives_a_restart_and_resets_with_the_period(tmp_path):
    """A new registry (serve restarted) continues from the usage file; a new month starts at 0."""
    plan = PlanSettings("tiny", "UsagePlan", 2, "MONTH", 0, None, None)
    settings = dataclasses.replace(load_settings(), plans={"tiny": plan})
    store = tmp_path / "consumers.json"
    cfn, apigw = local_clients(settings, store)
    _, value = co.Consumers(apigw, cfn, settings.stack_name, "local").add("acme", "tiny")
    now = [1_800_000_000.0]  # 2027-01-15
    first = KeyRegistry(settings, store, clock=lambda: now[0])
    assert [first.admit([value], "/infer/hate-speech/POST").refusal for _ in range(2)] == [None, None]
    first.stop()  # writes the usage
    assert next(iter(read_usage(usage_path(store)).values()))["used"] == 2
    second = KeyRegistry(settings, store, clock=lambda: now[0])
    assert second.admit([value], "/infer/hate-speech/POST").refusal == "Limit Exceeded"
    now[0] += 31 * 86_400  # February
    assert second.admit([value], "/infer/hate-speech/POST").refusal is None


def test_method_throttling_applies_per_key_and_method_on_top_of_the_plan(tmp_path):
    """A plan's "/path/METHOD" throttle is a bucket of its own: full there, the method is refused
    with Too Many Requests while the plan's bucket still has room for other methods."""
    plan = PlanSettings(
        "standard", "UsagePlan", None, "MONTH", 0, 1000.0, 1000, {"/infer/hate-speech/batch/POST": (1.0, 1)}
    )
    settings = dataclasses.replace(load_settings(), plans={"standard": plan})
    store = tmp_path / "consumers.json"
    cfn, apigw = local_clients(settings, store)
    _, value = co.Consumers(apigw, cfn, settings.stack_name, "local").add("acme", "standard")
    registry = KeyRegistry(settings, store, monotonic=lambda: 0.0)
    batch, single = "/infer/hate-speech/batch/POST", "/infer/hate-speech/POST"
    assert [registry.admit([value], batch).refusal for _ in range(2)] == [None, "Too Many Requests"]
    assert registry.admit([value], single).refusal is None
    assert registry.admit([value, value], single) is None  # two x-api-key headers: 403


def test_lifting_the_quota_lifts_it_for_every_plan_s_keys(tmp_path):
    """`serve --no-quota` (settings.lifted(quota=True)) lifts the quota of the consumer keys' plans
    too, not only the stack key's: a key on a plan with a quota of 1 passes its second request;
    the plan's throttle still applies."""
    plan = PlanSettings("tiny", "TinyUsagePlan", 1, "MONTH", 0, 1.0, 1, {})
    base = load_settings()  # the stack's own key stays on its plan: "tiny" is a consumer's only
    settings = dataclasses.replace(base, plans={**base.plans, "tiny": plan})
    assert settings.default_plan != "tiny"
    store = tmp_path / "consumers.json"
    cfn, apigw = local_clients(settings, store)
    _, value = co.Consumers(apigw, cfn, settings.stack_name, "local").add("acme", "tiny")
    now = [0.0]
    registry = KeyRegistry(settings.lifted(quota=True), store, monotonic=lambda: now[0])
    refusals = []
    for _ in range(3):
        now[0] += 1.0  # the bucket (1 req/s, burst 1) refills
        refusals.append(registry.admit([value], "/infer/hate-speech/POST").refusal)
    refusals.append(registry.admit([value], "/infer/hate-speech/POST").refusal)  # at once: throttled
    assert refusals == [None, None, None, "Too Many Requests"]
