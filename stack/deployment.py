"""The deployment preference as a plan of traffic steps (CodeDeploy's predefined Lambda configurations)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    """One traffic step: the canary's share and how many minutes it is held."""

    weight: float  # the new version's share of traffic during the step, 0 < weight < 1
    minutes: float  # how long the step is held before the next one


@dataclass(frozen=True)
class Plan:
    """A CodeDeploy deployment configuration as a list of steps before 100 %."""

    name: str  # e.g. Canary10Percent5Minutes
    steps: tuple[Step, ...]  # empty for AllAtOnce

    @property
    def minutes(self) -> float:
        """Minutes from the first shift to 100 %."""
        return sum(s.minutes for s in self.steps)


_CANARY = re.compile(r"Canary(\d+)Percent(\d+)Minutes?")
_LINEAR = re.compile(r"Linear(\d+)PercentEvery(\d+)Minutes?")


def plan_for(deployment_type: str) -> Plan:
    """The steps of a predefined Lambda deployment configuration (CodeDeployDefault.Lambda*)."""
    name = deployment_type.rsplit(".", 1)[-1].removeprefix("Lambda")
    if name == "AllAtOnce":
        return Plan(name, ())
    if m := _CANARY.fullmatch(name):
        percent, minutes = int(m.group(1)), int(m.group(2))
        if not 0 < percent < 100:
            raise ValueError(f"{deployment_type}: canary percent must be between 1 and 99")
        return Plan(name, (Step(percent / 100.0, float(minutes)),))
    if m := _LINEAR.fullmatch(name):
        percent, minutes = int(m.group(1)), int(m.group(2))
        if not 0 < percent < 100:
            raise ValueError(f"{deployment_type}: linear percent must be between 1 and 99")
        steps = tuple(Step(k * percent / 100.0, float(minutes)) for k in range(1, math.ceil(100 / percent)))
        return Plan(name, steps)
    raise ValueError(
        f"deployment preference {deployment_type!r} is not one the local controller knows "
        "(AllAtOnce, Canary<P>Percent<M>Minutes, Linear<P>PercentEvery<M>Minute(s))"
    )
