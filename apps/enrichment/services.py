"""Writes for enrichment: accepting contacts, running their waterfall, finishing them."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.accounts.models import Account, ApiKey
from apps.accounts.services import AlreadyCharged, credits_charge
from apps.core.errors import InsufficientCredits
from apps.providers import registry
from apps.webhooks import services as webhook_services

from .models import BulkJob, Contact, ProviderAttempt
from .validation import CleanBulk, CleanContact
from .waterfall import CreditBudget, Outcome, waterfall_run

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
    """Run the waterfall for each claimable contact; returns how many this call finished.

    Provider calls are network-bound, so the chunk's waterfalls run in a pool of
    ``ENRICHMENT_CONCURRENCY`` threads while this thread finishes each contact as soon as
    its waterfall ends (one short transaction each, on this thread's connection). What the
    waterfalls need from the database is loaded here in a few batched queries.
    """
    claimed = contacts_claim(contact_ids=contact_ids)
    if not claimed:
        return 0
    contacts = list(Contact.objects.select_related("account").filter(pk__in=claimed))
    plan = registry.Plan.load()
    reusable = _reusable_results(contacts)
    budgets = {c.account_id: CreditBudget(c.account.credits) for c in contacts if not c.sandbox}

    def waterfall(contact: Contact) -> Outcome:
        return waterfall_run(
            contact,
            plan=plan,
            budget=budgets.get(contact.account_id),
            reuse=reusable.get((contact.account_id, contact.person_key)),
        )

    def in_thread(contact: Contact) -> Outcome:
        try:
            return waterfall(contact)
        finally:
            # The breaker's cache may be the database (embedded mode): never leak a
            # connection per pool thread.
            if connection.connection is not None:
                connection.close()

    finished = 0
    workers = max(1, min(settings.ENRICHMENT_CONCURRENCY, len(contacts)))
    if workers == 1:
        # No pool, no extra connection: the waterfall runs on this thread.
        for contact in contacts:
            finished += _finish_safely(contact, lambda c=contact: waterfall(c))
        return finished
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="waterfall") as pool:
        futures = {pool.submit(in_thread, contact): contact for contact in contacts}
        for future in as_completed(futures):
            finished += _finish_safely(futures[future], future.result)
    return finished


def _finish_safely(contact: Contact, outcome_of: Any) -> int:
    """Finish one contact; a crash leaves it pending (its lease expires, the reaper retries)
    instead of failing the whole chunk."""
    try:
        return contact_finish(contact=contact, outcome=outcome_of())
    except Exception:
        logger.exception("waterfall failed", extra={"enrichment_id": str(contact.pk)})
        return 0


def _reusable_results(contacts: list[Contact]) -> dict[tuple[Any, str], dict[str, Any]]:
    """Newest VERIFIED live result per (account, person) within the reuse TTL, one query."""
    wanted = {(c.account_id, c.person_key) for c in contacts if not c.sandbox and c.person_key}
    ttl = settings.PROVIDER_RESULT_REUSE_TTL_SECONDS
    if not wanted or ttl <= 0:
        return {}
    rows = (
        Contact.objects.filter(
            account_id__in={a for a, _ in wanted},
            person_key__in={k for _, k in wanted},
            result_status=Contact.VERIFIED,
            sandbox=False,
            finished_at__gte=timezone.now() - timedelta(seconds=ttl),
        )
        .order_by("-finished_at")
        .values_list("account_id", "person_key", "result")
    )
    found: dict[tuple[Any, str], dict[str, Any]] = {}
    for account_id, key, result in rows:
        if (account_id, key) in wanted and isinstance(result, dict):
            found.setdefault((account_id, key), result)
    return found


def _result_status(contact: Contact, outcome: Outcome, charged_ok: bool) -> str:
    if outcome.found_kinds:
        return Contact.VERIFIED if charged_ok else Contact.NO_CREDITS
    if outcome.unaffordable:
        return Contact.NO_CREDITS
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

    The pending -> finished flip is a conditional UPDATE that also writes the result: a
    second run of the same contact changes no row and so charges nothing and emits nothing.
    Returns 1 if this call finished it.
    """
    price = 0 if contact.sandbox else sum(settings.CREDIT_PRICES[k] for k in outcome.found_kinds)
    now = timezone.now()
    # Written with the flip as if the charge succeeds; corrected below if it does not.
    status = _result_status(contact, outcome, charged_ok=True)
    result = _result_body(status, outcome)
    with transaction.atomic():
        flipped = Contact.objects.filter(pk=contact.pk, status=Contact.PENDING).update(
            status=Contact.FINISHED,
            finished_at=now,
            lease_expires_at=None,
            result=result,
            result_status=status,
            credits_charged=price if status == Contact.VERIFIED else 0,
        )
        if not flipped:
            return 0
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
            if not charged_ok:
                # Credits ran out (another chunk spent them first): no data, no charge.
                status = _result_status(contact, outcome, charged_ok=False)
                result = _result_body(status, outcome)
                Contact.objects.filter(pk=contact.pk).update(
                    result=result, result_status=status, credits_charged=0
                )
        contact.status = Contact.FINISHED
        contact.finished_at = now
        contact.result_status = status
        contact.result = result
        contact.credits_charged = price if status == Contact.VERIFIED else 0
        contact.lease_expires_at = None
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
