"""The deployed stack named by AWS_SAM_STACK_NAME (these tests skip without it)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def stack():
    """Stack outputs plus the API key's value, read with the caller's AWS credentials."""
    name = os.environ.get("AWS_SAM_STACK_NAME")
    if not name:
        pytest.skip("AWS_SAM_STACK_NAME is not set: no deployed stack to test")
    import boto3

    cfn = boto3.client("cloudformation")
    outputs = {
        o["OutputKey"]: o["OutputValue"] for o in cfn.describe_stacks(StackName=name)["Stacks"][0]["Outputs"]
    }
    key = boto3.client("apigateway").get_api_key(apiKey=outputs["ApiKeyId"], includeValue=True)["value"]
    return {**outputs, "api_key": key, "url": outputs["ApiUrl"]}  # ApiUrl is the POST endpoint
