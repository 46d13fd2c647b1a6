"""`python -m emulator serve`: the API on 127.0.0.1 as template.yaml and a samconfig environment
define it (the gateway in front of the `live` alias, each version's real handler in its own
process) until Ctrl-C or SIGTERM. Its flags are in emulator/__main__.py's usage text; here: the
model choice (the newest trained one by default), the lock files that keep one serve per record
store and logs folder, and the banner.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

# The project's packages (PyYAML, Powertools...) are imported only once a command runs, so that
# a Python without them gets main()'s one-line answer rather than a traceback.
if TYPE_CHECKING:
    from emulator.functions import Alias
    from emulator.gateway import Gateway
    from stack import StackSettings

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / "reports" / "local"  # where the local stack's state goes by default

EXIT_USAGE = 2
KEY_ENV = "HATE_API_KEY"
DEFAULT_PORT = 3000  # what `sam local start-api` uses


def _weight(text: str) -> float:
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100.0 if raw.endswith("%") else float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a share like 0.1 or 10%") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not between 0 and 1 (0% and 100%)")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a port number (0-65535; 0 picks a free one)")
    return value


def serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m emulator serve",
        description="Serve the API locally, as template.yaml and samconfig.toml define it, on 127.0.0.1.",
        epilog="One live version: --model. A canary split: --baseline, --canary and --weight (the "
        "canary's share). The key comes from --api-key, else $HATE_API_KEY, else a new one is "
        "printed. Stop with Ctrl-C.",
    )
    parser.add_argument("--port", type=_port, default=DEFAULT_PORT, help="port on 127.0.0.1 (default 3000)")
    parser.add_argument("--api-key", default=None, help=f"the API key clients send (default ${KEY_ENV})")
    parser.add_argument(
        "--model",
        default=None,
        help="the one live model (default: the newest trained one in models/, not the template's)",
    )
    parser.add_argument("--baseline", default=None, help="model on version 1 (with --canary)")
    parser.add_argument(
        "--canary", default=None, help="model on version 2, receiving --weight of the traffic"
    )
    parser.add_argument(
        "--weight",
        type=_weight,
        default=None,
        help="the canary's share, 0..1 or a percentage (default: the DeploymentPreference's, 10%%)",
    )
    parser.add_argument(
        "--fault", action="append", default=[], help="fault injected into the canary (repeatable)"
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="seed of the alias's routing and of the faults"
    )
    parser.add_argument(
        "--env", default="local", help="samconfig environment to take settings from (default local)"
    )
    parser.add_argument(
        "--no-quota", action="store_true", help="serve without the usage plans' quotas (load tests)"
    )
    parser.add_argument(
        "--no-throttle",
        action="store_true",
        help="serve without the usage plans' throttles, methods' included (capacity benchmarks)",
    )
    parser.add_argument(
        "--records",
        type=Path,
        default=LOCAL / "records.sqlite",
        help="SQLite store of per-request records (default reports/local/records.sqlite)",
    )
    parser.add_argument(
        "--logs",
        type=Path,
        default=LOCAL / "logs",
        help="folder of the functions' logs, one file per version (default reports/local/logs)",
    )
    parser.add_argument(
        "--consumers",
        type=Path,
        default=LOCAL / "consumers.json",
        help="consumer keys on the plans (make consumer-add ENV=local; default reports/local/consumers.json)",
    )
    parser.add_argument("--access-log", action="store_true", help="print one line per request")
    parser.add_argument("--template", type=Path, default=ROOT / "template.yaml", help=argparse.SUPPRESS)
    parser.add_argument("--samconfig", type=Path, default=ROOT / "samconfig.toml", help=argparse.SUPPRESS)
    return parser


class _Usage(Exception):
    """A serve that cannot start as asked: exit 2 with this message."""


def newest_model(allowed: Sequence[str], models_dir: Path) -> str | None:
    """The newest trained model the template allows: the highest vN (by number, so v10 > v9) of
    ModelVersion's AllowedValues with a manifest in models_dir; None when none is trained."""
    from canary.manifests import trained_versions

    trained = [m for m in trained_versions(models_dir) if m in allowed]
    return trained[-1] if trained else None


def _models(args: argparse.Namespace, settings: StackSettings, split: bool) -> tuple[list[str], str]:
    """The models to serve and why that one (for the banner); _Usage when one cannot be."""
    models_dir = ROOT / "models"
    if split:
        models, why = [args.baseline, args.canary], "as asked"
    elif args.model is not None:
        models, why = [args.model], "--model"
    else:
        newest = newest_model(settings.model_versions, models_dir)
        if newest is None:
            raise _Usage("no trained model in models/: train the models first (make train)")
        models = [newest]
        why = f"the newest in models/ (default; the template's ModelVersion is {settings.model_version})"
    for model in models:
        if model not in settings.model_versions:
            raise _Usage(
                f"model {model!r} is not one of {', '.join(settings.model_versions)} (template.yaml)"
            )
        if not (models_dir / model / "manifest.json").is_file():
            raise _Usage(f"models/{model} has no manifest.json: train the models first (make train)")
    return models, why


def _lock(path: Path, what: Path) -> TextIO:
    """The lock file `path`, open and locked, guarding `what` (the record store or the logs
    folder) while serve runs (the OS drops it when the process ends, however it ends), so a second
    serve on the same files is refused instead of interleaving its records and logs with ours:
    _Usage (the file closed) when another serve holds it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held until the process ends
    except OSError as exc:
        raise _Usage(f"cannot use {what}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        owner = handle.read().strip() or "another process"
        handle.close()
        raise _Usage(
            f"{what} is in use by another `serve` ({owner}): stop it, or give this one its own "
            "--records and --logs"
        ) from None
    return handle


def _mark(held: Sequence[TextIO], text: str) -> None:
    """Write who holds the locks (read by a second serve's error message)."""
    for handle in held:
        handle.seek(0)
        handle.truncate()
        handle.write(text + "\n")
        handle.flush()


def _missing_dependency(versions: Sequence[Any]) -> str | None:
    """One line when a version's handler could not even be imported (Lambda would answer every
    request with Runtime.ImportModuleError, API Gateway 502): what is missing and the fix."""
    for version in versions:
        error = version.init_error
        if not error:
            continue
        where = f"function version {version.function_version} ({version.model_version})"
        if error.get("missingModule"):
            return (
                f"{where} cannot start: {version.python} has no module "
                f"'{error['missingModule']}' (the function's dependencies are not installed for this "
                "Python); run `make serve`, or use .venv/bin/python -m emulator serve"
            )
        log = f"; see {version.log_path}" if version.log_path else ""
        return f"{where} cannot start: {error.get('errorMessage')}{log}"
    return None


def serve(argv: list[str]) -> int:
    try:
        args = serve_parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        return _serve(args)
    except _Usage as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _serve(args: argparse.Namespace) -> int:
    """Check the flags, settings, models and key, take the locks, then run; _Usage when one fails."""
    split = args.baseline is not None or args.canary is not None or args.weight is not None
    if split and args.model is not None:
        raise _Usage("give either --model or --baseline/--canary/--weight, not both")
    if split and (args.baseline is None or args.canary is None):
        raise _Usage("a split needs both --baseline and --canary (--weight is the canary's share)")
    if args.fault and not split:
        raise _Usage("--fault goes into the canary: give --baseline and --canary too")
    from stack import SettingsError, load_settings

    try:
        settings = load_settings(args.template, args.samconfig, env=args.env)
    except SettingsError as exc:
        raise _Usage(str(exc)) from None
    models, why = _models(args, settings, split)
    if args.no_quota or args.no_throttle:
        settings = settings.lifted(quota=args.no_quota, throttle=args.no_throttle)
    if split and args.baseline == args.canary and not args.fault:
        print(f"note: baseline and canary both serve {args.baseline}", file=sys.stderr)

    from emulator.gateway import check_api_key, generate_api_key

    api_key = args.api_key or os.environ.get(KEY_ENV) or ""
    generated = not api_key
    if generated:
        api_key = generate_api_key()
    try:
        check_api_key(api_key)
    except ValueError as exc:
        raise _Usage(str(exc)) from None
    with contextlib.ExitStack() as held:  # whatever happens, every lock taken is let go
        claims = [(Path(f"{args.records}.lock"), args.records), (args.logs / ".serve.lock", args.logs)]
        locks = [held.enter_context(_lock(path, what)) for path, what in claims]
        return _run(args, settings, models, why, api_key, generated, locks)


def _run(
    args: argparse.Namespace,
    settings: StackSettings,
    models: list[str],
    why: str,
    api_key: str,
    generated: bool,
    locks: Sequence[TextIO],
) -> int:
    """Start the stack, print the banner, serve until a signal; the exit status."""
    from canary.records import RecordStore
    from emulator.consumers import KeyRegistry
    from emulator.functions import EnvironmentFailed
    from emulator.gateway import Gateway

    alias = _alias(args, settings, models)
    try:
        store = RecordStore(args.records)
    except (OSError, sqlite3.Error) as exc:
        raise _Usage(f"cannot open the record store {args.records}: {exc}") from None

    def access(line: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)

    gateway = Gateway(
        settings,
        alias,
        api_key,
        store,
        port=args.port,
        access_log=access if args.access_log else None,
        consumers=KeyRegistry(settings, args.consumers),
    )
    stop = threading.Event()  # set by Ctrl-C or SIGTERM, from now on (cold starts included)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        alias.start()  # the cold starts, before anything listens
        problem = _missing_dependency(alias.versions())
        if problem is not None:
            raise EnvironmentFailed(problem)
        gateway.start()
    except EnvironmentFailed as exc:
        alias.stop()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        alias.stop()
        raise _Usage(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror} (try --port 0)") from None
    _mark(locks, f"pid {os.getpid()}, {gateway.url}")
    _banner(args, gateway, why, generated)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        gateway.stop()
    answered = sum(gateway.counts.values())
    by_status = ", ".join(f"{status}: {n}" for status, n in sorted(gateway.counts.items())) or "none"
    print(f"stopped: {answered} requests answered ({by_status}); {gateway.records_written} records written")
    return 0


def _alias(args: argparse.Namespace, settings: StackSettings, models: list[str]) -> Alias:
    """The live alias: version 1 serving models[0], and with a split version 2 serving models[1]
    (with --fault) at --weight or the DeploymentPreference's canary share."""
    from emulator.faults import FaultError
    from emulator.functions import Alias, FunctionVersion

    try:
        # Logs are named after the stack served (hate-speech-local-...), not after the function
        # name the environment's parameters give (Environment=prod makes it hate-speech-prod-infer).
        primary, *canaries = [
            FunctionVersion(
                str(n),
                model,
                args.fault if n == 2 else (),
                settings=settings,
                log_path=args.logs / f"{settings.stack_name}-infer-{n}.log",
                seed=args.seed,
            )
            for n, model in enumerate(models, start=1)
        ]
    except FaultError as exc:
        raise _Usage(str(exc)) from None
    canary = canaries[0] if canaries else None
    weight = 0.0
    if canary is not None:
        # Without --weight the canary gets what the template's DeploymentPreference would give it.
        weight = args.weight if args.weight is not None else settings.canary_percent / 100.0
    return Alias(settings.inference.alias or "live", primary, canary, weight, seed=args.seed)


def _banner(args: argparse.Namespace, gateway: Gateway, why: str, generated: bool) -> None:
    """What runs where: which model each version serves, the URL (and what its /v1/ is), the
    usage plan, where records and logs go, the key (shown only when generated here)."""

    def init(version: Any) -> str:
        return f"init {version.init_ms:.0f} ms" if version.init_ms is not None else "not started"

    settings, alias, api_key = gateway.settings, gateway.alias, gateway.api_key
    primary, canary = alias.primary, alias.canary
    print(f"Local API ({settings.stack_name}, samconfig env {args.env}), alias {alias.name}:")
    if canary is None:
        print(f"  model {primary.model_version} on version 1 ({init(primary)}): {why}")
    else:
        faults = f", faults {', '.join(canary.faults)}" if canary.faults else ""
        print(f"  model {primary.model_version} on version 1 ({init(primary)}) gets {1 - alias.weight:.0%}")
        print(f"  model {canary.model_version} on version 2 ({init(canary)}{faults}) gets {alias.weight:.0%}")
    for route in settings.routes:
        print(f"  {route.method} {gateway.url}{route.path}")
    print(f"  OpenAPI document (no key): GET {gateway.base_url}/openapi.yaml (or /openapi.json)")
    print(
        f"  (/{settings.stage_name}/ in the URL is the API stage, not the model version: the "
        "X-Model-Version header of each answer names the model)"
    )
    print(f"  usage plan of this key: {_plan_line(settings.key_plan)}")
    print(
        f"  consumers: {gateway.consumers.count} keys on plans {', '.join(settings.plans)} "
        f"in {args.consumers} "
        "(make consumer-add ENV=local NAME=... PLAN=...)"
    )
    print(f"  records: {args.records}; function logs: {args.logs}")
    if generated:
        print(f"  API key (generated; set {KEY_ENV} or --api-key to choose one): {api_key}")
    else:
        print("  API key: as given (not shown)")
    shown_key = api_key if generated else f"${KEY_ENV}"
    print(
        f'  try: curl -s -X POST {gateway.route_url()} -H "x-api-key: {shown_key}" -d \'{{"text": "hello"}}\''
    )
    print("Ctrl-C to stop.", flush=True)


def _plan_line(plan: Any) -> str:
    """A usage plan's limits in words, as the banner shows them."""
    if plan is None:
        return "none (no limits)"
    throttle = f"{plan.rate_limit:g} req/s, burst {plan.burst_limit}" if plan.rate_limit else "none"
    methods = "".join(f"; {m} {r:g} req/s, burst {b}" for m, (r, b) in plan.method_throttles.items())
    quota = f"{plan.quota_limit} per {plan.quota_period.lower()}" if plan.quota_limit is not None else "none"
    return f"{plan.name}: throttle {throttle}{methods}; quota {quota}"
