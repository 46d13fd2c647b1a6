"""The model service: one verified model per execution environment, loaded once at init.

Plain Python, no Powertools: the handler (infer.app) owns HTTP, logging and metrics. A service
whose configuration or model could not be loaded still starts; it keeps the reason and refuses to
predict, so the environment answers 500 to every request and says why in its log, rather than
failing its init, which API Gateway would turn into a bare 502.

Every package ships every model, so the service also loads, verified the same way, the other
models in MODELS_DIR (SHADOW_MODELS narrows them) and scores each text with them too, after the
served answer: the canary judge compares the label pairs. A shadow model that cannot be loaded or
scored is left out (the reason kept for the init log); it never breaks serving.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from infer.artifacts import MANIFEST, ArtifactError
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
    shadows: tuple[LinearTextModel, ...] = ()  # other shipped models, verified, scored in the shadow
    shadow_failures: tuple[tuple[str, str], ...] = ()  # (model, why it is not scored in the shadow)

    @classmethod
    def start(cls, environ: Mapping[str, str] | None = None) -> ModelService:
        """Read the settings and load models/$MODEL_VERSION with its checksums verified; never raises."""
        try:
            config = Config.from_env(environ)
        except ConfigError as exc:
            return cls(config=Config(model_version=""), model=None, failure=f"configuration: {exc}")
        model, failure = _load_verified(config, config.model_version)
        if model is None:
            return cls(config=config, model=None, failure=failure)
        shadows, shadow_failures = [], []
        for version in _shadow_versions(config):
            shadow, why = _load_verified(config, version)
            if shadow is None:
                shadow_failures.append((version, why))
            else:
                shadows.append(shadow)
        return cls(config, model, None, tuple(shadows), tuple(shadow_failures))

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

    def shadow_labels(self, text: str) -> tuple[dict[str, str], dict[str, str]]:
        """Each shadow model's label of the text, and the exception name of each that failed to
        score it (left out of the labels: a shadow never fails the request)."""
        labels: dict[str, str] = {}
        failed: dict[str, str] = {}
        for model in self.shadows:
            try:
                labels[model.version] = model.predict(text).label
            except Exception as exc:  # the name only: a message may quote the text
                failed[model.version] = type(exc).__name__
        return labels, failed


def _load_verified(config: Config, version: str) -> tuple[LinearTextModel | None, str]:
    """models_dir/<version> loaded with its checksums verified, or None and the reason."""
    root = config.models_dir / version
    try:
        model = load_model(root)
    except ArtifactError as exc:
        return None, f"model {version}: {exc}"
    except Exception as exc:  # a manifest of the wrong shape, an unreadable file: still not servable
        return None, f"model {version}: {root}: {type(exc).__name__}: {exc}"
    if model.version != version:
        return None, (
            f"model {version}: {root} holds a model whose manifest says version {model.version!r}; "
            f"{'MODEL_VERSION' if version == config.model_version else 'its directory'} must name "
            "the version it holds"
        )
    return model, ""


def _shadow_versions(config: Config) -> list[str]:
    """The models to score in the shadow: SHADOW_MODELS, or every other directory of MODELS_DIR
    with a manifest; never the served one."""
    if config.shadow_models is None:
        found = sorted(path.parent.name for path in config.models_dir.glob(f"v*/{MANIFEST}"))
    else:
        found = list(config.shadow_models)
    return [version for version in found if version != config.model_version]
