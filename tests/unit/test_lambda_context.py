"""The one Lambda context object (emulator.lambda_context): as the local runtime builds it from
the environment, and the stand-in tests and benchmarks pass to a handler in-process."""

from __future__ import annotations

import time

from emulator.lambda_context import LambdaContext, stand_in, stand_in_fields


def test_context_from_the_environment_reads_what_lambda_sets(monkeypatch):
    """Names, version, memory and log names come from the runtime's environment variables
    (strings, as awslambdaric leaves them); request id and ARN from the invocation."""
    env = {
        "AWS_LAMBDA_FUNCTION_NAME": "hate-speech-dev-infer",
        "AWS_LAMBDA_FUNCTION_VERSION": "3",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/hate-speech-dev-infer",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/11/30/[3]abc",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    arn = "arn:aws:lambda:us-east-1:000000000000:function:hate-speech-dev-infer:live"
    context = LambdaContext.from_environment("req-1", arn, int(time.time() * 1000) + 3_000)
    assert (context.aws_request_id, context.invoked_function_arn) == ("req-1", arn)
    assert (context.function_name, context.function_version) == ("hate-speech-dev-infer", "3")
    assert context.memory_limit_in_mb == "512"
    assert context.log_group_name == "/aws/lambda/hate-speech-dev-infer"
    assert context.log_stream_name == "2026/11/30/[3]abc"
    assert context.client_context is None and context.identity is None


def test_remaining_time_counts_down_to_the_deadline_and_stops_at_zero():
    """get_remaining_time_in_millis is the deadline minus now, never negative."""
    now_ms = int(time.time() * 1000)
    assert 0 < LambdaContext("r", "arn", now_ms + 60_000).get_remaining_time_in_millis() <= 60_000
    assert LambdaContext("r", "arn", now_ms - 5_000).get_remaining_time_in_millis() == 0


def test_stand_in_is_a_function_invoked_through_its_alias():
    """The stand-in names the function's alias ARN in a made-up account, with the given version,
    request id and memory, and the requested time left."""
    context = stand_in("bench-infer", "1", "bench-request", remaining_ms=10_000)
    assert context.invoked_function_arn == "arn:aws:lambda:us-east-1:123456789012:function:bench-infer:live"
    assert (context.function_name, context.function_version) == ("bench-infer", "1")
    assert (context.aws_request_id, context.memory_limit_in_mb) == ("bench-request", 512)
    assert 9_000 < context.get_remaining_time_in_millis() <= 10_000


def test_stand_in_fields_are_the_stand_ins_attributes():
    """The plain fields (what a process without this module rebuilds a context from) are the
    stand-in's own attributes, so the two cannot drift apart."""
    fields = stand_in_fields("f", "9", "r-1", alias="canary", memory_mb=1024)
    context = stand_in("f", "9", "r-1", alias="canary", memory_mb=1024)
    assert fields == {name: getattr(context, name) for name in fields}
    assert fields["invoked_function_arn"].endswith(":function:f:canary")
