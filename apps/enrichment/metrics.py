"""Enrichment gauges for /metrics: pending and stuck contacts, outcomes and provider calls."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.db.models import Avg, Count
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric

from .models import Contact, ProviderAttempt


def collect() -> Iterator[Metric]:
    now = timezone.now()
    pending = Contact.objects.filter(status=Contact.PENDING)
    yield GaugeMetricFamily(
        "sluice_contacts_pending", "Contacts waiting for their waterfall", value=pending.count()
    )
    stuck_before = now - timedelta(seconds=settings.ENRICHMENT_STUCK_AFTER_SECONDS)
    yield GaugeMetricFamily(
        "sluice_contacts_stuck",
        "Pending contacts older than ENRICHMENT_STUCK_AFTER_SECONDS",
        value=pending.filter(created_at__lt=stuck_before).count(),
    )
    since = now - timedelta(hours=24)
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
