"""Settings of the canary judge Lambda and the PreTraffic hook: the one place that reads their
environment variables. The judge's statistical thresholds are canary.judge.JudgeConfig; any of
its fields can be overridden with JUDGE_<FIELD> (e.g. JUDGE_ALPHA=0.005, JUDGE_LOOKS=5).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from canary.judge import JudgeConfig
from canary.manifests import DEFAULT_MODELS_DIR

PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # /var/task in the Lambda package
DEFAULT_GOLDEN = PACKAGE_ROOT / "golden.jsonl"


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


def judge_config_from_env(environ: Mapping[str, str] | None = None) -> JudgeConfig:
    """JudgeConfig with any JUDGE_<FIELD> overrides applied."""
    env = _env(environ)
    defaults = JudgeConfig()
    values = {
        f.name: _number(
            env, f"JUDGE_{f.name.upper()}", getattr(defaults, f.name), type(getattr(defaults, f.name))
        )
        for f in fields(JudgeConfig)
    }
    try:
        return JudgeConfig(**values)
    except ValueError as exc:
        raise ConfigError(f"JUDGE_* settings: {exc}") from None


@dataclass(frozen=True)
class JudgeLambdaConfig:
    """How the scheduled judge finds the canary and publishes its verdict."""

    function_name: str  # FUNCTION_NAME: the inference function's name (required)
    alias: str = "live"  # ALIAS_NAME: the alias CodeDeploy shifts
    log_group: str = ""  # LOG_GROUP: its log group (default /aws/lambda/<FUNCTION_NAME>)
    namespace: str = "HateSpeechApi"  # POWERTOOLS_METRICS_NAMESPACE: where CanaryVerdict goes
    window_minutes: float = 10.0  # WINDOW_MINUTES: records read back in time (>= canary interval + 2)
    models_dir: Path = DEFAULT_MODELS_DIR  # MANIFESTS_DIR: folder of <version>/manifest.json
    judge: JudgeConfig = field(default_factory=JudgeConfig)  # JUDGE_*: the statistical thresholds

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> JudgeLambdaConfig:
        env = _env(environ)
        name = _get(env, "FUNCTION_NAME")
        if name is None:
            raise ConfigError("FUNCTION_NAME is not set: set it to the inference function's name")
        window = _number(env, "WINDOW_MINUTES", cls.window_minutes, float)
        if window <= 0:
            raise ConfigError(f"WINDOW_MINUTES={window} must be positive")
        models = _get(env, "MANIFESTS_DIR")
        return cls(
            function_name=name,
            alias=_get(env, "ALIAS_NAME") or cls.alias,
            log_group=_get(env, "LOG_GROUP") or f"/aws/lambda/{name}",
            namespace=_get(env, "POWERTOOLS_METRICS_NAMESPACE") or cls.namespace,
            window_minutes=window,
            models_dir=Path(models) if models else DEFAULT_MODELS_DIR,
            judge=judge_config_from_env(env),
        )


@dataclass(frozen=True)
class HookConfig:
    """What the PreTraffic hook sends to the new version and what it accepts back."""

    new_version_arn: str  # NEW_VERSION_ARN: qualified ARN of the version to check (!Ref Fn.Version)
    model_version: str | None = None  # MODEL_VERSION: model it should serve (else its X-Model-Version)
    models_dir: Path = DEFAULT_MODELS_DIR  # MODELS_DIR: folder of the model artifacts the hook verifies
    golden_path: Path = DEFAULT_GOLDEN  # GOLDEN_PATH: JSON lines {"text", "label"} built at sam build
    api_path: str = "/infer/hate-speech"  # API_PATH: resource path of the proxy events
    api_stage: str = "v1"  # API_STAGE: stage name in the proxy events' requestContext
    max_error_rate: float = 0.0  # HOOK_MAX_ERROR_RATE: share of golden requests allowed to fail
    max_label_tvd: float = 0.02  # HOOK_MAX_LABEL_TVD: total variation distance to the manifest's golden mix
    max_median_ms: float = 500.0  # HOOK_MAX_MEDIAN_MS: median invoke round trip allowed, in ms
    concurrency: int = 4  # HOOK_CONCURRENCY: golden requests in flight at once
    time_margin_s: float = 15.0  # HOOK_TIME_MARGIN_S: stop this long before the Lambda timeout to report

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> HookConfig:
        env = _env(environ)
        arn = _get(env, "NEW_VERSION_ARN")
        if arn is None:
            raise ConfigError("NEW_VERSION_ARN is not set: set it to the new version's ARN (!Ref Fn.Version)")
        if not arn.rsplit(":", 1)[-1].isdigit():
            raise ConfigError(f"NEW_VERSION_ARN={arn!r} is not a qualified version ARN (…:function:name:7)")
        concurrency = _number(env, "HOOK_CONCURRENCY", cls.concurrency, int)
        if concurrency < 1:
            raise ConfigError(f"HOOK_CONCURRENCY={concurrency} must be >= 1")
        models = _get(env, "MODELS_DIR")
        golden = _get(env, "GOLDEN_PATH")
        return cls(
            new_version_arn=arn,
            model_version=_get(env, "MODEL_VERSION"),
            models_dir=Path(models) if models else DEFAULT_MODELS_DIR,
            golden_path=Path(golden) if golden else DEFAULT_GOLDEN,
            api_path=_get(env, "API_PATH") or cls.api_path,
            api_stage=_get(env, "API_STAGE") or cls.api_stage,
            max_error_rate=_number(env, "HOOK_MAX_ERROR_RATE", cls.max_error_rate, float),
            max_label_tvd=_number(env, "HOOK_MAX_LABEL_TVD", cls.max_label_tvd, float),
            max_median_ms=_number(env, "HOOK_MAX_MEDIAN_MS", cls.max_median_ms, float),
            concurrency=concurrency,
            time_margin_s=_number(env, "HOOK_TIME_MARGIN_S", cls.time_margin_s, float),
        )
