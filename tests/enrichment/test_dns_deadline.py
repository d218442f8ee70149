"""Intake resolves webhook hosts under one deadline (issue 13, item 2): no unbounded DNS work.

The resolver here never answers for *.slow.example (as a host whose name servers drop every
query), answers at once for *.fast.example, and leaves every other name (Redis, say) to the
real one. The deadline is checked on a clock of its own (``DnsClock``): time passes for the
look-ups only while every one still running is a never-answering one, so what a request
spends waiting is exact, however slow the machine running the test.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from concurrent import futures

import pytest

from apps.webhooks import targets
from tests.support.api import EMAIL_CONTACT

pytestmark = pytest.mark.django_db

PUBLIC = "93.184.215.14"


def never_answers(host: str) -> bool:
    return host.endswith(".slow.example")


class SlowResolver:
    def __init__(self, real):
        self.real = real
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.calls: list[str] = []
        self.in_flight = 0
        self.most_in_flight = 0

    def __call__(self, host, port, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name.endswith(".fast.example"):
            with self.lock:
                self.calls.append(name)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC, port))]
        if not never_answers(name):
            return self.real(host, port, *args, **kwargs)
        with self.lock:
            self.calls.append(name)
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            self.release.wait(30)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        finally:
            with self.lock:
                self.in_flight -= 1


class DnsClock:
    """``targets.resolve_all``'s clock and its ``wait``: a wait on look-ups that answer is a
    real one (up to 30 s, a bound) and costs no time here; a wait on never-answering
    look-ups only costs its whole timeout at once. ``now`` is the time spent waiting so far."""

    def __init__(self) -> None:
        self.now = 0.0
        self.hosts: dict[futures.Future, str] = {}  # each look-up's host

    def monotonic(self) -> float:
        return self.now

    def wait(self, fs, timeout=None, return_when=futures.ALL_COMPLETED):
        fs = set(fs)
        answering = {f for f in fs if not never_answers(self.hosts[f])}
        if answering:
            done, _ = futures.wait(answering, timeout=30, return_when=return_when)
            if done:
                return done, fs - done
        # As the whole timeout would: every look-up waited for has been started.
        bound = time.monotonic() + 30
        while not all(f.running() or f.done() for f in fs) and time.monotonic() < bound:
            time.sleep(0.01)
        self.now += timeout
        return set(), fs


class RecordingPool:
    """The look-up pool, noting each look-up's host for ``DnsClock``."""

    def __init__(self, pool: futures.ThreadPoolExecutor, clock: DnsClock) -> None:
        self.pool, self.clock = pool, clock

    def submit(self, fn, host, *args):
        future = self.pool.submit(fn, host, *args)
        self.clock.hosts[future] = host
        return future


@pytest.fixture
def slow_dns(monkeypatch, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    settings.WEBHOOK_DNS_TIMEOUT_SECONDS = 2.0
    resolver = SlowResolver(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    resolver.clock = clock = DnsClock()
    pool = RecordingPool(targets._dns_pool(), clock)
    monkeypatch.setattr(targets, "_dns_pool", lambda: pool)
    monkeypatch.setattr(targets, "time", clock)
    monkeypatch.setattr(targets, "wait", clock.wait)
    yield resolver
    # Free the pool's threads for the next test (a real look-up gives up on its own).
    resolver.release.set()


def waited(resolver, call):
    """``call()``'s answer, and the seconds its look-ups were waited for on the DNS clock."""
    before = resolver.clock.now
    response = call()
    return response, resolver.clock.now - before


def _bulk(urls: list[str]) -> dict:
    return {
        "enrichment_type": ["email"],
        "contacts": [
            {"first_name": f"A{i}", "last_name": "B", "domain": "stripe.com", "webhook_url": url}
            for i, url in enumerate(urls)
        ],
    }


def _post(api, path: str, body: dict):
    return api.post(path, json.dumps(body), content_type="application/json")


def test_a_bulk_of_100_never_answering_hosts_returns_within_the_deadline(api, slow_dns):
    threads_before = threading.active_count()
    response, seconds = waited(
        slow_dns,
        lambda: _post(
            api,
            "/api/v1/enrich/bulk",
            _bulk([f"https://h{i}.slow.example/hook" for i in range(100)]),
        ),
    )
    assert seconds == pytest.approx(2.0)  # one deadline for the request, not one per batch
    # Answered while every look-up it started still hangs: it waited for none of them.
    started = slow_dns.clock.hosts
    assert started and not any(f.done() for f in started)
    assert response.status_code == 422
    details = response.json()["details"]
    assert details == {
        f"contacts[{i}].webhook_url": "Host did not resolve in time." for i in range(100)
    }
    # Bounded threads: a request runs a few look-ups at a time on a shared pool, not 100.
    assert slow_dns.most_in_flight <= targets.DNS_PER_REQUEST
    assert len(slow_dns.calls) <= targets.DNS_PER_REQUEST
    assert threading.active_count() - threads_before <= targets.DNS_POOL_SIZE


def test_a_second_request_is_not_starved_by_the_first_ones_stuck_lookups(api, slow_dns):
    _post(api, "/api/v1/enrich/bulk", _bulk([f"https://h{i}.slow.example/h" for i in range(100)]))
    # The pool still has threads free: a public host resolves at once.
    response, seconds = waited(
        slow_dns,
        lambda: _post(
            api, "/api/v1/enrich", {**EMAIL_CONTACT, "webhook_url": "https://crm.fast.example/h"}
        ),
    )
    assert response.status_code == 202, response.json()
    assert seconds == 0  # no deadline waited out: the look-up answered


def test_distinct_hosts_are_resolved_once_and_only_slow_ones_are_refused(api, slow_dns):
    urls = [f"https://h{i % 3}.fast.example/hook/{i}" for i in range(99)]
    urls[5] = "https://only.slow.example/hook"
    response = _post(api, "/api/v1/enrich/bulk", _bulk(urls))
    assert response.status_code == 422
    assert response.json()["details"] == {
        "contacts[5].webhook_url": "Host did not resolve in time."
    }
    assert sorted(slow_dns.calls) == [
        "h0.fast.example",
        "h1.fast.example",
        "h2.fast.example",
        "only.slow.example",
    ]


def test_resolvable_bulk_is_accepted_after_one_lookup_per_host(api, slow_dns):
    urls = [f"https://h{i % 7}.fast.example/hook" for i in range(100)]
    body = {**_bulk(urls), "webhook_url": "https://batch.fast.example/all"}
    response = _post(api, "/api/v1/enrich/bulk", body)
    assert response.status_code == 202, response.json()
    assert len(slow_dns.calls) == 8


def test_single_enrich_and_bulk_level_url_name_the_field(api, slow_dns, settings):
    settings.WEBHOOK_DNS_TIMEOUT_SECONDS = 0.3
    single, single_seconds = waited(
        slow_dns,
        lambda: _post(
            api, "/api/v1/enrich", {**EMAIL_CONTACT, "webhook_url": "https://crm.slow.example/h"}
        ),
    )
    bulk, bulk_seconds = waited(
        slow_dns,
        lambda: _post(
            api,
            "/api/v1/enrich/bulk",
            {**_bulk(["https://a.fast.example/h"]), "webhook_url": "https://b.slow.example/h"},
        ),
    )
    assert single_seconds == bulk_seconds == pytest.approx(0.3)  # the setting, not a fixed 2 s
    assert single.status_code == 422
    assert single.json()["details"] == {"webhook_url": "Host did not resolve in time."}
    assert bulk.status_code == 422
    assert bulk.json()["details"] == {"webhook_url": "Host did not resolve in time."}


def test_endpoint_creation_is_bounded_too(api, slow_dns, settings):
    settings.WEBHOOK_DNS_TIMEOUT_SECONDS = 0.3
    response, seconds = waited(
        slow_dns, lambda: _post(api, "/api/v1/webhooks", {"url": "https://hooks.slow.example/h"})
    )
    assert seconds == pytest.approx(0.3)
    assert response.status_code == 422
    assert response.json()["details"] == {"url": "Host did not resolve in time."}
