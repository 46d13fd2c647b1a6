"""What a model answered on the behavioural suite, recorded in its manifest, and the release gate.

Written by training as models/<version>/suite_answers.json (format: canary.suite_answers). The
manifest's `suite` entry names that file and carries the pass rate per functionality. Two
readers: the PreTraffic hook (the deployed version must give every suite text exactly the
recorded label: the models are deterministic) and the release gate below (`make train` refuses a
model whose suite results regress on a functionality against the previous version beyond noise,
unless its model card acknowledges that functionality). Standard library only.

Beyond noise: the cases one model passes and the other fails are counted both ways (gains,
losses); a functionality regresses when losses > gains and the two-sided exact sign test on those
changed cases gives p < REGRESSION_P. Rates alone would call one or two cases of n = 12 a 17 %
drop; the sign test asks whether the changes lean one way more than chance would.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from math import comb
from typing import Any

from canary import suite_answers
from canary.suite_answers import FILE, labels_by_id
from training.behaviour import FUNCTIONALITIES, Case, evaluate, hate_rates, neither_rate

REGRESSION_P = 0.05  # two-sided exact sign test on the changed cases


def build(cases: Sequence[Case], predict: Callable[[str], str], labels: Sequence[str]) -> dict[str, Any]:
    """The suite_answers.json document (canary.suite_answers): every case's label under `predict`."""
    pairs = [(c.id, c.text) for c in cases]
    return suite_answers.build(pairs, {c.id: predict(c.text) for c in cases}, labels)


def summary(cases: Sequence[Case], doc: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest's `suite` entry: the file, the suite it answers, pass rates per functionality."""
    got = labels_by_id(doc)
    predict_case = {c.text: got[c.id] for c in cases}.__getitem__
    rates = {f: {"n": r.n, "passed": r.passed} for f, r in evaluate(predict_case, cases).items()}
    benign, n_benign = neither_rate(predict_case, cases)
    return {
        "file": FILE,
        "n": len(cases),
        "suite_sha256": doc["suite_sha256"],
        "functionalities": rates,
        "benign_neither": {"n": n_benign, "rate": round(benign, 4)},
        **hate_rates(predict_case, cases),
    }


def sign_test_p(gains: int, losses: int) -> float:
    """Two-sided exact sign test: the chance of a split at least this uneven under p = 1/2."""
    n = gains + losses
    if n == 0:
        return 1.0
    k = min(gains, losses)
    return min(1.0, 2.0 * sum(comb(n, i) for i in range(k + 1)) / 2**n)


@dataclass(frozen=True)
class Change:
    """One functionality compared case by case: new model against the previous one."""

    functionality: str
    n: int
    gains: int  # cases the new model passes and the previous one fails
    losses: int  # the other way round
    p: float  # two-sided sign test on gains + losses

    @property
    def regression(self) -> bool:
        return self.losses > self.gains and self.p < REGRESSION_P

    @property
    def better(self) -> bool:
        return self.gains > self.losses

    def describe(self) -> str:
        return f"{self.functionality}: +{self.gains}/-{self.losses} of {self.n} (sign test p {self.p:.2f})"


def compare(cases: Sequence[Case], new: Mapping[str, str], old: Mapping[str, str]) -> list[Change]:
    """Per functionality (suite order), the new model's labels {id: label} against the old's."""
    out = []
    for func in FUNCTIONALITIES:
        group = [c for c in cases if c.functionality == func]
        if not group:
            continue
        gains = sum(new[c.id] in c.expected and old[c.id] not in c.expected for c in group)
        losses = sum(new[c.id] not in c.expected and old[c.id] in c.expected for c in group)
        out.append(Change(func, len(group), gains, losses, sign_test_p(gains, losses)))
    return out


def gate(
    version: str, previous: str, changes: Sequence[Change], acknowledged: Sequence[str] = ()
) -> list[str]:
    """The release gate: one line per functionality that regresses beyond noise and that the model
    card does not acknowledge (empty: the model may ship)."""
    return [
        f"{version} regresses against {previous} on {c.describe()}; fix it or acknowledge "
        f"{c.functionality!r} in {version}'s model card (training config `acknowledged_regressions`)"
        for c in changes
        if c.regression and c.functionality not in acknowledged
    ]
