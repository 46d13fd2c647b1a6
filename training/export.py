"""Write a model directory: plain data files (JSON, .npy) and a manifest with their sha256."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np

from infer.artifacts import FORMAT, MANIFEST


def dump_json(obj) -> bytes:
    return (
        json.dumps(obj, ensure_ascii=False, indent=None, separators=(",", ":"), sort_keys=True) + "\n"
    ).encode()


def manifest_bytes(manifest: dict) -> bytes:
    """manifest.json as written: indented, keys sorted, UTF-8."""
    return (json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode()


def npy_bytes(array) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array, dtype="<f8"), allow_pickle=False)
    return buf.getvalue()


class ModelWriter:
    """Collects a model's files in memory, then writes them and the manifest in one go."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.files: dict[str, bytes] = {}

    def add_json(self, name: str, obj) -> str:
        self.files[name] = dump_json(obj)
        return name

    def add_npy(self, name: str, array) -> str:
        self.files[name] = npy_bytes(array)
        return name

    def write(self, manifest: dict, docs) -> dict:
        """Write the files, the manifest (with their sha256) and docs(manifest) -> {name: text}."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.out_dir.iterdir():
            if stale.is_file():
                stale.unlink()
        listing = {
            name: {"sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob)}
            for name, blob in sorted(self.files.items())
        }
        for name, blob in self.files.items():
            (self.out_dir / name).write_bytes(blob)
        full = {"format": FORMAT, **manifest, "files": listing}
        (self.out_dir / MANIFEST).write_bytes(manifest_bytes(full))
        for name, text in docs(full).items():
            (self.out_dir / name).write_text(text, encoding="utf-8")
        return full
