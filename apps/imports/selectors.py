"""Reads for imports and exports, scoped to one account and one mode (another's id: 404)."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import QuerySet

from apps.accounts.models import Account
from apps.core.errors import NotFound
from apps.core.timefmt import iso
from apps.enrichment.models import BulkJob

from .models import Export, Import, ImportRowError


def _uuid_or_404(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound()


def import_get(*, account: Account, sandbox: bool, import_id: str) -> Import:
    job = (
        Import.objects.filter(account=account, sandbox=sandbox, pk=_uuid_or_404(import_id))
        .select_related("bulk")
        .first()
    )
    if job is None:
        raise NotFound()
    return job


def import_list(*, account: Account, sandbox: bool) -> QuerySet[Import]:
    return Import.objects.filter(account=account, sandbox=sandbox).select_related("bulk")


def import_errors(*, job: Import) -> QuerySet[ImportRowError]:
    return ImportRowError.objects.filter(import_job=job)


def export_get(*, account: Account, sandbox: bool, export_id: str) -> Export:
    export = Export.objects.filter(
        account=account, sandbox=sandbox, pk=_uuid_or_404(export_id)
    ).first()
    if export is None:
        raise NotFound()
    return export


def export_list(*, account: Account, sandbox: bool) -> QuerySet[Export]:
    return Export.objects.filter(account=account, sandbox=sandbox)


# --- Representations --------------------------------------------------------------------------

_COUNTERS = ("finished", "verified", "not_found", "no_credits", "failed", "credits_used")


def import_data(job: Import, *, bulk: BulkJob | None = None) -> dict[str, Any]:
    """``GET /imports/{id}``; also ``import.completed``'s data."""
    bulk = bulk or job.bulk
    return {
        "import_id": str(job.pk),
        "object": "import",
        "status": job.status,
        "stage": job.stage,
        "name": job.name or None,
        "file_name": job.file_name,
        "total_rows": job.total_rows,
        "valid_rows": job.valid_rows,
        "imported_rows": job.imported_rows,
        "error_count": job.error_count,
        **{name: getattr(bulk, name) if bulk else 0 for name in _COUNTERS},
        "bulk_id": str(job.bulk_id) if job.bulk_id else None,
        "list_id": str(job.list_id) if job.list_id else None,
        "enrichment_type": job.enrichment_type,
        "columns": job.columns,
        "mapping": job.mapping,
        "error_message": job.error_message or None,
        "sandbox": job.sandbox,
        "created_at": iso(job.created_at),
        "updated_at": iso(job.updated_at),
        "completed_at": iso(job.completed_at),
    }


def imports_data(jobs: Any) -> list[dict[str, Any]]:
    return [import_data(job) for job in jobs]


def row_errors_data(errors: Any) -> list[dict[str, Any]]:
    return [
        {"row": e.row, "field": e.field or None, "column": e.column or None, "message": e.message}
        for e in errors
    ]


def export_data(export: Export) -> dict[str, Any]:
    return {
        "export_id": str(export.pk),
        "object": "export",
        "status": export.status,
        "source": export.source,
        "source_id": str(export.source_id) if export.source_id else None,
        "filters": export.filters if export.source == "filters" else None,
        "row_count": export.row_count,
        "download_ready": export.download_ready,
        "download_url": f"/api/v1/exports/{export.pk}/download" if export.download_ready else None,
        "error_message": export.error_message or None,
        "sandbox": export.sandbox,
        "created_at": iso(export.created_at),
        "updated_at": iso(export.updated_at),
        "completed_at": iso(export.completed_at),
        "expires_at": iso(export.expires_at),
    }


def exports_data(exports: Any) -> list[dict[str, Any]]:
    return [export_data(e) for e in exports]
