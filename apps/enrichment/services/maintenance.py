"""Maintenance of contacts: re-publish what nobody runs, give up on what keeps dying, and an
operator's release."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.accounts.services import credits_release
from apps.core.metrics import broker_queue_depths

from ..models import Contact, ProviderAttempt
from ..waterfall import AttemptRecord, Outcome
from .finishing import contacts_finish
from .publishing import contacts_publish

logger = logging.getLogger(__name__)


def contacts_reap() -> int:
    """Publish again the pending contacts that nobody is running and nobody will.

    Two kinds: contacts whose lease lapsed (claimed by a worker that died, or whose run
    crashed), published at once; and contacts never claimed whose message seems lost (no
    lease, last published more than ``ENRICHMENT_STUCK_AFTER_SECONDS`` ago, or one lease
    period ago while the queue is empty (``_lost_after``): a worker that died between taking
    the message and claiming, a broker that lost its data, a publish that failed). A contact
    whose runs keep dying is finished as FAILED after ``ENRICHMENT_MAX_RUNS`` runs instead of
    looping forever. What a lapsed lease's run held is released here (or by the next claim,
    whichever comes first), so a dead run's hold lasts no longer than its lease. Returns how
    many contacts it published or gave up on; at most 5,000 a run, oldest first.
    """
    now = timezone.now()
    lost_before = now - timedelta(seconds=_lost_after("enrichment"))
    never_republished = Q(published_at__isnull=True, created_at__lt=lost_before)
    with transaction.atomic():
        rows = list(
            Contact.objects.select_for_update(skip_locked=True)
            .filter(status=Contact.PENDING)
            .filter(
                Q(lease_expires_at__lt=now)
                | Q(lease_expires_at__isnull=True)
                & (never_republished | Q(published_at__lt=lost_before))
            )
            .order_by("created_at")
            .values_list("pk", "run_count", "lease_expires_at", "account_id", "sandbox")[:5000]
        )
        if not rows:
            return 0
        max_runs = settings.ENRICHMENT_MAX_RUNS
        give_up = {pk for pk, runs, lease, _, _ in rows if lease is not None and runs >= max_runs}
        again = [str(pk) for pk, *_ in rows if pk not in give_up]
        orphaned = sum(1 for _, _, lease, _, _ in rows if lease is not None)
        # A lapsed lease's run is dead (or fenced off): what it held goes back now.
        lapsed: dict[Any, list[Any]] = {}
        for pk, _, lease, account_id, sandbox in rows:
            if lease is not None and not sandbox and pk not in give_up:
                lapsed.setdefault(account_id, []).append(pk)
        for account_id, ids in lapsed.items():
            credits_release(account_id=account_id, contact_ids=ids)
        if again:
            # The owner goes too: the old holder's renewals and finish no longer match (fence).
            Contact.objects.filter(pk__in=again).update(
                lease_expires_at=None, lease_owner=None, published_at=now
            )
        if give_up:
            _contacts_give_up(list(give_up))
    if again:
        contacts_publish(again)  # committed: a worker that claims them finds them free
    logger.warning(
        "re-publishing contacts",
        extra={"count": len(again), "orphaned": orphaned, "failed": len(give_up)},
    )
    return len(rows)


def _lost_after(queue: str) -> float:
    """Seconds after its publish that an unclaimed contact's message counts as lost.

    While the queue is empty, one lease period: no live worker holds a message unstarted
    that long (a worker takes no more messages than it has threads, and claims at once), so
    the message was taken by a worker that died before its claim, or dropped with a broker
    connection. Otherwise (a backlog, or a broker we cannot see into) the stuck period, so
    that a deep but healthy queue is not flooded with duplicates.
    """
    try:
        depths = broker_queue_depths()
    except Exception:  # the broker is away: nothing can be published anyway
        depths = None
    if depths is not None and depths.get(queue) == 0:
        return min(settings.ENRICHMENT_LEASE_SECONDS, settings.ENRICHMENT_STUCK_AFTER_SECONDS)
    return settings.ENRICHMENT_STUCK_AFTER_SECONDS


def _contacts_give_up(contact_ids: list[Any]) -> None:
    runs = settings.ENRICHMENT_MAX_RUNS
    outcome = Outcome(
        attempts=[AttemptRecord("", "", ProviderAttempt.ERROR, error=f"gave up after {runs} runs")]
    )
    contacts = list(Contact.objects.select_related("account").filter(pk__in=contact_ids))
    contacts_finish(items=[(c, outcome) for c in contacts])


def contacts_release(*, contact_ids: list[Any]) -> tuple[list[str], int]:
    """Publish these pending contacts again now (an operator's action).

    Contacts held by a live lease (a worker is running them right now) are left alone, so no
    contact ever runs in two workers at once; a lapsed lease is cleared. Returns the ids
    published and how many were skipped because a live worker holds them.
    """
    now = timezone.now()
    with transaction.atomic():
        rows = list(
            Contact.objects.select_for_update()
            .filter(pk__in=list(contact_ids), status=Contact.PENDING)
            .values_list("pk", "lease_expires_at")
        )
        free = [str(pk) for pk, lease in rows if lease is None or lease < now]
        if free:
            Contact.objects.filter(pk__in=free).update(
                lease_expires_at=None, lease_owner=None, published_at=now
            )
            transaction.on_commit(lambda: contacts_publish(free))
    return free, len(rows) - len(free)
