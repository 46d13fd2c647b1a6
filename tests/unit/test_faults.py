"""Fault specs of the rehearsal (emulator.faults): parsing, and what each does to a handler."""

from __future__ import annotations

import json
import time

import pytest

from emulator.faults import (
    FaultError,
    Faults,
    InjectedCrash,
    apply,
    corrupt_copy,
    parse,
    precise_wait,
    prepare_models,
)
from infer.artifacts import ArtifactDir, ArtifactError


def _handler(label: str = "neither"):
    calls = []

    def handler(event, context):
        calls.append(event)
        body = {"label": label, "category": "Neither", "scores": {}}
        return {"statusCode": 200, "body": json.dumps(body), "multiValueHeaders": {}}

    handler.calls = calls
    return handler


def test_every_documented_form_parses():
    """errors=P (also as a percentage), latency=X, labels=LABEL:P (by label or category), corrupt,
    and @N onsets parse into one Faults value."""
    faults = parse(["errors=5%@300", "latency=3x", "labels=Hate Speech:0.2", "labels=neither:0.1", "corrupt"])
    assert faults.error_rate == pytest.approx(0.05) and faults.error_after == 300
    assert faults.latency_factor == 3.0 and faults.latency_after == 0
    assert faults.forced_labels == (("hate_speech", 0.2), ("neither", 0.1))
    assert faults.corrupt and faults.any
    assert (
        faults.describe() == "errors=5%@300, latency=3x, labels=Hate Speech:0.2, labels=neither:0.1, corrupt"
    )


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("explode", "unknown fault"),
        ("errors", "missing value"),
        ("errors=1.5", "between 0 and 1"),
        ("errors=nan", "between 0 and 1"),
        ("errors=lots", "not a number"),
        ("latency=0.5", "between 1 and"),
        ("latency=inf", "between 1 and"),
        ("labels=spam:0.3", "not one of"),
        ("labels=hate_speech", "labels=LABEL:P"),
        ("corrupt=yes", "takes no value"),
        ("errors=0.1@-3", "must not be negative"),
        ("errors=0.1@soon", "whole number"),
        ("", "empty"),
    ],
)
def test_a_bad_spec_is_refused_with_the_accepted_forms(spec, says):
    """Anything not understood raises FaultError quoting the spec and listing the forms."""
    with pytest.raises(FaultError) as err:
        parse([spec])
    assert says in str(err.value) and "errors=P" in str(err.value)


def test_the_same_fault_twice_or_shares_over_one_are_refused():
    """errors twice, or labels shares adding up to more than 1, are contradictions."""
    with pytest.raises(FaultError, match="twice"):
        parse(["errors=0.1", "errors=0.2"])
    with pytest.raises(FaultError, match="more than 1"):
        parse(["labels=neither:0.7", "labels=hate_speech:0.6"])


def test_no_fault_leaves_the_handler_itself():
    """apply() with no effective fault returns the very same handler (nothing wrapped)."""
    handler = _handler()
    assert apply(handler, []) is handler
    assert apply(handler, Faults()) is handler
    assert not Faults().any


def test_errors_crash_about_the_given_share_and_only_after_the_onset():
    """errors=0.25@100: the first 100 invocations succeed; about a quarter of the rest raise
    InjectedCrash before the handler runs; the same seed hits the same invocations."""

    def crashes(seed):
        wrapped = apply(_handler(), ["errors=0.25@100"], seed=seed)
        hits = []
        for i in range(1100):
            try:
                wrapped({"n": i}, None)
            except InjectedCrash:
                hits.append(i)
        return hits

    hits = crashes(3)
    assert min(hits) >= 100
    assert 200 <= len(hits) <= 300
    assert hits == crashes(3) and hits != crashes(4)


def test_latency_multiplies_the_handler_time_by_sleeping():
    """latency=4: after a handler that took 2 ms (by the injected clock), it sleeps 6 ms more."""
    ticks = iter([0.0, 0.002])
    slept = []
    wrapped = apply(_handler(), ["latency=4"], wait=slept.append, clock=lambda: next(ticks))
    wrapped({}, None)
    assert slept == [pytest.approx(0.006)]


def test_a_short_wait_is_precise():
    """precise_wait(0.2 ms) takes 0.2 ms, not the millisecond an idle sleep overshoots by."""
    took = []
    for _ in range(20):
        t0 = time.perf_counter()
        precise_wait(0.0002)
        took.append(time.perf_counter() - t0)
    took.sort()
    assert 0.0002 <= took[10] < 0.0005


def test_labels_rewrite_the_answer_for_the_given_share():
    """labels=hate_speech:1 turns every 200 answer's label and category into hate speech; other
    fields stay; a non-200 answer is left alone."""
    wrapped = apply(_handler(), ["labels=hate_speech:1"], seed=1)
    body = json.loads(wrapped({}, None)["body"])
    assert body == {"label": "hate_speech", "category": "Hate Speech", "scores": {}}

    def failing(event, context):
        return {"statusCode": 500, "body": '{"issue": "x"}'}

    assert apply(failing, ["labels=hate_speech:1"])({}, None) == {"statusCode": 500, "body": '{"issue": "x"}'}


def test_corrupt_copy_fails_the_artifact_check_and_leaves_the_original_intact(models_dir, tmp_path):
    """corrupt: the copy's manifest is intact but one artifact byte is flipped, so ArtifactDir
    refuses it naming the file; models/<version> itself still verifies."""
    served = prepare_models(parse(["corrupt"]), "v1", models_dir, tmp_path)
    assert served == tmp_path / "models"
    with pytest.raises(ArtifactError):
        ArtifactDir(served / "v1")
    ArtifactDir(models_dir / "v1")
    assert prepare_models(parse([]), "v1", models_dir, tmp_path / "other") == models_dir


def test_corrupt_copy_needs_a_listed_artifact(tmp_path):
    """A model directory whose manifest lists no file cannot be damaged: FaultError says so."""
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "manifest.json").write_text('{"version": "v9", "files": {}}')
    with pytest.raises(FaultError, match="lists no artifact"):
        corrupt_copy(tmp_path / "m", tmp_path / "copy")


def test_hook_onset_parses_and_judge_crash_is_not_a_worker_fault():
    """@hook is an onset of errors, latency and labels (any case); judge=crash is the judge's fault:
    it changes nothing in the environment, and only judge=crash is accepted for it."""
    faults = parse(
        ["errors=0.03@hook", "latency=1.5@HOOK", "labels=offensive_language:0.2@hook", "judge=crash"]
    )
    assert (faults.error_after, faults.latency_after, faults.labels_after) == ("hook", "hook", "hook")
    assert faults.judge_crash and faults.any
    handler = _handler()
    assert apply(handler, parse(["judge=crash"])) is handler
    for spec, says in (
        ("judge=slow", "judge=crash"),
        ("judge=crash@hook", "judge=crash"),
        ("errors=0.1@soon", "@hook"),
    ):
        with pytest.raises(FaultError, match=says):
            parse([spec])


def test_a_hook_onset_waits_for_the_hook_to_be_done():
    """labels=hate_speech:1@hook answers truthfully, however many invocations, until hook_done()
    says the PreTraffic hook is over; from then on every answer is forced, and `effects` tells the
    worker which label its log record must carry."""
    done = {"hook": False}
    wrapped = apply(
        _handler("neither"), ["labels=hate_speech:1@hook"], seed=1, hook_done=lambda: done["hook"]
    )
    for _ in range(400):
        assert json.loads(wrapped({}, None)["body"])["label"] == "neither"
    assert wrapped.effects == {"label": None, "delay_ms": 0.0, "latency_factor": 1.0}
    done["hook"] = True
    assert json.loads(wrapped({}, None)["body"])["label"] == "hate_speech"
    assert wrapped.effects["label"] == "hate_speech"


def test_injected_latency_is_reported_for_the_log_record():
    """latency=3@hook once the hook is done: the wait the fault adds (2x the handler's time) and its
    factor are in `effects` (the worker multiplies the logged latency_ms by it, as a function 3x
    slower would log it)."""
    ticks = iter([0.0, 0.010])  # the handler takes 10 ms on this clock
    waited = []
    wrapped = apply(
        _handler(), ["latency=3@hook"], wait=waited.append, clock=lambda: next(ticks), hook_done=lambda: True
    )
    wrapped({}, None)
    assert waited == [pytest.approx(0.020)]
    assert wrapped.effects["delay_ms"] == pytest.approx(20.0) and wrapped.effects["latency_factor"] == 3.0
