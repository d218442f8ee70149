"""Running contacts: claim a chunk, run each waterfall in the process-wide pool, finish
them in batches as they end."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.core.outages import db_retry
from apps.providers import registry

from ..models import Contact
from ..waterfall import CreditBudget, Outcome, waterfall_run
from .finishing import finish_batch
from .holds import (
    CREDIT_POLL_SECONDS,
    CREDIT_WAIT_SECONDS,
    CreditAsk,
    contacts_hold,
    credit_asks_serve,
    holds_release,
    kind_prices,
    max_price,
)
from .leases import LeaseLost, contact_leases

logger = logging.getLogger(__name__)


def contacts_claim(
    *, contact_ids: list[str], token: uuid.UUID | None = None
) -> tuple[uuid.UUID, list[str]]:
    """Take a lease on the pending contacts among ``contact_ids`` that nobody else holds.

    Returns the claim's token and the claimed ids. A lease keeps two workers from running
    one contact at once; it is short and renewed while the work runs (``contact_leases``),
    so a killed worker's contacts are free again within one lease period. Given a ``token``,
    rows it already holds count as free: a retry after a lost COMMIT reply gets them back.
    """
    token = token or contact_leases.new_token()
    now = timezone.now()
    with transaction.atomic():
        free = (
            Contact.objects.select_for_update(skip_locked=True)
            .filter(pk__in=contact_ids, status=Contact.PENDING)
            .filter(
                Q(lease_expires_at__isnull=True)
                | Q(lease_expires_at__lt=now)
                | Q(lease_owner=token)
            )
        )
        claimed = [str(pk) for pk in free.values_list("pk", flat=True)]
        if claimed:
            Contact.objects.filter(pk__in=claimed).update(
                lease_expires_at=contact_leases.expiry(),
                lease_owner=token,
                run_count=F("run_count") + 1,
            )
    return token, claimed


def contacts_run(*, contact_ids: list[str]) -> int:
    """Run the waterfall for each claimable contact; returns how many this call finished.

    Provider calls are network-bound, so the chunk's waterfalls go to the process-wide
    waterfall pool (``ENRICHMENT_CONCURRENCY`` threads shared by every task of the worker
    process; no database work there beyond the breaker's cache) while this thread finishes
    contacts as their waterfalls end, a batch of whatever is ready at a time in one
    transaction (``contacts_finish``). Finishing is serialised per account by the ledger's
    row lock anyway, so fewer, larger transactions go faster than many threads queueing for
    that lock; and because the pool is shared, one task's claiming and finishing overlap
    with the provider calls of the others. What the waterfalls need from the database is
    loaded here in a few batched queries.

    From the claim to the finish the process renews the chunk's leases; a waterfall stops
    (``LeaseLost``) when the lease may have lapsed, and the finish is fenced by the claim's
    token, so a contact another worker took over is never finished, charged or announced
    twice. Claim, load and finish ride out a database outage (``db_retry``).

    Credits (live contacts): right after the claim, each contact's maximum price is *held*
    from the account's available balance (``credits_hold``: one conditional UPDATE per
    account, ledger rows), and its waterfall's ``CreditBudget`` is what it holds, so paid
    vendors are called only for held credits, whichever worker runs what. A contact that
    got nothing waits here, not in a pool thread, while other work holds credits that may
    come back; it ends NO_CREDITS only when the balance really cannot pay
    (``credit_asks_serve``). The finish turns the hold into the charge, releasing the rest.
    """
    since = time.monotonic()
    token = contact_leases.new_token()  # one for every try: a retry finds its own claim
    token, claimed = db_retry(
        lambda: contacts_claim(contact_ids=contact_ids, token=token), what="claim contacts"
    )
    if not claimed:
        return 0
    contact_leases.hold(token, claimed, since=since)
    try:
        return _run_claimed(token, claimed)
    finally:
        contact_leases.release(token)


def _run_claimed(token: uuid.UUID, claimed: list[str]) -> int:
    def load() -> tuple[list[Contact], registry.Lineup, dict]:
        contacts = list(
            Contact.objects.select_related("account")
            .filter(pk__in=claimed)
            .order_by("created_at", "position", "pk")
        )
        return contacts, registry.Lineup.load(), _reusable_results(contacts)

    contacts, lineup, reusable = db_retry(load, what="load contacts")
    margin = settings.ENRICHMENT_LEASE_SECONDS / 2

    def still_ours() -> None:
        if contact_leases.remaining(token) < margin:
            raise LeaseLost()

    # Before any paid call: hold what each live contact may spend (credits_hold).
    held = db_retry(lambda: contacts_hold(token, contacts), what="hold credits")
    threaded = settings.ENRICHMENT_CONCURRENCY > 1
    done: queue.SimpleQueue[tuple[Contact, Outcome | None] | CreditAsk] = queue.SimpleQueue()

    def more_credits(contact: Contact, *, refused: bool = False) -> Any:
        # A short budget asks this thread, which does the chunk's database work, for more
        # (``credit_asks_serve``); the waterfall thread waits for the answer. ``refused``:
        # this thread has just refused the first kind's price, so the first ask is answered.
        first_refused = [True] if refused else []

        def more(amount: int, unused: int) -> bool:
            if first_refused:
                first_refused.clear()
                return False
            ask = CreditAsk(
                contact=contact,
                amount=amount,
                unused=unused,
                spent=budgets[contact.pk].spent,
                deadline=time.monotonic() + CREDIT_WAIT_SECONDS,
            )
            if threaded:
                done.put(ask)
                if not ask.answered.wait(timeout=CREDIT_WAIT_SECONDS + margin):
                    raise LeaseLost()
            else:
                waiting = [ask]
                while waiting := credit_asks_serve(waiting, token=token, still_ours=still_ours):
                    time.sleep(CREDIT_POLL_SECONDS)
            if ask.lost:
                raise LeaseLost()
            return ask.granted

        return more

    budgets = {
        c.pk: CreditBudget(held.get(c.pk, 0), more=more_credits(c))
        for c in contacts
        if not c.sandbox
    }
    # Fully held contacts first: a short one may wait for credits that other contacts hold,
    # and must not keep a pool thread those contacts are queued for.
    contacts.sort(key=lambda c: not c.sandbox and held.get(c.pk, 0) < max_price(c))

    def waterfall(contact: Contact) -> Outcome:
        return waterfall_run(
            contact,
            lineup=lineup,
            budget=budgets.get(contact.pk),
            reuse=reusable.get((contact.account_id, contact.person_key)),
            before_call=still_ours,
        )

    def finish(batch: list[tuple[Contact, Outcome | None]]) -> int:
        # A crashed or abandoned waterfall's contact is let go at once: its lease lapses and
        # the reaper runs it again (up to ENRICHMENT_MAX_RUNS). What this claim held for it
        # goes back now (only this claim's: another worker may hold it by now).
        abandoned = [c for c, o in batch if o is None]
        contact_leases.release(token, [c.pk for c in abandoned])
        try:
            holds_release(abandoned, token=token)
        except Exception:
            # The next claim (``replace``) or the reaper releases it instead.
            logger.exception("releasing held credits failed", extra={"count": len(abandoned)})
        finished = finish_batch([(c, o) for c, o in batch if o is not None], token=token)
        contact_leases.release(token, [c.pk for c, _ in batch])  # done: nothing to renew
        return finished

    if not threaded:
        # No threads: the waterfall and the finish both run here, one contact at a time.
        return sum(finish([(c, _outcome_or_none(c, waterfall))]) for c in contacts)

    def job(contact: Contact) -> None:
        outcome = None
        try:
            outcome = _outcome_or_none(contact, waterfall)
        finally:
            done.put((contact, outcome))  # always, or the finisher below would wait forever
            # The breaker's cache may be the database (embedded mode): never keep a
            # connection open in a pool thread between contacts.
            connection.close()

    pool = _waterfall_pool()
    waiting: list[CreditAsk] = []
    for contact in contacts:
        prices = [] if contact.sandbox else kind_prices(contact)
        if prices and not held.get(contact.pk):
            # Nothing held for it: it waits for its first kind's price here, not in a pool
            # thread that the contacts holding credits may be queued for.
            waiting.append(
                CreditAsk(
                    contact=contact,
                    amount=prices[0],
                    unused=0,
                    spent=0,
                    deadline=time.monotonic() + CREDIT_WAIT_SECONDS,
                    start=True,
                )
            )
        else:
            pool.submit(job, contact)

    def serve(asks: list[CreditAsk]) -> list[CreditAsk]:
        still = credit_asks_serve(asks, token=token, still_ours=still_ours)
        for ask in asks:
            if not ask.start or not ask.answered.is_set():
                continue
            if ask.lost:
                done.put((ask.contact, None))
                continue
            budgets[ask.contact.pk] = CreditBudget(
                ask.amount if ask.granted else 0,
                more=more_credits(ask.contact, refused=not ask.granted),
            )
            pool.submit(job, ask.contact)
        return still

    waiting = serve(waiting) if waiting else waiting
    finished = 0
    remaining = len(contacts)
    while remaining:
        items: list[Any] = []
        with contextlib.suppress(queue.Empty):
            # While budgets wait for credits, look again every CREDIT_POLL_SECONDS.
            items.append(done.get(timeout=CREDIT_POLL_SECONDS if waiting else None))
        while items and len(items) < FINISH_BATCH_MAX:
            try:
                items.append(done.get_nowait())
            except queue.Empty:
                break
        batch = [item for item in items if not isinstance(item, CreditAsk)]
        waiting += [item for item in items if isinstance(item, CreditAsk)]
        remaining -= len(batch)
        finished += finish(batch)
        if waiting:
            # After the finish: what it released may be what they wait for.
            waiting = serve(waiting)
    return finished


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


_pool_lock = threading.Lock()

_pool: tuple[int, ThreadPoolExecutor] | None = None


def _waterfall_pool() -> ThreadPoolExecutor:
    """The process-wide pool of waterfall threads, sized by ``ENRICHMENT_CONCURRENCY``.

    Created on first use, so each forked process gets its own; replaced (the old one lets
    its queued work finish) if the setting changes, as tests do.
    """
    global _pool
    size = settings.ENRICHMENT_CONCURRENCY
    with _pool_lock:
        if _pool is None or _pool[0] != size:
            if _pool is not None:
                _pool[1].shutdown(wait=False)
            _pool = (size, ThreadPoolExecutor(max_workers=size, thread_name_prefix="waterfall"))
        return _pool[1]


# Most contacts finished in one transaction: bounds how long the account's row lock is held.
FINISH_BATCH_MAX = 25


def _outcome_or_none(contact: Contact, waterfall: Any) -> Outcome | None:
    """The waterfall's outcome; None after a crash or a lost lease, which leaves the contact
    pending (its lease lapses and the reaper runs it again) instead of failing the chunk."""
    try:
        return waterfall(contact)
    except LeaseLost:
        logger.warning(
            "lease may have lapsed; leaving the contact to another worker",
            extra={"enrichment_id": str(contact.pk)},
        )
        return None
    except Exception:
        logger.exception("waterfall failed", extra={"enrichment_id": str(contact.pk)})
        return None
