"""Coalesce the publishes of single-contact requests in a web process.

Publishing one Celery message costs about 0.35 ms of CPU on the reference machine, a third
of everything a single ``POST /api/v1/enrich`` costs its web process (bench/intake.sh).
Under load a web process accepts many contacts per millisecond, so a request only appends
its committed contact id here and one background thread per process publishes what arrived
in the last ``ENRICHMENT_PUBLISH_LINGER_MS`` as one ``run_contacts`` message (chunked by
``ENRICHMENT_CHUNK_SIZE``). Kafka producers call this "linger".

Nothing is lost when a message never goes out (the process is killed between the commit and
the publish, or the broker is down): the contact row is already committed as ``pending`` and
the reaper re-publishes it after ``ENRICHMENT_STUCK_AFTER_SECONDS``. A clean exit publishes
what is left (``atexit``). With a linger of 0 the publish is synchronous, in the request.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time

from django.conf import settings

logger = logging.getLogger(__name__)


class Coalescer:
    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        # A forked child starts empty, with its own lock and (lazily) its own thread.
        self._lock = threading.Lock()
        self._ids: list[str] = []
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, contact_ids: list[str]) -> None:
        """Publish these committed contacts soon (now, when the linger is 0)."""
        if settings.ENRICHMENT_PUBLISH_LINGER_MS <= 0:
            _publish_or_log(contact_ids)
            return
        with self._lock:
            self._ids.extend(contact_ids)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="sluice-publisher", daemon=True
                )
                self._thread.start()
        self._wake.set()

    def flush(self) -> int:
        """Publish what is waiting, in this thread; returns how many contacts."""
        with self._lock:
            ids, self._ids = self._ids, []
        if ids:
            _publish_or_log(ids)
        return len(ids)

    def _run(self) -> None:
        while True:
            self._wake.wait()
            # Let the requests of the next few milliseconds join this message.
            time.sleep(max(0, settings.ENRICHMENT_PUBLISH_LINGER_MS) / 1000)
            self._wake.clear()  # before taking the ids: a later add() wakes us again
            self.flush()


def _publish(contact_ids: list[str]) -> None:
    from .services import contacts_publish

    contacts_publish(contact_ids)


def _publish_or_log(contact_ids: list[str]) -> None:
    try:
        _publish(contact_ids)
    except Exception:
        # The rows are committed as pending: the request has succeeded and the reaper
        # publishes them later. Failing the request would only make the client send a
        # duplicate.
        logger.exception(
            "publishing contacts failed; the reaper will re-publish them",
            extra={"count": len(contact_ids)},
        )


coalescer = Coalescer()
atexit.register(coalescer.flush)
