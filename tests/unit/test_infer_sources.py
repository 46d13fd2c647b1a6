"""infer.sources: who sent a request, from API Gateway's request id; the one home of the prefixes."""

from __future__ import annotations

import pytest

import canary.hook
import canary.probe
import canary.sources
from canary.config import HookConfig
from infer import sources
from infer.sources import HOOK, LIVE, PROBE, RequestSource, source_of_event, source_of_request_id


@pytest.mark.parametrize(
    ("request_id", "expected"),
    [
        ("probe-run7-4312-17", RequestSource(PROBE, "run7-4312-17")),
        ("pretraffic-abc123-0", RequestSource(HOOK, "abc123-0")),
        ("c6af9ac6-7b61-11e6-9a41-93e8deadbeef", RequestSource(LIVE, None)),
        ("PROBE-run7-1-1", RequestSource(LIVE, None)),  # the prefixes are exact
        ("x-probe-run7-1-1", RequestSource(LIVE, None)),
        ("probe-", RequestSource(PROBE, None)),  # a probe without an id (its record is malformed)
        ("", RequestSource(LIVE, None)),
        (None, RequestSource(LIVE, None)),
        (42, RequestSource(LIVE, None)),
    ],
)
def test_request_id_decides_the_source(request_id, expected):
    """ "probe-" -> probe, "pretraffic-" -> hook, with the rest as probe_id; anything else is live."""
    assert source_of_request_id(request_id) == expected


@pytest.mark.parametrize("event", [{}, {"requestContext": None}, {"requestContext": "probe-1"}, []])
def test_event_without_a_request_id_is_live(event):
    """An event without a usable requestContext.requestId is a live request, never an error."""
    assert source_of_event(event) == RequestSource(LIVE, None)


def test_canary_uses_the_prefix_from_infer():
    """canary.sources and canary.hook take the hook's prefix from infer.sources (one definition),
    and the hook's events are tagged hook, with the text's row id in the probe_id."""
    assert canary.sources.PRETRAFFIC_REQUEST_PREFIX is sources.PRETRAFFIC_REQUEST_PREFIX
    assert canary.hook.PRETRAFFIC_REQUEST_PREFIX is sources.PRETRAFFIC_REQUEST_PREFIX
    config = HookConfig(new_version_arn="arn:aws:lambda:us-east-1:123456789012:function:f:3")
    event = canary.hook.hook_event("some text", 5, config, "run9")
    assert source_of_event(event) == RequestSource(HOOK, "run9-5")


def test_no_uuid_can_start_with_a_prefix():
    """API Gateway's request ids are UUIDs (hex and dashes): neither prefix can begin one, so a
    consumer's request is never taken for a probe or the hook."""
    hex_digits = set("0123456789abcdefABCDEF-")
    for prefix in (sources.PROBE_REQUEST_PREFIX, sources.PRETRAFFIC_REQUEST_PREFIX):
        assert not set(prefix[0]) <= hex_digits


def test_the_probes_request_ids_are_tagged_probe():
    """canary.probe's request ids ("probe-<run>-<row id>-<seq>") read back as probe, the probe id
    being what follows the prefix (the same for both versions' answers to one send)."""
    request_id = canary.probe.probe_request_id("run1", "4312", 7)
    assert source_of_request_id(request_id) == RequestSource(PROBE, "run1-4312-7")
