"""Writes for ops staff: the support group's permissions and re-running failed contacts."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from typing import Any

from django.apps import apps as global_apps
from django.contrib.auth.models import Group, Permission
from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models import F

from apps.accounts.models import Account, LedgerEntry
from apps.accounts.notices import thresholds_crossed
from apps.accounts.services import credits_add
from apps.enrichment.models import BulkJob, Contact, ProviderAttempt
from apps.enrichment.services import contacts_publish
from apps.webhooks.services import EventDraft, events_emit

logger = logging.getLogger(__name__)

SUPPORT_GROUP = "support"


def sluice_app_labels() -> list[str]:
    """Labels of our own apps (``apps.*``): the support group sees these and nothing else."""
    return [c.label for c in global_apps.get_app_configs() if c.name.startswith("apps.")]


def support_group_sync(
    *, app_labels: Iterable[str] | None = None, using: str = DEFAULT_DB_ALIAS
) -> Group:
    """Create the read-only "support" group if needed and give it every Sluice view_* perm."""
    labels = list(app_labels) if app_labels is not None else sluice_app_labels()
    group, _ = Group.objects.using(using).get_or_create(name=SUPPORT_GROUP)
    perms = Permission.objects.using(using).filter(
        content_type__app_label__in=labels, codename__startswith="view_"
    )
    group.permissions.add(*perms)
    return group


def support_group_grant_on_migrate(sender: Any, *, using: str = DEFAULT_DB_ALIAS, **_: Any) -> None:
    """``post_migrate`` receiver: models added after the ops migration reach the group too."""
    if not getattr(sender, "name", "").startswith("apps.") or not sender.models_module:
        return
    support_group_sync(app_labels=[sender.label], using=using)


def contacts_rerun(*, contact_ids: Iterable[Any]) -> list[str]:
    """Put FAILED contacts back to ``pending`` and publish their waterfall once committed.

    Only finished contacts whose result is FAILED qualify (they were never charged). Their
    previous attempts are discarded so the API shows the new run alone, and their bulk's
    counters step back so the bulk adds them up again when they finish; a bulk that already
    emitted ``bulk.completed`` keeps ``completed_at`` so the event is never sent twice.
    Returns the ids that were re-run.
    """
    with transaction.atomic():
        rows = list(
            Contact.objects.select_for_update()
            .filter(pk__in=list(contact_ids), status=Contact.FINISHED, result_status=Contact.FAILED)
            .values_list("pk", "bulk_id")
        )
        if not rows:
            return []
        pks = [pk for pk, _ in rows]
        Contact.objects.filter(pk__in=pks).update(
            status=Contact.PENDING,
            result=None,
            result_status=None,
            credits_charged=0,
            finished_at=None,
            lease_expires_at=None,
            lease_owner=None,
            run_count=0,  # a fresh set of runs before the reaper gives up again
        )
        ProviderAttempt.objects.filter(contact_id__in=pks).delete()
        for bulk_id, count in Counter(b for _, b in rows if b).items():
            BulkJob.objects.filter(pk=bulk_id).update(
                finished=F("finished") - count, failed=F("failed") - count
            )
        ids = [str(pk) for pk in pks]
        transaction.on_commit(lambda: contacts_publish(ids))
    logger.info("re-running failed contacts", extra={"count": len(ids)})
    return ids


def credits_adjust(
    *, account: Account, amount: int, entry_type: str, reason: str, created_by: Any
) -> LedgerEntry:
    """An operator's top-up or adjustment: the ledger row, and in the same transaction the
    ``credits.low``/``credits.exhausted`` events a negative adjustment crosses into (as a
    charge would emit them)."""
    with transaction.atomic():
        entry = credits_add(
            account=account,
            amount=amount,
            entry_type=entry_type,
            reason=reason,
            created_by=created_by,
        )
        if amount < 0:
            after = entry.balance_after
            notices = thresholds_crossed(account_id=account.pk, before=after - amount, after=after)
            events_emit([EventDraft.credits(n) for n in notices])
    return entry
