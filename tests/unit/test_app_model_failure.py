"""An execution environment whose model cannot be served answers 500 to everything and logs why."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from infer.service import ModelService
from tests.unit._infer_harness import ROOT, captured_logs, event, event_names, invoke, load_app, log_records

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

MODELS = ROOT / "models"


@pytest.fixture(scope="module")
def app():
    """infer.app serving the committed v2 model with default settings."""
    return load_app({"MODEL_VERSION": "v2"})


@pytest.fixture
def tampered_models(tmp_path):
    """A MODELS_DIR whose v2 coefficients differ from the manifest's sha256 by one byte."""
    shutil.copytree(MODELS / "v2", tmp_path / "v2")
    coef = tmp_path / "v2" / "coef.npy"
    blob = bytearray(coef.read_bytes())
    blob[-1] ^= 0x01
    coef.write_bytes(bytes(blob))
    return tmp_path


def unavailable(monkeypatch, app, service: ModelService) -> None:
    assert service.model is None and service.failure
    monkeypatch.setattr(app, "SERVICE", service)


def test_tampered_model_answers_500_to_every_request(app, monkeypatch, tampered_models):
    """A checksum failure at init: every event, valid or not, OPTIONS and 404s too, gets the bare 500."""
    service = ModelService.start({"MODEL_VERSION": "v2", "MODELS_DIR": str(tampered_models)})
    unavailable(monkeypatch, app, service)
    for name in event_names():
        answer = invoke(app, event(name))
        assert answer.status == 500, name
        assert answer.body == {"issue": "Internal server error"}, name
        assert "x-model-version" not in answer.headers
        assert answer.headers["access-control-allow-origin"] == "*"


def test_unavailable_model_logs_the_reason_with_each_500(app, monkeypatch, tampered_models):
    """Each refused request logs the reason, which names the file that failed its checksum."""
    service = ModelService.start({"MODEL_VERSION": "v2", "MODELS_DIR": str(tampered_models)})
    unavailable(monkeypatch, app, service)
    with captured_logs(app) as logs:
        invoke(app, event("infer-post-valid"))
    records = log_records(logs)
    (reason,) = [r for r in records if r["message"] == "model not loaded: answering 500"]
    assert "coef.npy" in reason["reason"] and "sha256" in reason["reason"]
    (request,) = [r for r in records if r["message"] == "inference"]
    assert request["status"] == 500 and request["model_version"] is None


def test_missing_model_version_answers_500(app, monkeypatch):
    """MODEL_VERSION unset is a configuration failure: 500 to requests, the reason says what to set."""
    service = ModelService.start({})
    unavailable(monkeypatch, app, service)
    assert "MODEL_VERSION" in service.failure
    assert invoke(app, event("infer-post-valid")).status == 500


def test_model_version_naming_no_directory_answers_500(app, monkeypatch, tmp_path):
    """MODEL_VERSION=v9 with no models/v9: 500, and the reason names the missing manifest."""
    service = ModelService.start({"MODEL_VERSION": "v9", "MODELS_DIR": str(tmp_path)})
    unavailable(monkeypatch, app, service)
    assert "manifest" in service.failure and "v9" in service.failure
    assert invoke(app, event("infer-post-valid")).status == 500


def test_fresh_process_with_a_tampered_model_logs_why_at_init(tampered_models):
    """The real init path: importing infer.app in a new process with a tampered model does not
    crash; it logs the failure at init and answers the first request with the bare 500."""
    script = (
        "import json\n"
        "from tests.unit._infer_harness import FakeLambdaContext, event\n"
        "from infer.app import lambda_handler\n"
        "r = lambda_handler(event('infer-post-valid'), FakeLambdaContext())\n"
        "print('RESPONSE', json.dumps({'status': r['statusCode'], 'body': r['body']}))\n"
    )
    env = {**os.environ, "MODEL_VERSION": "v2", "MODELS_DIR": str(tampered_models)}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    (response,) = [json.loads(line.split(" ", 1)[1]) for line in lines if line.startswith("RESPONSE ")]
    assert response == {
        "status": 500,
        "body": json.dumps({"issue": "Internal server error"}, separators=(",", ":")),
    }
    records = [json.loads(line) for line in lines if line.startswith("{") and '"level"' in line]
    init = [r for r in records if r["message"] == "model not loaded: every request will answer 500"]
    assert len(init) == 1 and "coef.npy" in init[0]["reason"]
