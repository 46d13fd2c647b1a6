"""The rehearsal's report as one self-contained HTML page: inline CSS and SVG, no script, no
external asset, so it opens from a file, a CI artifact or an e-mail attachment alike.

render_html(report) is a pure function of the report dict the rehearsal builds (schema
canary-report/1 plus its "rehearsal", "versions", "traffic", "looks" and "timeline" keys); the
on-call text report (canary.render) is embedded as well, so the page says everything the
terminal did. Charts: the latency distribution per version, the label shares per version
(with the mix the judge expected of the canary), and the weight and alarm timeline.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

from canary.render import render_report
from emulator.controller import short_names

LABELS = (("hate_speech", "hate speech"), ("offensive_language", "offensive"), ("neither", "neither"))
COLORS = {"baseline": "#3b6ea8", "canary": "#d9822b", "expected": "#9a9a9a"}
STATE_COLORS = {"OK": "#4c9a5b", "ALARM": "#c0392b", "INSUFFICIENT_DATA": "#b8b8b8"}
OUTCOME_COLORS = {"PROMOTED": "#2e7d32", "ROLLED BACK": "#c0392b", "BLOCKED": "#8e2420"}
VERDICT_COLORS = {"PASS": "#4c9a5b", "INCONCLUSIVE": "#e0b64a", "FAIL": "#c0392b"}

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;margin:0;
  background:#f6f6f4}
main{max-width:960px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#666;margin:0 0 16px}
.badge{display:inline-block;color:#fff;padding:2px 10px;border-radius:4px;font-weight:600}
.card{background:#fff;border:1px solid #e2e2e2;border-radius:6px;padding:14px 16px;margin:10px 0}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eee}
th{background:#fafafa;font-weight:600}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#2e7d32}.bad{color:#c0392b;font-weight:600}.muted{color:#777}
svg{display:block;max-width:100%;height:auto;font-family:inherit}
pre{background:#1f2227;color:#e8e8e8;padding:12px;border-radius:6px;overflow-x:auto;font-size:12px;
  line-height:1.35}
.legend span{display:inline-block;margin-right:14px}
.sw{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
"""


# --------------------------------------------------------------------------- helpers


def _e(x: Any) -> str:
    return escape("" if x is None else str(x), quote=True)


def _pct(x: Any, digits: int = 1) -> str:
    return "–" if x is None else f"{100.0 * float(x):.{digits}f} %"


def _ms(x: Any) -> str:
    return "–" if x is None else f"{float(x):.2f}"


def _when(ts: Any) -> str:
    if not isinstance(ts, (int, float)):
        return _e(ts or "?")
    return datetime.fromtimestamp(float(ts), tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _fmt_ms_tick(v: float) -> str:
    return f"{v:g}" if v >= 1 else f"{v:.2g}"


# --------------------------------------------------------------------------- charts


def latency_chart(versions: Sequence[Mapping[str, Any]], slo_ms: float | None = None) -> str:
    """Histogram of latencies per version on a log axis (share of each version's requests)."""
    series = [v for v in versions if (v.get("latency_histogram") or {}).get("counts")]
    if not series:
        return '<p class="muted">No latencies recorded.</p>'
    edges = [float(x) for x in series[0]["latency_histogram"]["edges"]]
    w, h, left, right, top, bottom = 720, 260, 52, 16, 14, 40
    pw, ph = w - left - right, h - top - bottom
    lo, hi = math.log10(edges[0]), math.log10(edges[-1])

    def x(v: float) -> float:
        return left + pw * (math.log10(max(v, edges[0])) - lo) / (hi - lo)

    shares = []
    for v in series:
        counts = [int(c) for c in v["latency_histogram"]["counts"]]
        total = sum(counts) or 1
        shares.append([c / total for c in counts])
    top_share = max(max(s) for s in shares) or 1.0
    ymax = min(1.0, math.ceil(top_share * 10) / 10) or 0.1

    def y(share: float) -> float:
        return top + ph * (1 - share / ymax)

    parts = [f'<svg viewBox="0 0 {w} {h}" role="img" aria-label="Latency distribution per version">']
    for i in range(5):
        s = ymax * i / 4
        parts.append(
            f'<line x1="{left}" x2="{w - right}" y1="{y(s):.1f}" y2="{y(s):.1f}" stroke="#eee"/>'
            f'<text x="{left - 6}" y="{y(s) + 4:.1f}" font-size="11" text-anchor="end">{s:.0%}</text>'
        )
    decade = 10 ** math.floor(lo)
    while decade <= edges[-1] * 1.0001:
        for m in (1, 2, 5):
            t = decade * m
            if edges[0] <= t <= edges[-1]:
                parts.append(
                    f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top + ph}" y2="{top + ph + 4}" '
                    'stroke="#999"/>'
                    f'<text x="{x(t):.1f}" y="{top + ph + 16}" font-size="11" text-anchor="middle">'
                    f"{_fmt_ms_tick(t)}</text>"
                )
        decade *= 10
    parts.append(
        f'<text x="{left + pw / 2}" y="{h - 4}" font-size="12" text-anchor="middle">'
        "latency per request (ms, log scale)</text>"
    )
    for k, (v, share) in enumerate(zip(series, shares, strict=True)):
        color = COLORS.get(str(v.get("role")), "#555")
        path = [f"M{x(edges[0]):.1f},{y(0):.1f}"]
        for i, s in enumerate(share):
            path.append(f"L{x(edges[i]):.1f},{y(s):.1f}L{x(edges[i + 1]):.1f},{y(s):.1f}")
        path.append(f"L{x(edges[-1]):.1f},{y(0):.1f}Z")
        parts.append(
            f'<path d="{"".join(path)}" fill="{color}" fill-opacity="0.28" stroke="{color}" '
            'stroke-width="1.5"/>'
        )
        p99 = (v.get("latency_ms") or {}).get("p99")
        if p99:
            parts.append(
                f'<line x1="{x(p99):.1f}" x2="{x(p99):.1f}" y1="{top}" y2="{top + ph}" stroke="{color}" '
                f'stroke-dasharray="4 3"/><text x="{x(p99) + 3:.1f}" y="{top + 10 + 12 * k}" font-size="10" '
                f'fill="{color}">p99 {_e(v.get("role"))}</text>'
            )
    if slo_ms and edges[0] <= slo_ms <= edges[-1]:
        parts.append(
            f'<line x1="{x(slo_ms):.1f}" x2="{x(slo_ms):.1f}" y1="{top}" y2="{top + ph}" stroke="#c0392b"/>'
            f'<text x="{x(slo_ms) - 3:.1f}" y="{top + 22}" font-size="10" text-anchor="end" fill="#c0392b">'
            f"p99 SLO {slo_ms:g} ms</text>"
        )
    elif slo_ms:
        parts.append(
            f'<text x="{w - right}" y="{top + 10}" font-size="10" text-anchor="end" fill="#c0392b">'
            f"p99 SLO {slo_ms:g} ms "
            + ("→ (right of the axis)" if slo_ms > edges[-1] else "← (left of the axis)")
            + "</text>"
        )
    parts.append(f'<line x1="{left}" x2="{w - right}" y1="{top + ph}" y2="{top + ph}" stroke="#999"/></svg>')
    return "".join(parts) + _legend(
        [
            (COLORS.get(str(v.get("role")), "#555"), f"{v.get('role')} {v.get('model_version')}")
            for v in series
        ]
    )


def labels_chart(versions: Sequence[Mapping[str, Any]], expected: Mapping[str, float] | None) -> str:
    """Grouped horizontal bars: each label's share per version, and the canary's expected mix."""
    rows: list[tuple[str, str, Mapping[str, Any]]] = [
        (str(v.get("role")), f"{v.get('role')} {v.get('model_version')}", v.get("label_shares") or {})
        for v in versions
    ]
    if expected:
        rows.append(("expected", "expected canary mix", expected))
    if not rows:
        return '<p class="muted">No labels recorded.</p>'
    bar, gap, left, w = 16, 14, 120, 720
    group = bar * len(rows) + gap
    h = 12 + group * len(LABELS) + 24
    pw = w - left - 70
    parts = [f'<svg viewBox="0 0 {w} {h}" role="img" aria-label="Label shares per version">']
    for gi, (label, name) in enumerate(LABELS):
        y0 = 10 + gi * group
        parts.append(
            f'<text x="{left - 8}" y="{y0 + bar * len(rows) / 2 + 4:.1f}" font-size="12" '
            f'text-anchor="end">{_e(name)}</text>'
        )
        for ri, (role, _title, shares) in enumerate(rows):
            share = shares.get(label)
            width = pw * float(share or 0.0)
            yy = y0 + ri * bar
            parts.append(
                f'<rect x="{left}" y="{yy}" width="{width:.1f}" height="{bar - 3}" '
                f'fill="{COLORS.get(role, "#555")}"/>'
                f'<text x="{left + width + 4:.1f}" y="{yy + bar - 5}" font-size="11">{_pct(share)}</text>'
            )
    for i in range(5):
        xx = left + pw * i / 4
        parts.append(
            f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="6" y2="{h - 20}" stroke="#eee"/>'
            f'<text x="{xx:.1f}" y="{h - 6}" font-size="11" text-anchor="middle">{25 * i} %</text>'
        )
    parts.append("</svg>")
    return "".join(parts) + _legend([(COLORS.get(role, "#555"), title) for role, title, _ in rows])


def timeline_chart(report: Mapping[str, Any]) -> str:
    """The canary's weight over compressed time, a lane per alarm, and the judge's looks."""
    timeline = list(report.get("timeline") or ())
    if not timeline:
        return '<p class="muted">No timeline.</p>'
    alarms = [str(a.get("name")) for a in report.get("alarms") or ()]
    shown = short_names(alarms)
    looks = list(report.get("looks") or ())
    end_t = max(float(e.get("t_sim_s") or 0.0) for e in timeline)
    span = max(end_t, 60.0)
    lane, w, left, right, top = 18, 720, 200, 16, 12
    wh = 120  # weight plot height
    h = top + wh + 26 + lane * (len(alarms) + 1) + 44
    pw = w - left - right

    def x(t: float) -> float:
        return left + pw * min(max(t, 0.0), span) / span

    def yw(weight: float) -> float:
        return top + wh * (1 - weight)

    parts = [f'<svg viewBox="0 0 {w} {h}" role="img" aria-label="Weight and alarm timeline">']
    for frac in (0.0, 0.1, 0.5, 1.0):
        parts.append(
            f'<line x1="{left}" x2="{w - right}" y1="{yw(frac):.1f}" y2="{yw(frac):.1f}" stroke="#eee"/>'
            f'<text x="{left - 6}" y="{yw(frac) + 4:.1f}" font-size="11" text-anchor="end">{frac:.0%}</text>'
        )
    parts.append(f'<text x="12" y="{top + wh / 2:.0f}" font-size="12">traffic to the canary</text>')
    # the weight as a step line
    points, weight = [], 0.0
    for e in timeline:
        t = float(e.get("t_sim_s") or 0.0)
        new = float(e.get("weight") or 0.0)
        points.append(f"{x(t):.1f},{yw(weight):.1f}")
        points.append(f"{x(t):.1f},{yw(new):.1f}")
        weight = new
    points.append(f"{x(span):.1f},{yw(weight):.1f}")
    parts.append(
        f'<polyline points="{" ".join(points)}" fill="none" stroke="{COLORS["canary"]}" stroke-width="2.5"/>'
    )
    for e in timeline:
        if e.get("kind") in ("hook-passed", "hook-failed", "rollback", "end", "shift"):
            t = float(e.get("t_sim_s") or 0.0)
            parts.append(
                f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top}" y2="{top + wh}" stroke="#bbb" '
                f'stroke-dasharray="2 3"><title>{_e(e.get("message"))}</title></line>'
            )
    # alarm lanes, then the judge's looks
    y0 = top + wh + 26
    for i, name in enumerate(alarms):
        yy = y0 + i * lane
        parts.append(
            f'<text x="{left - 6}" y="{yy + lane - 6}" font-size="11" text-anchor="end">'
            f"{_e(shown[name])}</text>"
        )
        segments = _segments(timeline, name, span)
        for t0, t1, state in segments:
            parts.append(
                f'<rect x="{x(t0):.1f}" y="{yy + 2}" width="{max(x(t1) - x(t0), 1):.1f}" height="{lane - 5}" '
                f'fill="{STATE_COLORS.get(state, "#ddd")}"><title>{_e(name)}: {_e(state)}</title></rect>'
            )
    yy = y0 + len(alarms) * lane
    parts.append(
        f'<text x="{left - 6}" y="{yy + lane - 6}" font-size="11" text-anchor="end">judge verdict</text>'
    )
    for look in looks:
        t = float(look.get("t_sim_s") or 0.0)
        verdict = str(look.get("verdict"))
        parts.append(
            f'<circle cx="{x(t):.1f}" cy="{yy + lane / 2:.1f}" r="5" '
            f'fill="{VERDICT_COLORS.get(verdict, "#555")}">'
            f"<title>{_e(verdict)}: {_e(look.get('reason'))}</title></circle>"
        )
    axis_y = yy + lane + 6
    parts.append(f'<line x1="{left}" x2="{w - right}" y1="{axis_y}" y2="{axis_y}" stroke="#999"/>')
    step = 60.0 if span <= 600 else 120.0
    t = 0.0
    while t <= span + 1e-6:
        parts.append(
            f'<text x="{x(t):.1f}" y="{axis_y + 14}" font-size="11" text-anchor="middle">{t / 60:g}</text>'
        )
        t += step
    parts.append(
        f'<text x="{left + pw / 2}" y="{axis_y + 32}" font-size="12" text-anchor="middle">'
        "compressed minutes since the deployment started</text></svg>"
    )
    legend = [(c, s) for s, c in STATE_COLORS.items()] + [
        (c, f"judge {v}") for v, c in VERDICT_COLORS.items()
    ]
    return "".join(parts) + _legend(legend)


def _segments(
    timeline: Sequence[Mapping[str, Any]], name: str, span: float
) -> list[tuple[float, float, str]]:
    out: list[tuple[float, float, str]] = []
    state, since = "INSUFFICIENT_DATA", 0.0
    for e in timeline:
        new = (e.get("alarms") or {}).get(name, state)
        t = float(e.get("t_sim_s") or 0.0)
        if new != state:
            out.append((since, t, state))
            state, since = new, t
    out.append((since, span, state))
    return [s for s in out if s[1] > s[0]]


def _legend(items: Sequence[tuple[str, str]]) -> str:
    return (
        '<div class="legend muted">'
        + "".join(f'<span><i class="sw" style="background:{c}"></i>{_e(t)}</span>' for c, t in items)
        + "</div>"
    )


# --------------------------------------------------------------------------- tables


def _versions_table(versions: Sequence[Mapping[str, Any]]) -> str:
    head = (
        "<tr><th>version</th><th>model</th><th class=num>requests</th><th class=num>5xx</th>"
        "<th class=num>p50 ms</th><th class=num>p90 ms</th><th class=num>p99 ms</th>"
        + "".join(f"<th class=num>{_e(n)}</th>" for _, n in LABELS)
        + "</tr>"
    )
    rows = []
    for v in versions:
        lat = v.get("latency_ms") or {}
        shares = v.get("label_shares") or {}
        rows.append(
            f"<tr><td>{_e(v.get('role'))} {_e(v.get('function_version'))}</td>"
            f"<td>{_e(v.get('model_version'))}</td>"
            f"<td class=num>{_e(v.get('requests'))}</td><td class=num>{_e(v.get('errors'))}</td>"
            f"<td class=num>{_ms(lat.get('p50'))}</td><td class=num>{_ms(lat.get('p90'))}</td>"
            f"<td class=num>{_ms(lat.get('p99'))}</td>"
            + "".join(f"<td class=num>{_pct(shares.get(k))}</td>" for k, _ in LABELS)
            + "</tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"


def _hook_table(hook: Mapping[str, Any] | None) -> str:
    if not hook:
        return '<p class="muted">The PreTraffic hook did not run.</p>'
    rows = "".join(
        f"<tr><td class={'ok' if c.get('passed') else 'bad'}>{'ok' if c.get('passed') else 'FAIL'}</td>"
        f"<td>{_e(c.get('name'))}</td><td>{_e(c.get('reason'))}</td></tr>"
        for c in hook.get("checks") or ()
    )
    return (
        f"<p><b>{_e(hook.get('status'))}</b> on {_e(hook.get('sent'))} golden requests "
        f"({_e(hook.get('answered'))} answered).</p><table><tr><th></th><th>check</th><th>result</th></tr>"
        f"{rows}</table>"
    )


def _judge_table(judge: Mapping[str, Any] | None) -> str:
    if not judge:
        return '<p class="muted">The judge made no look (no traffic reached the canary).</p>'
    rows = "".join(
        f"<tr><td>{_e(m.get('name'))}</td><td class={'bad' if m.get('classification') == 'High' else ''}>"
        f"{_e(m.get('classification'))}</td>"
        f"<td class=num>{_e(m.get('n_baseline'))}/{_e(m.get('n_canary'))}</td>"
        f"<td>{_e(m.get('test'))}</td><td class=num>{_num(m.get('p_value'))}</td>"
        f"<td class=num>{_num(m.get('alpha'))}</td><td class=num>{_num(m.get('effect'))}</td>"
        f"<td class=num>{_num(m.get('threshold'))}</td></tr><tr><td></td><td colspan=7 class=muted>"
        f"{_e(m.get('reason'))}</td></tr>"
        for m in judge.get("metrics") or ()
    )
    return (
        f"<p><b>{_e(judge.get('verdict'))}</b>: {_e(judge.get('reason'))}</p>"
        "<table><tr><th>metric</th><th>result</th><th class=num>n base/canary</th><th>test</th>"
        "<th class=num>p-value</th><th class=num>alpha</th><th class=num>effect</th>"
        "<th class=num>floor</th></tr>"
        f"{rows}</table>"
    )


def _alarms_table(alarms: Sequence[Mapping[str, Any]]) -> str:
    if not alarms:
        return '<p class="muted">No alarms.</p>'
    rows = "".join(
        f"<tr><td style='color:{STATE_COLORS.get(str(a.get('state')), '#222')};font-weight:600'>"
        f"{_e(a.get('state'))}</td><td>{_e(a.get('name'))}</td><td>{_e(a.get('reason'))}</td></tr>"
        for a in alarms
    )
    return f"<table><tr><th>state</th><th>alarm</th><th>why</th></tr>{rows}</table>"


def _num(x: Any) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    x = float(x)
    if x != 0 and abs(x) < 1e-3:
        return f"{x:.1e}"
    return f"{x:.4f}" if abs(x) < 10 else f"{x:.1f}"


# --------------------------------------------------------------------------- page


def render_html(report: Mapping[str, Any]) -> str:
    """The whole page."""
    outcome = report.get("outcome") or {}
    state = str(outcome.get("state", "UNKNOWN"))
    rehearsal = report.get("rehearsal") or {}
    versions = list(report.get("versions") or ())
    judge = report.get("judge")
    traffic = report.get("traffic") or {}
    faults = ", ".join(rehearsal.get("faults") or ()) or "none"
    badge = OUTCOME_COLORS.get(state, "#555")
    tried = rehearsal.get("overrides") or {}
    what_if = (
        " · <b>what-if thresholds</b>: " + _e(", ".join(f"{k}={v}" for k, v in tried.items()))
        if tried
        else ""
    )
    title = f"Rehearsal {rehearsal.get('baseline', '?')} → {rehearsal.get('canary', '?')}: {state}"
    reasons = "".join(f"<li>{_e(r)}</li>" for r in report.get("reasons") or ())
    traffic_line = (
        f"{_e(traffic.get('sent'))} requests sent over HTTP, {_e(traffic.get('answered'))} answered, "
        f"{_e(traffic.get('lost'))} lost; statuses {_e(traffic.get('statuses'))}; "
        f"5xx from the gateway itself: {_e(traffic.get('gateway_5xx'))}."
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{_e(title)}</title><style>{CSS}</style></head>
<body><main>
<h1>{_e(title)}</h1>
<p class="sub">{_e(report.get("stack"))} · environment {_e(report.get("environment"))} ·
{_e(rehearsal.get("plan"))} at {_e(rehearsal.get("speed"))}× speed · faults: {_e(faults)} ·
seed {_e(rehearsal.get("seed"))} · {_when(report.get("generated_at"))}{what_if}</p>
<div class="card"><span class="badge" style="background:{badge}">{_e(state)}</span>
at stage <b>{_e(report.get("stage"))}</b>. {_e(outcome.get("reason"))}<ul>{reasons}</ul>
<p class="muted">{traffic_line}</p></div>

<h2>Traffic weight and alarms</h2>
<div class="card">{timeline_chart(report)}</div>

<h2>Latency per version</h2>
<div class="card">{latency_chart(versions, rehearsal.get("latency_slo_ms"))}</div>

<h2>Label shares per version</h2>
<div class="card">{labels_chart(versions, (judge or {}).get("expected_canary_shares"))}</div>

<h2>Per-version table (every request of the rehearsal)</h2>
<div class="card">{_versions_table(versions)}</div>

<h2>PreTraffic hook</h2>
<div class="card">{_hook_table(report.get("pretraffic"))}</div>

<h2>Alarms (DeploymentPreference.Alarms)</h2>
<div class="card">{_alarms_table(report.get("alarms") or ())}</div>

<h2>Canary judge, last look</h2>
<div class="card">{_judge_table(judge)}</div>

<h2>On-call report</h2>
<pre>{_e(render_report(report))}</pre>
</main></body></html>
"""
