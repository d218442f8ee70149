"""Reads for the ops dashboard and the provider admin: aggregates only, a constant query count."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import (
    Avg,
    Count,
    IntegerField,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
)
from django.db.models.functions import Coalesce, TruncHour

from apps.enrichment import metrics as enrichment_metrics
from apps.enrichment.models import Contact, ProviderAttempt
from apps.webhooks.metrics import delivery_counts

from .percentile import Percentile

QUEUES = ("enrichment", "webhooks", "maintenance")
# kombu's Redis transport keeps messages with a priority in sibling lists "<queue>\x06\x16<p>".
_KOMBU_PRIORITY_SEP = "\x06\x16"
_KOMBU_PRIORITY_STEPS = (3, 6, 9)

PENDING = "pending"
OUTCOMES = (Contact.VERIFIED, Contact.NOT_FOUND, Contact.NO_CREDITS, Contact.FAILED, PENDING)


# --- Providers --------------------------------------------------------------------------------

# Outcomes that are real calls to a provider; "skipped" and "cache" never reached it.
CALL_OUTCOMES = (ProviderAttempt.HIT, ProviderAttempt.MISS, ProviderAttempt.ERROR)
# The figures that count attempts (0 when there are none); the others are latencies in ms.
_COUNT_FIGURES = ("calls", "hits", "misses", "errors", "skipped", "cached")


@dataclass(frozen=True)
class ProviderStats:
    provider: str
    calls: int  # hits + misses + errors: real calls (cache reuse and skips excluded)
    hits: int
    misses: int
    errors: int
    skipped: int
    cached: int
    avg_ms: float | None  # call latency
    max_ms: int | None
    p95_ms: float | None

    @property
    def hit_rate(self) -> float | None:
        """Hits per real call (skips and cache reuse excluded), or None without calls."""
        return self.hits / self.calls if self.calls else None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.calls if self.calls else None


def provider_attempt_stats(*, since: datetime) -> QuerySet:
    """Per provider since ``since``: outcome counts and call latency (average, maximum, p95);
    one query. The one definition of these figures: the dashboard reads it row by row, the
    provider admin one figure at a time through ``provider_stat``."""
    calls = Q(outcome__in=CALL_OUTCOMES)
    return (
        ProviderAttempt.objects.filter(created_at__gte=since)
        .values("provider")
        .annotate(
            calls=Count("id", filter=calls),
            hits=Count("id", filter=Q(outcome=ProviderAttempt.HIT)),
            misses=Count("id", filter=Q(outcome=ProviderAttempt.MISS)),
            errors=Count("id", filter=Q(outcome=ProviderAttempt.ERROR)),
            skipped=Count("id", filter=Q(outcome=ProviderAttempt.SKIPPED)),
            cached=Count("id", filter=Q(outcome=ProviderAttempt.CACHE)),
            avg_ms=Avg("duration_ms", filter=calls),
            max_ms=Max("duration_ms", filter=calls),
            p95_ms=Percentile("duration_ms", 0.95, filter=calls),
        )
        .order_by("provider")
    )


def provider_stats(*, since: datetime) -> list[ProviderStats]:
    """``provider_attempt_stats`` as objects, by provider name; one query."""
    return [ProviderStats(**row) for row in provider_attempt_stats(since=since)]


def provider_stat(figure: str, *, since: datetime, provider: Any = None) -> Coalesce | Subquery:
    """One figure of ``provider_attempt_stats`` (``"calls"``, ``"p95_ms"``, …) as a correlated
    subquery for ``provider``, by default the outer row's ``name`` (a ``ProviderConfig``):
    a list of providers gets its figures inside its own one query, whatever its length, and
    can sort by them. A count is 0 for a provider without attempts; a latency is None."""
    rows = (
        provider_attempt_stats(since=since)
        .filter(provider=OuterRef("name") if provider is None else provider)
        .order_by()
        .values(figure)
    )
    if figure in _COUNT_FIGURES:
        return Coalesce(Subquery(rows), 0, output_field=IntegerField())
    return Subquery(rows)


# --- Enrichments ------------------------------------------------------------------------------


@dataclass
class HourBucket:
    hour: datetime
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def contact_outcomes_by_hour(*, now: datetime, hours: int = 24) -> list[HourBucket]:
    """Contacts accepted in each of the last ``hours`` clock hours (the current one last),
    split by outcome, or pending; one query."""
    until = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    start = until - timedelta(hours=hours)
    buckets = {
        start + timedelta(hours=i): HourBucket(
            hour=start + timedelta(hours=i), counts=dict.fromkeys(OUTCOMES, 0)
        )
        for i in range(hours)
    }
    rows = (
        Contact.objects.filter(created_at__gte=start, created_at__lt=until)
        .annotate(hour=TruncHour("created_at"))
        .values("hour", "status", "result_status")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in rows:
        bucket = buckets.get(row["hour"])
        if bucket is None:
            continue
        outcome = row["result_status"] if row["status"] == Contact.FINISHED else PENDING
        bucket.counts[outcome or PENDING] += row["n"]
    return list(buckets.values())


def outcome_totals(buckets: list[HourBucket]) -> dict[str, int]:
    return {o: sum(b.counts[o] for b in buckets) for o in OUTCOMES}


# --- Recovery -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recovery:
    """Work whose worker is gone, or that waits too long: the figures /metrics reports as
    ``sluice_contacts_orphaned``, ``sluice_contacts_rerun_24h``, ``sluice_contacts_stuck``
    and ``sluice_deliveries_orphaned``, from the same queries."""

    contacts_pending: int
    contacts_orphaned: int
    contacts_stuck: int
    contacts_rerun: int
    deliveries_orphaned: int


def recovery(*, now: datetime, since: datetime) -> Recovery:
    """Pending contacts (one aggregate over the pending ones), contacts created since
    ``since`` that needed more than one run, and pending deliveries whose claim lapsed (one
    aggregate over the pending ones); three queries."""
    contacts = enrichment_metrics.pending_counts(now=now)
    return Recovery(
        contacts_pending=contacts.pending,
        contacts_orphaned=contacts.orphaned,
        contacts_stuck=contacts.stuck,
        contacts_rerun=enrichment_metrics.rerun_count(since=since),
        deliveries_orphaned=delivery_counts(now=now).orphaned,
    )


# --- Queues -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueDepths:
    broker: str
    depths: dict[str, int | None]
    error: str = ""


def queue_depths() -> QueueDepths:
    """Messages waiting per queue: LLEN on Redis, message files in the filesystem broker."""
    url = settings.CELERY_BROKER_URL
    if url.startswith(("redis://", "rediss://", "unix://")):
        return _redis_depths(url)
    if url.startswith("filesystem://"):
        return _filesystem_depths(Path(settings.BROKER_DIR) / "queue")
    return QueueDepths(
        broker=url.split(":", 1)[0], depths=dict.fromkeys(QUEUES), error="unsupported"
    )


def _redis_depths(url: str) -> QueueDepths:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    keys = {
        q: [q, *(f"{q}{_KOMBU_PRIORITY_SEP}{p}" for p in _KOMBU_PRIORITY_STEPS)] for q in QUEUES
    }
    try:
        pipe = client.pipeline(transaction=False)
        for names in keys.values():
            for name in names:
                pipe.llen(name)
        lengths = iter(pipe.execute())
    except redis.RedisError as exc:
        return QueueDepths(broker="redis", depths=dict.fromkeys(QUEUES), error=str(exc))
    finally:
        client.close()
    return QueueDepths(
        broker="redis", depths={q: sum(next(lengths) for _ in names) for q, names in keys.items()}
    )


def _filesystem_depths(folder: Path) -> QueueDepths:
    depths: dict[str, int | None] = dict.fromkeys(QUEUES, 0)
    try:
        names = [p.name for p in folder.iterdir()]
    except FileNotFoundError:
        names = []
    for name in names:
        # kombu names each message "<ms>_<uuid>.<queue>.msg".
        queue = name.partition(".")[2].removesuffix(".msg")
        if queue in depths:
            depths[queue] = (depths[queue] or 0) + 1
    return QueueDepths(broker="filesystem", depths=depths)


# --- Webhooks ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookStats:
    attempts: int
    succeeded: int
    deliveries_by_status: dict[str, int]

    @property
    def failed(self) -> int:
        return self.attempts - self.succeeded

    @property
    def success_rate(self) -> float | None:
        return self.succeeded / self.attempts if self.attempts else None


def _webhook_model(name: str) -> type | None:
    from django.apps import apps

    try:
        return apps.get_model("webhooks", name)
    except LookupError:
        return None


def webhook_stats(*, since: datetime) -> WebhookStats | None:
    """Delivery attempts since ``since`` (HTTP requests made) and deliveries by status."""
    attempt_model = _webhook_model("DeliveryAttempt")
    delivery_model = _webhook_model("Delivery")
    if attempt_model is None or delivery_model is None:
        return None
    totals = attempt_model.objects.filter(at__gte=since).aggregate(
        attempts=Count("id"), succeeded=Count("id", filter=Q(succeeded=True))
    )
    by_status = dict(
        delivery_model.objects.filter(created_at__gte=since)
        .values_list("status")
        .annotate(n=Count("id"))
        .order_by()
    )
    return WebhookStats(
        attempts=totals["attempts"], succeeded=totals["succeeded"], deliveries_by_status=by_status
    )


def endpoints_disabled(*, limit: int = 20) -> tuple[int, list]:
    """How many endpoints are deactivated, and the most recent ones with their account."""
    endpoint_model = _webhook_model("Endpoint")
    if endpoint_model is None:
        return 0, []
    disabled = endpoint_model.objects.filter(active=False)
    rows = list(disabled.select_related("account").order_by("-disabled_at")[:limit])
    total = len(rows) if len(rows) < limit else disabled.count()
    return total, rows
