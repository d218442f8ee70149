"""Reads for enrichment, always scoped to one account and one mode (another account's or
another mode's id is a 404): a sandbox key never sees live contacts or bulks, nor the reverse."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from functools import cache
from typing import Any

from django.db import connection
from django.db.models import Prefetch, QuerySet

from apps.accounts.models import Account
from apps.core.db import pk_param, sql_column, sql_columns, sql_table
from apps.core.errors import InvalidRequest, NotFound
from apps.core.timefmt import iso, parse_timestamp

from .models import BulkJob, Contact, List, ListEntry, ProviderAttempt

_ATTEMPTS_QUERYSET = ProviderAttempt.objects.only(
    "contact_id", "provider", "kind", "outcome", "duration_ms", "error", "position"
).order_by("position")
_ATTEMPTS = Prefetch("attempts", queryset=_ATTEMPTS_QUERYSET)


def _uuid_or_404(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound()


def contact_get(*, account: Account, sandbox: bool, enrichment_id: str) -> Contact:
    pk = _uuid_or_404(enrichment_id)
    contact = (
        Contact.objects.filter(account=account, sandbox=sandbox, pk=pk)
        .prefetch_related(_ATTEMPTS)
        .first()
    )
    if contact is None:
        raise NotFound()
    return contact


def contact_has_finished(pk: Any) -> bool:
    """Whether the contact has finished: a sync wait's look before it waits (one statement,
    built once; its own contact, by id)."""
    with connection.cursor() as cursor:
        cursor.execute(_finished_sql()[0], [pk_param(Contact, pk)])
        return cursor.fetchone() is not None


def contact_if_finished(pk: Any) -> tuple[Contact, list[ProviderAttempt]] | None:
    """The contact and its attempts if it has finished, else None: the answer of a sync
    wait that was woken (its own contact, by id). Two statements built once: what the ORM's
    ``contact_get`` reads, for half its CPU, which a sync answer spends on every request."""
    sql, attempts_sql = _finished_sql()[1:]
    rows = list(Contact.objects.raw(sql, [pk_param(Contact, pk)]))
    if not rows:
        return None
    return rows[0], list(ProviderAttempt.objects.raw(attempts_sql, [pk_param(Contact, pk)]))


@cache
def _finished_sql() -> tuple[str, str, str]:
    table = sql_table(Contact)
    where = f"WHERE {sql_column(Contact, 'pk')} = %s"
    where += f" AND {sql_column(Contact, 'status')} = '{Contact.FINISHED}'"
    wanted = ("id", "contact", "provider", "kind", "outcome", "duration_ms", "error", "position")
    attempt_columns = ", ".join(sql_column(ProviderAttempt, name) for name in wanted)
    return (
        f"SELECT 1 FROM {table} {where}",  # noqa: S608 - names from model metadata
        f"SELECT {sql_columns(Contact)} FROM {table} {where}",  # noqa: S608
        f"SELECT {attempt_columns} FROM {sql_table(ProviderAttempt)}"  # noqa: S608
        f" WHERE {sql_column(ProviderAttempt, 'contact')} = %s"
        f" ORDER BY {sql_column(ProviderAttempt, 'position')}",
    )


def contact_list(*, account: Account, sandbox: bool, filters: dict[str, str]) -> QuerySet[Contact]:
    qs = Contact.objects.filter(account=account, sandbox=sandbox).prefetch_related(_ATTEMPTS)
    status = filters.get("status")
    if status:
        if status not in (Contact.PENDING, Contact.FINISHED):
            raise InvalidRequest(details={"status": "Must be 'pending' or 'finished'."})
        qs = qs.filter(status=status)
    result_status = filters.get("result_status")
    if result_status:
        if result_status not in dict(Contact.RESULT_STATUSES):
            raise InvalidRequest(
                details={"result_status": "Must be VERIFIED, NOT_FOUND, NO_CREDITS or FAILED."}
            )
        qs = qs.filter(result_status=result_status)
    bulk_id = filters.get("bulk_id")
    if bulk_id:
        try:
            qs = qs.filter(bulk_id=uuid.UUID(bulk_id))
        except ValueError:
            raise InvalidRequest(details={"bulk_id": "Must be a UUID."})
    updated_after = filters.get("updated_after")
    if updated_after:
        qs = qs.filter(updated_at__gt=parse_timestamp(updated_after, field="updated_after"))
    return qs


def bulk_get(*, account: Account, sandbox: bool, bulk_id: str) -> BulkJob:
    pk = _uuid_or_404(bulk_id)
    bulk = BulkJob.objects.filter(account=account, sandbox=sandbox, pk=pk).first()
    if bulk is None:
        raise NotFound()
    return bulk


# The list page's order: pinned first, then most recently updated (prospiq's), then id.
LIST_ORDER = ("-is_pinned", "-updated_at", "-pk")


def list_list(*, account: Account, sandbox: bool) -> QuerySet[List]:
    return List.objects.filter(account=account, sandbox=sandbox)


def list_entries(*, list_obj: List) -> QuerySet[ListEntry]:
    """The list's entries with their contacts and attempts (two queries a page)."""
    return (
        ListEntry.objects.filter(list_id=list_obj.pk)
        .select_related("contact")
        .prefetch_related(Prefetch("contact__attempts", queryset=_ATTEMPTS_QUERYSET))
    )


# --- Representations (the API's JSON shapes) ----------------------------------------------------


def list_data(list_obj: List) -> dict[str, Any]:
    """A list as prospiq shows it (``GET /v1/lists``), with Sluice's ``sandbox``."""
    return {
        "id": str(list_obj.pk),
        "name": list_obj.name,
        "description": list_obj.description,
        "color": list_obj.color,
        "is_pinned": list_obj.is_pinned,
        "contact_count": list_obj.contact_count,
        "sandbox": list_obj.sandbox,
        "created_at": iso(list_obj.created_at),
        "updated_at": iso(list_obj.updated_at),
    }


def lists_data(lists: Sequence[List]) -> list[dict[str, Any]]:
    return [list_data(item) for item in lists]


def entry_contacts_data(entries: Sequence[ListEntry]) -> list[dict[str, Any]]:
    return [contact_data(entry.contact) for entry in entries]


def entry_data(entry: ListEntry) -> dict[str, Any]:
    """The answer to ``POST /lists/{id}/contacts``."""
    return {
        "list_id": str(entry.list_id),
        "enrichment_id": str(entry.contact_id),
        "added_at": iso(entry.created_at),
    }


def contact_data(
    contact: Contact, *, attempts: Sequence[ProviderAttempt] | None = None
) -> dict[str, Any]:
    """The GET /contacts/{id} object; also the ``data`` of contact events. ``attempts``: the
    contact's, in order, when read already (else ``contact.attempts``)."""
    return {
        "enrichment_id": str(contact.pk),
        "status": contact.status,
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "company_name": contact.company_name or None,
        "domain": contact.domain or None,
        "linkedin_url": contact.linkedin_url or None,
        "enrichment_type": contact.enrichment_type,
        "result": contact.result,
        "credits_charged": contact.credits_charged,
        "sandbox": contact.sandbox,
        "bulk_id": str(contact.bulk_id) if contact.bulk_id else None,
        "custom": contact.custom,
        "attempts": [
            {
                "provider": a.provider,
                "kind": a.kind,
                "outcome": a.outcome,
                "duration_ms": a.duration_ms,
                "error": a.error,
            }
            for a in (contact.attempts.all() if attempts is None else attempts)
        ],
        "created_at": iso(contact.created_at),
        "finished_at": iso(contact.finished_at),
    }


def contacts_data(contacts: Sequence[Contact]) -> list[dict[str, Any]]:
    return [contact_data(c) for c in contacts]


def contact_accepted_data(contact: Contact) -> dict[str, Any]:
    return {
        "enrichment_id": str(contact.pk),
        "status": contact.status,
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "custom": contact.custom,
        "created_at": iso(contact.created_at),
    }


def bulk_data(bulk: BulkJob) -> dict[str, Any]:
    return {
        "bulk_id": str(bulk.pk),
        "status": bulk.status,
        "total": bulk.total,
        "finished": bulk.finished,
        "verified": bulk.verified,
        "not_found": bulk.not_found,
        "no_credits": bulk.no_credits,
        "failed": bulk.failed,
        "credits_used": bulk.credits_used,
        "created_at": iso(bulk.created_at),
        "completed_at": iso(bulk.completed_at),
    }
