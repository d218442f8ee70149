"""Putting delivery messages on the ``webhooks`` queue (always after commit)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ..models import Delivery


def deliveries_publish(delivery_ids: list[str]) -> None:
    """Put one message per delivery on the ``webhooks`` queue (called after commit)."""
    from .. import tasks

    for delivery_id in delivery_ids:
        tasks.deliver.apply_async(args=[delivery_id])


def deliveries_publish_later(*, delivery_id: str, countdown: float) -> None:
    from .. import tasks

    tasks.deliver.apply_async(args=[delivery_id], countdown=countdown)


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
