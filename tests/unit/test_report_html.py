"""The rehearsal's HTML page (emulator.report_html): self-contained, escaped, and complete for
every outcome, including a deployment blocked before any traffic."""

from __future__ import annotations

import re

from emulator.report_html import render_html


def _version(role: str, version: str, model: str) -> dict:
    return {
        "role": role,
        "function_version": version,
        "model_version": model,
        "requests": 100,
        "errors": 0,
        "latency_ms": {"p50": 0.5, "p90": 0.9, "p99": 2.0, "max": 3.0},
        "label_shares": {"hate_speech": 0.05, "offensive_language": 0.75, "neither": 0.2},
        "latency_histogram": {"edges": [0.1, 1.0, 10.0], "counts": [60, 40]},
    }


def _report(**overrides) -> dict:
    report = {
        "schema": "canary-report/1",
        "generated_at": 1_700_000_000.0,
        "source": "local",
        "stack": "hate-speech-prod",
        "environment": "prod (rehearsal)",
        "outcome": {"state": "ROLLED BACK", "reason": "an alarm fired"},
        "stage": "canary minute 1",
        "reasons": ["x-canary-errors in ALARM"],
        "alarms": [{"name": "x-canary-errors", "state": "ALARM", "reason": "1 of 1"}],
        "looks": [{"t_sim_s": 60.0, "verdict": "FAIL", "reason": "errors"}],
        "versions": [_version("baseline", "1", "v1"), _version("canary", "2", "v2")],
        "traffic": {"sent": 200, "answered": 200, "lost": 0, "gateway_5xx": 0, "statuses": {"200": 200}},
        "timeline": [
            {
                "t_sim_s": 0.0,
                "kind": "start",
                "weight": 0.0,
                "alarms": {"x-canary-errors": "INSUFFICIENT_DATA"},
            },
            {
                "t_sim_s": 5.0,
                "kind": "shift",
                "weight": 0.1,
                "alarms": {"x-canary-errors": "INSUFFICIENT_DATA"},
            },
            {"t_sim_s": 60.0, "kind": "rollback", "weight": 0.0, "alarms": {"x-canary-errors": "ALARM"}},
        ],
        "rehearsal": {
            "baseline": "v1",
            "canary": "v2",
            "faults": ["errors=0.05@300"],
            "speed": 10,
            "seed": 7,
        },
        "judge": None,
        "pretraffic": {"status": "Succeeded", "sent": 300, "answered": 300, "checks": []},
    }
    return {**report, **overrides}


def test_the_page_is_self_contained_with_three_charts():
    """One HTML document, inline CSS and three inline SVG charts; no script, no external URL."""
    page = render_html(_report())
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert page.count("<svg") == 3 and "<script" not in page
    urls = set(re.findall(r"(?:src|href)=\"([^\"]+)\"", page)) | set(re.findall(r"url\(([^)]+)\)", page))
    assert not urls, f"external references: {urls}"


def test_text_from_the_run_is_escaped():
    """A fault spec or a reason holding markup is shown as text, never interpreted."""
    page = render_html(_report(reasons=["<script>alert(1)</script>"], stage="<b>x</b>"))
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page


def test_a_blocked_deployment_renders_without_canary_data():
    """BLOCKED: no canary version, no look, no judge; every section still renders and says so."""
    page = render_html(
        _report(
            outcome={"state": "BLOCKED", "reason": "hook failed"},
            versions=[_version("baseline", "1", "v1")],
            looks=[],
            timeline=[{"t_sim_s": 0.0, "kind": "start", "weight": 0.0, "alarms": {}}],
        )
    )
    assert "BLOCKED" in page and "The judge made no look" in page
    assert page.count("<svg") == 3
