"""Per-account request limits (SPEC §3). The enforcing limiter arrives with issue #3."""

from __future__ import annotations

from .models import Account


def daily_requests_used(*, account: Account) -> int:
    """Requests counted against today's cap (UTC day)."""
    return 0
