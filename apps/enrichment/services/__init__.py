"""Writes for enrichment, split by sub-domain; every public service is importable from here.

* ``intake``: store accepted contacts (one INSERT for a single contact, two for a bulk).
* ``publishing``: their ``run_contacts`` messages after commit; the web process's coalescer.
* ``running``: claim a chunk under a lease, run the waterfalls in the process-wide pool,
  finish them in the process's finisher (``runner``).
* ``holds``: credits held for the running contacts before any paid call.
* ``finishing``: store results, charge, record attempts, count bulks, emit events.
* ``maintenance``: the reaper, and an operator's release.
* ``waiting``: a web thread waiting for its contact to finish (``POST /enrich/sync``).
"""

from .finishing import bulk_close, contacts_finish
from .intake import (
    bulk_append,
    bulk_enqueue,
    bulk_enrich_sync,
    bulk_open,
    contact_enqueue,
    contact_enrich_sync,
    ensure_credits,
)
from .leases import LeaseLost, contact_leases
from .maintenance import contacts_reap, contacts_release
from .publishing import PUBLISH_FAILED, coalescer, contacts_publish
from .running import contacts_claim, contacts_run, contacts_start, runner

__all__ = [
    "PUBLISH_FAILED",
    "LeaseLost",
    "bulk_append",
    "bulk_close",
    "bulk_enqueue",
    "bulk_enrich_sync",
    "bulk_open",
    "coalescer",
    "contact_enqueue",
    "contact_enrich_sync",
    "contact_leases",
    "contacts_claim",
    "contacts_finish",
    "contacts_publish",
    "contacts_reap",
    "contacts_release",
    "contacts_run",
    "contacts_start",
    "ensure_credits",
    "runner",
]
