"""Enrichment gauges for /metrics: pending, orphaned, stuck and re-run contacts, outcomes and
provider calls. The admin dashboard shows the same recovery figures (``pending_counts``,
``rerun_count``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Avg, Count, Q
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric

from .models import Contact, ProviderAttempt


@dataclass(frozen=True)
class PendingCounts:
    """The pending contacts now: all of them, those whose lease lapsed (``orphaned``: their
    worker died or their run crashed) and those pending longer than
    ENRICHMENT_STUCK_AFTER_SECONDS whatever their lease (``stuck``)."""

    pending: int
    orphaned: int
    stuck: int


def pending_counts(*, now: datetime) -> PendingCounts:
    """One aggregate over the pending contacts only (the partial index on ``created_at`` for
    ``status = pending``), however many finished contacts the table holds."""
    stuck_before = now - timedelta(seconds=settings.ENRICHMENT_STUCK_AFTER_SECONDS)
    row = Contact.objects.filter(status=Contact.PENDING).aggregate(
        pending=Count("pk"),
        orphaned=Count("pk", filter=Q(lease_expires_at__lt=now)),
        stuck=Count("pk", filter=Q(created_at__lt=stuck_before)),
    )
    return PendingCounts(**row)


def rerun_count(*, since: datetime) -> int:
    """Contacts created since ``since`` that were claimed more than once (run again after a
    lost lease or a crash, or re-run by an operator), whatever their status now."""
    return Contact.objects.filter(created_at__gte=since, run_count__gt=1).count()


def collect() -> Iterator[Metric]:
    now = timezone.now()
    since = now - timedelta(hours=24)
    counts = pending_counts(now=now)
    yield GaugeMetricFamily(
        "sluice_contacts_pending", "Contacts waiting for their waterfall", value=counts.pending
    )
    yield GaugeMetricFamily(
        "sluice_contacts_orphaned",
        "Pending contacts whose worker's lease lapsed: their worker died or their run crashed;"
        " the reaper re-runs them within ENRICHMENT_REAP_INTERVAL_SECONDS",
        value=counts.orphaned,
    )
    yield GaugeMetricFamily(
        "sluice_contacts_stuck",
        "Contacts pending for longer than ENRICHMENT_STUCK_AFTER_SECONDS since they were"
        " accepted, whatever their lease (running, lapsed or never claimed)",
        value=counts.stuck,
    )
    yield GaugeMetricFamily(
        "sluice_contacts_rerun_24h",
        "Contacts created in the last 24 h that needed more than one run (run again after a"
        " lost lease or a crash, or re-run by an operator)",
        value=rerun_count(since=since),
    )
    finished = GaugeMetricFamily(
        "sluice_contacts_finished_24h",
        "Contacts finished in the last 24 h by result",
        labels=["result"],
    )
    rows = (
        Contact.objects.filter(finished_at__gte=since)
        .values("result_status")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for row in rows:
        finished.add_metric([row["result_status"] or ""], row["n"])
    yield finished
    calls = GaugeMetricFamily(
        "sluice_provider_attempts_24h",
        "Provider attempts in the last 24 h",
        labels=["provider", "outcome"],
    )
    latency = GaugeMetricFamily(
        "sluice_provider_latency_ms_avg_24h",
        "Mean provider call duration, last 24 h",
        labels=["provider"],
    )
    per_provider: dict[str, list[float]] = {}
    rows = (
        ProviderAttempt.objects.filter(created_at__gte=since)
        .values("provider", "outcome")
        .annotate(n=Count("pk"), ms=Avg("duration_ms"))
        .order_by()
    )
    for row in rows:
        calls.add_metric([row["provider"], row["outcome"]], row["n"])
        per_provider.setdefault(row["provider"], []).append((row["n"], row["ms"] or 0))
    for provider, parts in per_provider.items():
        total = sum(n for n, _ in parts)
        latency.add_metric([provider], sum(n * ms for n, ms in parts) / total if total else 0)
    yield calls
    yield latency
