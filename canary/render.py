"""The on-call report as text: a pure function of the report dict, readable in 80 columns.

`make report` (canary.report, from AWS) and the local rehearsal (from its own run) build the
same dict (schema "canary-report/1") and print it with render_report. Every part is optional:

    {"schema", "generated_at", "source": "aws"|"local", "stack", "environment", "region",
     "outcome": {"state", "reason"}, "deployment": {"id", "status", "created", "completed",
     "error"}, "pretraffic": HookResult.as_dict(), "alarms": [{"name", "state", "reason",
     "updated"}], "judge": JudgeReport.as_dict() (+ "routing", "judged_at"), "notes": [str]}
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

REPORT_SCHEMA = "canary-report/1"
LABEL_HEADINGS = (("hate_speech", "hate"), ("offensive_language", "offens"), ("neither", "neither"))


def outcome_of(deployment: Mapping[str, Any] | None, alarms: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """The deployment's outcome in on-call words, from CodeDeploy's status and the alarms."""
    firing = [a["name"] for a in alarms if a.get("state") == "ALARM"]
    if not deployment:
        return {"state": "NO DEPLOYMENT", "reason": "no CodeDeploy deployment found for this stack"}
    status = str(deployment.get("status") or "Unknown")
    error = deployment.get("error") or ""
    if status == "Succeeded":
        return {"state": "PROMOTED", "reason": "the canary passed; all traffic shifted to the new version"}
    if status in ("Failed", "Stopped"):
        if "HOOK" in str(deployment.get("error_code", "")).upper() or "hook" in error.lower():
            return {"state": "BLOCKED", "reason": f"the pre-traffic hook failed: {error}".strip()}
        cause = f"alarms in ALARM: {', '.join(firing)}" if firing else (error or "see the deployment's error")
        return {"state": "ROLLED BACK", "reason": f"traffic returned to the old version; {cause}"}
    return {
        "state": "IN PROGRESS",
        "reason": f"CodeDeploy status {status}"
        + (f"; alarms in ALARM: {', '.join(firing)}" if firing else ""),
    }


def render_report(report: Mapping[str, Any], width: int = 80) -> str:
    """The whole report as text, no line longer than `width`."""
    out: list[str] = []
    where = ", ".join(str(x) for x in (report.get("environment"), report.get("region")) if x)
    title = f"CANARY REPORT  {report.get('stack') or report.get('source') or ''}"
    title += f" ({where})" if where else ""
    out.append(_fit(f"{title}  {_when(report.get('generated_at'), date=True)}", width))
    out.append("=" * width)
    outcome = report.get("outcome") or {}
    out.append(f"Outcome: {outcome.get('state', 'UNKNOWN')}")
    out += _wrap(outcome.get("reason"), width, "  ")
    out += _deployment(report.get("deployment"), width)
    out += _pretraffic(report.get("pretraffic"), width)
    out += _alarms(report.get("alarms"), width)
    out += _judge(report.get("judge"), width)
    for note in report.get("notes") or ():
        out += _wrap(f"Note: {note}", width, "", "  ")
    # Tables are laid out for 80 columns; anything wider than `width` is cut with an ellipsis.
    return "\n".join(_fit(line.rstrip(), width) for line in out) + "\n"


def _deployment(dep: Mapping[str, Any] | None, width: int) -> list[str]:
    if not dep:
        return []
    head = f"Deployment {dep.get('id', '?')}  {dep.get('status', '?')}"
    head += (
        f"  {_when(dep.get('created'))} -> {_when(dep.get('completed')) if dep.get('completed') else 'now'}"
    )
    lines = ["", _fit(head, width)]
    if dep.get("error"):
        lines += _wrap(f"error: {dep['error']}", width, "  ", "    ")
    return lines


def _pretraffic(hook: Mapping[str, Any] | None, width: int) -> list[str]:
    if not hook:
        return []
    lines = [
        "",
        _fit(f"Pre-traffic hook: {hook.get('status')} ({hook.get('sent', 0)} golden requests)", width),
    ]
    for check in hook.get("checks") or ():
        mark = "ok  " if check.get("passed") else "FAIL"
        lines += _wrap(f"{mark} {check.get('name', ''):<19}{check.get('reason', '')}", width, "  ", " " * 26)
    return lines


def _alarms(alarms: Sequence[Mapping[str, Any]] | None, width: int) -> list[str]:
    lines = ["", "Alarms"]
    if not alarms:
        return lines + ["  (none found)"]
    order = {"ALARM": 0, "INSUFFICIENT_DATA": 1, "OK": 2}
    for alarm in sorted(alarms, key=lambda a: (order.get(str(a.get("state")), 3), str(a.get("name")))):
        state = str(alarm.get("state", "?"))
        lines.append(_fit(f"  {state:<17} {alarm.get('name', '?')}", width))
        if state != "OK" and alarm.get("reason"):
            lines += _wrap(str(alarm["reason"]), width, " " * 20)
    return lines


def _judge(judge: Mapping[str, Any] | None, width: int) -> list[str]:
    lines = ["", "Canary judge"]
    if not judge:
        return lines + ["  no verdict logged in this window"]
    window = judge.get("window") or {}
    score = judge.get("score")
    head = f"  {judge.get('verdict', '?')}"
    head += f" (score {score:.0f})" if isinstance(score, (int, float)) else ""
    head += f" at {_when(judge.get('judged_at') or window.get('until'))}"
    if window.get("since") is not None and window.get("until") is not None:
        minutes = (window["until"] - window["since"]) / 60.0
        head += f", over {minutes:.1f} min of traffic since {_when(window['since'])}"
    lines.append(_fit(head, width))
    lines += _wrap(judge.get("reason"), width, "  ")
    routing = judge.get("routing") or {}
    b, c = judge.get("baseline") or {}, judge.get("canary") or {}
    if routing.get("canary_weight") is not None:
        lines += _wrap(
            f"Canary version {c.get('function_version')} ({c.get('model_version')}) gets "
            f"{routing['canary_weight']:.0%} of traffic; baseline version {b.get('function_version')} "
            f"({b.get('model_version')}).",
            width,
            "  ",
        )
    heads = "".join(f"{h:>8}" for _, h in LABEL_HEADINGS)
    lines += ["", f"  {'version':<10} {'n':>6} {'5xx':>6} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7}{heads}"]
    for name, side in (("baseline", b), ("canary", c)):
        if side:
            lines.append(_fit(_version_row(f"{name} {side.get('function_version', '')}", side), width))
    expected = judge.get("expected_canary_shares")
    if expected:
        row = f"  {'expected canary mix':<48}" + "".join(
            f"{_pct(expected.get(k)):>8}" for k, _ in LABEL_HEADINGS
        )
        lines.append(_fit(row, width))
    head = f"  {'metric':<8} {'result':<7} {'n base/canary':<15} {'p-value':>7}"
    lines += ["", f"{head} {'alpha':>8} {'effect':>9} {'floor':>9}"]
    for m in judge.get("metrics") or ():
        n = f"{m.get('n_baseline', 0)}/{m.get('n_canary', 0)}"
        lines.append(
            _fit(
                f"  {m.get('name', ''):<8} {m.get('classification', ''):<7} {n:<15} {_p(m.get('p_value')):>7}"
                f" {_p(m.get('alpha')):>8} {_num(m.get('effect')):>9} {_num(m.get('threshold')):>9}",
                width,
            )
        )
    for m in judge.get("metrics") or ():
        lines.append("")
        lines += _wrap(
            f"{m.get('name')}: {m.get('test')}; effect = {m.get('effect_name')}.", width, "  ", "    "
        )
        lines += _wrap(m.get("reason"), width, "    ")
    mt = judge.get("multiple_testing") or {}
    if mt:
        lines.append("")
        lines += _wrap(
            f"False alarms: alpha {mt.get('alpha_per_deployment')} per deployment split over "
            f"{mt.get('looks')} looks ({_p(mt.get('alpha_per_look'))} per look), Holm across the "
            "metrics of a look. A metric fails only when significant AND its effect reaches its floor; "
            "below the minimum sample it is NoData (INCONCLUSIVE), never PASS.",
            width,
            "  ",
        )
    dropped = {k: v for k, v in (judge.get("dropped") or {}).items() if v}
    if dropped:
        lines += _wrap("Left out: " + ", ".join(f"{v} {k}" for k, v in dropped.items()) + ".", width, "  ")
    return lines


def _version_row(name: str, side: Mapping[str, Any]) -> str:
    lat = side.get("latency_ms") or {}
    shares = side.get("label_shares") or {}
    rate = side.get("error_rate")
    return (
        f"  {name:<10} {side.get('requests', 0):>6} {_pct(rate, 2):>6} {_ms(lat.get('p50')):>7}"
        f" {_ms(lat.get('p90')):>7} {_ms(lat.get('p99')):>7}"
        + "".join(f"{_pct(shares.get(k)):>8}" for k, _ in LABEL_HEADINGS)
    )


def _pct(x: Any, digits: int = 1) -> str:
    return "-" if x is None else f"{100.0 * float(x):.{digits}f}%"


def _ms(x: Any) -> str:
    return "-" if x is None else f"{float(x):.1f}"


def _p(x: Any) -> str:
    if x is None:
        return "-"
    x = float(x)
    return f"{x:.4f}" if x >= 0.001 else f"{x:.1e}"


def _num(x: Any) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    x = float(x)
    return f"{x:.4f}" if abs(x) < 10 else f"{x:.1f}"


def _when(ts: Any, date: bool = False) -> str:
    if ts is None:
        return "?"
    if isinstance(ts, str):
        return ts
    moment = datetime.fromtimestamp(float(ts), tz=UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%SZ" if date else "%H:%M:%SZ")


def _fit(line: str, width: int) -> str:
    return line if len(line) <= width else line[: width - 1] + "…"


def _wrap(text: Any, width: int, indent: str, subsequent: str | None = None) -> list[str]:
    if not text:
        return []
    return textwrap.wrap(
        str(text),
        width=width,
        initial_indent=indent,
        subsequent_indent=indent if subsequent is None else subsequent,
        break_long_words=True,
        break_on_hyphens=False,
    )
