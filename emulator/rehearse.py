"""`python -m emulator rehearse`: a whole canary rollout, offline, in well under a minute.

    python -m emulator rehearse [--baseline v1] [--canary v2] [--fault SPEC ...] [--speed 30]
                                [--traffic 5] [--mix LABEL=FACTOR ...] [--log-lag 120] [--seed 7]
                                [--env prod] [--json] [--html PATH] [--then-rollback]

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
--json, the report dict goes to stdout; an HTML page with charts goes to --html. The report is
built once, from the run, as canary.report_model.CanaryReport (rehearsal_report). A pair of
models whose manifests give no expected latency ratio (the evidence judge's latency reference
bound) is refused: exit 2.

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from canary.config import ConfigError, HookConfig
from canary.manifests import ManifestError, load_manifests
from canary.records import LABELS, RequestRecord
from canary.render import render_report
from canary.report_html import check_writable, render_html
from canary.report_model import CanaryReport, JudgeLook, LocalRun, version_table
from canary.sources import AliasRouting
from emulator.controller import (
    ABORTED,
    BLOCKED,
    PROMOTED,
    ROLLED_BACK,
    Controller,
    Deployment,
)
from emulator.faults import FaultError, Faults, parse
from emulator.store import DEFAULT_LAG_S, LaggedStore, LogLag
from emulator.traffic import Traffic, TrafficPlan
from emulator.window import ProbeRun, counts_by_source
from stack import (
    DEFAULT_SAMCONFIG,
    DEFAULT_TEMPLATE,
    LOCAL_ACCOUNT,
    ROOT,
    SettingsError,
    load_settings,
)

EXIT_PROMOTED, EXIT_INTERNAL, EXIT_USAGE, EXIT_NOT_PROMOTED, EXIT_NO_VERDICT = 0, 1, 2, 3, 4
EXIT_ROLLBACK_FAILED = 5  # promoted, then --then-rollback did not end DONE
ROLLBACK_TAIL_S = 3.0  # wall seconds of users' traffic kept after --then-rollback, to see the switch
# A request the alias routed to the old version just before the switch is answered well within this;
# "served after the switch" counts the requests answered later than it.
SWITCH_SETTLE_S = 1.0
BASELINE_VERSION, CANARY_VERSION = "1", "2"  # Lambda version numbers of the two models


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


def _per_key_quota(options: Options, settings: Any) -> str | None:
    """Why the usage plan's quota is lifted for this replay, None when it is not. The quota is per
    API key (one consumer) per month; the replay stands for every user at --traffic, sent with one
    key, so when it would exceed one key's quota the rehearsal lifts it (_setup), and says so."""
    plan = settings.key_plan
    if plan is None or plan.quota_limit is None:
        return None
    # The PreTraffic hook runs on the wall clock (up to its Timeout on a busy machine) while users'
    # traffic flows; the canary step and the gate's wait for late records (600 s + 60 s) are compressed.
    hook_s = settings.functions[settings.pre_traffic_hook].timeout_s
    compressed_s = (settings.plan.minutes * 60.0 + 660.0) / options.speed
    expected = options.wall_rate * (hook_s + compressed_s + options.after_s + 5.0)
    if expected <= plan.quota_limit:
        return None
    return (
        f"the replay (about {expected:.0f} requests with one API key) stands for many users: the usage "
        f"plan's quota of {plan.quota_limit} requests per key per {plan.quota_period.lower()} is "
        "lifted for it (its throttle still applies)"
    )


# The numeric options' ranges, checked in this order: (field, lowest, highest, what to use instead).
# --rate is optional (None: not given); every other value must be a finite number in its range.
_RANGES = (
    ("speed", 0.1, 600.0, f"a compression between 0.1 and 600 (default {Options.speed:g})"),
    ("rate", 1.0, 2000.0, "between 1 and 2000 requests per second"),
    ("traffic", 0.001, math.inf, "at least 0.001 requests per second"),
    ("log_lag", 0.0, 3600.0, "between 0 and 3600 seconds"),
)


def _check(options: Options, settings: Any, manifests: dict[str, Any]) -> None:
    """Refuse, before anything starts, a rehearsal that cannot run as asked."""
    from canary.evidence import expected_latency_ratio

    for role, version in (("baseline", options.baseline), ("canary", options.canary)):
        if version not in manifests:
            known = ", ".join(sorted(manifests)) or "none"
            raise UsageError(
                f"--{role} {version}: no model {version} in {options.models_dir} (models: {known})"
            )
    for name, lowest, highest, use in _RANGES:
        value = getattr(options, name)
        if value is not None and not (math.isfinite(value) and lowest <= value <= highest):
            raise UsageError(f"--{name.replace('_', '-')} {value:g}: use {use}")
    if options.wall_rate > 2000:
        raise UsageError(
            f"--traffic {options.traffic:g} at --speed {options.speed:g} is {options.wall_rate:g} requests "
            "per wall second, more than this machine's 2000: lower --speed or --traffic"
        )
    rate_limit = settings.key_plan.rate_limit if settings.key_plan else None
    if rate_limit is not None and options.wall_rate > rate_limit:
        raise UsageError(
            f"{options.wall_rate:g} requests per wall second is over the usage plan's throttle of "
            f"{rate_limit:g} req/s in environment {options.env!r} ({settings.samconfig_path.name}); "
            "lower --traffic or --speed, or rehearse --env prod"
        )
    if not settings.pre_traffic_hook:
        raise UsageError(f"{settings.template_path.name}: the inference function has no PreTraffic hook")
    if expected_latency_ratio(manifests, options.baseline, options.canary) is None:
        raise UsageError(
            f"the manifests of {options.baseline} and {options.canary} give no expected latency ratio "
            "(manifest latency.ratio_to, measured by training.latency): the evidence judge's latency "
            "reference cannot be bounded; measure it (python -m training.train writes it)"
        )


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


def _evidence_window(
    options: Options,
    settings: Any,
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
    plan = settings.plan
    config = EvidenceConfig(window_s=plan.minutes * 60.0 if plan.steps else 60.0)
    try:
        known = load_known_answers(options.models_dir)
        texts = load_probe_set(golden.with_name(PROBE_TEXTS))
    except ProbeError as exc:
        raise UsageError(f"the probe cannot run: {exc}") from None
    window = EvidenceWindow(
        baseline_version=BASELINE_VERSION,
        canary_version=CANARY_VERSION,
        known_answers=known,
        gate_config=gate_config,
        gate_timeout_s=gate_timeout,
        config=config,
        crash=faults.judge_crash,
    )
    return window, evidence_plan(config), texts


# --------------------------------------------------------------------------- the run


@dataclass(frozen=True)
class _Setup:
    """What one rehearsal runs with, every part checked before anything starts: the stack, the
    replayed texts, the PreTraffic hook's settings, the evidence judge's window and the probe."""

    options: Options
    faults: Faults
    settings: Any  # the stack as the samconfig environment deploys it (the quota lifted if need be)
    texts: list[str]  # the replayed test split
    quota_note: str | None  # why the usage plan's quota was lifted, if it was
    what_if: dict[str, str]  # HOOK_*/GATE_* thresholds from the caller's environment
    hook_config: HookConfig
    window: Any  # emulator.window.EvidenceWindow
    probe_plan: Any  # canary.evidence.plan()
    probe_texts: list[Any]


@dataclass(frozen=True)
class _Ran:
    """What the local stack did: the deployment, every request recorded, the traffic's accounting."""

    deployment: Deployment
    records: list[RequestRecord]
    traffic: dict[str, Any]  # Traffic.stop()'s summary
    rollback: dict[str, Any] | None  # then_rollback()'s run (None: not asked for)
    cold_starts: tuple[Any, ...]  # the two function versions


def _setup(options: Options, folder: Path) -> _Setup:
    """Read and check everything the rehearsal needs, build the hook's and the probe's files into
    folder as `sam build` would, and configure the hook and the evidence window from the template
    and those files; UsageError when it cannot run as asked."""
    try:
        faults = parse(options.faults)
        settings = load_settings(options.template, options.samconfig, env=options.env)
        manifests = load_manifests(options.models_dir)
    except (FaultError, SettingsError, ManifestError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    _check(options, settings, manifests)
    texts, dataset = _texts(options)
    quota_note = _per_key_quota(options, settings)
    if quota_note:
        settings = settings.lifted(quota=True)
    # What-if thresholds for the hook and the gate, applied over the template's (and said so in the
    # report), as `sam local --env-vars` would.
    what_if = {k: v for k, v in sorted(os.environ.items()) if k.startswith(("HOOK_", "GATE_"))}
    golden = _build_hook_files(dataset, folder, options.models_dir)
    try:
        hook_config = _hook_config(settings, options, golden, what_if)
        window, probe_plan, probe_texts = _evidence_window(options, settings, faults, golden, what_if)
    except ConfigError as exc:
        raise UsageError(f"{settings.template_path.name}: {exc}") from None
    # The hook's latency reference at the pace the probe will send at here: its wall rate (the
    # hook runs on the wall clock). Paced and back-to-back ratios differ.
    hook_config = dataclasses.replace(hook_config, reference_rate=probe_plan.probe_rps * options.speed)
    return _Setup(
        options, faults, settings, texts, quota_note, what_if, hook_config, window, probe_plan, probe_texts
    )


def rehearse(options: Options, progress: Callable[[str], None] | None = None) -> Rehearsal:
    """Run one rehearsal; raises UsageError before starting anything when it cannot run."""
    say = progress or (lambda _line: None)
    wall0 = time.monotonic()

    def line(text: str) -> None:
        say(f"[{time.monotonic() - wall0:5.1f}s] {text}")

    with tempfile.TemporaryDirectory(prefix="rehearsal-") as tmp:
        setup = _setup(options, Path(tmp))
        ran = _run_stack(setup, Path(tmp), line, say)
    report, problems = rehearsal_report(setup, ran)
    d = ran.deployment
    line(f"decided: {d.outcome} at {d.stage}; {len(ran.records)} requests recorded")
    status = EXIT_PROMOTED if d.outcome == PROMOTED else EXIT_NOT_PROMOTED
    if problems:
        status = EXIT_INTERNAL
    if d.outcome == ABORTED:  # the evidence failed: nothing to say about the canary or the stack
        status = EXIT_NO_VERDICT
    rollback = report.local.rollback
    if rollback is not None and rollback["ran"]:
        line(rollback_line(rollback))
        if rollback["state"] != "DONE" and status == EXIT_PROMOTED:
            status = EXIT_ROLLBACK_FAILED
    as_dict = report.to_dict()
    return Rehearsal(d, as_dict, render_html(as_dict), status, problems)


def _run_stack(setup: _Setup, tmp: Path, line: Callable[[str], None], say: Callable[[str], None]) -> _Ran:
    """Start the two function versions behind the alias and the gateway, replay the traffic, let
    the controller deploy (and --then-rollback), stop everything, read back every record."""
    from emulator.functions import Alias, FunctionVersion
    from emulator.gateway import Gateway, generate_api_key

    options, settings = setup.options, setup.settings
    store = LaggedStore(tmp / "records.sqlite", lag=LogLag(options.log_lag, seed=options.seed))
    api_key = generate_api_key()
    common = {"models_dir": options.models_dir, "settings": settings, "seed": options.seed}
    baseline = FunctionVersion(BASELINE_VERSION, options.baseline, **common)
    canary = FunctionVersion(CANARY_VERSION, options.canary, faults=setup.faults.specs, **common)
    # Both versions are published before the deployment; the canary gets no traffic until the shift.
    alias = Alias("live", baseline, canary, weight=0.0, seed=options.seed)
    # Quiet about 5xx: a rehearsal's are the faults it injects, and its report counts them.
    gateway = Gateway(settings, alias, api_key, store, error_log=None)
    traffic: Traffic | None = None
    try:
        gateway.start()  # starts both execution environments first (their init, in parallel)
        _check_started(baseline, canary)
        _say_started(setup, gateway.url, baseline, canary, line)
        traffic = _start_traffic(setup, f"{gateway.url}{settings.routes[0].path}", api_key, line)
        line(
            f"evidence: probe {setup.probe_plan.probe_rps:g} texts/s to each version during the canary "
            f"({len(setup.probe_texts)} probe texts, straight to the versions); log lag "
            f"{store.lag.describe()}; the PostTraffic gate judges the whole window"
        )
        versions = (baseline, canary)
        deployment, rollback = _deploy(setup, store, alias, versions, gateway, traffic, line)
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
    return _Ran(deployment, records, summary, rollback, (baseline, canary))


def _say_started(setup: _Setup, url: str, baseline: Any, canary: Any, line: Callable[[str], None]) -> None:
    """The progress lines of a started stack: what runs where, and every note on the setup."""
    options, settings = setup.options, setup.settings
    line(
        f"local stack ({settings.stack_name}, samconfig env {options.env}): gateway {url}; "
        f"version {BASELINE_VERSION} = {options.baseline} (init {_ms(baseline.init_ms)}), "
        f"version {CANARY_VERSION} = {options.canary} (init {_ms(canary.init_ms)}), "
        f"faults in the canary: {setup.faults.describe()}"
    )
    if setup.quota_note:
        line(f"NOTE: {setup.quota_note}")
    if setup.what_if:
        line(
            "what-if thresholds from the environment, over the template's: "
            + ", ".join(f"{k}={v}" for k, v in setup.what_if.items())
        )
    if options.rate is not None:
        line(
            f"--rate is deprecated: --rate {options.rate:g} (requests per wall second) is "
            f"--traffic {options.real_rate:g} (per real-world second) at --speed {options.speed:g}"
        )


def _start_traffic(setup: _Setup, url: str, api_key: str, line: Callable[[str], None]) -> Traffic:
    """The users' traffic, replayed over HTTP; TrafficFailed when it never gets an answer."""
    options = setup.options
    traffic = Traffic(TrafficPlan(url=url, api_key=api_key, texts=tuple(setup.texts), rate=options.wall_rate))
    traffic.start()
    if not traffic.wait_for(answered=1, timeout_s=30.0):
        why = traffic.failure() or "got no answer from the gateway within 30 s"
        traffic.stop()
        raise TrafficFailed(f"the traffic generator {why}: nothing was rehearsed")
    mix = ", ".join(f"{k} x{v:g}" for k, v in options.mix) or "as in the test split"
    line(
        f"traffic: {len(setup.texts)} test-split texts, shuffled (seed {options.seed}; labels {mix}), "
        f"at {options.real_rate:g} req/s of real-world time ({options.wall_rate:g} per wall second) "
        f"over HTTP with the API key; all of it to version {BASELINE_VERSION} until the shift"
    )
    return traffic


def _deploy(
    setup: _Setup,
    store: LaggedStore,
    alias: Any,
    versions: tuple[Any, Any],
    gateway: Any,
    traffic: Traffic,
    line: Callable[[str], None],
) -> tuple[Deployment, dict[str, Any] | None]:
    """The deployment controller's run over the stack (then --then-rollback's), traffic flowing."""
    options, settings, plan = setup.options, setup.settings, setup.settings.plan
    baseline, canary = versions
    stop = threading.Event()
    controller: Controller | None = None

    def on_event(entry: dict[str, Any]) -> None:
        entry["traffic"] = traffic.counts()
        if entry["kind"] == "start" and controller is not None:
            store.clock = controller.sim_at  # from now on records lag on the compressed clock
        line(f"{_clock(entry['t_sim_s'])} {entry['message']}" + _counts(entry))

    def start_probe(clock: Callable[[], float]) -> ProbeRun:
        return ProbeRun(
            versions={BASELINE_VERSION: baseline, CANARY_VERSION: canary},
            texts=setup.probe_texts,
            baseline=BASELINE_VERSION,
            canary=CANARY_VERSION,
            rate=setup.probe_plan.probe_rps,
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
        alarms=settings.alarms,
        store=store,
        hook_config=setup.hook_config,
        hook_timeout_s=settings.functions[settings.pre_traffic_hook].timeout_s,
        speed=options.speed,
        deployment_id=f"d-REHEARSAL{options.seed}",
        on_event=on_event,
        stop=stop,
        flush=gateway.flush,
        traffic=traffic,
        # Past the traffic's own per-request timeout: a slow canary is not a stalled generator.
        stall_s=traffic.plan.timeout_s + 5.0,
        window=setup.window,
        probe=start_probe,
        lag_max_s=store.lag.max_s,
    )
    try:
        deployment = controller.run()
    except KeyboardInterrupt:
        stop.set()
        alias.set_routing(None, 0.0)
        raise
    rollback = None
    if options.then_rollback:
        rollback = then_rollback(options, settings, deployment, alias, versions, traffic)
        if not rollback["ran"]:
            line(rollback["reason"])
    time.sleep(max(0.0, options.after_s))
    controller.note(
        "traffic-stopped",
        f"replayed traffic stopped; {deployment.weight:.0%} of it was going to version {CANARY_VERSION}"
        if rollback is None or not rollback["ran"]
        else f"replayed traffic stopped; after --then-rollback the alias sent it to version "
        f"{alias.primary.function_version}",
    )
    return deployment, rollback


# --------------------------------------------------------------------------- --then-rollback


def then_rollback(
    options: Options,
    settings: Any,
    deployment: Deployment,
    alias: Any,
    versions: Sequence[Any],
    traffic: Traffic,
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
    before = traffic.counts()
    command_at = time.time()
    try:
        code = controller.run(sleep=time.sleep, interval=1.0)
    except Exception as exc:  # a stand-in the controller does not expect: the rollback failed, say how
        lines.append(f"{controller.phase.value}: crashed: {type(exc).__name__}: {exc}")
        code, controller.phase = EXIT_ROLLBACK_FAILED, Phase.FAILED
    time.sleep(ROLLBACK_TAIL_S)  # users keep coming: the requests after the switch
    after = traffic.counts()
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
                f"{sys.executable} has no module '{error['missingModule']}' (the function's dependencies "
                "are not installed for this Python); run `make demo`, or use .venv/bin/python -m emulator "
                "rehearse"
            )
        raise UsageError(
            f"function version {version.function_version} ({version.model_version}) cannot start: "
            f"{error.get('errorMessage')}"
        )


# --------------------------------------------------------------------------- the report


def rehearsal_report(setup: _Setup, ran: _Ran) -> tuple[CanaryReport, list[str]]:
    """The rehearsal's report (canary-report/1 plus the rehearsal's own parts), built once, and any
    broken promise of the local stack (lost requests, 5xx the functions did not answer, a failing
    baseline)."""
    options, settings, d = setup.options, setup.settings, ran.deployment
    roles = {d.baseline: "baseline", d.canary: "canary"}
    by_source = counts_by_source(ran.records)
    # The users' view (latency, labels, 5xx they got): live requests; the probe's and the hook's
    # are counted apart (evidence.by_source) and judged by the evidence judge.
    live = [r for r in ran.records if r.source == "live"]
    versions = version_table(live, roles)
    function_5xx = sum(v["errors"] for v in versions)
    problems = _problems(d, live, versions, ran.traffic, function_5xx)
    local = LocalRun(
        stage=d.stage,
        reasons=tuple(d.reasons),
        looks=tuple(d.looks),
        evidence={
            "by_source": {roles.get(v, v): n for v, n in sorted(by_source.items())},
            "probe": d.probe,
            "gate": d.gate,
            "judge_errors": list(d.judge_errors),
        },
        versions=tuple(versions),
        traffic=_traffic_part(ran.traffic, function_5xx),
        timeline=tuple({k: e.get(k) for k in TIMELINE_KEYS} for e in d.timeline),
        rehearsal=_rehearsal_part(setup, d, ran.cold_starts),
        rollback=None if ran.rollback is None else rollback_section(ran.rollback, ran.records),
    )
    report = CanaryReport(
        generated_at=d.completed or time.time(),
        source="local",
        stack=settings.stack_name,
        environment=f"{options.env} (rehearsal)",
        region="local",
        outcome={"state": d.outcome, "reason": _outcome_reason(d)},
        deployment=_deployment_part(d),
        pretraffic=d.hook.as_dict()
        if d.hook
        else ({"status": "Failed", "reason": d.hook_error} if d.hook_error else None),
        alarms=tuple(a.as_dict() for a in d.alarms),
        judge=_judge_look(d, settings),
        notes=tuple(_notes(setup, d, ran.traffic, function_5xx, len(live), by_source, problems)),
        local=local,
    )
    return report, problems


TIMELINE_KEYS = ("t_sim_s", "t_wall_s", "kind", "stage", "weight", "alarms", "verdict", "message", "traffic")


def _problems(
    d: Deployment,
    live: Sequence[RequestRecord],
    versions: Sequence[Mapping[str, Any]],
    traffic: Mapping[str, Any],
    function_5xx: int,
) -> list[str]:
    """The local stack's broken promises, seen in the users' records and the traffic's accounting."""
    by_role = {v["role"]: v for v in versions}
    sent, answered, lost, in_flight, client_5xx = _tally(traffic)
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
        for r in live
        if r.function_version == d.canary and (d.shift_started is None or r.timestamp < d.shift_started)
    )
    if canary_before_shift:
        problems.append(f"{canary_before_shift} user requests reached the canary before the shift")
    return problems


def _outcome_reason(d: Deployment) -> str:
    """The outcome in one sentence, by who decided it."""
    return {
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


def _deployment_part(d: Deployment) -> dict[str, Any]:
    """The deployment as CodeDeploy would report it."""
    return {
        "id": d.id,
        "status": d.status,
        "created": d.started,
        "completed": d.completed,
        "error": None if d.outcome == PROMOTED else "; ".join(d.reasons),
        "error_code": {BLOCKED: "HOOK_EXECUTION_FAILURE", ROLLED_BACK: "ALARM_ACTIVE"}.get(d.outcome or ""),
    }


def _judge_look(d: Deployment, settings: Any) -> dict[str, Any] | None:
    """The judge's latest look, with the alias routing it judged (the canary step's weight)."""
    if d.judge is None:
        return None
    routing = AliasRouting(
        function_name=settings.inference.name,
        alias=settings.inference.alias or "live",
        baseline_version=d.baseline,
        canary_version=d.canary,
        canary_weight=d.plan.steps[0].weight if d.plan.steps else 1.0,
    )
    return JudgeLook(d.judge, routing, judged_at=d.looks[-1]["at"] if d.looks else None).to_dict()


def _tally(traffic: Mapping[str, Any]) -> tuple[int, ...]:
    """The traffic's counters (Traffic.stop()'s summary): sent, answered, lost, in flight, 5xx."""
    return tuple(int(traffic.get(k) or 0) for k in ("sent", "answered", "lost", "in_flight", "5xx"))


def _traffic_part(traffic: Mapping[str, Any], function_5xx: int) -> dict[str, Any]:
    """The replayed traffic's accounting, as its generator last reported it."""
    died = traffic.get("died")
    return {
        **{k: traffic.get(k) for k in ("sent", "answered", "lost", "in_flight", "throttled", "5xx", "4xx")},
        "generator": f"died ({died})" if died else "ran to the end",
        "statuses": traffic.get("statuses"),
        "round_trip_ms": traffic.get("round_trip_ms"),
        # Unknown when the generator died: its counters stop at its last report.
        "gateway_5xx": None if died else int(traffic.get("5xx", 0)) - function_5xx,
    }


def _rehearsal_part(setup: _Setup, d: Deployment, cold_starts: Sequence[Any]) -> dict[str, Any]:
    """What was asked for and how long it took."""
    options = setup.options
    part = {
        "baseline": options.baseline,
        "canary": options.canary,
        "faults": list(setup.faults.specs),
        "speed": options.speed,
        "seed": options.seed,
        "rate": options.wall_rate,
        "traffic": options.real_rate,
        "mix": dict(options.mix),
        "log_lag_s": options.log_lag,
        "evidence_judge": True,  # kept for readers of older reports: always the evidence judge now
        "plan": d.plan.name,
        "latency_slo_ms": setup.settings.latency_slo_ms,
        "cold_start_ms": {fv.function_version: fv.cold_start_ms for fv in cold_starts},
        "wall_s": round((d.completed or time.time()) - d.started, 2) if d.started else None,
    }
    if setup.what_if:
        part["overrides"] = setup.what_if
    return part


def _notes(
    setup: _Setup,
    d: Deployment,
    traffic: Mapping[str, Any],
    function_5xx: int,
    recorded: int,
    by_source: Mapping[str, Mapping[str, int]],
    problems: Sequence[str],
) -> list[str]:
    """The report's notes, in order: the run, what-if thresholds, the lifted quota, the traffic,
    an INCONCLUSIVE promotion, the evidence, the local stack's problems."""
    options = setup.options
    notes = [
        f"Rehearsal of {setup.settings.stack_name} (samconfig env {options.env}) on the local stack: "
        f"{options.baseline} -> {options.canary}, {d.plan.name} at {options.speed:g}x speed "
        f"(one compressed minute = {60.0 / options.speed:.1f} s), faults in the canary: "
        f"{setup.faults.describe()}."
    ]
    if setup.what_if:
        notes.append(
            "What-if thresholds from the caller's environment replaced the template's: "
            + ", ".join(f"{k}={v}" for k, v in setup.what_if.items())
            + ". The deployed hook and gate use the template's."
        )
    if setup.quota_note:
        notes.append(f"Usage plan: {setup.quota_note}.")
    notes.append(_traffic_note(traffic, function_5xx, recorded))
    if d.outcome == PROMOTED and d.looks and d.looks[-1]["verdict"] == "INCONCLUSIVE":
        notes.append(
            "Promoted on an INCONCLUSIVE judge (too little evidence: a metric under its minimum "
            "samples, or a difference not yet significant), which no alarm acts on: the canary was not "
            "fully compared. Lower --speed or raise --rate for more evidence per minute."
        )
    notes += _evidence_notes(d, by_source)
    notes += [f"LOCAL STACK PROBLEM: {p}" for p in problems]
    return notes


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
    sent, answered, lost, in_flight, client_5xx = _tally(traffic)
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
    # Every default is Options' own (the dests are its fields); the repeatable flags collect lists.
    defaults = {f.name: getattr(Options(), f.name) for f in dataclasses.fields(Options)}
    parser.set_defaults(**{**defaults, "faults": [], "mix": []})
    _add_deployment_args(parser)
    _add_traffic_args(parser)
    _add_environment_args(parser)
    _add_output_args(parser)
    return parser


def _add_deployment_args(parser: argparse.ArgumentParser) -> None:
    """What is deployed, how it is broken, and the clock."""
    parser.add_argument("--baseline", help="model live before (default v1)")
    parser.add_argument("--canary", help="model rolled out (default v2)")
    parser.add_argument(
        "--fault",
        dest="faults",
        action="append",
        metavar="SPEC",
        help="fault injected into the canary (repeatable)",
    )
    parser.add_argument("--speed", type=float, help="time compression (default 30: 5 minutes in 10 s)")
    parser.add_argument("--seed", type=int, help="seed of traffic order, routing, faults")


def _add_traffic_args(parser: argparse.ArgumentParser) -> None:
    """The users' traffic and the log lag."""
    parser.add_argument(
        "--rate",
        type=float,
        help="deprecated: requests per wall second (use --traffic; --rate R is --traffic R/speed)",
    )
    parser.add_argument(
        "--traffic",
        type=float,
        metavar="R",
        help="users' requests per real-world second (default 5; 0.004 is a few hundred a day: then the "
        "probe carries the evidence); the wall rate is R x --speed",
    )
    parser.add_argument(
        "--mix",
        action="append",
        metavar="LABEL=FACTOR",
        help="reweight the replayed test split by true label, e.g. hate_speech=3 (repeatable)",
    )
    parser.add_argument(
        "--log-lag",
        type=float,
        metavar="SECONDS",
        help="median real-world seconds before a record reaches the judge (lognormal, at most 5x the "
        "median, seeded; default 120; 0: at once)",
    )


def _add_environment_args(parser: argparse.ArgumentParser) -> None:
    """Where it is deployed from, and what follows a promotion."""
    parser.add_argument("--env", help="samconfig environment to rehearse (default prod)")
    parser.add_argument("--data", type=Path, help="labelled CSV (default $HATE_DATA or ../shared/data)")
    parser.add_argument(
        "--models", dest="models_dir", type=Path, metavar="MODELS", help="models folder (default models/)"
    )
    parser.add_argument(
        "--then-rollback",
        action="store_true",
        help="after a promotion, run `make rollback`'s controller (deploy.rollback) against the local "
        "stack with the traffic still flowing; the report gains a rollback section",
    )


def _add_output_args(parser: argparse.ArgumentParser) -> None:
    """Where the report goes."""
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
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(Options)}
    options = Options(**{**given, "faults": tuple(args.faults), "mix": mix})

    html = None if args.no_html else (args.html or Path("reports") / f"{_slug(options)}.html")
    if html is not None:
        try:
            check_writable(html)
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
