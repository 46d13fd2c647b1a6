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
    -> {"id": str, "ok": true, "payload": <handler result>, "duration_ms": float, "records": [{...}, ...]}
    -> {"id": str, "ok": false, "payload": {"errorType", "errorMessage", "requestId", "stackTrace"},
        "duration_ms": float, "records": []}
    <- {"control": "hook-done"}      (no answer: faults with @hook start from the next invocation)
End of input on --requests ends the process.

`records` are the handler's own per-request log records (message "inference": one, or a batch
request's one per text), as CloudWatch Logs would hold them, read off the handler's stdout as it
is written (RecordTap): the fields the judge reads (RECORD_KEYS), never the text. An injected
fault that changes the answer changes them too, as a broken model would (a forced label is the
label logged; latency=X makes the logged latency_ms X times as long).
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import os
import resource
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from emulator.lambda_context import LambdaContext

HANDLER_ENV = "_HANDLER"
REQUEST_LOG_MESSAGE = "inference"  # infer.app.REQUEST_LOG_MESSAGE (not imported: init order)
RECORD_KEYS = (
    "model_version",
    "function_version",
    "label",
    "latency_ms",
    "status",
    "source",
    "probe_id",
    "shadow",
    "shadow_ms",
    "batch_index",  # a batch request logs one record per text (infer.app.classify_batch)
    "batch_size",
)


class RecordTap(io.TextIOBase):
    """The handler's stdout, passed through unchanged, keeping the running invocation's per-request
    log records (JSON lines whose message is "inference"): what the log pipeline would deliver."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.pending = ""
        self.records: list[dict[str, Any]] = []  # in the order logged (a batch: one per text)

    def write(self, text: str) -> int:
        self.out.write(text)
        if '"' + REQUEST_LOG_MESSAGE + '"' in text or self.pending:
            self.pending += text
            *lines, self.pending = self.pending.split("\n")
            for line in lines:
                self._keep(line)
        return len(text)

    def _keep(self, line: str) -> None:
        try:
            data = json.loads(line)
        except ValueError:
            return
        if isinstance(data, dict) and data.get("message") == REQUEST_LOG_MESSAGE:
            self.records.append({k: data.get(k) for k in RECORD_KEYS if k in data})

    def flush(self) -> None:
        self.out.flush()

    def fileno(self) -> int:
        return self.out.fileno()

    def writable(self) -> bool:
        return True

    def take(self) -> list[dict[str, Any]]:
        """The records the latest invocation logged (none, one, or a batch's one per text), then
        forget them."""
        if self.pending:
            self._keep(self.pending)
            self.pending = ""
        records, self.records = self.records, []
        return records


def _error(exc: BaseException, request_id: str) -> dict[str, Any]:
    """The payload Lambda returns for an unhandled exception. Frames only in the stack, and the
    message is dropped: an exception's message may quote the request's text."""
    frames = traceback.extract_tb(exc.__traceback__)
    return {
        "errorMessage": f"{type(exc).__name__} raised by the handler",
        "errorType": type(exc).__name__,
        "stackTrace": [f'  File "{f.filename}", line {f.lineno}, in {f.name}' for f in frames],
        "requestId": request_id,
    }


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


def utc_stamp() -> str:
    """Now, as the runtime stamps its log lines (millisecond ISO 8601, UTC)."""
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


def report_line(request_id: str, duration_ms: float, memory_mb: Any, tail: str) -> str:
    """The REPORT line Lambda writes after each invocation (here, and for an environment that died
    in one, emulator.functions); `tail` is what follows Memory Size."""
    return (
        f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
        f"Billed Duration: {max(1, int(duration_ms + 0.999))} ms\tMemory Size: {memory_mb} MB\t{tail}"
    )


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _max_rss_mb() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def serve(
    requests_fd: int,
    responses_fd: int,
    faults: list[str],
    seed: int | None,
    workdir: str | None = None,
    hook_done: bool = False,
) -> int:
    """The environment's life: the init phase, the ready line, then one invocation per request line."""
    started = time.perf_counter()
    # Before the handler module loads: Powertools' logger keeps the stream it found at init.
    tap = RecordTap(sys.stdout)
    sys.stdout = tap
    hook = {"done": hook_done}  # a fault with @hook starts once the controller says so
    handler, init_error = _init(faults, seed, workdir, lambda: hook["done"])
    init_ms = (time.perf_counter() - started) * 1000.0
    version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
    if init_error is not None:
        print(f"INIT_REPORT Init Duration: {init_ms:.2f} ms Phase: init Status: error")
    sys.stdout.flush()
    write_all(
        responses_fd, json.dumps({"type": "ready", "init_ms": init_ms, "error": init_error}).encode() + b"\n"
    )

    first = True
    with os.fdopen(requests_fd, "rb", buffering=1 << 16) as requests:
        for line in requests:
            message = json.loads(line)
            if message.get("control") == "hook-done":
                hook["done"] = True
                continue
            request_id = message["id"]
            print(f"START RequestId: {request_id} Version: {version}")
            data, duration_ms = _invoke(handler, init_error, message, tap)
            init = f" Init Duration: {init_ms:.2f} ms" if first else ""
            print(f"END RequestId: {request_id}")
            memory = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "?")
            print(report_line(request_id, duration_ms, memory, f"Max Memory Used: {_max_rss_mb()} MB{init}"))
            first = False
            sys.stdout.flush()
            write_all(responses_fd, data.encode() + b"\n")
    return 0


def _init(
    faults: list[str], seed: int | None, workdir: str | None, hook_done: Any
) -> tuple[Any, dict[str, Any] | None]:
    """The init phase: (the handler, None), or (None, the Runtime.ImportModuleError every
    invocation then answers). Faults wrap the handler; `corrupt` damages a copy of the model first."""
    handler_spec = os.environ.get(HANDLER_ENV, "infer.app.lambda_handler")
    try:
        parsed = None
        if faults:
            from emulator import faults as fault_specs

            parsed = fault_specs.parse(faults)
            if parsed.corrupt:
                # A damaged copy of the model, made before the handler module loads it.
                from infer.config import DEFAULT_MODELS_DIR

                models_dir = Path(os.environ.get("MODELS_DIR") or DEFAULT_MODELS_DIR)
                version = os.environ.get("MODEL_VERSION", "")
                target = fault_specs.prepare_models(
                    parsed, version, models_dir, Path(workdir or tempfile.mkdtemp())
                )
                os.environ["MODELS_DIR"] = str(target)
        module_name, _, function_name = handler_spec.rpartition(".")
        handler = getattr(importlib.import_module(module_name), function_name)
        if parsed is not None:
            handler = fault_specs.apply(handler, parsed, seed=seed, hook_done=hook_done)
        return handler, None
    except Exception as exc:  # the runtime's Runtime.ImportModuleError: every invocation fails
        init_error = _init_error(exc, handler_spec)
        print(f"[ERROR] {init_error['errorType']}: {init_error['errorMessage']}", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
        return None, init_error


def _invoke(
    handler: Any, init_error: dict[str, Any] | None, message: dict[str, Any], tap: RecordTap
) -> tuple[str, float]:
    """One invocation, between its START and END lines: (the response line, its duration in ms)."""
    request_id = message["id"]
    os.environ["_X_AMZN_TRACE_ID"] = message.get("trace_id") or ""
    # The deadline runs from the start of this invocation (it may have queued before).
    deadline_ms = int(time.time() * 1000) + int(message.get("timeout_ms") or 3000)
    context = LambdaContext.from_environment(request_id, message.get("invoked_function_arn", ""), deadline_ms)
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
                f"[ERROR]\t{utc_stamp()}\t{request_id}\t{payload['errorType']}: unhandled exception "
                "in the handler"
            )
    duration_ms = (time.perf_counter() - begun) * 1000.0
    records = tap.take()  # taken (and forgotten) even when failed: they must not reach the next one
    effects = getattr(handler, "effects", None)
    records = [_with_fault_effects(r, effects) for r in records] if ok else []
    return _response(request_id, ok, payload, duration_ms, records), duration_ms


def _response(
    request_id: str,
    ok: bool,
    payload: Any,
    duration_ms: float,
    records: list[dict[str, Any]],
) -> str:
    """The response line; Runtime.MarshalError when the runtime cannot serialise the result."""
    try:
        return json.dumps(
            {
                "id": request_id,
                "ok": ok,
                "payload": payload,
                "duration_ms": duration_ms,
                "records": records,
            }
        )
    except (TypeError, ValueError) as exc:
        return json.dumps(
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


def _with_fault_effects(record: dict[str, Any], effects: dict[str, Any] | None) -> dict[str, Any]:
    """The log record a broken model would have written: the forced label, the added latency."""
    if not effects:
        return record
    record = dict(record)
    if effects.get("label") is not None and record.get("label") is not None:
        record["label"] = effects["label"]
    # X times as long: the handler's own clock would have measured its path X times as long too.
    factor = effects.get("latency_factor") or 1.0
    if factor != 1.0 and isinstance(record.get("latency_ms"), (int, float)):
        record["latency_ms"] = round(record["latency_ms"] * factor, 3)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emulator.worker", description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, required=True, help="fd to read invocations from")
    parser.add_argument("--responses", type=int, required=True, help="fd to write results to")
    parser.add_argument("--fault", action="append", default=[], help="fault spec (emulator.faults)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the fault draws")
    parser.add_argument("--workdir", default=None, help="scratch folder (the corrupt fault's model copy)")
    parser.add_argument("--hook-done", action="store_true", help="the PreTraffic hook is over (@hook faults)")
    args = parser.parse_args(argv)
    try:
        return serve(args.requests, args.responses, args.fault, args.seed, args.workdir, args.hook_done)
    except BrokenPipeError:  # the parent went away: nothing left to answer
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
