"""Per-account rate limits (SPEC §3): per-minute and per-UTC-day windows, one atomic count."""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis
from django.conf import settings
from django.core.cache import caches
from django.db import connections, router, transaction
from django.http import HttpRequest
from rest_framework.throttling import BaseThrottle

from apps.core.errors import RateLimited

from .models import Account, ApiKey

if TYPE_CHECKING:
    from collections.abc import Callable

    from django.core.cache.backends.base import BaseCache
    from rest_framework.request import Request
    from rest_framework.views import APIView

logger = logging.getLogger(__name__)

MINUTE = 60
DAY = 86400
# Counters outlive their window a little so a read at the boundary still finds them.
EXPIRY_GRACE_SECONDS = 60
# The HttpRequest attribute carrying this request's Decision (read by the middleware).
REQUEST_ATTRIBUTE = "sluice_rate_limit"

# Returns {allowed (0/1), minute count, day count}. A refusal increments nothing.
# KEYS: minute counter, day counter. ARGV: minute limit, day limit (-1 = none),
# count the day (0/1), minute TTL, day TTL (seconds: relative, so that the web servers'
# clocks and Redis's need not agree).
_LUA = """
local m = tonumber(redis.call('GET', KEYS[1]) or '0')
local d = tonumber(redis.call('GET', KEYS[2]) or '0')
local ml = tonumber(ARGV[1])
local dl = tonumber(ARGV[2])
local count_day = ARGV[3] == '1'
if ml >= 0 and m >= ml then return {0, m, d} end
if count_day and dl >= 0 and d >= dl then return {0, m, d} end
m = redis.call('INCR', KEYS[1])
if m == 1 then redis.call('EXPIRE', KEYS[1], ARGV[4]) end
if count_day then
  d = redis.call('INCR', KEYS[2])
  if d == 1 then redis.call('EXPIRE', KEYS[2], ARGV[5]) end
end
return {1, m, d}
"""


@dataclass(frozen=True)
class Window:
    """One window's state after this request: what the X-RateLimit-* headers describe."""

    name: str  # "minute" or "day"
    limit: int
    used: int
    reset: int  # unix seconds at which the window restarts

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    windows: tuple[Window, ...]
    now: float

    @property
    def binding(self) -> Window | None:
        """The window closest to exhaustion; on a tie the one that resets later.

        That is the window the client must respect, so it is the one the headers describe;
        on a 429 it is the window that refused (remaining 0).
        """
        if not self.windows:
            return None
        return min(self.windows, key=lambda w: (w.remaining, -w.reset))

    @property
    def retry_after(self) -> int:
        window = self.binding
        if window is None:
            return 0
        return max(1, math.ceil(window.reset - self.now))

    def headers(self) -> dict[str, str]:
        window = self.binding
        if window is None:
            return {}
        return {
            "X-RateLimit-Limit": str(window.limit),
            "X-RateLimit-Remaining": str(window.remaining),
            "X-RateLimit-Reset": str(window.reset),
            "X-RateLimit-Window": window.name,
        }


def _keys(account_id: Any, now: float) -> tuple[str, str, int, int]:
    """Counter keys (one Redis Cluster hash slot per account) and window ends for ``now``."""
    minute = int(now // MINUTE)
    day = int(now // DAY)  # unix days are UTC days: the window resets at midnight UTC
    # Canonical form: on SQLite a UUID primary key may arrive as a dashless hex string.
    try:
        canonical = uuid.UUID(str(account_id)).hex
    except ValueError:
        canonical = str(account_id)
    tag = f"{{{canonical}}}"
    return (
        f"sluice:rl:{tag}:m:{minute}",
        f"sluice:rl:{tag}:d:{day}",
        (minute + 1) * MINUTE,
        (day + 1) * DAY,
    )


# --- Stores -----------------------------------------------------------------------------------


class RedisStore:
    """Both windows in one Lua script: atomic across every web process, one round trip."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.script = client.register_script(_LUA)

    def hit(
        self, *, account_id: Any, minute_limit: int, day_limit: int, count_day: bool, now: float
    ) -> tuple[bool, int, int]:
        minute_key, day_key, minute_reset, day_reset = _keys(account_id, now)
        allowed, minute_used, day_used = self.script(
            keys=[minute_key, day_key],
            args=[
                minute_limit,
                day_limit,
                int(count_day),
                math.ceil(minute_reset - now) + EXPIRY_GRACE_SECONDS,
                math.ceil(day_reset - now) + EXPIRY_GRACE_SECONDS,
            ],
        )
        return bool(allowed), int(minute_used), int(day_used)

    def day_used(self, *, account_id: Any, now: float) -> int:
        return int(self.client.get(_keys(account_id, now)[1]) or 0)


class CacheStore:
    """The embedded default: a Django cache (the database cache) under a per-account lock.

    Django's ``cache.incr`` is a read then a write, so on its own two processes could both
    pass the check. Doing the read-check-write inside one transaction that first takes a
    lock makes it atomic: on SQLite the settings use ``BEGIN IMMEDIATE`` (the database write
    lock), on PostgreSQL a transaction-scoped advisory lock per account. Other cache
    backends (locmem, memcached) get no cross-process guarantee: use Redis for those setups.
    """

    def __init__(self, cache: BaseCache) -> None:
        self.cache = cache

    def _lock(self, account_id: Any) -> None:
        alias = router.db_for_write(Account)
        connection = connections[alias]
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                lock_id = zlib.crc32(f"ratelimit:{_keys(account_id, 0)[0]}".encode())
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [lock_id])

    def hit(
        self, *, account_id: Any, minute_limit: int, day_limit: int, count_day: bool, now: float
    ) -> tuple[bool, int, int]:
        minute_key, day_key, minute_reset, day_reset = _keys(account_id, now)
        with transaction.atomic(using=router.db_for_write(Account)):
            self._lock(account_id)
            minute_used = int(self.cache.get(minute_key) or 0)
            day_used = int(self.cache.get(day_key) or 0)
            if 0 <= minute_limit <= minute_used or (count_day and 0 <= day_limit <= day_used):
                return False, minute_used, day_used
            minute_used += 1
            self.cache.set(minute_key, minute_used, minute_reset - now + EXPIRY_GRACE_SECONDS)
            if count_day:
                day_used += 1
                self.cache.set(day_key, day_used, day_reset - now + EXPIRY_GRACE_SECONDS)
        return True, minute_used, day_used

    def day_used(self, *, account_id: Any, now: float) -> int:
        return int(self.cache.get(_keys(account_id, now)[1]) or 0)


_store: RedisStore | CacheStore | None = None
_store_lock = threading.Lock()


def store() -> RedisStore | CacheStore:
    """The process-wide store: one Redis connection pool shared by every thread."""
    global _store
    if _store is None:
        with _store_lock:
            if _store is None:
                if settings.REDIS_URL:
                    _store = RedisStore(
                        redis.Redis.from_url(
                            settings.REDIS_URL,
                            socket_connect_timeout=settings.RATE_LIMIT_REDIS_TIMEOUT,
                            socket_timeout=settings.RATE_LIMIT_REDIS_TIMEOUT,
                        )
                    )
                else:
                    _store = CacheStore(caches["default"])
    return _store


# Indirection so tests can pin the clock (a window boundary mid-test would reset counters).
clock: Callable[[], float] = time.time


# --- Services ---------------------------------------------------------------------------------
# A request is counted once, when its API key authenticates (so every authenticated response,
# errors included, can carry the X-RateLimit-* headers); AccountRateThrottle turns a refusal
# into the 429 and RateLimitHeadersMiddleware writes the headers. A refusal consumes nothing.
# Sandbox requests count per minute only. Design and figures: docs/guards.md.


def rate_limit_hit(
    *,
    account: Account,
    sandbox: bool,
    now: float | None = None,
    using: RedisStore | CacheStore | None = None,
) -> Decision:
    """Count one request for the account and say whether it may proceed.

    ``None`` limits on the plan mean "no limit" for that window (no window reported).
    """
    now = clock() if now is None else now
    plan = account.plan
    minute_limit = -1 if plan.per_minute is None else plan.per_minute
    day_limit = -1 if plan.daily_requests is None else plan.daily_requests
    count_day = not sandbox
    if minute_limit < 0 and (day_limit < 0 or not count_day):
        return Decision(allowed=True, windows=(), now=now)
    try:
        allowed, minute_used, day_used = (using or store()).hit(
            account_id=account.pk,
            minute_limit=minute_limit,
            day_limit=day_limit,
            count_day=count_day,
            now=now,
        )
    except redis.RedisError:
        # Fail open: an unreachable Redis should not turn into an API outage of its own
        # (enqueueing reports its own errors). Logged so that ops notice (docs/guards.md).
        logger.warning("rate limiter unavailable; request not counted", exc_info=True)
        return Decision(allowed=True, windows=(), now=now)
    _, _, minute_reset, day_reset = _keys(account.pk, now)
    windows = []
    if minute_limit >= 0:
        windows.append(Window("minute", minute_limit, minute_used, minute_reset))
    if count_day and day_limit >= 0:
        windows.append(Window("day", day_limit, day_used, day_reset))
    return Decision(allowed=allowed, windows=tuple(windows), now=now)


def daily_requests_used(
    *, account: Account, now: float | None = None, using: RedisStore | CacheStore | None = None
) -> int:
    """Live requests counted against today's cap (UTC day), from the limiter's own counters.

    0 when Redis is unreachable: the limiter fails open and counts nothing then, and a balance
    read should not become a 500 for want of a usage figure.
    """
    try:
        return (using or store()).day_used(
            account_id=account.pk, now=clock() if now is None else now
        )
    except redis.RedisError:
        logger.warning("rate limiter unavailable; daily usage reported as 0", exc_info=True)
        return 0


def rate_limit_request(*, request: HttpRequest, account: Account, api_key: ApiKey) -> Decision:
    """Count this HTTP request once, however many times it is authenticated, and remember it."""
    decision = getattr(request, REQUEST_ATTRIBUTE, None)
    if decision is None:
        decision = rate_limit_hit(account=account, sandbox=api_key.sandbox)
        setattr(request, REQUEST_ATTRIBUTE, decision)
    return decision


# --- HTTP -------------------------------------------------------------------------------------


class AccountRateThrottle(BaseThrottle):
    """DRF throttle (``DEFAULT_THROTTLE_CLASSES``): 429 ``rate_limited`` when over a window."""

    def allow_request(self, request: Request, view: APIView) -> bool:
        decision: Decision | None = getattr(request._request, REQUEST_ATTRIBUTE, None)
        if decision is None or decision.allowed:
            return True
        window = decision.binding
        assert window is not None  # a refusal always comes from a window
        raise RateLimited(
            f"Rate limit exceeded: {window.limit} requests per {window.name}",
            details={"window": window.name},
            headers={"Retry-After": str(decision.retry_after)},
        )


class RateLimitHeadersMiddleware:
    """Write ``X-RateLimit-*`` on every response whose request was counted (authenticated)."""

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> Any:
        response = self.get_response(request)
        decision: Decision | None = getattr(request, REQUEST_ATTRIBUTE, None)
        if decision is not None:
            for name, value in decision.headers().items():
                response[name] = value
            if not decision.allowed and "Retry-After" not in response:
                response["Retry-After"] = str(decision.retry_after)
        return response
