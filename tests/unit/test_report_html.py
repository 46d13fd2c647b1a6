"""The canary report's HTML page (canary.report_html): self-contained, escaped, and complete for
every outcome, including a deployment blocked before any traffic; a report from AWS renders what
it has."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from xml.etree import ElementTree

from canary.report_html import render_html


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


# --------------------------------------------------------------------------- plain words, no overlap

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "canary_report_evidence.json"
# Python reprs that must never reach a reader: dicts, lists, a bare [2], None/True/False (not the
# words "False alarms" of the judge's note).
REPR = re.compile(r"\{'|'\}|\['|'\]|\[\d+(?:\.\d+)?\]|\b(?:None|True|False)\b(?! alarms)")
JUDGE_ALARM = "hate-speech-prod-canary-judge-fail"


def visible_text(page: str) -> str:
    """What a reader sees (and hovers): the page without style, tags and entities."""
    page = re.sub(r"<style>.*?</style>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def text_boxes(svg: str) -> list[tuple[str, float, float, float, float]]:
    """(text, x0, y0, x1, y1) of every <text> of one SVG, at 0.6 em a glyph (DejaVu Sans's
    average) from its anchor and baseline."""
    boxes = []
    for el in ElementTree.fromstring(svg).iter("{http://www.w3.org/2000/svg}text"):
        label = (el.text or "") + "".join(child.tail or "" for child in el)
        size = float(el.get("font-size", "16"))
        width = len(label) * size * 0.6
        x, y = float(el.get("x", "0")), float(el.get("y", "0"))
        x0 = {"start": x, "middle": x - width / 2, "end": x - width}[el.get("text-anchor", "start")]
        boxes.append((label, x0, y - 0.75 * size, x0 + width, y + 0.2 * size))
    return boxes


def overlaps(page: str) -> list[str]:
    """Pairs of labels that share space in any chart of the page, and labels off the canvas."""
    found = []
    for svg in re.findall(r"<svg .*?</svg>", page, flags=re.S):
        svg = svg.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1)
        width = float(re.search(r'viewBox="0 0 ([\d.]+)', svg)[1])
        boxes = text_boxes(svg)
        for i, (a, ax0, ay0, ax1, ay1) in enumerate(boxes):
            if ax0 < 0 or ax1 > width:
                found.append(f"{a!r} off the canvas ({ax0:.0f}..{ax1:.0f} of {width:.0f})")
            for b, bx0, by0, bx1, by1 in boxes[i + 1 :]:
                if ax0 < bx1 and bx0 < ax1 and ay0 < by1 and by0 < ay1:
                    found.append(f"{a!r} overlaps {b!r}")
    return found


def _crowded() -> dict:
    """A report that crowded the old charts: p99s and the SLO close together, eight decades of
    latency, a 30-minute linear rollout (10 % steps) and a long alarm name."""
    versions = [_version("baseline", "1", "v1"), _version("canary", "2", "v2")]
    for v, p99 in zip(versions, (1.4, 1.5), strict=True):
        v["latency_ms"]["p99"] = p99
        v["latency_histogram"] = {"edges": [0.001 * 2**i for i in range(27)], "counts": [1] * 26}
    names = ["x-canary-errors", "x-a-much-longer-alarm-name-than-the-lane-can-hold-on-the-left"]
    timeline = [
        {"t_sim_s": 180.0 * i, "kind": "shift", "weight": i / 10, "alarms": dict.fromkeys(names, "OK")}
        for i in range(11)
    ]
    return _report(
        versions=versions,
        timeline=timeline,
        alarms=[{"name": n, "state": "OK", "reason": "no datapoints yet"} for n in names],
        rehearsal={"baseline": "v1", "canary": "v2", "faults": [], "speed": 10, "latency_slo_ms": 2.3},
    )


def test_alarms_traffic_and_the_judge_speak_plain_words():
    """No Python repr reaches the page, the on-call text in it included: the judge alarm's
    `[2] >= 2` becomes its verdict in words, the status dict "200: 6,764", floors sentences."""
    reason = "1 of the last 1 datapoints [2] >= 2 (CanaryVerdict Maximum per 60 s)"
    alarm = {"name": JUDGE_ALARM, "state": "ALARM", "reason": reason, "metric": "CanaryVerdict"}
    ok = {"name": "x-canary-errors", "state": "OK", "reason": "latest 0; alarms at 1 of 1 datapoints > 0"}
    ok["metric"] = "Errors"
    report = _report(
        alarms=[alarm, ok],
        reasons=[f"{JUDGE_ALARM} in ALARM: {reason}"],
        deployment={
            "id": "d-1",
            "status": "Stopped",
            "error": f"{JUDGE_ALARM} in ALARM: {reason}; rolled back",
        },
        traffic={
            "sent": 6767,
            "answered": 6767,
            "lost": 0,
            "gateway_5xx": 0,
            "statuses": {"200": 6764, "502": 3},
        },
        judge=_recorded("alarm_rollback")["judge"],
    )
    text = visible_text(render_html(report))
    assert not REPR.findall(text), REPR.findall(text)
    assert "200: 6,764, 502: 3" in text
    assert "Judge's verdict: 2 = FAIL in the last minute, at or above the alarm threshold (2 = FAIL)" in text
    assert "Canary errors: 0 at the last check; the alarm fires above 0" in text
    assert "effect floor: excess" in text and "(decided)" in text


def _recorded(name: str) -> dict:
    """One report recorded by tests/fixtures/record_evidence_reports.py."""
    return json.loads(FIXTURE.read_text())[name]


def test_the_judge_table_shows_every_check_and_bolds_the_deciding_one():
    """Each evidence metric's checks (min n, significance, effect floor) are listed; only the ones
    that decided its classification are bold, the same ones the text report marks with *. A look
    without its checks (the rehearsal's judge) gets them computed."""
    judge = _recorded("alarm_rollback")["judge"]
    for look in (judge, {**judge, "metrics": [{**m, "checks": None} for m in judge["metrics"]]}):
        page = render_html(_report(judge=look))
        page = page[page.index("<h2>Canary judge") : page.index("<h2>On-call report")]
        assert page.count("min n: ") == len(judge["metrics"])
        bold = re.findall(r"<b>([^<]*\(decided\))</b>", page)
        decided = [c for m in judge["metrics"] for c in m["checks"] if c["decided"]]
        assert len(bold) == len(decided) >= 2
        assert all(f"{c['check']}: {c['text']} (decided)" in html.unescape(" ".join(bold)) for c in decided)


def test_an_aws_report_renders_what_it_has_and_leaves_out_the_rehearsal_sections():
    """A report from `make report` has no timeline, versions or traffic: no chart, no per-version
    table; its gate's decision and final look are shown, and nothing says None."""
    report = _recorded("fail_probe_agreement")
    page = render_html(report)
    assert page.startswith("<!DOCTYPE html>") and "<svg" not in page
    assert "Canary report hate-speech-prod: ROLLED BACK" in page
    assert "Per-version table" not in page and "Traffic weight" not in page
    gate = page[page.index("<h2>PostTraffic gate") : page.index("<h2>On-call report")]
    assert "Failed" in gate and "probe_agreement" in gate and "(decided)" in gate
    # CloudWatch's own alarm reasons ("1 datapoint [0.0] was not ...") are shown as they are.
    assert not re.findall(r"\{'|\b(?:None|True|False)\b(?! alarms)", visible_text(page))


def test_chart_labels_never_share_a_position():
    """Tick, marker and lane labels of all three charts stay apart and on the canvas, even when the
    p99s and the SLO nearly coincide, latencies span decades and the rollout has ten steps."""
    for report in (_report(), _crowded()):
        page = render_html(report)
        assert page.count("<svg") == 3
        assert overlaps(page) == []


def test_the_overlap_check_sees_an_overlap():
    """The checker itself: two labels drawn at one spot are reported."""
    svg = (
        '<svg viewBox="0 0 100 50"><text x="10" y="20" font-size="11">a b</text>'
        '<text x="12" y="22" font-size="11">c</text></svg>'
    )
    assert overlaps(svg) == ["'a b' overlaps 'c'"]
