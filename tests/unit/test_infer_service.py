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
