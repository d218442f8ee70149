"""Riding out a database outage in a worker: retry the write the work needs, for a while."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection

logger = logging.getLogger(__name__)

T = TypeVar("T")

# What a lost or refused connection raises (a restart, a failover, a network cut); not
# integrity or programming errors, which no retry can cure.
CONNECTION_ERRORS = (OperationalError, InterfaceError)


def db_retry(fn: Callable[[], T], *, what: str, seconds: float | None = None) -> T:
    """``fn()``, retried with backoff while the database is unreachable, for up to ``seconds``
    (``DATABASE_OUTAGE_RETRY_SECONDS``); then the last error is raised.

    ``fn`` must be safe to run again (its own transaction, idempotent or fenced). Inside an
    outer transaction nothing is retried: the whole transaction is lost with the connection.
    """
    budget = settings.DATABASE_OUTAGE_RETRY_SECONDS if seconds is None else seconds
    deadline = time.monotonic() + budget
    delay = 0.25
    while True:
        try:
            return fn()
        except CONNECTION_ERRORS as exc:
            if connection.in_atomic_block or time.monotonic() + delay > deadline:
                raise
            logger.warning(
                "database unreachable; retrying", extra={"what": what, "error": str(exc)[:200]}
            )
            connection.close()  # a broken connection is replaced on the next query
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
