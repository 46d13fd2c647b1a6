"""What a cold start of the inference function imports (issue 11, "Cold start pays for X-Ray's SDK").

Lambda's active tracing (template.yaml, Globals: Tracing: Active) records each invocation's
segment without any SDK in the code, and the function calls no other service, so infer.app
imports no tracing SDK: Powertools' Tracer pulled in aws_xray_sdk at init (~16 ms of a ~120 ms
init in the Lambda environment), and botocore's session and client as well (~0.25 s) wherever
LAMBDA_TASK_ROOT is unset (as in the unit tests). These tests import infer.app in a fresh
process, as Lambda's init does, and fail if anything brings them back. Only botocore's bare
package may appear: Powertools imports it, when installed, to tag the user agent of boto3
clients (~0.5 ms; the Lambda runtime ships botocore); its sessions and clients, the expensive
part, must not. Timing belongs in bench.handler, not here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What the init must not import: the X-Ray SDK and the AWS SDK it drags in. A module is unwanted
# if it is one of these or inside one of them.
UNWANTED = ("aws_xray_sdk", "boto3", "botocore.session", "botocore.client", "s3transfer")
TRACE_ID = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
SCRIPT = (
    "import json, sys\n"
    "from tests.unit._infer_harness import FakeLambdaContext, event\n"
    "from infer.app import lambda_handler\n"
    "imported = sorted(sys.modules)\n"
    "r = lambda_handler(event('infer-post-valid'), FakeLambdaContext())\n"
    "after = sorted(sys.modules)\n"
    "print('RESULT', json.dumps({'status': r['statusCode'], 'imported': imported, 'after': after}))\n"
)


def unwanted(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == u or m.startswith(u + ".") for u in UNWANTED)]


def run_cold(lambda_like: bool) -> tuple[dict, list[dict]]:
    """Import infer.app in a new process and answer one request; its report and its log records."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "_X_AMZN", "LAMBDA_"))}
    env.pop("MODELS_DIR", None)
    env["MODEL_VERSION"] = "v2"
    if lambda_like:
        # What the Lambda runtime sets when active tracing is on.
        env.update(
            LAMBDA_TASK_ROOT=str(ROOT), _X_AMZN_TRACE_ID=TRACE_ID, AWS_XRAY_DAEMON_ADDRESS="127.0.0.1:2000"
        )
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    (report,) = [json.loads(line.split(" ", 1)[1]) for line in lines if line.startswith("RESULT ")]
    records = [json.loads(line) for line in lines if line.startswith("{")]
    return report, records


@pytest.fixture(scope="module")
def lambda_cold() -> tuple[dict, list[dict]]:
    return run_cold(lambda_like=True)


@pytest.mark.parametrize("lambda_like", [True, False], ids=["lambda-environment", "local"])
def test_init_and_first_request_import_no_xray_sdk_or_botocore(lambda_like, lambda_cold):
    """Neither the init nor the first request imports aws_xray_sdk, boto3 or botocore's session and
    client, in the Lambda environment (trace header set) or outside it (where the X-Ray SDK would
    also have set up botocore): the cold start does not pay for a tracing SDK."""
    report, _ = lambda_cold if lambda_like else run_cold(lambda_like=False)
    assert report["status"] == 200
    for modules in (report["imported"], report["after"]):
        assert "aws_lambda_powertools.logging" in modules  # the probe does see third-party imports
        assert unwanted(modules) == []


def test_request_record_still_carries_the_lambda_trace_id(lambda_cold):
    """Without an SDK the request's log record still names the X-Ray trace Lambda records (Powertools'
    Logger reads it from the environment), so a log line leads to its trace."""
    _, records = lambda_cold
    (record,) = [r for r in records if r.get("message") == "inference"]
    assert record["xray_trace_id"] == "1-5759e988-bd862e3fe1be46a994272793"
    assert record["status"] == 200
