"""Intake: store accepted contacts and publish their waterfall once committed."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from apps.accounts.keycache import CachedKeyRefused, key_accepts_work_params, key_accepts_work_sql
from apps.accounts.models import Account, ApiKey
from apps.core.db import insert_one
from apps.core.errors import InsufficientCredits

from .. import selectors
from ..models import BulkJob, Contact, List, ProviderAttempt
from ..validation import CleanBulk, CleanContact
from .lists import contacts_add_to_list
from .publishing import coalescer, contacts_publish
from .waiting import contact_wait, contacts_wait, wait_slots


def _ensure_credits(*, account: Account, api_key: ApiKey) -> None:
    if not api_key.sandbox and account.credits <= 0:
        raise InsufficientCredits()


def _contact_row(
    *, account: Account, api_key: ApiKey, clean: CleanContact, **extra: Any
) -> Contact:
    return Contact(
        account=account,
        api_key=api_key,
        sandbox=api_key.sandbox,
        first_name=clean.first_name,
        last_name=clean.last_name,
        company_name=clean.company_name,
        domain=clean.domain,
        linkedin_url=clean.linkedin_url,
        enrichment_type=clean.enrichment_type,
        phone_country_codes=clean.phone_country_codes or list(account.default_phone_country_codes),
        webhook_url=clean.webhook_url,
        webhook_format=clean.webhook_format,
        custom=clean.custom,
        max_credits=clean.max_credits,
        person_key=clean.person_key,
        **extra,
    )


def _contact_insert(contact: Contact, *, api_key: ApiKey) -> None:
    if not insert_one(
        contact, where=key_accepts_work_sql(), params=key_accepts_work_params(api_key)
    ):
        raise CachedKeyRefused()


def contact_enqueue(
    *,
    account: Account,
    api_key: ApiKey,
    clean: CleanContact,
    list_obj: List | None = None,
    linger: bool = True,
) -> Contact:
    """Store one contact and publish its waterfall once the row is committed.

    ``api_key`` may come from a web process's key cache (``apps.accounts.keycache``), so the
    INSERT itself re-checks that the key may submit work (not revoked, plan with API access,
    credits for a live key): check and write are one statement, and a key that lost any of
    them a moment ago gets ``CachedKeyRefused`` instead of a row. A single INSERT commits on
    its own; on_commit still defers the publish when a caller has opened a transaction
    around us. ``linger=False`` publishes at once, without waiting for other requests'
    contacts to share the message (a synchronous request waits for this one).

    With ``list_obj`` (the account's list in the key's mode, ``lists.list_for_account``) the
    contact is added to it in the same transaction as its INSERT.
    """
    _ensure_credits(account=account, api_key=api_key)
    contact = _contact_row(account=account, api_key=api_key, clean=clean)
    if list_obj is None:
        _contact_insert(contact, api_key=api_key)
    else:
        with transaction.atomic():
            _contact_insert(contact, api_key=api_key)
            contacts_add_to_list(list_obj=list_obj, contacts=[contact])
    ids = [str(contact.id)]
    # Coalesced with other requests' contacts into one message (publishing.py).
    transaction.on_commit(lambda: coalescer.add(ids, linger=linger))
    return contact


def bulk_enqueue(
    *, account: Account, api_key: ApiKey, clean: CleanBulk, list_obj: List | None = None
) -> tuple[BulkJob, list[Contact]]:
    """Store a batch with two INSERTs and publish it in one message after commit; with
    ``list_obj``, every contact is added to that list in the same transaction (a constant
    number of queries more, ``lists.contacts_add_to_list``)."""
    _ensure_credits(account=account, api_key=api_key)
    for contact in clean.contacts:  # a dialect's format applies to the batch's contacts too
        contact.webhook_format = contact.webhook_format or clean.webhook_format
    with transaction.atomic():
        bulk = BulkJob(
            account=account,
            api_key=api_key,
            sandbox=api_key.sandbox,
            total=len(clean.contacts),
            enrichment_type=clean.enrichment_type,
            webhook_url=clean.webhook_url,
            webhook_format=clean.webhook_format,
        )
        bulk.save(force_insert=True)
        contacts = Contact.objects.bulk_create(
            [
                _contact_row(account=account, api_key=api_key, clean=c, bulk=bulk, position=i)
                for i, c in enumerate(clean.contacts)
            ]
        )
        if list_obj is not None:
            contacts_add_to_list(list_obj=list_obj, contacts=contacts)
        ids = [str(c.id) for c in contacts]
        transaction.on_commit(lambda: contacts_publish(ids))
    return bulk, contacts


def contact_enrich_sync(
    *,
    account: Account,
    api_key: ApiKey,
    clean: CleanContact,
    timeout: float,
    list_obj: List | None = None,
) -> tuple[Contact, list[ProviderAttempt] | None]:
    """Store one contact as ``contact_enqueue`` does, then wait up to ``timeout`` seconds for
    an enrichment worker to finish it (the waterfall never runs in the web process).

    Returns the contact and, when it finished in time, its attempts (the contact then as
    read finished: the answer is ``selectors.contact_data(contact, attempts=…)``); None when
    it did not. When this process already holds ``ENRICH_SYNC_MAX_WAITS`` waiting requests,
    it does not wait at all: the caller answers as the asynchronous path does, and the
    contact finishes as usual.
    """
    with wait_slots.slot() as free:
        # Published at once: the ``ENRICHMENT_PUBLISH_LINGER_MS`` batching saves web CPU
        # under async load, but here it would be added to the answer's latency.
        contact = contact_enqueue(
            account=account, api_key=api_key, clean=clean, list_obj=list_obj, linger=False
        )
        if not free:
            return contact, None
        pk = contact.pk
        looked: list[bool] = []
        answer: list[tuple[Contact, list[ProviderAttempt]]] = []

        def finished() -> bool:
            # Before waiting it has hardly ever finished: a cheap look. Once woken, the read
            # that sees it finished is the answer's.
            if not looked:
                looked.append(True)
                if not selectors.contact_has_finished(pk):
                    return False
            found = selectors.contact_if_finished(pk)
            if found is not None:
                answer.append(found)
            return found is not None

        if contact_wait(pk, timeout=timeout, finished=finished):
            return answer[-1]
        return contact, None


def bulk_enrich_sync(
    *, account: Account, api_key: ApiKey, clean: CleanBulk, timeout: float
) -> tuple[BulkJob, list[Contact], bool]:
    """Store a batch as ``bulk_enqueue`` does, then wait up to ``timeout`` seconds for every
    contact of it to finish (one wait slot, as for one contact). Returns the bulk, its
    contacts (as stored, not refreshed) and whether all finished in time."""
    with wait_slots.slot() as free:
        bulk, contacts = bulk_enqueue(account=account, api_key=api_key, clean=clean)
        if not free:
            return bulk, contacts, False
        pk = bulk.pk
        finished = contacts_wait(
            [c.pk for c in contacts],
            timeout=timeout,
            done=lambda: not Contact.objects.filter(bulk_id=pk, status=Contact.PENDING).exists(),
        )
        return bulk, contacts, finished


def bulk_open(
    *,
    account: Account,
    api_key: ApiKey | None,
    sandbox: bool,
    total: int,
    enrichment_type: list[str],
    webhook_url: str = "",
) -> BulkJob:
    """A bulk whose ``total`` contacts arrive later, in chunks (``bulk_append``): an import's.

    It cannot complete early: completion needs ``finished >= total``, and ``total`` counts
    every contact still to come. Credits are the caller's to check (``ensure_credits``).
    """
    bulk = BulkJob(
        account=account,
        api_key=api_key,
        sandbox=sandbox,
        total=total,
        enrichment_type=enrichment_type,
        webhook_url=webhook_url,
    )
    bulk.save(force_insert=True)
    return bulk


def bulk_append(
    *,
    bulk: BulkJob,
    account: Account,
    api_key: ApiKey,
    contacts: list[tuple[int, CleanContact]],
    list_obj: List | None = None,
    batch_size: int = 1000,
) -> list[Contact]:
    """Store a chunk of ``(position, contact)`` in ``bulk`` and publish it after commit; with
    ``list_obj``, add them to that list in the same transaction (as ``bulk_enqueue``).

    One INSERT per ``batch_size`` contacts (PostgreSQL binds at most 65,535 values per
    statement); run it inside the caller's transaction, which also records how far it got.
    """
    rows = Contact.objects.bulk_create(
        [
            _contact_row(account=account, api_key=api_key, clean=c, bulk=bulk, position=p)
            for p, c in contacts
        ],
        batch_size=batch_size,
    )
    if list_obj is not None:
        contacts_add_to_list(list_obj=list_obj, contacts=rows)
    ids = [str(c.id) for c in rows]
    transaction.on_commit(lambda: contacts_publish(ids))
    return rows


def ensure_credits(*, account: Account, api_key: ApiKey) -> None:
    """402 for a live key of an account without credits, as a bulk's intake refuses it."""
    _ensure_credits(account=account, api_key=api_key)
