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
import re
import textwrap
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from canary.judge import VERDICT_VALUE

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
    out += _wrap(reasons_in_words(str(outcome.get("reason") or "")), width, "  ")
    out += _deployment(report.get("deployment"), width)
    out += _pretraffic(report.get("pretraffic"), width)
    out += _alarms(report.get("alarms"), width)
    out += _judge(report.get("judge"), width)
    for note in report.get("notes") or ():
        out += _wrap(f"Note: {reasons_in_words(str(note))}", width, "", "  ")
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
        lines += _wrap(f"error: {reasons_in_words(str(dep['error']))}", width, "  ", "    ")
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
            lines += _wrap(alarm_in_words(alarm) or str(alarm["reason"]), width, " " * 20)
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
    head = f"  {'metric':<8} {'result':<7} {'n base/canary':<13} {'p-value':>8} {'alpha':>8}"
    lines += ["", f"{head}  floors: seen vs floor"]
    for m in judge.get("metrics") or ():
        n = f"{m.get('n_baseline', 0)}/{m.get('n_canary', 0)}"
        row = f"  {m.get('name', ''):<8} {m.get('classification', ''):<7} {n:<13} {_p(m.get('p_value')):>8}"
        row += f" {_p(m.get('alpha')):>8}  "
        for i, floor in enumerate(floor_cells(m)):
            lines.append(_fit((row if i == 0 else " " * len(row)) + floor, width))
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
            "metrics of a look. A metric fails only when significant AND its effect reaches every "
            "effect floor; below its minimum sample floor it is NoData (INCONCLUSIVE), never PASS."
            + (
                " Floors read seen >= floor (reached) or seen < floor; * marks the ones that decided."
                if any(m.get("floors") for m in judge.get("metrics") or ())
                else ""
            ),
            width,
            "  ",
        )
    dropped = {k: v for k, v in (judge.get("dropped") or {}).items() if v}
    if dropped:
        lines += _wrap("Left out: " + ", ".join(f"{v} {k}" for k, v in dropped.items()) + ".", width, "  ")
    return lines


def floor_cells(metric: Mapping[str, Any]) -> list[str]:
    """One cell per floor of a judged metric, "shift +0.32 ms < +1 ms", the deciding ones marked
    "*"; a report from a judge that predates floors shows its effect and single threshold."""
    floors = metric.get("floors")
    if not floors:
        floor = metric.get("threshold", metric.get("floor"))
        return [f"effect {_num(metric.get('effect'))}, floor {_num(floor)}"]
    return [f"{f.get('text', '?')}{' *' if f.get('decided') else ''}" for f in floors]


# --------------------------------------------------------------------------- alarms in words

_OPERATORS = {
    "GreaterThanThreshold": ">",
    "GreaterThanOrEqualToThreshold": ">=",
    "LessThanThreshold": "<",
    "LessThanOrEqualToThreshold": "<=",
}
_OPERATOR_WORDS = {">": "above", ">=": "at or above", "<": "below", "<=": "at or below"}
_VERDICT_NAMES = {value: verdict.value for verdict, value in VERDICT_VALUE.items()}
# The local controller's wording (emulator/controller.py), read back while its alarm dicts do not
# carry threshold and comparison as fields; anything else is shown as it is.
_LOCAL_ALARM = re.compile(
    r"^\d+ of the last (?P<n>\d+) datapoints \[(?P<values>[^\]]*)\] (?P<op>>=|>|<=|<) (?P<threshold>\S+) "
    r"\((?P<metric>\S+) (?P<statistic>\S+) per (?P<period>[\d.]+) s\)$"
)
_LOCAL_ALARM_IN_TEXT = re.compile(_LOCAL_ALARM.pattern[1:-1])
_LOCAL_OK = re.compile(
    r"^(?:latest (?P<latest>\S+)|no data \(not breaching\)); alarms at (?P<k>\d+) of (?P<n>\d+) "
    r"datapoints (?P<op>>=|>|<=|<) (?P<threshold>\S+)$"
)


def alarm_in_words(alarm: Mapping[str, Any]) -> str | None:
    """An alarm's state as a sentence ("Judge's verdict: 2 = FAIL in the last minute, at or above
    the alarm threshold (2 = FAIL)."), or None when its dict says too little to word it."""
    state, reason = alarm.get("state"), str(alarm.get("reason") or "")
    if state == "INSUFFICIENT_DATA" and reason in ("", "no datapoints yet"):
        return "No data yet."
    facts = _alarm_facts(alarm)
    if facts is None or state not in ("ALARM", "OK"):
        return None
    label, show = _alarm_metric(str(facts.get("metric") or alarm.get("metric") or ""), facts.get("statistic"))
    op, threshold = facts["op"], show(facts["threshold"])
    period = "minute" if facts["period_s"] == 60.0 else f"{facts['period_s']:g}-second period"
    if state == "ALARM":
        values = " and ".join("no data" if v is None else show(v) for v in facts["breaching"]) or "no data"
        n = facts["evaluated"]
        when = (
            f"in the last {period}" if n <= 1 else f"in {len(facts['breaching'])} of the last {n} {period}s"
        )
        return f"{label}: {values} {when}, {_OPERATOR_WORDS[op]} the alarm threshold ({threshold})."
    latest = "no data (not breaching)" if facts["latest"] is None else show(facts["latest"])
    k, n = facts["datapoints_to_alarm"], facts["evaluation_periods"]
    rule = "" if n <= 1 else f" in {k} of {n} {period}s"
    return f"{label}: {latest} at the last check; the alarm fires {_OPERATOR_WORDS[op]} {threshold}{rule}."


def reasons_in_words(text: str) -> str:
    """Text that quotes the local controller's alarm reasons ("<alarm> in ALARM: 1 of the last 1
    datapoints [2] >= 2 (...)"), each quoted reason in words."""

    def worded(match: re.Match[str]) -> str:
        words = alarm_in_words({"state": "ALARM", "reason": match[0]})
        return words.rstrip(".") if words else match[0]

    return _LOCAL_ALARM_IN_TEXT.sub(worded, text)


def _alarm_facts(alarm: Mapping[str, Any]) -> dict[str, Any] | None:
    """Threshold, comparison, periods and datapoints: from the alarm's own fields (describe_alarms,
    or a local alarm that carries them), else read back from the local controller's reason."""
    op = _OPERATORS.get(str(alarm.get("comparison")), alarm.get("comparison"))
    if alarm.get("threshold") is not None and op in _OPERATOR_WORDS:
        n = int(alarm.get("evaluation_periods") or 1)
        recent = list(alarm.get("datapoints") or ())[-n:]
        threshold = float(alarm["threshold"])
        return {
            "metric": alarm.get("metric"),
            "statistic": alarm.get("statistic"),
            "op": op,
            "threshold": threshold,
            "period_s": float(alarm.get("period_s") or 60.0),
            "evaluation_periods": n,
            "datapoints_to_alarm": int(alarm.get("datapoints_to_alarm") or n),
            "evaluated": len(recent),
            "breaching": [v for v in recent if v is not None and _breaches(float(v), op, threshold)],
            "latest": recent[-1] if recent else None,
        }
    reason = str(alarm.get("reason") or "")
    facts: dict[str, Any] = {"period_s": 60.0, "evaluation_periods": 1, "datapoints_to_alarm": 1}
    facts.update(evaluated=1, breaching=[], latest=None)
    try:
        if match := _LOCAL_ALARM.match(reason):
            values = [v.strip() for v in match["values"].split(",") if v.strip()]
            breaching = [None if v == "missing" else float(v) for v in values]
            facts.update(metric=match["metric"], statistic=match["statistic"], op=match["op"])
            facts.update(threshold=float(match["threshold"]), period_s=float(match["period"]))
            facts.update(evaluated=int(match["n"]), breaching=breaching)
            return facts
        if match := _LOCAL_OK.match(reason):
            facts.update(op=match["op"], threshold=float(match["threshold"]))
            facts.update(evaluation_periods=int(match["n"]), datapoints_to_alarm=int(match["k"]))
            facts["latest"] = None if match["latest"] is None else float(match["latest"])
            return facts
    except ValueError:  # a number that is not one: show the reason as it is
        return None
    return None


def _breaches(value: float, op: str, threshold: float) -> bool:
    return {
        ">": value > threshold,
        ">=": value >= threshold,
        "<": value < threshold,
        "<=": value <= threshold,
    }[op]


def _alarm_metric(metric: str, statistic: Any) -> tuple[str, Any]:
    """What an alarm watches, in words, and how its values are written."""

    def count(x: float) -> str:
        return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.1f}"

    def verdict(x: float) -> str:
        name = _VERDICT_NAMES.get(int(x)) if float(x).is_integer() else None
        return f"{x:g} = {name}" if name else f"{x:g}"

    if metric == "CanaryVerdict":
        return "Judge's verdict", verdict
    if metric == "Errors":
        return "Canary errors", count
    if metric == "5XXError":
        return "API 5XX answers", count
    if metric == "Duration":
        stat = f" {statistic}" if statistic else ""
        return f"Canary{stat} duration", lambda x: f"{count(x)} ms"
    return (f"{metric} {statistic or ''}".strip() or "The metric"), count


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
