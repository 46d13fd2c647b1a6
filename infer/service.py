"""The model service: one verified model per execution environment, loaded once at init.

Plain Python, no Powertools: the handler (infer.app) owns HTTP, logging and metrics. A service
whose configuration or model could not be loaded still starts; it keeps the reason and refuses to
predict, so the environment answers 500 to every request and says why in its log, rather than
failing its init, which API Gateway would turn into a bare 502.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from infer.artifacts import ArtifactError
from infer.config import Config, ConfigError
from infer.model import LinearTextModel, Prediction, load_model


class ModelUnavailable(RuntimeError):
    """This environment has no model to serve; the message says why."""


@dataclass(frozen=True)
class ModelService:
    """The model this environment serves, or the reason it serves none."""

    config: Config  # settings the environment started with (defaults when they were unusable)
    model: LinearTextModel | None  # the verified model; None when loading failed
    failure: str | None = None  # why there is no model (None when there is one)

    @classmethod
    def start(cls, environ: Mapping[str, str] | None = None) -> ModelService:
        """Read the settings and load models/$MODEL_VERSION with its checksums verified; never raises."""
        try:
            config = Config.from_env(environ)
        except ConfigError as exc:
            return cls(config=Config(model_version=""), model=None, failure=f"configuration: {exc}")
        try:
            model = load_model(config.model_dir)
        except ArtifactError as exc:
            return cls(config=config, model=None, failure=f"model {config.model_version}: {exc}")
        except Exception as exc:  # a manifest of the wrong shape, an unreadable file: still not servable
            failure = f"model {config.model_version}: {config.model_dir}: {type(exc).__name__}: {exc}"
            return cls(config=config, model=None, failure=failure)
        if model.version != config.model_version:
            return cls(
                config=config,
                model=None,
                failure=(
                    f"model {config.model_version}: {config.model_dir} holds a model whose manifest says "
                    f"version {model.version!r}; MODEL_VERSION must name the version it holds"
                ),
            )
        return cls(config=config, model=model)

    @property
    def version(self) -> str | None:
        """The served model's version ("v1", "v2"), None when no model is loaded."""
        return None if self.model is None else self.model.version

    def check(self) -> None:
        """Raise ModelUnavailable unless a model is loaded."""
        if self.model is None:
            raise ModelUnavailable(self.failure or "no model loaded")

    def predict(self, text: str) -> Prediction:
        """Label and per-label probabilities of one text."""
        if self.model is None:
            raise ModelUnavailable(self.failure or "no model loaded")
        return self.model.predict(text)
