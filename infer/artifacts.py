"""Model artifacts on disk: the manifest and the checksummed files it lists.

A model directory holds manifest.json and plain data files (JSON, .npy). Every file the
manifest names is verified against its sha256 before anything is parsed, so a tampered,
truncated or missing file is refused with an error that names it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from infer.npy import NpyError, parse_npy

MANIFEST = "manifest.json"
FORMAT = "hate-speech-linear/1"


class ArtifactError(RuntimeError):
    """A model directory that must not be served; the message names the file at fault."""


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class ArtifactDir:
    """A model directory whose manifest has been read and whose files have been verified."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        manifest_path = self.root / MANIFEST
        try:
            self.manifest: dict[str, Any] = json.loads(manifest_path.read_bytes())
        except FileNotFoundError as exc:
            raise ArtifactError(f"{manifest_path}: manifest missing") from exc
        except (ValueError, UnicodeDecodeError) as exc:
            raise ArtifactError(f"{manifest_path}: manifest is not valid JSON ({exc})") from exc
        if not isinstance(self.manifest, dict) or self.manifest.get("format") != FORMAT:
            raise ArtifactError(f"{manifest_path}: not a {FORMAT} manifest")
        files = self.manifest.get("files")
        if not isinstance(files, dict) or not files:
            raise ArtifactError(f"{manifest_path}: lists no artifact files")
        self._blobs: dict[str, bytes] = {}
        for name, meta in sorted(files.items()):
            path = self.root / name
            if Path(name).name != name:
                raise ArtifactError(f"{manifest_path}: file name {name!r} must not contain a path")
            try:
                blob = path.read_bytes()
            except FileNotFoundError as exc:
                raise ArtifactError(f"{path}: listed in the manifest but missing") from exc
            if len(blob) != meta.get("bytes"):
                raise ArtifactError(
                    f"{path}: size {len(blob)} bytes, manifest says {meta.get('bytes')} (truncated?)"
                )
            if hashlib.sha256(blob).hexdigest() != meta.get("sha256"):
                raise ArtifactError(f"{path}: sha256 does not match the manifest (tampered?)")
            self._blobs[name] = blob

    def json(self, name: str) -> Any:
        """A verified JSON file, parsed."""
        try:
            return json.loads(self._blob(name))
        except ValueError as exc:
            raise ArtifactError(f"{self.root / name}: not valid JSON ({exc})") from exc

    def npy(self, name: str) -> tuple[tuple[int, ...], Any]:
        """A verified .npy file: shape and flat float64 values."""
        try:
            return parse_npy(self._blob(name))
        except NpyError as exc:
            raise ArtifactError(f"{self.root / name}: {exc}") from exc

    def _blob(self, name: str) -> bytes:
        try:
            return self._blobs[name]
        except KeyError:
            raise ArtifactError(f"{self.root / MANIFEST}: does not list {name!r}") from None
