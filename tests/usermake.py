"""`make` run by a test as a user would run it, not as a sub-make of `make test`.

Under `make test`, pytest inherits make's own variables; a `make` started by a test would then
run as a sub-make (jobserver, "make[1]: Entering directory" lines, the parent's overrides).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAKE_VARIABLES = ("MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES")


def user_env(base: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """`base` (default: this process's environment) without make's variables, plus `extra`."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in MAKE_VARIABLES}
    env.update(extra)
    return env


def run_make(*args: str, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess[str]:
    """`make ARGS` in the project root with a user's environment; output captured as text."""
    kwargs.setdefault("env", user_env())
    return subprocess.run(
        ["make", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, **kwargs
    )
