"""infer.config: the inference function's settings from its environment."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from infer.config import DEFAULT_MODELS_DIR, Config, ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_need_only_model_version():
    """With only MODEL_VERSION set, every other setting takes the contract's default."""
    config = Config.from_env({"MODEL_VERSION": "v2"})
    assert config == Config(
        model_version="v2",
        models_dir=ROOT / "models",
        max_text_chars=5000,
        service_name="hate-speech",
        metrics_namespace="HateSpeechApi",
        log_level="INFO",
    )
    assert config.model_dir == ROOT / "models" / "v2"
    assert DEFAULT_MODELS_DIR == ROOT / "models"


def test_every_setting_is_read_from_its_variable():
    """Each variable of the contract sets its field."""
    config = Config.from_env(
        {
            "MODEL_VERSION": "v1",
            "MODELS_DIR": "/opt/models",
            "MAX_TEXT_CHARS": "280",
            "POWERTOOLS_SERVICE_NAME": "hate-speech-prod",
            "POWERTOOLS_METRICS_NAMESPACE": "OtherNamespace",
            "LOG_LEVEL": "debug",
        }
    )
    assert config == Config(
        model_version="v1",
        models_dir=Path("/opt/models"),
        max_text_chars=280,
        service_name="hate-speech-prod",
        metrics_namespace="OtherNamespace",
        log_level="DEBUG",
    )


def test_empty_variables_count_as_unset():
    """A template that passes "" gets the default, not an empty setting."""
    config = Config.from_env(
        {"MODEL_VERSION": "v2", "MODELS_DIR": "", "MAX_TEXT_CHARS": " ", "POWERTOOLS_SERVICE_NAME": ""}
    )
    assert config.models_dir == DEFAULT_MODELS_DIR
    assert config.max_text_chars == 5000
    assert config.service_name == "hate-speech"


def test_reads_os_environ_by_default(monkeypatch):
    """Without an explicit mapping, the process environment is read."""
    monkeypatch.setenv("MODEL_VERSION", "v1")
    monkeypatch.setenv("MAX_TEXT_CHARS", "99")
    config = Config.from_env()
    assert (config.model_version, config.max_text_chars) == ("v1", 99)


def test_missing_model_version_is_refused():
    """MODEL_VERSION has no default: the error says to set it."""
    with pytest.raises(ConfigError, match="MODEL_VERSION is not set"):
        Config.from_env({})


@pytest.mark.parametrize("version", ["../v2", "v2/../../etc", "/abs", ".hidden", "v 2", "x" * 65])
def test_model_version_must_be_a_directory_name(version):
    """MODEL_VERSION cannot point outside MODELS_DIR."""
    with pytest.raises(ConfigError, match="MODEL_VERSION"):
        Config.from_env({"MODEL_VERSION": version})


@pytest.mark.parametrize("value", ["0", "-5", "abc", "5e3", "1.5"])
def test_max_text_chars_must_be_a_positive_integer(value):
    """MAX_TEXT_CHARS that is not a positive whole number is refused, naming the variable."""
    with pytest.raises(ConfigError, match="MAX_TEXT_CHARS"):
        Config.from_env({"MODEL_VERSION": "v2", "MAX_TEXT_CHARS": value})


def test_unknown_log_level_is_refused():
    """LOG_LEVEL must be a logging level name."""
    with pytest.raises(ConfigError, match="LOG_LEVEL"):
        Config.from_env({"MODEL_VERSION": "v2", "LOG_LEVEL": "LOUD"})


def test_config_is_frozen():
    """Settings cannot change after init."""
    config = Config.from_env({"MODEL_VERSION": "v2"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.max_text_chars = 1  # type: ignore[misc]


def test_every_field_has_a_one_line_doc_comment():
    """House rule: each field of the settings dataclass carries a one-line comment."""
    source = (ROOT / "infer" / "config.py").read_text().splitlines()
    for field in dataclasses.fields(Config):
        (line,) = [s for s in source if s.strip().startswith(f"{field.name}:")]
        assert "  # " in line, field.name


def test_shadow_models_default_to_every_other_model():
    """SHADOW_MODELS unset, empty or "all" (any case): None, every other shipped model is scored."""
    for env in ({}, {"SHADOW_MODELS": ""}, {"SHADOW_MODELS": "all"}, {"SHADOW_MODELS": " ALL "}):
        assert Config.from_env({"MODEL_VERSION": "v2", **env}).shadow_models is None, env


def test_shadow_models_none_turns_shadow_scoring_off():
    """SHADOW_MODELS=none (any case): no model is scored in the shadow."""
    assert Config.from_env({"MODEL_VERSION": "v2", "SHADOW_MODELS": "None"}).shadow_models == ()


def test_shadow_models_comma_list_narrows_it():
    """A comma list names the models, spaces and repeats dropped, in the order given."""
    config = Config.from_env({"MODEL_VERSION": "v2", "SHADOW_MODELS": " v1 , v3,v1,"})
    assert config.shadow_models == ("v1", "v3")


@pytest.mark.parametrize("value", [",", "../v1", "v1,/etc", "v1;v2", "v 1"])
def test_malformed_shadow_models_is_refused(value):
    """A SHADOW_MODELS value that names no model directory is a ConfigError naming the variable."""
    with pytest.raises(ConfigError, match="SHADOW_MODELS"):
        Config.from_env({"MODEL_VERSION": "v2", "SHADOW_MODELS": value})
