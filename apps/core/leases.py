"""Leases that a worker process keeps alive while it works: short, renewed, fenced.

A row (a pending contact, a claimed delivery) is claimed by writing a fresh *token* and an
expiry a few seconds ahead. While the work runs, the process's ``LeaseKeeper`` thread renews
the expiry of every row it holds (one UPDATE per claim) every ``lease / 5`` seconds, so a
healthy worker never loses a lease however long a provider or a receiver takes, and a worker that
dies (SIGKILL, OOM, a lost machine) stops renewing: its rows' leases lapse within one lease
period and the reaper or the sweep gives them to another worker.

Two guarantees come with it:

* **Fence.** Every write that ends the work names the token it claimed with (``… WHERE
  lease_owner = token``), so once another claim has taken the row over, the old holder's
  late result changes nothing.
* **Self-fencing.** ``remaining(token)`` is this process's own, pessimistic view of the lease:
  the time left since the last renewal that it knows succeeded. Work stops starting new
  external calls for a token whose lease may be about to lapse (the database is unreachable
  and renewals fail), so two workers do not call out for the same row at once.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from django.db import connection
from django.db.models import Model, Q
from django.utils import timezone

logger = logging.getLogger(__name__)


class LeaseKeeper:
    """Renews the leases this process holds on rows of one model.

    ``expires_field``/``owner_field`` name the model's lease columns; ``still_held`` is the
    condition a row must still meet to be renewed (for example ``status = pending``);
    ``lease_seconds`` is read on every use, so settings changed at run time apply.
    """

    def __init__(
        self,
        model: type[Model],
        *,
        expires_field: str,
        owner_field: str,
        lease_seconds: Callable[[], float],
        still_held: Q | None = None,
        name: str = "",
    ) -> None:
        self.model = model
        self.expires_field = expires_field
        self.owner_field = owner_field
        self.lease_seconds = lease_seconds
        self.still_held = still_held or Q()
        self.name = name or model.__name__.lower()
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        # token -> (ids held under it, monotonic time the lease was last known to be renewed)
        self._held: dict[uuid.UUID, tuple[set[Any], float]] = {}
        self._thread: threading.Thread | None = None

    # --- what the work calls ------------------------------------------------------------------

    def new_token(self) -> uuid.UUID:
        return uuid.uuid4()

    def expiry(self) -> Any:
        """The expiry a claim or a renewal writes now."""
        return timezone.now() + timedelta(seconds=self.lease_seconds())

    def hold(self, token: uuid.UUID, ids: Iterable[Any], *, since: float | None = None) -> None:
        """Keep renewing these rows (just claimed with ``token``) until ``release``."""
        ids = {str(pk) for pk in ids}  # one spelling of a key (UUIDs and strings mix)
        if not ids:
            return
        started = time.monotonic() if since is None else since
        with self._lock:
            held, renewed = self._held.get(token, (set(), started))
            held |= ids
            self._held[token] = (held, min(renewed, started))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name=f"sluice-lease-{self.name}", daemon=True
                )
                self._thread.start()

    def release(self, token: uuid.UUID, ids: Iterable[Any] | None = None) -> None:
        """Stop renewing ``ids`` (all of the token's rows when None)."""
        with self._lock:
            if token not in self._held:
                return
            if ids is None:
                del self._held[token]
                return
            held = self._held[token][0]
            held -= {str(pk) for pk in ids}
            if not held:
                del self._held[token]

    def remaining(self, token: uuid.UUID) -> float:
        """Seconds the token's lease surely has left, as far as this process knows."""
        with self._lock:
            entry = self._held.get(token)
        if entry is None:
            return 0.0
        return entry[1] + self.lease_seconds() - time.monotonic()

    def holding(self) -> int:
        with self._lock:
            return sum(len(ids) for ids, _ in self._held.values())

    # --- the renewing thread ------------------------------------------------------------------

    def interval(self) -> float:
        return max(0.05, self.lease_seconds() / 5)

    def renew(self) -> int:
        """One renewal of every held row, in one UPDATE; returns how many rows it renewed."""
        with self._lock:
            snapshot = {token: set(ids) for token, (ids, _) in self._held.items()}
        if not snapshot:
            return 0
        started = time.monotonic()
        expiry = self.expiry()
        renewed = 0
        # One UPDATE per claim (a process holds a handful): a claim whose rows all went to
        # another holder (reaped, taken over) renews nothing, and its remaining() is then left
        # to run out, so the work stops calling out for rows that are no longer its own.
        for token, ids in snapshot.items():
            count = (
                self.model.objects.filter(self.still_held)
                .filter(pk__in=list(ids), **{self.owner_field: token})
                .update(**{self.expires_field: expiry})
            )
            renewed += count
            if count:
                with self._lock:
                    if token in self._held:
                        held, last = self._held[token]
                        self._held[token] = (held, max(last, started))
        return renewed

    def _run(self) -> None:
        while True:
            time.sleep(self.interval())
            with self._lock:
                if not self._held:
                    self._thread = None
                    break
            try:
                self.renew()
            except Exception as exc:
                # The database is away: keep trying; remaining() tells the work how long the
                # leases may still be trusted. A broken connection is dropped for a new one.
                logger.warning(
                    "lease renewal failed", extra={"leases": self.name, "error": str(exc)}
                )
                connection.close()
        connection.close()  # this thread's own connection: not left open once it ends
