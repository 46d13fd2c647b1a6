"""Helpers for driving the inference handler (infer.app) in-process with the events in events/.

infer.app reads its settings and loads its model when imported, as on Lambda; `load_app` imports
(or re-imports) it under a given environment, so each test module knows which model it serves.
"""

from __future__ import annotations

import copy
import importlib
import io
import json
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from emulator.lambda_context import LambdaContext, stand_in

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
ROUTE = "/infer/hate-speech"
# The API key in the event files: a made-up value the log must never show.
EVENT_API_KEY = "test-api-key-0123456789abcdef"
APP_ENV_KEYS = (
    "MODEL_VERSION",
    "MODELS_DIR",
    "MAX_TEXT_CHARS",
    "LOG_LEVEL",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "SHADOW_MODELS",
)


CONTEXT_FUNCTION_NAME = "hate-speech-dev-infer"


def FakeLambdaContext(function_version: str = "7") -> LambdaContext:  # noqa: N802 (named as the class it was)
    """The Lambda context of one in-process call (emulator.lambda_context's stand-in)."""
    return stand_in(CONTEXT_FUNCTION_NAME, function_version, "5f1d3c2e-0000-4000-8000-000000000001")


def load_app(env: Mapping[str, str]) -> ModuleType:
    """infer.app imported afresh with exactly these inference settings in the environment."""
    with pytest.MonkeyPatch.context() as mp:
        for key in APP_ENV_KEYS:
            mp.delenv(key, raising=False)
        for key, value in env.items():
            mp.setenv(key, value)
        if "infer.app" in sys.modules:
            return importlib.reload(sys.modules["infer.app"])
        return importlib.import_module("infer.app")


@cache
def _event_text(name: str) -> str:
    return (EVENTS / f"{name}.json").read_text(encoding="utf-8")


def event(name: str, **changes: Any) -> dict[str, Any]:
    """A fresh copy of events/<name>.json with top-level keys replaced."""
    ev = json.loads(_event_text(name))
    ev.update(copy.deepcopy(changes))
    return ev


def event_names() -> list[str]:
    return sorted(p.stem for p in EVENTS.glob("infer-*.json"))


@dataclass
class Answer:
    """A handler response, decoded."""

    status: int
    headers: dict[str, str]  # lower-cased names, last value of each
    body: Any  # the JSON body, parsed
    raw: dict[str, Any]  # the proxy response as the handler returned it


def invoke(app: ModuleType, ev: dict[str, Any], context: LambdaContext | None = None) -> Answer:
    """Call infer.app.lambda_handler and decode its API Gateway proxy response."""
    raw = app.lambda_handler(ev, context or FakeLambdaContext())
    headers: dict[str, str] = {}
    for name, values in (raw.get("multiValueHeaders") or {}).items():
        headers[name.lower()] = values[-1]
    for name, value in (raw.get("headers") or {}).items():
        headers[name.lower()] = value
    assert isinstance(raw["body"], str), "the proxy response body must be a string"
    return Answer(status=raw["statusCode"], headers=headers, body=json.loads(raw["body"]), raw=raw)


@contextmanager
def captured_logs(app: ModuleType) -> Iterator[io.StringIO]:
    """The handler's Powertools log output (JSON lines) while the block runs."""
    handler = app.logger.registered_handler
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    try:
        yield buffer
    finally:
        handler.setStream(previous)


def log_records(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def request_records(buffer: io.StringIO) -> list[dict[str, Any]]:
    """The per-request records ("inference") among the captured log lines."""
    return [r for r in log_records(buffer) if r.get("message") == "inference"]


def emf_records(stdout: str) -> list[dict[str, Any]]:
    """The CloudWatch EMF documents Powertools printed."""
    out = []
    for line in stdout.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            out.append(json.loads(line))
    return out
