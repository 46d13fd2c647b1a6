"""Lambda, locally: function versions as execution environments, and a weighted alias.

A FunctionVersion is one published version of the inference function with one execution
environment: an OS process (emulator.worker) running the real `infer.app.lambda_handler`,
with the environment variables the template gives the function plus the ones the Lambda
runtime sets. Its cold start is real: the process starts, imports Powertools and loads and
verifies the model before its first invocation. It runs one invocation at a time, as one
Lambda execution environment does; concurrent invocations queue in its input pipe (so it
never sits idle waiting for a caller's thread) and a reader thread hands each answer back.
Unlike Lambda it does not add environments under concurrency: one version, one process.

When the environment dies in the middle of an invocation (a crash, a kill, or the function's
Timeout, after which Lambda stops it), that invocation fails as Lambda reports it (a function
error, which API Gateway answers 502); the invocations queued behind it and the next ones run
in a new environment, with a new cold start, as Lambda would. An environment that died while
idle is replaced before the next invocation, which is served.

An Alias routes each invocation to its primary version or, with probability `weight`, to
its canary version, like a Lambda alias with AdditionalVersionWeights.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
import random
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from canary.records import RequestRecord
from emulator.worker import report_line, utc_stamp, write_all
from stack import LOCAL_ACCOUNT, StackSettings, load_settings

ROOT = Path(__file__).resolve().parent.parent
# Kept from the parent's environment; everything else (credentials, HATE_API_KEY, ...) stays out,
# as a Lambda environment only holds what the function configuration and the runtime give it.
_INHERITED = ("PATH", "LANG", "LC_ALL", "TMPDIR", "HOME", "SYSTEMROOT")
_READY_TIMEOUT_S = 60.0
_STOP_GRACE_S = 5.0  # how long stop() lets the invocations already sent finish
TIMED_OUT = "Sandbox.Timedout"  # the errorType of an invocation past the function's Timeout


class InvokeError(RuntimeError):
    """Lambda refused the invocation before any handler ran (the Invoke API's own errors)."""


class RequestTooLarge(InvokeError):
    """The event is over Lambda's synchronous invocation payload limit (6 MB)."""


class CallerGaveUp(InvokeError):
    """The caller stopped waiting (max_wait_s) before the invocation was answered; the environment
    still runs it (API Gateway's integration timeout does the same to a Lambda function)."""

    def __init__(self, message: str, version: FunctionVersion, waited_ms: float) -> None:
        super().__init__(message)
        self.version = version  # the version it was sent to
        self.waited_ms = waited_ms


class EnvironmentFailed(InvokeError):
    """The execution environment could not be started at all (no Python, no worker module)."""


@dataclass(frozen=True)
class Invocation:
    """One invocation as Lambda's Invoke API reports it."""

    request_id: str  # the invocation's aws_request_id
    executed_version: str  # the function version that ran it
    payload: Any  # the handler's result, or Lambda's error payload {"errorType", "errorMessage", ...}
    function_error: str | None  # None when the handler returned; "Unhandled" for a crash/timeout/exception
    duration_ms: float  # handler time (Lambda's Duration); for a crash or timeout, until it was noticed
    cold_start: bool  # True when this invocation started its execution environment
    init_ms: float | None  # the environment's init duration, on a cold start
    # The handler's per-request log records (emulator.worker), in the order logged: one, or a batch
    # request's one per text; none when the invocation failed.
    records: tuple[dict[str, Any], ...] = ()

    @property
    def record(self) -> dict[str, Any] | None:
        """The latest record the handler logged (a batch's last text's), None when it logged none."""
        return self.records[-1] if self.records else None

    @property
    def batch_records(self) -> tuple[dict[str, Any], ...]:
        """A batch request's records, one per text (empty for other requests)."""
        return tuple(r for r in self.records if "batch_index" in r)


def request_record(
    version: FunctionVersion,
    invocation: Invocation,
    status: int,
    label: str | None,
    timestamp: float,
    event: Mapping[str, Any] | None = None,
) -> RequestRecord:
    """The per-request record the judge reads for one invocation: the handler's own log record
    (source, probe_id, shadow labels and time, handler latency), with the status and label the
    caller got; the Invoke API's figures when the handler logged none (a crash, a timeout), and
    then the source its request id says (`event`: how Logs Insights tells them apart too)."""
    from infer.sources import LIVE, source_of_event

    log = dict(invocation.record or {})
    # The request id names the source (Logs Insights reads it from correlation_id too).
    origin = source_of_event(event) if event is not None else None
    if origin is not None and log.get("source") in (None, "", "null"):
        log["source"], log["probe_id"] = origin.source, origin.probe_id
    latency = log.get("latency_ms")
    if not isinstance(latency, (int, float)) or isinstance(latency, bool):
        latency = invocation.duration_ms
    data = {
        "function_version": version.function_version,
        "model_version": version.model_version,
        "latency_ms": round(float(latency), 3),
        "label": label,
        "status": status,
        "timestamp": timestamp,
        "source": log.get("source"),
        "probe_id": log.get("probe_id"),
        # The served label only has a shadow when it was answered.
        "shadow": (log.get("shadow") or {}) if label is not None else {},
        "shadow_ms": log.get("shadow_ms"),
    }
    try:
        return RequestRecord.from_mapping(data)
    except ValueError:  # a log record the judge could not read: keep what the caller saw, and the
        # source its request id says (a malformed probe or hook answer must never count as live)
        named = (origin.source, origin.probe_id) if origin else (log.get("source"), log.get("probe_id"))
        return RequestRecord(
            version.function_version,
            version.model_version,
            round(invocation.duration_ms, 3),
            label,
            status,
            timestamp,
            named[0] or LIVE,
            named[1],
        )


def batch_request_records(
    version: FunctionVersion, invocation: Invocation, status: int, labels: list[str | None], timestamp: float
) -> list[RequestRecord]:
    """The records of an answered batch request, one per text as the handler logs them (the judge
    counts texts): `labels` are the answer's, in order. None when the handler's records do not
    match the answer one for one (the caller then keeps one record for the request)."""
    logged = sorted(invocation.batch_records, key=lambda r: r.get("batch_index", -1))
    if len(logged) != len(labels) or [r.get("batch_index") for r in logged] != list(range(len(labels))):
        return []
    return [
        request_record(version, dataclasses.replace(invocation, records=(log,)), status, label, timestamp)
        for log, label in zip(logged, labels, strict=True)
    ]


@functools.lru_cache(maxsize=1)
def default_settings() -> StackSettings:
    """The local stack's settings (template.yaml + samconfig.toml, environment `local`)."""
    return load_settings()


def lambda_environment(
    settings: StackSettings, function_version: str, model_version: str, models_dir: Path | None
) -> dict[str, str]:
    """The environment variables of one execution environment of the inference function: the
    template's (Globals merged, ModelVersion replaced by this version's model) and the runtime's."""
    fn = settings.inference
    day = time.strftime("%Y/%m/%d", time.gmtime())
    env = {key: os.environ[key] for key in _INHERITED if key in os.environ}
    env.update(
        {
            "AWS_LAMBDA_FUNCTION_NAME": fn.name,
            "AWS_LAMBDA_FUNCTION_VERSION": function_version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{fn.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"{day}/[{function_version}]{uuid.uuid4().hex}",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_REGION": settings.region,
            "AWS_DEFAULT_REGION": settings.region,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{fn.runtime}",
            "LAMBDA_TASK_ROOT": str(ROOT),
            "LAMBDA_RUNTIME_DIR": str(Path(sys.executable).parent),
            "_HANDLER": fn.handler,
            "TZ": ":UTC",
            # The task root, then the caller's PYTHONPATH: the worker runs the caller's interpreter
            # and must see the packages the caller sees (the deployment package's dependencies).
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
            # No X-Ray daemon runs locally (sam local turns tracing off the same way); the
            # functions import no tracing SDK either (issue 11), so this only keeps Powertools quiet.
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
    )
    env.update(fn.environment)
    env["MODEL_VERSION"] = model_version
    if models_dir is not None:
        env["MODELS_DIR"] = str(models_dir)
    return env


class _Call:
    """One invocation on its way through an execution environment."""

    __slots__ = ("request_id", "data", "done", "answer", "sent_at", "written", "init_ms")

    def __init__(self, request_id: str, data: bytes) -> None:
        self.request_id = request_id
        self.data = data
        # Released once, when the answer is in: a bare lock is the cheapest hand-over between
        # the reader thread and the caller (an Event builds a Condition on every wait).
        self.done = threading.Lock()
        self.done.acquire()
        self.answer: dict[str, Any] | None = None  # the worker's answer, or a failure of ours
        self.sent_at = 0.0
        self.written = False  # all of it is in the environment's pipe
        self.init_ms: float | None = None  # its environment's init, when it was that one's cold start


class _Environment:
    """One worker process and its pipes."""

    def __init__(
        self, proc: subprocess.Popen[bytes], to_worker: int, from_worker: int, workdir: Path | None
    ) -> None:
        self.proc = proc
        self.to_worker = to_worker
        self.from_worker = from_worker
        self.workdir = workdir
        self.poll = select.poll()
        self.poll.register(from_worker, select.POLLIN | select.POLLHUP | select.POLLERR)
        self.buffer = bytearray()
        self.last_answer_at = 0.0
        # Until its first answer: (its init in ms, spawn -> ready in ms), what that invocation paid.
        self.cold: tuple[float, float] | None = None

    def read_line(self, deadline: float) -> bytes | None:
        """One line from the worker; None at end of file; b"" when the deadline passed first."""
        buffer = self.buffer
        while True:
            end = buffer.find(b"\n")
            if end >= 0:
                line = bytes(buffer[:end])
                del buffer[: end + 1]
                return line
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return b""
            if not self.poll.poll(int(remaining * 1000) + 1):
                continue
            chunk = os.read(self.from_worker, 1 << 16)
            if not chunk:
                return None
            buffer += chunk

    def end(self, kill: bool = False) -> int:
        """Close the input pipe (the worker exits by itself), or kill; returns the exit status.
        The output pipe stays open for the reader thread, which alone closes it (release)."""
        self.to_worker = _close(self.to_worker)
        if kill:
            self.proc.kill()
        try:
            return self.proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def release(self) -> None:
        """Close the output pipe and remove the scratch folder (the reader thread's last act, or
        stop()'s once the reader is gone); safe to call again."""
        self.from_worker = _close(self.from_worker)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None


def _close(fd: int) -> int:
    """Close a pipe end unless it is closed already (-1); returns -1, what the end is then."""
    if fd >= 0:
        with contextlib.suppress(OSError):
            os.close(fd)
    return -1


class FunctionVersion:
    """One published version of the inference function and its execution environment.

    Invocations queue in the environment's input pipe and run one at a time, in order (one
    Lambda execution environment serves one invocation at a time); a reader thread hands each
    answer to its caller, so the environment never waits for a caller to come and fetch it."""

    def __init__(
        self,
        function_version: str,
        model_version: str,
        faults: Sequence[str] = (),
        models_dir: Path | None = None,
        *,
        settings: StackSettings | None = None,
        log_path: Path | None = None,
        seed: int | None = None,
    ) -> None:
        self.function_version = str(function_version)
        self.model_version = str(model_version)
        self.faults = tuple(faults)
        self._needs_workdir = False  # the corrupt fault serves a damaged copy of the model from one
        if self.faults:
            from emulator.faults import parse

            self._needs_workdir = parse(self.faults).corrupt  # raises FaultError now, not in the worker
        self.models_dir = None if models_dir is None else Path(models_dir)
        self.settings = settings or default_settings()
        self.log_path = None if log_path is None else Path(log_path)
        self.seed = seed
        self.python = sys.executable  # the interpreter its environments run (serve names it)
        self.timeout_s = self.settings.inference.timeout_s
        self.cold_starts_ms: list[float] = []  # start -> first answer, of every environment started
        self.init_ms: float | None = None  # the latest environment's init (imports + model load)
        self.environments = 0  # execution environments started so far
        # The latest environment's init failure ({"errorType", "errorMessage", "missingModule"?}):
        # Lambda answers every invocation of such an environment with that error.
        self.init_error: dict[str, Any] | None = None
        self._lock = threading.RLock()  # the environment, the pending calls, writes to the pipe
        self._env: _Environment | None = None
        self._pending: dict[str, _Call] = {}  # in the order sent: the worker answers in that order
        self._reader: threading.Thread | None = None
        self._log = None
        self._hook_done = False  # the PreTraffic hook is over: faults with @hook are on

    def __repr__(self) -> str:
        faults = list(self.faults)
        return f"FunctionVersion({self.function_version!r}, {self.model_version!r}, faults={faults})"

    # ------------------------------------------------------------------ names

    @property
    def name(self) -> str:
        """The function's name (FunctionName in the template)."""
        return self.settings.inference.name

    @property
    def unqualified_arn(self) -> str:
        return f"arn:aws:lambda:{self.settings.region}:{LOCAL_ACCOUNT}:function:{self.name}"

    @property
    def arn(self) -> str:
        """The qualified ARN of this version."""
        return f"{self.unqualified_arn}:{self.function_version}"

    @property
    def cold_start_ms(self) -> float | None:
        """Start -> first answer of the latest environment that answered one."""
        return self.cold_starts_ms[-1] if self.cold_starts_ms else None

    @property
    def pid(self) -> int | None:
        """The execution environment's process id, None when none is running."""
        env = self._env
        return None if env is None or env.proc.poll() is not None else env.proc.pid

    @property
    def running(self) -> bool:
        return self.pid is not None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FunctionVersion:
        """Start the execution environment now (its init runs before this returns); returns self."""
        with self._lock:
            if self._env is None:
                self._spawn()
        return self

    def stop(self) -> None:
        """Stop the execution environment once the invocations already sent to it are answered
        (waiting up to _STOP_GRACE_S). An invocation that arrives later starts a new environment, as
        Lambda does for a version that is invoked again."""
        deadline = time.monotonic() + _STOP_GRACE_S
        while time.monotonic() < deadline:
            with self._lock:
                if not self._pending:
                    break
            time.sleep(0.01)
        with self._lock:
            env, self._env = self._env, None
            calls = list(self._pending.values())
            self._pending.clear()
        if env is not None:
            env.end(kill=bool(calls))  # the reader sees the end of its output and releases it
        for call in calls:
            self._finish(call, self._failure(call.request_id, "the execution environment was stopped"))
        reader = self._reader
        if reader is not None and reader is not threading.current_thread():
            reader.join(timeout=5.0)
        if env is not None and (reader is None or not reader.is_alive()):
            # The reader may have left (it found no environment) before it saw this one end.
            env.release()
        self._close_log()

    def __enter__(self) -> FunctionVersion:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ invoking

    def invoke(self, event: dict[str, Any]) -> Any:
        """Invoke this version directly (as lambda invoke on its qualified ARN): the handler's
        result (the proxy response dict), or Lambda's error payload {"errorType", "errorMessage"}
        when the invocation failed. Raises InvokeError when Lambda would refuse the call."""
        return self.invoke_detailed(event).payload

    def invoke_detailed(
        self,
        event: dict[str, Any],
        *,
        invoked_function_arn: str | None = None,
        trace_id: str | None = None,
        max_wait_s: float | None = None,
    ) -> Invocation:
        """Invoke and report as the Invoke API does (function error, duration, cold start).
        With max_wait_s, raise CallerGaveUp when no answer came within that many seconds (time
        queued behind other invocations included)."""
        request_id = str(uuid.uuid4())
        message = {
            "id": request_id,
            "event": event,
            "invoked_function_arn": invoked_function_arn or self.arn,
            "trace_id": trace_id or "",
            "timeout_ms": int(self.timeout_s * 1000),
        }
        data = json.dumps(message).encode() + b"\n"
        if len(data) > self.settings.invoke_payload_limit_bytes:
            raise RequestTooLarge(
                f"the event is {len(data)} bytes; Lambda accepts at most "
                f"{self.settings.invoke_payload_limit_bytes} bytes per synchronous invocation"
            )
        call = _Call(request_id, data)
        with self._lock:
            if self._env is None:
                self._spawn()  # no environment: this invocation pays the cold start
            self._pending[request_id] = call
            self._send(call)
        give_up = time.monotonic() + (math.inf if max_wait_s is None else max_wait_s)
        while not call.done.acquire(timeout=max(0.0, min(1.0, give_up - time.monotonic()))):
            if time.monotonic() >= give_up:
                raise CallerGaveUp(
                    f"no answer from version {self.function_version} within {max_wait_s:g} s",
                    self,
                    (time.monotonic() - call.sent_at) * 1000.0,
                )
            reader = self._reader
            if reader is None or not reader.is_alive():  # nobody left to answer it
                with self._lock:
                    self._pending.pop(request_id, None)
                if call.done.acquire(blocking=False):
                    break
                raise EnvironmentFailed(f"function version {self.function_version}: the environment is gone")
        answer = call.answer or {}
        if "spawn_failed" in answer:
            raise EnvironmentFailed(answer["spawn_failed"])
        ok = answer.get("ok") is True
        elapsed_ms = (time.monotonic() - call.sent_at) * 1000.0
        return Invocation(
            request_id=request_id,
            executed_version=self.function_version,
            payload=answer.get("payload"),
            function_error=None if ok else "Unhandled",
            duration_ms=float(answer.get("duration_ms", elapsed_ms)),
            cold_start=call.init_ms is not None,
            init_ms=call.init_ms,
            records=tuple(answer.get("records") or ()),  # the worker sends none for a failed one
        )

    def mark_hook_done(self) -> None:
        """Tell the environment the PreTraffic hook is over (faults with @hook start now). The
        message queues behind the invocations already sent; a later environment is told at start."""
        with self._lock:
            self._hook_done = True
            env = self._env
            if env is not None:
                try:
                    os.write(env.to_worker, b'{"control": "hook-done"}\n')
                except OSError:  # a dead environment: its successor starts with --hook-done
                    pass

    # ------------------------------------------------------------------ internals

    def _send(self, call: _Call) -> None:
        """Write a call into the environment's pipe (under _lock). A dead environment is noticed
        by the reader, which starts a new one and sends it again."""
        env = self._env
        assert env is not None
        call.sent_at = time.monotonic()
        call.written = False
        try:
            write_all(env.to_worker, call.data)
        except OSError:
            return
        call.written = True

    def _spawn(self) -> None:
        """Start a new execution environment and wait for its init (under _lock)."""
        to_worker_r, to_worker_w = os.pipe()
        from_worker_r, from_worker_w = os.pipe()
        args = [self.python, "-m", "emulator.worker", "--requests", str(to_worker_r)]
        args += ["--responses", str(from_worker_w)]
        workdir = None
        if self._needs_workdir:
            workdir = Path(tempfile.mkdtemp(prefix=f"emulator-{self.name}-{self.function_version}-"))
            args += ["--workdir", str(workdir)]
        for spec in self.faults:
            args += ["--fault", spec]
        if self.seed is not None:
            args += ["--seed", str(self.seed)]
        if self._hook_done:
            args.append("--hook-done")
        env_vars = lambda_environment(
            self.settings, self.function_version, self.model_version, self.models_dir
        )
        out: Any = subprocess.DEVNULL
        if self.log_path is not None:
            if self._log is None:
                self.log_path.parent.mkdir(parents=True, exist_ok=True)
                self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
            out = self._log
        try:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env=env_vars,
                cwd=ROOT,
                pass_fds=(to_worker_r, from_worker_w),
                # Its own session: Ctrl-C in the terminal reaches the gateway, which stops the
                # environments in order, instead of killing them mid-invocation.
                start_new_session=True,
            )
        except OSError as exc:
            for fd in (to_worker_r, to_worker_w, from_worker_r, from_worker_w):
                os.close(fd)
            if workdir is not None:
                shutil.rmtree(workdir, ignore_errors=True)
            raise EnvironmentFailed(f"cannot start {self.python}: {exc.strerror}") from None
        os.close(to_worker_r)
        os.close(from_worker_w)
        spawned = time.monotonic()
        env = _Environment(proc, to_worker_w, from_worker_r, workdir)
        self.environments += 1
        ready = env.read_line(time.monotonic() + _READY_TIMEOUT_S)
        if not ready:
            code = env.end(kill=True)
            env.release()
            where = self.log_path or "its log (give the FunctionVersion a log_path to keep it)"
            raise EnvironmentFailed(
                f"function version {self.function_version} ({self.model_version}) did not start "
                f"(exit status {code}); see {where}"
            )
        message = json.loads(ready)
        self.init_ms = float(message.get("init_ms") or 0.0)
        self.init_error = message.get("error") or None
        env.last_answer_at = time.monotonic()
        env.cold = (self.init_ms, (env.last_answer_at - spawned) * 1000.0)
        self._env = env
        if self._reader is None:
            self._reader = threading.Thread(
                target=self._read_answers_guarded, name=f"fn-{self.function_version}-answers", daemon=True
            )
            self._reader.start()

    def _read_answers_guarded(self) -> None:
        try:
            self._read_answers()
        except Exception as exc:  # a bug here must fail the waiting calls, not hang them
            with self._lock:
                calls = list(self._pending.values())
                self._pending.clear()
                env, self._env, self._reader = self._env, None, None
            if env is not None:
                env.end(kill=True)
                env.release()
            for call in calls:
                self._finish(call, {"spawn_failed": f"the environment's reader failed: {type(exc).__name__}"})

    def _read_answers(self) -> None:
        """The reader thread: hands answers to their callers; notices crashes and timeouts."""
        while True:
            with self._lock:
                env = self._env
                if env is None:
                    self._reader = None  # decided under the lock: the next _spawn starts a reader
                    return
                oldest = next(iter(self._pending.values()), None)
            # The oldest call's timeout runs from when it started (sent, or the one before answered);
            # with none in the pipe, look again soon.
            soon = time.monotonic() + 0.25
            if oldest is None:
                deadline = soon
            else:
                deadline = max(oldest.sent_at, env.last_answer_at) + self.timeout_s
                deadline = deadline if oldest.written else min(deadline, soon)
            try:
                line = env.read_line(deadline)
            except (OSError, ValueError):  # the environment was closed under us (stop)
                line = None
            if line == b"":
                if oldest is not None and oldest.written and time.monotonic() >= deadline:
                    self._lost(env, oldest, timed_out=True)
                continue
            if line is None:
                self._lost(env, None, timed_out=False)
                continue
            answer = json.loads(line)
            now = time.monotonic()
            with self._lock:
                call = self._pending.pop(answer.get("id"), None)
                if call is None:
                    continue
                if env.cold is not None:  # the environment's first answer: its cold start
                    call.init_ms, ready_ms = env.cold
                    env.cold = None
                    self.cold_starts_ms.append(ready_ms + (now - call.sent_at) * 1000.0)
                env.last_answer_at = now
            self._finish(call, answer)

    def _lost(self, env: _Environment, oldest: _Call | None, timed_out: bool) -> None:
        """The environment died (or ran past the timeout, and Lambda stops it): the invocation it
        was running fails; the ones queued behind it go to a new environment."""
        with self._lock:
            if self._env is not env:  # stopped meanwhile: only its output pipe is left to close
                env.release()
                return
            self._env = None
            code = env.end(kill=timed_out)
            env.release()
            failed = oldest if timed_out else next(iter(self._pending.values()), None)
            answer: dict[str, Any] = {}
            if failed is not None and failed.written:
                request_id, begun = failed.request_id, max(failed.sent_at, env.last_answer_at)
                self._pending.pop(request_id, None)
                answer = self._failure(request_id, TIMED_OUT if timed_out else code)
                self._platform_log(request_id, answer["payload"], begun)
            else:
                failed = None
            rest = list(self._pending.values())
            if rest:
                try:
                    self._spawn()
                except EnvironmentFailed as exc:
                    self._pending.clear()
                    for call in rest:
                        self._finish(call, {"spawn_failed": str(exc)})
                    rest = []
                for call in rest:
                    self._send(call)
        if failed is not None:
            self._finish(failed, answer)

    def _platform_log(self, request_id: str, error: dict[str, Any], begun: float) -> None:
        """What Lambda itself writes to the function's log when an invocation dies with its
        environment (the handler cannot: it was killed or timed out), so that the 502 API Gateway
        answers for it leaves a trace under its RequestId (under _lock)."""
        if self._log is None:
            return
        duration_ms = (time.monotonic() - begun) * 1000.0
        if error["errorType"] == TIMED_OUT:
            lines = [f"{utc_stamp()} {request_id} Task timed out after {self.timeout_s:.2f} seconds"]
            status = "Status: timeout"
        else:
            lines = [error["errorMessage"], error["errorType"]]
            status = f"Status: error\tError Type: {error['errorType']}"
        memory_mb = self.settings.inference.memory_mb
        lines += [f"END RequestId: {request_id}", report_line(request_id, duration_ms, memory_mb, status)]
        try:
            self._log.write(("\n".join(lines) + "\n").encode())
            self._log.flush()
        except (OSError, ValueError):  # a full disk or a closed log must not fail the invocation
            pass

    @staticmethod
    def _finish(call: _Call, answer: dict[str, Any]) -> None:
        """Hand the answer over (once: the call has just left _pending, under _lock)."""
        call.answer = answer
        try:
            call.done.release()
        except RuntimeError:  # already handed over
            pass

    def _failure(self, request_id: str, cause: str | int) -> dict[str, Any]:
        """The answer of an invocation that died with its environment, as Lambda reports it. `cause`:
        TIMED_OUT, the environment's exit status (negative: the signal that ended it), or why it ended."""
        if cause == TIMED_OUT:
            error, why = TIMED_OUT, f"Task timed out after {self.timeout_s:.2f} seconds"
        elif isinstance(cause, int):
            how = f"signal: {-cause}" if cause < 0 else f"exit status {cause}"
            error, why = "Runtime.ExitError", f"Runtime exited with error: {how}"
        else:
            error, why = "Runtime.ExitError", cause
        message = f"RequestId: {request_id} Error: {why}"
        return {
            "ok": False,
            "payload": {"errorType": error, "errorMessage": message, "requestId": request_id},
        }

    def _close_log(self) -> None:
        with self._lock:
            if self._log is not None and self._env is None:
                self._log.close()
                self._log = None


@dataclass(frozen=True)
class Routing:
    """Where an alias sends traffic: the primary, and the canary with its share."""

    primary: FunctionVersion
    canary: FunctionVersion | None
    weight: float  # share of invocations the canary gets, 0..1


class Alias:
    """A Lambda alias (e.g. `live`) over one or two versions with weighted routing."""

    def __init__(
        self,
        name: str,
        primary: FunctionVersion,
        canary: FunctionVersion | None = None,
        weight: float = 0.0,
        seed: int | None = None,
    ) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._routing = Routing(primary, None, 0.0)
        self._known: dict[int, FunctionVersion] = {id(primary): primary}
        self.set_routing(canary, weight)

    @property
    def routing(self) -> Routing:
        """The current routing (a snapshot)."""
        return self._routing

    @property
    def primary(self) -> FunctionVersion:
        return self._routing.primary

    @property
    def canary(self) -> FunctionVersion | None:
        return self._routing.canary

    @property
    def weight(self) -> float:
        return self._routing.weight

    @property
    def arn(self) -> str:
        return f"{self._routing.primary.unqualified_arn}:{self.name}"

    def versions(self) -> list[FunctionVersion]:
        """Every version this alias has routed to (to stop them all at the end)."""
        with self._lock:
            return list(self._known.values())

    def set_routing(self, canary: FunctionVersion | None, weight: float) -> None:
        """Send `weight` (0..1) of the traffic to `canary`, the rest to the primary. Thread-safe:
        an invocation already routed finishes on the version it was routed to."""
        weight = float(weight)
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"alias {self.name}: weight must be between 0 and 1, got {weight}")
        if canary is None and weight != 0.0:
            raise ValueError(f"alias {self.name}: a weight of {weight} needs a canary version")
        with self._lock:
            if canary is not None and canary is self._routing.primary:
                raise ValueError(
                    f"alias {self.name}: version {canary.function_version} is already the primary"
                )
            if canary is not None:
                self._known[id(canary)] = canary
            self._routing = Routing(self._routing.primary, canary, weight if canary is not None else 0.0)

    def set_primary(self, primary: FunctionVersion) -> None:
        """Point the alias at `primary` alone (what CodeDeploy does when a deployment completes)."""
        with self._lock:
            self._known[id(primary)] = primary
            self._routing = Routing(primary, None, 0.0)

    def promote(self) -> FunctionVersion:
        """Make the canary the primary, with no canary left; returns the new primary."""
        with self._lock:
            canary = self._routing.canary
            if canary is None:
                raise ValueError(f"alias {self.name}: no canary to promote")
            self._routing = Routing(canary, None, 0.0)
            return canary

    def pick(self) -> FunctionVersion:
        """The version the next invocation goes to."""
        with self._lock:
            routing = self._routing
            if routing.canary is not None and routing.weight > 0.0 and self._rng.random() < routing.weight:
                return routing.canary
            return routing.primary

    def invoke_detailed(
        self, event: dict[str, Any], *, trace_id: str | None = None, max_wait_s: float | None = None
    ) -> tuple[FunctionVersion, Invocation]:
        """Invoke through the alias: (the version it was routed to, the invocation's report).
        Raises CallerGaveUp past max_wait_s."""
        version = self.pick()
        invocation = version.invoke_detailed(
            event,
            invoked_function_arn=f"{version.unqualified_arn}:{self.name}",
            trace_id=trace_id,
            max_wait_s=max_wait_s,
        )
        return version, invocation

    def start(self) -> Alias:
        """Start every version's execution environment (in parallel: each init takes ~0.5 s); a
        failure is raised here once every start has ended."""
        with ThreadPoolExecutor(thread_name_prefix=f"alias-{self.name}-start") as pool:
            starts = [pool.submit(v.start) for v in self.versions() if not v.running]
        for start in starts:
            start.result()
        return self

    def stop(self) -> None:
        """Stop every version's execution environment."""
        for version in self.versions():
            version.stop()
