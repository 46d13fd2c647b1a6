"""The natural-js peer (../shared/peers/natural-js), installed in a cache folder and run.

The shared folder is read-only, so peer.js and package.json are copied to .cache/natural-js,
where npm installs its two dependencies and the trained peer model is kept between runs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEER_SRC = ROOT.parent / "shared" / "peers" / "natural-js"
CACHE = ROOT / ".cache" / "natural-js"
WORKDIR = CACHE / "work"


class PeerUnavailable(RuntimeError):
    """node/npm or the peer's sources are missing; the benchmark reports the peer as absent."""


def install() -> Path:
    """Copy and npm-install the peer once; returns its folder."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise PeerUnavailable("node and npm are needed to run the natural-js peer")
    if not (PEER_SRC / "peer.js").is_file():
        raise PeerUnavailable(f"peer sources not found at {PEER_SRC}")
    CACHE.mkdir(parents=True, exist_ok=True)
    for name in ("peer.js", "package.json"):
        shutil.copyfile(PEER_SRC / name, CACHE / name)
    if not (CACHE / "node_modules" / "natural").is_dir():
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=CACHE,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return CACHE


def measure(data: Path) -> dict:
    """Train (cached) and score the test split: quality, model size, load, per-text latency."""
    folder = install()
    out = subprocess.run(
        ["node", "peer.js", str(Path(data).resolve()), str(WORKDIR)],
        cwd=folder,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def cold_start_command(text: str = "hello world") -> list[str]:
    """A whole-process cold start of the peer (require natural + load + one classify)."""
    install()
    return ["node", str(CACHE / "peer.js"), "--cold", str(WORKDIR), text]
