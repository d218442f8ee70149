"""Webhook gauges for /metrics: pending deliveries, and those whose claim lapsed. The admin
dashboard shows the same figures (``delivery_counts``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Q
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric

from .models import Delivery


@dataclass(frozen=True)
class DeliveryCounts:
    pending: int
    # Claimed by a process that died mid-attempt (its claim lapsed): the sweep republishes it.
    orphaned: int


def delivery_counts(*, now: datetime) -> DeliveryCounts:
    """One aggregate over the pending deliveries only (the partial index for
    ``status = pending``), however many finished ones the table holds."""
    row = Delivery.objects.filter(status=Delivery.PENDING).aggregate(
        pending=Count("pk"), orphaned=Count("pk", filter=Q(claimed_until__lt=now))
    )
    return DeliveryCounts(**row)


def collect() -> Iterator[Metric]:
    counts = delivery_counts(now=timezone.now())
    yield GaugeMetricFamily(
        "sluice_deliveries_pending",
        "Webhook deliveries not yet succeeded, failed or skipped (due now or waiting to retry)",
        value=counts.pending,
    )
    yield GaugeMetricFamily(
        "sluice_deliveries_orphaned",
        "Pending webhook deliveries whose claim lapsed: the process sending them died"
        " mid-attempt; the sweep republishes them within WEBHOOK_SWEEP_INTERVAL_SECONDS",
        value=counts.orphaned,
    )
