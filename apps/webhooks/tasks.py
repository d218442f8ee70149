"""Celery entry points for webhooks: take ids, call a service."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="apps.webhooks.tasks.deliver", acks_late=True)
def deliver(delivery_id: str) -> str | None:
    return services.delivery_attempt(delivery_id=delivery_id)


@shared_task(name="maintenance.sweep_webhook_deliveries")
def sweep_webhook_deliveries() -> int:
    return services.deliveries_sweep()


@shared_task(name="maintenance.purge_webhook_events")
def purge_webhook_events() -> int:
    return services.events_purge()
