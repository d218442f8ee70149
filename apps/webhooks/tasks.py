"""Celery entry points for webhooks: take ids, call a service."""

from __future__ import annotations

from celery import shared_task
from celery.signals import worker_shutting_down

from . import services


@shared_task(name="apps.webhooks.tasks.deliver", acks_late=True)
def deliver(delivery_ids: list[str] | str) -> int:
    """Hand these deliveries to this process's sender (a single id: a message from before
    batches, or a retry's countdown)."""
    ids = [delivery_ids] if isinstance(delivery_ids, str) else delivery_ids
    return services.deliveries_dispatch(delivery_ids=ids)


@shared_task(name="maintenance.sweep_webhook_deliveries")
def sweep_webhook_deliveries() -> int:
    return services.deliveries_sweep()


@shared_task(name="maintenance.purge_webhook_events")
def purge_webhook_events() -> int:
    return services.events_purge()


@worker_shutting_down.connect
def _give_back_unsent(**_: object) -> None:
    """A warm shutdown of a webhooks process gives back what it claimed but has not sent."""
    services.sender.stop()
