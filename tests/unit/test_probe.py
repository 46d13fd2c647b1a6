"""The synthetic probe (canary/probe.py): paired sends at a rate, its probe set and known answers,
and the scheduled handler that probes only while a canary runs."""

from __future__ import annotations

import io
import json
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from canary.config import ConfigError, ProbeConfig
from canary.evidence import EvidenceConfig, plan, scheduled_rate
from canary.probe import (
    ProbeError,
    ProbeText,
    expected_labels,
    handle,
    load_known_answers,
    load_probe_set,
    probe_request_id,
    probe_text_id,
    run_probe,
)
from infer.sources import source_of_request_id
from tests.unit import _canary_logs as fx

CREDS = {"region_name": "us-east-1", "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
TEXTS = [ProbeText(f"r{i}", f"text number {i}") for i in range(4)]


class FakeClock:
    """A clock that only moves when the code under test sleeps (or an invoke takes time)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += max(seconds, 0.0)


def ok(label: str = "neither") -> dict:
    return {"statusCode": 200, "headers": {"X-Model-Version": "v1"}, "body": json.dumps({"label": label})}


def test_each_text_goes_to_both_versions_under_one_probe_id_at_the_rate():
    """5 texts/s for 2 s: 10 texts, each sent to baseline and canary with the same request id
    "probe-<run>-<row>-<seq>", as an API Gateway proxy event; the sends are paced by the clock."""
    clock, sent = FakeClock(), []

    def invoke(version, event):
        sent.append(
            (version, event["requestContext"]["requestId"], clock(), json.loads(event["body"])["text"])
        )
        return ok()

    result = run_probe(
        invoke, TEXTS, "6", "7", rate=5.0, duration_s=2.0, run_id="abc", clock=clock, sleep=clock.sleep
    )
    assert result.texts == 10 and result.answered == {"6": 10, "7": 10} and result.failed == {}
    by_id = {}
    for version, rid, at, text in sent:
        by_id.setdefault(rid, []).append((version, at, text))
    assert len(by_id) == 10
    for rid, sends in by_id.items():
        assert sorted(v for v, _, _ in sends) == ["6", "7"]
        assert sends[0][1:] == sends[1][1:]  # the same moment, the same text
        assert rid.startswith("probe-abc-r")
    times = sorted({at for _, at, _ in (s for sends in by_id.values() for s in sends)})
    assert times == pytest.approx([1000.0 + k / 5.0 for k in range(10)])
    assert sent[0][3] == TEXTS[0].text and sent[-1][3] == TEXTS[9 % 4].text  # cycles the set


def test_a_sleep_that_ends_early_never_sends_ahead_of_schedule():
    """On a clock that can pause (the rehearsal's compressed clock holds while a minute closes) a
    sleep may return before the text is due: the probe reads the clock again and waits on, so each
    text goes out at its due time, never earlier."""
    clock, sent = FakeClock(), []

    def paused_sleep(seconds):  # the clock only covers half of each requested sleep
        clock.sleep(seconds / 2.0)

    def invoke(version, event):
        sent.append(clock())
        return ok()

    result = run_probe(
        invoke, TEXTS, "6", "7", rate=2.0, duration_s=3.0, run_id="abc", clock=clock, sleep=paused_sleep
    )
    assert result.texts == 6
    due = [1000.0 + k / 2.0 for k in range(6)]
    assert all(at >= d - 1e-6 for at, d in zip(sorted(sent)[::2], due, strict=True))


def test_failed_answers_are_counted_never_raised():
    """An invoke that raises, a 500 and a 200 without a label are failed answers of that version."""
    answers = iter(
        [
            ok(),
            RuntimeError("throttled"),
            {"statusCode": 500, "body": "{}"},
            {"statusCode": 200, "body": "{}"},
        ]
    )

    def invoke(version, event):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    clock = FakeClock()
    result = run_probe(
        invoke, TEXTS, "6", "7", rate=1.0, duration_s=2.0, run_id="r", clock=clock, sleep=clock.sleep
    )
    assert result.texts == 2
    assert sum(result.answered.values()) == 1 and sum(result.failed.values()) == 3


def test_the_run_stops_when_the_canary_is_gone():
    """keep_going, asked every 10 s, ends the run early when the canary no longer runs."""
    clock = FakeClock()
    result = run_probe(
        lambda v, e: ok(), TEXTS, "6", "7", rate=1.0, duration_s=55.0, run_id="r",
        clock=clock, sleep=clock.sleep, keep_going=lambda: False,
    )  # fmt: skip
    assert result.stopped == "canary no longer running" and result.texts == 11


def test_the_probe_id_names_the_text_for_the_inference_function_and_the_judge():
    """infer.sources reads the request id as a probe with probe id "<run>-<row>-<seq>"; the judge
    finds the row, and from it each model's known answer."""
    origin = source_of_request_id(probe_request_id("0a1b", "r17", 42))
    assert (origin.source, origin.probe_id) == ("probe", "0a1b-r17-42")
    assert probe_text_id(origin.probe_id) == "r17"
    expected = expected_labels({"v2": {"r17": "hate_speech"}})
    assert expected("v2", origin.probe_id) == "hate_speech"
    assert expected("v1", origin.probe_id) is None and expected("v2", "garbage") is None


def test_probe_set_and_known_answers_are_read_with_clear_errors(tmp_path: Path):
    """probe.jsonl rows {"id", "text"} with unique ids free of "-"; each model's answers.json (named
    by its manifest) maps row ids to labels; a missing or malformed file says which and why."""
    good = tmp_path / "probe.jsonl"
    good.write_text('{"id": "r1", "text": "a"}\n{"id": "r2", "text": "b"}\n')
    assert [t.row_id for t in load_probe_set(good)] == ["r1", "r2"]
    with pytest.raises(ProbeError, match="probe set missing"):
        load_probe_set(tmp_path / "nope.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "r-1", "text": "a"}\n')
    with pytest.raises(ProbeError, match="bad.jsonl:1"):
        load_probe_set(bad)
    models = tmp_path / "models"
    fx.write_models(models, [("r1", "neither", "hate_speech")])
    assert load_known_answers(models) == {"v1": {"r1": "neither"}, "v2": {"r1": "hate_speech"}}
    (models / "v1" / "answers.json").write_text('{"format": "something-else/1"}')
    with pytest.raises(ProbeError, match="v1: unreadable known answers"):
        load_known_answers(models)


def test_the_scheduled_rate_delivers_the_planned_probe_count_in_the_worst_case():
    """A run starts up to a minute after the canary and probes 55 s of each minute: 7 texts/s
    still gives plan()'s 5 texts/s x 300 s within the window."""
    cfg = EvidenceConfig()
    rate = scheduled_rate(cfg, run_seconds=55.0)
    assert rate == 7.0
    assert rate * (cfg.window_s - 60.0) * 55.0 / 60.0 >= plan(cfg).probe_rps * cfg.window_s


def lambda_client():
    return boto3.client("lambda", **CREDS)


def test_idle_without_a_canary():
    """The alias points at one version: the probe sends nothing and returns at once."""
    lam = lambda_client()
    with Stubber(lam) as stub:
        stub.add_response(
            "get_alias", {"FunctionVersion": "6", "Name": "live"}, {"FunctionName": "fn", "Name": "live"}
        )
        result = handle(lambda_client=lam, config=ProbeConfig(function_name="fn"), run_id="r")
    assert result == {"status": "idle", "baseline_version": "6"}


class FakeLambda:
    """get_alias with a canary, and invoke that records the qualified names it was called with."""

    def __init__(self) -> None:
        self.invoked: list[str] = []

    def get_alias(self, FunctionName, Name):  # noqa: N803 - boto3's parameter names
        return {"FunctionVersion": "6", "RoutingConfig": {"AdditionalVersionWeights": {"7": 0.1}}}

    def invoke(self, FunctionName, InvocationType, Payload):  # noqa: N803
        self.invoked.append(FunctionName)
        body = json.dumps(ok())
        return {
            "StatusCode": 200,
            "ExecutedVersion": FunctionName.rsplit(":", 1)[1],
            "Payload": io.BytesIO(body.encode()),
        }


def test_during_a_canary_it_invokes_both_versions_directly_never_the_alias(tmp_path: Path):
    """With a canary behind the alias the handler probes function:6 and function:7 (qualified
    versions, not the alias or the API) for its run time."""
    probe_set = tmp_path / "probe.jsonl"
    probe_set.write_text("".join(json.dumps({"id": t.row_id, "text": t.text}) + "\n" for t in TEXTS))
    lam, clock = FakeLambda(), FakeClock()
    config = ProbeConfig(function_name="fn", probe_set_path=probe_set, rate=2.0, run_seconds=3.0)
    result = handle(lambda_client=lam, config=config, run_id="r", clock=clock, sleep=clock.sleep)
    assert result["status"] == "probed" and result["texts"] == 6
    assert sorted(set(lam.invoked)) == ["fn:6", "fn:7"] and len(lam.invoked) == 12


def test_probe_config_from_env():
    """FUNCTION_NAME is required; PROBE_RATE must be positive; defaults otherwise."""
    config = ProbeConfig.from_env({"FUNCTION_NAME": "fn"})
    assert (config.alias, config.rate, config.run_seconds) == ("live", None, 55.0)
    assert ProbeConfig.from_env({"FUNCTION_NAME": "fn", "PROBE_RATE": "9"}).rate == 9.0
    with pytest.raises(ConfigError, match="FUNCTION_NAME"):
        ProbeConfig.from_env({})
    with pytest.raises(ConfigError, match="PROBE_RATE"):
        ProbeConfig.from_env({"FUNCTION_NAME": "fn", "PROBE_RATE": "0"})


def test_the_run_reports_each_versions_median_handler_latency_from_the_header():
    """Answers carrying X-Handler-Latency-Ms: the result has each version's median (a summary;
    the judge reads each request's latency_ms from the logs); without the header, None."""
    clock = FakeClock()
    times = {"6": iter([3.0, 1.0, 2.0, 9.0, 0.5]), "7": iter([])}

    def invoke(version, event):
        response = ok()
        value = next(times[version], None)
        if value is not None:
            response["headers"]["X-Handler-Latency-Ms"] = f"{value:.3f}"
        return response

    result = run_probe(
        invoke, TEXTS, "6", "7", rate=5.0, duration_s=1.0, run_id="abc", clock=clock, sleep=clock.sleep
    )
    assert result.texts == 5
    assert result.handler_ms_p50 == {"6": 2.0, "7": None}
    assert result.as_dict()["handler_ms_p50"] == {"6": 2.0, "7": None}
