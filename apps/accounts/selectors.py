"""Reads for accounts."""

from __future__ import annotations

from django.db.models import Sum

from .models import Account, ApiKey, LedgerEntry
from .services import api_key_hash


def api_key_by_raw(raw_key: str) -> ApiKey | None:
    """The key with its account and plan in one query, or None."""
    return (
        ApiKey.objects.select_related("account__plan")
        .filter(key_hash=api_key_hash(raw_key))
        .first()
    )


def ledger_sum(*, account: Account) -> int:
    return LedgerEntry.objects.filter(account=account).aggregate(s=Sum("amount"))["s"] or 0
