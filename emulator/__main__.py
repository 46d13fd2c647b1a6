"""The local stack's command line.

    python -m emulator serve [--port 3000] [--api-key KEY] [--model vN]
                             [--baseline v1 --canary v2 --weight 0.1] [--env local] ...
    python -m emulator rehearse ...      (see python -m emulator rehearse --help)

`serve` runs the API as template.yaml and samconfig.toml's `local` environment define it, on
127.0.0.1, until Ctrl-C or SIGTERM: the gateway (key, usage plan, CORS, API Gateway's errors)
in front of the `live` alias, whose versions each run the real handler in their own process.
Without --model it serves the newest trained model (the template's default ModelVersion, v1, is
what a new stack starts on: --model v1). The `/v1/` of its URLs is the API stage, not a model.
Only one serve at a time may use a record store and a logs folder (lock files say who has them).
"""

from __future__ import annotations

import sys

from emulator.serve import EXIT_USAGE  # standard library only at import: see emulator/serve.py


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command, rest = (argv[0], argv[1:]) if argv else ("", [])
    if command not in ("serve", "rehearse"):
        print(__doc__.strip(), file=sys.stderr if command not in ("-h", "--help") else sys.stdout)
        return 0 if command in ("-h", "--help") else EXIT_USAGE
    try:
        if command == "serve":
            from emulator.serve import serve

            return serve(rest)
        from emulator.rehearse import main as rehearse_main

        return rehearse_main(rest)
    except ModuleNotFoundError as exc:  # this Python lacks the project's packages: say so, in one line
        make = "make serve" if command == "serve" else "make demo"
        print(
            f"error: {sys.executable} has no module '{exc.name}' (the project's packages are not "
            f"installed for this Python); run `{make}`, or use .venv/bin/python -m emulator {command}",
            file=sys.stderr,
        )
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
