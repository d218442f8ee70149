"""The ops selectors on their own: per-provider statistics (moved from tests/providers)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.enrichment.models import ProviderAttempt
from apps.ops.selectors import provider_stats
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db


def test_provider_stats_hit_rate_and_latency():
    contact = ContactFactory()
    rows = [
        ("hunter", "hit", 100),
        ("hunter", "miss", 50),
        ("hunter", "error", 300),
        ("hunter", "skipped", 0),
        ("pdl", "cache", 0),
    ]
    ProviderAttempt.objects.bulk_create(
        ProviderAttempt(contact=contact, provider=p, kind="email", outcome=o, duration_ms=ms)
        for p, o, ms in rows
    )
    since = timezone.now() - timedelta(hours=1)
    stats = {s.provider: s for s in provider_stats(since=since)}
    hunter = stats["hunter"]
    assert (hunter.calls, hunter.hits, hunter.errors, hunter.skipped) == (3, 1, 1, 1)
    assert hunter.hit_rate == pytest.approx(1 / 3)
    assert hunter.avg_ms == pytest.approx(150)
    assert hunter.max_ms == 300
    assert stats["pdl"].calls == 0 and stats["pdl"].hit_rate is None and stats["pdl"].cached == 1
