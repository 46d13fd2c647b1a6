"""The PreTraffic hook: its checks on the new version, and that it always reports to CodeDeploy."""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from pathlib import Path

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from canary.config import HookConfig
from canary.hook import golden_event, handle, load_golden, run_pretraffic
from canary.records import LABELS

ARN = "arn:aws:lambda:us-east-1:123456789012:function:hate-speech-fn:7"
CREDS = {"region_name": "us-east-1", "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
DEPLOYMENT = {"DeploymentId": "d-ABC123", "LifecycleEventHookExecutionId": "exec-1"}
N = 20
TRUTH = [LABELS[i % 3] for i in range(N)]
# The healthy model's answers: right on 18 of 20 texts (accuracy 0.9).
PREDICTED = [LABELS[(i + 1) % 3] if i in (4, 11) else label for i, label in enumerate(TRUTH)]


@pytest.fixture
def setup(tmp_path: Path):
    """A model dir (v9: one checksummed file and a manifest with golden stats) and a golden set."""
    model = tmp_path / "models" / "v9"
    model.mkdir(parents=True)
    blob = b'{"weights": [1, 2, 3]}'
    (model / "weights.json").write_bytes(blob)
    shares = Counter(PREDICTED)
    manifest = {
        "format": "hate-speech-linear/1",
        "version": "v9",
        "files": {"weights.json": {"sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob)}},
        "accuracy_floor": 0.8,
        "golden": {"n": N, "accuracy": 0.9, "label_distribution": {k: shares[k] / N for k in LABELS}},
    }
    (model / "manifest.json").write_text(json.dumps(manifest))
    golden = tmp_path / "golden.jsonl"
    golden.write_text("".join(json.dumps({"text": f"text {i}", "label": TRUTH[i]}) + "\n" for i in range(N)))
    config = HookConfig(
        new_version_arn=ARN, model_version="v9", models_dir=tmp_path / "models", golden_path=golden
    )
    return config, tmp_path


def answer(label: str | None, status: int = 200, version: str = "v9") -> dict:
    body = {"label": label, "category": "x", "scores": {}} if label else {"issue": "Internal server error"}
    return {"statusCode": status, "headers": {"X-Model-Version": version}, "body": json.dumps(body)}


def model(predicted=PREDICTED, status: int = 200, version: str = "v9"):
    """A fake new version: answers each golden text with the given label."""

    def invoke(event: dict) -> dict:
        i = int(json.loads(event["body"])["text"].split()[1])
        return answer(predicted[i] if status == 200 else None, status, version)

    return invoke


def failed_checks(result) -> set[str]:
    return {c.name for c in result.checks if not c.passed}


def test_healthy_version_passes_every_check(setup):
    """Right model, accuracy over the floor, the manifest's golden label mix, no errors: Succeeded."""
    config, _ = setup
    result = run_pretraffic(config, model())
    assert result.passed and result.status == "Succeeded", result.reason
    assert {c.name for c in result.checks} == {
        "artifacts",
        "golden set",
        "errors",
        "model version",
        "accuracy",
        "label distribution",
        "latency",
    }
    assert result.sent == result.answered == N


def test_version_answering_500_everywhere_fails(setup):
    """A version whose model failed to load (bad checksum) answers 500: errors and accuracy fail."""
    config, _ = setup
    result = run_pretraffic(config, model(status=500))
    assert not result.passed
    assert {"errors", "accuracy"} <= failed_checks(result)
    assert "failed to load" in result.reason


def test_accuracy_below_the_manifest_floor_fails(setup):
    """A model right on only half the golden texts is below accuracy_floor 0.8."""
    config, _ = setup
    wrong = [LABELS[(LABELS.index(t) + 1) % 3] if i % 2 else t for i, t in enumerate(TRUTH)]
    result = run_pretraffic(config, model(wrong))
    assert "accuracy" in failed_checks(result)


def test_label_mix_off_the_manifest_expectation_fails(setup):
    """Same texts, same model must give the same label mix: 3 answers moved to hate_speech fail it."""
    config, tmp = setup
    manifest_path = tmp / "models" / "v9" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["accuracy_floor"] = 0.5
    manifest_path.write_text(json.dumps(manifest))
    moved = [("hate_speech" if i in (1, 2, 5) else p) for i, p in enumerate(PREDICTED)]
    result = run_pretraffic(config, model(moved))
    assert failed_checks(result) == {"label distribution"}


def test_tampered_artifact_fails_the_checksum(setup):
    """A shipped model file that no longer matches its sha256 fails `artifacts`, naming the file."""
    config, tmp = setup
    (tmp / "models" / "v9" / "weights.json").write_bytes(b'{"weights": [1, 2, 4]}')
    result = run_pretraffic(config, model())
    assert failed_checks(result) == {"artifacts", "accuracy", "label distribution"}
    assert "weights.json" in result.reason


def test_model_version_is_read_from_multi_value_headers(setup):
    """Powertools' REST resolver answers with multiValueHeaders only: the hook reads those too."""
    config, _ = setup

    def invoke(event: dict) -> dict:
        i = int(json.loads(event["body"])["text"].split()[1])
        body = json.dumps({"label": PREDICTED[i], "category": "x", "scores": {}})
        return {"statusCode": 200, "multiValueHeaders": {"x-model-version": ["v9"]}, "body": body}

    result = run_pretraffic(config, invoke)
    assert result.passed, result.reason


def test_answers_from_the_wrong_model_fail(setup):
    """X-Model-Version v1 when v9 is being deployed fails `model version`."""
    config, _ = setup
    result = run_pretraffic(config, model(version="v1"))
    assert "model version" in failed_checks(result)


def test_running_out_of_time_stops_and_fails(setup):
    """Past the deadline no more golden requests are sent and the hook fails, in time to report."""
    config, _ = setup
    ticks = iter(range(10_000))
    result = run_pretraffic(config, model(), deadline=10.0, clock=lambda: float(next(ticks)))
    assert "time" in failed_checks(result)
    assert result.sent < N


def test_golden_events_are_api_gateway_proxy_events_marked_pretraffic(setup):
    """Each golden request is a REST proxy POST whose request id the judge filters out."""
    config, _ = setup
    event = golden_event("hello there", 3, config, "d-ABC123")
    assert event["httpMethod"] == "POST" and event["path"] == "/infer/hate-speech"
    assert json.loads(event["body"]) == {"text": "hello there"}
    assert event["requestContext"]["requestId"] == "pretraffic-d-ABC123-3"
    assert event["isBase64Encoded"] is False


def test_golden_file_must_hold_known_labels(tmp_path):
    """A golden row with an unknown label is refused with its line number."""
    path = tmp_path / "golden.jsonl"
    path.write_text('{"text": "a", "label": "neither"}\n{"text": "b", "label": "spam"}\n')
    with pytest.raises(Exception, match=r"golden.jsonl:2"):
        load_golden(path)


# ------------------------------------------------------------------ handle(): CodeDeploy always hears back


def hook_env(config: HookConfig, **extra) -> dict:
    env = {
        "NEW_VERSION_ARN": ARN,
        "MODEL_VERSION": "v9",
        "MODELS_DIR": str(config.models_dir),
        "GOLDEN_PATH": str(config.golden_path),
        "HOOK_CONCURRENCY": "1",
    }
    env.update(extra)
    return env


def payload(data: dict) -> StreamingBody:
    raw = json.dumps(data).encode()
    return StreamingBody(io.BytesIO(raw), len(raw))


def expect_status(stub: Stubber, status: str) -> None:
    stub.add_response(
        "put_lifecycle_event_hook_execution_status",
        {"lifecycleEventHookExecutionId": "exec-1"},
        {"deploymentId": "d-ABC123", "lifecycleEventHookExecutionId": "exec-1", "status": status},
    )


def test_handle_reports_succeeded_for_a_healthy_version(setup):
    """Success path: every golden request invoked on the qualified ARN, then Succeeded reported."""
    config, _ = setup
    codedeploy, lam = boto3.client("codedeploy", **CREDS), boto3.client("lambda", **CREDS)
    with Stubber(codedeploy) as s_cd, Stubber(lam) as s_lam:
        for label in PREDICTED:
            s_lam.add_response(
                "invoke",
                {"StatusCode": 200, "Payload": payload(answer(label)), "ExecutedVersion": "7"},
                {"FunctionName": ARN, "InvocationType": "RequestResponse", "Payload": ANY},
            )
        expect_status(s_cd, "Succeeded")
        result = handle(DEPLOYMENT, codedeploy=codedeploy, lambda_client=lam, environ=hook_env(config))
        s_cd.assert_no_pending_responses()
        s_lam.assert_no_pending_responses()
    assert result["status"] == "Succeeded"


def test_handle_reports_failed_when_the_new_version_errors(setup):
    """Failure path: the new version's function errors on every invoke; Failed is reported."""
    config, _ = setup
    codedeploy, lam = boto3.client("codedeploy", **CREDS), boto3.client("lambda", **CREDS)
    with Stubber(codedeploy) as s_cd, Stubber(lam) as s_lam:
        for _ in range(N):
            s_lam.add_response(
                "invoke",
                {
                    "StatusCode": 200,
                    "FunctionError": "Unhandled",
                    "Payload": payload({"errorMessage": "boom"}),
                    "ExecutedVersion": "7",
                },
            )
        expect_status(s_cd, "Failed")
        result = handle(DEPLOYMENT, codedeploy=codedeploy, lambda_client=lam, environ=hook_env(config))
        s_cd.assert_no_pending_responses()
    assert result["status"] == "Failed" and "errors" in result["reason"]


def test_handle_counts_a_throttled_invoke_as_a_failed_request(setup):
    """An invoke that raises (TooManyRequests) fails that golden request, not the hook."""
    config, _ = setup
    codedeploy, lam = boto3.client("codedeploy", **CREDS), boto3.client("lambda", **CREDS)
    with Stubber(codedeploy) as s_cd, Stubber(lam) as s_lam:
        s_lam.add_client_error("invoke", "TooManyRequestsException", http_status_code=429)
        for label in PREDICTED[1:]:
            s_lam.add_response(
                "invoke", {"StatusCode": 200, "Payload": payload(answer(label)), "ExecutedVersion": "7"}
            )
        expect_status(s_cd, "Failed")
        result = handle(DEPLOYMENT, codedeploy=codedeploy, lambda_client=lam, environ=hook_env(config))
    assert "1 of 20 golden requests failed" in result["reason"]


@pytest.mark.parametrize(
    ("env_change", "message"),
    [
        ({"GOLDEN_PATH": "/nonexistent/golden.jsonl"}, "golden set missing"),
        ({"NEW_VERSION_ARN": ""}, "NEW_VERSION_ARN"),
        ({"HOOK_CONCURRENCY": "many"}, "HOOK_CONCURRENCY"),
    ],
)
def test_handle_reports_failed_when_the_hook_itself_crashes(setup, env_change, message):
    """Crash path: no golden set, no target ARN, a bad setting: the hook still reports Failed."""
    config, _ = setup
    codedeploy, lam = boto3.client("codedeploy", **CREDS), boto3.client("lambda", **CREDS)
    with Stubber(codedeploy) as s_cd, Stubber(lam):
        expect_status(s_cd, "Failed")
        result = handle(
            DEPLOYMENT, codedeploy=codedeploy, lambda_client=lam, environ=hook_env(config, **env_change)
        )
        s_cd.assert_no_pending_responses()
    assert result["status"] == "Failed" and message in result["reason"]


def test_handle_without_codedeploy_ids_reports_nothing(setup):
    """An event that is not a CodeDeploy lifecycle event has nobody to report to: no call, Failed."""
    config, _ = setup
    codedeploy, lam = boto3.client("codedeploy", **CREDS), boto3.client("lambda", **CREDS)
    with Stubber(codedeploy), Stubber(lam):
        result = handle({}, codedeploy=codedeploy, lambda_client=lam, environ=hook_env(config))
    assert result["status"] == "Failed"


def test_hook_config_refuses_an_unqualified_arn():
    """NEW_VERSION_ARN must name a version (…:fn:7), not the function or an alias."""
    with pytest.raises(ValueError, match="qualified"):
        HookConfig.from_env({"NEW_VERSION_ARN": "arn:aws:lambda:us-east-1:1:function:fn:live"})


# ------------------------------------------------------------------ the real models on the real golden set


@pytest.mark.data
def test_real_v2_passes_and_v1_posing_as_v2_fails_on_the_real_golden_set(dataset, models_dir, tmp_path):
    """With the real golden set and manifests, v2 passes its own checks; v1 answering instead fails them."""
    from infer.model import load_model
    from training.data import LABELS as DATA_LABELS
    from training.data import golden_set

    rows = golden_set(dataset, 300)
    golden = tmp_path / "golden.jsonl"
    golden.write_text(
        "".join(json.dumps({"text": r.text, "label": DATA_LABELS[r.label]}) + "\n" for r in rows)
    )
    config = HookConfig(new_version_arn=ARN, model_version="v2", models_dir=models_dir, golden_path=golden)

    def serve(version: str):
        scorer = load_model(models_dir / version)

        def invoke(event: dict) -> dict:
            prediction = scorer.predict(json.loads(event["body"])["text"])
            return answer(prediction.label, version=version)

        return invoke

    good = run_pretraffic(config, serve("v2"))
    assert good.passed, good.reason
    bad = run_pretraffic(config, serve("v1"))
    assert {"model version", "accuracy", "label distribution"} <= failed_checks(bad)
