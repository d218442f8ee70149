"""Imports: the checks before the 202, then the worker's two streaming passes.

Pass 1 (``validating``) reads every record once: counts the data rows, validates each one as
``POST /enrich`` would, records the problems of the invalid ones in batches, and opens the
import's bulk with ``total`` = the valid rows, all in one transaction that commits only if
this worker still holds the lease. The bulk therefore cannot complete before its last
contact exists.

Pass 2 (``enqueueing``) reads the file again and turns valid rows into contacts,
``IMPORT_CHUNK_SIZE`` at a time; each chunk's transaction creates its contacts, bumps
``imported_rows`` and commits ``next_row`` (the last record it covered), fenced by the lease
token. A worker that dies loses at most the chunk in flight (rolled back); whoever takes the
lease over next skips the records up to ``next_row`` and goes on: no row lost, none twice.
"""

from __future__ import annotations

import logging
import uuid
from functools import partial
from typing import IO, Any

from celery import current_app
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.accounts.models import Account, ApiKey
from apps.core.errors import InvalidRequest
from apps.enrichment.models import BulkJob, List
from apps.enrichment.services import bulk_append, bulk_close, bulk_open, ensure_credits
from apps.enrichment.services.lists import ListNotFound, list_for_account
from apps.webhooks.models import Event
from apps.webhooks.services import EventDraft, events_emit

from .. import parsing, selectors
from ..models import Import, ImportRowError
from ..parsing import FileProblem, RowReader
from ..validation import ImportOptions
from .leases import LeaseLost, import_leases, job_claim, job_lease, job_locked

logger = logging.getLogger(__name__)

PROCESS_IMPORT = "apps.imports.tasks.process_import"
ERROR_BATCH = 1000


class TooLarge(InvalidRequest):
    status_code = 413
    code = "file_too_large"
    message = "The file is too large"


def _refused(problem: FileProblem) -> InvalidRequest:
    return InvalidRequest(problem.message, details={problem.field: problem.message})


def _too_many_rows(rows: int) -> str:
    return (
        f"The file has {rows} data rows or more; at most {settings.IMPORT_MAX_ROWS} per import "
        "(IMPORT_MAX_ROWS): split it."
    )


def import_create(
    *,
    account: Account,
    api_key: ApiKey,
    upload: IO[bytes],
    file_name: str,
    options: ImportOptions,
) -> Import:
    """Check the file (encoding, delimiter, header and its mapping, at least one data row, the
    size and row limits), store it through the default storage and publish its processing.

    Streams the upload a block at a time (``parsing.scan``); only a file with more lines than
    rows allowed is parsed in full here, to tell a too-long file (422) from one with quoted
    line breaks. 402 for a live key without credits, as a bulk.
    """
    ensure_credits(account=account, api_key=api_key)
    if options.list_id is not None:  # 404 for another account's or mode's list
        list_for_account(account, options.list_id, sandbox=api_key.sandbox)
    if not (account.plan.bulk_max or 0):
        raise InvalidRequest(details={"file": "This plan does not allow bulk requests."})
    try:
        scan = parsing.scan(upload)
        if scan.size > settings.IMPORT_MAX_BYTES:
            raise TooLarge(
                f"The file is {scan.size} bytes; at most {settings.IMPORT_MAX_BYTES} "
                "(IMPORT_MAX_BYTES)."
            )
        delimiter = parsing.delimiter_detect(upload, scan.encoding)
        rows = parsing.records(upload, scan.encoding, delimiter)
        header = next(rows, None)
        if header is None or parsing.blank(header):
            raise FileProblem("The first line must be a header naming the columns.")
        columns = parsing.columns_clean(header)
        mapping = parsing.mapping_resolve(columns, options.mapping)
        if all(parsing.blank(cells) for cells in rows):  # stops at the first data row
            raise FileProblem("The file has a header but no data rows.")
        if scan.newlines > settings.IMPORT_MAX_ROWS:
            count = sum(
                1
                for cells in parsing.records(upload, scan.encoding, delimiter)
                if not parsing.blank(cells)
            )
            if count - 1 > settings.IMPORT_MAX_ROWS:
                raise FileProblem(_too_many_rows(count - 1))
    except FileProblem as problem:
        raise _refused(problem)
    job = Import(
        account=account,
        api_key=api_key,
        sandbox=api_key.sandbox,
        name=options.name,
        file_name=file_name[:255],
        file_size=scan.size,
        encoding=scan.encoding,
        delimiter=delimiter,
        columns=columns,
        mapping=mapping,
        enrichment_type=options.enrichment_type,
        phone_country_codes=options.phone_country_codes,
        webhook_url=options.webhook_url,
        list_id=options.list_id,
    )
    upload.seek(0)
    job.file_key = default_storage.save(
        f"imports/{account.pk}/{job.pk}.csv", File(upload, name=f"{job.pk}.csv")
    )
    job.save(force_insert=True)
    pk = str(job.pk)
    transaction.on_commit(lambda: import_publish(pk))
    return job


def import_publish(import_id: str) -> None:
    """Never raises: the row is committed, and the sweep publishes it when this fails."""
    try:
        current_app.send_task(PROCESS_IMPORT, args=[import_id])
    except Exception:
        logger.exception("publishing an import failed; the sweep will", extra={"id": import_id})


# --- On a worker ------------------------------------------------------------------------------


def import_process(import_id: str) -> int:
    """Run (or resume) an import's passes under a lease; returns the contacts it created.
    A second message for an import another worker holds, or one that is done, is a no-op."""
    token = job_claim(
        Import,
        import_leases,
        import_id,
        status=Import.PROCESSING,
        stage__in=(Import.VALIDATING, Import.ENQUEUEING),
    )
    if token is None:
        return 0
    created = 0
    with job_lease(Import, import_leases, import_id, token):
        try:
            job = Import.objects.select_related("account", "api_key").get(pk=import_id)
            if job.run_count > settings.IMPORT_MAX_RUNS:
                _import_fail(job, token, f"Processing stopped after {job.run_count - 1} attempts.")
                return 0
            if job.api_key is None:
                _import_fail(job, token, "The API key that uploaded the file was deleted.")
                return 0
            try:
                if job.stage == Import.VALIDATING:
                    job = _validate(job, token)
                if job.stage == Import.ENQUEUEING:
                    created = _enqueue(job, token)
            except FileProblem as problem:
                _import_fail(job, token, problem.message)
        except LeaseLost:
            logger.warning("import taken over by another worker", extra={"id": import_id})
    return created


def _reader(job: Import) -> RowReader:
    return RowReader(
        columns=job.columns,
        mapping=job.mapping,
        batch={
            "enrichment_type": job.enrichment_type,
            "phone_country_codes": job.phone_country_codes,
            "webhook_url": job.webhook_url,
        },
        consent=job.account.personal_email_consent,
    )


def _validate(job: Import, token: uuid.UUID) -> Import:
    """Pass 1, one transaction: count, record row errors, open the bulk, move on."""
    reader = _reader(job)
    total = valid = invalid = 0
    pending: list[ImportRowError] = []
    with transaction.atomic():
        ImportRowError.objects.filter(import_job=job).delete()
        with default_storage.open(job.file_key, "rb") as binary:
            for row, cells in enumerate(parsing.records(binary, job.encoding, job.delimiter), 1):
                if row == 1 or parsing.blank(cells):
                    continue
                total += 1
                if total > settings.IMPORT_MAX_ROWS:
                    raise FileProblem(_too_many_rows(total))
                clean, errors = reader.contact(row, cells)
                if clean is not None:
                    valid += 1
                    continue
                invalid += 1
                pending += [
                    ImportRowError(
                        import_job=job,
                        row=e.row,
                        field=e.field or "",
                        column=e.column or "",
                        message=e.message[:500],
                    )
                    for e in errors
                ]
                if len(pending) >= ERROR_BATCH:
                    ImportRowError.objects.bulk_create(pending)
                    pending = []
        ImportRowError.objects.bulk_create(pending)
        locked = job_locked(Import, job.pk, token)
        bulk = None
        if valid:
            bulk = bulk_open(
                account=job.account,
                api_key=job.api_key,
                sandbox=job.sandbox,
                total=valid,
                enrichment_type=job.enrichment_type,
                webhook_url=job.webhook_url,
            )
        locked.total_rows, locked.valid_rows, locked.error_count = total, valid, invalid
        locked.bulk = bulk
        locked.next_row = 1
        locked.stage = Import.ENQUEUEING if valid else Import.DONE
        fields = ["total_rows", "valid_rows", "error_count", "bulk", "next_row", "stage"]
        if not valid:  # nothing to enrich: complete now
            _complete(locked)
            fields += ["status", "completed_at", "file_key"]
        locked.save(update_fields=[*fields, "updated_at"])
        if not valid:
            events_emit([import_completed_event(locked)])
    locked.account, locked.api_key = job.account, job.api_key
    return locked


def _complete(job: Import) -> None:
    job.status = Import.COMPLETED
    job.stage = Import.DONE
    job.completed_at = timezone.now()
    _file_drop(job)


def _file_drop(job: Import) -> None:
    """Forget the upload, and delete it once the change commits."""
    key, job.file_key = job.file_key, ""
    if key:
        transaction.on_commit(lambda: _file_delete(key))


def _file_delete(key: str) -> None:
    try:
        default_storage.delete(key)
    except Exception:
        logger.exception("could not delete an import's file", extra={"key": key})


def _enqueue(job: Import, token: uuid.UUID) -> int:
    """Pass 2: contacts chunk by chunk from ``next_row`` on, each chunk one transaction."""
    reader = _reader(job)
    size = max(1, settings.IMPORT_CHUNK_SIZE)
    created = 0
    bulk = BulkJob.objects.get(pk=job.bulk_id)
    # A list deleted meanwhile: the rows are still imported, into no list.
    list_obj = List.objects.filter(pk=job.list_id).first() if job.list_id else None
    with default_storage.open(job.file_key, "rb") as binary:
        rows = enumerate(parsing.records(binary, job.encoding, job.delimiter), 1)
        done_row = job.next_row
        exhausted = False
        while not exhausted:
            chunk: list[tuple[int, Any]] = []
            last = done_row
            exhausted = True
            for row, cells in rows:
                last = row
                if row <= done_row or parsing.blank(cells):
                    continue
                clean, _ = reader.contact(row, cells)
                if clean is not None:
                    chunk.append((row, clean))
                    if len(chunk) >= size:
                        exhausted = False
                        break
            try:
                _chunk_commit(job, token, bulk, chunk, list_obj, done_row, last, exhausted)
            except ListNotFound:  # the list was deleted meanwhile: into no list, then
                list_obj = None
                _chunk_commit(job, token, bulk, chunk, list_obj, done_row, last, exhausted)
            created += len(chunk)
            done_row = last
    return created


def _chunk_commit(
    job: Import,
    token: uuid.UUID,
    bulk: BulkJob,
    chunk: list[tuple[int, Any]],
    list_obj: List | None,
    done_row: int,
    last: int,
    exhausted: bool,
) -> None:
    """One chunk's transaction, fenced: its contacts, and how far the file is done."""
    with transaction.atomic():
        locked = job_locked(Import, job.pk, token)
        if locked.next_row != done_row:  # someone else moved it: not ours any more
            raise LeaseLost()
        if chunk:
            bulk_append(
                bulk=bulk,
                account=job.account,
                api_key=job.api_key,
                contacts=chunk,
                list_obj=list_obj,
            )
        update: dict[str, Any] = {
            "next_row": last,
            "imported_rows": F("imported_rows") + len(chunk),
            "updated_at": timezone.now(),
        }
        if exhausted:
            update["stage"] = Import.ENRICHING
            update["file_key"] = ""
            transaction.on_commit(partial(_file_delete, job.file_key))
        Import.objects.filter(pk=job.pk).update(**update)


def _import_fail(job: Import, token: uuid.UUID, message: str) -> None:
    with transaction.atomic():
        locked = job_locked(Import, job.pk, token)
        locked.status = Import.FAILED
        locked.stage = Import.DONE
        locked.error_message = message[:500]
        locked.completed_at = timezone.now()
        _file_drop(locked)
        locked.save(
            update_fields=[
                "status",
                "stage",
                "error_message",
                "completed_at",
                "file_key",
                "updated_at",
            ]
        )
        if locked.bulk_id:
            # Failed half-way: the bulk waits only for the contacts it got.
            bulk_close(bulk_id=locked.bulk_id, total=locked.imported_rows)
    logger.warning("import failed", extra={"id": str(job.pk), "error": message})


# --- Completion -------------------------------------------------------------------------------


def import_completed_event(job: Import, bulk: BulkJob | None = None) -> EventDraft:
    return EventDraft(
        account_id=job.account_id,
        type=Event.IMPORT_COMPLETED,
        data=selectors.import_data(job, bulk=bulk),
        sandbox=job.sandbox,
        target_urls=(job.webhook_url,),
    )


def import_bulk_completed(sender: Any, bulk: BulkJob, **kwargs: Any) -> list[EventDraft] | None:
    """``apps.enrichment.signals.bulk_completed``'s receiver, in the completing finish's
    transaction: an import's bulk completes the import and is announced as
    ``import.completed`` (not ``bulk.completed``). Any other bulk: None."""
    job = Import.objects.filter(bulk_id=bulk.pk).first()
    if job is None:
        return None
    if job.status != Import.PROCESSING:  # failed already: still not a plain bulk
        return []
    job.status, job.stage, job.completed_at = Import.COMPLETED, Import.DONE, timezone.now()
    job.save(update_fields=["status", "stage", "completed_at", "updated_at"])
    return [import_completed_event(job, bulk=bulk)]
