"""Say in one line whether AWS is within reach before `make deploy/rollout/decommission`.

    python -m deploy.aws_preflight --env dev [--model v2]

Exit 0 and print the account, region and stack; exit 2 with one line on stderr when the
arguments are wrong, there are no credentials, or STS cannot be reached. Offline, the
project still builds (`make build`), validates (`make validate`) and rehearses locally.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

from stack import (
    DEFAULT_SAMCONFIG,
    LOCAL_ENV,
    SamconfigEnv,
    SettingsError,
    allowed_model_versions,
    deployable_environments,
    read_samconfig,
)

SAMCONFIG = DEFAULT_SAMCONFIG


class PreflightError(Exception):
    """Why a deploy cannot start, in one line."""


def stack_name(env: str, samconfig: Path = SAMCONFIG) -> str:
    """The stack samconfig.toml deploys for `env` (stack.read_samconfig's one rule)."""
    return deployed_environment(env, samconfig).stack_name


def deployed_environment(env: str, samconfig: Path = SAMCONFIG) -> SamconfigEnv:
    """Environment `env` of samconfig.toml, if it is one that deploys; an error names the
    environments it has. The local stack's environment is refused: nothing deploys it."""
    try:
        stages = deployable_environments(samconfig)
        if env == LOCAL_ENV:
            raise PreflightError(
                f"ENV=local configures the offline local stack and is not deployed; use {', '.join(stages)}"
            )
        if env not in stages:
            raise PreflightError(f"ENV={env} is not in samconfig.toml; use one of {', '.join(stages)}")
        return read_samconfig(samconfig, env)
    except SettingsError as exc:
        raise PreflightError(str(exc)) from None


def caller_identity(sts) -> dict:
    """STS's answer for whoever the credentials belong to (needs no permissions)."""
    try:
        return sts.get_caller_identity()
    except NoCredentialsError:
        raise PreflightError(
            "no AWS credentials: set AWS_PROFILE or run 'aws configure' to deploy "
            "(offline: make build, make validate and the local stack still work)"
        ) from None
    except ClientError as exc:
        raise PreflightError(
            f"AWS rejected the credentials: {exc.response['Error'].get('Message', exc)}"
        ) from None
    except BotoCoreError as exc:
        raise PreflightError(f"cannot reach AWS STS: {exc}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aws_preflight", description=__doc__.splitlines()[0])
    parser.add_argument("--env", required=True, help="samconfig.toml environment (dev, uat, prod)")
    parser.add_argument("--model", default=None, help="model version a rollout switches to")
    args = parser.parse_args(argv)
    try:
        models = allowed_model_versions()  # the template's ModelVersion AllowedValues
        if args.model is not None and args.model not in models:
            raise PreflightError(f"MODEL={args.model} is not a model version; use one of {', '.join(models)}")
        stack = stack_name(args.env)
        try:
            session = boto3.session.Session()
            sts = session.client("sts", config=Config(connect_timeout=5, retries={"total_max_attempts": 1}))
        except NoRegionError:
            raise PreflightError("no AWS region: set AWS_REGION or AWS_DEFAULT_REGION") from None
        identity = caller_identity(sts)
    except PreflightError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"AWS account {identity['Account']} ({identity['Arn']}), region {session.region_name}, stack {stack}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
