"""Shared fixtures: API clients holding real keys, the broker, a real Celery worker."""

from __future__ import annotations

import os
import signal

import pytest
import redis
from django.conf import settings

from tests.support.api import KeyedClient, make_client
from tests.support.worker import WorkerProcess

QUEUES = ("enrichment", "webhooks", "maintenance")

# A suite started in the background by a non-interactive shell (`cmd &`, nohup) inherits
# SIGINT ignored, and so would every process it starts: the tests that Ctrl-C a `sluice`
# command (tests/client/test_cli.py) would wait for an exit that never comes. A handler is
# not inherited across exec, an ignored signal is: the children get the default back.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session", autouse=True)
def _require_real_services():
    """The suite runs on PostgreSQL and Redis only (SPEC §10): fail loudly otherwise."""
    engine = settings.DATABASES["default"]["ENGINE"]
    if "postgresql" not in engine or not settings.REDIS_URL:
        pytest.exit("Run the suite with scripts/test (real PostgreSQL and Redis).", returncode=2)


@pytest.fixture
def redis_client():
    return redis.Redis.from_url(settings.REDIS_URL)


@pytest.fixture(autouse=True)
def _clean_redis(redis_client):
    """Each test starts with empty queues, counters and circuit breakers."""
    redis_client.flushdb()
    yield


@pytest.fixture(autouse=True)
def _publish_in_the_request(settings):
    """Tests count messages right after a request: publish single contacts synchronously.
    The coalescing path (ENRICHMENT_PUBLISH_LINGER_MS > 0) has its own tests."""
    settings.ENRICHMENT_PUBLISH_LINGER_MS = 0


@pytest.fixture(autouse=True)
def _fresh_key_cache():
    """Each test starts with an empty process-wide key cache (views with api_key_cache = True):
    rows cached by an earlier test were rolled back with it."""
    from apps.accounts.keycache import key_cache

    key_cache.clear()
    yield
    key_cache.clear()


@pytest.fixture
def client_factory(db):
    return make_client


@pytest.fixture
def api(db) -> KeyedClient:
    """A sandbox (sk_test_) client on the pro plan."""
    return make_client()


@pytest.fixture
def live_api(db) -> KeyedClient:
    """A live (sk_live_) client on the pro plan with 1,000 credits."""
    return make_client(mode="live")


@pytest.fixture
def worker(transactional_db):
    """A real Celery worker process on the real Redis broker, for end-to-end tests."""
    proc = WorkerProcess().start()
    yield proc
    proc.stop()


@pytest.fixture
def worker_factory(transactional_db):
    """Start workers with extra environment (settings) of the test's choosing."""
    started: list[WorkerProcess] = []

    def start(**kwargs) -> WorkerProcess:
        proc = WorkerProcess(**kwargs).start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


os.environ.setdefault("SLUICE_TESTING", "1")
