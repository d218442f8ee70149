"""Reads about providers for ops: recent hit rate and latency per provider (admin, dashboard)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.apps import apps
from django.db.models import Avg, Count, Max, Q
from django.utils import timezone


@dataclass(frozen=True)
class ProviderStats:
    provider: str
    calls: int  # hits + misses + errors (real calls; cache reuse and skips excluded)
    hits: int
    misses: int
    errors: int
    skipped: int
    cached: int
    avg_ms: float | None
    max_ms: int | None

    @property
    def hit_rate(self) -> float | None:
        """Hits per real call, 0-1; None when there were no calls."""
        return self.hits / self.calls if self.calls else None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.calls if self.calls else None


def provider_stats(*, hours: int = 24, provider: str | None = None) -> dict[str, ProviderStats]:
    """Per-provider outcome counts and call latency over the last ``hours`` hours."""
    # Looked up lazily: enrichment depends on providers, not the other way round.
    attempt = apps.get_model("enrichment", "ProviderAttempt")
    since = timezone.now() - timedelta(hours=hours)
    rows = attempt.objects.filter(created_at__gte=since)
    if provider:
        rows = rows.filter(provider=provider)
    calls = Q(outcome__in=["hit", "miss", "error"])
    aggregated = (
        rows.values("provider")
        .annotate(
            calls=Count("id", filter=calls),
            hits=Count("id", filter=Q(outcome="hit")),
            misses=Count("id", filter=Q(outcome="miss")),
            errors=Count("id", filter=Q(outcome="error")),
            skipped=Count("id", filter=Q(outcome="skipped")),
            cached=Count("id", filter=Q(outcome="cache")),
            avg_ms=Avg("duration_ms", filter=calls),
            max_ms=Max("duration_ms", filter=calls),
        )
        .order_by("provider")
    )
    return {row["provider"]: ProviderStats(**row) for row in aggregated}
