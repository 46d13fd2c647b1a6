"""Loading a model directory: checksums are verified and a bad file is named."""

from __future__ import annotations

import json
import shutil

import pytest

from infer.artifacts import ArtifactError
from infer.model import load_model


@pytest.fixture(params=["v1", "v2"])
def model_copy(request, models_dir, tmp_path):
    dst = tmp_path / request.param
    shutil.copytree(models_dir / request.param, dst)
    return dst


def biggest_file(path):
    manifest = json.loads((path / "manifest.json").read_text())
    return max(manifest["files"], key=lambda n: manifest["files"][n]["bytes"])


def test_committed_models_load_and_verify(models_dir):
    """Both committed models pass their own checksums and report their version."""
    for version in ("v1", "v2"):
        assert load_model(models_dir / version).version == version


def test_flipped_byte_is_refused_naming_the_file(model_copy):
    """One flipped byte in an artifact fails the sha256 check, and the error names that file."""
    name = biggest_file(model_copy)
    path = model_copy / name
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    path.write_bytes(bytes(blob))
    with pytest.raises(ArtifactError, match=f"{name}: sha256 does not match"):
        load_model(model_copy)


def test_truncated_file_is_refused_naming_the_file(model_copy):
    """A file cut short (an interrupted copy) is refused before it is parsed."""
    name = biggest_file(model_copy)
    path = model_copy / name
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ArtifactError, match=f"{name}: size 100 bytes"):
        load_model(model_copy)


def test_missing_file_is_refused_naming_the_file(model_copy):
    """An incomplete directory is refused: the manifest lists a file that is not there."""
    name = biggest_file(model_copy)
    (model_copy / name).unlink()
    with pytest.raises(ArtifactError, match=f"{name}: listed in the manifest but missing"):
        load_model(model_copy)


def test_missing_manifest_is_refused(tmp_path):
    """A directory without manifest.json is not a model."""
    with pytest.raises(ArtifactError, match="manifest missing"):
        load_model(tmp_path)


def test_manifest_that_is_not_json_is_refused(model_copy):
    """A corrupted manifest is named as such."""
    (model_copy / "manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="manifest is not valid JSON"):
        load_model(model_copy)


def test_manifest_file_names_cannot_escape_the_directory(model_copy):
    """A manifest cannot make the loader read files outside the model directory."""
    manifest = json.loads((model_copy / "manifest.json").read_text())
    manifest["files"]["../secret"] = {"sha256": "0" * 64, "bytes": 1}
    (model_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="must not contain a path"):
        load_model(model_copy)
