"""`python -m emulator rehearse`: a whole canary rollout, offline, in well under a minute.

    python -m emulator rehearse [--baseline v1] [--canary v2] [--fault SPEC ...] [--speed 10]
                                [--seed 7] [--rate 200] [--env prod] [--json] [--html PATH]

It starts the local stack as the chosen samconfig environment deploys it (default prod: the
rollout `make rollout MODEL=v2 ENV=prod` would start), with the baseline model live on
function version 1 and the canary model on version 2 (faults injected into the canary only),
replays the test split through the gateway over real HTTP with the API key, and lets the
deployment controller (emulator.controller) run the template's DeploymentPreference on a
clock `--speed` times faster than real: the PreTraffic hook, the canary step with the judge
and the alarms every compressed minute, then promotion or rollback. Progress goes to stderr
as it happens; the on-call report (canary.render, as `make report` prints it) or, with
--json, the report dict goes to stdout; an HTML page with charts goes to --html.

Exit status: 0 promoted, 3 rolled back or blocked, 2 usage error (bad flag, unknown model,
bad fault, data missing, a Python without the function's dependencies), 1 the local stack
itself failed (a lost request, a 5xx of its own), 4 no verdict: the replayed traffic died or
stalled, so the deployment was stopped (ABORTED) rather than judged on missing evidence.

The compressed minutes are paced by the traffic: each lasts until the requests planned for it
have been answered, so a busy machine makes the rehearsal longer, not its evidence thinner.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from canary.config import ConfigError, HookConfig, JudgeLambdaConfig
from canary.manifests import ManifestError, load_manifests
from canary.records import LABELS, RecordStore, RequestRecord
from canary.render import REPORT_SCHEMA, render_report
from canary.stats import quantile
from emulator.controller import (
    ABORTED,
    BLOCKED,
    PROMOTED,
    ROLLED_BACK,
    AlarmRule,
    Controller,
    Deployment,
    plan_for,
)
from emulator.faults import FaultError, Faults, parse
from emulator.report_html import render_html
from emulator.settings import (
    DEFAULT_SAMCONFIG,
    DEFAULT_TEMPLATE,
    LOCAL_ACCOUNT,
    ROOT,
    SettingsError,
    load_settings,
)
from emulator.traffic import Traffic, TrafficPlan

EXIT_PROMOTED, EXIT_INTERNAL, EXIT_USAGE, EXIT_NOT_PROMOTED, EXIT_NO_VERDICT = 0, 1, 2, 3, 4
BASELINE_VERSION, CANARY_VERSION = "1", "2"  # Lambda version numbers of the two models
HISTOGRAM_BINS = 36


class UsageError(ValueError):
    """A rehearsal that cannot start as asked; the message says what to change."""


class TrafficFailed(RuntimeError):
    """The replayed traffic never got going (its process died or got no answer): no rehearsal."""


@dataclass(frozen=True)
class Options:
    """One rehearsal, as asked for on the command line."""

    baseline: str = "v1"  # model live before the deployment (function version 1)
    canary: str = "v2"  # model the deployment rolls out (function version 2)
    faults: tuple[str, ...] = ()  # fault specs injected into the canary's environment only
    speed: float = 10.0  # time compression: one compressed minute lasts 60 / speed wall seconds
    seed: int = 7  # order of the replayed texts, the alias's routing draws, the fault draws
    rate: float = 200.0  # replayed requests per wall second
    env: str = "prod"  # samconfig environment whose settings the stack takes
    data: Path | None = None  # labelled CSV (default: $HATE_DATA, else ../shared/data)
    models_dir: Path = ROOT / "models"  # folder holding models/<version>
    template: Path = DEFAULT_TEMPLATE  # the SAM template read for the settings
    samconfig: Path = DEFAULT_SAMCONFIG  # the samconfig read for the environment
    after_s: float = 2.0  # wall seconds of traffic kept flowing after the decision


@dataclass
class Rehearsal:
    """What one rehearsal produced."""

    options: Options  # what was asked for
    deployment: Deployment  # what the controller did, with its timeline
    report: dict[str, Any]  # the report dict (canary-report/1 plus the rehearsal's keys), as --json prints
    html: str  # the HTML page
    exit_status: int  # 0 promoted, 3 rolled back or blocked, 1 the local stack broke a promise, 4 no verdict
    problems: list[str] = field(default_factory=list)  # broken promises of the local stack itself


# --------------------------------------------------------------------------- setup


def _texts(options: Options) -> tuple[list[str], list[dict[str, str]]]:
    """The test split's texts, shuffled by seed, and the golden set ({"text", "label"} rows)."""
    from training.data import golden_set, load

    try:
        dataset = load(options.data)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    texts = [row.text for row in dataset.test]
    random.Random(options.seed).shuffle(texts)
    golden = [{"text": r.text, "label": LABELS[r.label]} for r in golden_set(dataset)]
    return texts, golden


def _check(options: Options, settings: Any, manifests: dict[str, Any]) -> None:
    """Refuse, before anything starts, a rehearsal that cannot run as asked."""
    for role, version in (("baseline", options.baseline), ("canary", options.canary)):
        if version not in manifests:
            known = ", ".join(sorted(manifests)) or "none"
            raise UsageError(
                f"--{role} {version}: no model {version} in {options.models_dir} (models: {known})"
            )
    if not math.isfinite(options.speed) or not 0.1 <= options.speed <= 600:
        raise UsageError(f"--speed {options.speed:g}: use a compression between 0.1 and 600 (default 10)")
    if not math.isfinite(options.rate) or not 1 <= options.rate <= 2000:
        raise UsageError(f"--rate {options.rate:g}: use between 1 and 2000 requests per second")
    if settings.rate_limit is not None and options.rate > settings.rate_limit:
        raise UsageError(
            f"--rate {options.rate:g} is over the usage plan's throttle of {settings.rate_limit:g} req/s "
            f"in environment {options.env!r} ({settings.samconfig_path.name}); lower --rate or rehearse "
            "--env prod"
        )
    plan = plan_for(settings.deployment_type)
    expected = options.rate * (plan.minutes * 60.0 / options.speed + options.after_s + 5.0)
    if settings.quota_limit is not None and expected > settings.quota_limit:
        raise UsageError(
            f"this rehearsal would send about {expected:.0f} requests, over the usage plan's quota of "
            f"{settings.quota_limit} in environment {options.env!r}: raise --speed, lower --rate, "
            "or rehearse another --env"
        )
    if not settings.pre_traffic_hook:
        raise UsageError(f"{settings.template_path.name}: the inference function has no PreTraffic hook")


OVERRIDE_PREFIXES = ("JUDGE_", "HOOK_")  # thresholds a caller may try out, as `sam local --env-vars` would


def overrides(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """JUDGE_* and HOOK_* variables of the caller's environment: what-if thresholds for the judge
    and the hook, applied over the template's (and said so in the report)."""
    env = os.environ if environ is None else environ
    return {k: v for k, v in sorted(env.items()) if k.startswith(OVERRIDE_PREFIXES)}


def _hook_config(settings: Any, options: Options, golden: Path, extra: Mapping[str, str]) -> HookConfig:
    """The hook function's environment from the template, with what CloudFormation and the build
    would fill in for this deployment: the new version's ARN, its model, the golden set."""
    fn = settings.functions[settings.pre_traffic_hook]
    function = f"arn:aws:lambda:{settings.region}:{LOCAL_ACCOUNT}:function:{settings.inference.name}"
    env = {
        **fn.environment,
        **{k: v for k, v in extra.items() if k.startswith("HOOK_")},
        "NEW_VERSION_ARN": f"{function}:{CANARY_VERSION}",
        "MODEL_VERSION": options.canary,
        "GOLDEN_PATH": str(golden),
        "MODELS_DIR": str(options.models_dir),
    }
    return HookConfig.from_env(env)


def _judge_config(settings: Any, extra: Mapping[str, str]) -> JudgeLambdaConfig:
    """The scheduled judge's environment from the template (thresholds, window, looks)."""
    judge_fn = next(
        (f for f in settings.functions.values() if f.handler == "canary.judge_lambda.lambda_handler"), None
    )
    env = dict(judge_fn.environment) if judge_fn else {}
    env.setdefault("FUNCTION_NAME", settings.inference.name)
    env.update({k: v for k, v in extra.items() if k.startswith("JUDGE_")})
    return JudgeLambdaConfig.from_env(env)


# --------------------------------------------------------------------------- the run


def rehearse(options: Options, progress: Callable[[str], None] | None = None) -> Rehearsal:
    """Run one rehearsal; raises UsageError before starting anything when it cannot run."""
    from emulator.functions import Alias, FunctionVersion
    from emulator.gateway import Gateway, generate_api_key

    say = progress or (lambda _line: None)
    wall0 = time.monotonic()

    def line(text: str) -> None:
        say(f"[{time.monotonic() - wall0:5.1f}s] {text}")

    try:
        faults = parse(options.faults)
        settings = load_settings(options.template, options.samconfig, env=options.env)
        manifests = load_manifests(options.models_dir)
        plan = plan_for(settings.deployment_type)
    except (FaultError, SettingsError, ManifestError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    _check(options, settings, manifests)
    texts, golden_rows = _texts(options)

    with tempfile.TemporaryDirectory(prefix="rehearsal-") as tmp:
        golden = Path(tmp) / "golden.jsonl"
        golden.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in golden_rows), "utf-8")
        what_if = overrides()
        try:
            hook_config = _hook_config(settings, options, golden, what_if)
            judge_lambda = _judge_config(settings, what_if)
        except ConfigError as exc:
            raise UsageError(f"{settings.template_path.name}: {exc}") from None
        store = RecordStore(Path(tmp) / "records.sqlite")
        api_key = generate_api_key()
        baseline = FunctionVersion(
            BASELINE_VERSION,
            options.baseline,
            models_dir=options.models_dir,
            settings=settings,
            seed=options.seed,
        )
        canary = FunctionVersion(
            CANARY_VERSION,
            options.canary,
            faults=faults.specs,
            models_dir=options.models_dir,
            settings=settings,
            seed=options.seed,
        )
        # Both versions are published before the deployment; the canary gets no traffic until the shift.
        alias = Alias("live", baseline, canary, weight=0.0, seed=options.seed)
        # Quiet about 5xx: a rehearsal's are the faults it injects, and its report counts them.
        gateway = Gateway(settings, alias, api_key, store, error_log=None)
        traffic: Traffic | None = None
        try:
            gateway.start()  # starts both execution environments first (their init, in parallel)
            _check_started(baseline, canary)
            line(
                f"local stack ({settings.stack_name}, samconfig env {options.env}): gateway {gateway.url}; "
                f"version {BASELINE_VERSION} = {options.baseline} (init {_ms(baseline.init_ms)}), "
                f"version {CANARY_VERSION} = {options.canary} (init {_ms(canary.init_ms)}), "
                f"faults in the canary: {faults.describe()}"
            )
            if what_if:
                line(
                    "what-if thresholds from the environment, over the template's: "
                    + ", ".join(f"{k}={v}" for k, v in what_if.items())
                )
            route = settings.routes[0]
            traffic = Traffic(
                TrafficPlan(
                    url=f"{gateway.url}{route.path}", api_key=api_key, texts=tuple(texts), rate=options.rate
                )
            )
            traffic.start()
            if not traffic.wait_for(answered=1, timeout_s=30.0):
                why = traffic.failure() or "got no answer from the gateway within 30 s"
                raise TrafficFailed(f"the traffic generator {why}: nothing was rehearsed")
            line(
                f"traffic: {len(texts)} test-split texts, shuffled (seed {options.seed}), "
                f"at {options.rate:g} "
                f"req/s over HTTP with the API key; all of it to version {BASELINE_VERSION} until the shift"
            )
            stop = threading.Event()

            def on_event(entry: dict[str, Any]) -> None:
                counts = traffic.counts() if traffic else {}
                entry["traffic"] = counts
                line(f"{_clock(entry['t_sim_s'])} {entry['message']}" + _counts(entry))

            controller = Controller(
                alias=alias,
                baseline=baseline,
                canary=canary,
                plan=plan,
                alarms=[AlarmRule.from_settings(a) for a in settings.alarms],
                store=store,
                manifests=manifests,
                hook_config=hook_config,
                judge_config=judge_lambda.judge,
                judge_window_minutes=judge_lambda.window_minutes,
                hook_timeout_s=settings.functions[settings.pre_traffic_hook].timeout_s,
                speed=options.speed,
                deployment_id=f"d-REHEARSAL{options.seed}",
                on_event=on_event,
                stop=stop,
                flush=gateway.flush,
                traffic=traffic,
                # Past the traffic's own per-request timeout: a slow canary is not a stalled generator.
                stall_s=traffic.plan.timeout_s + 5.0,
            )
            try:
                deployment = controller.run()
            except KeyboardInterrupt:
                stop.set()
                alias.set_routing(None, 0.0)
                raise
            time.sleep(max(0.0, options.after_s))
            controller.note(
                "traffic-stopped",
                f"replayed traffic stopped; {deployment.weight:.0%} of it was going to "
                f"version {CANARY_VERSION}",
            )
            summary = traffic.stop()
            traffic = None
            gateway.flush()
            records = store.window(0.0, time.time() + 60.0)
        finally:
            if traffic is not None:
                traffic.stop()
            for part in (gateway, baseline, canary):
                try:
                    part.stop()
                except Exception as exc:  # one part failing to stop must not hide the others
                    say(f"warning: stopping {type(part).__name__} failed: {type(exc).__name__}: {exc}")
    report, problems = build_report(
        options, settings, deployment, records, summary, faults, cold_starts=(baseline, canary)
    )
    if what_if:
        report["rehearsal"]["overrides"] = what_if
        report["notes"].insert(
            1,
            "What-if thresholds from the caller's environment replaced the template's: "
            + ", ".join(f"{k}={v}" for k, v in what_if.items())
            + ". The deployed judge and hook use the template's.",
        )
    line(f"decided: {deployment.outcome} at {deployment.stage}; {len(records)} requests recorded")
    status = EXIT_PROMOTED if deployment.outcome == PROMOTED else EXIT_NOT_PROMOTED
    if problems:
        status = EXIT_INTERNAL
    if deployment.outcome == ABORTED:  # the evidence failed: nothing to say about the canary or the stack
        status = EXIT_NO_VERDICT
    return Rehearsal(options, deployment, report, render_html(report), status, problems)


def _check_started(*versions: Any) -> None:
    """Refuse, before any traffic, a version whose handler could not be imported: this Python
    lacks the function's dependencies, and every request would be a 502."""
    for version in versions:
        error = version.init_error
        if not error:
            continue
        if error.get("missingModule"):
            raise UsageError(
                f"function version {version.function_version} ({version.model_version}) cannot start: "
                f"{version.python} has no module '{error['missingModule']}' (the function's dependencies "
                "are not installed for this Python); run `make demo`, or use .venv/bin/python -m emulator "
                "rehearse"
            )
        raise UsageError(
            f"function version {version.function_version} ({version.model_version}) cannot start: "
            f"{error.get('errorMessage')}"
        )


# --------------------------------------------------------------------------- the report


def version_table(
    records: Sequence[RequestRecord], roles: dict[str, str], bins: int = HISTOGRAM_BINS
) -> list[dict[str, Any]]:
    """Per function version, over every request of the run: n, 5xx, latency percentiles and a
    log-spaced histogram (shared edges), label counts and shares."""
    by_version: dict[str, list[RequestRecord]] = defaultdict(list)
    for r in records:
        by_version[r.function_version].append(r)
    ok_latencies = [r.latency_ms for r in records if r.status < 500 and r.latency_ms > 0]
    edges: list[float] = []
    if ok_latencies:
        lo = 10 ** math.floor(math.log10(min(ok_latencies)))
        hi = 10 ** math.ceil(math.log10(max(ok_latencies) * 1.0001))
        if hi <= lo:
            hi = lo * 10
        step = (math.log10(hi) - math.log10(lo)) / bins
        edges = [10 ** (math.log10(lo) + i * step) for i in range(bins + 1)]
    table = []
    for version in sorted(by_version, key=lambda v: (roles.get(v, "z"), v)):
        rs = by_version[version]
        lat = sorted(r.latency_ms for r in rs if r.status < 500)
        labels = Counter(r.label for r in rs if r.label is not None and r.status < 500)
        labelled = sum(labels.values())
        counts = [0] * bins
        for x in lat:
            if edges and x > 0:
                i = int(
                    (math.log10(x) - math.log10(edges[0]))
                    / (math.log10(edges[-1]) - math.log10(edges[0]))
                    * bins
                )
                counts[min(max(i, 0), bins - 1)] += 1
        models = Counter(r.model_version for r in rs)
        table.append(
            {
                "role": roles.get(version, "other"),
                "function_version": version,
                "model_version": models.most_common(1)[0][0] if models else None,
                "requests": len(rs),
                "errors": sum(1 for r in rs if r.status >= 500),
                "error_rate": sum(1 for r in rs if r.status >= 500) / len(rs) if rs else None,
                "statuses": {str(k): v for k, v in sorted(Counter(r.status for r in rs).items())},
                "latency_ms": {
                    "p50": quantile(lat, 0.5) if lat else None,
                    "p90": quantile(lat, 0.9) if lat else None,
                    "p99": quantile(lat, 0.99) if lat else None,
                    "max": lat[-1] if lat else None,
                },
                "labels": {k: labels.get(k, 0) for k in LABELS},
                "label_shares": {k: (labels.get(k, 0) / labelled if labelled else None) for k in LABELS},
                "latency_histogram": {"edges": edges, "counts": counts},
            }
        )
    return table


def build_report(
    options: Options,
    settings: Any,
    deployment: Deployment,
    records: Sequence[RequestRecord],
    traffic: dict[str, Any],
    faults: Faults,
    cold_starts: Sequence[Any] = (),
) -> tuple[dict[str, Any], list[str]]:
    """The report dict (canary-report/1, plus the rehearsal's own keys) and any broken promise
    of the local stack (lost requests, 5xx the functions did not answer, a failing baseline)."""
    d = deployment
    roles = {d.baseline: "baseline", d.canary: "canary"}
    versions = version_table(records, roles)
    by_role = {v["role"]: v for v in versions}
    client_5xx = int(traffic.get("5xx", 0))
    function_5xx = sum(v["errors"] for v in versions)
    sent, answered, lost = (int(traffic.get(k) or 0) for k in ("sent", "answered", "lost"))
    in_flight = int(traffic.get("in_flight") or 0)
    died = traffic.get("died")
    problems = []
    if lost:
        problems.append(f"{lost} requests got no HTTP answer")
    # A dead generator's counters stop at its last report: the gateway answered more than it saw.
    if client_5xx != function_5xx and not died:
        problems.append(f"the gateway answered {client_5xx} 5xx but the functions only {function_5xx}")
    if by_role.get("baseline", {}).get("errors"):
        problems.append(f"the baseline answered {by_role['baseline']['errors']} requests with a 5xx")
    if sent != answered + lost + in_flight:
        problems.append(f"sent {sent} but answered {answered}, lost {lost} and {in_flight} in flight")
    if in_flight and not died:
        problems.append(f"{in_flight} requests were still unanswered when the traffic stopped waiting")
    canary_before_shift = sum(
        1
        for r in records
        if r.function_version == d.canary and (d.shift_started is None or r.timestamp < d.shift_started)
    )
    if canary_before_shift:
        problems.append(f"{canary_before_shift} user requests reached the canary before the shift")

    outcome_reason = {
        PROMOTED: "the canary passed the PreTraffic hook and every alarm; all traffic shifted to it",
        ROLLED_BACK: "an alarm fired during the canary step: traffic returned to the baseline",
        BLOCKED: "the PreTraffic hook failed: no user request reached the new version",
        ABORTED: "no verdict: the rehearsal's replayed traffic failed, so the deployment was stopped "
        "and traffic returned to the baseline; this says nothing about the canary (rehearse again)",
    }[d.outcome or ROLLED_BACK]
    judge = None
    if d.judge is not None:
        judge = d.judge.as_dict()
        judge["routing"] = {
            "function_name": settings.inference.name,
            "alias": settings.inference.alias or "live",
            "baseline_version": d.baseline,
            "canary_version": d.canary,
            "canary_weight": d.plan.steps[0].weight if d.plan.steps else 1.0,
        }
        judge["judged_at"] = d.looks[-1]["at"] if d.looks else None
    notes = [
        f"Rehearsal of {settings.stack_name} (samconfig env {options.env}) on the local stack: "
        f"{options.baseline} -> {options.canary}, {d.plan.name} at {options.speed:g}x speed "
        f"(one compressed minute = {60.0 / options.speed:.1f} s), faults in the canary: {faults.describe()}.",
        _traffic_note(traffic, function_5xx, len(records)),
    ]
    if d.outcome == PROMOTED and d.looks and d.looks[-1]["verdict"] == "INCONCLUSIVE":
        notes.append(
            "Promoted on an INCONCLUSIVE judge (too little evidence: a metric under its minimum "
            "samples, or a difference not yet significant), which no alarm acts on: the canary was not "
            "fully compared. Lower --speed or raise --rate for more evidence per minute."
        )
    notes += [f"LOCAL STACK PROBLEM: {p}" for p in problems]
    report = {
        "schema": REPORT_SCHEMA,
        "generated_at": d.completed or time.time(),
        "source": "local",
        "stack": settings.stack_name,
        "environment": f"{options.env} (rehearsal)",
        "region": "local",
        "outcome": {"state": d.outcome, "reason": outcome_reason},
        "stage": d.stage,
        "reasons": list(d.reasons),
        "deployment": {
            "id": d.id,
            "status": d.status,
            "created": d.started,
            "completed": d.completed,
            "error": None if d.outcome == PROMOTED else "; ".join(d.reasons),
            "error_code": {BLOCKED: "HOOK_EXECUTION_FAILURE", ROLLED_BACK: "ALARM_ACTIVE"}.get(
                d.outcome or ""
            ),
        },
        "pretraffic": d.hook.as_dict()
        if d.hook
        else ({"status": "Failed", "reason": d.hook_error} if d.hook_error else None),
        "alarms": [a.as_dict() for a in d.alarms],
        "judge": judge,
        "looks": d.looks,
        "versions": versions,
        "traffic": {
            **{
                k: traffic.get(k)
                for k in ("sent", "answered", "lost", "in_flight", "throttled", "5xx", "4xx")
            },
            "generator": f"died ({died})" if died else "ran to the end",
            "statuses": traffic.get("statuses"),
            "round_trip_ms": traffic.get("round_trip_ms"),
            # Unknown when the generator died: its counters stop at its last report.
            "gateway_5xx": None if died else client_5xx - function_5xx,
        },
        "timeline": [
            {
                k: e.get(k)
                for k in (
                    "t_sim_s",
                    "t_wall_s",
                    "kind",
                    "stage",
                    "weight",
                    "alarms",
                    "verdict",
                    "message",
                    "traffic",
                )
            }
            for e in d.timeline
        ],
        "rehearsal": {
            "baseline": options.baseline,
            "canary": options.canary,
            "faults": list(faults.specs),
            "speed": options.speed,
            "seed": options.seed,
            "rate": options.rate,
            "plan": d.plan.name,
            "latency_slo_ms": settings.latency_slo_ms,
            "cold_start_ms": {
                getattr(fv, "function_version", "?"): getattr(fv, "cold_start_ms", None) for fv in cold_starts
            },
            "wall_s": round((d.completed or time.time()) - d.started, 2) if d.started else None,
        },
        "notes": notes,
    }
    return report, problems


def _traffic_note(traffic: Mapping[str, Any], function_5xx: int, recorded: int) -> str:
    """The traffic's accounting in one sentence: every request sent is answered, lost, or was
    still in flight at the end (and, when the generator died, which of them it took along)."""
    sent, answered, lost = (int(traffic.get(k) or 0) for k in ("sent", "answered", "lost"))
    in_flight, client_5xx = int(traffic.get("in_flight") or 0), int(traffic.get("5xx") or 0)
    text = f"Traffic: {sent} requests sent over HTTP: {answered} answered, {lost} lost"
    if traffic.get("died"):
        return (
            f"{text}, {in_flight} in flight when the traffic generator died ({traffic['died']}; "
            f"counts as it last reported them, outcome of those in flight unknown); "
            f"{traffic.get('throttled')} throttled and retried. The gateway recorded {recorded} "
            f"requests reaching the functions ({function_5xx} of them 5xx)."
        )
    return (
        f"{text}, {in_flight} still in flight at the end; {traffic.get('throttled')} throttled and "
        f"retried; 5xx answered: {client_5xx} "
        f"(all from the functions: {'yes' if client_5xx == function_5xx else 'NO'})."
    )


# --------------------------------------------------------------------------- CLI


def _ms(x: float | None) -> str:
    return "?" if x is None else f"{x:.0f} ms"


def _clock(t_sim_s: float) -> str:
    minutes, seconds = divmod(int(round(t_sim_s)), 60)
    return f"t+{minutes}:{seconds:02d}"


def _counts(entry: dict[str, Any]) -> str:
    c = entry.get("traffic") or {}
    if entry.get("kind") not in ("minute", "end", "rollback", "aborted", "traffic-stopped"):
        return ""
    shown = ", ".join(f"{k} {c.get(k, 0)}" for k in ("sent", "answered", "5xx", "lost", "in_flight"))
    return f" [{shown}]"


def _slug(options: Options) -> str:
    parts = [f"rehearsal-{options.baseline}-{options.canary}"]
    for spec in options.faults:
        parts.append("".join(ch if ch.isalnum() else "-" for ch in spec).strip("-"))
    return "-".join(parts)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m emulator rehearse",
        description="Rehearse a canary rollout offline: the PreTraffic hook, the canary step with the "
        "judge and the alarms, then promotion or rollback, on a compressed clock.",
        epilog="Faults (canary only, repeatable): errors=P, latency=X, labels=LABEL:P, corrupt; add @N to "
        "errors/latency/labels to start them after the environment's first N invocations (the hook "
        "sends 300). Exit status: 0 promoted, 3 rolled back or blocked, 2 usage error, "
        "1 local stack failure, 4 no verdict (the replayed traffic died or stalled).",
    )
    defaults = Options()
    parser.add_argument("--baseline", default=defaults.baseline, help="model live before (default v1)")
    parser.add_argument("--canary", default=defaults.canary, help="model rolled out (default v2)")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="fault injected into the canary (repeatable)",
    )
    parser.add_argument(
        "--speed", type=float, default=defaults.speed, help="time compression (default 10: 5 minutes in 30 s)"
    )
    parser.add_argument(
        "--seed", type=int, default=defaults.seed, help="seed of traffic order, routing, faults"
    )
    parser.add_argument(
        "--rate", type=float, default=defaults.rate, help="requests per wall second (default 200)"
    )
    parser.add_argument(
        "--env", default=defaults.env, help="samconfig environment to rehearse (default prod)"
    )
    parser.add_argument(
        "--data", type=Path, default=None, help="labelled CSV (default $HATE_DATA or ../shared/data)"
    )
    parser.add_argument(
        "--models", type=Path, default=defaults.models_dir, help="models folder (default models/)"
    )
    parser.add_argument("--json", action="store_true", help="print the final report as JSON on stdout")
    parser.add_argument(
        "--html",
        type=Path,
        default=None,
        metavar="PATH",
        help="where to write the HTML report (default reports/rehearsal-<baseline>-<canary>[-<faults>].html)",
    )
    parser.add_argument("--no-html", action="store_true", help="write no HTML report")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on a usage error and 0 on --help
        return int(exc.code or 0)
    options = Options(
        baseline=args.baseline,
        canary=args.canary,
        faults=tuple(args.fault),
        speed=args.speed,
        seed=args.seed,
        rate=args.rate,
        env=args.env,
        data=args.data,
        models_dir=args.models,
    )

    html = None if args.no_html else (args.html or Path("reports") / f"{_slug(options)}.html")
    if html is not None:
        try:  # refuse an unwritable place now, not after the whole run
            html.parent.mkdir(parents=True, exist_ok=True)
            existed = html.exists()
            with open(html, "a", encoding="utf-8"):
                pass
            if not existed:
                html.unlink()
        except OSError as exc:
            print(f"error: --html {html}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_USAGE

    def progress(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    try:
        result = rehearse(options, None if args.quiet else progress)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except TrafficFailed as exc:
        print(f"error: no verdict: {exc}", file=sys.stderr)
        return EXIT_NO_VERDICT
    except KeyboardInterrupt:
        print("interrupted: the stack is stopped, traffic went back to the baseline", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(result.report, indent=2, default=str))
    else:
        print(render_report(result.report), end="")
    if html is not None:
        html.write_text(result.html, encoding="utf-8")
        print(f"HTML report: {html.resolve()}", file=sys.stderr)
    if result.deployment.outcome == ABORTED:
        print(
            f"error: no verdict: {result.deployment.reasons[-1]}. The canary was not judged and the "
            "local stack is not to blame: rehearse again.",
            file=sys.stderr,
        )
    for problem in result.problems:
        print(f"error: the local stack broke a promise: {problem}", file=sys.stderr)
    return result.exit_status


if __name__ == "__main__":
    sys.exit(main())
