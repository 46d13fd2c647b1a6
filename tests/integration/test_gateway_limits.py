"""The usage plan over real HTTP: the per-key token bucket (RateLimit, BurstLimit) and the quota
(Limit per Period). Small limits come from settings overrides, so each test takes a moment."""

from __future__ import annotations

import json
import time

import pytest
import requests

from emulator.functions import Alias
from emulator.gateway import Gateway, Quota, TokenBucket
from stack import load_settings

pytestmark = pytest.mark.integration

API_KEY = "limits-test-key-0123456789abcdef"
BODY = json.dumps({"text": "what a lovely morning"})


@pytest.fixture
def open_gateway(version):
    """Gateways over the shared function version, with the usage plan given."""
    started: list[Gateway] = []

    def make(**plan) -> Gateway:
        settings = load_settings().with_key_plan(**plan)
        gateway = Gateway(settings, Alias("live", version), API_KEY, None).start()
        started.append(gateway)
        return gateway

    yield make
    for gateway in started:
        gateway.stop(stop_functions=False)


def send(gateway: Gateway, session: requests.Session, n: int, key: str = API_KEY) -> list[requests.Response]:
    return [
        session.post(gateway.route_url(), data=BODY, headers={"x-api-key": key}, timeout=15) for _ in range(n)
    ]


def test_local_environment_takes_the_usage_plan_from_samconfig():
    """samconfig's [local] overrides QuotaLimit, RateLimit and BurstLimit over the template's defaults."""
    local, prod = load_settings(env="local").key_plan, load_settings(env="prod").key_plan
    assert (local.quota_limit, local.rate_limit, local.burst_limit) == (500, 50.0, 100)
    assert (prod.quota_limit, prod.rate_limit, prod.burst_limit) == (10_000, 1000.0, 1000)
    assert local.quota_period == prod.quota_period == "MONTH"


def test_requests_over_the_burst_are_429_too_many_requests(open_gateway):
    """A burst of 3 then a rate of 2/s: the 4th request in a row is throttled."""
    gateway = open_gateway(rate_limit=2.0, burst_limit=3, quota_limit=None)
    with requests.Session() as s:
        answers = send(gateway, s, 5)
    assert [r.status_code for r in answers[:3]] == [200, 200, 200]
    throttled = answers[3]
    assert throttled.status_code == 429
    assert throttled.json() == {"message": "Too Many Requests"}
    assert throttled.headers["x-amzn-ErrorType"] == "TooManyRequestsException"
    assert throttled.headers["Access-Control-Allow-Origin"] == "*"


def test_the_stack_s_own_key_gets_its_plan_s_method_throttle(open_gateway):
    """The plan's "/path/METHOD" throttle holds for the stack's own key as for a consumer's (API
    Gateway keeps it per key and method): with a burst of 2, the third batch in a row is 429 while
    single requests still pass on the plan's own bucket (a refill of 0.01 batches a second gives
    no token back while the three are sent, however slow the machine)."""
    batch = {"/infer/hate-speech/batch/POST": (0.01, 2)}
    gateway = open_gateway(rate_limit=1000.0, burst_limit=1000, quota_limit=None, method_throttles=batch)
    body = json.dumps({"texts": ["what a lovely morning"]})
    with requests.Session() as s:
        batches = [
            s.post(gateway.route_url("/infer/hate-speech/batch"), data=body, headers={"x-api-key": API_KEY})
            for _ in range(3)
        ]
        single = send(gateway, s, 1)[0]
    assert [r.status_code for r in batches] == [200, 200, 429]
    assert batches[2].json() == {"message": "Too Many Requests"}
    assert single.status_code == 200


def test_the_bucket_refills_at_the_rate(open_gateway):
    """After throttling, waiting 1/rate seconds earns one more request."""
    gateway = open_gateway(rate_limit=4.0, burst_limit=1, quota_limit=None)
    with requests.Session() as s:
        assert [r.status_code for r in send(gateway, s, 2)] == [200, 429]
        time.sleep(0.3)
        assert send(gateway, s, 1)[0].status_code == 200


def test_requests_over_the_quota_are_429_limit_exceeded(open_gateway):
    """Quota 3: the 4th request of the period -> 429 {"message": "Limit Exceeded"}, and it stays so."""
    gateway = open_gateway(rate_limit=1000.0, burst_limit=1000, quota_limit=3)
    with requests.Session() as s:
        answers = send(gateway, s, 5)
    assert [r.status_code for r in answers] == [200, 200, 200, 429, 429]
    assert answers[3].json() == {"message": "Limit Exceeded"}
    assert answers[3].headers["x-amzn-ErrorType"] == "LimitExceededException"


def test_refused_keys_and_preflights_do_not_use_the_quota(open_gateway):
    """Requests without a valid key and OPTIONS preflights are not metered."""
    gateway = open_gateway(rate_limit=1000.0, burst_limit=1000, quota_limit=2)
    with requests.Session() as s:
        assert {r.status_code for r in send(gateway, s, 5, key="not-the-key-0123456789abc")} == {403}
        assert {s.options(gateway.route_url(), timeout=15).status_code for _ in range(5)} == {200}
        assert [r.status_code for r in send(gateway, s, 3)] == [200, 200, 429]


def test_throttled_requests_do_not_use_the_quota(open_gateway):
    """A 429 Too Many Requests costs no quota: after the bucket refills, the quota is intact."""
    gateway = open_gateway(rate_limit=5.0, burst_limit=1, quota_limit=2)
    with requests.Session() as s:
        assert [r.status_code for r in send(gateway, s, 3)] == [200, 429, 429]
        time.sleep(0.25)
        assert send(gateway, s, 1)[0].status_code == 200
        time.sleep(0.25)
        assert send(gateway, s, 1)[0].json() == {"message": "Limit Exceeded"}


def test_concurrent_requests_never_exceed_the_burst(open_gateway):
    """40 requests at once against a burst of 10 (rate 1/s): exactly 10 pass, the rest are 429."""
    from concurrent.futures import ThreadPoolExecutor

    gateway = open_gateway(rate_limit=1.0, burst_limit=10, quota_limit=None)

    def one(_: int) -> int:
        return requests.post(
            gateway.route_url(), data=BODY, headers={"x-api-key": API_KEY}, timeout=15
        ).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(one, range(40)))
    assert statuses.count(200) in (10, 11)  # one token may refill during the burst
    assert statuses.count(429) == 40 - statuses.count(200)


def test_token_bucket_refills_to_its_capacity_only():
    """A bucket idle for long holds `burst` tokens, not more."""
    now = [0.0]
    bucket = TokenBucket(rate=10.0, burst=3, clock=lambda: now[0])
    now[0] = 100.0
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    now[0] += 0.15  # 1.5 tokens' worth of time
    assert bucket.take() and not bucket.take()


def test_quota_resets_at_the_start_of_the_next_period():
    """A monthly quota used up on 31 January is available again on 1 February (UTC)."""
    jan31 = time.mktime((2026, 1, 31, 23, 0, 0, 0, 0, 0)) - time.timezone
    feb1 = jan31 + 2 * 3600
    now = [jan31]
    quota = Quota(limit=1, period="MONTH", clock=lambda: now[0])
    assert quota.take() and not quota.take()
    now[0] = feb1
    assert quota.take()


def test_quota_periods_start_where_api_gateway_starts_them():
    """DAY at UTC midnight, WEEK on Sunday (offset 0), MONTH on the 1st (plus the offset in days)."""
    wed = time.mktime((2026, 11, 25, 15, 30, 0, 0, 0, 0)) - time.timezone  # a Wednesday
    day = Quota(1, "DAY").period_start(wed)
    week = Quota(1, "WEEK").period_start(wed)
    month = Quota(1, "MONTH").period_start(wed)
    month_offset = Quota(1, "MONTH", offset=2).period_start(wed)
    assert time.gmtime(day)[:6] == (2026, 11, 25, 0, 0, 0)
    assert time.gmtime(week)[:6] == (2026, 11, 22, 0, 0, 0)  # Sunday
    assert time.gmtime(month)[:6] == (2026, 11, 1, 0, 0, 0)
    assert time.gmtime(month_offset)[:6] == (2026, 11, 3, 0, 0, 0)
    early = time.mktime((2026, 11, 2, 8, 0, 0, 0, 0, 0)) - time.timezone  # before this month's offset day
    assert time.gmtime(Quota(1, "MONTH", offset=2).period_start(early))[:6] == (2026, 10, 3, 0, 0, 0)
