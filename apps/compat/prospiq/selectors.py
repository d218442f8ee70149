"""Reads the dialect needs, on top of Sluice's selectors; scoped to one account and mode."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from apps.accounts.models import Account
from apps.core.errors import NotFound
from apps.enrichment import selectors as enrichment_selectors
from apps.enrichment.models import Contact
from apps.webhooks import selectors as webhook_selectors
from apps.webhooks.models import Endpoint, Event

from .webhooks import FORMAT

POLL_LIMIT = 25
POLL_WINDOW = timedelta(hours=24)


def bulk_contacts(*, account: Account, sandbox: bool, bulk_id: Any) -> list[Contact]:
    """A bulk's contacts as they are now, in request order."""
    return list(
        enrichment_selectors.contact_list(
            account=account, sandbox=sandbox, filters={"bulk_id": str(bulk_id)}
        ).order_by("position")
    )


def _prospiq_endpoints(queryset: QuerySet[Endpoint]) -> QuerySet[Endpoint]:
    """The endpoints created through this dialect (their deliveries are in its shape)."""
    return queryset.filter(body_format=FORMAT)


def subscriptions(*, account: Account, sandbox: bool) -> list[Endpoint]:
    """The active prospiq subscriptions, newest first."""
    endpoints = webhook_selectors.endpoint_list(account=account, sandbox=sandbox)
    return list(_prospiq_endpoints(endpoints).filter(active=True).order_by("-created_at"))


def subscription_get(*, account: Account, sandbox: bool, subscription_id: str) -> Endpoint:
    """One prospiq subscription; any other id (another account's, mode's, or an endpoint
    made with Sluice's own API) is a 404."""
    endpoint = webhook_selectors.endpoint_get(
        account=account, sandbox=sandbox, endpoint_id=subscription_id
    )
    if endpoint.body_format != FORMAT:
        raise NotFound()
    return endpoint


def _next_millisecond(moment: datetime) -> datetime:
    """The first moment after ``moment`` as the API writes it (milliseconds): an event whose
    ``timestamp`` a client passed back as ``since`` is not returned again."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000) + timedelta(milliseconds=1)


def events_poll(
    *, account: Account, sandbox: bool, event_type: str, since: str | None
) -> list[Event]:
    """Up to ``POLL_LIMIT`` stored events of one type from the last 24 hours, oldest first:
    without ``since`` the latest ones; with it, the first ones after it, so that passing the
    last one's timestamp as the next ``since`` pages through without a gap."""
    events = webhook_selectors.event_list(
        account=account, sandbox=sandbox, filters={"type": event_type}
    ).filter(created_at__gte=timezone.now() - POLL_WINDOW)
    if since:
        after = _next_millisecond(webhook_selectors.parse_moment(since, "since"))
        return list(events.filter(created_at__gte=after).order_by("created_at", "pk")[:POLL_LIMIT])
    latest = list(events.order_by("-created_at", "-pk")[:POLL_LIMIT])
    return latest[::-1]
