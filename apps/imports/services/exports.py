"""Exports: accept one (its source checked in the caller's account and mode), then write its
CSV on a worker, streaming: rows from the database in chunks (``iterator``) into a temporary
file, then the file into the default storage."""

from __future__ import annotations

import csv
import json
import logging
import re
import tempfile
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from celery import current_app
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from apps.accounts.models import Account, ApiKey
from apps.core.errors import NotFound
from apps.enrichment import selectors as contact_selectors
from apps.enrichment.models import BulkJob, Contact, List

from ..models import Export, Import
from .leases import LeaseLost, export_leases, job_claim, job_lease, job_locked

logger = logging.getLogger(__name__)

WRITE_EXPORT = "apps.imports.tasks.write_export"
CHUNK = 2000
CONTACT_COLUMNS = ("first_name", "last_name", "company_name", "domain", "linkedin_url")
RESULT_COLUMNS = (
    "status",
    "email",
    "email_status",
    "personal_email",
    "phone",
    "phone_type",
    "job_title",
    "company_domain",
    "confidence",
    "credits_charged",
    "enrichment_id",
)
_FIELDS = (
    "id",
    "position",
    "status",
    "result_status",
    "result",
    "credits_charged",
    "custom",
    "created_at",
    *CONTACT_COLUMNS,
)


def export_create(*, account: Account, api_key: ApiKey, source: str, value: Any) -> Export:
    """Check that the source is the caller's (404 otherwise; filters: 422 when invalid) and
    publish the writing of the file after commit."""
    export = Export(account=account, api_key=api_key, sandbox=api_key.sandbox, source=source)
    if source == "filters":
        # Validates them exactly as GET /contacts does (422 for a bad one).
        contact_selectors.contact_list(account=account, sandbox=api_key.sandbox, filters=value)
        export.filters = value
    else:
        try:
            export.source_id = uuid.UUID(str(value))
        except ValueError:
            raise NotFound()
        model = {"import": Import, "bulk": BulkJob, "list": List}[source]
        if not model.objects.filter(
            pk=export.source_id, account=account, sandbox=api_key.sandbox
        ).exists():
            raise NotFound()
    export.save(force_insert=True)
    pk = str(export.pk)
    transaction.on_commit(lambda: export_publish(pk))
    return export


def export_publish(export_id: str) -> None:
    try:
        current_app.send_task(WRITE_EXPORT, args=[export_id])
    except Exception:
        logger.exception("publishing an export failed; the sweep will", extra={"id": export_id})


# --- On a worker ------------------------------------------------------------------------------


def export_write(export_id: str) -> int:
    """Write the export's CSV under a lease; returns its rows (0: nothing to do)."""
    token = job_claim(Export, export_leases, export_id, status=Export.PROCESSING)
    if token is None:
        return 0
    with job_lease(Export, export_leases, export_id, token):
        try:
            export = Export.objects.select_related("account").get(pk=export_id)
            if export.run_count > settings.IMPORT_MAX_RUNS:
                _export_fail(
                    export, token, f"Writing stopped after {export.run_count - 1} attempts."
                )
                return 0
            header, rows = _table(export)
            count = 0
            with tempfile.TemporaryFile("w+b") as raw:
                text = _TextSink(raw)
                writer = csv.writer(text)
                text.write("\ufeff")  # a BOM: spreadsheets then read UTF-8 as UTF-8
                writer.writerow(header)
                for row in rows:
                    writer.writerow(row)
                    count += 1
                text.flush()
                name = f"exports/{export.account_id}/{export.pk}.csv"
                if default_storage.exists(name):  # a run that died after saving
                    default_storage.delete(name)
                raw.seek(0)
                key = default_storage.save(name, File(raw, name=f"{export.pk}.csv"))
            now = timezone.now()
            with transaction.atomic():
                locked = job_locked(Export, export.pk, token)
                locked.status = Export.COMPLETED
                locked.file_key = key
                locked.row_count = count
                locked.completed_at = now
                locked.expires_at = now + timedelta(seconds=settings.EXPORT_RETENTION_SECONDS)
                locked.save(
                    update_fields=[
                        "status",
                        "file_key",
                        "row_count",
                        "completed_at",
                        "expires_at",
                        "updated_at",
                    ]
                )
            return count
        except LeaseLost:
            logger.warning("export taken over by another worker", extra={"id": export_id})
            return 0


class _TextSink:
    """UTF-8 text written to a binary file in blocks (``csv.writer`` writes short strings)."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self._parts: list[str] = []
        self._size = 0

    def write(self, text: str) -> int:
        self._parts.append(text)
        self._size += len(text)
        if self._size >= 1 << 16:
            self.flush()
        return len(text)

    def flush(self) -> None:
        if self._parts:
            self._raw.write("".join(self._parts).encode("utf-8"))
            self._parts, self._size = [], 0


def _export_fail(export: Export, token: uuid.UUID, message: str) -> None:
    with transaction.atomic():
        locked = job_locked(Export, export.pk, token)
        locked.status = Export.FAILED
        locked.error_message = message[:500]
        locked.completed_at = timezone.now()
        locked.save(update_fields=["status", "error_message", "completed_at", "updated_at"])


def _contacts(export: Export) -> QuerySet[Contact]:
    if export.source == "filters":
        qs = contact_selectors.contact_list(
            account=export.account, sandbox=export.sandbox, filters=export.filters
        )
        return qs.prefetch_related(None).order_by("-created_at", "-pk")
    qs = Contact.objects.filter(account_id=export.account_id, sandbox=export.sandbox)
    if export.source == "import":
        job = Import.objects.filter(pk=export.source_id).only("bulk_id").first()
        return qs.filter(bulk_id=job.bulk_id if job else None).order_by("position")
    if export.source == "list":  # in the order they were added
        return qs.filter(list_entries__list_id=export.source_id).order_by("list_entries__id")
    return qs.filter(bulk_id=export.source_id).order_by("position")


def _table(export: Export) -> tuple[list[str], Iterator[list[Any]]]:
    """The header and the rows: an import's own columns in their order (mapped ones from the
    contact, the others from its ``custom``), else the contact's fields and its ``custom``
    as JSON; then the result columns."""
    contacts = _contacts(export).only(*_FIELDS).iterator(chunk_size=CHUNK)
    job = None
    if export.source == "import":
        job = Import.objects.filter(pk=export.source_id).only("columns", "mapping").first()
    if job is not None:
        columns, mapping = list(job.columns), dict(job.mapping)
        header = [*columns, *RESULT_COLUMNS]
        if set(columns) & set(RESULT_COLUMNS):  # the file's own "email" column stays first
            header = [*columns, *(f"sluice_{c}" for c in RESULT_COLUMNS)]

        def rows() -> Iterator[list[Any]]:
            for c in contacts:
                custom = c.custom or {}
                own = [
                    getattr(c, mapping[name]) if name in mapping else custom.get(name, "")
                    for name in columns
                ]
                yield [_cell(v) for v in own] + _result(c)

        return header, rows()

    def plain() -> Iterator[list[Any]]:
        for c in contacts:
            own = [getattr(c, name) for name in CONTACT_COLUMNS]
            custom = json.dumps(c.custom, ensure_ascii=False) if c.custom else ""
            yield [_cell(v) for v in own] + [custom] + _result(c)

    return [*CONTACT_COLUMNS, "custom", *RESULT_COLUMNS], plain()


def _result(c: Contact) -> list[Any]:
    result = c.result or {}
    phones = result.get("phones") or []
    phone = phones[0] if phones and isinstance(phones[0], dict) else {}
    confidence = result.get("confidence")
    return [
        c.result_status if c.status == Contact.FINISHED else Contact.PENDING,
        _cell(result.get("email")),
        _cell(result.get("email_status")),
        _cell(result.get("personal_email")),
        _cell(phone.get("number")),
        _cell(phone.get("type")),
        _cell(result.get("job_title")),
        _cell(result.get("company_domain")),
        "" if confidence is None else confidence,
        c.credits_charged,
        str(c.pk),
    ]


# A cell a spreadsheet would run as a formula (OWASP "CSV injection"); a phone number such as
# +33 1 23 45 67 89 or -42 is left alone.
_NUMBERISH = re.compile(r"^[+-][\d\s().-]*$")


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if (
        isinstance(value, str)
        and value[:1] in ("=", "+", "-", "@", "\t", "\r")
        and not _NUMBERISH.match(value)
    ):
        return "'" + value
    return value
