"""Settings of the inference function: the one place that reads its environment variables.

Powertools would read POWERTOOLS_SERVICE_NAME and POWERTOOLS_METRICS_NAMESPACE by itself; they are
read here too and passed to it explicitly, so every setting has one source and one default.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# A directory name inside MODELS_DIR, never a path: MODEL_VERSION must not reach outside it.
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# SHADOW_MODELS: every other shipped model (None), none (()), or the ones named.
SHADOW_ALL, SHADOW_NONE = "all", "none"


class ConfigError(ValueError):
    """An environment variable the function cannot run with; the message names it and the fix."""


@dataclass(frozen=True)
class Config:
    """How one execution environment of the inference function serves requests."""

    model_version: str  # MODEL_VERSION: the model directory to serve, "v1" or "v2" (required)
    models_dir: Path = DEFAULT_MODELS_DIR  # MODELS_DIR: folder holding the model directories
    max_text_chars: int = 5000  # MAX_TEXT_CHARS: longest accepted text in characters; longer -> 413
    service_name: str = "hate-speech"  # POWERTOOLS_SERVICE_NAME: the service key of logs and traces
    metrics_namespace: str = "HateSpeechApi"  # POWERTOOLS_METRICS_NAMESPACE: CloudWatch namespace (EMF)
    log_level: str = "INFO"  # LOG_LEVEL: level of the function's own log records
    # Always on by default, not only while a canary is live: the function cannot cheaply know that
    # (see _shadow_models), and the cost is measured small (README "Configuration", BENCHMARKS.md).
    shadow_models: tuple[str, ...] | None = None  # SHADOW_MODELS: also score these: all, none, v1,v2

    @property
    def model_dir(self) -> Path:
        """The model directory this environment loads."""
        return self.models_dir / self.model_version

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        """Settings from the environment (os.environ by default); an empty variable counts as unset.

        Raises ConfigError naming the variable when a value is missing or unusable."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        version = get("MODEL_VERSION")
        if version is None:
            raise ConfigError("MODEL_VERSION is not set: set it to the model directory to serve, e.g. v2")
        if not _VERSION.fullmatch(version):
            raise ConfigError(
                f"MODEL_VERSION={version!r} is not a model directory name: use a name like v1 or v2"
            )
        raw_max = get("MAX_TEXT_CHARS")
        max_text_chars = cls.max_text_chars
        if raw_max is not None:
            try:
                max_text_chars = int(raw_max)
            except ValueError:
                max_text_chars = 0
            if max_text_chars < 1:
                raise ConfigError(f"MAX_TEXT_CHARS={raw_max!r} must be a positive whole number, e.g. 5000")
        log_level = (get("LOG_LEVEL") or cls.log_level).upper()
        if log_level not in LOG_LEVELS:
            raise ConfigError(f"LOG_LEVEL={log_level!r} must be one of {', '.join(LOG_LEVELS)}")
        models_dir = get("MODELS_DIR")
        return cls(
            model_version=version,
            models_dir=Path(models_dir) if models_dir else DEFAULT_MODELS_DIR,
            max_text_chars=max_text_chars,
            service_name=get("POWERTOOLS_SERVICE_NAME") or cls.service_name,
            metrics_namespace=get("POWERTOOLS_METRICS_NAMESPACE") or cls.metrics_namespace,
            log_level=log_level,
            shadow_models=_shadow_models(get("SHADOW_MODELS")),
        )


def _shadow_models(raw: str | None) -> tuple[str, ...] | None:
    """SHADOW_MODELS: "all" (the default: None, every other model in MODELS_DIR), "none" (()) or
    a comma list of model directories, read case-insensitively for the two words.

    Always on rather than only while a canary is live: during a canary the baseline version must
    score in the shadow too, and it was published (its settings frozen) before the canary began,
    so an environment variable cannot switch it on; asking the alias (lambda GetAlias) would
    import boto3 at init (~0.3 s), cost a call and an IAM permission, and still be stale while an
    environment stays warm. Raises ConfigError on a malformed value."""
    if raw is None or raw.lower() == SHADOW_ALL:
        return None
    if raw.lower() == SHADOW_NONE:
        return ()
    names = [name.strip() for name in raw.split(",") if name.strip()]
    bad = [name for name in names if not _VERSION.fullmatch(name)]
    if not names or bad:
        raise ConfigError(
            f"SHADOW_MODELS={raw!r} must be all, none or a comma list of model directories, e.g. v1,v2"
        )
    return tuple(dict.fromkeys(names))
