"""Model manifests for the judge and the hook: models/<version>/manifest.json, read as data.

Only the manifest is read here (the judge needs the label distributions and transition
matrices, not the weights); the hook verifies every artifact file with infer.artifacts.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

DEFAULT_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
_VERSION = re.compile(r"v(\d+)")


class ManifestError(RuntimeError):
    """A manifest that cannot be used; the message names the file."""


def load_manifest(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise ManifestError(f"{path}: manifest missing") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("version"), str):
        raise ManifestError(f'{path}: not a model manifest (no "version")')
    return data


def load_manifests(models_dir: str | Path = DEFAULT_MODELS_DIR) -> dict[str, dict[str, Any]]:
    """Every models_dir/*/manifest.json, keyed by the manifest's own "version"."""
    root = Path(models_dir)
    manifests: dict[str, dict[str, Any]] = {}
    for path in sorted(root.glob("*/manifest.json")):
        manifest = load_manifest(path)
        manifests[manifest["version"]] = manifest
    return manifests


def trained_versions(models_dir: str | Path = DEFAULT_MODELS_DIR) -> tuple[str, ...]:
    """The trained models: models_dir/vN folders with a manifest, in N order (v10 after v9); what
    the build ships, the rollout accepts and `serve` picks the newest of."""
    if not Path(models_dir).is_dir():  # a mistyped folder is an error, not "no model trained"
        raise FileNotFoundError(f"{models_dir}: no such folder of models")
    names = (path.parent.name for path in Path(models_dir).glob("*/manifest.json"))
    found = [name for name in names if _VERSION.fullmatch(name)]
    return tuple(sorted(found, key=lambda name: int(name[1:])))
