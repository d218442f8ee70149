"""The circuit breaker fails open while Redis (its shared cache) is down (real outage)."""

from __future__ import annotations

import logging
import time

import pytest

from apps.providers import breaker
from tests.support.outages import redis_down

pytestmark = pytest.mark.chaos


def _cache_warnings(caplog) -> int:
    return sum("circuit breaker cache unavailable" in r.getMessage() for r in caplog.records)


def test_with_redis_down_calls_proceed_as_if_closed_and_nothing_raises(settings, caplog):
    caplog.set_level(logging.WARNING, logger="apps.providers.breaker")
    breaker.reset()
    settings.PROVIDER_BREAKER_FAILURES = 3
    # No local memory and so no back-off either: every call below asks the cache.
    settings.PROVIDER_BREAKER_LOCAL_SECONDS = 0
    try:
        with redis_down():
            started = time.monotonic()
            assert breaker.allow_call("x")
            assert time.monotonic() - started < 0.5
            for _ in range(200):  # far past the threshold: not counted, so never tripped
                assert breaker.record_failure("x") == 0
                assert breaker.allow_call("x")
                breaker.record_success("x")
            breaker.trip("x", seconds=30, reason="Retry-After")
            assert breaker.allow_call("x")  # the trip could not be shared; nothing raised
            assert time.monotonic() - started < 2.0
            # Logged once for the whole outage, not once per call.
            assert _cache_warnings(caplog) == 1
    finally:
        breaker.reset()

    # Redis is back: the shared breaker works again.
    for _ in range(3):
        breaker.record_failure("x")
    assert breaker.state("x") == breaker.OPEN
    assert not breaker.allow_call("x")
    breaker.reset()
