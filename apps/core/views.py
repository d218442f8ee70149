"""Liveness and readiness probes (SPEC §8)."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from celery import current_app
from django.core.cache import cache
from django.db import close_old_connections, connection
from django.http import HttpRequest, JsonResponse

# /readyz answers within about this many seconds whatever is down: the cache and broker
# checks run beside the database's and are reported as timed out past it. The database
# check is bounded by DATABASE_CONNECT_TIMEOUT (a server that is down refuses at once).
READYZ_TIMEOUT_SECONDS = 2.0


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Touches nothing else, so it is the framework ceiling."""
    return JsonResponse({"status": "ok"})


def _check(fn) -> dict[str, object]:
    started = time.perf_counter()
    try:
        fn()
    except Exception as exc:  # a readiness probe reports failures, it does not raise them
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _cache() -> None:
    # Bounded by CACHE_REDIS_TIMEOUT per command (settings.CACHES).
    cache.set("readyz", "1", 5)
    if cache.get("readyz") != "1":
        raise RuntimeError("cache read-back failed")


def _broker() -> None:
    # One attempt, no retry; socket timeouts for a Redis broker (ignored by other transports)
    # so that an unreachable host cannot hold the check past the probe's deadline.
    timeout = READYZ_TIMEOUT_SECONDS / 2
    with current_app.connection_for_write(
        connect_timeout=timeout,
        transport_options={"socket_connect_timeout": timeout, "socket_timeout": timeout},
    ) as conn:
        conn.ensure_connection(max_retries=0)


def _in_thread(fn) -> dict[str, object]:
    try:
        return _check(fn)
    finally:
        # The embedded cache is a database table: never keep this thread's connection open.
        close_old_connections()


_executor_lock = threading.Lock()
_executor: tuple[int, ThreadPoolExecutor] | None = None


def _pool() -> ThreadPoolExecutor:
    """This process's checker threads (made after a fork, not inherited: a forked copy of a
    pool has no threads)."""
    global _executor
    with _executor_lock:
        if _executor is None or _executor[0] != os.getpid():
            _executor = (os.getpid(), ThreadPoolExecutor(4, thread_name_prefix="readyz"))
        return _executor[1]


def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: database, cache (Redis or the database cache) and broker reachable; 503
    within about ``READYZ_TIMEOUT_SECONDS`` when any is not."""
    deadline = time.monotonic() + READYZ_TIMEOUT_SECONDS
    pending: dict[str, Future] = {
        "cache": _pool().submit(_in_thread, _cache),
        "broker": _pool().submit(_in_thread, _broker),
    }
    checks = {"database": _check(_database)}
    for name, future in pending.items():
        try:
            checks[name] = future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            checks[name] = {"ok": False, "error": "timeout"}
    ready = all(c["ok"] for c in checks.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503
    )
