"""Waiting in a web process for contacts to finish (``POST /enrich/sync``), without polling.

The finish transaction sends ``NOTIFY sluice_contacts_finished, '<id>,<id>,…'``
(``notify_finished``): PostgreSQL delivers it on commit, so a waiter never wakes for a
contact that rolled back. One listener thread per web process holds one connection that
``LISTEN``s and wakes the threads waiting for those ids. A waiter reads its contact once
before waiting (it may have finished already) and once after waking; when the listener
reconnects (a database restart), every waiter reads once more, in case a notification was
lost meanwhile. Nothing polls the database in a loop.

A web thread held by a wait is a thread that serves nobody else, so a process holds at most
``ENRICH_SYNC_MAX_WAITS`` waits; past that a request answers 202 at once (``WaitSlots``).
Embedded mode (SQLite) has no NOTIFY: a waiter there reads its contact every half second.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.db import connection

logger = logging.getLogger(__name__)

CHANNEL = "sluice_contacts_finished"
# NOTIFY payloads are limited to 8000 bytes: ids are sent in groups well below it.
_IDS_PER_NOTIFY = 150


def notify_finished(contact_ids: Iterable[Any]) -> None:
    """Tell listening web processes these contacts finished, on commit of the caller's
    transaction (PostgreSQL only; one statement per 150 contacts)."""
    if connection.vendor != "postgresql":
        return
    ids = [str(pk) for pk in contact_ids]
    with connection.cursor() as cursor:
        for start in range(0, len(ids), _IDS_PER_NOTIFY):
            cursor.execute(
                "SELECT pg_notify(%s, %s)",
                [CHANNEL, ",".join(ids[start : start + _IDS_PER_NOTIFY])],
            )


class _Listener:
    """The process's LISTEN connection and the threads waiting on it, by contact id."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, list[threading.Event]] = {}
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()  # LISTEN is in place (set again after a reconnect)
        self._stop = threading.Event()
        self._conn: Any = None

    def register(self, contact_ids: Iterable[str]) -> threading.Event:
        """One event, set when any of these contacts finishes."""
        event = threading.Event()
        with self._lock:
            for contact_id in contact_ids:
                self._waiting.setdefault(contact_id, []).append(event)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="sluice-finished-listener", daemon=True
                )
                self._thread.start()
        return event

    def unregister(self, contact_ids: Iterable[str], event: threading.Event) -> None:
        with self._lock:
            for contact_id in contact_ids:
                events = self._waiting.get(contact_id, [])
                if event in events:
                    events.remove(event)
                if not events:
                    self._waiting.pop(contact_id, None)

    def stop(self) -> None:
        """Close the listening connection and end the thread (tests, before dropping their
        database); the next waiter starts a new one."""
        thread = self._thread
        if thread is None:
            return
        self._stop.set()
        conn = self._conn
        thread.join(5)  # it looks at the flag at least every second
        if thread.is_alive() and conn is not None:
            conn.close()
            thread.join(5)
        self._thread, self._stop = None, threading.Event()

    def ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout)

    def _wake(self, ids: Iterable[str] | None) -> None:
        """Wake the waiters of these ids (every waiter when None)."""
        with self._lock:
            keys = list(self._waiting) if ids is None else [i for i in ids if i in self._waiting]
            for key in keys:
                for event in self._waiting[key]:
                    event.set()

    def _run(self) -> None:
        import psycopg

        stop = self._stop
        while not stop.is_set():
            try:
                with psycopg.connect(_conninfo(), autocommit=True) as conn:
                    self._conn = conn
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._ready.set()
                    # Anything finished while we were away was not heard: look again.
                    self._wake(None)
                    while not stop.is_set():
                        for notify in conn.notifies(timeout=1.0):
                            self._wake(notify.payload.split(","))
                        conn.execute("SELECT 1")  # a dead connection raises here
            except Exception:  # the listener must outlive a database restart
                self._ready.clear()
                if not stop.is_set():
                    logger.warning("finished-contacts listener lost its connection; reconnecting")
                    stop.wait(1.0)
            finally:
                self._conn = None


def _conninfo() -> str:
    db = settings.DATABASES["default"]
    from psycopg.conninfo import make_conninfo

    options = {
        k: v for k, v in db.get("OPTIONS", {}).items() if k in ("connect_timeout", "sslmode")
    }
    return make_conninfo(
        dbname=db.get("NAME") or "",
        user=db.get("USER") or None,
        password=db.get("PASSWORD") or None,
        host=db.get("HOST") or None,
        port=str(db.get("PORT") or "") or None,
        application_name="sluice-sync-listener",
        **options,
    )


listener = _Listener()


class WaitSlots:
    """At most ``ENRICH_SYNC_MAX_WAITS`` waiting requests per process (never blocks)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._used = 0
        os.register_at_fork(after_in_child=self._after_fork)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._used = 0

    @contextmanager
    def slot(self):  # type: ignore[no-untyped-def]
        """Yields whether a slot was free; holds it for the ``with`` block."""
        with self._lock:
            free = self._used < settings.ENRICH_SYNC_MAX_WAITS
            if free:
                self._used += 1
        try:
            yield free
        finally:
            if free:
                with self._lock:
                    self._used -= 1

    @property
    def used(self) -> int:
        return self._used


wait_slots = WaitSlots()


def contacts_wait(contact_ids: Iterable[Any], *, timeout: float, done: Callable[[], bool]) -> bool:
    """Wait up to ``timeout`` seconds until ``done()`` (one query: have these contacts
    finished?), reading it before waiting and after each notification about one of them.
    Returns whether it was done in time."""
    deadline = time.monotonic() + timeout
    if connection.vendor != "postgresql":
        while True:
            if done():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
    keys = [str(pk) for pk in contact_ids]
    event = listener.register(keys)
    try:
        # Listening before the first read, so a finish between the two is not missed.
        listener.ready(min(2.0, timeout))
        while True:
            if done():
                return True
            left = deadline - time.monotonic()
            if left <= 0 or not event.wait(left):
                return done()
            event.clear()
    finally:
        listener.unregister(keys, event)


def contact_wait(contact_id: Any, *, timeout: float, finished: Callable[[], bool]) -> bool:
    """``contacts_wait`` for one contact."""
    return contacts_wait([contact_id], timeout=timeout, done=finished)
