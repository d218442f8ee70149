"""Lists of contacts: create, change, delete, add and remove contacts, and their events.

Every change to a list's entries runs in one transaction with the list's ``contact_count``
and its ``contact.added_to_list`` events, in a constant number of queries whatever the
number of contacts: the list row is locked (``SELECT … FOR UPDATE``), the entries already
there are read once, the new ones inserted with one INSERT, the counter moved with one
UPDATE and the events stored by ``events_emit`` (one endpoint read, two INSERTs).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.accounts.models import Account
from apps.core.errors import Conflict, InvalidRequest, NotFound
from apps.core.timefmt import iso
from apps.webhooks.models import Event
from apps.webhooks.services import EventDraft, events_emit

from ..models import Contact, List, ListEntry


class ListNotFound(NotFound):
    """No such list for this account and mode (another account's or mode's is the same)."""

    code = "list_not_found"
    message = "List not found"

    def __init__(self) -> None:
        super().__init__(details={"list_id": "No list with this id for this API key."})


class ContactNotFound(NotFound):
    code = "contact_not_found"
    message = "Contact not found"

    def __init__(self) -> None:
        super().__init__(details={"enrichment_id": "No enrichment with this id for this API key."})


class AlreadyInList(Conflict):
    code = "already_in_list"
    message = "The contact is already in this list"


class NotInList(NotFound):
    code = "not_in_list"
    message = "The contact is not in this list"


def _uuid(value: Any) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def list_for_account(account: Account, list_id: Any, *, sandbox: bool) -> List:
    """The account's list in this mode; ``ListNotFound`` (404 ``list_not_found``) for an
    unknown id, another account's or mode's list, or anything that is not a UUID."""
    pk = _uuid(list_id)
    found = List.objects.filter(account=account, sandbox=sandbox, pk=pk).first() if pk else None
    if found is None:
        raise ListNotFound()
    return found


# --- Fields (POST and PATCH bodies) -------------------------------------------------------------

_EDITABLE = ("name", "description", "color", "is_pinned")


def list_fields_clean(data: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    """The list fields of a create (``partial=False``: ``name`` required) or PATCH body,
    cleaned; a 422 naming every problem otherwise (unknown fields included)."""
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    for key in sorted(set(data) - set(_EDITABLE)):
        errors[key] = "Unknown field."
    if "name" in data or not partial:
        name = data.get("name")
        if not isinstance(name, str) or not name.strip():
            errors["name"] = (
                "This field is required." if name is None else "Must be a non-empty string."
            )
        elif len(name.strip()) > List.NAME_MAX_LENGTH:
            errors["name"] = f"Must be at most {List.NAME_MAX_LENGTH} characters."
        else:
            clean["name"] = name.strip()
    if "description" in data:
        description = data["description"]
        if description is not None and not isinstance(description, str):
            errors["description"] = "Must be a string or null."
        elif description is not None and len(description.strip()) > List.DESCRIPTION_MAX_LENGTH:
            errors["description"] = f"Must be at most {List.DESCRIPTION_MAX_LENGTH} characters."
        else:
            # An empty description is no description (prospiq shows null).
            clean["description"] = (description or "").strip() or None
    if "color" in data:
        color = data["color"]
        if not isinstance(color, str) or color not in List.COLORS:
            errors["color"] = f"Must be one of: {', '.join(List.COLORS)}."
        else:
            clean["color"] = color
    if "is_pinned" in data:
        if not isinstance(data["is_pinned"], bool):
            errors["is_pinned"] = "Must be true or false."
        else:
            clean["is_pinned"] = data["is_pinned"]
    if errors:
        raise InvalidRequest(details=errors)
    return clean


def list_create(*, account: Account, sandbox: bool, fields: dict[str, Any]) -> List:
    created = List(account=account, sandbox=sandbox, **fields)
    created.save(force_insert=True)
    return created


def list_update(*, list_obj: List, fields: dict[str, Any]) -> List:
    """Change the given fields (and ``updated_at``); ``contact_count`` is never written here,
    so a concurrent add's count survives."""
    for name, value in fields.items():
        setattr(list_obj, name, value)
    list_obj.save(update_fields=[*fields, "updated_at"])
    return list_obj


def list_delete(*, list_obj: List) -> None:
    """The list and its entries (one DELETE each); the contacts stay."""
    list_obj.delete()


# --- Entries ------------------------------------------------------------------------------------


def added_to_list_data(*, list_obj: List, contact: Contact, added_at: Any) -> dict[str, Any]:
    """``contact.added_to_list``'s data: prospiq's fields (``list_id``, ``list_name``,
    ``contact_email``, ``contact_name``, ``company``, ``job_title``) with Sluice's ids
    (``enrichment_id`` for prospiq's ``search_id``, ``bulk_id``), the contact's ``status``
    and ``custom``. A contact added as it is created is still pending: no email, no title."""
    result = contact.result or {}
    return {
        "list_id": str(list_obj.pk),
        "list_name": list_obj.name,
        "enrichment_id": str(contact.pk),
        "status": contact.status,
        "contact_email": result.get("email"),
        "contact_name": f"{contact.first_name} {contact.last_name}".strip(),
        "company": contact.company_name or contact.domain or None,
        "job_title": result.get("job_title"),
        "bulk_id": str(contact.bulk_id) if contact.bulk_id else None,
        "custom": contact.custom,
        "added_at": iso(added_at),
    }


def contacts_add_to_list(*, list_obj: List, contacts: Sequence[Contact]) -> int:
    """Add ``contacts`` (the list's account and mode, the caller's responsibility) to
    ``list_obj``, skipping those already there; bump its ``contact_count`` and
    ``updated_at`` and emit one ``contact.added_to_list`` per contact added, all in one
    transaction (the caller's, when it has one) and a constant number of queries. Returns
    how many were added. ``ListNotFound`` when the list was deleted meanwhile."""
    unique = list({c.pk: c for c in contacts}.values())
    if not unique:
        return 0
    with transaction.atomic():
        # The lock orders concurrent adds to one list: each sees the others' entries.
        locked = list(
            List.objects.select_for_update().filter(pk=list_obj.pk).values_list("name", flat=True)
        )
        if not locked:
            raise ListNotFound()
        list_obj.name = locked[0]
        present = set(
            ListEntry.objects.filter(
                list_id=list_obj.pk, contact_id__in=[c.pk for c in unique]
            ).values_list("contact_id", flat=True)
        )
        # In the caller's order (a bulk's request order): the lock, not an insert order,
        # is what keeps concurrent adders apart.
        new = [c for c in unique if c.pk not in present]
        if not new:
            return 0
        now = timezone.now()
        ListEntry.objects.bulk_create(
            [ListEntry(list_id=list_obj.pk, contact_id=c.pk, created_at=now) for c in new]
        )
        List.objects.filter(pk=list_obj.pk).update(
            contact_count=F("contact_count") + len(new), updated_at=now
        )
        events_emit(
            [
                EventDraft(
                    account_id=list_obj.account_id,
                    type=Event.CONTACT_ADDED_TO_LIST,
                    data=added_to_list_data(list_obj=list_obj, contact=c, added_at=now),
                    sandbox=list_obj.sandbox,
                )
                for c in new
            ]
        )
    list_obj.contact_count += len(new)
    list_obj.updated_at = now
    return len(new)


def contact_add_to_list(*, list_obj: List, enrichment_id: Any) -> ListEntry:
    """``POST /lists/{id}/contacts``: one contact of the list's account and mode;
    ``ContactNotFound`` (404) for any other, ``AlreadyInList`` (409) when it is there."""
    pk = _uuid(enrichment_id)
    contact = (
        Contact.objects.filter(
            account_id=list_obj.account_id, sandbox=list_obj.sandbox, pk=pk
        ).first()
        if pk
        else None
    )
    if contact is None:
        raise ContactNotFound()
    with transaction.atomic():
        if not contacts_add_to_list(list_obj=list_obj, contacts=[contact]):
            raise AlreadyInList(details={"enrichment_id": str(contact.pk)})
        return ListEntry.objects.get(list_id=list_obj.pk, contact_id=contact.pk)


def contact_remove_from_list(*, list_obj: List, enrichment_id: Any) -> None:
    """``DELETE /lists/{id}/contacts/{enrichment_id}``; ``NotInList`` (404) when it is not
    there (an unknown or another account's id included)."""
    pk = _uuid(enrichment_id)
    if pk is None:
        raise NotInList()
    with transaction.atomic():
        deleted, _ = ListEntry.objects.filter(list_id=list_obj.pk, contact_id=pk).delete()
        if not deleted:
            raise NotInList()
        List.objects.filter(pk=list_obj.pk).update(
            contact_count=F("contact_count") - deleted, updated_at=timezone.now()
        )
