"""Running contacts: claim a chunk, run each waterfall in the process-wide pool, finish
them in the process's finisher, in batches across claims, as they end."""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.accounts.models import Account
from apps.core.db import sql_column, sql_columns, sql_table
from apps.core.outages import db_retry
from apps.providers import registry

from ..models import Contact
from ..waterfall import CreditBudget, Outcome, waterfall_run
from .finishing import finish_batch
from .holds import (
    CREDIT_POLL_SECONDS,
    CREDIT_WAIT_SECONDS,
    CreditAsk,
    claims_hold,
    contacts_hold,
    credit_asks_serve,
    holds_release,
    kind_prices,
    max_price,
)
from .leases import LeaseLost, contact_leases
from .publishing import PUBLISH_FAILED

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
    token, contacts, _ = contacts_claim_rows(contact_ids=contact_ids, token=token)
    return token, [str(c.pk) for c in contacts]


def contacts_claim_rows(
    *, contact_ids: list[str], token: uuid.UUID | None = None
) -> tuple[uuid.UUID, list[Contact], Reusable]:
    """``contacts_claim``, returning the claimed contacts themselves, in their order
    (created, then position), each with its account's ``provider_order`` (the rest of the
    account is loaded only if asked for), and the results their waterfalls may reuse
    (``_reusable_results``). On PostgreSQL one statement claims and loads (``UPDATE …
    RETURNING`` over the rows ``FOR UPDATE SKIP LOCKED`` picked, each with its account's
    order and its person's newest reusable result); elsewhere the claim's two statements,
    then a load and the reuse query."""
    token = token or contact_leases.new_token()
    now = timezone.now()
    if connection.vendor == "postgresql":
        ttl = settings.PROVIDER_RESULT_REUSE_TTL_SECONDS
        since = now - timedelta(seconds=ttl) if ttl > 0 else None
        # In the statement's order: the CTE's, the SET's, then RETURNING's reuse subquery.
        params = [contact_ids, now, token, contact_leases.expiry(), token, since, since]
        rows = list(Contact.objects.raw(_claim_sql(), params))
        reusable: Reusable = {}
        for contact in rows:
            order = _jsonb(contact.account_provider_order)  # type: ignore[attr-defined]
            contact.account = Account.from_db(
                connection.alias, ["id", "provider_order"], [contact.account_id, order]
            )
            result = _jsonb(contact.reusable_result)  # type: ignore[attr-defined]
            if isinstance(result, dict):
                reusable[(contact.account_id, contact.person_key)] = result
        rows.sort(key=lambda c: (c.created_at, c.position, c.pk))
        return token, rows, reusable
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
    contacts = list(
        Contact.objects.select_related("account")
        .filter(pk__in=claimed)
        .order_by("created_at", "position", "pk")
    )
    return token, contacts, _reusable_results(contacts)


# Per (account, person key): the newest VERIFIED live result a waterfall may reuse.
Reusable = dict[tuple[Any, str], dict[str, Any]]


def _jsonb(value: Any) -> Any:
    # A jsonb column RETURNING gave that is no model field: Django's psycopg loaders leave
    # jsonb as text (a model field would decode it).
    return json.loads(value) if isinstance(value, str) else value


@cache
def _claim_sql() -> str:
    table, accounts = sql_table(Contact), sql_table(Account)

    def col(name: str) -> str:
        return sql_column(Contact, name)

    # As ``_reusable_results``: the person's newest VERIFIED live result within the TTL (the
    # last two parameters: its start, NULL when reuse is off), by contact_reuse_idx.
    reuse = f"""(
        SELECT r.{col("result")} FROM {table} AS r
        WHERE %s::timestamptz IS NOT NULL AND NOT c.{col("sandbox")}
            AND c.{col("person_key")} <> '' AND r.{col("account")} = c.{col("account")}
            AND r.{col("person_key")} = c.{col("person_key")}
            AND r.{col("result_status")} = '{Contact.VERIFIED}' AND NOT r.{col("sandbox")}
            AND r.{col("finished_at")} >= %s
        ORDER BY r.{col("finished_at")} DESC LIMIT 1
    )"""  # noqa: S608 - the names come from model metadata
    return f"""
        WITH free AS (
            SELECT {col("id")} AS id FROM {table}
            WHERE {col("id")} = ANY(%s::uuid[]) AND {col("status")} = '{Contact.PENDING}'
                AND ({col("lease_expires_at")} IS NULL OR {col("lease_expires_at")} < %s
                    OR {col("lease_owner")} = %s)
            FOR UPDATE SKIP LOCKED
        )
        UPDATE {table} AS c SET
            {col("lease_expires_at")} = %s,
            {col("lease_owner")} = %s,
            {col("run_count")} = c.{col("run_count")} + 1
        FROM free, {accounts} AS a
        WHERE c.{col("id")} = free.id AND a.{sql_column(Account, "pk")} = c.{col("account")}
        RETURNING {sql_columns(Contact, prefix="c.")},
            a.{sql_column(Account, "provider_order")} AS account_provider_order,
            {reuse} AS reusable_result
    """  # noqa: S608 - the names come from model metadata


def contacts_run(*, contact_ids: list[str]) -> int:
    """Run the waterfall for each claimable contact and wait for them; returns how many this
    call finished. ``contacts_start`` without the wait (the ``run_contacts`` task)."""
    claim = contacts_start(contact_ids=contact_ids, attended=True)
    if claim is None:
        return 0
    runner.attend(claim)
    return claim.finished


def contacts_start(*, contact_ids: list[str], attended: bool = False) -> _Claim | None:
    """Claim the claimable contacts among ``contact_ids`` and hand them to this process's
    ``runner``; returns the claim, or None when nothing was claimed. ``attended``: the
    caller finishes this claim's contacts itself, in its own thread and on its own database
    connection (``runner.attend``, as ``contacts_run`` does), instead of the finisher.

    Provider calls are network-bound, so the waterfalls run in the process-wide waterfall
    pool (``ENRICHMENT_CONCURRENCY`` threads shared by every task of the worker process; no
    database work there beyond the breaker's cache), and one finisher thread per process
    finishes contacts as their waterfalls end, whatever claim they came from, a batch of
    whatever is ready at a time in one transaction (``contacts_finish``). Finishing is
    serialised per account by the ledger's row lock anyway, so fewer, larger transactions go
    faster than many threads queueing for that lock. A Celery task thread only claims: it
    never waits on a waterfall, so a worker runs as many single-contact messages at once as
    its pool has threads, not as it has task threads. What the waterfalls need from the
    database is loaded here in a few batched queries. Before claiming, the caller waits
    while the process already has twice ``ENRICHMENT_CONCURRENCY`` contacts in flight
    (``runner.wait_room``), so one worker never hoards the queue.

    From the claim to the finish the process renews the claim's leases; a waterfall stops
    (``LeaseLost``) when the lease may have lapsed, and the finish is fenced by the claim's
    token, so a contact another worker took over is never finished, charged or announced
    twice. A worker that dies with contacts in flight leaves them leased: the leases lapse
    and the reaper publishes them again (the task's message was acknowledged; the database,
    not the broker, is what says what is left to do). Claim, load and finish ride out a
    database outage (``db_retry``).

    Credits (live contacts): right after the claim, each contact's maximum price is *held*
    from the account's available balance (``credits_hold``: one conditional UPDATE per
    account, ledger rows; taken by the finisher, or by the caller of an attended claim), and
    its waterfall's ``CreditBudget`` is what it holds, so paid vendors are called only for
    held credits, whichever worker runs what. A contact that got nothing waits in the
    finisher, not in a pool thread, while other work holds credits that may come back; it
    ends NO_CREDITS only when the balance really cannot pay (``credit_asks_serve``). The
    finish turns the hold into the charge, releasing the rest.
    """
    if runner.stopping:
        _give_back_unclaimed(contact_ids)
        return None
    threaded = settings.ENRICHMENT_CONCURRENCY > 1
    if threaded and not runner.wait_room():
        _give_back_unclaimed(contact_ids)  # shutting down meanwhile
        return None
    since = time.monotonic()
    token = contact_leases.new_token()  # one for every try: a retry finds its own claim
    token, contacts, reusable = db_retry(
        lambda: contacts_claim_rows(contact_ids=contact_ids, token=token), what="claim contacts"
    )
    if not contacts:
        return None
    claimed = [str(c.pk) for c in contacts]
    contact_leases.hold(token, claimed, since=since)
    claim = _Claim(token=token, size=len(claimed), remaining=len(claimed))
    if attended:
        claim.inbox = queue.SimpleQueue()
    if not threaded:
        try:
            claim.finished = _run_inline(claim, contacts, reusable)
        finally:
            contact_leases.release(token)
            claim.done.set()
        return claim
    try:
        runner.start(claim, contacts, reusable)
    except BaseException:
        contact_leases.release(token)  # the leases lapse; the reaper runs them again
        raise
    return claim


def _give_back_unclaimed(contact_ids: list[str]) -> None:
    """A stopping worker's message: the reaper's next run publishes these again."""
    with contextlib.suppress(Exception):
        Contact.objects.filter(
            pk__in=contact_ids, status=Contact.PENDING, lease_expires_at__isnull=True
        ).update(published_at=PUBLISH_FAILED)


@dataclass
class _Hold:
    """A claim's contacts waiting for the finisher to hold their credits."""

    contacts: list[Contact]


@dataclass(eq=False)
class _Claim:
    """One claim's contacts while they run: its token, and how many are still out."""

    token: uuid.UUID
    size: int
    remaining: int
    finished: int = 0
    done: threading.Event = field(default_factory=threading.Event)
    budgets: dict[Any, CreditBudget] = field(default_factory=dict)
    waterfall: Callable[[Contact], Outcome] | None = None
    # Where its finished waterfalls and credit asks go (None: the process's finisher).
    inbox: queue.SimpleQueue[Any] | None = None

    def still_ours(self) -> None:
        if contact_leases.remaining(self.token) < settings.ENRICHMENT_LEASE_SECONDS / 2:
            raise LeaseLost()


def _lineup() -> registry.Lineup:
    """The provider line-up the claim's waterfalls follow (``ProviderConfig``)."""
    return db_retry(registry.Lineup.load, what="load the provider line-up")


def _waterfall_of(
    claim: _Claim, lineup: registry.Lineup, reusable: dict
) -> Callable[[Contact], Outcome]:
    def waterfall(contact: Contact) -> Outcome:
        return waterfall_run(
            contact,
            lineup=lineup,
            budget=claim.budgets.get(contact.pk),
            reuse=reusable.get((contact.account_id, contact.person_key)),
            before_call=claim.still_ours,
        )

    return waterfall


def _run_inline(claim: _Claim, contacts: list[Contact], reusable: Reusable) -> int:
    """No threads (``ENRICHMENT_CONCURRENCY`` ≤ 1): each waterfall and its finish run here,
    one contact at a time; a short budget asks the ledger here too."""
    lineup = _lineup()
    token = claim.token
    held = db_retry(lambda: contacts_hold(token, contacts), what="hold credits")

    def more_credits(contact: Contact) -> Any:
        def more(amount: int, unused: int) -> bool:
            ask = CreditAsk(
                contact=contact,
                amount=amount,
                unused=unused,
                spent=claim.budgets[contact.pk].spent,
                deadline=time.monotonic() + CREDIT_WAIT_SECONDS,
            )
            waiting = [ask]
            while waiting := credit_asks_serve(waiting, token=token, still_ours=claim.still_ours):
                time.sleep(CREDIT_POLL_SECONDS)
            if ask.lost:
                raise LeaseLost()
            return ask.granted

        return more

    claim.budgets = {
        c.pk: CreditBudget(held.get(c.pk, 0), more=more_credits(c))
        for c in contacts
        if not c.sandbox
    }
    waterfall = _waterfall_of(claim, lineup, reusable)
    return sum(_finish_claimed(token, [(c, _outcome_or_none(c, waterfall))]) for c in contacts)


def _finish_claimed(token: uuid.UUID, batch: list[tuple[Contact, Outcome | None]]) -> int:
    """Finish one claim's contacts (None: abandoned), without threads."""
    abandoned = [c for c, o in batch if o is None]
    _let_go(token, abandoned)
    finished = finish_batch([(c, o) for c, o in batch if o is not None], token=token)
    contact_leases.release(token, [c.pk for c, _ in batch])  # done: nothing to renew
    return len(finished)


def _let_go(token: uuid.UUID, abandoned: list[Contact], *, now: bool = False) -> None:
    # A crashed or abandoned waterfall's contact is let go at once: its lease lapses and the
    # reaper runs it again (up to ENRICHMENT_MAX_RUNS). What this claim held for it goes
    # back now (only this claim's: another worker may hold it by now). ``now`` (a worker
    # shutting down): the lease is ended at once, so the reaper's next run publishes it.
    if not abandoned:
        return
    contact_leases.release(token, [c.pk for c in abandoned])
    if now:
        with contextlib.suppress(Exception):
            Contact.objects.filter(
                pk__in=[c.pk for c in abandoned], status=Contact.PENDING, lease_owner=token
            ).update(lease_expires_at=timezone.now())
    try:
        holds_release(abandoned, token=token)
    except Exception:
        # The next claim (``replace``) or the reaper releases it instead.
        logger.exception("releasing held credits failed", extra={"count": len(abandoned)})


class Runner:
    """One per worker process: runs claimed contacts' waterfalls in the shared pool and
    finishes them in one finisher thread, in batches across claims (``contacts_start``)."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        # A forked child starts empty, with its own lock and (lazily) its own threads.
        self._cond = threading.Condition()
        self._in_flight = 0
        self._done: queue.SimpleQueue[tuple[_Claim, Any, Outcome | None] | tuple[_Claim, CreditAsk]]
        self._done = queue.SimpleQueue()
        self._finisher: threading.Thread | None = None
        self.stopping = False

    # --- what the tasks call ------------------------------------------------------------------

    def room(self) -> int:
        return 2 * settings.ENRICHMENT_CONCURRENCY

    def in_flight(self) -> int:
        return self._in_flight

    def wait_room(self) -> bool:
        """Wait while this process has its fill of contacts in flight; False once stopping."""
        with self._cond:
            self._cond.wait_for(lambda: self.stopping or self._in_flight < self.room())
            return not self.stopping

    def start(self, claim: _Claim, contacts: list[Contact], reusable: Reusable) -> None:
        """Load for, hold credits for and submit a fresh claim's contacts."""
        with self._cond:
            self._in_flight += len(contacts)
            if claim.inbox is None:
                self._start_finisher()
        unsent = len(contacts)  # not handed to the pool or the finisher yet
        try:
            lineup = _lineup()
            claim.waterfall = _waterfall_of(claim, lineup, reusable)
            if any(not c.sandbox for c in contacts):
                # Before any paid call, what each live contact may spend is held
                # (``credits_hold``), by the finisher: holding locks the account's row, as
                # every finish does, so one thread per process takes that lock in turn
                # instead of the task threads queueing on it behind the finishes, and
                # holds every claim waiting for it in one transaction.
                self._queue(claim).put((claim, _Hold(contacts)))
            else:
                self._dispatch(claim, contacts, {})
            unsent = 0
        finally:
            # What was not handed over is let go: its lease lapses, the reaper runs it again.
            self._landed(claim, unsent)

    def _hold(self, holds: list[tuple[_Claim, list[Contact]]], *, again: bool = False) -> None:
        """Hold credits for fresh claims' contacts, then hand them to the pool: all of them
        in one transaction per account (``claims_hold``), so a burst of single-contact
        claims costs one lock of the account's row and one commit, not one each. If that
        fails, one claim at a time, so that one claim's failure lets go of its own contacts
        only. ``again``: an earlier try may have committed (its reply lost)."""
        ids = [c.pk for _, contacts in holds for c in contacts]
        if len(holds) > 1 and len(set(ids)) < len(ids):
            # A contact in two claims (its lease lapsed, and it was claimed again while the
            # first claim's hold waited here): each claim's hold is its own.
            for one in holds:
                self._hold([one], again=again)
            return
        tries = itertools.count()

        def hold() -> dict[Any, int]:
            retry = again or next(tries) > 0
            return claims_hold([(claim.token, contacts) for claim, contacts in holds], again=retry)

        try:
            held = db_retry(hold, what="hold credits")
        except Exception:
            if len(holds) > 1:
                logger.exception("holding credits failed; trying one claim at a time")
                for one in holds:
                    self._hold([one], again=True)
                return
            logger.exception("holding credits failed; leaving the contacts to the reaper")
            for claim, contacts in holds:
                contact_leases.release(claim.token, [c.pk for c in contacts])
                self._landed(claim, len(contacts))
            return
        for claim, contacts in holds:
            self._dispatch(claim, contacts, held)

    def _dispatch(self, claim: _Claim, contacts: list[Contact], held: dict[Any, int]) -> None:
        """Give each contact its budget and its waterfall a pool thread (or, holding
        nothing, an ask for its first kind's price)."""
        unsent = len(contacts)
        try:
            claim.budgets = {
                c.pk: CreditBudget(held.get(c.pk, 0), more=self._more_credits(claim, c))
                for c in contacts
                if not c.sandbox
            }
            # Fully held contacts first: a short one may wait for credits that other contacts
            # hold, and must not keep a pool thread those contacts are queued for.
            contacts.sort(key=lambda c: not c.sandbox and held.get(c.pk, 0) < max_price(c))
            assert claim.waterfall is not None
            for contact in contacts:
                prices = [] if contact.sandbox else kind_prices(contact)
                if prices and not held.get(contact.pk):
                    # Nothing held for it: it waits for its first kind's price in the
                    # finisher, not in a pool thread the contacts holding credits may need.
                    self._queue(claim).put(
                        (
                            claim,
                            CreditAsk(
                                contact=contact,
                                amount=prices[0],
                                unused=0,
                                spent=0,
                                deadline=time.monotonic() + CREDIT_WAIT_SECONDS,
                                start=True,
                            ),
                        )
                    )
                else:
                    self._submit(claim, contact, claim.waterfall)
                unsent -= 1
        finally:
            self._landed(claim, unsent)

    def resume(self) -> None:
        """Take work again after ``stop`` (tests: one process, many workers' lives)."""
        with self._cond:
            self.stopping = False

    def stop(self, *, timeout: float = 30.0) -> int:
        """A warm shutdown: start no new waterfall (those not started yet are let go, and the
        reaper publishes them again within a lease), let those running finish and be
        finished, for up to ``timeout`` seconds. Returns how many were still in flight."""
        with self._cond:
            self.stopping = True
            self._cond.notify_all()
            self._cond.wait_for(lambda: not self._in_flight, timeout=timeout)
            return self._in_flight

    # --- the threads --------------------------------------------------------------------------

    def _start_finisher(self) -> None:
        """Under the lock: lazily, so each forked process has its own."""
        if self._finisher is None or not self._finisher.is_alive():
            self._finisher = threading.Thread(
                target=self._finish_loop, args=(self._done,), name="sluice-finisher", daemon=True
            )
            self._finisher.start()

    def _landed(self, claim: _Claim, count: int, finished: int = 0) -> None:
        """``count`` of the claim's contacts are done with (``finished`` of them finished)."""
        if not count:
            return
        with self._cond:
            self._in_flight -= count
            claim.remaining -= count
            claim.finished += finished
            last = not claim.remaining
            self._cond.notify_all()
        if last:
            contact_leases.release(claim.token)
            claim.done.set()

    def _submit(
        self, claim: _Claim, contact: Contact, waterfall: Callable[[Contact], Outcome]
    ) -> None:
        def job() -> None:
            outcome = None
            try:
                if not self.stopping:
                    outcome = _outcome_or_none(contact, waterfall)
            finally:
                self._queue(claim).put((claim, contact, outcome))  # always: it is counted
                # The breaker's cache may be the database (embedded mode): never keep a
                # connection open in a pool thread between contacts.
                connection.close()

        _waterfall_pool().submit(job)

    def _more_credits(self, claim: _Claim, contact: Contact, *, refused: bool = False) -> Any:
        # A short budget asks the finisher, which does the database work, for more
        # (``credit_asks_serve``); the waterfall thread waits for the answer. ``refused``:
        # the finisher has just refused the first kind's price, so the first ask is answered.
        first_refused = [True] if refused else []
        margin = settings.ENRICHMENT_LEASE_SECONDS / 2

        def more(amount: int, unused: int) -> bool:
            if first_refused:
                first_refused.clear()
                return False
            ask = CreditAsk(
                contact=contact,
                amount=amount,
                unused=unused,
                spent=claim.budgets[contact.pk].spent,
                deadline=time.monotonic() + CREDIT_WAIT_SECONDS,
            )
            self._queue(claim).put((claim, ask))
            if not ask.answered.wait(timeout=CREDIT_WAIT_SECONDS + margin):
                raise LeaseLost()
            if ask.lost:
                raise LeaseLost()
            return ask.granted

        return more

    def attend(self, claim: _Claim) -> None:
        """Finish an attended claim's contacts in this thread, until all are done."""
        assert claim.inbox is not None
        self._finish_loop(claim.inbox, until=claim.done.is_set, own_thread=False)

    def _queue(self, claim: _Claim) -> queue.SimpleQueue[Any]:
        return self._done if claim.inbox is None else claim.inbox

    def _finish_loop(
        self,
        done: queue.SimpleQueue[Any],
        *,
        until: Callable[[], bool] = lambda: False,
        own_thread: bool = True,
    ) -> None:
        """Finish what arrives on ``done`` and serve its credit asks until ``until()``.
        ``own_thread``: the finisher's own thread (not a caller's, whose connection is its
        own business)."""
        waiting: list[tuple[_Claim, CreditAsk]] = []
        while not until():
            items: list[Any] = []
            try:
                # While budgets wait for credits, look again every CREDIT_POLL_SECONDS.
                items.append(done.get(timeout=CREDIT_POLL_SECONDS if waiting else 1.0))
            except queue.Empty:
                if own_thread and not waiting:
                    # The finisher, idle for a second: no connection kept open (it is opened
                    # again in a millisecond or two; a test database can be dropped meanwhile).
                    connection.close()
            while items and len(items) < FINISH_BATCH_MAX:
                try:
                    items.append(done.get_nowait())
                except queue.Empty:
                    break
            batch = [item for item in items if len(item) == 3]
            waiting += [item for item in items if isinstance(item[-1], CreditAsk)]
            holds = [(item[0], item[1].contacts) for item in items if isinstance(item[-1], _Hold)]
            if holds:
                # First: their waterfalls start as soon as their credits are held, all the
                # claims that arrived meanwhile at once.
                self._hold(holds)
            if batch:
                self._finish(batch)
            if waiting:
                # After the finish: what it released may be what they wait for.
                try:
                    waiting = self._serve(waiting)
                except Exception:
                    logger.exception("serving credit asks failed; trying again")

    def _finish(self, batch: list[tuple[_Claim, Contact, Outcome | None]]) -> None:
        """One transaction for the batch's finished contacts, whatever their claims."""
        finished: set[str] = set()
        try:
            per_claim: dict[_Claim, list[Contact]] = {}
            for claim, contact, outcome in batch:
                if outcome is None:
                    per_claim.setdefault(claim, []).append(contact)
            for claim, abandoned in per_claim.items():
                _let_go(claim.token, abandoned, now=self.stopping)
            finished = finish_batch(
                [(c, o) for _, c, o in batch if o is not None],
                token={c.pk: claim.token for claim, c, o in batch if o is not None},
            )
        except Exception:
            logger.exception("finishing failed", extra={"count": len(batch)})
        finally:
            per_claim_done: dict[_Claim, list[str]] = {}
            for claim, contact, _ in batch:
                per_claim_done.setdefault(claim, []).append(str(contact.pk))
            for claim, ids in per_claim_done.items():
                contact_leases.release(claim.token, ids)  # done: nothing to renew
                self._landed(claim, len(ids), finished=len(finished.intersection(ids)))

    def _serve(self, waiting: list[tuple[_Claim, CreditAsk]]) -> list[tuple[_Claim, CreditAsk]]:
        per_claim: dict[_Claim, list[CreditAsk]] = {}
        for claim, ask in waiting:
            per_claim.setdefault(claim, []).append(ask)
        still: list[tuple[_Claim, CreditAsk]] = []
        for claim, asks in per_claim.items():
            left = credit_asks_serve(asks, token=claim.token, still_ours=claim.still_ours)
            still += [(claim, ask) for ask in left]
            for ask in asks:
                if not ask.start or not ask.answered.is_set():
                    continue
                if ask.lost:
                    self._queue(claim).put((claim, ask.contact, None))
                    continue
                claim.budgets[ask.contact.pk] = CreditBudget(
                    ask.amount if ask.granted else 0,
                    more=self._more_credits(claim, ask.contact, refused=not ask.granted),
                )
                assert claim.waterfall is not None  # set before any ask is queued
                self._submit(claim, ask.contact, claim.waterfall)
        return still


def _reusable_results(contacts: list[Contact]) -> Reusable:
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


runner = Runner()
