"""Per-account rate limits (SPEC §3) against the real Redis and the database-cache fallback."""

from __future__ import annotations

import json
import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
import redis
from django.core.cache.backends.db import DatabaseCache
from django.db import connections

from apps.accounts import ratelimit
from apps.accounts.models import Plan
from apps.accounts.services import credits_add
from tests.factories import AccountFactory
from tests.support.api import make_client
from tests.support.ratelimit import BEFORE_MIDNIGHT, MIDNIGHT, small_plan


@pytest.fixture
def frozen(monkeypatch):
    """Pin the limiter's clock (a minute boundary mid-test would reset the counters)."""
    now = {"t": BEFORE_MIDNIGHT}
    monkeypatch.setattr(ratelimit, "clock", lambda: now["t"])
    return now


def client_on(plan: Plan, mode: str = "live"):
    account = AccountFactory(plan=plan)
    credits_add(account=account, amount=100, reason="test")
    return make_client(account=account, mode=mode)


def body(response) -> dict:
    return json.loads(response.content)


# --- Headers ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_every_authenticated_response_carries_the_headers(api, frozen):
    ok = api.get("/api/v1/credits")
    assert ok.status_code == 200
    assert ok["X-RateLimit-Limit"] == "200"  # pro plan, sandbox key: the per-minute window
    assert ok["X-RateLimit-Remaining"] == "199"
    assert ok["X-RateLimit-Reset"] == str(int(BEFORE_MIDNIGHT) + 30)  # the next minute
    assert ok["X-RateLimit-Window"] == "minute"
    # Errors after authentication carry them too: 404, 422, a scope refusal.
    missing = api.get("/api/v1/contacts/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404
    assert missing["X-RateLimit-Remaining"] == "198"
    invalid = api.post("/api/v1/enrich", {"first_name": ""}, format="json")
    assert invalid.status_code == 422
    assert invalid["X-RateLimit-Remaining"] == "197"
    read_only = make_client(account=api.account, scopes=["read"])
    refused = read_only.post("/api/v1/enrich", {}, format="json")
    assert refused.status_code == 403
    assert refused["X-RateLimit-Remaining"] == "196"  # same account: all keys share the limit


@pytest.mark.django_db
def test_unauthenticated_responses_have_no_headers(db):
    from rest_framework.test import APIClient

    response = APIClient().get("/api/v1/credits")
    assert response.status_code == 401
    assert "X-RateLimit-Limit" not in response


@pytest.mark.django_db
def test_over_the_minute_limit_is_429_until_the_next_minute(frozen):
    client = client_on(small_plan(per_minute=3))
    statuses = [client.get("/api/v1/credits").status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    refused = client.get("/api/v1/credits")
    assert body(refused)["code"] == "rate_limited"
    assert set(body(refused)) == {"error", "code", "details", "request_id"}
    assert refused["Retry-After"] == "30"
    assert refused["X-RateLimit-Remaining"] == "0"
    assert refused["X-RateLimit-Window"] == "minute"
    frozen["t"] += 30  # the next minute: refusals did not eat into it
    fresh = client.get("/api/v1/credits")
    assert fresh.status_code == 200
    assert fresh["X-RateLimit-Remaining"] == "2"


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_accept_exactly_the_limit(frozen):
    client = client_on(small_plan(per_minute=10))
    key = client.key.raw_key
    start = threading.Barrier(24)

    def fire(_: int) -> int:
        from rest_framework.test import APIClient

        own = APIClient()
        own.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        try:
            start.wait(timeout=30)
            return own.get("/api/v1/credits").status_code
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=24) as pool:
        statuses = list(pool.map(fire, range(24)))
    assert statuses.count(200) == 10, statuses
    assert statuses.count(429) == 14, statuses


def _hit_in_child(args: tuple) -> bool:
    account, now = args
    return ratelimit.rate_limit_hit(account=account, sandbox=False, now=now).allowed


@pytest.mark.django_db
def test_processes_share_one_limit():
    """Separate processes (like gunicorn workers) against one Redis: still exactly the limit."""
    account = AccountFactory(plan=small_plan(per_minute=15))
    account = type(account).objects.select_related("plan").get(pk=account.pk)
    ratelimit.store()  # created before fork: children must cope with an inherited pool
    with multiprocessing.get_context("fork").Pool(4) as pool:
        allowed = pool.map(_hit_in_child, [(account, BEFORE_MIDNIGHT)] * 40, chunksize=1)
    assert allowed.count(True) == 15


# --- Daily cap, sandbox, bulk -----------------------------------------------------------------


@pytest.mark.django_db
def test_daily_cap_resets_at_midnight_utc_and_ignores_sandbox(frozen):
    plan = small_plan(per_minute=100, daily=3)
    live = client_on(plan)
    sandbox = make_client(account=live.account, mode="test")
    statuses = [live.get("/api/v1/credits").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = live.get("/api/v1/credits")
    assert refused["X-RateLimit-Window"] == "day"
    assert refused["X-RateLimit-Limit"] == "3"
    assert refused["X-RateLimit-Reset"] == str(int(MIDNIGHT))
    assert refused["Retry-After"] == "30"
    # Sandbox keys of the same account are not held by the daily cap, only per minute.
    test_mode = sandbox.get("/api/v1/credits")
    assert test_mode.status_code == 200
    assert test_mode["X-RateLimit-Window"] == "minute"
    assert body(test_mode)["daily_requests_used"] == 3
    frozen["t"] = MIDNIGHT + 1
    after = live.get("/api/v1/credits")
    assert after.status_code == 200
    assert body(after)["daily_requests_used"] == 1


@pytest.mark.django_db
def test_sandbox_requests_count_toward_the_minute_limit(frozen):
    plan = small_plan(per_minute=4, daily=1000)
    live = client_on(plan)
    sandbox = make_client(account=live.account, mode="test")
    assert [sandbox.get("/api/v1/credits").status_code for _ in range(3)] == [200] * 3
    assert live.get("/api/v1/credits").status_code == 200
    assert live.get("/api/v1/credits").status_code == 429
    assert sandbox.get("/api/v1/credits").status_code == 429


@pytest.mark.django_db(transaction=True)
def test_a_bulk_counts_once(frozen):
    client = client_on(small_plan(per_minute=100, daily=1000))
    contacts = [
        {"first_name": f"P{i}", "last_name": "Doe", "domain": "acme.com"} for i in range(25)
    ]
    bulk = client.post(
        "/api/v1/enrich/bulk", {"contacts": contacts, "enrichment_type": ["email"]}, format="json"
    )
    assert bulk.status_code == 202, body(bulk)
    assert bulk["X-RateLimit-Remaining"] == "99"
    credits = client.get("/api/v1/credits")
    assert body(credits)["daily_requests_used"] == 2  # the bulk and this request


@pytest.mark.django_db
def test_credits_reports_the_limiter_counters(frozen):
    client = client_on(small_plan(per_minute=100, daily=500))
    for _ in range(4):
        client.get("/api/v1/contacts")
    answer = body(client.get("/api/v1/credits"))
    assert answer["daily_requests_used"] == 5
    assert answer["daily_limit"] == 500
    assert ratelimit.daily_requests_used(account=client.account) == 5


# --- The limiter itself -----------------------------------------------------------------------


@pytest.mark.django_db
def test_one_redis_round_trip_per_request(api, monkeypatch, settings):
    """The limiter sends exactly one command (the script) per request."""
    sent: list[str] = []
    client = redis.Redis.from_url(settings.REDIS_URL)
    real = client.execute_command

    def counting(*args, **kwargs):
        sent.append(str(args[0]))
        return real(*args, **kwargs)

    client.execute_command = counting  # the real Redis underneath; only counted
    monkeypatch.setattr(ratelimit, "_store", ratelimit.RedisStore(client))
    api.get("/api/v1/contacts/00000000-0000-0000-0000-000000000000")
    api.get("/api/v1/contacts")
    scripts = [c for c in sent if c.upper() in {"EVALSHA", "EVAL"}]
    assert len(sent) == 2 and len(scripts) == 2, sent


@pytest.mark.django_db
def test_plan_without_limits_reports_no_window(frozen):
    client = client_on(small_plan(per_minute=None, daily=None))
    response = client.get("/api/v1/credits")
    assert response.status_code == 200
    assert "X-RateLimit-Limit" not in response


@pytest.mark.django_db
def test_unreachable_redis_fails_open(db):
    account = AccountFactory(plan=small_plan(per_minute=1))
    dead = ratelimit.RedisStore(
        redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, socket_timeout=0.2)
    )
    decisions = [ratelimit.rate_limit_hit(account=account, sandbox=False, using=dead)] * 2
    assert all(d.allowed and not d.windows for d in decisions)
    assert ratelimit.daily_requests_used(account=account, using=dead) == 0


@pytest.mark.django_db
def test_credits_answers_while_redis_is_unreachable(api, monkeypatch):
    dead = ratelimit.RedisStore(
        redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, socket_timeout=0.2)
    )
    monkeypatch.setattr(ratelimit, "_store", dead)
    response = api.get("/api/v1/credits")
    assert response.status_code == 200
    assert response.json()["daily_requests_used"] == 0
    assert "X-RateLimit-Limit" not in response  # failed open: nothing counted


@pytest.mark.django_db
def test_database_cache_store_counts_both_windows():
    """The embedded default (no Redis) uses the database cache table."""
    store = ratelimit.CacheStore(DatabaseCache("sluice_cache", {}))
    account = AccountFactory(plan=small_plan(per_minute=3, daily=4))
    noon = datetime(2026, 5, 19, 12, 0, 10, tzinfo=UTC).timestamp()
    hit = lambda sandbox, t=noon: ratelimit.rate_limit_hit(  # noqa: E731
        account=account, sandbox=sandbox, now=t, using=store
    )
    assert [hit(False).allowed for _ in range(4)] == [True, True, True, False]
    assert hit(True).allowed is False  # sandbox still counts per minute
    next_minute = noon + 60
    assert hit(False, next_minute).allowed is True
    refused = hit(False, next_minute)  # the day's 4 are used
    assert refused.allowed is False
    assert refused.binding.name == "day"
    assert hit(True, next_minute).allowed is True  # ... but sandbox is not capped per day
    assert ratelimit.daily_requests_used(account=account, now=next_minute, using=store) == 4
    assert ratelimit.daily_requests_used(account=account, now=noon + 86400, using=store) == 0


@pytest.mark.django_db(transaction=True)
def test_database_cache_store_is_atomic_under_concurrency():
    store = ratelimit.CacheStore(DatabaseCache("sluice_cache", {}))
    account = AccountFactory(plan=small_plan(per_minute=7, daily=1000))
    account = type(account).objects.select_related("plan").get(pk=account.pk)
    start = threading.Barrier(16)

    def fire(_: int) -> bool:
        try:
            start.wait(timeout=30)
            return ratelimit.rate_limit_hit(
                account=account, sandbox=False, now=BEFORE_MIDNIGHT, using=store
            ).allowed
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=16) as pool:
        allowed = list(pool.map(fire, range(16)))
    assert allowed.count(True) == 7
