"""The on-call report as text: a pure function of the report dict, readable in 80 columns.

`make report` (canary.report, from AWS) and the local rehearsal (from its own run) build the
same dict (schema "canary-report/1") and print it with render_report. Every part is optional:

    {"schema", "generated_at", "source": "aws"|"local", "stack", "environment", "region",
     "outcome": {"state", "stage", "reason"}, "deployment": {"id", "status", "created",
     "completed", "error"}, "pretraffic": HookResult.as_dict(), "alarms": [{"name", "state",
     "reason", "updated"}], "judge": the judge's latest look (+ "routing", "judged_at"),
     "gate": the PostTraffic gate's latest record (gate_from_record), "notes": [str]}

"judge" and the gate's "report" are evidence reports (canary.evidence, schema
"canary-evidence/1"); a "judge" of any other schema (the judge of before issue 10, removed) is
named, not rendered. `checked` adds to every evidence metric the checks that decided it (the
same ones the text marks with *), so the JSON says it too.
"""

from __future__ import annotations

import copy
import math
import re
import textwrap
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from canary import evidence
from canary.evidence import VERDICT_VALUE
from infer.model import LABELS

EVIDENCE_SCHEMA = evidence.SCHEMA
# The API's labels (infer.model: one home, in its order) under the column headings that fit.
_HEADINGS = {"hate_speech": "hate", "offensive_language": "offens"}
LABEL_HEADINGS = tuple((label, _HEADINGS.get(label, label)) for label in LABELS)
SOURCES = tuple(s.value for s in evidence.Source)
GROUPS = tuple(g.value for g in evidence.Group)
# What each evidence metric's n counts ("requests"...), from the metrics themselves.
_UNITS = {m.name: m.unit for m in evidence.metrics_for(evidence.EvidenceConfig(), 1.0)}
STAGE_WORDS = {
    "hook": "the PreTraffic hook",
    "alarm": "an alarm during the canary",
    "gate": "the PostTraffic gate",
    "judge": "the canary judge",
}


def outcome_of(
    deployment: Mapping[str, Any] | None,
    alarms: Sequence[Mapping[str, Any]],
    *,
    pretraffic: Mapping[str, Any] | None = None,
    gate: Mapping[str, Any] | None = None,
    judge: Mapping[str, Any] | None = None,
    has_gate: bool = False,
) -> dict[str, Any]:
    """The deployment's outcome in on-call words: state, the stage that decided it ("hook", "alarm",
    "gate"; None when nothing decided yet) and why, in one sentence. From CodeDeploy's status and
    error, the alarms, and the hook's, the gate's and the judge's latest records of it.

    CodeDeploy reports a failed PreTraffic hook and a failed PostTraffic gate alike
    (HOOK_EXECUTION_FAILURE): the gate's own record tells them apart, else the hook's. `has_gate`:
    the stack has a PostTraffic gate (without either record, which hook failed is then unknown)."""
    firing = [str(a["name"]) for a in alarms if a.get("state") == "ALARM"]
    if not deployment:
        return {
            "state": "NO DEPLOYMENT",
            "stage": None,
            "reason": "no CodeDeploy deployment found for this stack",
        }
    status = str(deployment.get("status") or "Unknown")
    error = str(deployment.get("error") or "")
    code = str(deployment.get("error_code") or "").upper()
    gate_failed = bool(gate) and not _gate_succeeded(gate)
    if status == "Succeeded":
        if gate:
            return {"state": "PROMOTED", "stage": "gate", "reason": _gate_sentence(gate)}
        return {
            "state": "PROMOTED",
            "stage": None,
            "reason": "the canary passed; all traffic shifted to the new version",
        }
    if status in ("Failed", "Stopped"):
        # CodeDeploy names the alarms that stopped it ("Activated alarms: <name>"); they may be OK again.
        named = re.findall(r"<([^<>]+)>", error)
        if ("ALARM" in code or named) and not (gate_failed and not named and not firing):
            return {
                "state": "ROLLED BACK",
                "stage": "alarm",
                "reason": _alarm_sentence(named or firing, judge),
            }
        hook_failed = str((pretraffic or {}).get("status") or "") == "Failed" or "BeforeAllowTraffic" in error
        after_shift = "AfterAllowTraffic" in error or (
            "HOOK" in code and bool(pretraffic) and not hook_failed
        )
        if gate_failed or after_shift:
            return {"state": "ROLLED BACK", "stage": "gate", "reason": _gate_sentence(gate, error)}
        if has_gate and not pretraffic and "HOOK" in code:
            return {
                "state": "FAILED",
                "stage": None,
                "reason": "a lifecycle hook failed, but neither the PreTraffic hook's nor the PostTraffic "
                f"gate's record of this deployment is visible, so which one is unknown: {error}",
            }
        if "HOOK" in code or "hook" in error.lower() or hook_failed:
            why = (pretraffic or {}).get("reason") or error
            return {
                "state": "BLOCKED",
                "stage": "hook",
                "reason": "the PreTraffic hook failed, so no user request reached the new version: "
                f"{why}".strip(),
            }
        if firing:
            return {"state": "ROLLED BACK", "stage": "alarm", "reason": _alarm_sentence(firing, judge)}
        cause = error or "see the deployment's error"
        return {
            "state": "ROLLED BACK",
            "stage": None,
            "reason": f"traffic returned to the old version; {cause}",
        }
    reason = f"CodeDeploy status {status}" + (f"; alarms in ALARM: {', '.join(firing)}" if firing else "")
    if judge and judge.get("verdict"):
        reason += f"; the judge's latest look: {judge['verdict']}" + (
            f" ({_look_words(judge.get('look'))})" if judge.get("look") else ""
        )
    return {"state": "IN PROGRESS", "stage": None, "reason": reason}


def _gate_succeeded(gate: Mapping[str, Any]) -> bool:
    if gate.get("succeeded") is not None:
        return bool(gate["succeeded"])
    return str(gate.get("status")) == "Succeeded"


def _alarm_sentence(names: Sequence[str], judge: Mapping[str, Any] | None) -> str:
    said = (
        f"the alarm {', '.join(names)} fired during the canary"
        if names
        else "an alarm fired during the canary"
    )
    said += " and CodeDeploy returned traffic to the old version"
    if judge and judge.get("schema") == EVIDENCE_SCHEMA and judge.get("verdict") == "FAIL":
        said += f"; the judge's look ({_look_words(judge.get('look'))}) said FAIL: {_why(judge)}"
    return said


def _gate_sentence(gate: Mapping[str, Any] | None, error: str = "") -> str:
    """Why the gate promoted or failed the deployment, from its report (or its reason without one)."""
    if not gate:
        return (
            "a lifecycle hook failed after the PreTraffic hook passed, so the PostTraffic gate failed the "
            "deployment, but its record is not visible (it crashed or timed out)"
            + (f": {error}" if error else "")
        )
    report = gate.get("report")
    incomplete = (
        "" if gate.get("records_complete") in (True, None) else " (records incomplete: it ran out of time)"
    )
    if _gate_succeeded(gate):
        why = _why(report) if report else str(gate.get("reason") or "")
        return f"the PostTraffic gate passed it on the whole window: {why}"
    if not report:
        return f"the PostTraffic gate failed it without a verdict: {gate.get('reason') or 'no reason logged'}"
    return f"the PostTraffic gate judged the whole window {report.get('verdict')}: {_why(report)}{incomplete}"


def _why(report: Mapping[str, Any]) -> str:
    """The verdict of an evidence report in one clause: the failing metric's reason, what lacks how
    much data, or that every metric passed."""
    metrics = report.get("metrics") or []
    failed = [m for m in metrics if m.get("classification") == "High"]
    if failed:
        return "; ".join(f"{m.get('name')}: {str(m.get('reason') or '').rstrip('.')}" for m in failed)
    open_ = [m for m in metrics if m.get("classification") != "Pass"]
    if open_:
        return "not enough evidence: " + "; ".join(_lacks(m) for m in open_)
    return str(report.get("reason") or "").rstrip(".")


def _lacks(metric: Mapping[str, Any]) -> str:
    """What a metric that could not pass lacks, in a few words."""
    name = metric.get("name")
    if metric.get("classification") == "Error":
        return f"{name} could not be computed"
    have, needed = _have(metric), int(metric.get("n_needed") or 0)
    if have < needed:
        return f"{name} has {have} of the {needed} {_UNITS.get(str(name), 'records')} needed"
    return f"{name}: {str(metric.get('reason') or '').split(' (')[0].rstrip('.')}"


def _look_words(look: Mapping[str, Any] | None) -> str:
    look = look or {}
    elapsed = look.get("elapsed_s")
    after = f" after {elapsed:.0f} s of canary" if isinstance(elapsed, (int, float)) else ""
    if look.get("final"):
        return f"final look{after}, records complete"
    info = look.get("information_fraction")
    at = f"interim look at {elapsed:.0f} s" if isinstance(elapsed, (int, float)) else "interim look"
    return at + (f", information fraction {info:.2f}" if isinstance(info, (int, float)) else "")


def render_report(report: Mapping[str, Any], width: int = 80) -> str:
    """The whole report as text, no line longer than `width`."""
    out: list[str] = []
    where = ", ".join(str(x) for x in (report.get("environment"), report.get("region")) if x)
    title = f"CANARY REPORT  {report.get('stack') or report.get('source') or ''}"
    title += f" ({where})" if where else ""
    out.append(_fit(f"{title}  {_when(report.get('generated_at'), date=True)}", width))
    out.append("=" * width)
    outcome = report.get("outcome") or {}
    stage = STAGE_WORDS.get(str(outcome.get("stage")))
    out.append(f"Outcome: {outcome.get('state', 'UNKNOWN')}" + (f"  (decided by {stage})" if stage else ""))
    out += _wrap(reasons_in_words(str(outcome.get("reason") or "")), width, "  ")
    out += _deployment(report.get("deployment"), width)
    out += _pretraffic(report.get("pretraffic"), width)
    out += _alarms(report.get("alarms"), width)
    gate, judge = report_gate(report), report.get("judge")
    out += _gate(gate, width)
    if isinstance(judge, Mapping) and judge.get("schema") == EVIDENCE_SCHEMA:
        gated = bool(gate and gate.get("report"))
        if not (gated and gate["report"] is judge):  # the rehearsal's judge may be the gate's look
            out += ["", "Canary judge (its latest look; each minute during the canary)"]
            # Under a gate's final look (in full above) the judge's interim look is shown in short.
            out += _evidence(judge, width, full=not gated)
    else:
        out += _no_evidence_judge(judge, width)
    for note in report.get("notes") or ():
        out += _wrap(f"Note: {reasons_in_words(str(note))}", width, "", "  ")
    # Tables are laid out for 80 columns; anything wider than `width` is cut with an ellipsis.
    return "\n".join(_fit(line.rstrip(), width) for line in out) + "\n"


def report_gate(report: Mapping[str, Any]) -> dict[str, Any] | None:
    """The gate's part of a report: its "gate" key, or the rehearsal's evidence.gate (whose final
    look is the report's judge)."""
    gate = report.get("gate")
    if gate is None:
        gate = (
            (report.get("evidence") or {}).get("gate")
            if isinstance(report.get("evidence"), Mapping)
            else None
        )
        judge = report.get("judge")
        if (
            isinstance(gate, Mapping)
            and isinstance(judge, Mapping)
            and (judge.get("look") or {}).get("final")
        ):
            gate = {**gate, "report": judge}
    return dict(gate) if isinstance(gate, Mapping) else None


def gate_from_record(record: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The report's "gate" from the gate's "posttraffic gate" log record (canary.gate.handle logs
    status, reason and outcome: GateOutcome.as_dict(), None when it could not judge)."""
    if not isinstance(record, Mapping):
        return None
    outcome = record.get("outcome") if isinstance(record.get("outcome"), Mapping) else {}
    gate: dict[str, Any] = {
        "report": None,
        "window": None,
        "records_complete": None,
        "latency_reference": None,
    }
    gate.update(outcome)
    gate["status"] = record.get("status") or ("Succeeded" if outcome.get("succeeded") else "Failed")
    gate["succeeded"] = gate["status"] == "Succeeded"
    gate["reason"] = record.get("reason") or outcome.get("reason")
    gate["logged_at"] = record.get("timestamp")
    return gate


def _gate(gate: Mapping[str, Any] | None, width: int) -> list[str]:
    if not gate:
        return []
    window = gate.get("window") or {}
    head = f"PostTraffic gate: {gate.get('status', '?')}"
    if window.get("baseline_version") is not None:
        head += f"  (versions {window.get('baseline_version')} -> {window.get('canary_version')})"
    lines = ["", _fit(head, width)]
    lines += _wrap(reasons_in_words(str(gate.get("reason") or "")), width, "  ")
    facts = []
    if window.get("start") is not None:
        end = window.get("end")
        span = f" ({end - window['start']:.0f} s)" if isinstance(end, (int, float)) else ""
        facts.append(f"canary window {_when(window['start'])} -> {_when(end) if end else '?'}{span}")
    if gate.get("records_complete") is not None:
        complete = "yes" if gate["records_complete"] else "NO (the gate ran out of time)"
        facts.append(f"records complete: {complete}")
    if gate.get("latency_reference") is not None:
        facts.append(f"latency reference x{gate['latency_reference']:.3f} (measured by the PreTraffic hook)")
    if facts:
        lines += _wrap("; ".join(facts) + ".", width, "  ")
    report = gate.get("report")
    if report:
        said = str(report.get("reason") or "") in str(gate.get("reason") or "")
        lines += _evidence(report, width, full=True, versions=window, reason=not said)
    else:
        lines += _wrap(
            "No judge report: the gate could not judge the canary (its reason above).", width, "  "
        )
    return lines


def _evidence(
    report: Mapping[str, Any],
    width: int,
    *,
    full: bool,
    versions: Mapping[str, Any] | None = None,
    reason: bool = True,
) -> list[str]:
    """An evidence report (canary-evidence/1): the look, the verdict and its reason; in full also the
    evidence per version and source and every metric with its test, numbers and checks."""
    lines = [""]
    lines += _wrap(f"{report.get('verdict', '?')} at the {_look_words(report.get('look'))}.", width, "  ")
    look = report.get("look") or {}
    if look.get("alpha_look") is not None:
        lines += _wrap(
            f"This look's alpha {_p(look['alpha_look'])} ({look.get('method') or 'spending over looks'}).",
            width,
            "  ",
        )
    if reason:  # (the gate's reason quotes it)
        lines += _wrap(report.get("reason"), width, "  ")
    routing = report.get("routing") or {}
    if routing.get("canary_weight") is not None:
        lines += _wrap(
            f"Canary version {routing.get('canary_version')} gets {routing['canary_weight']:.0%} of live "
            f"traffic; baseline version {routing.get('baseline_version')}.",
            width,
            "  ",
        )
    reference = report.get("latency_reference")
    if isinstance(reference, Mapping):
        ratio = reference.get("ratio")
        said = f"x{ratio:.3f}" if isinstance(ratio, (int, float)) else "none"
        lines += _wrap(f"Latency reference: {said} ({reference.get('source') or '?'}).", width, "  ")
    if full:
        lines += _evidence_groups(report.get("groups") or {}, routing or versions or {}, width)
    lines += _evidence_metrics(report.get("metrics") or [], width, full=full)
    dropped = {k: v for k, v in (report.get("dropped") or {}).items() if v}
    if dropped:
        lines += _wrap("Left out: " + ", ".join(f"{v} {k}" for k, v in dropped.items()) + ".", width, "  ")
    return lines


def _evidence_groups(groups: Mapping[str, Any], routing: Mapping[str, Any], width: int) -> list[str]:
    """Per version, per source apart (live, probe) and all: n, 5xx, latency percentiles, label
    shares. A per-source part the report does not carry shows as "-"."""
    heads = "".join(f"{h:>8}" for _, h in LABEL_HEADINGS)
    lines = [
        "",
        f"  {'version':<9}{'source':<7}{'n':>6}{'5xx':>6}{'p50 ms':>8}{'p90 ms':>8}{'p99 ms':>8}{heads}",
    ]
    for group in GROUPS:
        side = groups.get(group)
        if not isinstance(side, Mapping):
            continue
        version = routing.get(f"{group}_version")
        names = [group, f"{side.get('model_version', '?')}" + (f" ver {version}" if version else ""), ""]
        requests, errors = side.get("requests") or {}, side.get("errors") or {}
        by_source = side.get("by_source") or {}
        rows = []
        for source in SOURCES:
            part = by_source.get(source) or {}
            latency = part.get("latency_ms") or (side.get("live_latency_ms") if source == "live" else None)
            rows.append((source, requests.get(source), errors.get(source), latency, _shares(part)))
        total = sum(int(v or 0) for v in requests.values())
        rows.append(
            ("all", total, sum(int(v or 0) for v in errors.values()), side.get("latency_ms"), _shares(side))
        )
        for name, (source, n, e, latency, shares) in zip(names + [""] * 3, rows, strict=False):
            latency = latency or {}
            row = f"  {name:<9}{source:<7}{_int(n):>6}{_int(e):>6}"
            row += "".join(f"{_ms(latency.get(q)):>8}" for q in ("p50", "p90", "p99"))
            row += "".join(f"{_pct(shares.get(k)):>8}" for k, _ in LABEL_HEADINGS)
            lines.append(_fit(row, width))
    note = "n: answers; 5xx: of them; latency: of the answers without a 5xx; shares: of the served labels."
    if not any(isinstance(g, Mapping) and g.get("by_source") for g in groups.values()):
        # The evidence judge's groups (canary.evidence._summaries) carry no per-source latency or
        # label counts yet: say so rather than leave on-call guessing what "-" means.
        note += " This report carries latency for all sources together and no label shares."
    return lines + _wrap(note, width, "  ")


def _shares(part: Mapping[str, Any]) -> dict[str, Any]:
    """Label shares of a group or source: given, or from its label counts; {} when it has neither."""
    if isinstance(part.get("label_shares"), Mapping):
        return dict(part["label_shares"])
    labels = part.get("labels")
    if isinstance(labels, Mapping):
        total = sum(int(v or 0) for v in labels.values())
        return {k: (int(v or 0) / total if total else None) for k, v in labels.items()}
    return {}


def _evidence_metrics(metrics: Sequence[Mapping[str, Any]], width: int, *, full: bool) -> list[str]:
    head = f"  {'metric':<16}{'result':<7}{'n base/canary':>14}{'statistic':>10}"
    head += f"{'p-value':>9}{'alpha':>9}{'effect':>9}"
    lines = ["", head]
    for m in metrics:
        n = f"{_int(m.get('n_baseline'))}/{_int(m.get('n_canary'))}"
        row = f"  {str(m.get('name', '')):<16}{str(m.get('classification', '')):<7}{n:>14}"
        row += f"{_num(m.get('statistic')):>10}{_p(m.get('p_value')):>9}{_p(m.get('alpha')):>9}"
        lines.append(_fit(row + f"{_num(m.get('effect')):>9}", width))
    if not full:
        return lines
    for m in metrics:
        lines.append("")
        crit = "" if m.get("critical", True) else ", not critical"
        lines += _wrap(
            f"{m.get('name')} ({m.get('classification')}{crit}): {m.get('test')}; "
            f"effect = {m.get('effect_name')}.",
            width,
            "  ",
            "    ",
        )
        for check in evidence_checks(m):
            mark = " *" if check["decided"] else ""
            lines += _wrap(f"{check['check']:<13}{check['text']}{mark}", width, "    ", " " * 17)
        lines += _wrap(m.get("reason"), width, "    ")
        examples = (m.get("details") or {}).get("examples") or []
        if examples:
            said = "; ".join(f"{e[0]}: expected {e[1]}, answered {e[2]}" for e in examples if len(e) == 3)
            lines += _wrap(f"e.g. {said}.", width, "    ", "      ")
    lines.append("")
    lines += _wrap(
        "Each metric: min n is the n it needs to pass (else NoData: INCONCLUSIVE, never PASS); "
        "it fails only when significant at this look's Holm level AND its effect reaches the floor "
        "(probe_agreement: a rule, no p-value). * marks the checks that decided.",
        width,
        "  ",
    )
    return lines


def evidence_checks(metric: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every check of an evidence metric (canary.evidence.MetricResult.as_dict()) with what was seen
    against its floor or minimum n, and which decided its classification (evidence._classify_one's
    order: a missing input, a broken rule, significant AND harmful, too little n, not significant,
    below the effect floor)."""
    name, cls = str(metric.get("name")), str(metric.get("classification"))
    details = metric.get("details") or {}
    have, needed = _have(metric), int(metric.get("n_needed") or 0)
    p, alpha = metric.get("p_value"), metric.get("alpha")
    floor_text, harmful = _floor_check(name, metric)
    significant = (cls == "High" and p is not None) or (
        cls == "Pass" and str(metric.get("reason") or "").startswith("Significant")
    )
    pending = cls == "NoData" and have >= needed
    checks = []
    if name == "latency" and "expected_ratio" in details and details.get("expected_ratio") is None:
        checks.append(_check("input", "no latency reference from the PreTraffic hook yet", False, pending))
    elif pending:
        checks.append(_check("input", "a needed input is missing (see the reason)", False, True))
    unit = _UNITS.get(name, "records")
    checks.append(
        _check("min n", f"{have} {'>=' if have >= needed else '<'} {needed} {unit}", have >= needed,
               cls == "NoData" and not pending)
    )  # fmt: skip
    if p is not None:
        op = "<=" if (p <= alpha if alpha is not None else False) else ">"
        text = f"p {_p(p)} {op} alpha {_p(alpha)}" + (
            " (Holm: not reached)" if op == "<=" and not significant else ""
        )
        decided = cls == "High" or (cls == "Pass" and not significant)
        checks.append(_check("significance", text, significant, decided))
    elif name == "probe_agreement":
        checks.append(_check("significance", "none needed (a rule on deterministic models)", None, False))
    if floor_text:
        decided = cls == "High" or (cls == "Pass" and (significant or name == "probe_agreement"))
        checks.append(_check("effect floor", floor_text, harmful, decided))
    return checks


def checked(part: Any) -> Any:
    """A copy of one evidence report (the judge's or the gate's look) whose metrics carry their
    "checks" and "decided_by"; anything else as it is."""
    if not (isinstance(part, Mapping) and part.get("schema") == EVIDENCE_SCHEMA):
        return part
    out = copy.deepcopy(dict(part))
    for metric in out.get("metrics") or []:
        metric["checks"] = evidence_checks(metric)
        metric["decided_by"] = [c["check"] for c in metric["checks"] if c["decided"]]
    return out


def _check(kind: str, text: str, passed: bool | None, decided: bool) -> dict[str, Any]:
    return {"check": kind, "text": text, "reached": passed, "decided": decided}


def _have(metric: Mapping[str, Any]) -> int:
    """The n compared with the metric's minimum (canary.evidence.Metric.have)."""
    nb, nc = int(metric.get("n_baseline") or 0), int(metric.get("n_canary") or 0)
    return nc if metric.get("name") == "probe_agreement" else min(nb, nc)


def _floor_check(name: str, metric: Mapping[str, Any]) -> tuple[str | None, bool | None]:
    """The effect against its floor in words, and whether it reaches it (the harmful side)."""
    effect, floor = metric.get("effect"), metric.get("floor")
    details = metric.get("details") or {}
    if name == "probe_agreement":
        k = int(details.get("mismatches", metric.get("statistic") or 0))
        allowed = int(floor or 0)
        return f"{k} mismatching answers {'>' if k > allowed else '<='} {allowed} allowed", k > allowed
    if effect is None or floor is None:
        return (
            f"{metric.get('effect_name')}: none yet, floor {floor:g}" if floor is not None else None
        ), None
    if name == "latency":
        return f"x{effect:.3f} {'>' if effect > floor else '<='} {floor:g} tolerated", effect > floor
    if name == "errors":
        return f"excess {effect:+.2%} {'>=' if effect >= floor else '<'} {floor:+.2%}", effect >= floor
    if name == "paired_labels":
        label = details.get("label")
        rd = ((details.get("per_label") or {}).get(label) or {}).get("risk_difference")
        towards = f" ({rd:+.3f} to {label})" if isinstance(rd, (int, float)) else ""
        return f"TVD {effect:.4f} {'>=' if effect >= floor else '<'} {floor:g}{towards}", effect >= floor
    return f"{metric.get('effect_name')} {_num(effect)} vs floor {_num(floor)}", effect >= floor


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
        _fit(f"Pre-traffic hook: {hook.get('status')} ({hook.get('sent', 0)} known-answer requests)", width),
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


def _no_evidence_judge(judge: Any, width: int) -> list[str]:
    """The judge's part when it holds no evidence report: none logged, or one of another schema."""
    lines = ["", "Canary judge"]
    if not judge:
        return lines + ["  no verdict logged in this window"]
    schema = judge.get("schema") if isinstance(judge, Mapping) else None
    return lines + _wrap(
        f"a report of schema {schema or 'unknown'} (not {EVIDENCE_SCHEMA}): not rendered; --json shows it",
        width,
        "  ",
    )


# --------------------------------------------------------------------------- alarms in words


def short_names(names: Sequence[str]) -> dict[str, str]:
    """Alarm names without the prefix they all share ("hate-speech-prod-canary-errors" ->
    "canary-errors"), for progress lines and chart labels."""
    if len(names) < 2:
        return {n: n for n in names}
    parts = [n.split("-") for n in names]
    common = 0
    while all(len(p) > common + 1 and p[common] == parts[0][common] for p in parts):
        common += 1
    return {n: "-".join(p[common:]) for n, p in zip(names, parts, strict=True)}


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


def _int(x: Any) -> str:
    return "-" if x is None else f"{int(x)}"


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
