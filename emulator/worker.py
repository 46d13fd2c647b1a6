"""One execution environment of the inference function: the process emulator.functions starts.

    python -m emulator.worker --requests FD --responses FD [--fault SPEC ...] [--seed N]

Like the Lambda runtime it imports the handler module once (the init phase: Powertools and the
verified model load here, in this process), then serves invocations one at a time. The
invocations arrive as JSON lines on the --requests pipe and their results leave as JSON lines
on the --responses pipe; stdout and stderr belong to the handler (its logs, EMF metrics, and
the START / END / REPORT lines the Lambda runtime writes), so nothing the handler prints can
corrupt the protocol. The environment (AWS_LAMBDA_FUNCTION_NAME, MODEL_VERSION, ...) is set by
the parent, as Lambda sets it.

Protocol, one JSON object per line:
    -> {"type": "ready", "init_ms": float,
        "error": null | {"errorType", "errorMessage", "missingModule"?}}                    (once)
    <- {"id": str, "event": {...}, "timeout_ms": int, "invoked_function_arn": str, "trace_id": str}
    -> {"id": str, "ok": true, "payload": <handler result>, "duration_ms": float}
    -> {"id": str, "ok": false, "payload": {"errorType", "errorMessage", "requestId", "stackTrace"},
        "duration_ms": float}
End of input on --requests ends the process.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

HANDLER_ENV = "_HANDLER"
DEFAULT_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"


class LambdaContext:
    """The context object the Python runtime passes (awslambdaric's LambdaContext): names and
    sizes from the environment, the deadline from the invocation."""

    __slots__ = (
        "aws_request_id",
        "invoked_function_arn",
        "function_name",
        "function_version",
        "memory_limit_in_mb",
        "log_group_name",
        "log_stream_name",
        "client_context",
        "identity",
        "_deadline_ms",
    )

    def __init__(self, request_id: str, invoked_function_arn: str, deadline_ms: int) -> None:
        env = os.environ
        self.aws_request_id = request_id
        self.invoked_function_arn = invoked_function_arn
        self.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME")
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.memory_limit_in_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.client_context = None
        self.identity = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _error(exc: BaseException, request_id: str | None = None) -> dict[str, Any]:
    """The payload Lambda returns for an unhandled exception. Frames only in the stack, and the
    message is dropped: an exception's message may quote the request's text."""
    frames = traceback.extract_tb(exc.__traceback__)
    payload: dict[str, Any] = {
        "errorMessage": f"{type(exc).__name__} raised by the handler",
        "errorType": type(exc).__name__,
        "stackTrace": [f'  File "{f.filename}", line {f.lineno}, in {f.name}' for f in frames],
    }
    if request_id is not None:
        payload["requestId"] = request_id
    return payload


def _init_error(exc: BaseException, handler: str) -> dict[str, Any]:
    """What the runtime reports when the handler module cannot be loaded. An import error keeps
    its message (module and file names: code, never request data), and a missing module is named
    so that the parent can say which dependency this interpreter lacks; other exceptions keep only
    their type and place."""
    module = handler.rpartition(".")[0]
    error: dict[str, Any] = {"errorType": "Runtime.ImportModuleError"}
    if isinstance(exc, ImportError):  # its message names modules and files, never data
        error["errorMessage"] = f"Unable to import module '{module}': {exc}"
        if isinstance(exc, ModuleNotFoundError) and exc.name:
            error["missingModule"] = exc.name
    else:
        frames = traceback.extract_tb(exc.__traceback__)
        where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
        error["errorMessage"] = f"Unable to import module '{module}': {type(exc).__name__}{where}"
    return error


def _utc_now() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


def _load_handler(spec: str) -> Any:
    module_name, _, function_name = spec.rpartition(".")
    module = importlib.import_module(module_name)
    return getattr(module, function_name)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _max_rss_mb() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def serve(
    requests_fd: int, responses_fd: int, faults: list[str], seed: int | None, workdir: str | None = None
) -> int:
    started = time.perf_counter()
    init_error = None
    handler = None
    try:
        parsed = None
        if faults:
            from emulator import faults as fault_specs

            parsed = fault_specs.parse(faults)
            if parsed.corrupt:
                # A damaged copy of the model, made before the handler module loads it.
                models_dir = Path(os.environ.get("MODELS_DIR") or DEFAULT_MODELS_DIR)
                version = os.environ.get("MODEL_VERSION", "")
                target = fault_specs.prepare_models(
                    parsed, version, models_dir, Path(workdir or tempfile.mkdtemp())
                )
                os.environ["MODELS_DIR"] = str(target)
        handler = _load_handler(os.environ.get(HANDLER_ENV, "infer.app.lambda_handler"))
        if parsed is not None:
            handler = fault_specs.apply(handler, parsed, seed=seed)
    except Exception as exc:  # the runtime's Runtime.ImportModuleError: every invocation fails
        init_error = _init_error(exc, os.environ.get(HANDLER_ENV, "infer.app.lambda_handler"))
        print(f"[ERROR] {init_error['errorType']}: {init_error['errorMessage']}", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
    init_ms = (time.perf_counter() - started) * 1000.0
    version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
    if init_error is not None:
        print(f"INIT_REPORT Init Duration: {init_ms:.2f} ms Phase: init Status: error")
    sys.stdout.flush()
    _write_all(
        responses_fd, json.dumps({"type": "ready", "init_ms": init_ms, "error": init_error}).encode() + b"\n"
    )

    first = True
    with os.fdopen(requests_fd, "rb", buffering=1 << 16) as requests:
        for line in requests:
            message = json.loads(line)
            request_id = message["id"]
            os.environ["_X_AMZN_TRACE_ID"] = message.get("trace_id") or ""
            # The deadline runs from the start of this invocation (it may have queued before).
            deadline_ms = int(time.time() * 1000) + int(message.get("timeout_ms") or 3000)
            context = LambdaContext(request_id, message.get("invoked_function_arn", ""), deadline_ms)
            print(f"START RequestId: {request_id} Version: {version}")
            begun = time.perf_counter()
            ok = False
            if init_error is not None:
                payload: Any = {
                    "errorType": init_error["errorType"],
                    "errorMessage": init_error["errorMessage"],
                    "requestId": request_id,
                }
            else:
                try:
                    payload = handler(message["event"], context)
                    ok = True
                except Exception as exc:
                    payload = _error(exc, request_id)
                    # On stdout, in order between this invocation's START and END lines.
                    print(
                        f"[ERROR]\t{_utc_now()}\t{request_id}\t{payload['errorType']}: unhandled exception "
                        "in the handler"
                    )
            duration_ms = (time.perf_counter() - begun) * 1000.0
            try:
                data = json.dumps(
                    {"id": request_id, "ok": ok, "payload": payload, "duration_ms": duration_ms}
                )
            except (TypeError, ValueError) as exc:  # the runtime cannot serialise the result
                ok = False
                data = json.dumps(
                    {
                        "id": request_id,
                        "ok": False,
                        "payload": {
                            "errorType": "Runtime.MarshalError",
                            "errorMessage": f"Unable to marshal response: {type(exc).__name__}",
                            "requestId": request_id,
                        },
                        "duration_ms": duration_ms,
                    }
                )
            init = f" Init Duration: {init_ms:.2f} ms" if first else ""
            print(f"END RequestId: {request_id}")
            print(
                f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
                f"Billed Duration: {max(1, int(duration_ms + 0.999))} ms\t"
                f"Memory Size: {os.environ.get('AWS_LAMBDA_FUNCTION_MEMORY_SIZE', '?')} MB\t"
                f"Max Memory Used: {_max_rss_mb()} MB{init}"
            )
            first = False
            sys.stdout.flush()
            _write_all(responses_fd, data.encode() + b"\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emulator.worker", description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, required=True, help="fd to read invocations from")
    parser.add_argument("--responses", type=int, required=True, help="fd to write results to")
    parser.add_argument("--fault", action="append", default=[], help="fault spec (emulator.faults)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the fault draws")
    parser.add_argument("--workdir", default=None, help="scratch folder (the corrupt fault's model copy)")
    args = parser.parse_args(argv)
    try:
        return serve(args.requests, args.responses, args.fault, args.seed, args.workdir)
    except BrokenPipeError:  # the parent went away: nothing left to answer
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
