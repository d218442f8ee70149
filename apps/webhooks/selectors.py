"""Reads for webhooks, always scoped to one account and one mode (another account's or another
mode's id is a 404): a sandbox key never sees live endpoints, deliveries or events."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from django.db.models import Prefetch, QuerySet

from apps.accounts.models import Account
from apps.core.errors import InvalidRequest, NotFound
from apps.core.timefmt import iso, parse_timestamp

from .models import Delivery, DeliveryAttempt, Endpoint, Event

_ATTEMPTS = Prefetch("attempts", queryset=DeliveryAttempt.objects.order_by("at", "id"))


def _uuid_or_404(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound()


def parse_moment(value: str, field: str) -> datetime:
    # The API's one timestamp reader, so ?since= and a replay's since refuse what
    # ?updated_after= and cursors refuse.
    return parse_timestamp(value, field=field)


def endpoint_get(*, account: Account, sandbox: bool, endpoint_id: str) -> Endpoint:
    # Deliveries are read through the endpoint, so this one filter scopes them too.
    endpoint = Endpoint.objects.filter(
        account=account, sandbox=sandbox, pk=_uuid_or_404(endpoint_id)
    ).first()
    if endpoint is None:
        raise NotFound()
    return endpoint


def endpoint_list(*, account: Account, sandbox: bool) -> QuerySet[Endpoint]:
    return Endpoint.objects.filter(account=account, sandbox=sandbox)


def delivery_get(*, endpoint: Endpoint, delivery_id: str) -> Delivery:
    delivery = (
        Delivery.objects.filter(endpoint=endpoint, pk=_uuid_or_404(delivery_id))
        .select_related("event", "endpoint")
        .prefetch_related(_ATTEMPTS)
        .first()
    )
    if delivery is None:
        raise NotFound()
    return delivery


def delivery_list(*, endpoint: Endpoint, filters: Mapping[str, str]) -> QuerySet[Delivery]:
    qs = (
        Delivery.objects.filter(endpoint=endpoint)
        .select_related("event")
        .prefetch_related(_ATTEMPTS)
    )
    status = filters.get("status")
    if status:
        if status not in dict(Delivery.STATUSES):
            raise InvalidRequest(
                details={"status": "Must be pending, succeeded, failed or skipped."}
            )
        qs = qs.filter(status=status)
    return qs


def event_list(*, account: Account, sandbox: bool, filters: Mapping[str, str]) -> QuerySet[Event]:
    qs = Event.objects.filter(account=account, sandbox=sandbox, test=False)
    event_type = filters.get("type")
    if event_type:
        if event_type not in Event.TYPES:
            raise InvalidRequest(details={"type": f"Must be one of {', '.join(Event.TYPES)}."})
        qs = qs.filter(type=event_type)
    since = filters.get("since")
    if since:
        qs = qs.filter(created_at__gte=parse_moment(since, "since"))
    return qs


# --- Representations (the API's JSON shapes) --------------------------------------------------


def endpoint_data(endpoint: Endpoint, *, with_secret: bool = False) -> dict[str, Any]:
    data = {
        "id": str(endpoint.pk),
        "url": endpoint.url,
        "events": list(endpoint.events),
        "description": endpoint.description,
        "rate_limit": endpoint.rate_limit,
        "filter": endpoint.filter or None,
        "sandbox": endpoint.sandbox,
        "active": endpoint.active,
        "disabled_at": iso(endpoint.disabled_at),
        "disabled_reason": endpoint.disabled_reason or None,
        "consecutive_failures": endpoint.consecutive_failures,
        "last_success_at": iso(endpoint.last_success_at),
        "last_failure_at": iso(endpoint.last_failure_at),
        "created_at": iso(endpoint.created_at),
    }
    if with_secret:
        data["secret"] = endpoint.secret
    return data


def endpoints_data(endpoints: Sequence[Endpoint]) -> list[dict[str, Any]]:
    return [endpoint_data(e) for e in endpoints]


def attempt_data(attempt: DeliveryAttempt) -> dict[str, Any]:
    return {
        "at": iso(attempt.at),
        "status_code": attempt.status_code,
        "duration_ms": attempt.duration_ms,
        "error": attempt.error,
        "response_body": attempt.response_body,
    }


def delivery_data(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": str(delivery.pk),
        "event_id": delivery.event_id,
        "event_type": delivery.event.type,
        "status": delivery.status,
        "attempt_count": delivery.attempt_count,
        "next_attempt_at": iso(delivery.next_attempt_at),
        "created_at": iso(delivery.created_at),
        "attempts": [attempt_data(a) for a in delivery.attempts.all()],
    }


def deliveries_data(deliveries: Sequence[Delivery]) -> list[dict[str, Any]]:
    return [delivery_data(d) for d in deliveries]


def events_data(events: Sequence[Event]) -> list[dict[str, Any]]:
    # The column, not the body: events stored before modes existed have no ``sandbox`` key.
    return [{**e.payload, "sandbox": e.sandbox} for e in events]
