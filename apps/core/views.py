"""Liveness and readiness probes (SPEC §8)."""

from __future__ import annotations

import time

from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse


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
    cache.set("readyz", "1", 5)
    if cache.get("readyz") != "1":
        raise RuntimeError("cache read-back failed")


def _broker() -> None:
    from config.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: database, cache (Redis or the database cache) and broker reachable."""
    checks = {"database": _check(_database), "cache": _check(_cache), "broker": _check(_broker)}
    ready = all(c["ok"] for c in checks.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503
    )
