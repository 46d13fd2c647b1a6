"""Settings of the canary judge Lambda, the PreTraffic hook, the probe and the PostTraffic gate:
the one place that reads their environment variables. The evidence judge's own thresholds are
canary.evidence.EvidenceConfig (measured in bench/canary_power.py), not environment settings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from canary.manifests import DEFAULT_MODELS_DIR

PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # /var/task in the Lambda package
DEFAULT_GOLDEN = PACKAGE_ROOT / "golden.jsonl"
TEST_TEXTS = "test_texts.jsonl"  # training/golden.py TEST_TEXTS: written next to the golden set
MAX_HOOK_CONCURRENCY = 64  # the hook's Lambda client pools this many connections


class ConfigError(ValueError):
    """An environment variable the component cannot run with; the message names it."""


def _env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _number(env: Mapping[str, str], name: str, default: Any, kind: type) -> Any:
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        return kind(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a valid {kind.__name__}") from None


@dataclass(frozen=True)
class JudgeLambdaConfig:
    """How the scheduled judge finds the canary and publishes its verdict."""

    function_name: str  # FUNCTION_NAME: the inference function's name (required)
    alias: str = "live"  # ALIAS_NAME: the alias CodeDeploy shifts
    log_group: str = ""  # LOG_GROUP: its log group (default /aws/lambda/<FUNCTION_NAME>)
    namespace: str = "HateSpeechApi"  # POWERTOOLS_METRICS_NAMESPACE: where CanaryVerdict goes
    models_dir: Path = DEFAULT_MODELS_DIR  # MANIFESTS_DIR: folder of <version>/manifest.json
    application: str | None = None  # CODEDEPLOY_APPLICATION: finds the canary's start (AllowTraffic)
    deployment_group: str | None = None  # DEPLOYMENT_GROUP: ... in this group (unset: any of the application)
    # HOOK_LOG_GROUP: the PreTraffic hook's log group, where its measured latency reference is
    # (unset: no reference, the latency metric stays NoData and the gate fails the deployment)
    hook_log_group: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> JudgeLambdaConfig:
        env = _env(environ)
        name = _get(env, "FUNCTION_NAME")
        if name is None:
            raise ConfigError("FUNCTION_NAME is not set: set it to the inference function's name")
        models = _get(env, "MANIFESTS_DIR")
        return cls(
            function_name=name,
            alias=_get(env, "ALIAS_NAME") or cls.alias,
            log_group=_get(env, "LOG_GROUP") or f"/aws/lambda/{name}",
            namespace=_get(env, "POWERTOOLS_METRICS_NAMESPACE") or cls.namespace,
            models_dir=Path(models) if models else DEFAULT_MODELS_DIR,
            application=_get(env, "CODEDEPLOY_APPLICATION"),
            deployment_group=_get(env, "DEPLOYMENT_GROUP"),
            hook_log_group=_get(env, "HOOK_LOG_GROUP") or "",
        )


@dataclass(frozen=True)
class HookConfig:
    """What the PreTraffic hook sends to the new version and what it accepts back."""

    new_version_arn: str  # NEW_VERSION_ARN: qualified ARN of the version to check (!Ref Fn.Version)
    alias: str = "live"  # ALIAS_NAME: the alias the deployment shifts; it must still serve CurrentVersion
    model_version: str | None = None  # MODEL_VERSION: model it must serve, whose known answers it must give
    models_dir: Path = DEFAULT_MODELS_DIR  # MODELS_DIR: folder of the model artifacts the hook verifies
    golden_path: Path = DEFAULT_GOLDEN  # GOLDEN_PATH: golden set built at sam build (not sent; see below)
    test_texts_path: Path | None = None  # HOOK_TEST_TEXTS_PATH: texts to send (default: by GOLDEN_PATH)
    api_path: str = "/infer/hate-speech"  # API_PATH: resource path of the proxy events
    api_stage: str = "v1"  # API_STAGE: stage name in the proxy events' requestContext
    max_error_rate: float = 0.0  # HOOK_MAX_ERROR_RATE: share of requests allowed to fail
    max_median_ms: float = 500.0  # HOOK_MAX_MEDIAN_MS: median invoke round trip allowed, in ms
    concurrency: int = 8  # HOOK_CONCURRENCY: requests in flight at once (1..MAX_HOOK_CONCURRENCY)
    time_margin_s: float = 15.0  # HOOK_TIME_MARGIN_S: stop this long before the Lambda timeout to report
    # HOOK_MAX_LATENCY_FACTOR: the measured latency reference may exceed the manifests' coarse
    # ratio (at least 1) by this factor; above it the canary is slow from the start
    max_latency_factor: float = 1.5
    # PROBE_RATE, as the probe reads it (set it on both functions or neither): texts per second of
    # the latency reference's paced pass (None: canary.evidence.scheduled_rate(), the probe's own)
    reference_rate: float | None = None

    @property
    def known_texts_path(self) -> Path:
        """The known-answer texts the hook sends: HOOK_TEST_TEXTS_PATH, else next to the golden set."""
        return self.test_texts_path or self.golden_path.with_name(TEST_TEXTS)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> HookConfig:
        env = _env(environ)
        arn = _get(env, "NEW_VERSION_ARN")
        if arn is None:
            raise ConfigError("NEW_VERSION_ARN is not set: set it to the new version's ARN (!Ref Fn.Version)")
        if not arn.rsplit(":", 1)[-1].isdigit():
            raise ConfigError(f"NEW_VERSION_ARN={arn!r} is not a qualified version ARN (…:function:name:7)")
        concurrency = _number(env, "HOOK_CONCURRENCY", cls.concurrency, int)
        if not 1 <= concurrency <= MAX_HOOK_CONCURRENCY:
            raise ConfigError(f"HOOK_CONCURRENCY={concurrency} must be between 1 and {MAX_HOOK_CONCURRENCY}")
        models = _get(env, "MODELS_DIR")
        golden = _get(env, "GOLDEN_PATH")
        texts = _get(env, "HOOK_TEST_TEXTS_PATH")
        return cls(
            new_version_arn=arn,
            alias=_get(env, "ALIAS_NAME") or cls.alias,
            model_version=_get(env, "MODEL_VERSION"),
            models_dir=Path(models) if models else DEFAULT_MODELS_DIR,
            golden_path=Path(golden) if golden else DEFAULT_GOLDEN,
            test_texts_path=Path(texts) if texts else None,
            api_path=_get(env, "API_PATH") or cls.api_path,
            api_stage=_get(env, "API_STAGE") or cls.api_stage,
            max_error_rate=_number(env, "HOOK_MAX_ERROR_RATE", cls.max_error_rate, float),
            max_median_ms=_number(env, "HOOK_MAX_MEDIAN_MS", cls.max_median_ms, float),
            concurrency=concurrency,
            time_margin_s=_number(env, "HOOK_TIME_MARGIN_S", cls.time_margin_s, float),
            max_latency_factor=_positive(env, "HOOK_MAX_LATENCY_FACTOR", cls.max_latency_factor),
            reference_rate=None if _get(env, "PROBE_RATE") is None else _positive(env, "PROBE_RATE", 1.0),
        )


DEFAULT_PROBE_SET = PACKAGE_ROOT / "probe.jsonl"


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    value = _number(env, name, default, float)
    if not value > 0:
        raise ConfigError(f"{name}={value} must be positive")
    return value


@dataclass(frozen=True)
class ProbeConfig:
    """What the scheduled probe sends, to which function, and for how long per run."""

    function_name: str  # FUNCTION_NAME: the inference function's name (required)
    alias: str = "live"  # ALIAS_NAME: the alias whose routing says whether a canary runs
    probe_set_path: Path = DEFAULT_PROBE_SET  # PROBE_SET_PATH: JSON lines {"id", "text"} built at sam build
    rate: float | None = None  # PROBE_RATE: texts/s to each version (None: canary.evidence.scheduled_rate())
    run_seconds: float = 55.0  # PROBE_RUN_SECONDS: probing per scheduled run (the schedule is 1 minute)
    time_margin_s: float = 3.0  # PROBE_TIME_MARGIN_S: stop this long before the Lambda timeout
    api_path: str = "/infer/hate-speech"  # API_PATH: resource path of the proxy events
    api_stage: str = "v1"  # API_STAGE: stage name in the proxy events' requestContext

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ProbeConfig:
        env = _env(environ)
        name = _get(env, "FUNCTION_NAME")
        if name is None:
            raise ConfigError("FUNCTION_NAME is not set: set it to the inference function's name")
        path = _get(env, "PROBE_SET_PATH")
        rate = _get(env, "PROBE_RATE")
        return cls(
            function_name=name,
            alias=_get(env, "ALIAS_NAME") or cls.alias,
            probe_set_path=Path(path) if path else DEFAULT_PROBE_SET,
            rate=None if rate is None else _positive(env, "PROBE_RATE", 1.0),
            run_seconds=_positive(env, "PROBE_RUN_SECONDS", cls.run_seconds),
            time_margin_s=_number(env, "PROBE_TIME_MARGIN_S", cls.time_margin_s, float),
            api_path=_get(env, "API_PATH") or cls.api_path,
            api_stage=_get(env, "API_STAGE") or cls.api_stage,
        )


@dataclass(frozen=True)
class GateConfig:
    """How the PostTraffic gate finds the canary's records and how long it may wait for them."""

    function_name: str  # FUNCTION_NAME: the inference function's name (required)
    log_group: str = ""  # LOG_GROUP: its log group (default /aws/lambda/<FUNCTION_NAME>)
    models_dir: Path = DEFAULT_MODELS_DIR  # MANIFESTS_DIR: folder of <version>/manifest.json
    max_log_lag_s: float = 600.0  # GATE_MAX_LOG_LAG_S: wait at least this long after the window's end
    settle_s: float = 60.0  # GATE_SETTLE_S: ... and until the records seen stopped growing this long
    poll_s: float = 30.0  # GATE_POLL_S: seconds between two reads of the window
    time_margin_s: float = 60.0  # GATE_TIME_MARGIN_S: judge and report this long before the timeout
    allow_all_at_once: bool = False  # GATE_ALLOW_ALL_AT_ONCE: "true" passes AllAtOnce deployments unjudged
    # HOOK_LOG_GROUP: the PreTraffic hook's log group (its latency reference; unset: Failed, saying so)
    hook_log_group: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> GateConfig:
        env = _env(environ)
        name = _get(env, "FUNCTION_NAME")
        if name is None:
            raise ConfigError("FUNCTION_NAME is not set: set it to the inference function's name")
        models = _get(env, "MANIFESTS_DIR")
        flag = (_get(env, "GATE_ALLOW_ALL_AT_ONCE") or "false").lower()
        if flag not in ("true", "false"):
            raise ConfigError(f"GATE_ALLOW_ALL_AT_ONCE={flag!r} must be true or false")
        return cls(
            function_name=name,
            log_group=_get(env, "LOG_GROUP") or f"/aws/lambda/{name}",
            models_dir=Path(models) if models else DEFAULT_MODELS_DIR,
            max_log_lag_s=_number(env, "GATE_MAX_LOG_LAG_S", cls.max_log_lag_s, float),
            settle_s=_number(env, "GATE_SETTLE_S", cls.settle_s, float),
            poll_s=_positive(env, "GATE_POLL_S", cls.poll_s),
            time_margin_s=_number(env, "GATE_TIME_MARGIN_S", cls.time_margin_s, float),
            allow_all_at_once=flag == "true",
            hook_log_group=_get(env, "HOOK_LOG_GROUP") or "",
        )
