"""Celery entry points for enrichment: take ids, call a service."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="apps.enrichment.tasks.run_contacts", acks_late=True)
def run_contacts(contact_ids: list[str]) -> int:
    return services.contacts_run(contact_ids=contact_ids)


@shared_task(name="maintenance.reap_stuck_contacts")
def reap_stuck_contacts() -> int:
    return services.contacts_reap()
