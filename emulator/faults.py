"""Faults a rehearsal injects into one execution environment (the canary's, never the baseline's).

Specs, as given to `python -m emulator rehearse --fault` (repeatable):

    errors=P          a fraction P of invocations crash as an unhandled Lambda error would
                      (API Gateway answers them 502); P in [0, 1], or a percentage like 5%
    latency=X         every invocation takes X times as long (X >= 1), by sleeping after it
    labels=LABEL:P    a fraction P of the answers say LABEL instead of the model's label
    corrupt           the environment serves a copy of its model with one byte flipped: the
                      sha256 check fails at init and every request answers 500
    judge=crash       not the canary's environment but the judge: it raises at every look, so no
                      verdict is published and the PostTraffic gate must fail the deployment

`@N` after errors, latency or labels delays the fault until the environment has served N
invocations (e.g. errors=0.05@10000: the first 10,000 invocations, the PreTraffic hook's
known-answer requests among them, are answered correctly), which is how a fault the hook cannot see
(a leak, a degraded dependency, drift on live inputs) is rehearsed. `@hook` starts it once the
PreTraffic hook is done, whatever it sent (the deployment controller tells the environment; a
new environment started later is told at its start).

The worker process of emulator.functions applies them: prepare_models() before infer.app is
imported (so a corrupt model fails at init, where the real one would), then apply() around
the real handler. Draws come from seeded generators, one per fault, so a rehearsal with a
given --seed injects the same faults into the same invocations every time.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infer.model import CATEGORIES, LABELS

Handler = Callable[[dict[str, Any], Any], Any]

FORMS = (
    "errors=P, latency=X, labels=LABEL:P, corrupt or judge=crash "
    "(optionally @N or @hook after the first three)"
)
HOOK = "hook"  # the onset "once the PreTraffic hook is done"
MAX_LATENCY_FACTOR = 1000.0  # beyond this a fault only makes invocations hit the function timeout
NO_EFFECTS = {"label": None, "delay_ms": 0.0, "latency_factor": 1.0}  # apply()'s `effects` of a clean call


class FaultError(ValueError):
    """A fault spec that cannot be used; the message quotes it and says what would be accepted."""


class InjectedCrash(RuntimeError):
    """Raised inside the handler by an `errors` fault: the function crashes, as an unhandled
    exception would, and the runtime reports a function error (API Gateway then answers 502)."""


@dataclass(frozen=True)
class Faults:
    """What is wrong with one execution environment; the defaults mean nothing is."""

    error_rate: float = 0.0  # errors=P: share of invocations that crash
    error_after: int | str = 0  # invocations served correctly before `errors` starts, or HOOK
    latency_factor: float = 1.0  # latency=X: multiplier on each invocation's handler time
    latency_after: int | str = 0  # invocations at normal speed before `latency` starts, or HOOK
    forced_labels: tuple[tuple[str, float], ...] = ()  # labels=LABEL:P, in the order given
    labels_after: int | str = 0  # invocations answered truthfully before `labels` starts, or HOOK
    corrupt: bool = False  # corrupt: serve a copy of the model with one byte flipped
    judge_crash: bool = False  # judge=crash: the judge raises at every look (not a worker fault)
    specs: tuple[str, ...] = field(default=(), compare=False)  # the specs as given, for reports

    @property
    def in_handler(self) -> bool:
        """Whether apply() wraps the handler (corrupt acts on the model, judge=crash on the judge)."""
        return bool(self.error_rate or self.latency_factor != 1.0 or self.forced_labels)

    @property
    def any(self) -> bool:
        return self.in_handler or self.corrupt or self.judge_crash

    def describe(self) -> str:
        """The faults in one phrase, for progress lines and reports."""
        return ", ".join(self.specs) if self.specs else "none"


def _fail(spec: str, why: str) -> FaultError:
    return FaultError(f"fault {spec!r}: {why}; use {FORMS}")


def _probability(spec: str, raw: str) -> float:
    text = raw.strip()
    scale = 1.0
    if text.endswith("%"):
        text, scale = text[:-1].strip(), 100.0
    try:
        value = float(text) / scale
    except ValueError:
        raise _fail(spec, f"{raw!r} is not a number") from None
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise _fail(spec, f"{raw.strip()} is not a share between 0 and 1 (or 0% and 100%)")
    return value


def _onset(spec: str, raw: str | None) -> int | str:
    if raw is None:
        return 0
    if raw.strip().lower() == HOOK:
        return HOOK
    try:
        value = int(raw.strip())
    except ValueError:
        raise _fail(spec, f"@{raw} is not a whole number of invocations nor @hook") from None
    if value < 0:
        raise _fail(spec, f"@{raw} must not be negative")
    return value


def _label(spec: str, raw: str) -> str:
    wanted = raw.strip().lower().replace(" ", "_").replace("-", "_")
    by_category = {c.lower().replace(" ", "_"): label for label, c in CATEGORIES.items()}
    label = wanted if wanted in LABELS else by_category.get(wanted)
    if label is None:
        raise _fail(spec, f"label {raw.strip()!r} is not one of {', '.join(LABELS)}")
    return label


def parse(specs: Iterable[str]) -> Faults:
    """Faults from their specs; raises FaultError on the first one that is not understood."""
    values: dict[str, Any] = {}
    forced: dict[str, float] = {}
    given: list[str] = []
    for spec in specs:
        text = str(spec).strip()
        if not text:
            raise _fail(str(spec), "empty")
        kind, eq, rest = text.partition("=")
        kind = kind.strip().lower()
        rest, at, onset_raw = rest.partition("@")
        onset = _onset(text, onset_raw if at else None)
        if kind == "corrupt":
            if eq or at:
                raise _fail(text, "corrupt takes no value")
            values["corrupt"] = True
        elif not eq or not rest.strip():
            raise _fail(
                text, "missing value" if kind in ("errors", "latency", "labels", "judge") else "unknown fault"
            )
        elif kind == "judge":
            if rest.strip().lower() != "crash" or at:
                raise _fail(text, "the judge fault is judge=crash")
            values["judge_crash"] = True
        elif kind == "errors":
            if "error_rate" in values:
                raise _fail(text, "errors given twice")
            values["error_rate"], values["error_after"] = _probability(text, rest), onset
        elif kind == "latency":
            if "latency_factor" in values:
                raise _fail(text, "latency given twice")
            try:
                factor = float(rest.strip().rstrip("xX"))
            except ValueError:
                raise _fail(text, f"{rest.strip()!r} is not a number") from None
            if not math.isfinite(factor) or not 1.0 <= factor <= MAX_LATENCY_FACTOR:
                raise _fail(text, f"the multiplier must be between 1 and {MAX_LATENCY_FACTOR:g}")
            values["latency_factor"], values["latency_after"] = factor, onset
        elif kind == "labels":
            name, colon, share = rest.rpartition(":")
            if not colon or not name.strip():
                raise _fail(text, "write labels=LABEL:P, e.g. labels=hate_speech:0.2")
            label = _label(text, name)
            if label in forced:
                raise _fail(text, f"{label} given twice")
            if "labels_after" in values and values["labels_after"] != onset:
                raise _fail(text, "every labels fault must start at the same @N")
            forced[label] = _probability(text, share)
            values["labels_after"] = onset
            if sum(forced.values()) > 1.0 + 1e-9:
                raise _fail(text, "the labels shares add up to more than 1")
        else:
            raise _fail(text, f"unknown fault {kind!r}")
        given.append(text)
    return Faults(**values, forced_labels=tuple(forced.items()), specs=tuple(given))


def precise_wait(seconds: float, clock: Callable[[], float] = time.perf_counter) -> None:
    """Wait `seconds`, precisely even below a millisecond: a sleep that short wakes up late (by
    ~1 ms on an idle machine), which would turn latency=1.1 on a 0.5 ms handler into x3, so the
    last millisecond is spun."""
    deadline = clock() + seconds
    if seconds > 0.002:
        time.sleep(seconds - 0.0015)
    while clock() < deadline:
        pass


def apply(
    handler: Handler,
    specs: Iterable[str] | Faults,
    *,
    seed: int | None = None,
    wait: Callable[[float], None] = precise_wait,
    clock: Callable[[], float] = time.perf_counter,
    hook_done: Callable[[], bool] = lambda: False,
) -> Handler:
    """The handler with the faults applied (the handler itself when there are none).

    Runs inside the worker process, around the real `infer.app.lambda_handler`. `corrupt`
    acts on the model files instead (prepare_models); here it changes nothing. `hook_done` says
    whether the PreTraffic hook is over (the onset of @hook faults). The returned handler's
    `effects` says what the latest invocation got: {"label": forced label or None, "delay_ms" added,
    "latency_factor" applied}.
    """
    faults = specs if isinstance(specs, Faults) else parse(specs)
    if not faults.in_handler:
        return handler
    # One generator per fault: adding a fault never changes which invocations another one hits.
    errors_rng = random.Random(f"{seed}:errors")
    labels_rng = random.Random(f"{seed}:labels")
    lock = threading.Lock()
    served = 0

    def on(after: int | str, count: int) -> bool:
        return hook_done() if after == HOOK else count > int(after)

    def faulty(event: dict[str, Any], context: Any) -> Any:
        nonlocal served
        with lock:
            served += 1
            count = served
            crash = on(faults.error_after, count) and errors_rng.random() < faults.error_rate
            forced = _draw_label(faults, labels_rng) if on(faults.labels_after, count) else None
        faulty.effects = dict(NO_EFFECTS)
        if crash:
            raise InjectedCrash("injected fault: errors")
        started = clock()
        response = handler(event, context)
        if forced is not None:
            relabelled = force_label(response, forced)
            if relabelled is not response:  # a 200 with a label: the answer (and its log) say `forced`
                faulty.effects["label"] = forced
            response = relabelled
        if faults.latency_factor != 1.0 and on(faults.latency_after, count):
            delay = max(0.0, (clock() - started) * (faults.latency_factor - 1.0))
            wait(delay)
            response = scale_handler_latency(response, faults.latency_factor)
            faulty.effects["delay_ms"] = delay * 1000.0
            faulty.effects["latency_factor"] = faults.latency_factor
        return response

    faulty.effects = dict(NO_EFFECTS)
    return faulty


def _draw_label(faults: Faults, rng: random.Random) -> str | None:
    u = rng.random()
    for label, share in faults.forced_labels:
        if u < share:
            return label
        u -= share
    return None


LATENCY_HEADER = "X-Handler-Latency-Ms"  # infer.app.LATENCY_HEADER: the handler's own time


def scale_handler_latency(response: Any, factor: float) -> Any:
    """The answer of a handler `factor` times as slow: its X-Handler-Latency-Ms header (on the
    probe's and the hook's answers) says so too; anything else unchanged."""
    headers = response.get("headers") if isinstance(response, Mapping) else None
    if not isinstance(headers, Mapping):
        return response
    name = next((k for k in headers if str(k).lower() == LATENCY_HEADER.lower()), None)
    if name is None:
        return response
    try:
        value = float(headers[name])
    except (TypeError, ValueError):
        return response
    return {**response, "headers": {**headers, name: f"{value * factor:.3f}"}}


def force_label(response: Any, label: str) -> Any:
    """A 200 proxy response whose body says `label` (and its category); anything else unchanged."""
    if not isinstance(response, Mapping) or response.get("statusCode") != 200:
        return response
    try:
        body = json.loads(response.get("body") or "")
    except (TypeError, ValueError):
        return response
    if not isinstance(body, dict) or "label" not in body:
        return response
    body["label"], body["category"] = label, CATEGORIES[label]
    return {**response, "body": json.dumps(body)}


def corrupt_copy(model_dir: Path, dest: Path) -> Path:
    """Copy model_dir to dest with one byte of its largest listed artifact flipped; returns dest.

    The manifest stays intact, so the copy loads until the sha256 check of that file fails,
    which is exactly what a damaged upload or a bad build does to the real function.
    """
    model_dir, dest = Path(model_dir), Path(dest)
    shutil.copytree(model_dir, dest)
    manifest = json.loads((dest / "manifest.json").read_text(encoding="utf-8"))
    listed = [name for name in (manifest.get("files") or {}) if (dest / name).is_file()]
    if not listed:
        raise FaultError(f"fault 'corrupt': {model_dir}/manifest.json lists no artifact file to damage")
    victim = dest / max(listed, key=lambda name: ((dest / name).stat().st_size, name))
    data = bytearray(victim.read_bytes())
    middle = len(data) // 2
    data[middle] ^= 0xFF
    victim.write_bytes(bytes(data))
    return dest


def prepare_models(faults: Faults, model_version: str, models_dir: Path, workdir: Path) -> Path:
    """The MODELS_DIR the environment should serve from: models_dir itself, or with `corrupt`
    a copy under workdir holding a damaged models/<model_version>."""
    if not faults.corrupt:
        return Path(models_dir)
    target = Path(workdir) / "models"
    corrupt_copy(Path(models_dir) / model_version, target / model_version)
    return target
