"""Writes for enrichment: accepting contacts, running their waterfall, finishing them."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.accounts.models import Account, ApiKey
from apps.accounts.services import AlreadyCharged, credits_charge
from apps.core.errors import InsufficientCredits
from apps.webhooks import services as webhook_services

from .models import BulkJob, Contact, ProviderAttempt
from .validation import CleanBulk, CleanContact
from .waterfall import Outcome, waterfall_run

logger = logging.getLogger(__name__)


# --- Intake -----------------------------------------------------------------------------------


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
        custom=clean.custom,
        max_credits=clean.max_credits,
        person_key=clean.person_key,
        **extra,
    )


def contacts_publish(contact_ids: list[str]) -> None:
    """Publish the waterfall for these contacts: one message per chunk, never one per contact."""
    from . import tasks

    size = settings.ENRICHMENT_CHUNK_SIZE
    for start in range(0, len(contact_ids), size):
        tasks.run_contacts.apply_async(args=[contact_ids[start : start + size]])


def contact_enqueue(*, account: Account, api_key: ApiKey, clean: CleanContact) -> Contact:
    """Store one contact and publish its waterfall once the row is committed."""
    _ensure_credits(account=account, api_key=api_key)
    # A single INSERT commits on its own; an explicit transaction would add two round trips.
    # on_commit still defers the publish when a caller has opened a transaction around us.
    contact = _contact_row(account=account, api_key=api_key, clean=clean)
    contact.save(force_insert=True)
    ids = [str(contact.id)]
    transaction.on_commit(lambda: contacts_publish(ids))
    return contact


def bulk_enqueue(
    *, account: Account, api_key: ApiKey, clean: CleanBulk
) -> tuple[BulkJob, list[Contact]]:
    """Store a batch with two INSERTs and publish it in one message after commit."""
    _ensure_credits(account=account, api_key=api_key)
    with transaction.atomic():
        bulk = BulkJob(
            account=account,
            api_key=api_key,
            sandbox=api_key.sandbox,
            total=len(clean.contacts),
            enrichment_type=clean.enrichment_type,
            webhook_url=clean.webhook_url,
        )
        bulk.save(force_insert=True)
        contacts = Contact.objects.bulk_create(
            [
                _contact_row(account=account, api_key=api_key, clean=c, bulk=bulk, position=i)
                for i, c in enumerate(clean.contacts)
            ]
        )
        ids = [str(c.id) for c in contacts]
        transaction.on_commit(lambda: contacts_publish(ids))
    return bulk, contacts


# --- Running ----------------------------------------------------------------------------------


def contacts_claim(*, contact_ids: list[str]) -> list[str]:
    """Take a lease on the pending contacts among ``contact_ids`` that nobody else holds.

    A lease keeps two workers from running one contact at once; it expires so that a killed
    worker's contacts are picked up again by the reaper.
    """
    now = timezone.now()
    with transaction.atomic():
        free = (
            Contact.objects.select_for_update(skip_locked=True)
            .filter(pk__in=contact_ids, status=Contact.PENDING)
            .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
        )
        claimed = [str(pk) for pk in free.values_list("pk", flat=True)]
        if claimed:
            Contact.objects.filter(pk__in=claimed).update(
                lease_expires_at=now + timedelta(seconds=settings.ENRICHMENT_LEASE_SECONDS),
                run_count=F("run_count") + 1,
            )
    return claimed


def contacts_run(*, contact_ids: list[str]) -> int:
    """Run the waterfall for each claimable contact; returns how many this call finished."""
    claimed = contacts_claim(contact_ids=contact_ids)
    finished = 0
    for contact in Contact.objects.select_related("account").filter(pk__in=claimed):
        outcome = waterfall_run(contact)
        finished += contact_finish(contact=contact, outcome=outcome)
    return finished


def _result_status(contact: Contact, outcome: Outcome, charged_ok: bool) -> str:
    if outcome.found_kinds:
        return Contact.VERIFIED if charged_ok else Contact.NO_CREDITS
    if outcome.all_errored:
        return Contact.FAILED
    return Contact.NOT_FOUND


def _result_body(status: str, outcome: Outcome) -> dict[str, Any]:
    data = outcome.data if status == Contact.VERIFIED else {}
    return {
        "status": status,
        "email": data.get("email"),
        "email_status": data.get("email_status"),
        "personal_email": data.get("personal_email"),
        "phones": data.get("phones", []),
        "job_title": data.get("job_title"),
        "company_domain": data.get("company_domain"),
        "confidence": outcome.confidence if status == Contact.VERIFIED else None,
        "providers": outcome.providers if status == Contact.VERIFIED else {},
    }


def contact_finish(*, contact: Contact, outcome: Outcome) -> int:
    """Store the result, charge, count and emit events, all in one transaction, exactly once.

    The pending -> finished flip is a conditional UPDATE: a second run of the same contact
    changes no row and so charges nothing and emits nothing. Returns 1 if this call finished it.
    """
    price = 0 if contact.sandbox else sum(settings.CREDIT_PRICES[k] for k in outcome.found_kinds)
    now = timezone.now()
    with transaction.atomic():
        flipped = Contact.objects.filter(pk=contact.pk, status=Contact.PENDING).update(
            status=Contact.FINISHED, finished_at=now, lease_expires_at=None
        )
        if not flipped:
            return 0
        charged_ok = True
        if price:
            try:
                charged_ok = (
                    credits_charge(
                        account_id=contact.account_id,
                        contact_id=contact.pk,
                        amount=price,
                        reason="enrichment",
                    )
                    is not None
                )
            except AlreadyCharged:
                charged_ok = True
        status = _result_status(contact, outcome, charged_ok)
        contact.status = Contact.FINISHED
        contact.finished_at = now
        contact.result_status = status
        contact.result = _result_body(status, outcome)
        contact.credits_charged = price if status == Contact.VERIFIED else 0
        contact.lease_expires_at = None
        Contact.objects.filter(pk=contact.pk).update(
            result=contact.result, result_status=status, credits_charged=contact.credits_charged
        )
        ProviderAttempt.objects.bulk_create(
            [
                ProviderAttempt(
                    contact_id=contact.pk,
                    provider=a.provider,
                    kind=a.kind,
                    outcome=a.outcome,
                    duration_ms=a.duration_ms,
                    error=a.error,
                    position=i,
                )
                for i, a in enumerate(outcome.attempts)
            ]
        )
        if contact.bulk_id:
            bulk_count_finished(
                bulk_id=contact.bulk_id, result_status=status, credits=contact.credits_charged
            )
        webhook_services.contact_finished_emit(contact=contact)
    return 1


_COUNTER = {
    Contact.VERIFIED: "verified",
    Contact.NOT_FOUND: "not_found",
    Contact.NO_CREDITS: "no_credits",
    Contact.FAILED: "failed",
}


def bulk_count_finished(*, bulk_id: Any, result_status: str, credits: int) -> None:
    """Bump the bulk's counters; the call that completes it emits ``bulk.completed`` once."""
    BulkJob.objects.filter(pk=bulk_id).update(
        finished=F("finished") + 1,
        credits_used=F("credits_used") + credits,
        **{_COUNTER[result_status]: F(_COUNTER[result_status]) + 1},
    )
    completed = BulkJob.objects.filter(
        pk=bulk_id, completed_at__isnull=True, finished__gte=F("total")
    ).update(completed_at=timezone.now())
    if completed:
        webhook_services.bulk_completed_emit(bulk=BulkJob.objects.get(pk=bulk_id))


def contacts_reap() -> int:
    """Re-publish contacts stuck in ``pending`` past the timeout whose lease has lapsed."""
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.ENRICHMENT_STUCK_AFTER_SECONDS)
    stuck = list(
        Contact.objects.filter(status=Contact.PENDING, created_at__lt=cutoff)
        .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
        .order_by("created_at")
        .values_list("pk", flat=True)[:5000]
    )
    if stuck:
        logger.warning("re-publishing stuck contacts", extra={"count": len(stuck)})
        contacts_publish([str(pk) for pk in stuck])
    return len(stuck)
