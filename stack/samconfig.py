"""samconfig.toml, read once: an environment's stack name, region and parameter overrides.

The stack name is `stack_name` of `[<env>.deploy.parameters]`, falling back to that of
`[<env>.global.parameters]` (sam CLI's own precedence: a command's section over `global`). There is
no further fallback: `sam deploy` has no stack without one, so an environment that names none is a
SettingsError rather than a guessed name. The region follows the same precedence and may be absent
(the AWS profile or AWS_REGION decides then).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from stack.errors import SettingsError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SAMCONFIG = ROOT / "samconfig.toml"
# The environment of the offline local stack (make rehearse): samconfig.toml holds its settings,
# nothing ever deploys it.
LOCAL_ENV = "local"


@dataclass(frozen=True)
class SamconfigEnv:
    """One environment of samconfig.toml, as `sam deploy --config-env <name>` reads it."""

    path: Path  # the samconfig.toml read
    name: str  # the environment, e.g. "prod"
    stack_name: str  # stack_name, [<env>.deploy.parameters] over [<env>.global.parameters]
    region: str | None  # region, same precedence; None: the AWS profile's or AWS_REGION decides
    parameter_overrides: Mapping[str, str]  # parameter_overrides as Key -> Value, quotes stripped


def _load(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read samconfig ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML ({exc})") from None


def _sections(config: dict[str, Any]) -> list[str]:
    return sorted(name for name, section in config.items() if isinstance(section, dict))


def deployable_environments(path: Path = DEFAULT_SAMCONFIG) -> tuple[str, ...]:
    """The environments `make deploy ENV=...` may name: those with a deploy section, but `default`
    (sam's implicit one) and the local stack's."""
    config = _load(Path(path))
    return tuple(
        name
        for name in _sections(config)
        if name not in ("default", LOCAL_ENV) and isinstance(config[name].get("deploy"), dict)
    )


def read_samconfig(path: Path = DEFAULT_SAMCONFIG, env: str = LOCAL_ENV) -> SamconfigEnv:
    """Environment `env` of samconfig.toml; SettingsError names the file and the key at fault."""
    path = Path(path)
    config = _load(path)
    section = config.get(env)
    if not isinstance(section, dict):
        known = ", ".join(_sections(config)) or "none"
        raise SettingsError(f"{path}: no environment [{env}] (it has: {known})")
    global_params = (section.get("global") or {}).get("parameters") or {}
    deploy_params = (section.get("deploy") or {}).get("parameters") or {}
    params = {**global_params, **deploy_params}
    if not params.get("stack_name"):
        raise SettingsError(f"{path}: no stack_name for environment {env!r} ([{env}.deploy.parameters])")
    raw = params.get("parameter_overrides", [])
    items = raw.split() if isinstance(raw, str) else list(raw)
    overrides: dict[str, str] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise SettingsError(
                f"{path}: [{env}.deploy.parameters] parameter_overrides item {item!r} is not Key=Value"
            )
        overrides[key.strip()] = value.strip().strip("\"'")
    return SamconfigEnv(
        path=path,
        name=env,
        stack_name=str(params["stack_name"]),
        region=str(params["region"]) if params.get("region") else None,
        parameter_overrides=MappingProxyType(overrides),
    )
