"""Events emitted by the rest of the product, with their deliveries, in the caller's transaction."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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
    *,
    event_id: str,
    type: str,
    created_at: datetime,
    data: Any,
    sandbox: bool = False,
    test: bool = False,
) -> str:
    payload: dict[str, Any] = {
        "id": event_id,
        "type": type,
        "created_at": iso(created_at),
        "sandbox": sandbox,
        "data": data,
    }
    if test:
        payload["_test"] = True
    return json.dumps(payload, cls=DjangoJSONEncoder, separators=(",", ":"))


def _account_endpoints(account_id: Any) -> list[Endpoint]:
    # Both modes in one read, split by ``_event_build``: a transaction finishing sandbox and
    # live contacts together still reads endpoints once per account. Filtered in Python: JSON
    # containment is not portable to the embedded SQLite database, and an account has a
    # handful of endpoints.
    return list(
        Endpoint.objects.filter(account_id=account_id).only(
            "id", "account_id", "sandbox", "events", "active"
        )
    )


@dataclass
class _Pending:
    """An event about to be stored, with the deliveries it fans out to."""

    event: Event
    deliveries: list[Delivery]


def _event_build(
    *,
    account_id: Any,
    type: str,
    data: Any,
    sandbox: bool,
    now: datetime,
    endpoints: list[Endpoint],
    target_urls: Iterable[str] = (),
    exclude_endpoint_id: Any = None,
) -> _Pending:
    event = Event(account_id=account_id, type=type, sandbox=sandbox, created_at=now)
    event.id = event_id_generate()
    event.body = event_body(
        event_id=event.id, type=type, created_at=now, data=data, sandbox=sandbox
    )
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
        # An endpoint receives only its own mode's events (sandbox data never reaches a live
        # receiver, nor live data one configured with a loosely kept sk_test_ key).
        if endpoint.sandbox == sandbox
        and type in endpoint.events
        and endpoint.pk != exclude_endpoint_id
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
    return _Pending(event=event, deliveries=rows)


def _events_store(pending: list[_Pending]) -> None:
    """Two INSERTs whatever the count; messages for pending deliveries after the commit."""
    if not pending:
        return
    with transaction.atomic(savepoint=False):
        Event.objects.bulk_create([p.event for p in pending])
        rows = [d for p in pending for d in p.deliveries]
        if rows:
            Delivery.objects.bulk_create(rows)
        due = [str(d.pk) for d in rows if d.status == Delivery.PENDING]
        if due:
            transaction.on_commit(lambda: deliveries_publish(due))


def event_emit(
    *,
    account_id: Any,
    type: str,
    data: Any,
    sandbox: bool = False,
    target_urls: Iterable[str] = (),
    endpoints: list[Endpoint] | None = None,
    exclude_endpoint_id: Any = None,
) -> Event:
    """Store an event and a delivery per subscribed endpoint of its mode and per extra URL,
    atomically.

    Runs inside the caller's transaction when there is one, so the event exists if and only if
    the change that caused it does; messages go to the broker only after the commit. Endpoints
    that are disabled get a ``skipped`` delivery, which ``endpoint_enable(replay=True)`` resends.
    """
    built = _event_build(
        account_id=account_id,
        type=type,
        data=data,
        sandbox=sandbox,
        now=timezone.now(),
        endpoints=_account_endpoints(account_id) if endpoints is None else endpoints,
        target_urls=target_urls,
        exclude_endpoint_id=exclude_endpoint_id,
    )
    _events_store([built])
    return built.event


def contact_finished_emit(*, contact: Any) -> None:
    """``contact.enriched`` (also to the contact's ``webhook_url``), ``contact.verified``, and
    the credit events its charge caused. Called inside the transaction that finishes it.
    """
    contacts_finished_emit(contacts=[contact])


def contacts_finished_emit(*, contacts: Sequence[Any]) -> None:
    """The events of several contacts finished in one transaction, in a constant number of
    queries: one endpoint read per account, one ledger read, two INSERTs.
    """
    from apps.enrichment.selectors import contact_data

    if not contacts:
        return
    now = timezone.now()
    endpoints = {
        account_id: _account_endpoints(account_id)
        for account_id in {c.account_id for c in contacts}
    }
    charged = [c.pk for c in contacts if c.credits_charged and not c.sandbox]
    # The contact's own ledger row says what the balance was right after its charge. Charges
    # are serialised by the account row lock, so each threshold crossing belongs to exactly
    # one charge, even when a task charges a whole chunk before emitting; a read of the live
    # balance would be wrong then.
    balances = (
        {
            contact_id: (balance_after, balance_after - amount)  # amount < 0 for a charge
            for contact_id, balance_after, amount in LedgerEntry.objects.filter(
                contact_id__in=charged, entry_type=LedgerEntry.CHARGE
            ).values_list("contact_id", "balance_after", "amount")
        }
        if charged
        else {}
    )
    threshold = settings.CREDITS_LOW_THRESHOLD
    pending: list[_Pending] = []
    for contact in contacts:
        account_id = contact.account_id
        common = {"account_id": account_id, "now": now, "endpoints": endpoints[account_id]}
        data = contact_data(contact)
        mode = {"sandbox": contact.sandbox}
        pending.append(
            _event_build(
                type=Event.CONTACT_ENRICHED,
                data=data,
                target_urls=[contact.webhook_url],
                **mode,
                **common,
            )
        )
        if contact.result_status == "VERIFIED":
            pending.append(_event_build(type=Event.CONTACT_VERIFIED, data=data, **mode, **common))
        # Only live contacts are in ``balances`` (sandbox work charges nothing): credit events
        # are live events.
        if contact.pk in balances:
            after, before = balances[contact.pk]
            credit = {"account_id": str(account_id), "credits": after, "threshold": threshold}
            for type in _credit_event_types(before=before, after=after, threshold=threshold):
                pending.append(_event_build(type=type, data=credit, sandbox=False, **common))
    _events_store(pending)


def _credit_event_types(*, before: int, after: int, threshold: int) -> list[str]:
    """The credit events a balance change from ``before`` to ``after`` crosses into."""
    types = []
    # One change can do both (from at or above the threshold straight to 0): a client
    # subscribed to credits.low alone must still learn the balance fell below it.
    if before >= threshold > after:
        types.append(Event.CREDITS_LOW)
    if after == 0 < before:
        types.append(Event.CREDITS_EXHAUSTED)
    return types


def credits_change_emit(*, account_id: Any, before: int, after: int) -> None:
    """``credits.low``/``credits.exhausted`` for a balance change outside charging (an ops
    adjustment); runs in the caller's transaction, like every emit. Live events: credits are
    live money, which no sandbox key spends or sees."""
    threshold = settings.CREDITS_LOW_THRESHOLD
    credit = {"account_id": str(account_id), "credits": after, "threshold": threshold}
    for type in _credit_event_types(before=before, after=after, threshold=threshold):
        event_emit(account_id=account_id, type=type, data=credit, sandbox=False)


def bulk_completed_emit(*, bulk: Any) -> None:
    """``bulk.completed``, also to the bulk's ``webhook_url``; called once per bulk."""
    from apps.enrichment.selectors import bulk_data

    event_emit(
        account_id=bulk.account_id,
        type=Event.BULK_COMPLETED,
        data=bulk_data(bulk),
        sandbox=bulk.sandbox,
        target_urls=[bulk.webhook_url],
    )
