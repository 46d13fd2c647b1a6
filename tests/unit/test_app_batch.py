"""POST /infer/hate-speech/batch in the handler: the single route's answers for 1 to 100 texts, bad
texts named by index, one log record per text that the canary judge counts as texts, and metrics
that count texts and requests apart."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from canary.records import RequestRecord
from canary.sources import WindowRecords, window_evidence
from tests.sample_texts import SEEDS
from tests.unit._infer_harness import (
    EVENT_API_KEY,
    FakeLambdaContext,
    captured_logs,
    emf_records,
    event,
    invoke,
    load_app,
    request_records,
)

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

BATCH = "infer-batch-post-valid"
SECRET = "okapi-sentinel-51c2 phrase that must never be logged"
TEXTS = [f"{seed} #{i}" if i >= len(SEEDS) else seed for i, seed in enumerate(SEEDS * 10)]


@pytest.fixture(scope="module")
def app():
    return load_app({"MODEL_VERSION": "v2"})


def batch_event(body: object, request_id: str | None = None) -> dict:
    ev = event(BATCH, body=body if isinstance(body, str) else json.dumps(body))
    if request_id is not None:
        ev["requestContext"]["requestId"] = request_id
    return ev


def single(app, text: str) -> dict:
    return invoke(app, event("infer-post-valid", body=json.dumps({"text": text}))).body


def test_a_hundred_texts_get_the_single_route_s_hundred_answers_in_order(app):
    """100 texts -> 200 with 100 results, each exactly (label, category, scores) what the single
    route answers for that text, in the order sent."""
    assert len(TEXTS) == 100
    answer = invoke(app, batch_event({"texts": TEXTS}))
    assert answer.status == 200 and set(answer.body) == {"results"}
    assert answer.body["results"] == [single(app, text) for text in TEXTS]
    assert len({r["label"] for r in answer.body["results"]}) > 1, "the texts should not all share a label"
    assert answer.headers["x-model-version"] == "v2"
    assert answer.headers["access-control-allow-origin"] == "*"
    assert "x-handler-latency-ms" not in answer.headers


def test_one_text_is_a_batch_too(app):
    """A batch of one text answers a one-element list."""
    answer = invoke(app, batch_event({"texts": [TEXTS[0]]}))
    assert answer.status == 200 and answer.body == {"results": [single(app, TEXTS[0])]}


@pytest.mark.parametrize(
    ("body", "status", "issue_starts"),
    [
        ({"texts": []}, 422, '"texts" is an empty array'),
        ({"texts": ["hello"] * 101}, 422, '"texts" holds 101 texts; a batch takes 1 to 100'),
        ({"texts": "hello"}, 422, '"texts" is a string'),
        ({"texts": None}, 422, '"texts" is null'),
        ({"texts": {"0": "hello"}}, 422, '"texts" is an object'),
        ({"text": "hello"}, 422, 'The body has no "texts" field ("text", one string, is POST'),
        ({}, 422, 'The body has no "texts" field: send {"texts": ["...", "..."]}'),
        (["hello"], 422, "The body is an array, not a JSON object"),
        ({"texts": ["ok", "ok", "ok", 3]}, 422, "texts[3] is a number"),
        ({"texts": ["ok", None]}, 422, "texts[1] is null"),
        ({"texts": ["ok", ["nested"]]}, 422, "texts[1] is an array"),
        ({"texts": [" \t "]}, 422, "texts[0] is empty or only white space"),
        ({"texts": ["ok", ""]}, 422, "texts[1] is empty or only white space"),
        ({"texts": ["ok", "\u200b\u200b"]}, 422, "texts[1] has no letters, digits, punctuation or emoji"),
        ({"texts": ["ok", "x" * 5001]}, 413, "texts[1] is 5001 characters long; the limit is 5000"),
        ('{"texts": ["unterminated', 400, "The body is not valid JSON"),
    ],
)
def test_bad_batches_are_refused_with_the_index_of_the_bad_text(app, body, status, issue_starts):
    """Each defect gets its clear 4xx (the single route's status for the same defect in a text),
    naming the first bad text by index; never a 5xx."""
    answer = invoke(app, batch_event(body))
    assert answer.status == status
    assert answer.body["issue"].startswith(issue_starts), answer.body["issue"]


def test_the_first_bad_text_is_the_one_named(app):
    """With several bad texts, the issue names the lowest index."""
    answer = invoke(app, batch_event({"texts": ["ok", 7, "", "x" * 6000]}))
    assert answer.status == 422 and answer.body["issue"].startswith("texts[1] is a number")


def test_exactly_a_hundred_texts_at_the_length_limit_are_scored(app):
    """The bounds are inclusive: 100 texts of 5,000 characters each are scored."""
    answer = invoke(app, batch_event({"texts": ["word " * 999 + "word"] * 100}))
    assert answer.status == 200 and len(answer.body["results"]) == 100


def test_other_methods_on_the_batch_route_are_405_and_options_is_the_preflight(app):
    """GET names the batch route and its body; OPTIONS answers the CORS headers."""
    answer = invoke(app, event(BATCH, httpMethod="GET", body=None))
    assert answer.status == 405 and answer.headers["allow"] == "OPTIONS, POST"
    assert answer.body["issue"].startswith("/infer/hate-speech/batch does not take GET")
    assert '{"texts": ["...", "..."]}' in answer.body["issue"]
    preflight = invoke(app, event(BATCH, httpMethod="OPTIONS", body=None))
    assert preflight.status == 200 and preflight.headers["access-control-allow-methods"] == "OPTIONS,POST"


# ---------------------------------------------------------------- records and metrics


def test_one_record_per_text_with_its_index_and_share_of_the_latency(app):
    """An answered batch of n texts logs n "inference" records: each the single route's record of
    its text (label, text_chars, shadow label) plus batch_index, batch_size and batch_latency_ms;
    each latency_ms is the request's latency / n."""
    texts = TEXTS[:7]
    context = FakeLambdaContext(function_version="42")
    with captured_logs(app) as logs:
        answer = invoke(app, batch_event({"texts": texts}), context)
    records = request_records(logs)
    assert [r["batch_index"] for r in records] == list(range(7))
    assert {r["batch_size"] for r in records} == {7}
    assert [r["label"] for r in records] == [res["label"] for res in answer.body["results"]]
    assert [r["text_chars"] for r in records] == [len(t) for t in texts]
    assert {(r["status"], r["function_version"], r["model_version"], r["source"]) for r in records} == {
        (200, "42", "v2", "live")
    }
    (batch_ms,) = {r["batch_latency_ms"] for r in records}
    assert all(r["latency_ms"] == round(batch_ms / 7, 3) for r in records)
    with captured_logs(app) as logs:
        for text in texts:
            invoke(app, event("infer-post-valid", body=json.dumps({"text": text})))
    assert [r["shadow"] for r in records] == [r["shadow"] for r in request_records(logs)]
    assert all(r["shadow"] and "v2" not in r["shadow"] for r in records)


def test_a_refused_batch_logs_one_record_and_no_metrics(app, capsys):
    """A 4xx batch writes one record (label null), like a refused single request; no Prediction."""
    capsys.readouterr()
    with captured_logs(app) as logs:
        invoke(app, batch_event({"texts": ["ok", 3]}))
    (record,) = request_records(logs)
    assert record["status"] == 422 and record["label"] is None and "batch_index" not in record
    assert not any("Prediction" in doc for doc in emf_records(capsys.readouterr().out))


def test_batch_metrics_count_texts_per_label_and_the_request_once(app, capsys):
    """Prediction sums to the texts, one EMF record per label in the single route's two dimension
    sets; BatchLatency and BatchTexts have one sample for the request; no InferenceLatency."""
    capsys.readouterr()
    answer = invoke(app, batch_event({"texts": TEXTS[:20]}))
    docs = emf_records(capsys.readouterr().out)
    predictions = [d for d in docs if "Prediction" in d]
    by_label = Counter(r["label"] for r in answer.body["results"])
    assert {d["Label"]: d["Prediction"] for d in predictions} == {k: [float(v)] for k, v in by_label.items()}
    for doc in predictions:
        (directive,) = doc["_aws"]["CloudWatchMetrics"]
        assert directive["Dimensions"] == [["ModelVersion", "service"], ["ModelVersion", "Label", "service"]]
    (batch_doc,) = [d for d in docs if "BatchLatency" in d]
    (directive,) = batch_doc["_aws"]["CloudWatchMetrics"]
    assert directive["Dimensions"] == [["ModelVersion", "service"]]
    assert {m["Name"]: m["Unit"] for m in directive["Metrics"]} == {
        "BatchLatency": "Milliseconds",
        "BatchTexts": "Count",
    }
    assert batch_doc["BatchTexts"] == [20.0] and len(batch_doc["BatchLatency"]) == 1
    assert not any("InferenceLatency" in d for d in docs)


def test_a_probe_batch_publishes_no_business_metrics(app, capsys):
    """A batch whose request id is the probe's is tagged probe on every record and counts in no
    business metric (consumers only)."""
    capsys.readouterr()
    with captured_logs(app) as logs:
        answer = invoke(app, batch_event({"texts": TEXTS[:3]}, request_id="probe-run1-2-3"))
    assert {(r["source"], r["probe_id"]) for r in request_records(logs)} == {("probe", "run1-2-3")}
    assert "x-handler-latency-ms" in answer.headers
    assert not any("Prediction" in d or "BatchLatency" in d for d in emf_records(capsys.readouterr().out))


def test_texts_and_keys_of_a_batch_are_never_logged(app, capsys):
    """Neither a text of the batch nor the API key appears in any log line or metric."""
    capsys.readouterr()
    with captured_logs(app) as logs:
        invoke(app, batch_event({"texts": ["fine", SECRET]}))
        invoke(app, batch_event({"texts": [SECRET, 5]}))
        invoke(app, batch_event({"texts": ["fine", SECRET + "x" * 5000]}))
    out = logs.getvalue() + capsys.readouterr().out
    assert SECRET not in out and "okapi-sentinel" not in out
    assert EVENT_API_KEY not in out


# ---------------------------------------------------------------- the canary judge


def judged_records(version: str, model: str, bodies: list[tuple[str, dict]]) -> list[RequestRecord]:
    """The request records a function version serving `model` logs for these (route, body)
    requests, read back as the judge reads them."""
    served = load_app({"MODEL_VERSION": model})
    context = FakeLambdaContext(function_version=version)
    with captured_logs(served) as logs:
        for name, body in bodies:
            assert invoke(served, event(name, body=json.dumps(body)), context).status == 200
    return [RequestRecord.from_mapping({**r, "timestamp": 1000.0}) for r in request_records(logs)]


def single_labels(model: str, texts: list[str]) -> list[str]:
    served = load_app({"MODEL_VERSION": model})
    return [single(served, text)["label"] for text in texts]


def test_the_judge_counts_a_batch_s_texts_and_their_label_pairs():
    """Batch and single traffic to a baseline (v1) and a canary (v2): the judge's live evidence has
    one label pair per text, (v1 label, v2 label) of that text as the single route gives them."""
    batch, alone = TEXTS[:30], TEXTS[30]
    bodies = [(BATCH, {"texts": batch}), ("infer-post-valid", {"text": alone})]
    try:
        records = judged_records("7", "v1", bodies) + judged_records("8", "v2", bodies)
        expected = Counter(
            zip(single_labels("v1", [*batch, alone]), single_labels("v2", [*batch, alone]), strict=True)
        )
    finally:
        load_app({"MODEL_VERSION": "v2"})  # infer.app as this module's fixture loaded it
    window = WindowRecords.from_records(records, 0.0, 2000.0)
    assert window.count("7") == window.count("8") == 31
    ev = window_evidence(window, baseline_version="7", canary_version="8", expected=lambda model, pid: None)
    assert len(set(expected)) > 1, "the texts should give more than one label pair"
    for group in ("baseline", "canary"):
        pairs = Counter({(o, n): c for (g, o, n), c in ev.live_pairs.items() if g.value == group})
        assert pairs == expected, group
