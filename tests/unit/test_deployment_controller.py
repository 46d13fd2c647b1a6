"""The local deployment controller's pure parts: CodeDeploy's traffic plans, and the alarms
evaluated the CloudWatch way over the records of one period."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from canary.records import RequestRecord
from emulator.controller import (
    ALARM,
    INSUFFICIENT,
    OK,
    AlarmRule,
    AlarmState,
    datapoint,
    plan_for,
    short_names,
)


def _record(version: str, status: int = 200, latency: float = 1.0, label: str | None = "neither"):
    return RequestRecord(
        version, "v2" if version == "2" else "v1", latency, label if status < 400 else None, status, 0.0
    )


def _rule(**overrides) -> AlarmRule:
    fields = {
        "name": "errors",
        "namespace": "AWS/Lambda",
        "metric": "Errors",
        "statistic": "Sum",
        "threshold": 0.0,
        "comparison": "GreaterThanThreshold",
        "new_version_only": True,
    }
    return AlarmRule(**{**fields, **overrides})


def test_plans_of_the_predefined_lambda_configurations():
    """Canary10Percent5Minutes is one 10 % step of 5 minutes; Linear10PercentEvery1Minute nine
    steps up to 90 %; AllAtOnce none; CodeDeployDefault. prefixes are accepted."""
    assert [(s.weight, s.minutes) for s in plan_for("Canary10Percent5Minutes").steps] == [(0.1, 5.0)]
    linear = plan_for("Linear10PercentEvery1Minute")
    assert len(linear.steps) == 9 and linear.steps[-1].weight == pytest.approx(0.9) and linear.minutes == 9
    assert plan_for("AllAtOnce").steps == ()
    assert plan_for("CodeDeployDefault.LambdaCanary10Percent30Minutes").minutes == 30


def test_an_unknown_deployment_type_is_refused():
    """A type the controller cannot follow is a clear ValueError, not a silent AllAtOnce."""
    with pytest.raises(ValueError, match="not one the local controller knows"):
        plan_for("Blue/Green")


def test_errors_count_only_the_new_versions_crashes():
    """Lambda's Errors (scoped by ExecutedVersion) counts the canary's 502/504, not a 500 the
    handler chose to answer, and nothing of the baseline's."""
    records = [_record("1", 502), _record("2", 502), _record("2", 500), _record("2", 504), _record("2")]
    assert datapoint(_rule(), records, "2", None) == 2.0
    assert datapoint(_rule(), [_record("1")], "2", None) is None


def test_api_5xx_counts_every_version_and_p99_duration_is_the_canarys():
    """API 5XXError counts all 5xx answers; Duration p99 reads the canary's latencies."""
    records = [_record("1", 500), _record("2", 502)] + [_record("2", latency=float(i)) for i in range(1, 101)]
    api = _rule(namespace="AWS/ApiGateway", metric="5XXError", new_version_only=False)
    assert datapoint(api, records, "2", None) == 2.0
    p99 = _rule(metric="Duration", statistic="p99", threshold=100.0)
    assert 98.0 <= datapoint(p99, records, "2", None) <= 100.0


def test_the_verdict_alarm_reads_what_the_judge_published():
    """CanaryVerdict is the judge's value for the period (2 FAIL), None when it published none."""
    verdict = _rule(
        namespace="HateSpeechApi",
        metric="CanaryVerdict",
        statistic="Maximum",
        threshold=2.0,
        comparison="GreaterThanOrEqualToThreshold",
        new_version_only=False,
    )
    assert datapoint(verdict, [], "2", 2) == 2.0
    assert datapoint(verdict, [], "2", None) is None


def test_two_of_two_datapoints_are_needed_and_missing_data_does_not_breach():
    """The p99 alarm (EvaluationPeriods 2, DatapointsToAlarm 2, notBreaching): one slow minute is
    OK, a missing minute resets nothing into ALARM, two slow minutes in a row are ALARM."""
    state = AlarmState(
        _rule(
            metric="Duration", statistic="p99", threshold=100.0, evaluation_periods=2, datapoints_to_alarm=2
        )
    )
    assert state.state == INSUFFICIENT
    assert not state.evaluate(150.0, 1.0) and state.state == OK
    assert not state.evaluate(None, 2.0) and state.state == OK
    assert not state.evaluate(150.0, 3.0) and state.state == OK
    assert state.evaluate(180.0, 4.0) and state.state == ALARM
    assert "2 of the last 2 datapoints" in state.reason
    assert not state.evaluate(190.0, 5.0), "already in ALARM: not a new transition"


def test_treat_missing_as_breaching_turns_silence_into_an_alarm():
    """TreatMissingData breaching: a minute without data counts against the canary."""
    state = AlarmState(_rule(treat_missing_data="breaching"))
    assert state.evaluate(None, 1.0) and state.state == ALARM


def test_a_metric_the_local_stack_cannot_measure_stays_insufficient():
    """An alarm on a metric with no local counterpart never fires and says why."""
    state = AlarmState(_rule(namespace="AWS/Lambda", metric="Throttles"))
    assert not state.evaluate(datapoint(state.rule, [_record("2")], "2", None), 1.0)
    assert state.state == INSUFFICIENT and "not measured locally" in state.reason


def test_rules_come_from_the_templates_alarm_settings():
    """AlarmRule.from_settings keeps the comparison, periods and the ExecutedVersion scoping."""
    settings = SimpleNamespace(
        name="x-canary-errors",
        namespace="AWS/Lambda",
        metric="Errors",
        statistic="Sum",
        threshold=0.0,
        comparison="GreaterThanThreshold",
        period_s=60,
        evaluation_periods=1,
        datapoints_to_alarm=1,
        treat_missing_data="notBreaching",
        dimensions={"ExecutedVersion": "Fn.Version.Version"},
    )
    rule = AlarmRule.from_settings(settings)
    assert rule.new_version_only and rule.breaches(1.0) and not rule.breaches(0.0)


def test_short_names_drop_the_shared_prefix():
    """hate-speech-prod-canary-errors and hate-speech-prod-api-5xx read canary-errors and api-5xx."""
    names = ["hate-speech-prod-canary-errors", "hate-speech-prod-api-5xx"]
    assert short_names(names) == {names[0]: "canary-errors", names[1]: "api-5xx"}
