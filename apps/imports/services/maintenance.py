"""The sweep (imports and exports whose worker died or whose message was lost are published
again) and the purge of expired export files; beat runs both on the maintenance queue."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.core.files.storage import default_storage
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from ..models import Export, Import
from .exports import export_publish
from .imports import import_publish

logger = logging.getLogger(__name__)

SWEEP_LIMIT = 100


def _abandoned(now):  # type: ignore[no-untyped-def]
    """A lease that lapsed, or no lease and no message taken for the stuck period."""
    stuck = now - timedelta(seconds=settings.IMPORT_STUCK_AFTER_SECONDS)
    return Q(lease_expires_at__lt=now) | Q(lease_expires_at__isnull=True, last_published__lt=stuck)


def jobs_sweep() -> int:
    """Publish again the imports and exports nobody works on; returns how many."""
    now = timezone.now()
    published = 0
    imports = list(
        Import.objects.annotate(last_published=Coalesce("published_at", "created_at"))
        .filter(status=Import.PROCESSING, stage__in=(Import.VALIDATING, Import.ENQUEUEING))
        .filter(_abandoned(now))
        .values_list("pk", flat=True)[:SWEEP_LIMIT]
    )
    if imports:
        Import.objects.filter(pk__in=imports).update(published_at=now)
        for pk in imports:
            import_publish(str(pk))
    exports = list(
        Export.objects.annotate(last_published=Coalesce("published_at", "created_at"))
        .filter(status=Export.PROCESSING)
        .filter(_abandoned(now))
        .values_list("pk", flat=True)[:SWEEP_LIMIT]
    )
    if exports:
        Export.objects.filter(pk__in=exports).update(published_at=now)
        for pk in exports:
            export_publish(str(pk))
    published = len(imports) + len(exports)
    if published:
        logger.info("published abandoned jobs again", extra={"count": published})
    return published


def exports_purge() -> int:
    """Delete the files of exports past their retention; their rows stay, ``expired``."""
    now = timezone.now()
    due = list(
        Export.objects.filter(status=Export.COMPLETED, expires_at__lt=now).values_list(
            "pk", "file_key"
        )[:500]
    )
    for pk, key in due:
        try:
            if key:
                default_storage.delete(key)
        except Exception:
            logger.exception("could not delete an export's file", extra={"id": str(pk)})
            continue
        Export.objects.filter(pk=pk, status=Export.COMPLETED).update(
            status=Export.EXPIRED, file_key="", updated_at=now
        )
    return len(due)
