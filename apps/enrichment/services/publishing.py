"""Publishing contacts' waterfall messages, always after commit.

``contacts_publish`` puts one ``run_contacts`` message per chunk on the ``enrichment``
queue. Single-contact requests go through the web process's ``coalescer``, below.

Publishing one Celery message costs about 0.35 ms of CPU on the reference machine, a third
of everything a single ``POST /api/v1/enrich`` costs its web process (bench/intake.sh).
Under load a web process accepts many contacts per millisecond, so a request only appends
its committed contact id here and one background thread per process publishes what arrived
in the last ``ENRICHMENT_PUBLISH_LINGER_MS`` as one ``run_contacts`` message (chunked by
``ENRICHMENT_CHUNK_SIZE``). Kafka producers call this "linger".

Nothing is lost when a message never goes out (the process is killed between the commit and
the publish, or the broker is down): the contact row is already committed as ``pending`` and
the reaper re-publishes it after ``ENRICHMENT_STUCK_AFTER_SECONDS``. A clean exit publishes
what is left (``atexit``). With a linger of 0 the publish is synchronous, in the request, and
so it is for ``POST /enrich/sync`` (``linger=False``): its client waits for the contact.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from datetime import UTC, datetime

from celery import current_app
from django.conf import settings

from ..models import Contact

logger = logging.getLogger(__name__)


# ``published_at`` of a committed contact whose message could not be published (the broker
# was down): the reaper's next run publishes it, without waiting for the stuck period.
PUBLISH_FAILED = datetime(1970, 1, 1, tzinfo=UTC)
# The task that runs a chunk (``tasks.run_contacts``), named rather than imported: the tasks
# import the services, not the other way round. Routed by name (config/celery.py).
RUN_CONTACTS = "apps.enrichment.tasks.run_contacts"


def contacts_publish(contact_ids: list[str]) -> None:
    """Publish the waterfall for these contacts: one message per chunk, never one per contact.

    Never raises: called after commit, the rows are already accepted. When the broker is
    down, the first failed publish stops it (each one waits for the broker for about a
    second and a half) and the rest are marked for the reaper (``PUBLISH_FAILED``).
    """
    size = settings.ENRICHMENT_CHUNK_SIZE
    for start in range(0, len(contact_ids), size):
        chunk = contact_ids[start : start + size]
        try:
            # A given argsrepr spares Celery its saferepr of the ids (a sixth of the publish's
            # CPU); logs and monitors see the count, the ids are in the message body.
            current_app.send_task(
                RUN_CONTACTS,
                args=[chunk],
                argsrepr=f"[<{len(chunk)} contact ids>]",
                kwargsrepr="{}",
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

    def add(self, contact_ids: list[str], *, linger: bool = True) -> None:
        """Publish these committed contacts soon (now, when the linger is 0 or not wanted)."""
        if not linger or settings.ENRICHMENT_PUBLISH_LINGER_MS <= 0:
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
