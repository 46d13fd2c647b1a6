"""`python -m emulator rehearse --then-rollback`: after a promotion, `make rollback`'s own controller
(deploy.rollback.Rollback) runs against the local stack through emulator.local_aws's stand-ins, with
the users' traffic still flowing (issue 11: the local stack rehearses a rollback after a promotion).

GATE-style options at speed 40 with no log lag (the gate has no late records to wait for): v1 -> v2
is promoted in ~30 s, then rolled back. The assertions are what the design guarantees: the controller
ends DONE, the alias serves version 1 (model v1) again, no 5xx during the switch; never how fast.
"""

from __future__ import annotations

import json

import pytest

from canary.evidence import expected_latency_ratio
from canary.manifests import load_manifests
from emulator.controller import BLOCKED, PROMOTED
from emulator.rehearse import EXIT_NOT_PROMOTED, EXIT_PROMOTED, ROOT, Options, main, rehearse

pytestmark = [pytest.mark.integration, pytest.mark.data, pytest.mark.slow]

FAST = {"speed": 40.0, "traffic": 1.0, "log_lag": 0.0, "after_s": 0.5}
needs_ratio = pytest.mark.skipif(
    expected_latency_ratio(load_manifests(ROOT / "models"), "v1", "v2") is None,
    reason="models/v*/manifest.json give no latency.ratio_to: the evidence judge cannot promote v2",
)


@needs_ratio
def test_a_promoted_rehearsal_is_rolled_back_to_version_1_with_no_5xx(dataset):
    """v1 -> v2 promoted, then --then-rollback: every phase of make rollback's controller runs and it
    ends DONE (exit 0 kept); the target is version 1 / model v1; the stack update is recorded, not
    made; every user request answered after the switch came from version 1 with model v1; no 5xx."""
    result = rehearse(Options(then_rollback=True, **FAST))
    report = result.report
    assert report["outcome"]["state"] == PROMOTED, report["reasons"]
    assert result.exit_status == EXIT_PROMOTED, result.problems
    rollback = report["rollback"]
    assert rollback["state"] == "DONE" and rollback["exit_code"] == 0, rollback["phases"]
    assert [p["phase"] for p in rollback["phases"]] == [
        "CHECK",
        "CONFIRM",
        "STOP_DEPLOYMENT",
        "SHIFT_ALIAS",
        "RECONCILE",
        "WATCH",
    ]
    assert rollback["from_version"] == "2"
    assert rollback["target"] == {"version": "1", "model": "v1"}
    assert rollback["stack_update"] == "would update ModelVersion v2 -> v1"
    served = rollback["served_after_switch"]
    assert set(served) == {"1"}, served
    assert served["1"]["requests"] > 0 and served["1"]["models"] == {"v1": served["1"]["requests"]}
    assert rollback["5xx"] == 0 and rollback["client_5xx"] == 0 and served["1"]["5xx"] == 0
    assert rollback["switch_s"] is not None
    assert json.loads(json.dumps(report, default=str))["rollback"]["state"] == "DONE"
    assert "Rollback after the promotion" in result.html


def test_then_rollback_after_a_blocked_deployment_has_nothing_to_roll_back(dataset, capsys):
    """A canary that fails the PreTraffic hook is BLOCKED: --then-rollback says there is nothing to roll
    back (in the progress and the report) and the rehearsal keeps its own exit status, 3."""
    status = main(
        ["--fault", "errors=1", "--speed", "40", "--traffic", "1", "--log-lag", "0"]
        + ["--then-rollback", "--json", "--no-html"]
    )
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["outcome"]["state"] == BLOCKED
    assert status == EXIT_NOT_PROMOTED
    assert report["rollback"] == {
        "ran": False,
        "state": None,
        "reason": "nothing to roll back: the deployment was not promoted",
    }
    assert "nothing to roll back: the deployment was not promoted" in captured.err
