"""The half-open probe belongs to the call that took it, not to its whole process."""

from __future__ import annotations

import threading

from django.core.cache import cache

from apps.providers import breaker


def _in_another_thread(fn, *args) -> None:
    thread = threading.Thread(target=fn, args=args)
    thread.start()
    thread.join()


def test_only_the_probe_s_own_outcome_decides_a_half_open_breaker():
    breaker.reset("hunter")
    breaker.trip("hunter", seconds=60, reason="test")
    cache.delete("breaker:hunter:open")  # the cool-down is over: half-open
    breaker._seen.clear()  # and this process's one-second memory of "open" has lapsed
    assert breaker.allow_call("hunter")  # this thread takes the probe
    # A call another thread started before the trip comes back fine: it says nothing about
    # the vendor now, and must not close the breaker on the probe's behalf.
    _in_another_thread(breaker.record_success, "hunter")
    assert breaker.state("hunter") == breaker.HALF_OPEN
    breaker.record_failure("hunter")  # the probe itself fails: open again at once
    assert breaker.state("hunter") == breaker.OPEN
    breaker.reset("hunter")


def test_the_probe_s_success_closes_the_breaker():
    breaker.reset("hunter")
    breaker.trip("hunter", seconds=60, reason="test")
    cache.delete("breaker:hunter:open")
    breaker._seen.clear()
    assert breaker.allow_call("hunter")
    others: list[bool] = []
    _in_another_thread(lambda: others.append(breaker.allow_call("hunter")))
    assert others == [False]  # one probe at a time
    breaker.record_success("hunter")
    assert breaker.state("hunter") == breaker.CLOSED
