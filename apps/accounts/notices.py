"""Which credit thresholds a balance change crossed: the facts behind ``credits.low`` and
``credits.exhausted``, worked out here, where the ledger is, and sent as events by the
caller (``apps.webhooks.services.events_emit``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from .models import LedgerEntry

CREDITS_LOW = "credits.low"
CREDITS_EXHAUSTED = "credits.exhausted"


@dataclass(frozen=True)
class CreditNotice:
    """A threshold one balance change crossed: the event's type and data."""

    account_id: Any
    type: str  # CREDITS_LOW or CREDITS_EXHAUSTED
    credits: int  # the balance right after the change
    threshold: int

    def data(self) -> dict[str, Any]:
        return {
            "account_id": str(self.account_id),
            "credits": self.credits,
            "threshold": self.threshold,
        }


def thresholds_crossed(*, account_id: Any, before: int, after: int) -> list[CreditNotice]:
    """The notices a balance change from ``before`` to ``after`` crosses into.

    One change can cross both (from at or above the threshold straight to 0): a client
    subscribed to credits.low alone must still learn that the balance fell below it.
    """
    threshold = settings.CREDITS_LOW_THRESHOLD
    types = []
    if before >= threshold > after:
        types.append(CREDITS_LOW)
    if after == 0 < before:
        types.append(CREDITS_EXHAUSTED)
    return [CreditNotice(account_id, type, after, threshold) for type in types]


def charges_crossed(contact_ids: Iterable[Any]) -> dict[Any, list[CreditNotice]]:
    """Per charged contact, the notices its charge crossed into; one query.

    The contact's own ledger row says what the balance was right after its charge. Charges
    are serialised by the account row lock, so each crossing belongs to exactly one charge,
    even when a task charges a whole chunk before asking: a read of the live balance would
    be wrong then.
    """
    ids = list(contact_ids)
    if not ids:
        return {}
    rows = LedgerEntry.objects.filter(
        contact_id__in=ids, entry_type=LedgerEntry.CHARGE
    ).values_list("contact_id", "account_id", "balance_after", "amount")
    return {
        # amount < 0 for a charge: the balance before it was balance_after - amount.
        contact_id: thresholds_crossed(account_id=account_id, before=after - amount, after=after)
        for contact_id, account_id, after, amount in rows
    }
