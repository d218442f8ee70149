"""Events emitted by the rest of the product, with their deliveries, in the caller's transaction.

The app that owns an event's data builds it (enrichment the contact's and the bulk's,
accounts which credit thresholds a charge crossed) and hands it here as an ``EventDraft``:
``events_emit`` stores the events and their deliveries in a constant number of queries.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import router, transaction
from django.utils import timezone

from apps.accounts.notices import CreditNotice
from apps.core.timefmt import iso

from .. import filters
from ..models import Delivery, Endpoint, Event, event_id_generate
from .publishing import deliveries_publish

logger = logging.getLogger(__name__)


def _dumps(payload: dict[str, Any]) -> str:
    # ensure_ascii (the default): every character is one byte, and the body is plain ASCII.
    return json.dumps(payload, cls=DjangoJSONEncoder, separators=(",", ":"))


def _object_path(type: str, data: dict[str, Any]) -> str | None:
    """The API path that answers this event's full ``data`` (what a truncated event's
    receiver fetches)."""
    if type in (Event.CONTACT_ENRICHED, Event.CONTACT_VERIFIED) and data.get("enrichment_id"):
        return f"/api/v1/contacts/{data['enrichment_id']}"
    if type == Event.BULK_COMPLETED and data.get("bulk_id"):
        return f"/api/v1/bulk/{data['bulk_id']}"
    if type == Event.CONTACT_ADDED_TO_LIST and data.get("enrichment_id"):
        return f"/api/v1/contacts/{data['enrichment_id']}"
    if type == Event.ENDPOINT_DISABLED and data.get("id"):
        return f"/api/v1/webhooks/{data['id']}"
    if type in (Event.CREDITS_LOW, Event.CREDITS_EXHAUSTED):
        return "/api/v1/credits"
    return None


def _data_truncated(type: str, data: Any, *, size: int) -> dict[str, Any]:
    """``data`` cut down to its ids, marked, with where to read the whole object."""
    fields = data if isinstance(data, dict) else {}
    kept = {
        key: value
        for key, value in fields.items()
        if (key == "id" or key.endswith("_id"))
        and (value is None or (isinstance(value, int | str) and not isinstance(value, bool)))
        and len(str(value)) <= 100
    }
    return {**kept, "truncated": True, "size": size, "url": _object_path(type, fields)}


def event_body(
    *,
    event_id: str,
    type: str,
    created_at: datetime,
    data: Any,
    sandbox: bool = False,
    test: bool = False,
) -> str:
    """The bytes every delivery of the event signs and sends.

    A body over ``WEBHOOK_MAX_EVENT_BYTES`` keeps its envelope but its ``data`` becomes
    ``{<the id fields>, "truncated": true, "size": <bytes of the whole body>, "url": <the
    GET path of the full object>}`` (logged): our events are made by Sluice, not sent to it,
    so refusing one would lose the news that something happened; the receiver fetches the
    object instead.
    """
    payload: dict[str, Any] = {
        "id": event_id,
        "type": type,
        "created_at": iso(created_at),
        "sandbox": sandbox,
        "data": data,
    }
    if test:
        payload["_test"] = True
    body = _dumps(payload)
    limit = settings.WEBHOOK_MAX_EVENT_BYTES
    if len(body) <= limit:
        return body
    payload["data"] = _data_truncated(type, data, size=len(body))
    logger.warning(
        "webhook event data truncated",
        extra={"event_id": event_id, "event_type": type, "bytes": len(body), "limit": limit},
    )
    return _dumps(payload)


_ENDPOINT_FIELDS = ("id", "account_id", "sandbox", "events", "active", "filter", "body_format")


def _account_endpoints(account_id: Any) -> list[Endpoint]:
    # Both modes in one read, split by ``_event_build``: a transaction finishing sandbox and
    # live contacts together still reads endpoints once per account. Filtered in Python: JSON
    # containment is not portable to the embedded SQLite database, and an account has a
    # handful of endpoints.
    #
    # On PostgreSQL the rows are read FOR KEY SHARE (the lock a foreign key check takes):
    # a DELETE /webhooks/{id} then waits for this transaction, and deletes the deliveries it
    # adds, instead of this transaction failing at commit on the deliveries' deferred foreign
    # key (which threw a whole finish batch back to the reaper, its providers called again).
    # KEY SHARE does not conflict with the recorder's FOR NO KEY UPDATE or a PATCH.
    connection = transaction.get_connection(router.db_for_read(Endpoint))
    if connection.vendor != "postgresql" or not connection.in_atomic_block:
        return list(Endpoint.objects.filter(account_id=account_id).only(*_ENDPOINT_FIELDS))
    quote = connection.ops.quote_name
    columns = ", ".join(quote(Endpoint._meta.get_field(f).column) for f in _ENDPOINT_FIELDS)
    # Identifiers from the model's metadata; the value is a parameter.
    table, account = (
        quote(Endpoint._meta.db_table),
        quote(Endpoint._meta.get_field("account").column),
    )
    sql = f"SELECT {columns} FROM {table} WHERE {account} = %s FOR KEY SHARE"  # noqa: S608
    return list(Endpoint.objects.raw(sql, [account_id]))


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
    target_format: str = "",
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
            body_format=endpoint.body_format,
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
        # On the whole data (a truncated body's too), before any row exists: a filtered-out
        # endpoint gets no delivery at all, not even a skipped one for a later replay.
        and filters.filter_matches(endpoint.filter, data)
    ]
    rows += [
        Delivery(
            account_id=account_id,
            event=event,
            target_url=url,
            body_format=target_format,
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


@dataclass(frozen=True)
class EventDraft:
    """An event to emit, with its payload ready-made by the app that owns the data."""

    account_id: Any
    type: str
    data: Any
    sandbox: bool = False
    # Request-level webhook URLs (a contact's or a bulk's ``webhook_url``) that get it too,
    # in this body format (a vendor dialect's client's: apps/webhooks/formats.py).
    target_urls: tuple[str, ...] = ()
    target_format: str = ""

    @classmethod
    def credits(cls, notice: CreditNotice) -> EventDraft:
        """``credits.low``/``credits.exhausted``: live events (credits are live money, which no
        sandbox key spends or sees)."""
        return cls(account_id=notice.account_id, type=notice.type, data=notice.data())


def events_emit(drafts: Sequence[EventDraft]) -> list[Event]:
    """Store these events and a delivery per subscribed endpoint of each one's mode (and per
    target URL), atomically, in a constant number of queries: one endpoint read per account,
    two INSERTs.

    Runs inside the caller's transaction when there is one, so an event exists if and only if
    the change that caused it does; messages go to the broker only after the commit.
    Endpoints that are disabled get a ``skipped`` delivery, which
    ``endpoint_enable(replay=True)`` resends.
    """
    if not drafts:
        return []
    now = timezone.now()
    with transaction.atomic(savepoint=False):  # the endpoints' read and the rows it makes
        endpoints = {
            account_id: _account_endpoints(account_id)
            for account_id in dict.fromkeys(d.account_id for d in drafts)
        }
        pending = [
            _event_build(
                account_id=d.account_id,
                type=d.type,
                data=d.data,
                sandbox=d.sandbox,
                now=now,
                endpoints=endpoints[d.account_id],
                target_urls=d.target_urls,
                target_format=d.target_format,
            )
            for d in drafts
        ]
        _events_store(pending)
    return [p.event for p in pending]


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
    """One event (``events_emit``), optionally to given ``endpoints`` only or all but one
    (``endpoint.disabled`` is not sent to the endpoint it is about)."""
    with transaction.atomic(savepoint=False):
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
