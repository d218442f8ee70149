"""Events emitted by the rest of the product, with their deliveries, in the caller's transaction."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import LedgerEntry
from apps.core.timefmt import iso

from ..models import Delivery, Endpoint, Event, event_id_generate
from .publishing import deliveries_publish


def event_body(
    *, event_id: str, type: str, created_at: datetime, data: Any, test: bool = False
) -> str:
    payload: dict[str, Any] = {
        "id": event_id,
        "type": type,
        "created_at": iso(created_at),
        "data": data,
    }
    if test:
        payload["_test"] = True
    return json.dumps(payload, cls=DjangoJSONEncoder, separators=(",", ":"))


def _account_endpoints(account_id: Any) -> list[Endpoint]:
    # Filtered in Python: JSON containment is not portable to the embedded SQLite database, and
    # an account has a handful of endpoints.
    return list(
        Endpoint.objects.filter(account_id=account_id).only("id", "account_id", "events", "active")
    )


def event_emit(
    *,
    account_id: Any,
    type: str,
    data: Any,
    target_urls: Iterable[str] = (),
    endpoints: list[Endpoint] | None = None,
    exclude_endpoint_id: Any = None,
) -> Event:
    """Store an event and a delivery per subscribed endpoint and per extra URL, atomically.

    Runs inside the caller's transaction when there is one, so the event exists if and only if
    the change that caused it does; messages go to the broker only after the commit. Endpoints
    that are disabled get a ``skipped`` delivery, which ``endpoint_enable(replay=True)`` resends.
    """
    now = timezone.now()
    with transaction.atomic(savepoint=False):
        event = Event(account_id=account_id, type=type, created_at=now)
        event.id = event_id_generate()
        event.body = event_body(event_id=event.id, type=type, created_at=now, data=data)
        event.save(force_insert=True)
        if endpoints is None:
            endpoints = _account_endpoints(account_id)
        rows = [
            Delivery(
                account_id=account_id,
                event=event,
                endpoint=endpoint,
                status=Delivery.PENDING if endpoint.active else Delivery.SKIPPED,
                next_attempt_at=now if endpoint.active else None,
                published_at=now if endpoint.active else None,
            )
            for endpoint in endpoints
            if type in endpoint.events and endpoint.pk != exclude_endpoint_id
        ]
        rows += [
            Delivery(
                account_id=account_id,
                event=event,
                target_url=url,
                next_attempt_at=now,
                published_at=now,
            )
            for url in target_urls
            if url
        ]
        if rows:
            Delivery.objects.bulk_create(rows)
            pending = [str(d.pk) for d in rows if d.status == Delivery.PENDING]
            if pending:
                transaction.on_commit(lambda: deliveries_publish(pending))
    return event


def contact_finished_emit(*, contact: Any) -> None:
    """``contact.enriched`` (also to the contact's ``webhook_url``), ``contact.verified``, and
    the credit events a charge caused. Called inside the transaction that finishes the contact.
    """
    from apps.enrichment.selectors import contact_data

    data = contact_data(contact)
    endpoints = _account_endpoints(contact.account_id)
    event_emit(
        account_id=contact.account_id,
        type=Event.CONTACT_ENRICHED,
        data=data,
        target_urls=[contact.webhook_url],
        endpoints=endpoints,
    )
    if contact.result_status == "VERIFIED":
        event_emit(
            account_id=contact.account_id,
            type=Event.CONTACT_VERIFIED,
            data=data,
            endpoints=endpoints,
        )
    if contact.credits_charged and not contact.sandbox:
        _credit_events_emit(
            account_id=contact.account_id, contact_id=contact.pk, endpoints=endpoints
        )


def _credit_events_emit(*, account_id: Any, contact_id: Any, endpoints: list[Endpoint]) -> None:
    # The contact's own ledger row says what the balance was right after its charge. Charges
    # are serialised by the account row lock, so each threshold crossing belongs to exactly one
    # charge, even when a task finishes several contacts (and charges them all) before their
    # events are emitted in the same transaction; the live balance would be wrong then.
    charge = (
        LedgerEntry.objects.filter(contact_id=contact_id, entry_type=LedgerEntry.CHARGE)
        .values_list("balance_after", "amount")
        .first()
    )
    if charge is None:
        return
    balance, amount = charge
    before = balance - amount  # amount is negative for a charge
    threshold = settings.CREDITS_LOW_THRESHOLD
    data = {"account_id": str(account_id), "credits": balance, "threshold": threshold}
    if balance == 0:
        event_emit(
            account_id=account_id, type=Event.CREDITS_EXHAUSTED, data=data, endpoints=endpoints
        )
    elif before >= threshold > balance:
        event_emit(account_id=account_id, type=Event.CREDITS_LOW, data=data, endpoints=endpoints)


def bulk_completed_emit(*, bulk: Any) -> None:
    """``bulk.completed``, also to the bulk's ``webhook_url``; called once per bulk."""
    from apps.enrichment.selectors import bulk_data

    event_emit(
        account_id=bulk.account_id,
        type=Event.BULK_COMPLETED,
        data=bulk_data(bulk),
        target_urls=[bulk.webhook_url],
    )
