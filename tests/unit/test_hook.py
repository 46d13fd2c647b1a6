"""The PreTraffic hook: exact agreement with the model's known answers on every test text and
with its recorded answers on every case of the behavioural suite, its other checks, and that it
always reports to CodeDeploy."""

from __future__ import annotations

import hashlib
import io
import json
import random
import shutil
import threading
import time
from dataclasses import replace
from pathlib import Path

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from canary import suite_answers
from canary.config import TEST_TEXTS, HookConfig
from canary.hook import handle, hook_event, load_texts, run_pretraffic
from canary.records import LABELS

ARN = "arn:aws:lambda:us-east-1:123456789012:function:hate-speech-fn:7"
CREDS = {"region_name": "us-east-1", "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
DEPLOYMENT = {"DeploymentId": "d-ABC123", "LifecycleEventHookExecutionId": "exec-1"}
N = 20
UNPACED = 1e9  # texts/s: the latency reference's pass never waits (pacing has its own tests)
ROW_IDS = [7 + 3 * i for i in range(N)]  # row ids are the data set's, not positions
RECORDED = {row: LABELS[(i * 7) % 3] for i, row in enumerate(ROW_IDS)}
# A small behavioural suite (the real one has 364 cases; its own tests use it): ids as the suite's.
SUITE_IDS = [f"{kind}-{i:03d}" for i, kind in enumerate(["benign", "slur", "threat", "negated"] * 3, 1)]
SUITE_RECORDED = {case_id: LABELS[(i * 5) % 3] for i, case_id in enumerate(SUITE_IDS)}
SUITE_MARK = "-suite-"  # suite request ids: pretraffic-<run id>-suite-<case id>


def secret(row_id: int) -> str:
    """A text the tests can recognise if it ever leaks into a reason or a log."""
    return f"secret tweet {row_id}"


def answers_doc(recorded: dict[int, str], probe_rows: list[int] | None = None) -> dict:
    row_ids = list(recorded)
    return {
        "format": "known-answers/1",
        "split": "test",
        "n": len(row_ids),
        "row_ids_sha256": hashlib.sha256(",".join(map(str, row_ids)).encode()).hexdigest(),
        "row_ids": row_ids,
        "labels": list(LABELS),
        "answers": "".join(str(LABELS.index(recorded[r])) for r in row_ids),
        "probe": {"balanced_over": "this model's answers", "per_label": {}, "row_ids": probe_rows or []},
    }


def suite_text(case_id: str) -> str:
    """A suite text the tests can recognise if it ever reaches a reason or a log (ids only may)."""
    return f"secret suite case {case_id}"


def write_suite(path: Path, case_ids=SUITE_IDS, text=suite_text) -> Path:
    """The suite as the package ships it (suite.jsonl: training/suite/cases.jsonl's lines)."""
    case = {"functionality": "x", "expected": "neither", "reason": "r"}
    lines = [{"id": c, **case, "text": text(c)} for c in case_ids]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def suite_doc(recorded: dict[str, str]) -> dict:
    """suite_answers.json as training writes it, over the test suite's (id, text) pairs."""
    return suite_answers.build([(c, suite_text(c)) for c in recorded], recorded, LABELS)


def write_texts(path: Path, row_ids) -> Path:
    path.write_text("".join(json.dumps({"id": str(r), "text": secret(r)}) + "\n" for r in row_ids))
    return path


def write_model(
    models_dir: Path,
    name: str,
    recorded: dict[int, str],
    ratio_to: dict | None = None,
    probe_rows: list[int] | None = None,
    suite: dict[str, str] | dict | None = SUITE_RECORDED,
) -> Path:
    """A model dir as training writes it: a checksummed weights file, answers.json,
    suite_answers.json (`suite`: its recorded labels, or a whole document; None: a model trained
    before the suite) and a manifest naming them (with latency.ratio_to when given)."""
    model = models_dir / name
    model.mkdir(parents=True)
    blobs = {
        "weights.json": b'{"weights": [1, 2, 3]}',
        "answers.json": json.dumps(answers_doc(recorded, probe_rows)).encode(),
    }
    doc = None if suite is None else suite if "format" in suite else suite_doc(suite)
    if doc is not None:
        blobs[suite_answers.FILE] = json.dumps(doc).encode()
    for file, blob in blobs.items():
        (model / file).write_bytes(blob)
    manifest = {
        "format": "hate-speech-linear/1",
        "version": name,
        "files": {n: {"sha256": hashlib.sha256(b).hexdigest(), "bytes": len(b)} for n, b in blobs.items()},
        "known_answers": {"file": "answers.json", "split": "test", "n": len(recorded)},
    }
    if doc is not None:
        n, sha = len(doc["ids"]), doc["suite_sha256"]
        manifest["suite"] = {"file": suite_answers.FILE, "n": n, "suite_sha256": sha}
    if ratio_to:
        manifest["latency"] = {"ratio_to": ratio_to}
    (model / "manifest.json").write_text(json.dumps(manifest))
    return model


@pytest.fixture
def setup(tmp_path: Path):
    """A model dir (v9), the known-answer texts and the suite next to the golden set, as the build
    writes them."""
    write_model(tmp_path / "models", "v9", RECORDED)
    write_texts(tmp_path / TEST_TEXTS, ROW_IDS)
    write_suite(tmp_path / suite_answers.PACKAGE_FILE)
    config = HookConfig(
        new_version_arn=ARN,
        model_version="v9",
        models_dir=tmp_path / "models",
        golden_path=tmp_path / "golden.jsonl",
        reference_rate=UNPACED,
    )
    return config, tmp_path


def answer(
    label: str | None, status: int = 200, version: str = "v9", handler_ms: float | None = None
) -> dict:
    body = {"label": label, "category": "x", "scores": {}} if label else {"issue": "Internal server error"}
    headers = {"X-Model-Version": version}
    if handler_ms is not None:
        headers["X-Handler-Latency-Ms"] = f"{handler_ms:.3f}"
    return {"statusCode": status, "headers": headers, "body": json.dumps(body)}


def row_of(event: dict) -> int:
    """The row id the request id ends with (pretraffic-<run id>-<row id>)."""
    return int(event["requestContext"]["requestId"].rsplit("-", 1)[1])


def case_of(event: dict) -> str | None:
    """The suite case id a request id names (pretraffic-<run id>-suite-<case id>), else None."""
    request_id = event["requestContext"]["requestId"]
    return request_id.split(SUITE_MARK, 1)[1] if SUITE_MARK in request_id else None


def model(
    recorded=RECORDED,
    override=None,
    status: int = 200,
    version: str = "v9",
    calls=None,
    handler_ms=None,
    suite=SUITE_RECORDED,
    suite_calls=None,
    suite_texts=suite_text,
):
    """A fake new version: answers each text with its recorded label unless override[row] (a
    suite case: override[case id]) says otherwise; handler_ms(row) -> the X-Handler-Latency-Ms it
    sends (None: no header). Known-answer rows go to `calls`, suite case ids to `suite_calls`;
    suite_texts(case id) is the text each suite case must arrive with."""
    override = override or {}

    def invoke(event: dict) -> dict:
        case = case_of(event)
        if case is not None:
            assert json.loads(event["body"])["text"] == suite_texts(case)
            if suite_calls is not None:
                suite_calls.append(case)
            label = override.get(case, suite[case]) if status == 200 else None
            return answer(label, status, version)
        row = row_of(event)
        assert json.loads(event["body"])["text"] == secret(row)  # the text of that row was sent
        if calls is not None:
            calls.append(row)
        label = override.get(row, recorded[row]) if status == 200 else None
        return answer(label, status, version, handler_ms(row) if handler_ms else None)

    return invoke


def failed_checks(result) -> set[str]:
    return {c.name for c in result.checks if not c.passed}


def other(label: str) -> str:
    return LABELS[(LABELS.index(label) + 1) % 3]


def test_version_giving_every_known_answer_passes_every_check(setup):
    """Every text answered with its recorded label, from the right model, no error: Succeeded."""
    config, _ = setup
    calls: list[int] = []
    result = run_pretraffic(config, model(calls=calls))
    assert result.passed and result.status == "Succeeded", result.reason
    assert {c.name for c in result.checks} == {
        "artifacts",
        "known-answer set",
        "suite set",
        "errors",
        "model version",
        "known answers",
        "suite answers",
        "latency",
    }
    assert result.sent == result.answered == N
    assert sorted(calls) == ROW_IDS  # each row once
    assert f"on {N} known-answer requests and {len(SUITE_IDS)} suite requests" in result.reason


def test_one_answer_off_its_recorded_label_fails_naming_the_row_id_not_the_text(setup):
    """Deterministic models: a single different label fails the deployment, naming the row id."""
    config, _ = setup
    row = ROW_IDS[5]
    result = run_pretraffic(config, model(override={row: other(RECORDED[row])}))
    assert failed_checks(result) == {"known answers"}
    assert f"1 of {N} answers differ from the labels v9 recorded" in result.reason
    assert f"{RECORDED[row]} -> {other(RECORDED[row])}: 1" in result.reason
    assert f"row ids {row}" in result.reason
    assert result.details["differing_row_ids"] == [row]
    assert "secret tweet" not in json.dumps(result.as_dict())  # texts never reach the log


def real_suite(models_dir: Path, version: str, folder: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The committed suite shipped into `folder` as the build ships it; ({case id: label the
    committed model recorded}, {case id: text})."""
    from infer.artifacts import ArtifactDir
    from training.behaviour import DEFAULT_SUITE

    shutil.copyfile(DEFAULT_SUITE, folder / suite_answers.PACKAGE_FILE)
    recorded = suite_answers.labels_by_id(ArtifactDir(models_dir / version).json(suite_answers.FILE))
    return recorded, dict(suite_answers.read_texts(DEFAULT_SUITE))


def test_a_one_percent_forced_label_fault_over_the_real_known_answers_is_caught(models_dir, tmp_path):
    """The fault the old label-mix check missed: 1 % of answers forced to `neither`, over v2's
    4,953 recorded test answers. Every forced answer that changed a label is named."""
    from infer.artifacts import ArtifactDir

    doc = ArtifactDir(models_dir / "v2").json("answers.json")
    recorded = {int(r): doc["labels"][int(a)] for r, a in zip(doc["row_ids"], doc["answers"], strict=True)}
    write_texts(tmp_path / TEST_TEXTS, recorded)
    suite, texts = real_suite(models_dir, "v2", tmp_path)
    config = HookConfig(
        new_version_arn=ARN, model_version="v2", models_dir=models_dir, golden_path=tmp_path / "golden.jsonl"
    )
    rng = random.Random(20240610)
    forced = {row: "neither" for row in recorded if rng.random() < 0.01}
    fake = model(recorded, override=forced, version="v2", suite=suite, suite_texts=texts.__getitem__)
    result = run_pretraffic(config, fake)
    changed = sorted(row for row in forced if recorded[row] != "neither")
    assert len(recorded) == 4953 and changed
    assert failed_checks(result) == {"known answers"}
    assert sorted(result.details["differing_row_ids"]) == changed
    assert f"{len(changed)} of 4953 answers differ" in result.reason


def test_a_failed_invoke_fails_the_deployment(setup):
    """An invoke that raises counts as a failed request (not a hook crash) and fails `errors`."""
    config, _ = setup
    healthy = model()

    def invoke(event: dict) -> dict:
        if row_of(event) == ROW_IDS[3]:
            raise ConnectionError("reset by peer")
        return healthy(event)

    result = run_pretraffic(config, invoke)
    assert failed_checks(result) == {"errors"}
    assert f"1 of {N} requests failed" in result.reason
    assert result.answered == N - 1


def test_a_response_too_odd_to_read_is_a_failed_request_not_a_crash(setup):
    """Headers that are not a mapping: that request fails `errors`; the hook still reports."""
    config, _ = setup
    healthy = model()

    def invoke(event: dict) -> dict:
        if row_of(event) == ROW_IDS[2]:
            return {"statusCode": 200, "headers": ["X-Model-Version", "v9"], "body": "{}"}
        return healthy(event)

    result = run_pretraffic(config, invoke)
    assert failed_checks(result) == {"errors"}
    errors = next(c for c in result.checks if c.name == "errors")
    assert errors.observed == f"1/{N} failed, first: unreadable response: AttributeError"


def test_version_answering_500_everywhere_fails(setup):
    """A version whose model failed to load (bad checksum) answers 500: nothing to compare."""
    config, _ = setup
    result = run_pretraffic(config, model(status=500))
    assert {"errors", "known answers", "latency"} <= failed_checks(result)
    assert "failed to load" in result.reason


def test_tampered_answers_file_fails_the_checksum_and_sends_nothing(setup):
    """answers.json changed after the build (one label flipped): `artifacts` fails naming it, and
    no request is sent, since nothing could be checked against those answers."""
    config, tmp = setup
    path = tmp / "models" / "v9" / "answers.json"
    doc = json.loads(path.read_text())
    doc["answers"] = ("1" if doc["answers"][0] != "1" else "2") + doc["answers"][1:]
    path.write_text(json.dumps(doc))
    calls: list[int] = []
    result = run_pretraffic(config, model(calls=calls))
    assert failed_checks(result) == {"artifacts"}
    assert "answers.json: sha256 does not match the manifest" in result.reason
    assert calls == [] and result.sent == 0


def test_texts_missing_a_recorded_row_fail_before_sending(setup):
    """A texts file built from other data (a recorded row id without its text) fails, named."""
    config, tmp = setup
    write_texts(tmp / TEST_TEXTS, ROW_IDS[:-1])
    calls: list[int] = []
    result = run_pretraffic(config, model(calls=calls))
    assert failed_checks(result) == {"known-answer set"}
    assert f"1 of {N} recorded rows have no text" in result.reason and str(ROW_IDS[-1]) in result.reason
    assert calls == []


def test_model_version_is_read_from_multi_value_headers(setup):
    """Powertools' REST resolver answers with multiValueHeaders only: the hook reads those too."""
    config, _ = setup

    def invoke(event: dict) -> dict:
        case = case_of(event)
        label = SUITE_RECORDED[case] if case else RECORDED[row_of(event)]
        body = json.dumps({"label": label, "category": "x", "scores": {}})
        return {"statusCode": 200, "multiValueHeaders": {"x-model-version": ["v9"]}, "body": body}

    result = run_pretraffic(config, invoke)
    assert result.passed, result.reason


def test_answers_from_the_wrong_model_fail(setup):
    """X-Model-Version v1 when v9 is being deployed fails `model version`."""
    config, _ = setup
    result = run_pretraffic(config, model(version="v1"))
    assert "model version" in failed_checks(result)


def test_running_out_of_time_stops_and_fails(setup):
    """Past the deadline no more requests are sent and the hook fails, in time to report."""
    config, _ = setup
    ticks = iter(range(10_000))
    result = run_pretraffic(config, model(), deadline=10.0, clock=lambda: float(next(ticks)))
    assert "time" in failed_checks(result)
    assert result.sent < N


def test_a_hung_invoke_is_not_awaited_past_the_deadline(setup):
    """One invoke that never returns: the hook stops waiting at the deadline and fails `time`
    instead of outliving its Lambda timeout without reporting."""
    config, _ = setup
    release = threading.Event()
    healthy = model()

    def invoke(event: dict) -> dict:
        if row_of(event) == ROW_IDS[0]:
            release.wait(timeout=30)
        return healthy(event)

    try:
        result = run_pretraffic(config, invoke, deadline=time.monotonic() + 0.5)
    finally:
        release.set()
    assert "time" in failed_checks(result)
    assert result.answered == N - 1


def test_hook_events_are_api_gateway_proxy_events_ending_with_the_row_id(setup):
    """Each request is a REST proxy POST; its request id starts with "pretraffic-" (the judge
    leaves it out) and ends with the row id (the probe_id tying the log record to its text)."""
    config, _ = setup
    event = hook_event("hello there", 2741, config, "d-ABC123")
    assert event["httpMethod"] == "POST" and event["path"] == "/infer/hate-speech"
    assert json.loads(event["body"]) == {"text": "hello there"}
    assert event["requestContext"]["requestId"] == "pretraffic-d-ABC123-2741"
    assert event["isBase64Encoded"] is False


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ('{"id": "1", "text": "a"}\n{"id": "x2", "text": "b"}\n', r"test_texts.jsonl:2: id must be a row id"),
        ('{"id": "1", "text": "a"}\n{"id": "1", "text": "b"}\n', r"test_texts.jsonl:2: row id 1 repeats"),
        ('{"id": "1"}\n', r"test_texts.jsonl:1: not a known-answer row"),
        ("\n", r"no known-answer texts"),
    ],
)
def test_known_answer_texts_must_be_well_formed(tmp_path, lines, message):
    """A malformed texts file is refused with its line number."""
    path = tmp_path / TEST_TEXTS
    path.write_text(lines)
    with pytest.raises(Exception, match=message):
        load_texts(path)


def test_the_texts_are_found_next_to_the_golden_set_unless_configured(tmp_path):
    """Default: the build's test_texts.jsonl beside GOLDEN_PATH; HOOK_TEST_TEXTS_PATH overrides."""
    from training import golden

    env = {"NEW_VERSION_ARN": ARN, "GOLDEN_PATH": str(tmp_path / "golden.jsonl")}
    assert HookConfig.from_env(env).known_texts_path == tmp_path / golden.TEST_TEXTS
    elsewhere = tmp_path / "other.jsonl"
    assert HookConfig.from_env({**env, "HOOK_TEST_TEXTS_PATH": str(elsewhere)}).known_texts_path == elsewhere


# ------------------------------------------------------------------ the behavioural suite's recorded answers


def test_one_flipped_suite_answer_fails_naming_the_case_id_not_the_text(setup):
    """The models are deterministic: one suite case answered off its recorded label fails the
    deployment, saying how many of the suite's cases differ and naming the case id, never a text;
    every suite case was sent once, to the new version."""
    config, _ = setup
    case = SUITE_IDS[4]
    flipped = other(SUITE_RECORDED[case])
    suite_calls: list[str] = []
    result = run_pretraffic(config, model(override={case: flipped}, suite_calls=suite_calls))
    assert failed_checks(result) == {"suite answers"}
    assert f"1 of {len(SUITE_IDS)} suite answers differ from the labels v9 recorded" in result.reason
    assert f"{SUITE_RECORDED[case]} -> {flipped}: 1" in result.reason and f"case ids {case}" in result.reason
    assert result.details["differing_case_ids"] == [case]
    assert sorted(suite_calls) == sorted(SUITE_IDS)
    assert "secret" not in json.dumps(result.as_dict())  # no suite text, no known-answer text


def test_many_flipped_suite_answers_are_counted_and_the_first_ids_named(setup):
    """Every suite answer off: all 12 counted, the first 10 case ids named, the rest counted."""
    config, _ = setup
    flipped = {case: other(label) for case, label in SUITE_RECORDED.items()}
    result = run_pretraffic(config, model(override=flipped))
    assert failed_checks(result) == {"suite answers"}
    assert "12 of 12 suite answers differ" in result.reason
    assert f"case ids {', '.join(SUITE_IDS[:10])} and 2 more" in result.reason
    assert result.details["differing_case_ids"] == SUITE_IDS


def _sent_nothing(config: HookConfig):
    """run_pretraffic with a version that records what reaches it: (result, requests seen)."""
    calls: list[int] = []
    suite_calls: list[str] = []
    result = run_pretraffic(config, model(calls=calls, suite_calls=suite_calls))
    return result, calls + suite_calls


def test_a_suite_text_holding_a_unicode_line_separator_is_read_whole(tmp_path):
    """JSON lets a text hold U+2028 unescaped (spacing tricks are a suite functionality): the
    suite is split on newlines only, so that case stays one (id, text) pair, not an error."""
    text = "you are a\u2028lovely person\u0085 really"
    path = tmp_path / "suite.jsonl"
    lines = [{"id": "benign-001", "text": "hi"}, {"id": "spacing-002", "text": text}]
    path.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), encoding="utf-8")
    assert suite_answers.read_texts(path) == [("benign-001", "hi"), ("spacing-002", text)]


def test_a_packaged_suite_other_than_the_recorded_one_fails_before_sending(setup):
    """One case reworded since v9 recorded its answers: the fingerprints of the (id, text) pairs
    differ, `suite set` fails saying rebuild, and nothing is sent."""
    config, tmp = setup
    reworded = {SUITE_IDS[0]: "a reworded case"}
    write_suite(tmp / "suite.jsonl", text=lambda c: reworded.get(c, suite_text(c)))
    result, seen = _sent_nothing(config)
    assert failed_checks(result) == {"suite set"} and seen == [] and result.sent == 0
    assert "the hook's suite (suite.jsonl: 12 cases, sha256" in result.reason
    assert "is not the one v9's answers were recorded on" in result.reason and "rebuild" in result.reason


def test_a_model_without_suite_answers_fails_with_the_retrain_hint(setup):
    """A model trained before issue 13 (no `suite` in its manifest): Failed, "retrain with make
    train", nothing sent."""
    config, tmp = setup
    shutil.rmtree(tmp / "models" / "v9")
    write_model(tmp / "models", "v9", RECORDED, suite=None)
    result, seen = _sent_nothing(config)
    assert failed_checks(result) == {"suite set"} and seen == []
    assert "v9's manifest records no behavioural suite answers" in result.reason
    assert "retrain with `make train`" in result.reason


def test_a_package_without_the_suite_fails_saying_rebuild(setup):
    """suite.jsonl missing from the package (built before the suite shipped): Failed, rebuild."""
    config, tmp = setup
    (tmp / "suite.jsonl").unlink()
    result, seen = _sent_nothing(config)
    assert failed_checks(result) == {"suite set"} and seen == []
    assert "the hook's package has no suite" in result.reason and "rebuild" in result.reason


def _broken_doc(doc: dict) -> dict:
    return {**doc, "format": "something else"}


def _other_sha(doc: dict) -> dict:
    return {**doc, "suite_sha256": "0" * 64}


@pytest.mark.parametrize(
    ("spoil", "message"),
    [(_broken_doc, "format 'something else'"), (_other_sha, "its suite_sha256 is not the manifest's")],
)
def test_unusable_suite_answers_fail_before_sending(setup, spoil, message):
    """A checksummed suite_answers.json that is not a suite-answers document, or whose suite
    fingerprint is not the manifest's: `suite set` fails (retrain), nothing sent, no crash."""
    config, tmp = setup
    doc = spoil(suite_doc(SUITE_RECORDED))
    shutil.rmtree(tmp / "models" / "v9")
    write_model(tmp / "models", "v9", RECORDED, suite=doc)
    if spoil is _other_sha:  # the manifest keeps the true fingerprint: the two disagree
        manifest_path = tmp / "models" / "v9" / "manifest.json"
        manifest = json.loads(manifest_path.read_text())
        manifest["suite"]["suite_sha256"] = suite_doc(SUITE_RECORDED)["suite_sha256"]
        manifest_path.write_text(json.dumps(manifest))
    result, seen = _sent_nothing(config)
    assert failed_checks(result) == {"suite set"} and seen == []
    assert "unusable suite answers" in result.reason and message in result.reason
    assert "retrain with `make train`" in result.reason


def test_tampered_suite_answers_fail_the_checksum(setup):
    """suite_answers.json edited after training: its sha256 no longer matches, `artifacts` fails."""
    config, tmp = setup
    path = tmp / "models" / "v9" / suite_answers.FILE
    path.write_bytes(path.read_bytes().replace(b'"answers": "', b'"answers": "0'))
    result, seen = _sent_nothing(config)
    assert failed_checks(result) == {"artifacts"} and seen == []
    assert "suite_answers.json" in result.reason


def test_suite_cases_without_an_answer_fail_rather_than_pass(setup):
    """A version failing the suite's requests (the known answers fine): the unanswered cases are
    not a pass, `suite answers` fails saying how many got no answer and why."""
    config, _ = setup
    healthy = model()

    def invoke(event: dict) -> dict:
        if case_of(event) in SUITE_IDS[:3]:
            raise TimeoutError("read timed out")
        return healthy(event)

    result = run_pretraffic(config, invoke)
    assert failed_checks(result) == {"suite answers"}
    assert "3 of 12 suite cases got no answer (first: invoke failed: TimeoutError)" in result.reason


def test_suite_answers_from_another_model_fail(setup):
    """Suite answers carrying X-Model-Version v1 while v9 is deployed fail `suite answers`."""
    config, _ = setup
    healthy, v1 = model(), model(version="v1")
    result = run_pretraffic(config, lambda e: v1(e) if case_of(e) else healthy(e))
    assert failed_checks(result) == {"suite answers"}
    assert "suite answers came from ['v1'], expected v9" in result.reason


def test_suite_events_are_hook_requests_naming_the_case(setup):
    """A suite request is a REST proxy POST of the case's text whose request id,
    "pretraffic-<run id>-suite-<case id>", makes it a hook request (never live traffic to the
    judge) naming the case."""
    from canary.hook import SuiteCase, suite_event
    from infer.sources import HOOK, source_of_request_id

    config, _ = setup
    event = suite_event(SuiteCase("negated-004", "a suite text"), config, "d-ABC123")
    assert event["httpMethod"] == "POST" and json.loads(event["body"]) == {"text": "a suite text"}
    request_id = event["requestContext"]["requestId"]
    assert request_id == "pretraffic-d-ABC123-suite-negated-004"
    assert source_of_request_id(request_id).source == HOOK


def test_a_deadline_reached_before_the_suite_fails_it(setup):
    """The clock runs out as the known-answer pass ends: no suite case is sent, and the suite
    check fails (not sent, out of time) instead of passing on nothing."""
    config, _ = setup
    now = [0.0]
    calls: list[int] = []
    suite_calls: list[str] = []
    healthy = model(calls=calls, suite_calls=suite_calls)

    def invoke(event: dict) -> dict:
        out = healthy(event)
        if len(calls) == N:  # the last known-answer text: the deadline has passed
            now[0] = 1000.0
        return out

    result = run_pretraffic(config, invoke, deadline=10.0, clock=lambda: now[0])
    assert failed_checks(result) == {"suite answers"} and suite_calls == []
    assert "12 of 12 suite cases got no answer (first: not sent: out of time)" in result.reason


class CostClock:
    """Simulated time: each invoke adds its share of wall time (its round trip divided by the
    requests in flight), each sleep its length. Thread-safe: the pools invoke concurrently."""

    def __init__(self, per_invoke_s: float) -> None:
        self.now, self.per_invoke_s, self.lock = 0.0, per_invoke_s, threading.Lock()
        self.suite_span: list[float] = []  # when the first and the last suite request were sent

    def __call__(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds

    def costing(self, invoke):
        def timed(event: dict) -> dict:
            with self.lock:
                self.now += self.per_invoke_s
                if case_of(event) is not None:
                    self.suite_span = [self.suite_span[0] if self.suite_span else self.now, self.now]
            return invoke(event)

        return timed


def test_the_whole_hook_with_the_suite_fits_its_timeout_at_real_sizes(tmp_path):
    """The budget in canary/hook.py's doc, on a simulated clock: 4,953 known-answer texts to both
    versions, the real suite's 364 cases to the new version, then the latency reference over a
    600-text probe set (two models' disjoint 300, the most it can be) paced at the scheduled 7/s,
    each invoke costing 2 ms of wall time (a ~16 ms round trip, 8 in flight: the template's ~10 s
    per 4,953). Every check passes inside Timeout 300 s less the 15 s margin; the suite pass is
    not paced and costs under 1 s of it."""
    from canary.evidence import scheduled_rate
    from training.behaviour import DEFAULT_SUITE

    rows = list(range(1, 4954))
    recorded = {row: LABELS[row % 3] for row in rows}
    pairs = suite_answers.read_texts(DEFAULT_SUITE)
    suite = {case_id: LABELS[i % 3] for i, (case_id, _) in enumerate(pairs)}
    doc = suite_answers.build(pairs, suite, LABELS)
    models = tmp_path / "models"
    write_model(models, "v9", recorded, ratio_to={"v8": 1.0}, probe_rows=rows[:300], suite=doc)
    write_model(models, "v8", recorded, probe_rows=rows[300:600], suite=doc)
    write_texts(tmp_path / TEST_TEXTS, rows)
    shutil.copyfile(DEFAULT_SUITE, tmp_path / suite_answers.PACKAGE_FILE)
    golden = tmp_path / "golden.jsonl"
    config = HookConfig(new_version_arn=ARN, model_version="v9", models_dir=models, golden_path=golden)
    clock = CostClock(per_invoke_s=0.002)
    texts = dict(pairs)
    new = model(recorded, suite=suite, suite_texts=texts.__getitem__, handler_ms=lambda row: 1.0)
    old = model(recorded, version="v8", handler_ms=lambda row: 1.0)
    deadline = 300.0 - config.time_margin_s
    result = run_pretraffic(
        config,
        clock.costing(new),
        invoke_baseline=clock.costing(old),
        baseline_version="6",
        deadline=deadline,
        clock=clock,
        sleep=clock.sleep,
    )
    assert result.passed, result.reason
    assert result.details["suite_texts"] == 364 and result.latency_reference == pytest.approx(1.0)
    first, last = clock.suite_span
    assert first == pytest.approx(2 * 4953 * 0.002 + 0.002) and last - first < 1.0  # after the known pass
    # The reference pass: row k due k/7 s after it began (invokes between rows are absorbed by the
    # pacing sleeps), then the last row's two invokes.
    assert clock.now == pytest.approx(last + 599 / scheduled_rate() + 2 * 0.002)
    assert clock.now < deadline


# ------------------------------------------------------------------ the latency reference (paired)


@pytest.fixture
def paired(setup):
    """The canary v9 and a baseline v8 (same texts, its own answers, every 4th row labelled
    differently); v9's manifest expects it 2.0x v8."""
    config, tmp = setup
    (tmp / "models" / "v9" / "manifest.json").unlink()
    shutil.rmtree(tmp / "models" / "v9")
    write_model(tmp / "models", "v9", RECORDED, ratio_to={"v8": 2.0})
    write_model(tmp / "models", "v8", BASE_RECORDED)
    return config, tmp


BASE_RECORDED = {
    row: other(label) if i % 4 == 0 else label for i, (row, label) in enumerate(RECORDED.items())
}


def base_model(**kwargs):
    return model(BASE_RECORDED, version="v8", **kwargs)


def ms(base: float, spread: float = 0.2):
    """Handler times varying from row to row around `base` (the ratio is what is measured)."""
    return lambda row: base * (1.0 + spread * ((row % 5) - 2) / 2)


def test_the_reference_is_the_median_paired_handler_latency_ratio(paired):
    """Every text goes to both versions under the same request id; the reference is the median
    of the per-text canary/baseline handler-time ratios (3.0 here, within max(1, 2.0) x 1.5), it
    is in the result's as_dict with the pairs and each version's median, and every check passes."""
    config, _ = paired
    canary_calls: list[int] = []
    base_calls: list[int] = []
    result = run_pretraffic(
        config,
        model(calls=canary_calls, handler_ms=lambda row: 3 * ms(1.0)(row)),
        invoke_baseline=base_model(calls=base_calls, handler_ms=ms(1.0)),
        baseline_version="6",
    )
    assert result.passed, result.reason
    # Each text twice: the known answers, then the warm reference pass (no probe set here: all).
    assert sorted(canary_calls) == sorted(base_calls) == sorted(ROW_IDS * 2)
    assert result.latency_reference == pytest.approx(3.0)
    ref = result.as_dict()["latency_reference"]
    assert (ref["pairs"], ref["baseline_version"], ref["baseline_model"]) == (N, "6", "v8")
    assert ref["canary_median_ms"] == pytest.approx(3 * ref["baseline_median_ms"])
    assert 0.8 <= ref["baseline_median_ms"] <= 1.2
    check = next(c for c in result.checks if c.name == "latency reference")
    assert "3.00" in check.reason and "max(1, the manifests' 2) x 1.5" in check.reason
    assert {"baseline known answers", "latency reference"} <= {c.name for c in result.checks}


def test_a_reference_beyond_1_5x_the_manifests_ratio_fails_naming_both(paired):
    """The canary measures 4x the baseline where the manifests say 2x: above 2 x 1.5 = 3, the
    canary is slow from the start and the hook fails, naming 4.00 and 3.00."""
    config, _ = paired
    result = run_pretraffic(
        config,
        model(handler_ms=lambda row: 4 * ms(1.0)(row)),
        invoke_baseline=base_model(handler_ms=ms(1.0)),
        baseline_version="6",
    )
    assert failed_checks(result) == {"latency reference"}
    assert (
        "ratio 4.00" in result.reason and "> 3.00" in result.reason and "slow from the start" in result.reason
    )


def test_a_model_much_faster_in_the_scorer_is_not_failed_for_measuring_near_1(paired):
    """Rollback v9 -> v8: the manifests expect v8 at 1/2 of v9, but the handler's common overhead
    pulls the measured ratio toward 1 (here 0.9): the bound is max(1, 0.5) x 1.5, so it passes."""
    config, tmp = paired
    rollback = HookConfig(
        new_version_arn=ARN, model_version="v8", models_dir=config.models_dir, golden_path=config.golden_path
    )
    result = run_pretraffic(
        rollback,
        base_model(handler_ms=lambda row: 0.9 * ms(1.0)(row)),
        invoke_baseline=model(handler_ms=ms(1.0)),
        baseline_version="7",
    )
    assert result.passed, result.reason
    assert result.latency_reference == pytest.approx(0.9)


def test_a_baseline_disagreeing_with_its_own_known_answers_voids_the_comparison(paired):
    """The baseline answers one text otherwise than v8 recorded: its answers cannot be trusted,
    nor the comparison with them: Failed, saying the baseline disagrees and naming the row."""
    config, _ = paired
    row = ROW_IDS[2]
    result = run_pretraffic(
        config,
        model(handler_ms=ms(2.0)),
        invoke_baseline=base_model(override={row: other(BASE_RECORDED[row])}, handler_ms=ms(1.0)),
        baseline_version="6",
    )
    assert failed_checks(result) == {"baseline known answers"}
    assert "baseline version 6 (v8)" in result.reason and "comparison is void" in result.reason
    assert f"row ids {row}" in result.reason


def test_without_a_baseline_invoke_the_pairing_is_skipped_and_said(paired):
    """The local stack without a baseline invoke: no extra request, no extra check, and the
    result's latency_reference has no ratio and says why."""
    config, _ = paired
    result = run_pretraffic(config, model(handler_ms=ms(1.0)))
    assert result.passed, result.reason
    assert result.latency_reference is None
    ref = result.as_dict()["latency_reference"]
    assert ref["ratio"] is None and "invoke_baseline not given" in ref["reason"]
    assert "latency reference" not in {c.name for c in result.checks}


def test_a_baseline_without_the_latency_header_fails_the_reference(paired):
    """A baseline built before X-Handler-Latency-Ms: no pair to measure, so the judge would have no
    reference: the hook fails `latency reference`, saying which side lacked the header."""
    config, _ = paired
    result = run_pretraffic(
        config, model(handler_ms=ms(2.0)), invoke_baseline=base_model(), baseline_version="6"
    )
    assert failed_checks(result) == {"latency reference"}
    assert "canary 20, baseline 0" in result.reason and result.latency_reference is None


def test_manifests_without_a_ratio_fail_the_reference_check(setup, tmp_path):
    """v8 and v9 with no latency.ratio_to: nothing to bound the reference by: retrain."""
    config, tmp = setup
    write_model(tmp / "models", "v8", BASE_RECORDED)
    result = run_pretraffic(
        config,
        model(handler_ms=ms(2.0)),
        invoke_baseline=base_model(handler_ms=ms(1.0)),
        baseline_version="6",
    )
    assert failed_checks(result) == {"latency reference"}
    assert "no latency.ratio_to for v9/v8" in result.reason
    assert result.latency_reference == pytest.approx(2.0)  # measured all the same, for the record


def test_a_baseline_answering_nothing_fails(paired):
    """A baseline that errors on every text: no comparison possible, Failed, saying so."""
    config, _ = paired
    result = run_pretraffic(
        config, model(handler_ms=ms(1.0)), invoke_baseline=base_model(status=500), baseline_version="6"
    )
    assert failed_checks(result) == {"baseline known answers"}
    assert "answered none of the 20 texts" in result.reason


class SimClock:
    """A clock that only moves when slept on: the pace is what the sleeps add up to."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _sent_at(clock: SimClock, calls: list[tuple[int, float]]):
    def wrap(invoke):
        def timed(event: dict) -> dict:
            if case_of(event) is None:  # the known-answer and reference passes' rows only
                calls.append((row_of(event), clock()))
            return invoke(event)

        return timed

    return wrap


def test_the_reference_pass_is_paced_at_the_probes_rate(paired):
    """PROBE_RATE 4: after the known-answer pass (sent at once), the reference pass sends row k at
    k/4 s, each row to both versions at the same moment, as the probe paces its texts (latency
    ratios measured back to back are not the ones a paced probe sees)."""
    config, _ = paired
    clock, canary_at, base_at = SimClock(), [], []
    result = run_pretraffic(
        replace(config, reference_rate=4.0),
        _sent_at(clock, canary_at)(model(handler_ms=lambda row: 3 * ms(1.0)(row))),
        invoke_baseline=_sent_at(clock, base_at)(base_model(handler_ms=ms(1.0))),
        baseline_version="6",
        clock=clock,
        sleep=clock.sleep,
    )
    assert result.passed, result.reason
    reference = canary_at[N:]
    assert [row for row, _ in reference] == ROW_IDS
    began = reference[0][1]
    assert [t - began for _, t in reference] == pytest.approx([k / 4.0 for k in range(N)])
    assert base_at[N:] == reference  # the same text to both at once
    assert {t for _, t in canary_at[:N]} == {100.0}  # the first pass is not paced


def test_the_reference_pace_defaults_to_the_scheduled_probes(paired):
    """No PROBE_RATE (the template sets none): the pass runs at canary.evidence.scheduled_rate(),
    the rate the scheduled probe sends at, and stops at the deadline with the pairs it has."""
    from canary.evidence import scheduled_rate

    config, _ = paired
    clock = SimClock()
    result = run_pretraffic(
        replace(config, reference_rate=None),
        model(handler_ms=lambda row: 3 * ms(1.0)(row)),
        invoke_baseline=base_model(handler_ms=ms(1.0)),
        baseline_version="6",
        clock=clock,
        deadline=100.0 + 9.5 / scheduled_rate(),
        sleep=clock.sleep,
    )
    assert clock.sleeps == pytest.approx([1.0 / scheduled_rate()] * 9)
    assert result.as_dict()["latency_reference"]["pairs"] == 10


def test_probe_rate_sets_the_reference_pace_as_it_sets_the_probes():
    """PROBE_RATE is read by the hook too (one setting for both); unset: None; 0: a config error."""
    from canary.config import ConfigError

    assert HookConfig.from_env({"NEW_VERSION_ARN": ARN}).reference_rate is None
    assert HookConfig.from_env({"NEW_VERSION_ARN": ARN, "PROBE_RATE": "6.5"}).reference_rate == 6.5
    with pytest.raises(ConfigError, match="PROBE_RATE"):
        HookConfig.from_env({"NEW_VERSION_ARN": ARN, "PROBE_RATE": "0"})


def test_handler_ms_reads_a_finite_non_negative_header_only():
    """The header as a number; absent, malformed, negative or infinite: None."""
    from canary.hook import handler_ms

    assert handler_ms({"headers": {"x-handler-latency-ms": "0.812"}}) == pytest.approx(0.812)
    assert handler_ms({"multiValueHeaders": {"X-Handler-Latency-Ms": ["1.5"]}}) == 1.5
    for bad in ("abc", "-1", "inf", "nan"):
        assert handler_ms({"headers": {"X-Handler-Latency-Ms": bad}}) is None
    assert handler_ms({"headers": {}}) is None


# ------------------------------------------------------------------ handle(): CodeDeploy always hears back


def hook_env(config: HookConfig, **extra) -> dict:
    env = {
        "NEW_VERSION_ARN": ARN,
        "MODEL_VERSION": "v9",
        "MODELS_DIR": str(config.models_dir),
        "GOLDEN_PATH": str(config.golden_path),
        "HOOK_CONCURRENCY": "1",  # the Stubber answers in order
        "PROBE_RATE": str(UNPACED),
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


def clients():
    return boto3.client("codedeploy", **CREDS), boto3.client("lambda", **CREDS)


BASE_ARN = ARN.rsplit(":", 1)[0] + ":6"


def stub_alias(s_lam: Stubber, version: str = "6", weights: dict | None = None) -> None:
    """lambda get_alias: what alias live really serves (the deployment's CurrentVersion, normally)."""
    routing = {"RoutingConfig": {"AdditionalVersionWeights": weights}} if weights else {}
    s_lam.add_response(
        "get_alias",
        {"Name": "live", "FunctionVersion": version, **routing},
        {"FunctionName": ARN.rsplit(":", 1)[0], "Name": "live"},
    )


def stub_target(stub: Stubber, current: str = "6", target: str = "7", s_lam: Stubber | None = None) -> None:
    """The deployment (get_deployment, list_deployment_targets, get_deployment_target) during
    BeforeAllowTraffic: the alias on `current`, shifting to `target`; with s_lam, the alias read
    that follows (serving `current`)."""
    ids = {"deploymentId": "d-ABC123"}
    info = {**ids, "deploymentConfigName": "CodeDeployDefault.LambdaCanary10Percent5Minutes"}
    stub.add_response("get_deployment", {"deploymentInfo": info}, ids)
    stub.add_response("list_deployment_targets", {"targetIds": ["hate-speech-fn:live"]}, ids)
    lam = {
        "deploymentId": "d-ABC123",
        "targetId": "hate-speech-fn:live",
        "status": "InProgress",
        "lifecycleEvents": [{"lifecycleEventName": "BeforeAllowTraffic", "status": "InProgress"}],
        "lambdaFunctionInfo": {
            "functionName": "hate-speech-fn",
            "functionAlias": "live",
            "currentVersion": current,
            "targetVersion": target,
        },
    }
    stub.add_response(
        "get_deployment_target",
        {"deploymentTarget": {"deploymentTargetType": "LambdaTarget", "lambdaTarget": lam}},
        {**ids, "targetId": "hate-speech-fn:live"},
    )
    if s_lam is not None:
        stub_alias(s_lam, current)


def stub_pair(
    s_lam: Stubber, canary: dict | None, baseline: dict, *, canary_error: str | None = None
) -> None:
    """One text's two invokes, in the hook's order: the canary's qualified ARN, then the baseline's."""
    if canary is None:
        s_lam.add_client_error("invoke", canary_error or "TooManyRequestsException", http_status_code=429)
    else:
        s_lam.add_response(
            "invoke",
            {"StatusCode": 200, "Payload": payload(canary), "ExecutedVersion": "7", **(
                {"FunctionError": canary_error} if canary_error else {})},
            {"FunctionName": ARN, "InvocationType": "RequestResponse", "Payload": ANY},
        )  # fmt: skip
    s_lam.add_response(
        "invoke",
        {"StatusCode": 200, "Payload": payload(baseline), "ExecutedVersion": "6"},
        {"FunctionName": BASE_ARN, "InvocationType": "RequestResponse", "Payload": ANY},
    )


def stub_suite(s_lam: Stubber, override: dict[str, str] | None = None) -> None:
    """The suite pass's invokes, in suite order: the new version's qualified ARN only."""
    for case_id in SUITE_IDS:
        label = (override or {}).get(case_id, SUITE_RECORDED[case_id])
        s_lam.add_response(
            "invoke",
            {"StatusCode": 200, "Payload": payload(answer(label)), "ExecutedVersion": "7"},
            {"FunctionName": ARN, "InvocationType": "RequestResponse", "Payload": ANY},
        )


def healthy_pair(row: int, label: str | None = None) -> tuple[dict, dict]:
    return answer(label or RECORDED[row], handler_ms=1.2), answer(RECORDED[row], handler_ms=1.0)


@pytest.fixture
def logged(monkeypatch):
    """The hook's log records as (message, extra) pairs."""
    from canary import hook

    records: list[tuple[str, dict]] = []
    monkeypatch.setattr(hook.logger, "info", lambda msg, extra=None, **_: records.append((msg, extra or {})))
    return records


def test_handle_reports_succeeded_for_a_version_giving_every_known_answer(setup, logged):
    """Success path: the versions read from the deployment, every text invoked on both qualified
    ARNs, Succeeded reported, and the "pretraffic check" record carries the deployment id and the
    measured latency reference (1.2 / 1.0), where the judge and the gate read it."""
    config, _ = setup
    codedeploy, lam = clients()
    with Stubber(codedeploy) as s_cd, Stubber(lam) as s_lam:
        stub_target(s_cd, s_lam=s_lam)
        for row in ROW_IDS:  # the known answers
            stub_pair(s_lam, *healthy_pair(row))
        stub_suite(s_lam)  # the suite, to the new version alone
        for row in ROW_IDS:  # the reference pass (no probe set here: every text)
            stub_pair(s_lam, *healthy_pair(row))
        expect_status(s_cd, "Succeeded")
        result = handle(DEPLOYMENT, codedeploy=codedeploy, lambda_client=lam, environ=hook_env(config))
        s_cd.assert_no_pending_responses()
        s_lam.assert_no_pending_responses()
    assert result["status"] == "Succeeded", result["reason"]
    ((message, extra),) = [r for r in logged if r[0] == "pretraffic check"]
    assert extra["deployment_id"] == "d-ABC123"
    reference = extra["result"]["latency_reference"]
    assert reference["ratio"] == pytest.approx(1.2) and reference["pairs"] == N
    assert reference["baseline_version"] == "6"
    from canary.sources import latency_reference

    assert latency_reference(extra) == pytest.approx(1.2)  # what the gate reads back


def test_handle_reports_failed_when_one_answer_differs(setup):
    """Failure path: one label off its recorded one; Failed is reported, naming the row id."""
    config, _ = setup
    codedeploy, lam = clients()
    with Stubber(codedeploy) as s_cd, Stubber(lam) as s_lam:
        stub_target(s_cd, s_lam=s_lam)
        for row in ROW_IDS:
            label = other(RECORDED[row]) if row == ROW_IDS[-1] else RECORDED[row]
            stub_pair(s_lam, *healthy_pair(row, label))
        expect_status(s_cd, "Failed")
        result = handle(DEPLOYMENT, codedeploy=codedeploy, lambda_client=lam, environ=hook_env(config))
        s_cd.assert_no_pending_responses()
    assert result["status"] == "Failed" and f"row ids {ROW_IDS[-1]}" in result["reason"]


def test_handle_reports_failed_when_one_suite_answer_differs(setup):
    """Failure path through handle(): every known answer right, one suite case answered off its
    recorded label by the new version; Failed is reported, naming the case id."""
    config, _ = setup
    case = SUITE_IDS[-1]
    codedeploy, lam = clients()
    with Stubber(codedeploy) as s_cd, Stubber(lam) as s_lam:
        stub_target(s_cd, s_lam=s_lam)
        for row in ROW_IDS:
            stub_pair(s_lam, *healthy_pair(row))
        stub_suite(s_lam, override={case: other(SUITE_RECORDED[case])})
        for row in ROW_IDS:
            stub_pair(s_lam, *healthy_pair(row))
        expect_status(s_cd, "Failed")
        result = handle(DEPLOYMENT, codedeploy=codedeploy, lambda_client=lam, environ=hook_env(config))
        s_cd.assert_no_pending_responses()
        s_lam.assert_no_pending_responses()
    assert result["status"] == "Failed"
    assert result["reason"] == (
        f"suite answers: 1 of {len(SUITE_IDS)} suite answers differ from the labels v9 recorded "
        f"({SUITE_RECORDED[case]} -> {other(SUITE_RECORDED[case])}: 1): case ids {case}"
    )


def test_handle_reports_failed_when_the_new_version_errors(setup):
    """Failure path: the new version's function errors on every invoke; Failed is reported."""
    config, _ = setup
    codedeploy, lam = clients()
    with Stubber(codedeploy) as s_cd, Stubber(lam) as s_lam:
        stub_target(s_cd, s_lam=s_lam)
        for row in ROW_IDS:
            stub_pair(s_lam, {"errorMessage": "boom"}, healthy_pair(row)[1], canary_error="Unhandled")
        expect_status(s_cd, "Failed")
        result = handle(DEPLOYMENT, codedeploy=codedeploy, lambda_client=lam, environ=hook_env(config))
        s_cd.assert_no_pending_responses()
    assert result["status"] == "Failed" and "errors" in result["reason"]


def test_handle_counts_a_throttled_invoke_as_a_failed_request(setup):
    """An invoke that raises (TooManyRequests) fails that request, not the hook: Failed reported."""
    config, _ = setup
    codedeploy, lam = clients()
    with Stubber(codedeploy) as s_cd, Stubber(lam) as s_lam:
        stub_target(s_cd, s_lam=s_lam)
        stub_pair(s_lam, None, healthy_pair(ROW_IDS[0])[1])
        for row in ROW_IDS[1:]:
            stub_pair(s_lam, *healthy_pair(row))
        expect_status(s_cd, "Failed")
        result = handle(DEPLOYMENT, codedeploy=codedeploy, lambda_client=lam, environ=hook_env(config))
        s_cd.assert_no_pending_responses()
    assert f"1 of {N} requests failed" in result["reason"]


def test_handle_fails_a_deployment_that_shifts_to_another_version(setup):
    """The deployment shifts to version 8 while NEW_VERSION_ARN names 7: nothing invoked, Failed
    reported, naming both."""
    config, _ = setup
    codedeploy, lam = clients()
    with Stubber(codedeploy) as s_cd, Stubber(lam) as s_lam:
        stub_target(s_cd, current="7", target="8")
        expect_status(s_cd, "Failed")
        result = handle(DEPLOYMENT, codedeploy=codedeploy, lambda_client=lam, environ=hook_env(config))
        s_cd.assert_no_pending_responses()
        s_lam.assert_no_pending_responses()
    assert "shifts to version 8, but NEW_VERSION_ARN names version 7" in result["reason"]


@pytest.mark.parametrize(
    ("serving", "weights", "named"),
    [("5", None, "serves version 5,"), ("6", {"5": 0.1}, "serves version 6 (and 5 at 10%)")],
)
def test_handle_fails_when_the_alias_no_longer_serves_the_deployments_current_version(
    setup, serving, weights, named
):
    """After a manual rollback the stack's record of the alias is stale: the deployment would
    shift from version 6 while live really serves 5 (or 6 plus a weight to 5). Nothing is
    invoked, Failed is reported before CodeDeploy moves any traffic, naming both versions."""
    config, _ = setup
    codedeploy, lam = clients()
    with Stubber(codedeploy) as s_cd, Stubber(lam) as s_lam:
        stub_target(s_cd)
        stub_alias(s_lam, serving, weights)
        expect_status(s_cd, "Failed")
        result = handle(DEPLOYMENT, codedeploy=codedeploy, lambda_client=lam, environ=hook_env(config))
        s_cd.assert_no_pending_responses()
        s_lam.assert_no_pending_responses()
    assert result["status"] == "Failed"
    assert named in result["reason"] and "shift traffic from version 6" in result["reason"]
    assert "stale" in result["reason"]


def test_handle_reports_failed_when_the_answers_file_was_tampered_with(setup):
    """Checksum path: a changed answers.json fails `artifacts`; no invoke, Failed reported."""
    config, tmp = setup
    path = tmp / "models" / "v9" / "answers.json"
    path.write_bytes(path.read_bytes().replace(b'"split": "test"', b'"split": "tost"'))
    codedeploy, lam = clients()
    with Stubber(codedeploy) as s_cd, Stubber(lam) as s_lam:
        stub_target(s_cd, s_lam=s_lam)
        expect_status(s_cd, "Failed")
        result = handle(DEPLOYMENT, codedeploy=codedeploy, lambda_client=lam, environ=hook_env(config))
        s_cd.assert_no_pending_responses()
        s_lam.assert_no_pending_responses()
    assert result["status"] == "Failed" and "answers.json: sha256" in result["reason"]


def _unusable_answers(tmp: Path) -> None:
    """answers.json replaced by a checksummed file that is not a known-answers document."""
    model = tmp / "models" / "v9"
    blob = b'{"format": "something else"}'
    (model / "answers.json").write_bytes(blob)
    manifest = json.loads((model / "manifest.json").read_text())
    manifest["files"]["answers.json"] = {"sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob)}
    (model / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("env_change", "prepare", "message", "looks_up"),
    [
        ({"GOLDEN_PATH": "/nonexistent/golden.jsonl"}, None, "known-answer texts missing", True),
        ({"NEW_VERSION_ARN": ""}, None, "NEW_VERSION_ARN", False),
        ({"HOOK_CONCURRENCY": "many"}, None, "HOOK_CONCURRENCY", False),
        ({"HOOK_CONCURRENCY": "65"}, None, "between 1 and 64", False),
        ({"HOOK_MAX_LATENCY_FACTOR": "0"}, None, "HOOK_MAX_LATENCY_FACTOR", False),
        ({}, _unusable_answers, "unusable known answers", True),
    ],
)
def test_handle_reports_failed_when_the_hook_itself_crashes(setup, env_change, prepare, message, looks_up):
    """Crash path: no texts, no target ARN, a bad setting, unusable answers: still Failed reported."""
    config, tmp = setup
    if prepare:
        prepare(tmp)
    codedeploy, lam = clients()
    with Stubber(codedeploy) as s_cd, Stubber(lam) as s_lam:
        if looks_up:
            stub_target(s_cd, s_lam=s_lam)
        expect_status(s_cd, "Failed")
        result = handle(
            DEPLOYMENT, codedeploy=codedeploy, lambda_client=lam, environ=hook_env(config, **env_change)
        )
        s_cd.assert_no_pending_responses()
    assert result["status"] == "Failed" and message in result["reason"]


def test_handle_reports_failed_when_codedeploy_refuses_the_lookup(setup):
    """GetDeployment denied: no baseline to pair with, so Failed is reported with the error."""
    config, _ = setup
    codedeploy, lam = clients()
    with Stubber(codedeploy) as s_cd, Stubber(lam):
        s_cd.add_client_error("get_deployment", "AccessDeniedException", "not authorized")
        expect_status(s_cd, "Failed")
        result = handle(DEPLOYMENT, codedeploy=codedeploy, lambda_client=lam, environ=hook_env(config))
        s_cd.assert_no_pending_responses()
    assert result["status"] == "Failed" and "AccessDeniedException" in result["reason"]


def test_handle_without_codedeploy_ids_reports_nothing(setup):
    """An event that is not a CodeDeploy lifecycle event has nobody to report to: no call, Failed."""
    config, _ = setup
    codedeploy, lam = clients()
    with Stubber(codedeploy), Stubber(lam):
        result = handle({}, codedeploy=codedeploy, lambda_client=lam, environ=hook_env(config))
    assert result["status"] == "Failed"


def test_hook_config_refuses_an_unqualified_arn():
    """NEW_VERSION_ARN must name a version (…:fn:7), not the function or an alias."""
    with pytest.raises(ValueError, match="qualified"):
        HookConfig.from_env({"NEW_VERSION_ARN": "arn:aws:lambda:us-east-1:1:function:fn:live"})


# ------------------------------------------------------------------ the real models on the real test split


@pytest.mark.data
def test_every_real_model_gives_its_known_and_suite_answers_and_v1_posing_as_v2_does_not(
    dataset, models_dir, tmp_path
):
    """With the texts the build writes (training.golden), the suite it ships and the committed
    answers, the runtime scorer of every committed model passes every check (its recorded suite
    answers are the ones it serves); v1 answering in v2's place fails `known answers` and
    `suite answers`."""
    from infer.model import load_model
    from training.golden import write_hook_files

    write_hook_files(dataset, tmp_path / "golden.jsonl", models_dir)
    real_suite(models_dir, "v2", tmp_path)
    versions = sorted(m.parent.name for m in models_dir.glob("v*/manifest.json"))

    def serve(version: str, posing_as: str):
        scorer = load_model(models_dir / version)

        def invoke(event: dict) -> dict:
            return answer(scorer.predict(json.loads(event["body"])["text"]).label, version=posing_as)

        return invoke

    def config(version: str) -> HookConfig:
        golden = tmp_path / "golden.jsonl"
        return HookConfig(
            new_version_arn=ARN, model_version=version, models_dir=models_dir, golden_path=golden
        )

    assert {"v1", "v2"} <= set(versions)
    for version in versions:
        good = run_pretraffic(config(version), serve(version, version))
        assert good.passed, (version, good.reason)
        assert good.sent == len(dataset.test) and good.details["suite_texts"] == 364
    bad = run_pretraffic(config("v2"), serve("v1", "v2"))
    assert failed_checks(bad) == {"known answers", "suite answers"}


def test_the_reference_is_the_median_whatever_order_the_answers_come_in():
    """Ratios 1, 5, 2, 4, 3 in row order: the reference is their median, 3, not the middle
    answer's (2); each version's median ms likewise (canary 1, 5, 4, 4, 3 -> 4)."""
    from canary.hook import Answer, measure_reference

    base = [1.0, 1.0, 2.0, 1.0, 1.0]
    ratios = [1.0, 5.0, 2.0, 4.0, 3.0]
    canary = [Answer(200, "neither", "v9", 5.0, handler_ms=b * r) for b, r in zip(base, ratios, strict=True)]
    baseline = [Answer(200, "neither", "v8", 5.0, handler_ms=b) for b in base]
    ref = measure_reference(canary, baseline, "6", "v8")
    assert ref.ratio == 3.0 and ref.pairs == 5
    assert (ref.canary_median_ms, ref.baseline_median_ms) == (4.0, 1.0)


def test_the_reference_is_measured_on_the_probe_set_texts(paired):
    """The ratio depends on the texts: the reference is the median over the probe set's rows only
    (the texts the probe will send), here 2.0 on them while the other texts run at 4.0."""
    config, tmp = paired
    probe_rows = ROW_IDS[::3]
    shutil.rmtree(tmp / "models" / "v9")
    write_model(tmp / "models", "v9", RECORDED, ratio_to={"v8": 2.0}, probe_rows=probe_rows)
    on_probe = set(probe_rows)
    result = run_pretraffic(
        config,
        model(handler_ms=lambda row: (2.0 if row in on_probe else 4.0) * ms(1.0)(row)),
        invoke_baseline=base_model(handler_ms=ms(1.0)),
        baseline_version="6",
    )
    ref = result.as_dict()["latency_reference"]
    assert result.latency_reference == pytest.approx(2.0)
    assert ref["pairs"] == len(probe_rows) and "probe-set texts" in ref["reason"]


def test_the_reference_comes_from_a_second_warm_pass_as_the_probe_sees_the_texts(paired):
    """The first pass meets every text cold (the canary 5x slower on a first sight here); the
    reference is measured on the second pass, warm, as the probe's cycling set will be: 2.0."""
    config, _ = paired
    seen: set[int] = set()

    def canary_ms(row: int) -> float:
        cold = row not in seen
        seen.add(row)
        return (10.0 if cold else 2.0) * ms(1.0)(row)

    result = run_pretraffic(
        config,
        model(handler_ms=canary_ms),
        invoke_baseline=base_model(handler_ms=ms(1.0)),
        baseline_version="6",
    )
    assert result.latency_reference == pytest.approx(2.0)


def test_the_paced_pass_never_sleeps_a_negative_time_on_a_busy_machine(setup):
    """The clock read to decide a wait and the clock read to size it may differ on a busy machine;
    a second read past the due time must not become sleep(<0), which raises ValueError in
    time.sleep and would crash the hook (BLOCKED for no fault of the canary)."""
    from canary.hook import KnownText, send_paced

    config, _ = setup
    # began, then row 1: due check, its invoke's start and end; row 2 (due 0.5): 0.49 then 0.51.
    ticks = iter([0.0, 0.0, 0.1, 0.2, 0.49, 0.51] + [0.6 + 0.01 * i for i in range(100)])

    def clock() -> float:
        return next(ticks)

    def strict_sleep(seconds: float) -> None:
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")

    rows = [KnownText(1, "first text"), KnownText(2, "second text")]
    paired = send_paced(
        rows, [lambda event: answer("neither")], config, "run", None, clock, rate=2.0, sleep=strict_sleep
    )
    assert [pair[0].label for pair in paired] == ["neither", "neither"]
