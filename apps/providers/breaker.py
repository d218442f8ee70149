"""Per-provider circuit breaker whose state lives in the shared cache (Redis in production).

Failures are counted in the cache for ``PROVIDER_BREAKER_WINDOW_SECONDS`` after the first
one; at ``PROVIDER_BREAKER_FAILURES`` the breaker opens for
``PROVIDER_BREAKER_COOLDOWN_SECONDS`` and every worker skips that provider. Each process
remembers what it last read for ``PROVIDER_BREAKER_LOCAL_SECONDS`` so a healthy provider
costs one cache read per second per process, not one per call (which matters most in the
embedded mode, where the cache is a database table).
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_seen: dict[str, tuple[float, bool]] = {}  # name -> (monotonic time read, open?)
_failing: set[str] = set()  # providers this process counted a failure for since last success


def _open_key(name: str) -> str:
    return f"breaker:{name}:open"


def _failures_key(name: str) -> str:
    return f"breaker:{name}:failures"


def is_open(name: str) -> bool:
    """Whether calls to ``name`` are being skipped right now (shared across workers)."""
    now = time.monotonic()
    with _lock:
        seen = _seen.get(name)
    if seen and now - seen[0] < settings.PROVIDER_BREAKER_LOCAL_SECONDS:
        return seen[1]
    opened = cache.get(_open_key(name)) is not None
    with _lock:
        _seen[name] = (now, opened)
    return opened


def record_failure(name: str) -> int:
    """Count one failed call; opens the breaker at the threshold. Returns the count."""
    key = _failures_key(name)
    cache.add(key, 0, timeout=settings.PROVIDER_BREAKER_WINDOW_SECONDS)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=settings.PROVIDER_BREAKER_WINDOW_SECONDS)
        count = 1
    with _lock:
        _failing.add(name)
    if count >= settings.PROVIDER_BREAKER_FAILURES:
        trip(name, seconds=settings.PROVIDER_BREAKER_COOLDOWN_SECONDS, reason=f"{count} failures")
    return count


def record_success(name: str) -> None:
    """A good answer resets the failure streak (one cache write, only after failures)."""
    with _lock:
        if name not in _failing:
            return
        _failing.discard(name)
    cache.delete(_failures_key(name))


def trip(name: str, *, seconds: float, reason: str = "") -> None:
    """Open the breaker for ``seconds`` (also used to honour a long ``Retry-After``)."""
    cache.set(_open_key(name), reason or "open", timeout=max(1, int(seconds + 0.999)))
    cache.delete(_failures_key(name))
    with _lock:
        _seen[name] = (time.monotonic(), True)
    logger.warning(
        "provider circuit opened", extra={"provider": name, "seconds": seconds, "reason": reason}
    )


def reset(name: str | None = None) -> None:
    """Close breakers (all when ``name`` is None) and forget this process's view of them."""
    with _lock:
        names = [name] if name else list({*_seen, *_failing})
        for n in names:
            _seen.pop(n, None)
            _failing.discard(n)
    for n in names:
        cache.delete_many([_open_key(n), _failures_key(n)])
