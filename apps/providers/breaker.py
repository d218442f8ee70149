"""Per-provider circuit breaker whose state lives in the shared cache (Redis in production).

Closed: failures are counted in the cache for ``PROVIDER_BREAKER_WINDOW_SECONDS`` after the
first one; at ``PROVIDER_BREAKER_FAILURES`` the breaker opens. Open: every worker skips that
provider for ``PROVIDER_BREAKER_COOLDOWN_SECONDS`` (or a long ``Retry-After``). Half-open:
after the cool-down, one call at a time across all workers goes through as a probe (the
others keep skipping); a success closes the breaker, a failure reopens it at once instead
of letting another full streak of calls time out against a provider that is still down.
The waterfall asks ``allow_call`` before each call (which may take the probe) and reports
with ``record_success`` / ``record_failure``; ``state`` and ``is_open`` only look, for ops
views. ``allow_call`` remembers what it last read for ``PROVIDER_BREAKER_LOCAL_SECONDS`` so
a healthy provider costs one cache read per second per process, not one per call (which
matters most in the embedded mode, where the cache is a database table).

The breaker fails open: when the cache cannot be reached (Redis down or restarting), calls
proceed as if every breaker were closed, and ``allow_call``, ``record_failure``,
``record_success`` and ``trip`` never raise into the waterfall. After a cache error this
process leaves the cache alone for ``PROVIDER_BREAKER_LOCAL_SECONDS`` (so an unreachable
Redis costs one timeout per second, not one per call), and logs the trouble at most once
every ``CACHE_ERROR_LOG_SECONDS``. A breaker tripped meanwhile holds in this process only.
Losing the breaker for the length of an outage costs at worst some calls to a failing
provider, each bounded by its timeouts; refusing every provider would fail every contact.
``state``, ``is_open`` and ``reset`` (ops views and actions) do raise: they must not report
a state nobody could read, or claim a reset that did not happen.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings
from django.core.cache import cache

from apps.core.errors import LogThrottle

logger = logging.getLogger(__name__)

T = TypeVar("T")

# A cache that is down is reported once per this many seconds per process, not per call.
CACHE_ERROR_LOG_SECONDS = 5.0
_cache_log = LogThrottle(CACHE_ERROR_LOG_SECONDS)
_cache_down_until = 0.0  # monotonic: until then this process does not try the cache


def _shared(operation: str, fn: Callable[[], T], default: T) -> T:
    """``fn()`` against the shared cache, or ``default`` when the cache fails (or failed
    less than ``PROVIDER_BREAKER_LOCAL_SECONDS`` ago): fail open, never raise."""
    global _cache_down_until
    if time.monotonic() < _cache_down_until:
        return default
    try:
        return fn()
    except Exception as exc:  # Redis down, a timeout, the database cache's table: all alike
        _cache_down_until = time.monotonic() + settings.PROVIDER_BREAKER_LOCAL_SECONDS
        _cache_log.warning(
            logger,
            "cache",
            "circuit breaker cache unavailable: providers are called as if closed",
            operation=operation,
            error=f"{type(exc).__name__}: {exc}"[:300],
        )
        return default


_lock = threading.Lock()
_seen: dict[str, tuple[float, bool]] = {}  # name -> (monotonic time read, open?)
_failing: set[str] = set()  # providers this process counted a failure for since last success
# Provider -> the thread holding its half-open probe: only that call's outcome is the probe's
# result (another thread's call that started before the trip says nothing about now).
_probing: dict[str, int] = {}


def _open_key(name: str) -> str:
    return f"breaker:{name}:open"


def _failures_key(name: str) -> str:
    return f"breaker:{name}:failures"


def _half_open_key(name: str) -> str:
    """Set when the breaker opens and outliving the open key: present without it = half-open."""
    return f"breaker:{name}:half_open"


def _probe_key(name: str) -> str:
    """Held by the one call allowed through while half-open (expires if that call dies)."""
    return f"breaker:{name}:probe"


def _seconds(value: float) -> int:
    return max(1, int(value + 0.999))


CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


def state(name: str) -> str:
    """``closed``, ``open`` or ``half_open``, read from the shared cache; no side effect
    (for ops views: asking never takes the half-open probe)."""
    keys = cache.get_many([_open_key(name), _half_open_key(name)])
    if _open_key(name) in keys:
        return OPEN
    return HALF_OPEN if _half_open_key(name) in keys else CLOSED


def is_open(name: str) -> bool:
    """Whether the breaker is open (cooling down); no side effect. Half-open is not open:
    see ``allow_call`` for who may call then."""
    return state(name) == OPEN


def allow_call(name: str) -> bool:
    """Whether this caller may call ``name`` now (shared across workers); the waterfall
    asks this before every call, and must report the call's outcome with
    ``record_success`` or ``record_failure``.

    While half-open, the first caller to ask (in any worker) gets True and becomes the
    probe; everyone else gets False until the probe reports back.
    """
    now = time.monotonic()
    with _lock:
        seen = _seen.get(name)
    if seen and now - seen[0] < settings.PROVIDER_BREAKER_LOCAL_SECONDS:
        return not seen[1]
    current = _shared("read", lambda: state(name), CLOSED)
    if current == HALF_OPEN:
        # While half-open only the winner of this atomic add may call; it is not cached as
        # "closed", so the process's other threads ask the cache (and lose) too.
        won = _shared(
            "probe", lambda: cache.add(_probe_key(name), 1, timeout=_probe_seconds()), None
        )
        if won is None:  # the cache failed just now: as if closed
            return True
        if won:
            with _lock:
                _probing[name] = threading.get_ident()
                _seen.pop(name, None)
            return True
    opened = current != CLOSED
    with _lock:
        _seen[name] = (now, opened)
    return not opened


def _probe_seconds() -> int:
    # Long enough for one call with its retries; if the probing worker dies, the next
    # probe is allowed after this.
    return _seconds(settings.PROVIDER_BREAKER_COOLDOWN_SECONDS)


def _probe_release(name: str) -> bool:
    """Whether the calling thread held ``name``'s probe (released now); under ``_lock``."""
    if _probing.get(name) == threading.get_ident():
        del _probing[name]
        return True
    return False


def record_failure(name: str) -> int:
    """Count one failed call; opens the breaker at the threshold, or at once when the call
    was made while half-open. Returns the count."""
    with _lock:
        probing = _probe_release(name)
        _failing.add(name)
    if probing or _shared("read", lambda: cache.get(_half_open_key(name)) is not None, False):
        trip(name, seconds=settings.PROVIDER_BREAKER_COOLDOWN_SECONDS, reason="probe failed")
        return settings.PROVIDER_BREAKER_FAILURES
    count = _shared("count", lambda: _count_failure(name), 0)  # 0: not counted, cache down
    if count >= settings.PROVIDER_BREAKER_FAILURES:
        trip(name, seconds=settings.PROVIDER_BREAKER_COOLDOWN_SECONDS, reason=f"{count} failures")
    return count


def _count_failure(name: str) -> int:
    key = _failures_key(name)
    cache.add(key, 0, timeout=settings.PROVIDER_BREAKER_WINDOW_SECONDS)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=settings.PROVIDER_BREAKER_WINDOW_SECONDS)
        return 1


def record_success(name: str) -> None:
    """A good answer resets the failure streak, and closes a half-open breaker (cache writes
    only after failures or for the probe)."""
    with _lock:
        probing = _probe_release(name)
        if name not in _failing and not probing:
            return
        _failing.discard(name)
        _seen.pop(name, None)
    keys = [_failures_key(name)]
    if probing:
        keys += [_half_open_key(name), _probe_key(name)]
        logger.info("provider circuit closed", extra={"provider": name})
    _shared("reset", lambda: cache.delete_many(keys), None)


def trip(name: str, *, seconds: float, reason: str = "") -> None:
    """Open the breaker for ``seconds`` (also used to honour a long ``Retry-After``); it is
    half-open after that for a further cool-down (or window, if longer). With the cache
    down it holds in this process only, for ``PROVIDER_BREAKER_LOCAL_SECONDS``."""
    half_open_for = max(
        settings.PROVIDER_BREAKER_COOLDOWN_SECONDS, settings.PROVIDER_BREAKER_WINDOW_SECONDS
    )

    def write() -> None:
        cache.set(_open_key(name), reason or "open", timeout=_seconds(seconds))
        cache.set(_half_open_key(name), reason or "open", timeout=_seconds(seconds + half_open_for))
        cache.delete_many([_failures_key(name), _probe_key(name)])

    _shared("trip", write, None)
    with _lock:
        _seen[name] = (time.monotonic(), True)
        _probing.pop(name, None)
    logger.warning(
        "provider circuit opened", extra={"provider": name, "seconds": seconds, "reason": reason}
    )


def reset(name: str | None = None) -> None:
    """Close breakers (all when ``name`` is None) and forget this process's view of them
    (and of the cache being down). Raises when the cache cannot be reached."""
    global _cache_down_until
    _cache_down_until = 0.0
    _cache_log.reset()
    with _lock:
        names = [name] if name else list({*_seen, *_failing, *_probing})
        for n in names:
            _seen.pop(n, None)
            _failing.discard(n)
            _probing.pop(n, None)
    for n in names:
        cache.delete_many([_open_key(n), _failures_key(n), _half_open_key(n), _probe_key(n)])
