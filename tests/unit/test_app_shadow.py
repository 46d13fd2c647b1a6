"""Issue 10 in the handler: shadow scoring by the other shipped models, the request's source
(live, probe, hook) from API Gateway's request id, and business metrics for users' requests only."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import pytest

from infer.model import LABELS, load_model
from tests.unit._infer_harness import (
    EVENT_API_KEY,
    ROOT,
    captured_logs,
    emf_records,
    event,
    invoke,
    load_app,
    log_records,
    request_records,
)

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

MODELS = ROOT / "models"
TEXTS = (
    "Have a wonderful day, see you at the game tonight!",
    "what a stupid bitch, shut up",
    "RT @someone: those people should go back where they came from",
    "lol that trash team lost again",
    "!!!",
)
SECRET_TEXT = "zebra-sentinel-7f3a quokka phrase that must never be logged"
SECRET_KEY = "sentinel-api-key-9c1e44b0d2"
NEW_KEYS = {"source", "probe_id", "shadow", "shadow_ms"}


@pytest.fixture
def serve():
    """serve(version, **env): infer.app re-imported serving `version`; the default v2 app is
    restored afterwards for the other test modules."""

    def load(version: str, **env: str):
        return load_app({"MODEL_VERSION": version, **env})

    yield load
    load_app({"MODEL_VERSION": "v2"})


def text_event(text: str, name: str = "infer-post-valid") -> dict:
    return event(name, body=json.dumps({"text": text}))


def business_metrics(stdout: str) -> list[dict]:
    return [d for d in emf_records(stdout) if "Prediction" in d or "InferenceLatency" in d]


@pytest.mark.parametrize(("served", "other"), [("v1", "v2"), ("v2", "v1")])
def test_shadow_labels_are_what_the_other_model_predicts(serve, served, other):
    """Each 200's record carries {other model: its label of the same text}, while the answer is
    the served model's alone (SHADOW_MODELS names the other, as make rollout does)."""
    app = serve(served, SHADOW_MODELS=other)
    other_model = load_model(MODELS / other)
    with captured_logs(app) as logs:
        answers = [invoke(app, text_event(text)) for text in TEXTS]
    records = request_records(logs)
    for text, answer, record in zip(TEXTS, answers, records, strict=True):
        assert answer.status == 200 and answer.headers["x-model-version"] == served
        assert answer.body == app.SERVICE.model.predict(text).as_dict()
        assert record["shadow"] == {other: other_model.predict(text).label}
        assert record["label"] == answer.body["label"]
        assert isinstance(record["shadow_ms"], float) and record["shadow_ms"] >= 0


def test_by_default_every_other_shipped_model_scores_in_the_shadow(serve):
    """SHADOW_MODELS unset (all): the record carries a label of every other model in models/."""
    app = serve("v2")
    others = sorted(p.parent.name for p in MODELS.glob("v*/manifest.json") if p.parent.name != "v2")
    with captured_logs(app) as logs:
        invoke(app, text_event(TEXTS[0]))
    (record,) = request_records(logs)
    assert sorted(record["shadow"]) == others and len(others) >= 2


def test_labels_disagree_somewhere_so_the_shadow_is_not_a_copy(serve):
    """The two models differ on some text of the list: the shadow label is the other model's own,
    not the served label repeated."""
    app = serve("v1")
    with captured_logs(app) as logs:
        for text in TEXTS:
            invoke(app, text_event(text))
    pairs = {(r["label"], r["shadow"]["v2"]) for r in request_records(logs)}
    assert any(served != shadow for served, shadow in pairs)


def test_latency_ms_is_the_served_path_only(serve, monkeypatch):
    """With a fake clock that the served model moves by 10 ms and the shadow by 250 ms, the
    record says latency_ms 10 and shadow_ms 250: the judge compares like with like."""
    app = serve("v1")
    now = [1000.0]
    monkeypatch.setattr(app, "time", SimpleNamespace(perf_counter=lambda: now[0]))

    def slowed(model, seconds):
        predict = model.predict

        def run(text):
            now[0] += seconds
            return predict(text)

        return run

    monkeypatch.setattr(app.SERVICE.model, "predict", slowed(app.SERVICE.model, 0.010))
    monkeypatch.setattr(app.SERVICE.shadows[0], "predict", slowed(app.SERVICE.shadows[0], 0.250))
    with captured_logs(app) as logs:
        invoke(app, event("infer-post-valid"))
    (record,) = request_records(logs)
    assert record["latency_ms"] == pytest.approx(10.0)
    assert record["shadow_ms"] == pytest.approx(250.0)


def test_shadow_models_none_logs_an_empty_shadow(serve):
    """SHADOW_MODELS=none: the record says shadow {} and shadow_ms null; the answer is unchanged."""
    app = serve("v2", SHADOW_MODELS="none")
    with captured_logs(app) as logs:
        answer = invoke(app, event("infer-post-valid"))
    (record,) = request_records(logs)
    assert answer.status == 200
    assert record["shadow"] == {} and record["shadow_ms"] is None


def test_refused_request_has_every_new_key_and_no_shadow(serve):
    """A 4xx is never shadow-scored: shadow {}, shadow_ms null, probe_id null, source live."""
    app = serve("v2")
    with captured_logs(app) as logs:
        invoke(app, event("infer-post-text-empty"))
        invoke(app, event("infer-post-unknown-route"))
    records = request_records(logs)
    assert [r["status"] for r in records] == [422, 404]
    for record in records:
        assert NEW_KEYS <= set(record)
        assert (record["shadow"], record["shadow_ms"]) == ({}, None)
        assert (record["source"], record["probe_id"]) == ("live", None)


def test_broken_shadow_model_does_not_break_serving(serve, tmp_path):
    """A shadow model failing its checksum: the init logs the reason once, every request is still
    answered by the served model, and the records carry no label of the broken one."""
    shutil.copytree(MODELS / "v1", tmp_path / "v1")
    shutil.copytree(MODELS / "v2", tmp_path / "v2")
    coef = tmp_path / "v1" / "coef.npy"
    coef.write_bytes(coef.read_bytes()[:-1])
    with captured_logs(serve("v2")) as logs:  # the handler outlives the re-import: its init is caught
        app = serve("v2", MODELS_DIR=str(tmp_path))
        answers = [invoke(app, text_event(text)) for text in TEXTS]
    assert [a.status for a in answers] == [200] * len(TEXTS)
    warnings = [r for r in log_records(logs) if r["message"].startswith("shadow model not loaded")]
    assert len(warnings) == 1
    assert warnings[0]["shadow_model"] == "v1" and "coef.npy" in warnings[0]["reason"]
    assert all(r["shadow"] == {} and r["status"] == 200 for r in request_records(logs))


def test_shadow_model_failing_on_a_request_does_not_fail_it(serve, monkeypatch):
    """A shadow model raising on a text: the answer is still 200, the record has no label of it,
    and the warning names the exception, never its message (which quotes the text)."""
    app = serve("v2", SHADOW_MODELS="v1")

    def broken(text):
        raise KeyError(text)

    monkeypatch.setattr(app.SERVICE.shadows[0], "predict", broken)
    with captured_logs(app) as logs:
        answer = invoke(app, text_event(SECRET_TEXT))
    assert answer.status == 200
    (record,) = request_records(logs)
    assert record["shadow"] == {} and record["label"] == answer.body["label"]
    (warning,) = [r for r in log_records(logs) if r["message"] == "shadow scoring failed"]
    assert warning["shadow_model"] == "v1" and warning["exception_name"] == "KeyError"
    assert SECRET_TEXT[:20] not in logs.getvalue()


@pytest.mark.parametrize(
    ("name", "source", "probe_id"),
    [
        ("infer-post-probe", "probe", "run20261124-4312-17"),
        ("infer-post-pretraffic", "hook", "run20261124-3"),
        ("infer-post-valid", "live", None),
    ],
)
def test_source_is_tagged_from_the_request_id(serve, name, source, probe_id):
    """The probe's and the hook's events (request ids "probe-..." / "pretraffic-...") are tagged
    with their source and probe id; a user's request is live. Probes are shadow-scored too."""
    app = serve("v1", SHADOW_MODELS="v2")
    with captured_logs(app) as logs:
        answer = invoke(app, event(name))
    (record,) = request_records(logs)
    assert answer.status == 200
    assert (record["source"], record["probe_id"]) == (source, probe_id)
    assert set(record["shadow"]) == {"v2"}


def test_a_consumer_cannot_make_a_request_a_probe(serve, capsys):
    """Headers and body fields a consumer controls (a probe-looking x-amzn-RequestId, the hook's
    X-Canary-Check, a "source" in the body) leave the request live, with its business metrics."""
    app = serve("v2")
    ev = event("infer-post-valid", body=json.dumps({"text": TEXTS[0], "source": "probe", "probe_id": "x"}))
    forged = {"x-amzn-RequestId": "probe-run1-2-3", "X-Canary-Check": "pretraffic", "X-Probe-Id": "run1-2-3"}
    ev["headers"].update(forged)
    ev["multiValueHeaders"].update({k: [v] for k, v in forged.items()})
    capsys.readouterr()
    with captured_logs(app) as logs:
        assert invoke(app, ev).status == 200
    (record,) = request_records(logs)
    assert (record["source"], record["probe_id"]) == ("live", None)
    assert len(business_metrics(capsys.readouterr().out)) == 1


@pytest.mark.parametrize("name", ["infer-post-probe", "infer-post-pretraffic"])
def test_probe_and_hook_requests_publish_no_business_metrics(serve, capsys, name):
    """A probe's or the hook's prediction publishes no Prediction or InferenceLatency data point
    (the dashboard counts consumers only), while a user's request right after it does."""
    app = serve("v2")
    capsys.readouterr()
    assert invoke(app, event(name)).status == 200
    assert business_metrics(capsys.readouterr().out) == []
    assert invoke(app, event("infer-post-valid")).status == 200
    assert len(business_metrics(capsys.readouterr().out)) == 1


def test_new_fields_leak_neither_text_nor_key(serve, capsys):
    """Probe, hook and live requests carrying the sentinel text and key: the records (shadow
    labels, probe id, source) and metrics hold labels and ids only, never the text or the key."""
    app = serve("v1")
    capsys.readouterr()
    with captured_logs(app) as logs:
        for name in ("infer-post-probe", "infer-post-pretraffic", "infer-post-valid"):
            ev = event(name, body=json.dumps({"text": SECRET_TEXT}))
            ev["headers"]["x-api-key"] = SECRET_KEY
            ev["multiValueHeaders"]["x-api-key"] = [SECRET_KEY]
            ev["requestContext"].setdefault("identity", {})["apiKey"] = SECRET_KEY
            assert invoke(app, ev).status == 200
    records = request_records(logs)
    assert [r["source"] for r in records] == ["probe", "hook", "live"]
    assert all(set(r["shadow"].values()) <= set(LABELS) for r in records)
    written = logs.getvalue() + "".join(capsys.readouterr())
    assert SECRET_TEXT[:20] not in written
    assert SECRET_KEY not in written and EVENT_API_KEY not in written


@pytest.mark.parametrize("name", ["infer-post-probe", "infer-post-pretraffic"])
def test_probe_and_hook_answers_carry_the_logged_handler_latency(serve, monkeypatch, name):
    """A probe's or the hook's answer has X-Handler-Latency-Ms equal to the record's latency_ms,
    the served path only: 10 ms of model time, not the 250 ms of shadow scoring."""
    app = serve("v1")
    now = [1000.0]
    monkeypatch.setattr(app, "time", SimpleNamespace(perf_counter=lambda: now[0]))
    served, shadow = app.SERVICE.model.predict, app.SERVICE.shadows[0].predict

    def timed(predict, seconds):
        def run(text):
            now[0] += seconds
            return predict(text)

        return run

    monkeypatch.setattr(app.SERVICE.model, "predict", timed(served, 0.010))
    monkeypatch.setattr(app.SERVICE.shadows[0], "predict", timed(shadow, 0.250))
    with captured_logs(app) as logs:
        answer = invoke(app, event(name))
    (record,) = request_records(logs)
    assert answer.status == 200
    assert float(answer.headers["x-handler-latency-ms"]) == pytest.approx(10.0)
    assert float(answer.headers["x-handler-latency-ms"]) == pytest.approx(record["latency_ms"])


def test_a_probe_refused_answer_still_carries_its_latency(serve):
    """A probe request the handler refuses (unknown route) still says how long it took."""
    app = serve("v2")
    ev = event("infer-post-unknown-route")
    ev["requestContext"]["requestId"] = "probe-run1-7-0"
    answer = invoke(app, ev)
    assert answer.status == 404
    assert float(answer.headers["x-handler-latency-ms"]) >= 0.0


@pytest.mark.parametrize("name", ["infer-post-valid", "infer-post-text-empty", "infer-post-unknown-route"])
def test_consumers_never_see_the_handler_latency(serve, name):
    """Live answers (200, 4xx) have no X-Handler-Latency-Ms, even when a consumer forges the probe's
    request id header or the hook's X-Canary-Check: only API Gateway's request id decides."""
    app = serve("v2")
    ev = event(name)
    forged = {"x-amzn-RequestId": "probe-run1-2-3", "X-Canary-Check": "pretraffic"}
    ev["headers"].update(forged)
    ev["multiValueHeaders"].update({k: [v] for k, v in forged.items()})
    answer = invoke(app, ev)
    assert "x-handler-latency-ms" not in answer.headers
    assert all(k.lower() != "x-handler-latency-ms" for k in (answer.raw.get("multiValueHeaders") or {}))
