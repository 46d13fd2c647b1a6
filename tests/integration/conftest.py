"""Shared fixtures of the integration tests: one home for the local stack pieces several test
modules start the same way."""

from __future__ import annotations

import pytest

from canary.records import RecordStore
from emulator.functions import Alias, FunctionVersion
from emulator.gateway import Gateway
from stack import load_settings


@pytest.fixture(scope="module")
def version():
    """Function version 1 serving v1 (the lightest model), started once per test module."""
    fv = FunctionVersion("1", "v1").start()
    yield fv
    fv.stop()


def unthrottled_gateway(api_key: str, records_dir, model: str = "v2") -> tuple[Gateway, RecordStore]:
    """A started gateway over one version of `model`, throttle and quota lifted (they are tested
    elsewhere), and the store it records into (in records_dir); the caller stops the gateway."""
    settings = load_settings().lifted(quota=True, throttle=True)
    store = RecordStore(records_dir / "records.sqlite")
    function = FunctionVersion("1", model, settings=settings)
    return Gateway(settings, Alias("live", function), api_key, store).start(), store
