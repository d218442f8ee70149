"""Periodic upkeep: the sweep that publishes due deliveries, and the retention purge."""

from __future__ import annotations

import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.core.metrics import broker_queue_depths

from ..models import Delivery, DeliveryAttempt, Event
from .publishing import deliveries_publish


def deliveries_sweep(*, limit: int = 1000) -> int:
    """Publish due deliveries that have no live message: long-wait retries, lost messages
    (``_lost_after``), and deliveries whose claim lapsed (the process sending them died
    mid-attempt)."""
    now = timezone.now()
    stale = now - timedelta(seconds=_lost_after())
    with transaction.atomic():
        ids = list(
            Delivery.objects.select_for_update(skip_locked=True)
            .filter(status=Delivery.PENDING, next_attempt_at__lte=now)
            .filter(
                Q(claimed_until__lt=now)
                | Q(claimed_until__isnull=True)
                & (Q(published_at__isnull=True) | Q(published_at__lt=stale))
            )
            .order_by("next_attempt_at")
            .values_list("pk", flat=True)[:limit]
        )
        if ids:
            # The token goes too: a late record by the old holder no longer matches (fence).
            Delivery.objects.filter(pk__in=ids).update(
                published_at=now, claimed_until=None, claim_token=None
            )
            published = [str(pk) for pk in ids]
            transaction.on_commit(lambda: deliveries_publish(published))
    return len(ids)


def _lost_after() -> float:
    """Seconds after its publish that an unclaimed delivery's message counts as lost: one
    lease period while the ``webhooks`` queue is empty (no live process holds a message
    unstarted that long: it takes no more than it has threads, and claims at once), else
    ``WEBHOOK_REPUBLISH_AFTER_SECONDS``, so that a backlog is not flooded with duplicates."""
    try:
        depths = broker_queue_depths()
    except Exception:  # the broker is away: nothing can be published anyway
        depths = None
    if depths is not None and depths.get("webhooks") == 0:
        return min(settings.WEBHOOK_LEASE_SECONDS, settings.WEBHOOK_REPUBLISH_AFTER_SECONDS)
    return settings.WEBHOOK_REPUBLISH_AFTER_SECONDS


def events_purge(*, batch: int = 1000, max_seconds: float = 60.0) -> int:
    """Delete events past the retention, with their deliveries, unless one is still pending."""
    cutoff = timezone.now() - timedelta(seconds=settings.WEBHOOK_EVENT_RETENTION_SECONDS)
    started = time.monotonic()
    purged = 0
    while time.monotonic() - started < max_seconds:
        ids = list(
            Event.objects.filter(created_at__lt=cutoff)
            .exclude(pk__in=Delivery.objects.filter(status=Delivery.PENDING).values("event_id"))
            .values_list("pk", flat=True)[:batch]
        )
        if not ids:
            break
        with transaction.atomic():
            # Lock the deliveries in id order, the recorder's order (deliveries_record), so a
            # late record and the purge queue instead of deadlocking; one made pending again
            # since the SELECT above (a retry, a recover) keeps its event.
            locked = (
                Delivery.objects.select_for_update()
                .filter(event_id__in=ids)
                .order_by("pk")
                .values_list("event_id", "status")
            )
            busy = {event_id for event_id, status in locked if status == Delivery.PENDING}
            ids = [pk for pk in ids if pk not in busy]
            DeliveryAttempt.objects.filter(delivery__event_id__in=ids).delete()
            Delivery.objects.filter(event_id__in=ids).delete()
            purged += Event.objects.filter(pk__in=ids).delete()[0]
    return purged
