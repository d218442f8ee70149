"""The leases a worker process holds on the contacts it runs (``apps.core.leases``)."""

from __future__ import annotations

from django.conf import settings
from django.db.models import Q

from apps.core.leases import LeaseKeeper

from ..models import Contact

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
