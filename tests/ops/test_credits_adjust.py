"""Operator top-ups and adjustments (apps/ops/services.credits_adjust)."""

from __future__ import annotations

import json

import pytest

from apps.ops.services import credits_adjust
from apps.webhooks.models import Event
from tests.factories import AccountFactory


def adjust(account, amount: int, entry_type: str = "adjustment"):
    return credits_adjust(
        account=account, amount=amount, entry_type=entry_type, reason="ops", created_by=None
    )


@pytest.mark.django_db
def test_a_negative_adjustment_emits_the_credit_events_it_crosses(settings):
    settings.CREDITS_LOW_THRESHOLD = 100
    account = AccountFactory()
    adjust(account, 150, entry_type="topup")

    def emitted() -> list[tuple[str, int]]:
        rows = Event.objects.filter(account=account).order_by("created_at", "type")
        return [(e.type, json.loads(e.body)["data"]["credits"]) for e in rows]

    adjust(account, -40)  # 150 → 110: nothing
    assert emitted() == []
    adjust(account, -20)  # 110 → 90: low
    assert emitted() == [("credits.low", 90)]
    adjust(account, -90)  # 90 → 0: exhausted
    assert emitted() == [("credits.low", 90), ("credits.exhausted", 0)]
    adjust(account, 500, entry_type="topup")  # going up emits nothing
    assert len(emitted()) == 2
