"""Who sent a request: a user (live), the synthetic probe (probe) or the PreTraffic hook (hook).

The one home of the request id prefixes: the inference function tags its log records with them,
and canary/ (hook, sources, judge) imports them from here. Standard library only, so the lean
inference package can import it.

The source is read from API Gateway's request id (event requestContext.requestId), never from a
header or the body: API Gateway sets that id itself, a UUID, for every request that comes through
it, so a consumer cannot choose it. Only a caller allowed to invoke the function directly (the
probe and the hook, on a qualified version ARN) writes its own, and neither prefix can begin a
UUID ("p" is not a hex digit).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

LIVE, PROBE, HOOK = "live", "probe", "hook"
SOURCES = (LIVE, PROBE, HOOK)
# The synthetic probe's request ids: "probe-<probe id>", the same probe id sent to both versions.
PROBE_REQUEST_PREFIX = "probe-"
# The PreTraffic hook's request ids: "pretraffic-<run id>-<row id>" (canary.hook.hook_event).
PRETRAFFIC_REQUEST_PREFIX = "pretraffic-"
_PREFIXES = ((PROBE_REQUEST_PREFIX, PROBE), (PRETRAFFIC_REQUEST_PREFIX, HOOK))


@dataclass(frozen=True, slots=True)
class RequestSource:
    """Where one request came from."""

    source: str  # one of SOURCES
    probe_id: str | None  # probe and hook: the request id after its prefix (names the text sent)


def source_of_request_id(request_id: object) -> RequestSource:
    """The source a request id says; anything that is not a probe's or the hook's is live."""
    if isinstance(request_id, str):
        for prefix, source in _PREFIXES:
            if request_id.startswith(prefix):
                return RequestSource(source, request_id[len(prefix) :] or None)
    return RequestSource(LIVE, None)


def source_of_event(event: Mapping[str, Any]) -> RequestSource:
    """The source of an API Gateway REST proxy event (live when it has no request id)."""
    context = event.get("requestContext") if isinstance(event, Mapping) else None
    request_id = context.get("requestId") if isinstance(context, Mapping) else None
    return source_of_request_id(request_id)
