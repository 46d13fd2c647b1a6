"""The Lambda context object, defined once: the local runtime (emulator.worker) passes it to the
handler, and the tests and benchmarks that call a handler in-process pass a stand-in of it.

It has the attributes and method the Python runtime's context has (awslambdaric's LambdaContext)
that Powertools and the handlers read. Standard library only: the worker imports it before the
handler's init, and a benchmark's cold-start process must not pay for more.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

# The stand-in's made-up account and region (no real account is ever named).
STAND_IN_ACCOUNT = "123456789012"
STAND_IN_REGION = "us-east-1"


@dataclass(slots=True)
class LambdaContext:
    """The context object of one invocation: names and sizes of the function, its request id and
    the deadline (epoch milliseconds) that get_remaining_time_in_millis counts down to."""

    aws_request_id: str
    invoked_function_arn: str
    deadline_ms: int
    function_name: str | None = None
    function_version: str | None = None
    memory_limit_in_mb: Any = None  # a string from the runtime's environment, as awslambdaric has it
    log_group_name: str | None = None
    log_stream_name: str | None = None
    client_context: Any = None
    identity: Any = None

    @classmethod
    def from_environment(cls, request_id: str, invoked_function_arn: str, deadline_ms: int) -> LambdaContext:
        """As the runtime builds it: names and sizes from the environment Lambda sets (strings, as
        awslambdaric leaves them), the request id and deadline from the invocation."""
        env = os.environ
        return cls(
            request_id,
            invoked_function_arn,
            deadline_ms,
            function_name=env.get("AWS_LAMBDA_FUNCTION_NAME"),
            function_version=env.get("AWS_LAMBDA_FUNCTION_VERSION"),
            memory_limit_in_mb=env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"),
            log_group_name=env.get("AWS_LAMBDA_LOG_GROUP_NAME"),
            log_stream_name=env.get("AWS_LAMBDA_LOG_STREAM_NAME"),
        )

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self.deadline_ms - int(time.time() * 1000))


def stand_in_fields(
    function_name: str, function_version: str, request_id: str, *, alias: str = "live", memory_mb: int = 512
) -> dict[str, Any]:
    """The plain attributes of a stand-in context for a function invoked through its alias: what a
    process that cannot import this module (a benchmark's packaged cold start) rebuilds one from."""
    arn = f"arn:aws:lambda:{STAND_IN_REGION}:{STAND_IN_ACCOUNT}:function:{function_name}:{alias}"
    return {
        "function_name": function_name,
        "function_version": function_version,
        "memory_limit_in_mb": memory_mb,
        "invoked_function_arn": arn,
        "aws_request_id": request_id,
    }


def stand_in(
    function_name: str,
    function_version: str,
    request_id: str,
    *,
    alias: str = "live",
    memory_mb: int = 512,
    remaining_ms: int = 10_000,
) -> LambdaContext:
    """A context for calling a handler in-process (tests, benchmarks): made-up account, the
    function invoked through `alias`, `remaining_ms` left from now."""
    fields = stand_in_fields(function_name, function_version, request_id, alias=alias, memory_mb=memory_mb)
    return LambdaContext(deadline_ms=int(time.time() * 1000) + remaining_ms, **fields)
