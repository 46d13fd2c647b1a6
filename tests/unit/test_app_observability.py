"""The inference handler's logs and metrics: one record per request, EMF metrics, nothing secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.unit._infer_harness import (
    CONTEXT_FUNCTION_NAME,
    EVENT_API_KEY,
    ROOT,
    FakeLambdaContext,
    captured_logs,
    emf_records,
    event,
    event_names,
    invoke,
    load_app,
    log_records,
    request_records,
)

# Error answers publish no metrics, and Powertools warns about each of them.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

SECRET_TEXT = "zebra-sentinel-7f3a quokka phrase that must never be logged"
SECRET_KEY = "sentinel-api-key-9c1e44b0d2"
REQUEST_KEYS = {
    "model_version",
    "function_version",
    "label",
    "latency_ms",
    "text_chars",
    "cold_start",
    "status",
}


@pytest.fixture(scope="module")
def app():
    """infer.app serving the committed v2 model with default settings."""
    return load_app({"MODEL_VERSION": "v2"})


def secret_event(name: str = "infer-post-valid", body: dict | None = None) -> dict:
    """An event whose body carries the sentinel text and whose API key (header and identity) is the
    sentinel key."""
    ev = event(name, body=json.dumps({"text": SECRET_TEXT} if body is None else body))
    ev["headers"]["x-api-key"] = SECRET_KEY
    ev["multiValueHeaders"]["x-api-key"] = [SECRET_KEY]
    ev["requestContext"]["identity"]["apiKey"] = SECRET_KEY
    return ev


def test_one_request_record_per_request(app):
    """Every request, answered or refused, writes exactly one "inference" record; an answered
    batch one per text (tests/unit/test_app_batch.py)."""
    names = event_names()
    with captured_logs(app) as logs:
        answers = [invoke(app, event(name)) for name in names]
    records = request_records(logs)
    expected = [a.status for a in answers for _ in (a.body.get("results") or [None])]
    assert [r["status"] for r in records] == expected
    assert len(records) == len(names) + sum(max(0, len(a.body.get("results") or []) - 1) for a in answers)


def test_request_record_of_a_prediction(app):
    """A 200 record has the contract's keys: version, function version, label, latency, length."""
    context = FakeLambdaContext(function_version="42")
    with captured_logs(app) as logs:
        answer = invoke(app, event("infer-post-valid"), context)
    (record,) = request_records(logs)
    assert REQUEST_KEYS <= set(record)
    assert record["model_version"] == "v2"
    assert record["function_version"] == "42"
    assert record["label"] == answer.body["label"]
    assert record["status"] == 200
    assert record["text_chars"] == len(json.loads(event("infer-post-valid")["body"])["text"])
    assert isinstance(record["latency_ms"], float) and 0 <= record["latency_ms"] < 1000
    assert isinstance(record["cold_start"], bool)


def test_request_record_of_a_refusal_has_null_label(app):
    """A refused request's record keeps every key, with "label": null and its 4xx status."""
    with captured_logs(app) as logs:
        invoke(app, event("infer-post-json-array"))
    (record,) = request_records(logs)
    assert REQUEST_KEYS <= set(record)
    assert record["label"] is None and record["text_chars"] is None
    assert record["status"] == 422


def test_request_record_of_a_long_text_counts_its_characters(app):
    """A 413 record says how long the refused text was (the length, never the text)."""
    with captured_logs(app) as logs:
        invoke(app, event("infer-post-text-too-long"))
    (record,) = request_records(logs)
    assert record["status"] == 413 and record["text_chars"] == 5001


def test_request_record_of_a_text_with_nothing_to_classify(app, capsys):
    """A 422 for an invisible-only text: label null, its length counted, no Prediction metric, so the
    canary judge's label shares never count these texts."""
    capsys.readouterr()
    with captured_logs(app) as logs:
        invoke(app, event("infer-post-text-no-words-zero-width"))
    (record,) = request_records(logs)
    assert record["status"] == 422 and record["label"] is None and record["text_chars"] == 6
    assert not any("Prediction" in doc for doc in emf_records(capsys.readouterr().out))


def test_correlation_id_is_the_api_gateway_request_id(app):
    """Records carry API Gateway's request id as correlation_id, and the Lambda context."""
    ev = event("infer-post-valid")
    ev["requestContext"]["requestId"] = "req-corr-1234"
    with captured_logs(app) as logs:
        invoke(app, ev)
    (record,) = request_records(logs)
    assert record["correlation_id"] == "req-corr-1234"
    assert record["function_name"] == CONTEXT_FUNCTION_NAME
    assert record["service"] == "hate-speech"


def test_metrics_of_a_prediction(app, capsys):
    """A 200 publishes InferenceLatency (ms) and Prediction (count) by ModelVersion and by
    ModelVersion and Label, each with Powertools' service dimension."""
    capsys.readouterr()
    answer = invoke(app, event("infer-post-valid"))
    docs = [d for d in emf_records(capsys.readouterr().out) if "Prediction" in d]
    assert len(docs) == 1
    doc = docs[0]
    (directive,) = doc["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "HateSpeechApi"
    assert directive["Dimensions"] == [["ModelVersion", "service"], ["ModelVersion", "Label", "service"]]
    assert doc["service"] == "hate-speech"
    units = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
    assert units == {"InferenceLatency": "Milliseconds", "Prediction": "Count"}
    assert doc["ModelVersion"] == "v2" and doc["Label"] == answer.body["label"]
    assert doc["Prediction"] == [1.0]
    assert 0 < doc["InferenceLatency"][0] < 1000


def test_refusals_publish_no_prediction_metrics(app, capsys):
    """A 4xx is not a prediction: no Prediction or InferenceLatency data point."""
    capsys.readouterr()
    invoke(app, event("infer-post-text-empty"))
    docs = emf_records(capsys.readouterr().out)
    assert not [d for d in docs if "Prediction" in d or "InferenceLatency" in d]


def test_metrics_namespace_and_service_come_from_the_environment(capsys):
    """POWERTOOLS_METRICS_NAMESPACE names the EMF namespace; POWERTOOLS_SERVICE_NAME the logs' service."""
    module = load_app(
        {
            "MODEL_VERSION": "v1",
            "POWERTOOLS_METRICS_NAMESPACE": "OtherNs",
            "POWERTOOLS_SERVICE_NAME": "other-svc",
        }
    )
    try:
        capsys.readouterr()
        with captured_logs(module) as logs:
            invoke(module, event("infer-post-valid"))
        docs = [d for d in emf_records(capsys.readouterr().out) if "Prediction" in d]
        assert docs[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "OtherNs"
        assert docs[0]["ModelVersion"] == "v1" and docs[0]["service"] == "other-svc"
        assert request_records(logs)[0]["service"] == "other-svc"
    finally:
        load_app({"MODEL_VERSION": "v2"})


def test_text_and_api_key_never_reach_logs_or_metrics(app, capsys):
    """Over every kind of answer (200, 4xx, 404/405, 500), neither the text nor the key is written."""
    capsys.readouterr()
    with captured_logs(app) as logs:
        statuses = [
            invoke(app, secret_event()).status,
            invoke(app, secret_event(body={"text": SECRET_TEXT * 200})).status,
            invoke(app, secret_event(body={"message": SECRET_TEXT})).status,
            invoke(app, secret_event(body={"text": " ", "other": SECRET_TEXT})).status,
            invoke(app, secret_event("infer-get-route")).status,
            invoke(app, secret_event("infer-post-unknown-route")).status,
        ]
    assert statuses == [200, 413, 422, 422, 405, 404]
    written = logs.getvalue() + "".join(capsys.readouterr())
    assert request_records(logs), "the requests were logged"
    assert SECRET_TEXT[:20] not in written
    assert SECRET_KEY not in written and EVENT_API_KEY not in written


def test_unexpected_failure_logs_the_stack_but_not_the_text(app, monkeypatch):
    """A failing scorer: the log has the exception type and frames, not its message quoting the text."""

    def broken(text):
        raise KeyError(text)  # a message that quotes the request's text

    monkeypatch.setattr(app.SERVICE.model, "predict", broken)
    with captured_logs(app) as logs:
        answer = invoke(app, secret_event())
    assert answer.status == 500
    records = log_records(logs)
    (failure,) = [r for r in records if r["message"] == "unexpected failure"]
    assert failure["exception_name"] == "KeyError"
    assert "broken" in failure["stack"] and "test_app_observability.py" in failure["stack"]
    assert request_records(logs)[0]["status"] == 500
    assert SECRET_TEXT[:20] not in logs.getvalue()


def test_debug_settings_do_not_leak_text_or_key(tmp_path):
    """In a fresh process with LOG_LEVEL=DEBUG and every Powertools debug switch on
    (POWERTOOLS_DEBUG, POWERTOOLS_DEV, POWERTOOLS_LOGGER_LOG_EVENT, POWERTOOLS_EVENT_HANDLER_DEBUG),
    stdout and stderr still hold neither the text nor the key."""
    events = [secret_event(), secret_event(body={"message": SECRET_TEXT}), secret_event("infer-get-route")]
    (tmp_path / "events.json").write_text(json.dumps(events))
    script = (
        "import json, sys\n"
        "from tests.unit._infer_harness import FakeLambdaContext\n"
        "from infer.app import lambda_handler\n"
        "for ev in json.load(open(sys.argv[1])):\n"
        "    r = lambda_handler(ev, FakeLambdaContext())\n"
        "    print('STATUS', r['statusCode'])\n"
    )
    env = {
        **os.environ,
        "MODEL_VERSION": "v2",
        "LOG_LEVEL": "DEBUG",
        "POWERTOOLS_DEBUG": "true",
        "POWERTOOLS_DEV": "true",
        "POWERTOOLS_LOGGER_LOG_EVENT": "true",
        "POWERTOOLS_EVENT_HANDLER_DEBUG": "true",
    }
    env.pop("MODELS_DIR", None)
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "events.json")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert [line for line in done.stdout.splitlines() if line.startswith("STATUS")] == [
        "STATUS 200",
        "STATUS 422",
        "STATUS 405",
    ]
    assert '"message":"inference"' in done.stdout.replace(" ", "")
    written = done.stdout + done.stderr
    assert SECRET_TEXT[:20] not in written
    assert SECRET_KEY not in written


def test_cold_start_is_logged_and_counted_once_per_process():
    """In a fresh process the first request's record says cold_start true and Powertools' ColdStart
    metric is published once; the second request is warm."""
    script = (
        "from tests.unit._infer_harness import FakeLambdaContext, event\n"
        "from infer.app import lambda_handler\n"
        "for _ in range(2):\n"
        "    lambda_handler(event('infer-post-valid'), FakeLambdaContext())\n"
    )
    env = {**os.environ, "MODEL_VERSION": "v1"}
    env.pop("MODELS_DIR", None)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    records = [r for r in lines if r.get("message") == "inference"]
    assert [r["cold_start"] for r in records] == [True, False]
    cold = [r for r in lines if "ColdStart" in r]
    assert len(cold) == 1
    assert cold[0]["function_name"] == CONTEXT_FUNCTION_NAME
    assert cold[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "HateSpeechApi"
