"""The leases a worker process holds on the imports and exports it is processing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.db.models import F, Model, Q
from django.utils import timezone

from apps.core.leases import LeaseKeeper

from ..models import Export, Import


class LeaseLost(Exception):
    """Another worker took the job over (our lease lapsed): stop, change nothing more."""


import_leases = LeaseKeeper(
    Import,
    expires_field="lease_expires_at",
    owner_field="lease_owner",
    lease_seconds=lambda: settings.IMPORT_LEASE_SECONDS,
    still_held=Q(status=Import.PROCESSING),
    name="imports",
)
export_leases = LeaseKeeper(
    Export,
    expires_field="lease_expires_at",
    owner_field="lease_owner",
    lease_seconds=lambda: settings.IMPORT_LEASE_SECONDS,
    still_held=Q(status=Export.PROCESSING),
    name="exports",
)


def job_claim(model: type[Model], keeper: LeaseKeeper, pk: Any, **still: Any) -> uuid.UUID | None:
    """Take the job's lease (none, or a lapsed one) in one UPDATE; its token, or None when
    another worker holds it or the job is over."""
    token = keeper.new_token()
    now = timezone.now()
    claimed = (
        model.objects.filter(pk=pk, **still)
        .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
        .update(
            lease_owner=token,
            lease_expires_at=keeper.expiry(),
            run_count=F("run_count") + 1,
            updated_at=now,
        )
    )
    if not claimed:
        return None
    keeper.hold(token, [pk])
    return token


def job_locked(model: type[Model], pk: Any, token: uuid.UUID) -> Any:
    """The job's row, locked, if this claim still owns it; else ``LeaseLost`` (the fence)."""
    row = model.objects.select_for_update().filter(pk=pk, lease_owner=token).first()
    if row is None:
        raise LeaseLost()
    return row


def job_release(model: type[Model], keeper: LeaseKeeper, pk: Any, token: uuid.UUID) -> None:
    keeper.release(token)
    model.objects.filter(pk=pk, lease_owner=token).update(lease_owner=None, lease_expires_at=None)


@contextmanager
def job_lease(model: type[Model], keeper: LeaseKeeper, pk: Any, token: uuid.UUID) -> Iterator[None]:
    """The claimed job's work: when it returns (done, failed, or taken over) the lease is given
    back at once; when it raises (a bug, a time limit, the database away) the lease is only
    no longer renewed, so it lapses within a lease and the sweep hands the job on."""
    try:
        yield
    except BaseException:
        keeper.release(token)
        raise
    job_release(model, keeper, pk, token)
