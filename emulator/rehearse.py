"""`python -m emulator rehearse`: a whole canary rollout, offline, in well under a minute.

    python -m emulator rehearse [--baseline v1] [--canary v2] [--fault SPEC ...] [--speed 30]
                                [--traffic 5] [--mix LABEL=FACTOR ...] [--log-lag 120] [--seed 7]
                                [--env prod] [--json] [--html PATH] [--old-judge] [--then-rollback]

It starts the local stack as the chosen samconfig environment deploys it (default prod: the
rollout `make rollout MODEL=v2 ENV=prod` would start), with the baseline model live on
function version 1 and the canary model on version 2 (faults injected into the canary only),
builds what `sam build` ships the hook and the probe (training.golden), replays the test split
through the gateway over real HTTP with the API key at --traffic users' requests per real-world
second (the wall rate is traffic x speed; --mix reweights it by true label), and lets the
deployment controller (emulator.controller) run the template's DeploymentPreference on a clock
`--speed` times faster than real: the PreTraffic hook, the canary step with the probe
(emulator.window), the evidence judge and the alarms every compressed minute over records that
reach the judge after a log lag (emulator.store), then, after the last shift, the PostTraffic
gate, which waits for the window's late records and promotes only on PASS. Progress goes to
stderr as it happens; the on-call report (canary.render, as `make report` prints it) or, with
--json, the report dict goes to stdout; an HTML page with charts goes to --html. When the
manifests give no expected latency ratio, or with --old-judge, the judge of before issue 10
runs instead (no probe, no lag, no gate), and the progress and the report say so.

With --then-rollback, a deployment that ends PROMOTED is then rolled back by the controller of
`make rollback` (deploy.rollback.Rollback) through local stand-ins of its AWS clients
(emulator.local_aws) while the users' traffic keeps flowing; the report's "rollback" section gives
its phases and lines, the target version and model, the seconds from the command to the switch and
to the last answer of the version rolled back from, the 5xx after the command and the requests each
version served after the switch. The local stack has no CloudFormation: the stack update is recorded
("would update ModelVersion v2 -> v1") and the watch sees UPDATE_COMPLETE at once.

Exit status: 0 promoted, 3 rolled back or blocked, 2 usage error (bad flag, unknown model,
bad fault, data missing, a Python without the function's dependencies), 1 the local stack
itself failed (a lost request, a 5xx of its own), 4 no verdict: the replayed traffic died or
stalled, so the deployment was stopped (ABORTED) rather than judged on missing evidence,
5 promoted but the --then-rollback that followed failed.

The compressed minutes are paced by the traffic and the probe: each lasts until the requests
planned for it have been answered, so a busy machine makes the rehearsal longer, not its
evidence thinner.
"""

from __future__ import annotations

import argparse
import dataclasses
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
from canary.records import LABELS, RequestRecord
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
from emulator.store import DEFAULT_LAG_S, LaggedStore, LogLag
from emulator.traffic import Traffic, TrafficPlan
from emulator.window import ProbeRun, counts_by_source

EXIT_PROMOTED, EXIT_INTERNAL, EXIT_USAGE, EXIT_NOT_PROMOTED, EXIT_NO_VERDICT = 0, 1, 2, 3, 4
EXIT_ROLLBACK_FAILED = 5  # promoted, then --then-rollback did not end DONE
ROLLBACK_TAIL_S = 3.0  # wall seconds of users' traffic kept after --then-rollback, to see the switch
# A request the alias routed to the old version just before the switch is answered well within this;
# "served after the switch" counts the requests answered later than it.
SWITCH_SETTLE_S = 1.0
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
    speed: float = 30.0  # time compression: one compressed minute lasts 60 / speed wall seconds
    seed: int = 7  # order of the replayed texts, the alias's routing draws, the fault draws, the lag
    traffic: float = 5.0  # users' requests per real-world second (wall rate: traffic x speed)
    mix: tuple[tuple[str, float], ...] = ()  # (true label, factor): reweights the replayed split
    log_lag: float = DEFAULT_LAG_S  # median real-world seconds before a record reaches the judge
    rate: float | None = None  # deprecated: requests per wall second (= traffic x speed)
    # Issue 10's probe, evidence judge and PostTraffic gate; None: when the manifests are ready for
    # it (an expected latency ratio for the pair), else the judge of before with a note saying so.
    evidence: bool | None = None
    env: str = "prod"  # samconfig environment whose settings the stack takes
    data: Path | None = None  # labelled CSV (default: $HATE_DATA, else ../shared/data)
    models_dir: Path = ROOT / "models"  # folder holding models/<version>
    template: Path = DEFAULT_TEMPLATE  # the SAM template read for the settings
    samconfig: Path = DEFAULT_SAMCONFIG  # the samconfig read for the environment
    after_s: float = 2.0  # wall seconds of traffic kept flowing after the decision
    then_rollback: bool = False  # after PROMOTED, roll back with deploy.rollback over the local stack

    @property
    def wall_rate(self) -> float:
        """Replayed requests per wall second."""
        return self.rate if self.rate is not None else self.traffic * self.speed

    @property
    def real_rate(self) -> float:
        """Users' requests per real-world second."""
        return self.rate / self.speed if self.rate is not None else self.traffic


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


def _texts(options: Options) -> tuple[list[str], Any]:
    """The test split's texts in replay order (shuffled by seed; with a mix, drawn with each true
    label's factor as its weight), and the data set (the hook's and the probe's files are built
    from it as `sam build` does)."""
    from training.data import load

    try:
        dataset = load(options.data)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    rng = random.Random(options.seed)
    if options.mix:
        factors = dict(options.mix)
        weights = [factors.get(LABELS[row.label], 1.0) for row in dataset.test]
        texts = [row.text for row in rng.choices(dataset.test, weights=weights, k=len(dataset.test))]
    else:
        texts = [row.text for row in dataset.test]
        rng.shuffle(texts)
    return texts, dataset


def _build_hook_files(dataset: Any, folder: Path, models_dir: Path) -> Path:
    """What `sam build` puts in the hook's and the probe's packages (training.golden): the golden
    set, the known-answer texts, the probe set, and the behavioural suite next to them as the
    hook's build copies it (deploy/lambda.mk); returns the golden set's path."""
    import shutil

    from canary.suite_answers import PACKAGE_FILE
    from training.behaviour import DEFAULT_SUITE
    from training.golden import BuildError, write_hook_files

    golden = folder / "golden.jsonl"
    try:
        write_hook_files(dataset, golden, models_dir)
    except BuildError as exc:
        raise UsageError(f"the hook's files cannot be built: {exc}") from None
    shutil.copyfile(DEFAULT_SUITE, folder / PACKAGE_FILE)
    return golden


def _gate_config(settings: Any, extra: Mapping[str, str]) -> tuple[Any, float]:
    """The PostTraffic gate function's environment (GateConfig) and its Timeout, from the template."""
    from canary.config import GateConfig

    fn = next((f for f in settings.functions.values() if f.handler == "canary.gate.lambda_handler"), None)
    env = dict(fn.environment) if fn else {}
    env["FUNCTION_NAME"] = settings.inference.name
    env.update({k: v for k, v in extra.items() if k.startswith("GATE_")})
    return GateConfig.from_env(env), float(fn.timeout_s) if fn else 900.0


def parse_mix(specs: Sequence[str]) -> tuple[tuple[str, float], ...]:
    """--mix LABEL=FACTOR specs as (label, factor) pairs; UsageError on a bad one."""
    out: dict[str, float] = {}
    for spec in specs:
        label, eq, raw = str(spec).partition("=")
        label = label.strip().lower().replace(" ", "_").replace("-", "_")
        if not eq or label not in LABELS:
            raise UsageError(f"--mix {spec!r}: write LABEL=FACTOR with LABEL one of {', '.join(LABELS)}")
        try:
            factor = float(raw)
        except ValueError:
            raise UsageError(f"--mix {spec!r}: {raw!r} is not a number") from None
        if not math.isfinite(factor) or factor < 0 or label in out:
            raise UsageError(f"--mix {spec!r}: the factor must be a number >= 0, once per label")
        out[label] = factor
    if out and all(out.get(label, 1.0) == 0 for label in LABELS):
        raise UsageError("--mix leaves no text to replay (every label's factor is 0)")
    return tuple(out.items())


def _per_key_quota(options: Options, settings: Any) -> tuple[Any, str | None]:
    """The settings the gateway gets, and a note when the usage plan's quota was lifted. The quota
    is per API key (one consumer) per month; the replay stands for every user at --traffic, sent
    with one key, so when it would exceed one key's quota the rehearsal lifts it, and says so."""
    if settings.quota_limit is None:
        return settings, None
    plan = plan_for(settings.deployment_type)
    expected = options.wall_rate * ((plan.minutes * 60.0 + 660.0) / options.speed + options.after_s + 5.0)
    if expected <= settings.quota_limit:
        return settings, None
    note = (
        f"the replay (about {expected:.0f} requests with one API key) stands for many users: the usage "
        f"plan's quota of {settings.quota_limit} requests per key per {settings.quota_period.lower()} is "
        "lifted for it (its throttle still applies)"
    )
    return dataclasses.replace(settings, quota_limit=None), note


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
    if options.rate is not None and (not math.isfinite(options.rate) or not 1 <= options.rate <= 2000):
        raise UsageError(f"--rate {options.rate:g}: use between 1 and 2000 requests per second")
    if not math.isfinite(options.traffic) or not options.traffic >= 0.001:
        raise UsageError(f"--traffic {options.traffic:g}: use at least 0.001 requests per second")
    if options.wall_rate > 2000:
        raise UsageError(
            f"--traffic {options.traffic:g} at --speed {options.speed:g} is {options.wall_rate:g} requests "
            "per wall second, more than this machine's 2000: lower --speed or --traffic"
        )
    if not math.isfinite(options.log_lag) or not 0 <= options.log_lag <= 3600:
        raise UsageError(f"--log-lag {options.log_lag:g}: use between 0 and 3600 seconds")
    if settings.rate_limit is not None and options.wall_rate > settings.rate_limit:
        raise UsageError(
            f"{options.wall_rate:g} requests per wall second is over the usage plan's throttle of "
            f"{settings.rate_limit:g} req/s in environment {options.env!r} ({settings.samconfig_path.name}); "
            "lower --traffic or --speed, or rehearse --env prod"
        )
    if not settings.pre_traffic_hook:
        raise UsageError(f"{settings.template_path.name}: the inference function has no PreTraffic hook")


OVERRIDE_PREFIXES = (
    "JUDGE_",
    "HOOK_",
    "GATE_",
)  # thresholds a caller may try out, as `sam local --env-vars` would


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


def _evidence_ready(options: Options, manifests: Mapping[str, Any]) -> tuple[bool, str | None]:
    """Whether this rehearsal runs issue 10's evidence judge, probe and gate, and, when it falls
    back to the judge of before, why (said in the progress and the report)."""
    from canary.evidence import expected_latency_ratio

    if options.evidence is False:
        return False, "the judge of before issue 10 (--old-judge): no probe, no log lag, no PostTraffic gate"
    ratio = expected_latency_ratio(manifests, options.baseline, options.canary)
    if ratio is None and options.evidence is None:
        return False, (
            f"the manifests of {options.baseline} and {options.canary} give no expected latency ratio "
            "(manifest latency.ratio_to): the evidence judge could never PASS its latency metric, so this "
            "rehearsal uses the judge of before issue 10 (no probe, no log lag, no PostTraffic gate)"
        )
    return True, None


def _evidence_window(
    options: Options,
    settings: Any,
    manifests: Mapping[str, Any],
    plan: Any,
    faults: Faults,
    golden: Path,
    extra: Mapping[str, str],
) -> tuple[Any, Any, list[Any]]:
    """The evidence judge and PostTraffic gate of this deployment, the probe's plan and its texts
    (the probe set the build wrote next to the golden set)."""
    from canary.evidence import EvidenceConfig
    from canary.evidence import plan as evidence_plan
    from canary.probe import ProbeError, load_known_answers, load_probe_set
    from emulator.window import EvidenceWindow
    from training.golden import PROBE_TEXTS

    gate_config, gate_timeout = _gate_config(settings, extra)
    config = EvidenceConfig(window_s=plan.minutes * 60.0 if plan.steps else 60.0)
    try:
        known = load_known_answers(options.models_dir)
        texts = load_probe_set(golden.with_name(PROBE_TEXTS))
    except ProbeError as exc:
        raise UsageError(f"the probe cannot run: {exc}") from None
    window = EvidenceWindow(
        baseline_version=BASELINE_VERSION,
        canary_version=CANARY_VERSION,
        manifests=manifests,
        known_answers=known,
        gate_config=gate_config,
        gate_timeout_s=gate_timeout,
        config=config,
        crash=faults.judge_crash,
    )
    return window, evidence_plan(config), texts


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
    texts, dataset = _texts(options)
    settings, quota_note = _per_key_quota(options, settings)
    use_evidence, why_not = _evidence_ready(options, manifests)
    options = dataclasses.replace(options, evidence=use_evidence)
    lag = LogLag(options.log_lag if options.evidence else 0.0, seed=options.seed)

    with tempfile.TemporaryDirectory(prefix="rehearsal-") as tmp:
        golden = _build_hook_files(dataset, Path(tmp), options.models_dir)
        what_if = overrides()
        window = None
        try:
            hook_config = _hook_config(settings, options, golden, what_if)
            judge_lambda = _judge_config(settings, what_if)
            if options.evidence:
                window, probe_plan, texts_for_probe = _evidence_window(
                    options, settings, manifests, plan, faults, golden, what_if
                )
                # The hook's latency reference at the pace the probe will send at here: its wall
                # rate (the hook runs on the wall clock). Paced and back-to-back ratios differ.
                hook_config = dataclasses.replace(
                    hook_config, reference_rate=probe_plan.probe_rps * options.speed
                )
        except ConfigError as exc:
            raise UsageError(f"{settings.template_path.name}: {exc}") from None
        store = LaggedStore(Path(tmp) / "records.sqlite", lag=lag)
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
        rollback: dict[str, Any] | None = None
        try:
            gateway.start()  # starts both execution environments first (their init, in parallel)
            _check_started(baseline, canary)
            line(
                f"local stack ({settings.stack_name}, samconfig env {options.env}): gateway {gateway.url}; "
                f"version {BASELINE_VERSION} = {options.baseline} (init {_ms(baseline.init_ms)}), "
                f"version {CANARY_VERSION} = {options.canary} (init {_ms(canary.init_ms)}), "
                f"faults in the canary: {faults.describe()}"
            )
            if why_not:
                line(f"NOTE: {why_not}")
            if quota_note:
                line(f"NOTE: {quota_note}")
            if what_if:
                line(
                    "what-if thresholds from the environment, over the template's: "
                    + ", ".join(f"{k}={v}" for k, v in what_if.items())
                )
            if options.rate is not None:
                line(
                    f"--rate is deprecated: --rate {options.rate:g} (requests per wall second) is "
                    f"--traffic {options.real_rate:g} (per real-world second) at --speed {options.speed:g}"
                )
            route = settings.routes[0]
            traffic = Traffic(
                TrafficPlan(
                    url=f"{gateway.url}{route.path}",
                    api_key=api_key,
                    texts=tuple(texts),
                    rate=options.wall_rate,
                )
            )
            traffic.start()
            if not traffic.wait_for(answered=1, timeout_s=30.0):
                why = traffic.failure() or "got no answer from the gateway within 30 s"
                raise TrafficFailed(f"the traffic generator {why}: nothing was rehearsed")
            mix = ", ".join(f"{k} x{v:g}" for k, v in options.mix) or "as in the test split"
            line(
                f"traffic: {len(texts)} test-split texts, shuffled (seed {options.seed}; labels {mix}), "
                f"at {options.real_rate:g} req/s of real-world time ({options.wall_rate:g} per wall second) "
                f"over HTTP with the API key; all of it to version {BASELINE_VERSION} until the shift"
            )
            if window is not None:
                line(
                    f"evidence: probe {probe_plan.probe_rps:g} texts/s to each version during the canary "
                    f"({len(texts_for_probe)} probe texts, straight to the versions); log lag "
                    f"{lag.describe()}; the PostTraffic gate judges the whole window"
                )
            stop = threading.Event()
            controller: Controller | None = None

            def on_event(entry: dict[str, Any]) -> None:
                counts = traffic.counts() if traffic else {}
                entry["traffic"] = counts
                if entry["kind"] == "start" and controller is not None and window is not None:
                    store.clock = controller.sim_at  # from now on records lag on the compressed clock
                line(f"{_clock(entry['t_sim_s'])} {entry['message']}" + _counts(entry))

            def start_probe(clock: Callable[[], float]) -> ProbeRun:
                return ProbeRun(
                    versions={BASELINE_VERSION: baseline, CANARY_VERSION: canary},
                    texts=texts_for_probe,
                    baseline=BASELINE_VERSION,
                    canary=CANARY_VERSION,
                    rate=probe_plan.probe_rps,
                    duration_s=plan.minutes * 60.0,
                    clock=clock,
                    speed=options.speed,
                    sink=store.extend,
                ).start()

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
                window=window,
                probe=start_probe if window is not None else None,
                lag_max_s=lag.max_s,
            )
            try:
                deployment = controller.run()
            except KeyboardInterrupt:
                stop.set()
                alias.set_routing(None, 0.0)
                raise
            if options.then_rollback:
                rollback = then_rollback(options, settings, deployment, alias, (baseline, canary), traffic)
                if not rollback["ran"]:
                    line(rollback["reason"])
            time.sleep(max(0.0, options.after_s))
            controller.note(
                "traffic-stopped",
                f"replayed traffic stopped; {deployment.weight:.0%} of it was going to "
                f"version {CANARY_VERSION}"
                if rollback is None or not rollback["ran"]
                else f"replayed traffic stopped; after --then-rollback the alias sent it to version "
                f"{alias.primary.function_version}",
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
    if why_not:
        report["notes"].insert(1, f"Judge: {why_not}.")
    if quota_note:
        report["notes"].insert(1, f"Usage plan: {quota_note}.")
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
    if rollback is not None:
        report["rollback"] = rollback_section(rollback, records)
        if rollback["ran"]:
            line(rollback_line(report["rollback"]))
            if report["rollback"]["state"] != "DONE" and status == EXIT_PROMOTED:
                status = EXIT_ROLLBACK_FAILED
    return Rehearsal(options, deployment, report, render_html(report), status, problems)


# --------------------------------------------------------------------------- --then-rollback


def then_rollback(
    options: Options, settings: Any, deployment: Deployment, alias: Any, versions: Sequence[Any], traffic: Any
) -> dict[str, Any]:
    """`make rollback` over the local stack after a promotion, users' traffic still flowing: the
    controller's run, when the command and the switch happened, and the client's 5xx meanwhile.
    rollback_section() adds what the records show once they are in the store."""
    from deploy.rollback import Clients, Phase, Rollback
    from emulator.local_aws import local_clients

    if deployment.outcome != PROMOTED:
        why = "nothing to roll back: the deployment was not promoted"
        return {"ran": False, "state": None, "reason": why}
    cfn, lam, cd = local_clients(settings, alias, versions, [deployment])
    lines: list[str] = []
    controller = Rollback(options.env, settings.stack_name, Clients(cfn, lam, cd), yes=True, out=lines.append)
    before = traffic.counts() if traffic is not None else {}
    command_at = time.time()
    try:
        code = controller.run(sleep=time.sleep, interval=1.0)
    except Exception as exc:  # a stand-in the controller does not expect: the rollback failed, say how
        lines.append(f"{controller.phase.value}: crashed: {type(exc).__name__}: {exc}")
        code, controller.phase = EXIT_ROLLBACK_FAILED, Phase.FAILED
    time.sleep(ROLLBACK_TAIL_S)  # users keep coming: the requests after the switch
    after = traffic.counts() if traffic is not None else {}
    target = controller.target
    return {
        "ran": True,
        "state": controller.phase.value,
        "exit_code": code,
        "phases": [{"phase": text.split(":", 1)[0], "line": text} for text in lines],
        "from_version": controller.current or None,
        "target": {"version": target.version, "model": target.model} if target else None,
        "stack_update": cfn.describe_updates(),
        "command_at": command_at,
        "switched_at": lam.updates[0]["at"] if lam.updates else None,
        "client_5xx": int(after.get("5xx") or 0) - int(before.get("5xx") or 0),
    }


def rollback_section(run: Mapping[str, Any], records: Sequence[RequestRecord]) -> dict[str, Any]:
    """The report's "rollback" section: the controller's run and, from the users' records, the
    seconds to the switch and to the last answer of the version rolled back from, the 5xx after the
    command, and the requests each version answered from SWITCH_SETTLE_S after the switch on."""
    if not run.get("ran"):
        return dict(run)
    section = {k: v for k, v in run.items() if k not in ("command_at", "switched_at")}
    t0, old = float(run["command_at"]), run.get("from_version")
    switched = run.get("switched_at")
    live = [r for r in records if r.source == "live" and r.timestamp >= t0]
    last_old = max((r.timestamp for r in live if r.function_version == old), default=None)
    settled = (switched if switched is not None else t0) + SWITCH_SETTLE_S
    served: dict[str, dict[str, Any]] = {}
    for r in live:
        if r.timestamp > settled:
            row = served.setdefault(r.function_version, {"models": {}, "requests": 0, "5xx": 0})
            row["models"][r.model_version] = row["models"].get(r.model_version, 0) + 1
            row["requests"] += 1
            row["5xx"] += int(r.status >= 500)
    section.update(
        {
            "switch_s": None if switched is None else round(switched - t0, 3),
            "last_answer_from_old_version_s": None if last_old is None else round(last_old - t0, 3),
            "5xx": sum(1 for r in live if r.status >= 500),
            "requests_after_command": len(live),
            "settle_s": SWITCH_SETTLE_S,
            "served_after_switch": dict(sorted(served.items())),
        }
    )
    return section


def rollback_line(section: Mapping[str, Any]) -> str:
    """The rollback in one progress line."""
    target = section.get("target") or {}
    served = ", ".join(
        f"version {v} {row['requests']}" for v, row in (section.get("served_after_switch") or {}).items()
    )
    switch = section.get("switch_s")
    last = section.get("last_answer_from_old_version_s")
    return (
        f"--then-rollback {section['state']} (exit {section['exit_code']}): live version "
        f"{section.get('from_version')} -> {target.get('version', '?')} ({target.get('model') or '?'}) "
        f"{'?' if switch is None else f'{switch:.2f}'} s after the command; last answer from version "
        f"{section.get('from_version')} {'none after the command' if last is None else f'at {last:.2f} s'}; "
        f"{section['5xx']} 5xx; served after the switch: {served or 'nothing'}; stack: "
        f"{section.get('stack_update')}"
    )


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
    by_source = counts_by_source(records)
    # The users' view (latency, labels, 5xx they got): live requests; the probe's and the hook's
    # are counted apart (evidence.by_source) and judged by the evidence judge.
    records = [r for r in records if r.source == "live"]
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
        PROMOTED: "the canary passed the PreTraffic hook, every alarm"
        + (" and the PostTraffic gate (PASS on the whole window)" if d.gate else "")
        + "; all traffic shifted to it",
        ROLLED_BACK: (
            "the PostTraffic gate failed: traffic returned to the baseline"
            if d.gate and not d.gate["succeeded"]
            else "an alarm fired during the deployment: traffic returned to the baseline"
        ),
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
    notes += _evidence_notes(d, by_source)
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
        "evidence": {
            "by_source": {roles.get(v, v): n for v, n in sorted(by_source.items())},
            "probe": d.probe,
            "gate": d.gate,
            "judge_errors": list(d.judge_errors),
        },
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
            "rate": options.wall_rate,
            "traffic": options.real_rate,
            "mix": dict(options.mix),
            "log_lag_s": options.log_lag if options.evidence else 0.0,
            "evidence_judge": options.evidence,
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


def _evidence_notes(d: Deployment, by_source: Mapping[str, Mapping[str, int]]) -> list[str]:
    """The evidence in words: n per version per source, the probe, the gate's decision."""
    if d.gate is None and d.probe is None and not d.judge_errors:
        return []
    roles = {d.baseline: "baseline", d.canary: "canary"}
    parts = [
        f"{roles.get(v, v)} (version {v}) {n.get('live', 0)} live, {n.get('probe', 0)} probe, "
        f"{n.get('hook', 0)} hook"
        for v, n in sorted(by_source.items())
    ]
    notes = ["Evidence, requests recorded per version and source: " + "; ".join(parts) + "."]
    if d.probe is not None:
        failed = sum((d.probe.get("failed") or {}).values())
        notes.append(
            f"Probe: {d.probe['texts']} texts sent straight to both versions ({failed} failed answers; "
            f"ended: {d.probe.get('stopped')})"
            + (f"; it broke down: {d.probe['failure']}" if d.probe.get("failure") else "")
            + "."
        )
    if d.judge_errors:
        notes.append(f"The judge crashed at {len(d.judge_errors)} looks: {d.judge_errors[-1]}")
    if d.gate is not None:
        notes.append(f"PostTraffic gate {d.gate['status']}: {d.gate['reason']}")
    return notes


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
        epilog="Faults (canary only, repeatable): errors=P, latency=X, labels=LABEL:P, corrupt, judge=crash; "
        "add @hook to errors/latency/labels to start them once the PreTraffic hook is done (@N: after "
        "the environment's first N invocations). Exit status: 0 promoted, 3 rolled back or blocked, "
        "2 usage error, 1 local stack failure, 4 no verdict (the replayed traffic died or stalled), "
        "5 promoted but --then-rollback failed (with --then-rollback, a rehearsal that did not promote "
        "keeps its own status: there is nothing to roll back).",
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
        "--speed", type=float, default=defaults.speed, help="time compression (default 30: 5 minutes in 10 s)"
    )
    parser.add_argument(
        "--seed", type=int, default=defaults.seed, help="seed of traffic order, routing, faults"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="deprecated: requests per wall second (use --traffic; --rate R is --traffic R/speed)",
    )
    parser.add_argument(
        "--traffic",
        type=float,
        default=defaults.traffic,
        metavar="R",
        help="users' requests per real-world second (default 5; 0.004 is a few hundred a day: then the "
        "probe carries the evidence); the wall rate is R x --speed",
    )
    parser.add_argument(
        "--mix",
        action="append",
        default=[],
        metavar="LABEL=FACTOR",
        help="reweight the replayed test split by true label, e.g. hate_speech=3 (repeatable)",
    )
    parser.add_argument(
        "--log-lag",
        type=float,
        default=defaults.log_lag,
        metavar="SECONDS",
        help="median real-world seconds before a record reaches the judge (lognormal, at most 5x the "
        "median, seeded; default 120; 0: at once)",
    )
    parser.add_argument(
        "--old-judge",
        action="store_true",
        help="the judge of before issue 10 (no probe, no log lag, no PostTraffic gate)",
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
    parser.add_argument(
        "--then-rollback",
        action="store_true",
        help="after a promotion, run `make rollback`'s controller (deploy.rollback) against the local "
        "stack with the traffic still flowing; the report gains a rollback section",
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
    try:
        mix = parse_mix(args.mix)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    options = Options(
        mix=mix,
        baseline=args.baseline,
        canary=args.canary,
        faults=tuple(args.fault),
        speed=args.speed,
        seed=args.seed,
        rate=args.rate,
        traffic=args.traffic,
        log_lag=args.log_lag,
        evidence=False if args.old_judge else None,
        env=args.env,
        data=args.data,
        models_dir=args.models,
        then_rollback=args.then_rollback,
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
    if result.exit_status == EXIT_ROLLBACK_FAILED:
        said = result.report["rollback"]["phases"]
        print(f"error: --then-rollback failed: {said[-1]['line'] if said else 'no line'}", file=sys.stderr)
    return result.exit_status


if __name__ == "__main__":
    sys.exit(main())
