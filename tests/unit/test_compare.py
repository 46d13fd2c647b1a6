"""`python -m infer.compare`: every model in models/ side by side, whatever it holds."""

from __future__ import annotations

import shutil
from pathlib import Path

from infer import compare

MODELS = Path(__file__).resolve().parents[2] / "models"


def test_every_shipped_model_gets_a_column_and_a_metrics_line(capsys):
    """One column per models/vN in number order, then each model's test metrics."""
    assert compare.main(["have a lovely day"]) == 0
    out = capsys.readouterr().out.splitlines()
    versions = sorted((p.parent.name for p in MODELS.glob("v*/manifest.json")), key=lambda v: int(v[1:]))
    assert out[0].split()[1:] == versions
    assert [line.split(":")[0] for line in out[-len(versions) :]] == versions


def test_a_folder_without_models_is_a_clear_error(tmp_path, capsys):
    """No vN/manifest.json: exit 2 naming the folder, no traceback."""
    assert compare.main(["--models", str(tmp_path), "hi"]) == 2
    assert f"no model (vN/manifest.json) in {tmp_path}" in capsys.readouterr().err


def test_a_model_that_fails_its_checksum_is_named(tmp_path, capsys):
    """A tampered artifact: exit 2 with the loader's reason."""
    shutil.copytree(MODELS / "v1", tmp_path / "v1")
    coef = tmp_path / "v1" / "coef.npy"
    blob = bytearray(coef.read_bytes())
    blob[-1] ^= 0x01
    coef.write_bytes(bytes(blob))
    assert compare.main(["--models", str(tmp_path), "hi"]) == 2
    assert "cannot load model" in capsys.readouterr().err
