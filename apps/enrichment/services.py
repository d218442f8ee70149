"""Writes for enrichment: accepting contacts, running their waterfall, finishing them."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.accounts.models import Account, ApiKey
from apps.accounts.selectors import key_accepts_work_params, key_accepts_work_sql
from apps.accounts.services import (
    AlreadyCharged,
    credits_charge,
    credits_hold,
    credits_release,
)
from apps.core.db import insert_one
from apps.core.errors import InsufficientCredits
from apps.core.leases import LeaseKeeper
from apps.core.metrics import broker_queue_depths
from apps.core.outages import db_retry
from apps.providers import registry
from apps.webhooks import services as webhook_services

from .models import BulkJob, Contact, ProviderAttempt
from .publisher import coalescer
from .validation import CleanBulk, CleanContact
from .waterfall import AttemptRecord, CreditBudget, Outcome, waterfall_run

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


# ``published_at`` of a committed contact whose message could not be published (the broker
# was down): the reaper's next run publishes it, without waiting for the stuck period.
PUBLISH_FAILED = datetime(1970, 1, 1, tzinfo=UTC)


def contacts_publish(contact_ids: list[str]) -> None:
    """Publish the waterfall for these contacts: one message per chunk, never one per contact.

    Never raises: called after commit, the rows are already accepted. When the broker is
    down, the first failed publish stops it (each one waits for the broker for about a
    second and a half) and the rest are marked for the reaper (``PUBLISH_FAILED``).
    """
    from . import tasks

    size = settings.ENRICHMENT_CHUNK_SIZE
    for start in range(0, len(contact_ids), size):
        chunk = contact_ids[start : start + size]
        try:
            # A given argsrepr spares Celery its saferepr of the ids (a sixth of the publish's
            # CPU); logs and monitors see the count, the ids are in the message body.
            tasks.run_contacts.apply_async(
                args=[chunk], argsrepr=f"[<{len(chunk)} contact ids>]", kwargsrepr="{}"
            )
        except Exception as exc:
            _contacts_publish_failed(contact_ids[start:], exc)
            return


def _contacts_publish_failed(contact_ids: list[str], exc: Exception) -> None:
    logger.error(
        "publishing contacts failed; the reaper publishes them when the broker is back",
        extra={"count": len(contact_ids), "error": str(exc)[:200]},
    )
    try:
        Contact.objects.filter(
            pk__in=contact_ids, status=Contact.PENDING, lease_expires_at__isnull=True
        ).update(published_at=PUBLISH_FAILED)
    except Exception:
        # The database is away too: the reaper still finds them after the stuck period.
        logger.exception("could not mark unpublished contacts", extra={"count": len(contact_ids)})


class IntakeRefused(Exception):
    """The row was not written: since the caller authenticated it, the key was revoked, its
    plan lost API access or (a live key) its account ran out of credits."""


def intake_check(*, account: Account, api_key: ApiKey) -> None:
    """402 when a live key's account has no credits (sandbox keys never need any)."""
    _ensure_credits(account=account, api_key=api_key)


def contact_enqueue(*, account: Account, api_key: ApiKey, clean: CleanContact) -> Contact:
    """Store one contact and publish its waterfall once the row is committed.

    ``api_key`` may come from a web process's cache (``api_key_cache`` views), so the
    INSERT itself re-checks that the key may submit work (not revoked, plan with API access,
    credits for a live key): check and write are one statement, and a key that lost any of
    them a moment ago gets ``IntakeRefused`` instead of a row. A
    single INSERT commits on its own; on_commit still defers the publish when a caller has
    opened a transaction around us.
    """
    _ensure_credits(account=account, api_key=api_key)
    contact = _contact_row(account=account, api_key=api_key, clean=clean)
    if not insert_one(
        contact, where=key_accepts_work_sql(), params=key_accepts_work_params(api_key)
    ):
        raise IntakeRefused()
    ids = [str(contact.id)]
    # Coalesced with other requests' contacts into one message (publisher.py).
    transaction.on_commit(lambda: coalescer.add(ids))
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

# The leases this worker process holds on the contacts it is running (apps/core/leases.py).
contact_leases = LeaseKeeper(
    Contact,
    expires_field="lease_expires_at",
    owner_field="lease_owner",
    lease_seconds=lambda: settings.ENRICHMENT_LEASE_SECONDS,
    still_held=Q(status=Contact.PENDING),
    name="contacts",
)


class LeaseLost(Exception):
    """This worker may no longer hold the contact's lease: it stops calling providers for it."""


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
    (``_credit_asks_serve``). The finish turns the hold into the charge, releasing the rest.
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
    held = db_retry(lambda: _contacts_hold(token, contacts), what="hold credits")
    threaded = settings.ENRICHMENT_CONCURRENCY > 1
    done: queue.SimpleQueue[tuple[Contact, Outcome | None] | _CreditAsk] = queue.SimpleQueue()

    def more_credits(contact: Contact, *, refused: bool = False) -> Any:
        # A short budget asks this thread, which does the chunk's database work, for more
        # (``_credit_asks_serve``); the waterfall thread waits for the answer. ``refused``:
        # this thread has just refused the first kind's price, so the first ask is answered.
        first_refused = [True] if refused else []

        def more(amount: int, unused: int) -> bool:
            if first_refused:
                first_refused.clear()
                return False
            ask = _CreditAsk(
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
                while waiting := _credit_asks_serve(waiting, token=token, still_ours=still_ours):
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
    contacts.sort(key=lambda c: not c.sandbox and held.get(c.pk, 0) < _max_price(c))

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
            _release_holds(abandoned, token=token)
        except Exception:
            # The next claim (``replace``) or the reaper releases it instead.
            logger.exception("releasing held credits failed", extra={"count": len(abandoned)})
        finished = _finish_batch([(c, o) for c, o in batch if o is not None], token=token)
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
    waiting: list[_CreditAsk] = []
    for contact in contacts:
        prices = [] if contact.sandbox else _kind_prices(contact)
        if prices and not held.get(contact.pk):
            # Nothing held for it: it waits for its first kind's price here, not in a pool
            # thread that the contacts holding credits may be queued for.
            waiting.append(
                _CreditAsk(
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

    def serve(asks: list[_CreditAsk]) -> list[_CreditAsk]:
        still = _credit_asks_serve(asks, token=token, still_ours=still_ours)
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
        batch = [item for item in items if not isinstance(item, _CreditAsk)]
        waiting += [item for item in items if isinstance(item, _CreditAsk)]
        remaining -= len(batch)
        finished += finish(batch)
        if waiting:
            # After the finish: what it released may be what they wait for.
            waiting = serve(waiting)
    return finished


# How long a contact short of credits waits for credits that other running contacts hold
# (they may find nothing and release them), and how often it looks again.
CREDIT_WAIT_SECONDS = 30.0
CREDIT_POLL_SECONDS = 0.1


def _kind_prices(contact: Contact) -> list[int]:
    """The prices of the kinds the waterfall may charge this contact for, in its order:
    those ``max_credits`` leaves room for (as ``waterfall_run`` skips the others)."""
    cap = contact.max_credits
    prices = []
    for kind in contact.enrichment_type:
        price = settings.CREDIT_PRICES[kind]
        if not price or (cap is not None and price > cap):
            continue
        prices.append(price)
        if cap is not None:
            cap -= price
    return prices


def _max_price(contact: Contact) -> int:
    """The most this contact may be charged: what it holds at claim time, at most."""
    return sum(_kind_prices(contact))


def _contacts_hold(token: uuid.UUID, contacts: list[Contact]) -> dict[Any, int]:
    """Hold, per account in one UPDATE, what the claimed live contacts may spend (in order,
    while the available balance lasts); returns what each contact got."""
    wants: dict[Any, list[tuple[Any, int]]] = {}
    for contact in contacts:
        if not contact.sandbox:
            wants.setdefault(contact.account_id, []).append((contact.pk, _max_price(contact)))
    held: dict[Any, int] = {}
    for account_id, account_wants in wants.items():
        # ``replace``: a hold left by an earlier claim of these contacts (a run that died
        # before the reaper saw it) is released first, never leaked.
        held.update(
            credits_hold(account_id=account_id, token=token, wants=account_wants, replace=True)
        )
    return held


@dataclass
class _CreditAsk:
    """A short ``CreditBudget`` asking for a kind's price (``CreditBudget.more``)."""

    contact: Contact
    amount: int
    unused: int  # what the budget still had: given back first
    spent: int  # what the contact holds for kinds it found: will be charged, not released
    deadline: float
    start: bool = False  # asked before the waterfall starts, for its first kind
    answered: threading.Event = field(default_factory=threading.Event)
    granted: bool = False
    lost: bool = False

    def answer(self, *, granted: bool = False, lost: bool = False) -> None:
        self.granted, self.lost = granted, lost
        self.answered.set()


def _credit_asks_serve(
    asks: list[_CreditAsk], *, token: uuid.UUID, still_ours: Any
) -> list[_CreditAsk]:
    """Answer what can be answered; returns the asks still waiting.

    An ask is granted when the available balance pays the whole price (held for it, fenced
    by the claim's token). It is refused only when the balance cannot and no other contact
    of the account holds credits that might come back (or after ``CREDIT_WAIT_SECONDS``):
    so a contact ends NO_CREDITS only when the balance really cannot pay. One read of the
    account per poll; a hold only when it can succeed.
    """
    try:
        still_ours()
    except LeaseLost:
        for ask in asks:
            ask.answer(lost=True)
        return []
    still: list[_CreditAsk] = []
    per_account: dict[Any, list[_CreditAsk]] = {}
    for ask in asks:
        per_account.setdefault(ask.contact.account_id, []).append(ask)
    for account_id, group in per_account.items():
        try:
            for ask in group:
                if ask.unused:
                    credits_release(
                        account_id=account_id,
                        contact_ids=[ask.contact.pk],
                        token=token,
                        amount=ask.unused,
                    )
                    ask.unused = 0
            available, held = Account.objects.values_list("credits", "held").get(pk=account_id)
        except Exception:
            logger.exception("asking for credits failed; trying again")
            still += group
            continue
        for ask in group:
            try:
                if available >= ask.amount:
                    if _hold_more(ask.contact, token, ask.amount):
                        available -= ask.amount
                        held += ask.amount  # held now, and may come back to the others
                        ask.answer(granted=True)
                    else:
                        # Another worker took it a moment ago: held, so it may come back.
                        available, held = 0, held + ask.amount
                        still.append(ask)
                elif held - ask.spent <= 0 or time.monotonic() >= ask.deadline:
                    ask.answer(granted=False)
                else:
                    still.append(ask)
            except LeaseLost:
                ask.answer(lost=True)
            except Exception:
                logger.exception("holding credits failed; trying again")
                still.append(ask)
    return still


def _hold_more(contact: Contact, token: uuid.UUID, amount: int) -> bool:
    """Hold ``amount`` for the contact from what is available, if this claim still owns it."""
    with transaction.atomic():
        ours = (
            Contact.objects.select_for_update()
            .filter(
                pk=contact.pk,
                status=Contact.PENDING,
                lease_owner=token,
                lease_expires_at__gt=timezone.now(),
            )
            .values_list("pk", flat=True)
        )
        if not list(ours):
            # Finished, reaped or taken over: nothing may be held for this run any more.
            raise LeaseLost()
        return bool(
            credits_hold(
                account_id=contact.account_id,
                token=token,
                wants=[(contact.pk, amount)],
                whole=True,
            )
        )


def _release_holds(contacts: list[Contact], *, token: uuid.UUID | None) -> None:
    """Release what these live contacts hold (under ``token`` only, when given), per account."""
    per_account: dict[Any, list[Any]] = {}
    for contact in contacts:
        if not contact.sandbox:
            per_account.setdefault(contact.account_id, []).append(contact.pk)
    for account_id, ids in per_account.items():
        credits_release(account_id=account_id, contact_ids=ids, token=token)


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


def _finish_batch(items: list[tuple[Contact, Outcome]], *, token: uuid.UUID | None) -> int:
    """Finish a batch in one transaction, retried while the database is unreachable; if it
    fails otherwise, one by one so that one bad contact cannot keep the others from
    finishing (a failed one stays pending for the reaper)."""
    if not items:
        return 0
    try:
        return db_retry(lambda: contacts_finish(items=items, token=token), what="finish contacts")
    except Exception:
        if len(items) == 1:
            logger.exception("finish failed", extra={"enrichment_id": str(items[0][0].pk)})
            return 0
    return sum(_finish_batch([item], token=token) for item in items)


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
    """NO_CREDITS only when the balance really could not pay: a found kind whose charge the
    ledger refused (after this contact's hold went back), or a kind skipped because neither
    its hold nor the available balance could pay, after other work's holds were settled
    (``_more_credits``), or because the contact's own ``max_credits`` could not."""
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
    """Finish one contact exactly once; returns 1 if this call finished it (see below)."""
    return contacts_finish(items=[(contact, outcome)])


def _charge(contact: Contact, outcome: Outcome) -> bool:
    """Charge what was found; False when the balance cannot pay it (NO_CREDITS).

    Called after the contact's hold was released (``contacts_finish``), in the same
    transaction, so the hold turns into the charge: what was held pays, the rest is back.
    """
    price = 0 if contact.sandbox else sum(settings.CREDIT_PRICES[k] for k in outcome.found_kinds)
    if not price:
        return True
    try:
        return (
            credits_charge(
                account_id=contact.account_id,
                contact_id=contact.pk,
                amount=price,
                reason="enrichment",
            )
            is not None
        )
    except AlreadyCharged:
        return True


def contacts_finish(*, items: list[tuple[Contact, Outcome]], token: uuid.UUID | None = None) -> int:
    """Store results, charge, record attempts, count and emit events, in one transaction.

    Exactly once per contact: the pending rows are locked (``FOR UPDATE``) and only those
    still pending are finished, so a second run of the same contact changes no row, charges
    nothing and emits nothing; the ledger's one-charge-per-contact index backs this up.
    With a claim's ``token``, only the contacts that claim still owns are finished (the fence:
    one that another worker took over after our lease lapsed is theirs to finish).
    What the contacts hold is released in the same transaction, before their charges, so a
    hold becomes exactly its charge and never outlives the contact.
    Returns how many contacts this call finished.
    """
    by_id = {contact.pk: (contact, outcome) for contact, outcome in items}
    now = timezone.now()
    with transaction.atomic():
        rows = Contact.objects.select_for_update().filter(
            pk__in=list(by_id), status=Contact.PENDING
        )
        if token is not None:
            rows = rows.filter(lease_owner=token)
        pending = set(rows.order_by("pk").values_list("pk", flat=True))
        if not pending:
            return 0
        mine = [by_id[pk] for pk in by_id if pk in pending]
        # Every hold on these contacts (any claim's: this one owns them now) goes back in this
        # transaction, and the charges below take what was used: charge once, never below 0.
        _release_holds([contact for contact, _ in mine], token=None)
        for contact, outcome in mine:
            status = _result_status(contact, outcome, charged_ok=_charge(contact, outcome))
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
        for contact, _ in mine:
            # One plain UPDATE per row: bulk_update's CASE over a JSON column costs more than
            # the round trips it saves.
            Contact.objects.filter(pk=contact.pk).update(
                status=Contact.FINISHED,
                finished_at=now,
                lease_expires_at=None,
                result_status=contact.result_status,
                result=contact.result,
                credits_charged=contact.credits_charged,
                updated_at=now,
            )
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
        webhook_services.contacts_finished_emit(contacts=[contact for contact, _ in mine])
        per_bulk: dict[Any, list[Contact]] = {}
        for contact, _ in mine:
            if contact.bulk_id:
                per_bulk.setdefault(contact.bulk_id, []).append(contact)
        for bulk_id, finished_contacts in per_bulk.items():
            bulk_count_finished_many(bulk_id=bulk_id, contacts=finished_contacts)
    return len(mine)


_COUNTER = {
    Contact.VERIFIED: "verified",
    Contact.NOT_FOUND: "not_found",
    Contact.NO_CREDITS: "no_credits",
    Contact.FAILED: "failed",
}


def bulk_count_finished(*, bulk_id: Any, result_status: str, credits: int) -> None:
    """Bump the bulk's counters for one finished contact (see ``bulk_count_finished_many``)."""
    _bulk_count(bulk_id=bulk_id, statuses=[result_status], credits=credits)


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
        webhook_services.bulk_completed_emit(bulk=BulkJob.objects.get(pk=bulk_id))


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
