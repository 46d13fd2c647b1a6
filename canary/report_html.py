"""The canary report as one self-contained HTML page: inline CSS and SVG, no script, no
external asset, so it opens from a file, a CI artifact or an e-mail attachment alike.

render_html(report) is a pure function of the canary-report/1 dict (canary.report_model), from
either source: `python -m canary.report --html PATH` (AWS) and `python -m emulator rehearse
--html PATH`. The on-call text report (canary.render) is embedded as well, so the page says
everything the terminal did. Every report has the outcome, the PreTraffic hook, the alarms, the
judge's last look and the PostTraffic gate. Only a rehearsal has what AWS does not keep per
request and per minute (its "timeline", "versions", "traffic", "evidence" and "rehearsal"
keys): the three charts (the weight and alarm timeline, the latency distribution and the label
shares per version), the per-version and per-source tables and the rollback card; an AWS page
leaves those sections out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from itertools import pairwise
from pathlib import Path
from typing import Any

from canary.render import (
    EVIDENCE_SCHEMA,
    alarm_in_words,
    evidence_checks,
    reasons_in_words,
    render_report,
    report_gate,
    short_names,
)
from infer.model import LABELS as API_LABELS

# The API's labels (infer.model: one home) with the short names the charts' legends have room for.
_SHORT = {"offensive_language": "offensive"}
LABELS = tuple((label, _SHORT.get(label, label.replace("_", " "))) for label in API_LABELS)
COLORS = {"baseline": "#3b6ea8", "canary": "#d9822b", "expected": "#9a9a9a"}
STATE_COLORS = {"OK": "#4c9a5b", "ALARM": "#c0392b", "INSUFFICIENT_DATA": "#b8b8b8"}
OUTCOME_COLORS = {"PROMOTED": "#2e7d32", "ROLLED BACK": "#c0392b", "BLOCKED": "#8e2420"}
VERDICT_COLORS = {"PASS": "#4c9a5b", "INCONCLUSIVE": "#e0b64a", "FAIL": "#c0392b"}
_STATE_WORDS = {"INSUFFICIENT_DATA": "no data yet"}

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


# --------------------------------------------------------------------------- label layout

# Average glyph width over font size for the page's sans-serif (DejaVu Sans, the widest usual
# fallback, is ~0.6): every label is laid out from this estimate so that none overlaps another.
GLYPH = 0.62
ROW = 13  # px between rows of marker labels above a plot


def _width(text: str, size: float) -> float:
    return len(text) * size * GLYPH


def _thin(
    ticks: Sequence[tuple[float, str, int]], half: Callable[[str], float], gap: float
) -> list[tuple[float, str]]:
    """The ticks whose labels fit along an axis: the most important first (priority 0), then any
    label that stays `gap` px clear of those kept; `half(label)` is its half extent on the axis."""
    kept: list[tuple[float, str]] = []
    for pos, label, _ in sorted(ticks, key=lambda t: (t[2], t[0])):
        if all(label != other and abs(pos - p) >= half(label) + half(other) + gap for p, other in kept):
            kept.append((pos, label))
    return sorted(kept)


def _stack(
    marks: Sequence[tuple[float, str]], size: float, lo: float, hi: float
) -> list[tuple[float, str, int]]:
    """Rows for the labels of vertical markers, drawn above the plot rather than inside it: each
    label starts just right of its marker (ends just left of it near the right edge), on the
    first row where it stays clear of the others. Returns (x, text-anchor, row) per mark."""
    rows: list[list[tuple[float, float]]] = []
    placed = []
    for x, text in marks:
        w = _width(text, size)
        if x + 3 + w <= hi:
            x0, tx, anchor = max(x + 3, lo), max(x + 3, lo), "start"
        else:
            x0, tx, anchor = x - 3 - w, x - 3, "end"
        x1 = x0 + w
        row = next(
            (r for r, taken in enumerate(rows) if all(x1 + 6 <= a or x0 >= b + 6 for a, b in taken)),
            len(rows),
        )
        if row == len(rows):
            rows.append([])
        rows[row].append((x0, x1))
        placed.append((tx, anchor, row))
    return placed


def _log_ticks(x: Callable[[float], float], lo: float, hi: float) -> list[tuple[float, str]]:
    """Ticks of a log axis: 1-2-5 in every decade, else 1-5, else each decade, else every other
    decade... the densest of these whose labels all stay 8 px apart."""
    decades = [10.0**k for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)]
    plans = [(1, 2, 5), (1, 5), (1,)]
    for every in range(1, len(decades) + 1):
        for mults in plans if every == 1 else [(1,)]:
            ticks = [
                (x(d * m), _fmt_ms_tick(d * m))
                for i, d in enumerate(decades)
                if i % every == 0
                for m in mults
                if lo <= d * m <= hi * 1.0001
            ]
            if all(
                b - a >= (_width(la, 11) + _width(lb, 11)) / 2 + 8 for (a, la), (b, lb) in pairwise(ticks)
            ):
                return ticks
    return []


def _share_axis(top_share: float) -> tuple[float, int]:
    """A round step (1 %, 2 %, 2.5 %, 5 %...) giving at most five gridlines above the tallest bar."""
    for step in (0.01, 0.02, 0.025, 0.05, 0.1, 0.2, 0.25):
        if top_share <= 5 * step:
            return step, max(1, math.ceil(top_share / step - 1e-9))
    return 0.25, 4


# --------------------------------------------------------------------------- charts


def latency_chart(versions: Sequence[Mapping[str, Any]], slo_ms: float | None = None) -> str:
    """Histogram of latencies per version on a log axis (share of each version's requests); the
    p99 of each version and the SLO are marked, their labels in rows above the plot."""
    series = [v for v in versions if (v.get("latency_histogram") or {}).get("counts")]
    if not series:
        return '<p class="muted">No latencies recorded.</p>'
    edges = [float(x) for x in series[0]["latency_histogram"]["edges"]]
    w, ph, left, right, bottom = 720, 206, 52, 16, 40
    pw = w - left - right
    lo, hi = math.log10(edges[0]), math.log10(edges[-1])

    def x(v: float) -> float:
        return left + pw * (math.log10(min(max(v, edges[0]), edges[-1])) - lo) / (hi - lo)

    shares = []
    for v in series:
        counts = [int(c) for c in v["latency_histogram"]["counts"]]
        total = sum(counts) or 1
        shares.append([c / total for c in counts])
    step, steps = _share_axis(max(max(s) for s in shares) or 0.01)
    ymax = step * steps
    marks = _latency_marks(series, slo_ms, x, edges, left, pw)
    placed = _stack([(mx, text) for mx, text, _, _ in marks], 10, left, left + pw)
    rows = 1 + max((row for _, _, row in placed), default=-1)
    top = 12 + ROW * rows
    h = top + ph + bottom

    def y(share: float) -> float:
        return top + ph * (1 - share / ymax)

    parts = [f'<svg viewBox="0 0 {w} {h}" role="img" aria-label="Latency distribution per version">']
    for i in range(steps + 1):
        s = step * i
        parts.append(
            f'<line x1="{left}" x2="{w - right}" y1="{y(s):.1f}" y2="{y(s):.1f}" stroke="#eee"/>'
            f'<text x="{left - 6}" y="{y(s) + 4:.1f}" font-size="11" text-anchor="end">{100 * s:g}%</text>'
        )
    for tx, label in _log_ticks(x, edges[0], edges[-1]):
        parts.append(
            f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{top + ph}" y2="{top + ph + 4}" stroke="#999"/>'
            f'<text x="{tx:.1f}" y="{top + ph + 16}" font-size="11" text-anchor="middle">{_e(label)}</text>'
        )
    parts.append(
        f'<text x="{left + pw / 2}" y="{h - 4}" font-size="12" text-anchor="middle">'
        "latency per request (ms, log scale)</text>"
    )
    for v, share in zip(series, shares, strict=True):
        color = COLORS.get(str(v.get("role")), "#555")
        path = [f"M{x(edges[0]):.1f},{y(0):.1f}"]
        for i, s in enumerate(share):
            path.append(f"L{x(edges[i]):.1f},{y(s):.1f}L{x(edges[i + 1]):.1f},{y(s):.1f}")
        path.append(f"L{x(edges[-1]):.1f},{y(0):.1f}Z")
        parts.append(
            f'<path d="{"".join(path)}" fill="{color}" fill-opacity="0.28" stroke="{color}" '
            'stroke-width="1.5"/>'
        )
    for (mx, text, color, line), (tx, anchor, row) in zip(marks, placed, strict=True):
        if line:
            dash = "" if text.startswith("p99 SLO") else ' stroke-dasharray="4 3"'
            parts.append(
                f'<line x1="{mx:.1f}" x2="{mx:.1f}" y1="{top - 4}" y2="{top + ph}" stroke="{color}"{dash}/>'
            )
        parts.append(
            f'<text x="{tx:.1f}" y="{top - 6 - ROW * row}" font-size="10" text-anchor="{anchor}" '
            f'fill="{color}">{_e(text)}</text>'
        )
    parts.append(f'<line x1="{left}" x2="{w - right}" y1="{top + ph}" y2="{top + ph}" stroke="#999"/></svg>')
    return "".join(parts) + _legend(
        [
            (COLORS.get(str(v.get("role")), "#555"), f"{v.get('role')} {v.get('model_version')}")
            for v in series
        ]
    )


def _latency_marks(
    series: Sequence[Mapping[str, Any]],
    slo_ms: float | None,
    x: Callable[[float], float],
    edges: Sequence[float],
    left: float,
    pw: float,
) -> list[tuple[float, str, str, bool]]:
    """(x, label, colour, draw a line) of each version's p99 and of the SLO, in x order so that
    their label rows fill from the left."""
    marks = []
    for v in series:
        p99 = (v.get("latency_ms") or {}).get("p99")
        if p99:
            marks.append((x(p99), f"p99 {v.get('role')}", COLORS.get(str(v.get("role")), "#555"), True))
    if slo_ms and edges[0] <= slo_ms <= edges[-1]:
        marks.append((x(slo_ms), f"p99 SLO {slo_ms:g} ms", "#c0392b", True))
    elif slo_ms:
        right_of = slo_ms > edges[-1]
        text = f"p99 SLO {slo_ms:g} ms " + ("→ (right of the axis)" if right_of else "← (left of the axis)")
        marks.append((left + pw if right_of else left, text, "#c0392b", False))
    return sorted(marks, key=lambda m: m[0])


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
    for i in range(5):
        xx = left + pw * i / 4
        parts.append(
            f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="6" y2="{h - 20}" stroke="#eee"/>'
            f'<text x="{xx:.1f}" y="{h - 6}" font-size="11" text-anchor="middle">{25 * i}%</text>'
        )
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
    parts.append("</svg>")
    return "".join(parts) + _legend([(COLORS.get(role, "#555"), title) for role, title, _ in rows])


def timeline_chart(report: Mapping[str, Any]) -> str:
    """The canary's weight over compressed time, a lane per alarm, and the judge's looks."""
    timeline = list(report.get("timeline") or ())
    if not timeline:
        return '<p class="muted">No timeline.</p>'
    alarms = [str(a.get("name")) for a in report.get("alarms") or ()]
    looks = list(report.get("looks") or ())
    end_t = max(float(e.get("t_sim_s") or 0.0) for e in timeline)
    span = max(end_t, 60.0)
    lane, w, left, right, top = 18, 720, 200, 16, 12
    wh = 150  # weight plot height: 10 % of it clears an 11 px label
    h = top + wh + 26 + lane * (len(alarms) + 1) + 44
    pw = w - left - right

    def x(t: float) -> float:
        return left + pw * min(max(t, 0.0), span) / span

    def yw(weight: float) -> float:
        return top + wh * (1 - weight)

    parts = [f'<svg viewBox="0 0 {w} {h}" role="img" aria-label="Weight and alarm timeline">']
    weights = {float(e.get("weight") or 0.0) for e in timeline}
    ticks = [(yw(0.0), "0%", 0), (yw(1.0), "100%", 0), (yw(0.5), "50%", 2)]
    ticks += [(yw(wt), f"{100 * wt:g}%", 1) for wt in sorted(weights) if 0.0 < wt < 1.0]
    for ty, label in _thin(ticks, lambda _: 11 / 2, 2):
        parts.append(
            f'<line x1="{left}" x2="{w - right}" y1="{ty:.1f}" y2="{ty:.1f}" stroke="#eee"/>'
            f'<text x="{left - 6}" y="{ty + 4:.1f}" font-size="11" text-anchor="end">{label}</text>'
        )
    parts.append(f'<text x="12" y="{top + wh / 2:.0f}" font-size="12">canary traffic</text>')
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
            said = reasons_in_words(str(e.get("message") or ""))
            parts.append(
                f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top}" y2="{top + wh}" stroke="#bbb" '
                f'stroke-dasharray="2 3"><title>{_e(said)}</title></line>'
            )
    # alarm lanes, then the judge's looks, then the time axis
    y0 = top + wh + 26
    parts += _lanes(timeline, alarms, looks, x, span, left, y0, lane)
    parts += _minute_axis(x, span, left, pw, w - right, y0 + (len(alarms) + 1) * lane + 6)
    legend = [(c, _STATE_WORDS.get(s, s)) for s, c in STATE_COLORS.items()] + [
        (c, f"judge {v}") for v, c in VERDICT_COLORS.items()
    ]
    return "".join(parts) + _legend(legend)


def _lanes(
    timeline: Sequence[Mapping[str, Any]],
    alarms: Sequence[str],
    looks: Sequence[Mapping[str, Any]],
    x: Callable[[float], float],
    span: float,
    left: float,
    y0: float,
    lane: float,
) -> list[str]:
    """A lane per alarm, its state over time, and a last lane with the judge's looks."""
    shown = short_names(alarms)
    fits = int((left - 12) / (11 * GLYPH))  # characters of a lane name left of the plot
    parts = []
    for i, name in enumerate(alarms):
        yy = y0 + i * lane
        label = shown[name] if len(shown[name]) <= fits else shown[name][: fits - 1] + "…"
        parts.append(
            f'<text x="{left - 6}" y="{yy + lane - 6}" font-size="11" text-anchor="end">'
            f"<title>{_e(name)}</title>{_e(label)}</text>"
        )
        for t0, t1, state in _segments(timeline, name, span):
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
        verdict = str(look.get("verdict") or "no verdict")  # None: the judge crashed at this look
        parts.append(
            f'<circle cx="{x(t):.1f}" cy="{yy + lane / 2:.1f}" r="5" '
            f'fill="{VERDICT_COLORS.get(verdict, "#555")}">'
            f"<title>{_e(verdict)}: {_e(reasons_in_words(str(look.get('reason') or '')))}</title></circle>"
        )
    return parts


def _minute_axis(
    x: Callable[[float], float], span: float, left: float, pw: float, end: float, axis_y: float
) -> list[str]:
    """The time axis: a round step in minutes that leaves each label room, and its title."""
    parts = [f'<line x1="{left}" x2="{end}" y1="{axis_y}" y2="{axis_y}" stroke="#999"/>']
    per_minute = pw / (span / 60.0)
    step = next((m for m in (0.5, 1, 2, 5, 10, 15, 30, 60) if m * per_minute >= 40), 120)
    t = 0.0
    while t <= span / 60.0 + 1e-6:
        parts.append(
            f'<text x="{x(t * 60.0):.1f}" y="{axis_y + 14}" font-size="11" text-anchor="middle">{t:g}</text>'
        )
        t += step
    parts.append(
        f'<text x="{left + pw / 2}" y="{axis_y + 32}" font-size="12" text-anchor="middle">'
        "compressed minutes since the deployment started</text></svg>"
    )
    return parts


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
            f"<td class=num>{_count(v.get('requests'))}</td><td class=num>{_count(v.get('errors'))}</td>"
            f"<td class=num>{_ms(lat.get('p50'))}</td><td class=num>{_ms(lat.get('p90'))}</td>"
            f"<td class=num>{_ms(lat.get('p99'))}</td>"
            + "".join(f"<td class=num>{_pct(shares.get(k))}</td>" for k, _ in LABELS)
            + "</tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"


def _evidence_table(evidence: Mapping[str, Any], rehearsal: Mapping[str, Any]) -> str:
    """Where the judge's evidence came from (n per version per source), the probe, the gate."""
    rows = "".join(
        f"<tr><td>{_e(role)}</td><td class=num>{_count(n.get('live'))}</td>"
        f"<td class=num>{_count(n.get('probe'))}</td><td class=num>{_count(n.get('hook'))}</td></tr>"
        for role, n in sorted((evidence.get("by_source") or {}).items())
    )
    gate = evidence.get("gate")
    gate_line = (
        f"<p><b>PostTraffic gate {_e(gate.get('status'))}</b>: {_e(gate.get('reason'))}</p>"
        if gate
        else '<p class="muted">The PostTraffic gate did not run (the deployment ended before it).</p>'
    )
    crashes = evidence.get("judge_errors") or ()
    crash_line = (
        f"<p class=bad>The judge crashed at {len(crashes)} looks: {_e(crashes[-1])}</p>" if crashes else ""
    )
    return (
        f"{gate_line}{crash_line}<p class=muted>Users' traffic {_e(rehearsal.get('traffic'))} req/s "
        f"(real-world), log lag median {_e(rehearsal.get('log_lag_s'))} s.</p>"
        "<table><tr><th>version</th><th class=num>live</th><th class=num>probe</th>"
        f"<th class=num>hook</th></tr>{rows}</table>"
    )


def _hook_table(hook: Mapping[str, Any] | None) -> str:
    if not hook:
        return '<p class="muted">The PreTraffic hook did not run.</p>'
    rows = "".join(
        f"<tr><td class={'ok' if c.get('passed') else 'bad'}>{'ok' if c.get('passed') else 'FAIL'}</td>"
        f"<td>{_e(c.get('name'))}</td><td>{_e(c.get('reason'))}</td></tr>"
        for c in hook.get("checks") or ()
    )
    return (
        f"<p><b>{_e(hook.get('status'))}</b> on {_count(hook.get('sent'))} known-answer requests "
        f"({_count(hook.get('answered'))} answered).</p>"
        f"<table><tr><th></th><th>check</th><th>result</th></tr>{rows}</table>"
    )


def _checks_cell(metric: Mapping[str, Any]) -> str:
    """Each check of an evidence metric in words (min n, significance, effect floor; the ones the
    text marks with *), one a line; the one(s) that decided in bold."""
    lines = []
    for c in metric.get("checks") or evidence_checks(metric):
        text = f"{c.get('check')}: {c.get('text')}"
        shown = f"<b>{_e(text)} (decided)</b>" if c.get("decided") else _e(text)
        lines.append(f"<div>{shown}</div>")
    return "".join(lines)


def _judge_table(judge: Mapping[str, Any] | None) -> str:
    if not judge:
        return '<p class="muted">The judge made no look (no traffic reached the canary).</p>'
    if judge.get("schema") != EVIDENCE_SCHEMA:
        return f'<p class="muted">A judge report of schema {_e(judge.get("schema"))}: not shown here.</p>'
    rows = "".join(
        f"<tr><td>{_e(m.get('name'))}</td><td class={'bad' if m.get('classification') == 'High' else ''}>"
        f"{_e(m.get('classification'))}</td>"
        f"<td class=num>{_count(m.get('n_baseline'))}/{_count(m.get('n_canary'))}</td>"
        f"<td class=num>{_num(m.get('p_value'))}</td><td class=num>{_num(m.get('alpha'))}</td>"
        f"<td>{_checks_cell(m)}</td></tr>"
        f"<tr><td></td><td colspan=5 class=muted>{_e(m.get('reason'))} Test: {_e(m.get('test'))}.</td></tr>"
        for m in judge.get("metrics") or ()
    )
    return (
        f"<p><b>{_e(judge.get('verdict'))}</b>: {_e(judge.get('reason'))}</p>"
        "<table><tr><th>metric</th><th>result</th><th class=num>n base/canary</th>"
        "<th class=num>p-value</th><th class=num>alpha</th><th>checks: what was seen against each</th></tr>"
        f"{rows}</table><p class=muted>A metric fails only when its p-value is below alpha and its effect "
        "reaches the floor; under its minimum n it has no data (INCONCLUSIVE), never PASS.</p>"
    )


def _alarms_table(alarms: Sequence[Mapping[str, Any]]) -> str:
    if not alarms:
        return '<p class="muted">No alarms.</p>'
    rows = "".join(
        f"<tr><td style='color:{STATE_COLORS.get(str(a.get('state')), '#222')};font-weight:600'>"
        f"{_e(_STATE_WORDS.get(str(a.get('state')), a.get('state')))}</td><td>{_e(a.get('name'))}</td>"
        f"<td>{_e(alarm_in_words(a) or a.get('reason'))}</td></tr>"
        for a in alarms
    )
    return f"<table><tr><th>state</th><th>alarm</th><th>why</th></tr>{rows}</table>"


def _traffic(traffic: Mapping[str, Any]) -> str:
    statuses = traffic.get("statuses")
    if isinstance(statuses, Mapping):
        codes = ", ".join(f"{_e(code)}: {_count(n)}" for code, n in sorted(statuses.items())) or "none"
    else:
        codes = _e(statuses)
    return (
        f"{_count(traffic.get('sent'))} requests sent over HTTP, {_count(traffic.get('answered'))} answered, "
        f"{_count(traffic.get('lost'))} lost; answers by status code: {codes}; "
        f"5xx made up by the gateway itself: {_count(traffic.get('gateway_5xx'))}."
    )


def _count(x: Any) -> str:
    """A count with thousands separators ("6,764"); anything else as text."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return _e(x)
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.2f}"


def _num(x: Any) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    x = float(x)
    if x != 0 and abs(x) < 1e-3:
        return f"{x:.1e}"
    return f"{x:.4f}" if abs(x) < 10 else f"{x:.1f}"


# --------------------------------------------------------------------------- page


def _rollback_card(rollback: Mapping[str, Any] | None) -> str:
    """--then-rollback's section: its state, the switch in numbers, one line per phase."""
    if not rollback:
        return ""
    if not rollback.get("ran"):
        return f'<h2>Rollback</h2>\n<div class="card"><p>{_e(rollback.get("reason"))}</p></div>\n'
    state = str(rollback.get("state"))
    target = rollback.get("target") or {}
    rows = (rollback.get("served_after_switch") or {}).items()
    served = ", ".join(f"version {v}: {_count(row.get('requests'))}" for v, row in rows) or "nothing"
    lines = "".join(f"<li><code>{_e(p.get('line'))}</code></li>" for p in rollback.get("phases") or ())
    color = OUTCOME_COLORS["PROMOTED" if state == "DONE" else "BLOCKED"]
    old = rollback.get("from_version")
    return f"""<h2>Rollback after the promotion (make rollback's controller, local stand-ins)</h2>
<div class="card"><span class="badge" style="background:{color}">{_e(state)}</span>
back to version {_e(target.get("version"))} (model {_e(target.get("model"))}): the switch
{_e(rollback.get("switch_s"))} s after the command, the last answer from version {_e(old)}
at {_e(rollback.get("last_answer_from_old_version_s"))} s, {_count(rollback.get("5xx"))} 5xx after
the command; served after the switch: {_e(served)}. Stack: {_e(rollback.get("stack_update"))}.
<ul>{lines}</ul></div>
"""


def _header(report: Mapping[str, Any], state: str) -> tuple[str, str]:
    """(the page's title, its subtitle): the rehearsal's models, plan and faults, or the stack."""
    rehearsal = report.get("rehearsal")
    if not isinstance(rehearsal, Mapping):
        where = " · ".join(_e(x) for x in (report.get("environment"), report.get("region")) if x)
        title = f"Canary report {report.get('stack') or ''}: {state}"
        return title, f"{_e(report.get('stack'))} · {where} · {_when(report.get('generated_at'))}"
    faults = ", ".join(rehearsal.get("faults") or ()) or "none"
    tried = rehearsal.get("overrides") or {}
    what_if = (
        " · <b>what-if thresholds</b>: " + _e(", ".join(f"{k}={v}" for k, v in tried.items()))
        if tried
        else ""
    )
    title = f"Rehearsal {rehearsal.get('baseline', '?')} → {rehearsal.get('canary', '?')}: {state}"
    sub = f"""{_e(report.get("stack"))} · environment {_e(report.get("environment"))} ·
{_e(rehearsal.get("plan"))} at {_e(rehearsal.get("speed"))}× speed · faults: {_e(faults)} ·
seed {_e(rehearsal.get("seed"))} · {_when(report.get("generated_at"))}{what_if}"""
    return title, sub


def _rehearsal_sections(report: Mapping[str, Any]) -> str:
    """What only a rehearsal records (per request, per minute): the charts, the evidence by source,
    the per-version table. Empty for a report from AWS."""
    rehearsal = report.get("rehearsal")
    if not isinstance(rehearsal, Mapping):
        return ""
    versions = list(report.get("versions") or ())
    expected = (report.get("judge") or {}).get("expected_canary_shares")
    evidence = report.get("evidence")
    evidence_card = (
        f"""<h2>Evidence: requests per version and source, the PostTraffic gate</h2>
<div class="card">{_evidence_table(evidence, rehearsal)}</div>
"""
        if isinstance(evidence, Mapping)
        else ""
    )
    return f"""<h2>Traffic weight and alarms</h2>
<div class="card">{timeline_chart(report)}</div>

<h2>Latency per version</h2>
<div class="card">{latency_chart(versions, rehearsal.get("latency_slo_ms"))}</div>

<h2>Label shares per version</h2>
<div class="card">{labels_chart(versions, expected)}</div>

{evidence_card}
<h2>Per-version table (users' requests of the rehearsal)</h2>
<div class="card">{_versions_table(versions)}</div>
"""


def _gate_card(report: Mapping[str, Any]) -> str:
    """The PostTraffic gate's decision and its final look, from AWS's record (a rehearsal shows its
    gate with the evidence, its final look as the judge's)."""
    if "gate" not in report:
        return ""
    gate = report_gate(report)
    if not gate:
        return '<h2>PostTraffic gate</h2>\n<div class="card"><p class="muted">No gate record.</p></div>\n'
    look = _judge_table(gate["report"]) if gate.get("report") else ""
    return f"""<h2>PostTraffic gate</h2>
<div class="card"><p><b>{_e(gate.get("status"))}</b>: {_e(gate.get("reason"))}</p>{look}</div>
"""


def render_html(report: Mapping[str, Any]) -> str:
    """The whole page."""
    outcome = report.get("outcome") or {}
    state = str(outcome.get("state", "UNKNOWN"))
    title, sub = _header(report, state)
    reasons = "".join(f"<li>{_e(reasons_in_words(str(r)))}</li>" for r in report.get("reasons") or ())
    traffic = report.get("traffic")
    traffic_line = f'<p class="muted">{_traffic(traffic)}</p>' if isinstance(traffic, Mapping) else ""
    stage = report.get("stage", outcome.get("stage"))
    badge = OUTCOME_COLORS.get(state, "#555")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{_e(title)}</title><style>{CSS}</style></head>
<body><main>
<h1>{_e(title)}</h1>
<p class="sub">{sub}</p>
<div class="card"><span class="badge" style="background:{badge}">{_e(state)}</span>
at stage <b>{_e(stage)}</b>. {_e(reasons_in_words(str(outcome.get("reason") or "")))}<ul>{reasons}</ul>
{traffic_line}</div>
{_rollback_card(report.get("rollback"))}
{_rehearsal_sections(report)}
<h2>PreTraffic hook</h2>
<div class="card">{_hook_table(report.get("pretraffic"))}</div>

<h2>Alarms (DeploymentPreference.Alarms)</h2>
<div class="card">{_alarms_table(report.get("alarms") or ())}</div>

<h2>Canary judge, last look</h2>
<div class="card">{_judge_table(report.get("judge"))}</div>
{_gate_card(report)}
<h2>On-call report</h2>
<pre>{_e(render_report(report))}</pre>
</main></body></html>
"""


def check_writable(path: Path) -> None:
    """Refuse an unwritable --html place now, not after the whole run (OSError says why); a file
    that was not there before is not left behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    existed = path.exists()
    with open(path, "a", encoding="utf-8"):
        pass
    if not existed:
        path.unlink()
