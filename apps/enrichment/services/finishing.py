"""Finishing contacts: store the result, charge, record attempts, count, emit events."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from apps.accounts.notices import charges_crossed
from apps.accounts.services import credits_settle
from apps.core.db import sql_column, sql_table
from apps.core.outages import db_retry
from apps.webhooks.models import Event
from apps.webhooks.services import EventDraft, events_emit

from .. import selectors
from ..models import BulkJob, Contact, ProviderAttempt
from ..signals import bulk_completed
from ..waterfall import Outcome
from .waiting import notify_finished

logger = logging.getLogger(__name__)


def finish_batch(
    items: list[tuple[Contact, Outcome]], *, token: uuid.UUID | Mapping[Any, uuid.UUID] | None
) -> set[str]:
    """Finish a batch in one transaction, retried while the database is unreachable; if it
    fails otherwise, one by one so that one bad contact cannot keep the others from
    finishing (a failed one stays pending for the reaper). ``token``: the claim's, or each
    contact's claim's (a batch across claims). Returns the ids it finished."""
    if not items:
        return set()
    try:
        return db_retry(lambda: _contacts_finish(items=items, token=token), what="finish contacts")
    except Exception:
        if len(items) == 1:
            logger.exception("finish failed", extra={"enrichment_id": str(items[0][0].pk)})
            return set()
    return set().union(*(finish_batch([item], token=token) for item in items))


def _result_status(contact: Contact, outcome: Outcome, charged_ok: bool) -> str:
    """NO_CREDITS only when the balance really could not pay: a found kind whose charge the
    ledger refused (after this contact's hold went back), or a kind skipped because neither
    its hold nor the available balance could pay, after other work's holds were settled
    (``more_credits``), or because the contact's own ``max_credits`` could not."""
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


def _price(contact: Contact, outcome: Outcome) -> int:
    """What the contact is charged for what it found (sandbox contacts are free)."""
    return 0 if contact.sandbox else sum(settings.CREDIT_PRICES[k] for k in outcome.found_kinds)


def _settle(mine: list[tuple[Contact, Outcome]]) -> dict[Any, bool]:
    """Release what the live contacts hold and charge what they found, per account in a
    constant number of statements (``credits_settle``), the accounts' rows locked in id
    order; returns, per charged contact, whether the balance paid (False: NO_CREDITS).
    The hold turns into the charge: what was held pays, the rest is back."""
    per_account: dict[Any, list[tuple[Contact, Outcome]]] = {}
    for contact, outcome in mine:
        if not contact.sandbox:
            per_account.setdefault(contact.account_id, []).append((contact, outcome))
    paid: dict[Any, bool] = {}
    for account_id in sorted(per_account, key=str):
        items = per_account[account_id]
        charges = [(c.pk, price) for c, o in items if (price := _price(c, o))]
        paid.update(
            credits_settle(
                account_id=account_id,
                contact_ids=[c.pk for c, _ in items],
                charges=charges,
                reason="enrichment",
            )
        )
    return paid


def contacts_finish(
    *,
    items: list[tuple[Contact, Outcome]],
    token: uuid.UUID | Mapping[Any, uuid.UUID] | None = None,
) -> int:
    """Store results, charge, record attempts, count and emit events, in one transaction.

    Exactly once per contact: the pending rows are locked (``FOR UPDATE``) and only those
    still pending are finished, so a second run of the same contact changes no row, charges
    nothing and emits nothing; the ledger's one-charge-per-contact index backs this up.
    With a claim's ``token`` (or a mapping of contact id to its claim's token), only the
    contacts that claim still owns are finished (the fence: one that another worker took
    over after our lease lapsed is theirs to finish).
    What the contacts hold is released in the same transaction, before their charges, so a
    hold becomes exactly its charge and never outlives the contact.
    Returns how many contacts this call finished.
    """
    return len(_contacts_finish(items=items, token=token))


def _contacts_finish(
    *, items: list[tuple[Contact, Outcome]], token: uuid.UUID | Mapping[Any, uuid.UUID] | None
) -> set[str]:
    by_id = {contact.pk: (contact, outcome) for contact, outcome in items}
    now = timezone.now()
    with transaction.atomic():
        rows = Contact.objects.select_for_update().filter(
            pk__in=list(by_id), status=Contact.PENDING
        )
        if isinstance(token, uuid.UUID):
            rows = rows.filter(lease_owner=token)
        owners = dict(rows.order_by("pk").values_list("pk", "lease_owner"))
        if token is not None and not isinstance(token, uuid.UUID):
            owners = {pk: owner for pk, owner in owners.items() if owner == token.get(pk)}
        pending = set(owners)
        if not pending:
            return set()
        mine = [by_id[pk] for pk in by_id if pk in pending]
        # Every hold on these contacts (any claim's: this one owns them now) goes back in this
        # transaction, and the charges take what was used: charge once, never below 0.
        paid = _settle(mine)
        for contact, outcome in mine:
            status = _result_status(contact, outcome, charged_ok=paid.get(contact.pk, True))
            contact.status = Contact.FINISHED
            contact.finished_at = now
            contact.lease_expires_at = None
            contact.updated_at = now
            contact.result_status = status
            contact.result = _result_body(status, outcome)
            contact.credits_charged = (
                sum(settings.CREDIT_PRICES[k] for k in outcome.found_kinds)
                if status == Contact.VERIFIED and not contact.sandbox
                else 0
            )
        _rows_finish([contact for contact, _ in mine], now=now)
        attempts: dict[Any, list[ProviderAttempt]] = {
            contact.pk: [
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
            for contact, outcome in mine
        }
        ProviderAttempt.objects.bulk_create([a for rows in attempts.values() for a in rows])
        for contact, _ in mine:
            # What the event payload reads as contact.attempts.all(): spares a query each.
            contact._prefetched_objects_cache = {"attempts": attempts[contact.pk]}
        # The batch's events in a constant number of queries (after every charge above), and
        # before the bulk counters: a bulk.completed emitted there is the bulk's last event.
        events_emit(finished_events([contact for contact, _ in mine]))
        # Web processes waiting on these (POST /enrich/sync) hear of it on commit.
        notify_finished(contact.pk for contact, _ in mine)
        per_bulk: dict[Any, list[Contact]] = {}
        for contact, _ in mine:
            if contact.bulk_id:
                per_bulk.setdefault(contact.bulk_id, []).append(contact)
        for bulk_id, finished_contacts in per_bulk.items():
            bulk_count_finished_many(bulk_id=bulk_id, contacts=finished_contacts)
    return {str(contact.pk) for contact, _ in mine}


def _rows_finish(contacts: list[Contact], *, now: datetime) -> None:
    """Store the finished contacts' results: on PostgreSQL one UPDATE from arrays (unnest),
    a constant statement whatever the batch's size (``bulk_update`` would build a CASE per
    column per row); elsewhere (embedded SQLite) one UPDATE per row."""
    if connection.vendor != "postgresql":
        for contact in contacts:
            Contact.objects.filter(pk=contact.pk).update(
                status=Contact.FINISHED,
                finished_at=now,
                lease_expires_at=None,
                result_status=contact.result_status,
                result=contact.result,
                credits_charged=contact.credits_charged,
                updated_at=now,
            )
        return
    columns = [
        [c.pk for c in contacts],
        [c.result_status for c in contacts],
        [json.dumps(c.result) for c in contacts],
        [c.credits_charged for c in contacts],
    ]
    with connection.cursor() as cursor:
        cursor.execute(_rows_finish_sql(), [Contact.FINISHED, now, now, *columns])


@cache
def _rows_finish_sql() -> str:
    table = sql_table(Contact)
    names = ("id", "status", "finished_at", "lease_expires_at", "updated_at", "result_status")
    column = {name: sql_column(Contact, name) for name in (*names, "result", "credits_charged")}
    return f"""
        UPDATE {table} AS c SET
            {column["status"]} = %s,
            {column["finished_at"]} = %s,
            {column["lease_expires_at"]} = NULL,
            {column["updated_at"]} = %s,
            {column["result_status"]} = v.result_status,
            {column["result"]} = v.result::jsonb,
            {column["credits_charged"]} = v.credits_charged
        FROM unnest(%s::uuid[], %s::varchar[], %s::text[], %s::integer[])
            AS v(id, result_status, result, credits_charged)
        WHERE c.{column["id"]} = v.id
    """  # noqa: S608 - the names come from model metadata


def finished_events(contacts: Sequence[Contact]) -> list[EventDraft]:
    """Per contact ``contact.enriched`` (also to its ``webhook_url``), ``contact.verified``,
    and the credit events its charge crossed into (one ledger read for the batch). Only live
    contacts are charged, so credit events are live events."""
    crossed = charges_crossed(c.pk for c in contacts if c.credits_charged and not c.sandbox)
    drafts = []
    for contact in contacts:
        data = selectors.contact_data(contact)
        common = {"account_id": contact.account_id, "data": data, "sandbox": contact.sandbox}
        drafts.append(
            EventDraft(
                type=Event.CONTACT_ENRICHED,
                target_urls=(contact.webhook_url,),
                target_format=contact.webhook_format,
                **common,
            )
        )
        if contact.result_status == Contact.VERIFIED:
            drafts.append(EventDraft(type=Event.CONTACT_VERIFIED, **common))
        drafts += [EventDraft.credits(notice) for notice in crossed.get(contact.pk, [])]
    return drafts


def bulk_completed_event(bulk: BulkJob) -> EventDraft:
    """``bulk.completed``, also to the bulk's ``webhook_url``; emitted once per bulk."""
    return EventDraft(
        account_id=bulk.account_id,
        type=Event.BULK_COMPLETED,
        data=selectors.bulk_data(bulk),
        sandbox=bulk.sandbox,
        target_urls=(bulk.webhook_url,),
        target_format=bulk.webhook_format,
    )


_COUNTER = {
    Contact.VERIFIED: "verified",
    Contact.NOT_FOUND: "not_found",
    Contact.NO_CREDITS: "no_credits",
    Contact.FAILED: "failed",
}


def bulk_count_finished_many(*, bulk_id: Any, contacts: list[Contact]) -> None:
    """Bump the bulk's counters for several finished contacts in one UPDATE."""
    _bulk_count(
        bulk_id=bulk_id,
        statuses=[c.result_status for c in contacts],
        credits=sum(c.credits_charged for c in contacts),
    )


def _bulk_count(*, bulk_id: Any, statuses: list[str], credits: int) -> None:
    """The call that completes the bulk emits ``bulk.completed``, once."""
    increments: dict[str, Any] = {}
    for status in set(statuses):
        column = _COUNTER[status]
        increments[column] = F(column) + statuses.count(status)
    BulkJob.objects.filter(pk=bulk_id).update(
        finished=F("finished") + len(statuses),
        credits_used=F("credits_used") + credits,
        **increments,
    )
    completed = BulkJob.objects.filter(
        pk=bulk_id, completed_at__isnull=True, finished__gte=F("total")
    ).update(completed_at=timezone.now())
    if completed:
        bulk = BulkJob.objects.get(pk=bulk_id)
        # A receiver that owns the bulk (an import) announces it its own way instead.
        answers = [drafts for _, drafts in bulk_completed.send(sender=BulkJob, bulk=bulk)]
        if any(drafts is not None for drafts in answers):
            events_emit([draft for drafts in answers if drafts for draft in drafts])
        else:
            events_emit([bulk_completed_event(bulk)])


def bulk_close(*, bulk_id: Any, total: int) -> None:
    """Lower a bulk's ``total`` to the contacts it really got (an import that failed
    half-way: ``intake.bulk_open``); it completes now if they have all finished, else as
    usual when the last one does."""
    BulkJob.objects.filter(pk=bulk_id, completed_at__isnull=True).update(total=total)
    _bulk_count(bulk_id=bulk_id, statuses=[], credits=0)
