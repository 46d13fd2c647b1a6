"""POST /infer/hate-speech/batch over real HTTP: the local gateway (routes read from template.yaml)
in front of the real handler (model v2). 100 texts in one request get the answers of 100 single
requests; the store gets one record per text, as the judge reads them; the usage plan counts the
batch as one request."""

from __future__ import annotations

import pytest
import requests

from canary.records import RecordStore
from emulator.functions import Alias, FunctionVersion
from emulator.gateway import Gateway
from stack import load_settings
from tests.sample_texts import SEEDS

pytestmark = pytest.mark.integration

API_KEY = "batch-integration-key-0123456789ab"
SINGLE, BATCH = "/infer/hate-speech", "/infer/hate-speech/batch"
TEXTS = [f"{seed} ({i})" for i, seed in enumerate(SEEDS * 10)]


def start(tmp_path_factory, **plan) -> tuple[Gateway, RecordStore]:
    settings = load_settings().lifted(throttle=True).with_key_plan(**plan)
    store = RecordStore(tmp_path_factory.mktemp("records") / "records.sqlite")
    version = FunctionVersion("1", "v2", settings=settings)
    return Gateway(settings, Alias("live", version), API_KEY, store).start(), store


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    gateway, store = start(tmp_path_factory, quota_limit=None)
    yield gateway, store
    gateway.stop()


@pytest.fixture(scope="module")
def session():
    with requests.Session() as s:
        s.headers["x-api-key"] = API_KEY
        yield s


def labels_one_by_one(session, gateway, texts):
    answers = [session.post(gateway.route_url(SINGLE), json={"text": t}, timeout=15) for t in texts]
    assert {a.status_code for a in answers} == {200}
    return [a.json() for a in answers]


def test_the_template_s_batch_route_is_served(stack):
    """The local gateway reads both routes from template.yaml, the single one first."""
    gateway, _ = stack
    assert [(r.method, r.path) for r in gateway.settings.routes] == [("POST", SINGLE), ("POST", BATCH)]
    assert all(r.api_key_required for r in gateway.settings.routes)


def test_a_hundred_texts_get_the_answers_of_a_hundred_single_requests(stack, session):
    """One batch of 100 texts -> 100 results, in order, the same label, category and scores as
    100 single requests through the same gateway."""
    gateway, _ = stack
    answer = session.post(gateway.route_url(BATCH), json={"texts": TEXTS}, timeout=30)
    assert answer.status_code == 200 and answer.headers["X-Model-Version"] == "v2"
    results = answer.json()["results"]
    assert len(results) == 100
    assert results == labels_one_by_one(session, gateway, TEXTS)
    assert len({r["label"] for r in results}) > 1


@pytest.mark.data
def test_a_hundred_tweets_of_the_test_split_get_the_single_requests_labels(stack, session, dataset):
    """The same with 100 real tweets of the test split."""
    gateway, _ = stack
    texts = [row.text for row in dataset.test[:100]]
    answer = session.post(gateway.route_url(BATCH), json={"texts": texts}, timeout=30)
    assert answer.status_code == 200
    assert answer.json()["results"] == labels_one_by_one(session, gateway, texts)


def test_the_store_gets_one_record_per_text_of_a_batch(stack, session):
    """The gateway's store (what the local judge reads) holds one record per text, with the label
    of each result in order, the shadow model's label, and latencies that add up to the request's."""
    gateway, store = stack
    gateway.flush()
    before = len(store)
    texts = TEXTS[:12]
    answer = session.post(gateway.route_url(BATCH), json={"texts": texts}, timeout=30)
    assert answer.status_code == 200
    assert gateway.flush()
    records = store.window(0.0, 1e12)[before:]
    assert len(records) == 12
    assert [r.label for r in records] == [res["label"] for res in answer.json()["results"]]
    assert {(r.status, r.model_version, r.function_version, r.source) for r in records} == {
        (200, "v2", "1", "live")
    }
    assert all(r.problem() is None and r.shadow_label("v1") is not None for r in records)


def test_a_refused_batch_is_one_record_and_names_the_bad_text(stack, session):
    """A batch with a bad text: 422 naming its index, through the gateway; one record, no label."""
    gateway, store = stack
    gateway.flush()
    before = len(store)
    answer = session.post(gateway.route_url(BATCH), json={"texts": ["fine", "fine", 3]}, timeout=15)
    assert answer.status_code == 422
    assert answer.json()["issue"].startswith("texts[2] is a number")
    gateway.flush()
    (record,) = store.window(0.0, 1e12)[before:]
    assert record.status == 422 and record.label is None


def test_the_batch_route_needs_the_key_and_answers_the_preflight_without_it(stack):
    """No key -> API Gateway's 403; OPTIONS -> the CORS preflight, no key needed."""
    gateway, _ = stack
    refused = requests.post(gateway.route_url(BATCH), json={"texts": ["hello"]}, timeout=15)
    assert refused.status_code == 403 and refused.json() == {"message": "Forbidden"}
    preflight = requests.options(gateway.route_url(BATCH), timeout=15)
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Headers"] == "Content-Type,X-Api-Key"


def test_a_batch_is_one_request_of_the_quota(tmp_path_factory):
    """API Gateway counts requests, not texts: with a quota of 3, two batches of 100 texts and one
    single request are answered, and the next request of either kind is over the quota."""
    gateway, _ = start(tmp_path_factory, quota_limit=3)
    try:
        with requests.Session() as s:
            s.headers["x-api-key"] = API_KEY
            statuses = [
                s.post(gateway.route_url(BATCH), json={"texts": TEXTS}, timeout=30).status_code,
                s.post(gateway.route_url(BATCH), json={"texts": TEXTS}, timeout=30).status_code,
                s.post(gateway.route_url(SINGLE), json={"text": TEXTS[0]}, timeout=15).status_code,
            ]
            over = s.post(gateway.route_url(BATCH), json={"texts": TEXTS[:1]}, timeout=15)
    finally:
        gateway.stop()
    assert statuses == [200, 200, 200]
    assert over.status_code == 429 and over.json() == {"message": "Limit Exceeded"}
