"""Prometheus /metrics: values computed from the database and the Redis broker."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from apps.enrichment.models import ProviderAttempt
from tests.factories import ContactFactory, leased_contact

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
    for header in ({}, {"HTTP_AUTHORIZATION": "Bearer wrong"}, {"HTTP_AUTHORIZATION": "Bearer é"}):
        refused = APIClient().get("/metrics", **header)
        assert refused.status_code == 401
        assert refused.json()["code"] == "unauthorized"
    ok = APIClient().get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret")
    assert ok.status_code == 200


def test_in_production_metrics_is_a_404_until_a_token_is_set(settings):
    """Issue 13 item 4: the endpoint does not exist rather than being public; the process
    starts and serves the API as usual."""
    settings.METRICS_REQUIRE_TOKEN = True
    settings.METRICS_TOKEN = ""
    missing = APIClient().get("/metrics")
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"
    assert APIClient().get("/healthz").status_code == 200
    settings.METRICS_TOKEN = "s3cret"
    assert APIClient().get("/metrics").status_code == 401
    assert APIClient().get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret").status_code == 200


def _families(response) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(response.content.decode())}


def test_metrics_tell_orphaned_stuck_and_rerun_contacts_apart(settings):
    settings.ENRICHMENT_STUCK_AFTER_SECONDS = 120
    leased_contact(lease=10, runs=1)  # running now: a live worker renews its lease
    leased_contact(lease=-1, runs=1)  # orphaned: its worker is gone
    leased_contact(lease=-30, runs=2)  # orphaned again, after a second run
    leased_contact(age=600, lease=10, runs=3)  # stuck (long pending) though a live worker holds it
    leased_contact(age=300, lease=-5, runs=1)  # stuck and orphaned
    leased_contact(age=900)  # stuck, never claimed (its message seems lost)
    leased_contact(age=30)  # waiting for a worker
    # Finished ones are neither orphaned nor stuck, whatever their stale lease says; those
    # created in the last 24 h that needed more than one run count as re-run.
    leased_contact(age=900, lease=-900, runs=2, status="finished", result_status="VERIFIED")
    leased_contact(age=30 * 3600, lease=-900, runs=4, status="finished", result_status="FAILED")

    samples = _samples(APIClient().get("/metrics"))
    assert samples[("sluice_contacts_pending", ())] == 7
    assert samples[("sluice_contacts_orphaned", ())] == 3
    assert samples[("sluice_contacts_stuck", ())] == 3
    assert samples[("sluice_contacts_rerun_24h", ())] == 3

    settings.ENRICHMENT_STUCK_AFTER_SECONDS = 400
    assert _samples(APIClient().get("/metrics"))[("sluice_contacts_stuck", ())] == 2


def test_metrics_count_deliveries_whose_claim_lapsed():
    from datetime import timedelta

    from django.utils import timezone

    from apps.webhooks.models import Delivery
    from tests.webhooks.factories import DeliveryFactory

    now = timezone.now()
    DeliveryFactory(claimed_until=now - timedelta(seconds=3))  # its sender died mid-attempt
    DeliveryFactory(claimed_until=now + timedelta(seconds=10))  # being sent now
    DeliveryFactory()  # due, not claimed yet
    DeliveryFactory(status=Delivery.FAILED, claimed_until=now - timedelta(hours=1))
    samples = _samples(APIClient().get("/metrics"))
    assert samples[("sluice_deliveries_orphaned", ())] == 1
    assert samples[("sluice_deliveries_pending", ())] == 3


def test_recovery_metrics_say_what_they_count():
    families = _families(APIClient().get("/metrics"))
    orphaned = families["sluice_contacts_orphaned"].documentation
    assert "lease lapsed" in orphaned and "ENRICHMENT_REAP_INTERVAL_SECONDS" in orphaned
    stuck = families["sluice_contacts_stuck"].documentation
    assert "ENRICHMENT_STUCK_AFTER_SECONDS" in stuck and "whatever their lease" in stuck
    assert "more than one run" in families["sluice_contacts_rerun_24h"].documentation
    assert "claim lapsed" in families["sluice_deliveries_orphaned"].documentation
    for name in families:
        assert families[name].type == "gauge", name


def test_metrics_cost_the_same_queries_at_any_volume():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def scrape() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert APIClient().get("/metrics").status_code == 200
        return len(ctx.captured_queries)

    leased_contact(lease=-1, runs=2)
    few = scrape()
    for i in range(30):
        leased_contact(age=600 * (i % 2), lease=-1 if i % 3 else 10, runs=i % 3)
    assert scrape() == few


def test_pending_figures_come_from_one_query_over_the_pending_index():
    """Every scrape runs these: one aggregate each, on an index of the pending rows rather
    than a scan of every contact or delivery ever made."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from apps.enrichment.metrics import pending_counts
    from apps.webhooks.metrics import delivery_counts

    for count, index in ((pending_counts, "contact_pending_idx"), (delivery_counts, "")):
        with CaptureQueriesContext(connection) as ctx:
            count(now=timezone.now())
        (query,) = ctx.captured_queries
        with connection.cursor() as cursor:
            # A tiny test table is cheapest to scan whole; what matters is that the planner
            # can answer from the index of pending rows alone.
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("EXPLAIN " + query["sql"])
            plan = "\n".join(row[0] for row in cursor.fetchall())
        assert "Seq Scan" not in plan and f"using {index}" in plan.lower(), plan
