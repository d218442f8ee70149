"""Celery entry points for imports and exports: take ids, call a service. Not named under
``apps.enrichment.tasks``, so they go to the default queue, ``enrichment`` (Procfile's worker);
the sweeps are ``maintenance.*``."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="apps.imports.tasks.process_import", acks_late=True)
def process_import(import_id: str) -> int:
    return services.import_process(import_id)


@shared_task(name="apps.imports.tasks.write_export", acks_late=True)
def write_export(export_id: str) -> int:
    return services.export_write(export_id)


@shared_task(name="maintenance.sweep_imports")
def sweep_imports() -> int:
    return services.jobs_sweep()


@shared_task(name="maintenance.purge_exports")
def purge_exports() -> int:
    return services.exports_purge()
