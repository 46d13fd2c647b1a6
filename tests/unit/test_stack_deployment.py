"""The deployment preference as a plan of steps (stack.plan_for) and the alarms as the controller
evaluates them (stack.AlarmSettings)."""

from __future__ import annotations

import pytest

from stack import AlarmSettings, Plan, Step, plan_for


def test_plans_of_the_predefined_lambda_configurations():
    """Canary: one step then 100 %; Linear: equal steps below 100 %; AllAtOnce: none; CodeDeploy's
    full names (CodeDeployDefault.Lambda...) are read as SAM's short ones."""
    assert plan_for("Canary10Percent5Minutes") == Plan("Canary10Percent5Minutes", (Step(0.1, 5.0),))
    linear = plan_for("Linear10PercentEvery1Minute")
    assert [s.weight for s in linear.steps] == pytest.approx([k / 10 for k in range(1, 10)])
    assert linear.minutes == 9
    assert plan_for("Linear30PercentEvery2Minutes").steps[-1] == Step(0.9, 2.0)  # 30, 60, 90, then 100
    assert plan_for("AllAtOnce").steps == ()
    assert plan_for("CodeDeployDefault.LambdaCanary10Percent30Minutes").minutes == 30


@pytest.mark.parametrize(
    ("deployment_type", "message"),
    [
        ("Blue/Green", "not one the local controller knows"),
        ("Canary0Percent5Minutes", "canary percent must be between 1 and 99"),
        ("Linear100PercentEvery1Minute", "linear percent must be between 1 and 99"),
        ("Linear10Percent5Minutes", "not one the local controller knows"),  # Linear needs "Every"
    ],
)
def test_a_type_codedeploy_does_not_define_is_refused(deployment_type, message):
    """A ValueError naming what is wrong, never a plan that CodeDeploy would not run."""
    with pytest.raises(ValueError, match=message):
        plan_for(deployment_type)


def test_an_alarm_built_like_the_controllers_rule_gets_a_one_minute_default():
    """The fields controller.AlarmRule reads, with its defaults: one 60 s datapoint, notBreaching."""
    alarm = AlarmSettings("errors", "AWS/Lambda", "Errors", "Sum", 0.0, "GreaterThanThreshold")
    assert (alarm.period_s, alarm.evaluation_periods, alarm.datapoints_to_alarm) == (60.0, 1, 1)
    assert (alarm.treat_missing_data, alarm.new_version_only, dict(alarm.dimensions)) == (
        "notBreaching",
        False,
        {},
    )


@pytest.mark.parametrize(
    ("comparison", "breaching"),
    [
        ("GreaterThanThreshold", [False, False, True]),
        ("GreaterThanOrEqualToThreshold", [False, True, True]),
        ("LessThanThreshold", [True, False, False]),
        ("LessThanOrEqualToThreshold", [True, True, False]),
    ],
)
def test_an_alarm_breaches_on_the_side_its_comparison_names(comparison, breaching):
    """Values 1, 2, 3 against threshold 2 under each CloudWatch comparison operator."""
    alarm = AlarmSettings("a", "AWS/Lambda", "Errors", "Sum", 2.0, comparison)
    assert [alarm.breaches(v) for v in (1.0, 2.0, 3.0)] == breaching


def test_an_unknown_comparison_is_refused_by_name():
    """An operator the local evaluation does not know (anomaly detection bands) names the alarm."""
    alarm = AlarmSettings(
        "band", "AWS/Lambda", "Errors", "Sum", 2.0, "LessThanLowerOrGreaterThanUpperThreshold"
    )
    with pytest.raises(ValueError, match="alarm band: comparison"):
        alarm.breaches(1.0)
