"""The rollout rehearsal end to end: the local stack, replayed traffic over HTTP, the real hook,
judge and alarms, on a compressed clock. Each fault must be stopped at the stage meant to catch it.

Speed 30 (a compressed minute lasts 2 s) at 200 req/s; the evidence judge, the probe, the log
lag and the PostTraffic gate (whose wait for late records makes a promotion take ~30 s more)
are rehearsed in depth in test_rehearsal_evidence.py. The minutes are paced by the traffic and
the probe (each lasts until its planned requests are answered), so these numbers hold on a busy
machine too, where a rehearsal only takes longer. What the tests assert is what the design
guarantees there: outcomes, stages, the per-minute evidence; never how fast anything went.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import threading
import time
from pathlib import Path

import pytest

from emulator.controller import ABORTED, BLOCKED, PROMOTED, ROLLED_BACK
from emulator.rehearse import (
    EXIT_NO_VERDICT,
    EXIT_NOT_PROMOTED,
    EXIT_PROMOTED,
    EXIT_USAGE,
    ROOT,
    Options,
    main,
    rehearse,
)

pytestmark = [pytest.mark.integration, pytest.mark.data, pytest.mark.slow]

FAST = {"speed": 30.0, "rate": 200.0, "after_s": 0.5}


def _run(dataset, *faults: str, **overrides):
    """One in-process rehearsal (v1 -> v2 unless overridden) with these faults in the canary."""
    return rehearse(Options(faults=faults, **{**FAST, **overrides}))


def _assert_stack_kept_its_promises(report: dict) -> None:
    traffic = report["traffic"]
    assert traffic["lost"] == 0, "a request got no HTTP answer"
    assert (traffic["sent"], traffic["in_flight"]) == (traffic["answered"], 0)
    assert traffic["generator"] == "ran to the end"
    assert traffic["gateway_5xx"] == 0, "the gateway answered a 5xx of its own"
    baseline = next(v for v in report["versions"] if v["role"] == "baseline")
    assert baseline["errors"] == 0, "the baseline must answer throughout"
    assert baseline["requests"] > 0


def _canary(report: dict) -> dict | None:
    return next((v for v in report["versions"] if v["role"] == "canary"), None)


def test_rehearsal_promotes_v2_through_the_cli(dataset, tmp_path, capsys):
    """v1 -> v2 with no fault: the hook passes, no alarm fires, traffic goes 0 -> 10 % -> 100 %;
    exit 0, JSON on stdout, HTML written. The evidence judge looks once per compressed minute and
    never says FAIL (the label change is the intended one; the interim looks see what the log lag
    let through), then the PostTraffic gate's final look over the whole window says PASS."""
    html = tmp_path / "report.html"
    status = main(
        [
            "--speed",
            "30",
            "--rate",
            "200",
            "--json",
            "--html",
            str(html),
            "--quiet",
            "--seed",
            "11",
        ]
    )
    out = capsys.readouterr().out
    report = json.loads(out)
    assert status == EXIT_PROMOTED, report["reasons"]
    assert report["outcome"]["state"] == PROMOTED
    assert report["pretraffic"]["status"] == "Succeeded"
    assert all(a["state"] == "OK" for a in report["alarms"])
    weights = [e["weight"] for e in report["timeline"]]
    assert weights[0] == 0.0 and 0.1 in weights and weights[-1] == 1.0
    looks = report["looks"]
    interim = [look for look in looks if not look["final"]]
    assert len(interim) == 5, "one judge look per compressed minute of Canary10Percent5Minutes"
    assert all(look["verdict"] in ("PASS", "INCONCLUSIVE") for look in interim), interim
    assert looks[-1]["final"] and looks[-1]["verdict"] == "PASS", looks[-1]
    assert set(looks[-1]["metrics"].values()) == {"Pass"}
    assert report["evidence"]["gate"]["status"] == "Succeeded"
    assert report["judge"]["routing"]["canary_weight"] == 0.1
    canary = _canary(report)
    assert canary["model_version"] == "v2" and canary["requests"] > 0
    _assert_stack_kept_its_promises(report)
    page = html.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") == 3
    assert "http://" not in page.replace("http://www.w3.org", ""), "the page must not load anything"


def test_corrupt_canary_is_blocked_before_any_user_traffic(dataset, tmp_path, monkeypatch):
    """corrupt: the canary's model fails its checksum; the PreTraffic hook sees every known-answer
    request answer 500 and blocks the deployment; no user request ever reaches version 2. The damaged
    model copy and the rehearsal's scratch files are gone from the temp folder afterwards."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = _run(dataset, "corrupt")
    assert list(tmp_path.iterdir()) == [], "scratch folders left behind"
    report = result.report
    assert result.exit_status == EXIT_NOT_PROMOTED
    assert report["outcome"]["state"] == BLOCKED and report["stage"] == "pretraffic"
    failed = {c["name"] for c in report["pretraffic"]["checks"] if not c["passed"]}
    assert "errors" in failed
    assert _canary(report) is None, "a user request reached the blocked version"
    assert max(e["weight"] for e in report["timeline"]) == 0.0
    assert report["looks"] == []
    _assert_stack_kept_its_promises(report)


def test_erroring_canary_is_blocked_by_the_pretraffic_hook(dataset):
    """errors=0.05 from the first invocation: some of the hook's 4,953 known-answer requests
    crash, and the hook (no request may fail) blocks it before traffic."""
    result = _run(dataset, "errors=0.05")
    report = result.report
    assert report["outcome"]["state"] == BLOCKED and result.exit_status == EXIT_NOT_PROMOTED
    errors = next(c for c in report["pretraffic"]["checks"] if c["name"] == "errors")
    assert not errors["passed"]
    assert _canary(report) is None
    _assert_stack_kept_its_promises(report)


def test_forced_labels_are_blocked_by_the_pretraffic_hook(dataset):
    """labels=hate_speech:0.2: a fifth of the answers to the hook's known-answer texts differ from
    the labels the model's answers.json recorded, so the hook blocks the canary before traffic."""
    result = _run(dataset, "labels=hate_speech:0.2")
    report = result.report
    assert report["outcome"]["state"] == BLOCKED
    failed = {c["name"] for c in report["pretraffic"]["checks"] if not c["passed"]}
    assert "known answers" in failed
    assert _canary(report) is None


def test_errors_under_live_traffic_roll_back_at_the_first_minute(dataset):
    """errors=0.2@hook: the hook's requests pass, live requests crash (API Gateway 502); the
    canary-errors alarm fires on the first compressed minute and traffic returns to 0 %. The rate
    is 20 %, not 5 %: the canary gets ~40 users' requests in that minute beside the probe's (which
    the alarm counts too), and at 5 % one run in eight had no user's request crash at all."""
    result = _run(dataset, "errors=0.2@hook")
    report = result.report
    assert report["outcome"]["state"] == ROLLED_BACK and result.exit_status == EXIT_NOT_PROMOTED
    assert report["pretraffic"]["status"] == "Succeeded"
    assert report["stage"] == "canary minute 1"
    firing = {a["name"] for a in report["alarms"] if a["state"] == "ALARM"}
    assert any(name.endswith("canary-errors") for name in firing)
    assert report["timeline"][-1]["weight"] == 0.0
    canary = _canary(report)
    assert canary["errors"] > 0 and set(canary["statuses"]) <= {"200", "502"}
    assert report["traffic"]["5xx"] == canary["errors"], "every 5xx must come from the canary"
    _assert_stack_kept_its_promises(report)


def _kill_the_traffic_process(after_s: float, killed: list[int]) -> None:
    """Wait for this process's `python -m emulator.traffic` child, let it run after_s, SIGKILL it."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for task in Path(f"/proc/{os.getpid()}/task").iterdir():
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for pid in map(int, children):
                try:
                    command = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                if b"emulator.traffic" in command:
                    time.sleep(after_s)
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    return
        time.sleep(0.02)


def test_a_dead_traffic_generator_stops_the_rollout_with_no_verdict(dataset, capsys):
    """The traffic process is SIGKILLed 3 s into a rehearsal (during the hook or the canary step,
    depending on the machine): the rollout is ABORTED, never promoted; exit 4 with a message
    naming the dead generator, not blaming the local stack; every request it sent is answered,
    lost, or counted in flight when it died."""
    killed: list[int] = []
    killer = threading.Thread(target=_kill_the_traffic_process, args=(3.0, killed), daemon=True)
    killer.start()
    status = main(["--speed", "30", "--rate", "200", "--json", "--no-html", "--quiet", "--seed", "11"])
    killer.join(5)
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert killed, "the traffic process was never found"
    assert status == EXIT_NO_VERDICT
    assert report["outcome"]["state"] == ABORTED and report["deployment"]["status"] == "Stopped"
    assert all(e["weight"] < 1.0 for e in report["timeline"]) and report["timeline"][-1]["weight"] == 0.0
    assert "traffic generator died (killed by SIGKILL)" in report["reasons"][-1]
    assert "error: no verdict:" in captured.err and "traffic generator died" in captured.err
    assert "broke a promise" not in captured.err
    traffic = report["traffic"]
    assert traffic["generator"] == "died (killed by SIGKILL)"
    assert traffic["sent"] == traffic["answered"] + traffic["lost"] + traffic["in_flight"]
    assert traffic["lost"] == 0
    assert not any(note.startswith("LOCAL STACK PROBLEM") for note in report["notes"])
    assert any("in flight when the traffic generator died" in note for note in report["notes"])


def test_a_python_without_the_functions_dependencies_is_refused_before_any_traffic(
    dataset, tmp_path, monkeypatch, capsys
):
    """The workers cannot import aws_lambda_powertools (a PYTHONPATH shim): the rehearsal stops
    before any traffic with one line naming the missing module and the fix (exit 2), instead of
    a hook failure or a broken-promise error that would blame the canary or the stack."""
    shim = tmp_path / "aws_lambda_powertools"
    shim.mkdir()
    name = "aws_lambda_powertools"
    (shim / "__init__.py").write_text(
        f'raise ModuleNotFoundError("No module named {name!r}", name={name!r})\n'
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    assert main(["--quiet", "--no-html"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no module 'aws_lambda_powertools'" in err
    assert "make demo" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--fault", "explode"], "unknown fault"),
        (["--fault", "errors=1.5"], "between 0 and 1"),
        (["--canary", "v9"], "no model v9"),
        (["--speed", "0"], "--speed"),
        (["--env", "nowhere"], "no environment [nowhere]"),
        (["--traffic", "0"], "--traffic"),
        (["--mix", "spam=2"], "--mix"),
        (["--mix", "hate_speech=-1"], "--mix"),
        (["--log-lag", "-5"], "--log-lag"),
        (["--fault", "judge=slow"], "judge=crash"),
    ],
)
def test_usage_errors_exit_2_before_starting_anything(dataset, capsys, argv, message):
    """A bad flag, fault, model, speed, traffic, mix, log lag or environment: one clear line on
    stderr and exit 2."""
    assert main([*argv, "--quiet", "--no-html"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_models_without_a_latency_ratio_are_refused(tmp_path, capsys):
    """Manifests that give no expected latency ratio for the pair (latency.ratio_to): the evidence
    judge cannot bound its latency reference, so the rehearsal refuses to start (exit 2, one line
    saying what is missing); there is no other judge to fall back to."""
    for version in ("v1", "v2"):
        manifest = json.loads((ROOT / "models" / version / "manifest.json").read_text())
        manifest.pop("latency", None)
        (tmp_path / version).mkdir()
        (tmp_path / version / "manifest.json").write_text(json.dumps(manifest))
    assert main(["--models", str(tmp_path), "--quiet", "--no-html"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "give no expected latency ratio" in err and "Traceback" not in err
