"""The sender: one per webhooks process, sending claimed deliveries concurrently and fairly.

``deliveries_dispatch`` (the ``deliver`` task) claims a message's due deliveries and hands
them over; ``WEBHOOK_CONCURRENCY`` sender threads send them on kept-alive connections (one
``requests`` session per thread), and one recorder thread stores finished attempts in
batches (``deliveries.deliveries_record``). Task threads never wait on a receiver.

Fairness: waiting deliveries are queued per account, and per target within it (an endpoint,
or the host of a request-level ``webhook_url``). A free sender thread serves the accounts in
turn (round robin), and within an account its targets in turn, skipping an account with
``WEBHOOK_MAX_IN_FLIGHT_PER_ACCOUNT`` requests in flight, a target with
``WEBHOOK_MAX_IN_FLIGHT_PER_TARGET``, and an endpoint past its ``rate_limit`` for the current
second (counted in the shared cache, so the limit holds across webhooks processes). A
receiver that never answers therefore holds at most its target's share of the threads, for
at most the request timeouts, and every other account's deliveries keep flowing.

Nothing is lost when the process dies: every delivery handed over stays claimed (its lease
renewed by ``delivery_leases``) until its attempt is recorded; a dead process's claims lapse
within ``WEBHOOK_LEASE_SECONDS`` and the sweep publishes them again. A warm shutdown gives
back what it has not started (``stop``).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import uuid
from collections import Counter, OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache
from django.db import close_old_connections
from django.utils import timezone

from apps.core.outages import db_retry

from ..models import Delivery
from .deliveries import (
    GONE,
    Sent,
    deliveries_claim,
    deliveries_record,
    delivery_leases,
    delivery_request,
    valid_ids,
)
from .transport import AttemptResult, http_post

logger = logging.getLogger(__name__)

# Attempts recorded in one transaction at most.
RECORD_BATCH_MAX = 200


@dataclass
class _Waiting:
    delivery: Delivery
    token: uuid.UUID
    account: Any
    target: str
    rate_limit: int | None


def _target(delivery: Delivery) -> str:
    if delivery.endpoint_id is not None:
        return f"endpoint:{delivery.endpoint_id}"
    return f"host:{(urlsplit(delivery.target_url).hostname or '').lower()}"


def _rate_allows(endpoint_id: Any, limit: int) -> bool:
    """One more delivery to this endpoint in the current second, across every process (a
    counter per endpoint and second in the shared cache). Open when the cache is away."""
    key = f"sluice:webhook-rate:{endpoint_id}:{int(time.time())}"
    try:
        cache.add(key, 0, timeout=5)
        return cache.incr(key) <= limit
    except Exception:  # a limit is not worth stopping deliveries for
        logger.warning("webhook rate limit unavailable; sending", exc_info=True)
        return True


class Sender:
    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        # A forked child starts empty, with its own lock and (lazily) its own threads.
        self._cond = threading.Condition()
        self._accounts: OrderedDict[Any, OrderedDict[str, deque[_Waiting]]] = OrderedDict()
        self._account_flight: Counter[Any] = Counter()
        self._target_flight: Counter[str] = Counter()
        self._paused: dict[str, float] = {}  # target -> monotonic time to look again
        self._waiting = 0
        self._stopping = False
        self._senders: list[threading.Thread] = []
        self._recorder: threading.Thread | None = None
        self._done: queue.SimpleQueue[Sent] = queue.SimpleQueue()
        self._recording = 0

    # --- what the tasks call ------------------------------------------------------------------

    def room(self) -> int:
        """How many more claimed deliveries this process takes (``WEBHOOK_SENDER_BACKLOG``)."""
        return settings.WEBHOOK_SENDER_BACKLOG - self._waiting

    def submit(self, token: uuid.UUID, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        with self._cond:
            for delivery in deliveries:
                endpoint = delivery.endpoint
                waiting = _Waiting(
                    delivery=delivery,
                    token=token,
                    account=delivery.account_id,
                    target=_target(delivery),
                    rate_limit=getattr(endpoint, "rate_limit", None) if endpoint else None,
                )
                targets = self._accounts.setdefault(waiting.account, OrderedDict())
                targets.setdefault(waiting.target, deque()).append(waiting)
                self._waiting += 1
            self._start()
            # One waiting sender thread per new delivery at most (not the whole pool).
            self._cond.notify(len(deliveries))

    def waiting(self) -> int:
        return self._waiting

    def in_flight(self) -> int:
        return sum(self._target_flight.values())

    def stop(self, *, timeout: float = 5.0) -> int:
        """A warm shutdown: give back every claimed delivery not started yet (the sweep
        publishes it again at once), let the requests in flight finish and their attempts be
        recorded, for up to ``timeout`` seconds. Returns how many were given back."""
        with self._cond:
            self._stopping = True
            given_back = [
                w for targets in self._accounts.values() for q in targets.values() for w in q
            ]
            self._accounts.clear()
            self._waiting = 0
            self._cond.notify_all()
        per_token: dict[uuid.UUID, list[Any]] = {}
        for waiting in given_back:
            per_token.setdefault(waiting.token, []).append(waiting.delivery.pk)
        for token, ids in per_token.items():
            delivery_leases.release(token, ids)
            try:
                Delivery.objects.filter(pk__in=ids, claim_token=token).update(
                    claimed_until=None, claim_token=None, published_at=None
                )
            except Exception:  # the claims lapse on their own then
                logger.warning("could not give back deliveries", extra={"count": len(ids)})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (self.in_flight() or self._recording):
            time.sleep(0.05)
        return len(given_back)

    def drop_endpoint(self, endpoint_id: Any) -> None:
        """Forget the waiting deliveries of an endpoint just deactivated (their rows are
        skipped already): nothing more is sent to it."""
        target = f"endpoint:{endpoint_id}"
        dropped: list[_Waiting] = []
        with self._cond:
            for account, targets in list(self._accounts.items()):
                if target in targets:
                    dropped += targets.pop(target)
                    if not targets:
                        del self._accounts[account]
            self._waiting -= len(dropped)
        for waiting in dropped:
            delivery_leases.release(waiting.token, [waiting.delivery.pk])

    # --- the threads --------------------------------------------------------------------------

    def _start(self) -> None:
        """Start missing threads (under the lock): lazily, so each forked process has its own."""
        self._stopping = False
        self._senders = [t for t in self._senders if t.is_alive()]
        for _ in range(settings.WEBHOOK_CONCURRENCY - len(self._senders)):
            thread = threading.Thread(target=self._send_loop, name="sluice-sender", daemon=True)
            thread.start()
            self._senders.append(thread)
        if self._recorder is None or not self._recorder.is_alive():
            self._recorder = threading.Thread(
                target=self._record_loop, name="sluice-recorder", daemon=True
            )
            self._recorder.start()

    def _pick(self, now: float) -> _Waiting | None:
        """The next delivery to send (under the lock): accounts in turn, targets in turn."""
        per_account = settings.WEBHOOK_MAX_IN_FLIGHT_PER_ACCOUNT
        per_target = settings.WEBHOOK_MAX_IN_FLIGHT_PER_TARGET
        for _ in range(len(self._accounts)):
            account, targets = next(iter(self._accounts.items()))
            self._accounts.move_to_end(account)  # served or not, it goes last
            if self._account_flight[account] >= per_account:
                continue
            for _ in range(len(targets)):
                target, line = next(iter(targets.items()))
                targets.move_to_end(target)
                if self._target_flight[target] >= per_target or self._paused.get(target, 0) > now:
                    continue
                waiting = line[0]
                if waiting.rate_limit and not _rate_allows(
                    waiting.delivery.endpoint_id, waiting.rate_limit
                ):
                    self._paused[target] = now + (1 - time.time() % 1) + 0.001
                    continue
                self._paused.pop(target, None)
                line.popleft()
                if not line:
                    del targets[target]
                if not targets:
                    del self._accounts[account]
                self._waiting -= 1
                self._account_flight[account] += 1
                self._target_flight[target] += 1
                return waiting
        return None

    def _next_wake(self, now: float) -> float:
        later = [at - now for at in self._paused.values() if at > now]
        return min([1.0, *later]) if later else 1.0

    def _send_loop(self) -> None:
        while True:
            with self._cond:
                now = time.monotonic()
                while self._stopping or (waiting := self._pick(now)) is None:
                    self._cond.wait(timeout=self._next_wake(now))
                    now = time.monotonic()
            at = timezone.now()
            try:
                url, body, headers = delivery_request(waiting.delivery, now=at)
                result = http_post(url=url, body=body, headers=headers)
            except Exception as exc:  # a thread that dies would send no more
                logger.exception(
                    "webhook send failed", extra={"delivery_id": str(waiting.delivery.pk)}
                )
                result = AttemptResult(None, 0, f"{type(exc).__name__}: {exc}"[:1000], "", None)
            with self._cond:
                self._recording += 1
                self._account_flight[waiting.account] -= 1
                self._target_flight[waiting.target] -= 1
                # One slot is free: one waiter may take it (this thread, looping back, would
                # too); waking every thread cost each of them a pick per finished request.
                self._cond.notify()
            self._done.put(Sent(waiting.delivery, waiting.token, result, at))

    def _record_loop(self) -> None:
        while True:
            batch = [self._done.get()]
            while len(batch) < RECORD_BATCH_MAX:
                try:
                    batch.append(self._done.get_nowait())
                except queue.Empty:
                    break
            try:
                statuses = db_retry(lambda b=batch: deliveries_record(b), what="record attempts")
            except Exception:  # the claims lapse and the sweep sends them again
                logger.exception("recording delivery attempts failed", extra={"count": len(batch)})
                statuses = {}
                close_old_connections()
            finally:
                per_token: dict[uuid.UUID, list[Any]] = {}
                for sent in batch:
                    per_token.setdefault(sent.token, []).append(sent.delivery.pk)
                for token, ids in per_token.items():
                    delivery_leases.release(token, ids)
                with self._cond:
                    self._recording -= len(batch)
            for sent in batch:
                endpoint_id = sent.delivery.endpoint_id
                # Deactivated, or deleted: what still waits for it is not sent.
                if endpoint_id is not None and statuses.get(sent.delivery.pk) in (
                    Delivery.SKIPPED,
                    GONE,
                ):
                    self.drop_endpoint(endpoint_id)


sender = Sender()


def deliveries_dispatch(*, delivery_ids: Sequence[Any]) -> int:
    """Claim the due deliveries among ``delivery_ids`` and hand them to this process's sender;
    returns how many were handed over. Returns at once: the sending happens on the sender's
    threads, so a slow receiver never holds a task thread.

    At most what the sender has room for (``WEBHOOK_SENDER_BACKLOG``) is claimed; the rest
    is left for the sweep. Safe to call twice with the same ids: the conditional claim lets
    one caller have each delivery, and only that claim may record its attempt.
    """
    ids = valid_ids(delivery_ids)[: max(0, sender.room())]
    if not ids:
        return 0
    token, _, rows = deliveries_claim(ids)
    sender.submit(token, rows)
    return len(rows)
