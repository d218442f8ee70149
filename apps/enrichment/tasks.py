"""Celery entry points for enrichment: take ids, call a service."""

from __future__ import annotations

from celery import shared_task
from celery.signals import worker_process_shutdown, worker_shutting_down

from . import services


@shared_task(name="apps.enrichment.tasks.run_contacts", acks_late=True)
def run_contacts(contact_ids: list[str]) -> int:
    """Claim these contacts and hand them to this process's runner; returns how many were
    claimed. Returns at once: the waterfalls run in the shared pool and the process's
    finisher finishes them, so a task thread never waits on a provider."""
    claim = services.contacts_start(contact_ids=contact_ids)
    return claim.size if claim is not None else 0


@shared_task(name="maintenance.reap_stuck_contacts")
def reap_stuck_contacts() -> int:
    return services.contacts_reap()


@worker_shutting_down.connect
@worker_process_shutdown.connect
def _drain_runner(**_: object) -> None:
    """A warm shutdown lets the running waterfalls finish and gives back the rest."""
    services.runner.stop()
