"""Prometheus /metrics: values computed from the database and the Redis broker."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from apps.enrichment.models import ProviderAttempt
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db


def _samples(response) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_metrics_report_contacts_attempts_and_queues(redis_client):
    from django.utils import timezone

    ContactFactory()
    done = ContactFactory(status="finished", result_status="VERIFIED", finished_at=timezone.now())
    ProviderAttempt.objects.create(
        contact=done, provider="hunter", kind="email", outcome="hit", duration_ms=120
    )
    ProviderAttempt.objects.create(
        contact=done, provider="hunter", kind="email", outcome="miss", duration_ms=80
    )
    redis_client.lpush("webhooks", "x", "y")
    response = APIClient().get("/metrics")
    assert response.status_code == 200
    samples = _samples(response)
    assert samples[("sluice_contacts_pending", ())] == 1
    assert samples[("sluice_contacts_finished_24h", (("result", "VERIFIED"),))] == 1
    assert (
        samples[("sluice_provider_attempts_24h", (("outcome", "hit"), ("provider", "hunter")))] == 1
    )
    assert samples[("sluice_provider_latency_ms_avg_24h", (("provider", "hunter"),))] == 100
    assert samples[("sluice_queue_depth", (("queue", "webhooks"),))] == 2


def test_metrics_token(settings):
    settings.METRICS_TOKEN = "s3cret"
    assert APIClient().get("/metrics").status_code == 401
    ok = APIClient().get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret")
    assert ok.status_code == 200
