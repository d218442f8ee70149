"""What the per-account rate limiter adds to a request: run by bench/ratelimit.sh."""

# 1. The limiter call alone (rate_limit_hit), N times in a row against the real Redis, next
#    to a bare Redis PING (the floor of any one round trip) and the database-cache store.
# 2. A whole authenticated request through Django (GET /api/v1/contacts/<unknown id>:
#    key lookup, permission, a 404) on a plan with limits vs. the same plan without limits
#    (no limiter round trip at all); the difference is what the limiter costs per request.

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import django

django.setup()

import redis  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.cache.backends.db import DatabaseCache  # noqa: E402
from django.test import Client  # noqa: E402

from apps.accounts import ratelimit  # noqa: E402
from apps.accounts.models import Plan  # noqa: E402
from apps.accounts.services import account_create  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 5000


def measure(fn: Callable[[], object], n: int) -> dict[str, float]:
    for _ in range(min(200, n)):  # warm connections, script cache, query plans
        fn()
    samples = []
    for _ in range(n):
        started = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - started) / 1000)
    return _stats(samples)


def measure_pair(
    a: Callable[[], object], b: Callable[[], object], n: int
) -> tuple[dict[str, float], dict[str, float]]:
    for _ in range(min(200, n)):
        a()
        b()
    samples: tuple[list[float], list[float]] = ([], [])
    for i in range(n):
        # Alternate which goes first, so neither always runs on a warmer cache.
        order = ((0, a), (1, b)) if i % 2 else ((1, b), (0, a))
        for index, fn in order:
            started = time.perf_counter_ns()
            fn()
            samples[index].append((time.perf_counter_ns() - started) / 1000)
    return _stats(samples[0]), _stats(samples[1])


def _stats(samples: list[float]) -> dict[str, float]:
    samples = sorted(samples)
    n = len(samples)
    return {
        "p50": statistics.median(samples),
        "p90": samples[int(n * 0.9)],
        "p99": samples[int(n * 0.99)],
        "mean": statistics.fmean(samples),
    }


def plan(code: str, per_minute: int | None, daily: int | None) -> Plan:
    row, _ = Plan.objects.update_or_create(
        code=code,
        defaults={
            "name": code,
            "api_access": True,
            "per_minute": per_minute,
            "daily_requests": daily,
            "max_active_keys": 5,
            "bulk_max": 100,
        },
    )
    return row


def main() -> None:
    huge = 10**9  # a limit never reached, so every call takes the counting path
    plan("bench-limited", huge, huge)
    plan("bench-unlimited", None, None)
    limited = account_create(name="bench", plan_code="bench-limited", mode="live")
    unlimited = account_create(name="bench", plan_code="bench-unlimited", mode="live")
    account = type(limited.account).objects.select_related("plan").get(pk=limited.account.pk)

    client = redis.Redis.from_url(settings.REDIS_URL)
    db_store = ratelimit.CacheStore(DatabaseCache("sluice_cache", {}))
    rows = [
        ("Redis PING (one round trip, the floor)", measure(client.ping, N)),
        (
            "rate_limit_hit, Redis Lua (live key: both windows)",
            measure(lambda: ratelimit.rate_limit_hit(account=account, sandbox=False), N),
        ),
        (
            "rate_limit_hit, database cache on PostgreSQL (no Redis)",
            measure(
                lambda: ratelimit.rate_limit_hit(account=account, sandbox=False, using=db_store),
                max(N // 5, 200),
            ),
        ),
    ]

    def request(raw_key: str) -> Callable[[], object]:
        http = Client(HTTP_AUTHORIZATION=f"Bearer {raw_key}")

        def call() -> object:
            response = http.get("/api/v1/contacts/00000000-0000-0000-0000-000000000000")
            assert response.status_code == 404, response.status_code
            return response

        return call

    import logging

    logging.disable(logging.WARNING)  # the 404s would log one line each
    n_requests = max(N // 5, 200)
    # Time the limiter inside those requests as well (the authentication calls it by name).
    in_request: list[float] = []
    real_hit = ratelimit.rate_limit_hit

    def timed_hit(**kwargs: object) -> ratelimit.Decision:
        started = time.perf_counter_ns()
        try:
            return real_hit(**kwargs)  # type: ignore[arg-type]
        finally:
            if kwargs["account"].plan.per_minute is not None:  # type: ignore[attr-defined]
                in_request.append((time.perf_counter_ns() - started) / 1000)

    ratelimit.rate_limit_hit = timed_hit  # type: ignore[assignment]
    # Interleaved, so that load from other processes on the machine hits both alike.
    with_limiter, without = measure_pair(
        request(limited.key.raw_key), request(unlimited.key.raw_key), n_requests
    )
    ratelimit.rate_limit_hit = real_hit  # type: ignore[assignment]
    rows += [
        ("limiter inside those requests (plan with limits)", _stats(in_request)),
        ("GET request, plan with limits (limiter on)", with_limiter),
        ("GET request, plan without limits (limiter skipped)", without),
    ]

    print(f"N = {N} limiter calls, {n_requests} requests; microseconds per operation\n")
    print("| operation | p50 µs | p90 µs | p99 µs | mean µs |")
    print("|---|---:|---:|---:|---:|")
    for name, s in rows:
        print(f"| {name} | {s['p50']:.0f} | {s['p90']:.0f} | {s['p99']:.0f} | {s['mean']:.0f} |")
    print(
        f"\nAdded per request by the limiter (p50 difference): "
        f"{with_limiter['p50'] - without['p50']:.0f} µs"
    )


if __name__ == "__main__":
    main()
