"""The live alias over real HTTP: two versions of the real handler, each its own process with a
real cold start, a weighted split, weight changes under load, faults, and the records."""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from canary.records import LABELS, RecordStore
from emulator.functions import Alias, FunctionVersion
from emulator.gateway import Gateway
from stack import load_settings

pytestmark = pytest.mark.integration

API_KEY = "alias-test-key-0123456789abcdef"
TEXTS = ("have a lovely day", "you absolute clown", "the match starts at nine", "shut up already")
# A direct invocation, as the PreTraffic hook makes one (the event file the handler's tests use).
ROOT = Path(__file__).resolve().parents[2]
EVENT = json.loads((ROOT / "events" / "infer-post-valid.json").read_text())


@pytest.fixture(scope="module")
def settings():
    return load_settings().lifted(quota=True, throttle=True)


@pytest.fixture(scope="module")
def stack(settings, tmp_path_factory):
    store = RecordStore(tmp_path_factory.mktemp("records") / "records.sqlite")
    baseline = FunctionVersion("1", "v1", settings=settings)
    canary = FunctionVersion("2", "v2", settings=settings)
    alias = Alias("live", baseline, canary, 0.0, seed=11)
    gateway = Gateway(settings, alias, API_KEY, store).start()
    yield gateway, alias, baseline, canary, store
    alias.set_routing(canary, 0.0)
    gateway.stop()


def post(url: str, text: str, session: requests.Session | None = None) -> requests.Response:
    sender = session or requests
    return sender.post(url, data=json.dumps({"text": text}), headers={"x-api-key": API_KEY}, timeout=30)


def models_answering(url: str, n: int) -> Counter[str]:
    with requests.Session() as s:
        answers = [post(url, TEXTS[i % len(TEXTS)], s) for i in range(n)]
    assert {r.status_code for r in answers} == {200}
    return Counter(r.headers["X-Model-Version"] for r in answers)


def test_each_version_runs_in_its_own_process_with_a_real_cold_start(settings):
    """Versions 1 and 2 are two worker processes (not this one) that import the handler and load
    their model themselves: each one's first invocation is a cold start, the next ones are warm."""
    baseline = FunctionVersion("1", "v1", settings=settings)
    canary = FunctionVersion("2", "v2", settings=settings)
    with Gateway(settings, Alias("live", baseline, canary, 0.5, seed=1), API_KEY, None) as gateway:
        canary.start()
        assert baseline.pid and canary.pid and baseline.pid != canary.pid
        assert os.getpid() not in (baseline.pid, canary.pid)
        for version in (baseline, canary):
            with open(f"/proc/{version.pid}/cmdline", "rb") as fh:
                assert b"emulator.worker" in fh.read()
            first, second = version.invoke_detailed(EVENT), version.invoke_detailed(EVENT)
            assert first.cold_start and not second.cold_start
            assert first.init_ms is not None and first.init_ms > 1.0
            assert version.cold_start_ms is not None and version.cold_start_ms > first.init_ms
            assert version.cold_starts_ms == [version.cold_start_ms]
        assert post(gateway.route_url(), "warm by now").status_code == 200


def test_weight_zero_sends_everything_to_the_baseline(stack):
    """No canary share: every answer comes from v1."""
    gateway, alias, _, canary, _ = stack
    alias.set_routing(canary, 0.0)
    assert models_answering(gateway.route_url(), 30) == Counter({"v1": 30})


def test_weight_one_sends_everything_to_the_canary(stack):
    """All of the traffic to the canary (the promotion step): every answer from v2."""
    gateway, alias, _, canary, _ = stack
    alias.set_routing(canary, 1.0)
    try:
        assert models_answering(gateway.route_url(), 30) == Counter({"v2": 30})
    finally:
        alias.set_routing(canary, 0.0)


def test_a_weighted_split_gives_the_canary_its_share(stack):
    """Weight 0.3 over 300 requests: the canary answers 30 % (well within 4 standard deviations)."""
    gateway, alias, _, canary, _ = stack
    alias.set_routing(canary, 0.3)
    try:
        counts = models_answering(gateway.route_url(), 300)
    finally:
        alias.set_routing(canary, 0.0)
    assert 0.3 - 0.11 < counts["v2"] / 300 < 0.3 + 0.11


def test_records_tell_the_versions_apart(stack):
    """After a split, the store holds one record per answer, by function version and model."""
    gateway, alias, _, canary, store = stack
    gateway.flush()
    since = time.time()
    alias.set_routing(canary, 0.5)
    try:
        counts = models_answering(gateway.route_url(), 60)
    finally:
        alias.set_routing(canary, 0.0)
    assert gateway.flush()
    records = store.window(since, time.time() + 1)
    assert len(records) == 60
    assert Counter(r.model_version for r in records) == counts
    assert {(r.function_version, r.model_version) for r in records} == {("1", "v1"), ("2", "v2")}
    assert all(r.status == 200 and r.label in LABELS and r.latency_ms > 0 for r in records)


def test_weight_changes_under_concurrent_load_lose_no_request(stack):
    """Eight clients send while the weight flips between 0, 0.1, 0.5 and 1: every request is
    answered 200 by one version or the other; none is dropped or answered 5xx."""
    gateway, alias, _, canary, _ = stack
    stop = threading.Event()

    def flip() -> None:
        weights = (0.0, 0.1, 0.5, 1.0)
        i = 0
        while not stop.is_set():
            alias.set_routing(canary, weights[i % len(weights)])
            i += 1
            time.sleep(0.005)

    def client(n: int) -> list[tuple[int, str]]:
        with requests.Session() as s:
            out = []
            for i in range(n):
                r = post(gateway.route_url(), TEXTS[i % len(TEXTS)], s)
                out.append((r.status_code, r.headers.get("X-Model-Version", "")))
            return out

    flipper = threading.Thread(target=flip)
    flipper.start()
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = [a for batch in pool.map(client, [25] * 8) for a in batch]
    finally:
        stop.set()
        flipper.join()
        alias.set_routing(canary, 0.0)
    assert len(answers) == 200
    assert {status for status, _ in answers} == {200}
    assert {model for _, model in answers} == {"v1", "v2"}


def test_an_errors_fault_in_the_canary_is_502_and_recorded(settings, tmp_path):
    """errors=1 in the canary: its invocations fail as unhandled errors, API Gateway answers 502
    {"message": "Internal server error"}, and the record says 502 with no label."""
    store = RecordStore(tmp_path / "records.sqlite")
    baseline = FunctionVersion("1", "v1", settings=settings)
    canary = FunctionVersion("2", "v2", faults=["errors=1"], settings=settings, seed=3)
    with Gateway(settings, Alias("live", baseline, canary, 1.0), API_KEY, store) as gateway:
        canary.start()
        r = post(gateway.route_url(), "hello there")
        assert (r.status_code, r.json()) == (502, {"message": "Internal server error"})
        assert "X-Model-Version" not in r.headers
        gateway.flush()
        (record,) = store.window(0, time.time() + 1)
    assert (record.function_version, record.status, record.label) == ("2", 502, None)


def test_a_corrupt_model_answers_the_functions_own_500(settings):
    """A canary whose model fails its checksum answers 500 {"issue"} itself (no 502: the handler
    ran and returned a proper response)."""
    canary = FunctionVersion("2", "v2", faults=["corrupt"], settings=settings)
    with Gateway(settings, Alias("live", canary), API_KEY, None) as gateway:
        r = post(gateway.route_url(), "hello there")
    assert r.status_code == 500
    assert r.json() == {"issue": "Internal server error"}


def test_invalid_routing_is_refused(stack):
    """A weight outside 0..1, a weight without a canary, or the primary as its own canary."""
    _, alias, baseline, canary, _ = stack
    for bad in ((canary, 1.5), (canary, -0.1), (None, 0.5), (baseline, 0.5)):
        with pytest.raises(ValueError):
            alias.set_routing(*bad)
    assert alias.routing.primary is baseline


def test_stopping_the_gateway_stops_the_environments(settings):
    """Gateway.stop() ends the worker processes it started."""
    version = FunctionVersion("1", "v1", settings=settings)
    gateway = Gateway(settings, Alias("live", version), API_KEY, None).start()
    pid = version.pid
    assert pid is not None
    gateway.stop()
    assert version.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_records_carry_the_handlers_source_probe_id_and_shadow_end_to_end(stack):
    """A user's request through the gateway and a probe's straight to a version both reach the store
    with what the handler logged: source live (no probe id) or probe (the request id after
    "probe-"), the other model's label in the shadow with its time apart, the handler's latency."""
    from emulator.functions import request_record

    gateway, alias, baseline, canary, store = stack
    since = time.time()
    assert post(gateway.route_url(), "you absolute clown").status_code == 200
    event = json.loads(json.dumps(EVENT))
    event["requestContext"]["requestId"] = "probe-RUN-17-3"
    invocation = canary.invoke_detailed(event)
    store.extend(
        [
            request_record(
                canary, invocation, 200, json.loads(invocation.payload["body"])["label"], time.time(), event
            )
        ]
    )
    gateway.flush()
    live, probe = store.window(since, time.time() + 1)
    assert (live.source, live.probe_id, live.function_version) == ("live", None, "1")
    # Every other shipped model scores in the shadow (SHADOW_MODELS unset: all)
    shipped = {p.parent.name for p in (ROOT / "models").glob("v*/manifest.json")}
    assert dict(live.shadow).keys() == shipped - {"v1"} and live.shadow_ms is not None and live.shadow_ms >= 0
    assert (probe.source, probe.probe_id, probe.model_version) == ("probe", "RUN-17-3", "v2")
    assert dict(probe.shadow).keys() == shipped - {"v2"}


def test_a_hook_onset_fault_starts_when_the_environment_is_told_the_hook_is_done(settings):
    """labels=hate_speech:1@hook: the environment answers truthfully (the model's own label, not
    hate speech for this text) until mark_hook_done(), then
    every answer (and the label its log record carries) is hate speech; a new environment started
    after that (the old one died) is told at its start."""
    canary = FunctionVersion("2", "v2", faults=["labels=hate_speech:1@hook"], settings=settings, seed=3)
    event = json.loads(json.dumps(EVENT))
    event["body"] = json.dumps({"text": "have a lovely day"})
    with canary:
        before = [canary.invoke_detailed(event) for _ in range(5)]
        canary.mark_hook_done()
        after = canary.invoke_detailed(event)
        os.kill(canary.pid, 9)
        time.sleep(0.2)
        reborn = canary.invoke_detailed(event)
    truthful = {json.loads(i.payload["body"])["label"] for i in before}
    assert len(truthful) == 1 and "hate_speech" not in truthful
    for invocation in (after, reborn):
        assert json.loads(invocation.payload["body"])["label"] == "hate_speech"
        assert invocation.record["label"] == "hate_speech"
