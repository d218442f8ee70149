"""Putting delivery messages on the ``webhooks`` queue (always after commit)."""

from __future__ import annotations

import logging
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ..models import Delivery

logger = logging.getLogger(__name__)

# The task that attempts a delivery (``tasks.deliver``), named rather than imported: the tasks
# import the services, not the other way round. Routed to ``webhooks`` by name (config/celery.py).
DELIVER = "apps.webhooks.tasks.deliver"


def deliveries_publish(delivery_ids: list[str]) -> None:
    """Put these deliveries on the ``webhooks`` queue (called after commit): one message per
    ``WEBHOOK_BATCH_SIZE`` ids, never one per delivery.

    Never raises: the rows are committed. When the broker is down, the first failed publish
    stops it and the rest are left to the sweep's next run (``published_at`` cleared).
    """
    size = max(1, settings.WEBHOOK_BATCH_SIZE)
    for start in range(0, len(delivery_ids), size):
        chunk = delivery_ids[start : start + size]
        try:
            current_app.send_task(
                DELIVER, args=[chunk], argsrepr=f"[<{len(chunk)} delivery ids>]", kwargsrepr="{}"
            )
        except Exception as exc:
            _publish_failed(delivery_ids[start:], exc)
            return


def deliveries_publish_later(*, delivery_id: str, countdown: float) -> None:
    try:
        current_app.send_task(DELIVER, args=[[delivery_id]], countdown=countdown)
    except Exception as exc:
        _publish_failed([delivery_id], exc)


def _publish_failed(delivery_ids: list[str], exc: Exception) -> None:
    logger.error(
        "publishing deliveries failed; the sweep publishes them when the broker is back",
        extra={"count": len(delivery_ids), "error": str(exc)[:200]},
    )
    try:
        Delivery.objects.filter(pk__in=delivery_ids, status=Delivery.PENDING).update(
            published_at=None
        )
    except Exception:
        # The database is away too: the sweep still finds them once their message is stale.
        logger.exception(
            "could not mark unpublished deliveries", extra={"count": len(delivery_ids)}
        )


def deliveries_requeue(*, delivery_ids: list[Any]) -> int:
    """Make deliveries due now with a fresh retry schedule (manual retry, recover, replay).

    One whose attempt is in flight (a live claim) is left alone: clearing its lease would let
    a second worker send it while the first still waits for the answer.
    """
    if not delivery_ids:
        return 0
    now = timezone.now()
    with transaction.atomic():
        ids = [
            str(pk)
            for pk in Delivery.objects.select_for_update()
            .filter(pk__in=delivery_ids)
            .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
            .values_list("pk", flat=True)
        ]
        if not ids:
            return 0
        Delivery.objects.filter(pk__in=ids).update(
            status=Delivery.PENDING,
            round_attempts=0,
            next_attempt_at=now,
            published_at=now,
            claimed_until=None,
            updated_at=now,
        )
        transaction.on_commit(lambda: deliveries_publish(ids))
    return len(ids)
