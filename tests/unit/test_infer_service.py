"""infer.service: the model an execution environment serves, or why it serves none."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from infer.model import LABELS
from infer.service import ModelService, ModelUnavailable

MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_start_loads_the_committed_model(version):
    """MODEL_VERSION picks models/<version>; the loaded model says it is that version."""
    service = ModelService.start({"MODEL_VERSION": version})
    assert service.failure is None
    assert service.version == version
    assert service.predict("see you at the game tonight").label in LABELS


def test_start_never_raises_on_bad_configuration():
    """A configuration error becomes the service's failure, with default settings kept."""
    service = ModelService.start({"MODEL_VERSION": "v2", "MAX_TEXT_CHARS": "many"})
    assert service.model is None and service.version is None
    assert service.failure.startswith("configuration: MAX_TEXT_CHARS")
    assert service.config.max_text_chars == 5000


def test_unavailable_service_refuses_to_predict():
    """predict() and check() raise ModelUnavailable carrying the reason."""
    service = ModelService.start({})
    with pytest.raises(ModelUnavailable, match="MODEL_VERSION"):
        service.predict("hello")
    with pytest.raises(ModelUnavailable, match="MODEL_VERSION"):
        service.check()


def test_missing_artifact_file_is_a_failure(tmp_path):
    """A file listed in the manifest but absent: the failure names it."""
    shutil.copytree(MODELS / "v1", tmp_path / "v1")
    (tmp_path / "v1" / "coef.npy").unlink()
    service = ModelService.start({"MODEL_VERSION": "v1", "MODELS_DIR": str(tmp_path)})
    assert service.model is None
    assert "coef.npy" in service.failure and "missing" in service.failure


def test_directory_holding_another_version_is_a_failure(tmp_path):
    """models/v2 that holds v1's artifacts would be served under the wrong name: refused."""
    shutil.copytree(MODELS / "v1", tmp_path / "v2")
    service = ModelService.start({"MODEL_VERSION": "v2", "MODELS_DIR": str(tmp_path)})
    assert service.model is None
    assert "manifest says version 'v1'" in service.failure


def test_malformed_manifest_is_a_failure_not_a_crash(tmp_path):
    """A manifest with verified files but no "model" section (a KeyError inside the loader) is
    still reported as a failure of this model, not raised at init."""
    shutil.copytree(MODELS / "v1", tmp_path / "v1")
    manifest_path = tmp_path / "v1" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["model"]
    manifest_path.write_text(json.dumps(manifest))
    service = ModelService.start({"MODEL_VERSION": "v1", "MODELS_DIR": str(tmp_path)})
    assert service.model is None
    assert service.failure.startswith("model v1:")


def _copy_models(tmp_path: Path, *versions: str) -> Path:
    for version in versions:
        shutil.copytree(MODELS / version, tmp_path / version)
    return tmp_path


@pytest.mark.parametrize("served", ["v1", "v2", "v3"])
def test_every_other_shipped_model_is_loaded_in_the_shadow(served):
    """By default the service also loads every other model in MODELS_DIR, never the served one."""
    service = ModelService.start({"MODEL_VERSION": served})
    others = sorted(p.parent.name for p in MODELS.glob("v*/manifest.json") if p.parent.name != served)
    assert [m.version for m in service.shadows] == others
    assert service.shadow_failures == ()


def test_shadow_models_named_loads_only_those():
    """SHADOW_MODELS=v2 (what make rollout sets: the live model): only v2 scores in the shadow."""
    service = ModelService.start({"MODEL_VERSION": "v3", "SHADOW_MODELS": "v2"})
    assert [m.version for m in service.shadows] == ["v2"]


def test_shadow_labels_are_the_other_models_predictions():
    """shadow_labels() gives each shadow model's own label of the text."""
    service = ModelService.start({"MODEL_VERSION": "v1", "SHADOW_MODELS": "v2"})
    (v2,) = service.shadows
    for text in ("see you at the game tonight", "what a stupid thing to say", "RT @user: lol"):
        assert service.shadow_labels(text) == ({"v2": v2.predict(text).label}, {})


def test_shadow_models_none_loads_no_shadow():
    """SHADOW_MODELS=none: nothing is loaded or scored besides the served model."""
    service = ModelService.start({"MODEL_VERSION": "v2", "SHADOW_MODELS": "none"})
    assert service.shadows == () and service.shadow_labels("hello there") == ({}, {})


def test_tampered_shadow_model_is_left_out_and_serving_goes_on(tmp_path):
    """A shadow model that fails its sha256 is not loaded; the reason is kept; the served model
    still predicts."""
    models = _copy_models(tmp_path, "v1", "v2")
    coef = models / "v1" / "coef.npy"
    blob = bytearray(coef.read_bytes())
    blob[-1] ^= 0x01
    coef.write_bytes(bytes(blob))
    service = ModelService.start({"MODEL_VERSION": "v2", "MODELS_DIR": str(models)})
    assert service.failure is None and service.shadows == ()
    ((version, reason),) = service.shadow_failures
    assert version == "v1" and "coef.npy" in reason and "sha256" in reason
    assert service.predict("see you at the game tonight").label in LABELS


def test_named_shadow_model_that_is_not_shipped_is_a_shadow_failure(tmp_path):
    """SHADOW_MODELS naming a missing model: a shadow failure naming it, never a serving failure."""
    models = _copy_models(tmp_path, "v2")
    service = ModelService.start({"MODEL_VERSION": "v2", "MODELS_DIR": str(models), "SHADOW_MODELS": "v1,v2"})
    assert service.failure is None and service.shadows == ()
    ((version, reason),) = service.shadow_failures
    assert version == "v1" and "manifest missing" in reason


def test_shadow_directory_holding_another_version_is_a_shadow_failure(tmp_path):
    """A directory v3 holding v1's artifacts would mislabel its labels in the records: refused."""
    models = _copy_models(tmp_path, "v2")
    shutil.copytree(MODELS / "v1", models / "v3")
    service = ModelService.start({"MODEL_VERSION": "v2", "MODELS_DIR": str(models)})
    ((version, reason),) = service.shadow_failures
    assert version == "v3" and "manifest says version 'v1'" in reason


def test_shadow_model_that_raises_is_left_out_of_that_request(monkeypatch):
    """A shadow model failing on a text: no label for it, its exception name (never the message,
    which may quote the text) reported, and no exception reaches the caller."""
    service = ModelService.start({"MODEL_VERSION": "v1", "SHADOW_MODELS": "v2"})

    def broken(text):
        raise KeyError(text)

    monkeypatch.setattr(service.shadows[0], "predict", broken)
    assert service.shadow_labels("secret words") == ({}, {"v2": "KeyError"})
