"""Periodic maintenance for shared models (routed to the ``maintenance`` queue by name)."""

from __future__ import annotations

from celery import shared_task

from .idempotency import idempotency_records_purge


@shared_task(name="maintenance.purge_idempotency_keys")
def purge_idempotency_keys() -> int:
    return idempotency_records_purge()
