"""The local stack's command line.

    python -m emulator serve [--port 3000] [--api-key KEY] [--model v1|v2]
                             [--baseline v1 --canary v2 --weight 0.1] [--env local] ...
    python -m emulator rehearse ...      (see python -m emulator rehearse --help)

`serve` runs the API as template.yaml and samconfig.toml's `local` environment define it, on
127.0.0.1, until Ctrl-C or SIGTERM: the gateway (key, usage plan, CORS, API Gateway's errors)
in front of the `live` alias, whose versions each run the real handler in their own process.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sqlite3
import sys
import threading
import time
from pathlib import Path

from emulator.settings import DEFAULT_SAMCONFIG, DEFAULT_TEMPLATE, ROOT, SettingsError, load_settings

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
        "--model", default=None, help="the one live model (default: the template's ModelVersion)"
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
        "--no-quota", action="store_true", help="serve without the usage plan's quota (load tests)"
    )
    parser.add_argument(
        "--records",
        type=Path,
        default=ROOT / "reports" / "local" / "records.sqlite",
        help="SQLite store of per-request records (default reports/local/records.sqlite)",
    )
    parser.add_argument(
        "--logs",
        type=Path,
        default=ROOT / "reports" / "local" / "logs",
        help="folder of the functions' logs, one file per version (default reports/local/logs)",
    )
    parser.add_argument("--access-log", action="store_true", help="print one line per request")
    parser.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE, help=argparse.SUPPRESS)
    parser.add_argument("--samconfig", type=Path, default=DEFAULT_SAMCONFIG, help=argparse.SUPPRESS)
    return parser


def serve(argv: list[str]) -> int:
    parser = serve_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)

    def usage(message: str) -> int:
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USAGE

    split = args.baseline is not None or args.canary is not None or args.weight is not None
    if split and args.model is not None:
        return usage("give either --model or --baseline/--canary/--weight, not both")
    if split and (args.baseline is None or args.canary is None):
        return usage("a split needs both --baseline and --canary (--weight is the canary's share)")
    if args.fault and not split:
        return usage("--fault goes into the canary: give --baseline and --canary too")
    try:
        settings = load_settings(args.template, args.samconfig, env=args.env)
    except SettingsError as exc:
        return usage(str(exc))
    if args.no_quota:
        settings = dataclasses.replace(settings, quota_limit=None)
    models = [args.baseline, args.canary] if split else [args.model or settings.model_version]
    for model in models:
        if model not in settings.model_versions:
            return usage(
                f"model {model!r} is not one of {', '.join(settings.model_versions)} (template.yaml)"
            )
        if not (ROOT / "models" / model / "manifest.json").is_file():
            return usage(f"models/{model} has no manifest.json: train the models first (make train)")
    if split and args.baseline == args.canary and not args.fault:
        print(f"note: baseline and canary both serve {args.baseline}", file=sys.stderr)

    from canary.records import RecordStore
    from emulator.faults import FaultError
    from emulator.functions import Alias, EnvironmentFailed, FunctionVersion
    from emulator.gateway import Gateway, check_api_key, generate_api_key

    generated = False
    api_key = args.api_key or os.environ.get(KEY_ENV) or ""
    if not api_key:
        api_key, generated = generate_api_key(), True
    try:
        check_api_key(api_key)
    except ValueError as exc:
        return usage(str(exc))

    name = settings.inference.name
    try:
        primary = FunctionVersion(
            "1", models[0], settings=settings, log_path=args.logs / f"{name}-1.log", seed=args.seed
        )
        canary = None
        if split:
            canary = FunctionVersion(
                "2",
                models[1],
                faults=args.fault,
                settings=settings,
                log_path=args.logs / f"{name}-2.log",
                seed=args.seed,
            )
    except FaultError as exc:
        return usage(str(exc))
    weight = 0.0
    if canary is not None:
        # Without --weight the canary gets what the template's DeploymentPreference would give it.
        weight = args.weight if args.weight is not None else settings.canary_percent / 100.0
    alias = Alias(settings.inference.alias or "live", primary, canary, weight, seed=args.seed)
    try:
        store = RecordStore(args.records)
    except (OSError, sqlite3.Error) as exc:
        return usage(f"cannot open the record store {args.records}: {exc}")

    def access(line: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)

    gateway = Gateway(
        settings,
        alias,
        api_key,
        store,
        port=args.port,
        access_log=access if args.access_log else None,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        gateway.start()
    except EnvironmentFailed as exc:
        alias.stop()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        alias.stop()
        return usage(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror} (try --port 0)")

    def init(version: FunctionVersion) -> str:
        return f"init {version.init_ms:.0f} ms" if version.init_ms is not None else "not started"

    versions = [f"version 1 = {primary.model_version} ({init(primary)})"]
    if canary is not None:
        faults = f", faults {', '.join(canary.faults)}" if canary.faults else ""
        versions.append(
            f"version 2 = {canary.model_version} gets {alias.weight:.0%} ({init(canary)}{faults})"
        )
    quota = (
        f"{settings.quota_limit} per {settings.quota_period.lower()}"
        if settings.quota_limit is not None
        else "none"
    )
    throttle = (
        f"{settings.rate_limit:g} req/s, burst {settings.burst_limit}" if settings.rate_limit else "none"
    )
    print(f"Local API ({settings.stack_name}, samconfig env {args.env}), alias {alias.name}:")
    print(f"  {'; '.join(versions)}")
    for route in settings.routes:
        print(f"  {route.method} {gateway.url}{route.path}")
    print(f"  usage plan: throttle {throttle}; quota {quota}")
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
    try:
        while not stop.wait(0.5):
            pass
    finally:
        gateway.stop()
    answered = sum(gateway.counts.values())
    by_status = ", ".join(f"{status}: {n}" for status, n in sorted(gateway.counts.items())) or "none"
    print(f"stopped: {answered} requests answered ({by_status}); {gateway.records_written} records written")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command, rest = (argv[0], argv[1:]) if argv else ("", [])
    if command == "serve":
        return serve(rest)
    if command == "rehearse":
        from emulator.rehearse import main as rehearse_main

        return rehearse_main(rest)
    print(__doc__.strip(), file=sys.stderr if command not in ("-h", "--help") else sys.stdout)
    return 0 if command in ("-h", "--help") else EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
