"""Rate-limit test helpers: a moment to pin the limiter's clock at, and small plans."""

from __future__ import annotations

from datetime import UTC, datetime

from apps.accounts.models import Plan

# 2026-05-19 23:59:30 UTC: thirty seconds before a UTC midnight, on a minute's 30th second.
BEFORE_MIDNIGHT = datetime(2026, 5, 19, 23, 59, 30, tzinfo=UTC).timestamp()
MIDNIGHT = BEFORE_MIDNIGHT + 30


def small_plan(*, per_minute: int | None = 10, daily: int | None = 1000) -> Plan:
    plan, _ = Plan.objects.update_or_create(
        code=f"tiny-{per_minute}-{daily}",
        defaults={
            "name": "Tiny",
            "api_access": True,
            "per_minute": per_minute,
            "daily_requests": daily,
            "max_active_keys": 5,
            "bulk_max": 100,
        },
    )
    return plan
