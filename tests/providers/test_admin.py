"""Admin for provider configuration: recent hit rate and p95 latency in one changelist query."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone

from apps.enrichment.models import ProviderAttempt
from apps.ops.percentile import percentile_cont
from apps.providers.models import ProviderConfig
from tests.factories import ContactFactory
from tests.support.querycount import MAX_CHANGELIST_QUERIES, page_queries

pytestmark = pytest.mark.django_db

URL = "admin:providers_providerconfig_changelist"


def _attempts(provider: str, outcomes_ms: list[tuple[str, int]]) -> None:
    contact = ContactFactory()
    ProviderAttempt.objects.bulk_create(
        ProviderAttempt(contact=contact, provider=provider, kind="email", outcome=o, duration_ms=ms)
        for o, ms in outcomes_ms
    )


def test_changelist_shows_recent_hit_rate_and_p95_per_provider(admin_client):
    ProviderConfig.objects.create(name="sandbox", priority_email=1)
    ProviderConfig.objects.create(name="hunter", enabled=False)
    samples = [("hit", 100), ("miss", 200), ("miss", 300), ("error", 1000), ("cache", 0)]
    _attempts("sandbox", samples)
    old = ContactFactory()
    stale = ProviderAttempt.objects.create(
        contact=old, provider="sandbox", kind="email", outcome="hit", duration_ms=5
    )
    ProviderAttempt.objects.filter(pk=stale.pk).update(
        created_at=timezone.now() - timedelta(days=2)
    )
    response = admin_client.get(reverse(URL))
    rows = {c.name: c for c in response.context["cl"].result_list}
    assert rows["sandbox"]._calls == 4
    assert rows["sandbox"]._hits == 1
    assert rows["sandbox"]._p95 == pytest.approx(percentile_cont([100, 200, 300, 1000], 0.95))
    assert rows["hunter"]._calls == 0 and rows["hunter"]._p95 is None
    body = response.content.decode()
    assert "25.0 %" in body
    assert f"{rows['sandbox']._p95:.0f} ms" in body


def test_changelist_query_count_does_not_grow_with_providers_or_attempts(admin_client, settings):
    settings.PROVIDERS = {f"p{i}": "x" for i in range(50)}
    for i in range(5):
        ProviderConfig.objects.create(name=f"p{i}")
        _attempts(f"p{i}", [("hit", 10), ("miss", 20)])
    few = page_queries(admin_client, reverse(URL))
    for i in range(5, 50):
        ProviderConfig.objects.create(name=f"p{i}")
        _attempts(f"p{i}", [("hit", 10), ("miss", 20)])
    many = page_queries(admin_client, reverse(URL))
    assert few == many
    assert many <= MAX_CHANGELIST_QUERIES


def test_add_form_only_offers_configured_providers_and_saves_order_and_timeouts(admin_client):
    add = reverse("admin:providers_providerconfig_add")
    refused = admin_client.post(add, {"name": "nobody", "enabled": "on"})
    assert refused.status_code == 200
    assert not ProviderConfig.objects.exists()
    response = admin_client.post(
        add,
        {"name": "sandbox", "enabled": "", "priority_phone": "2", "read_timeout": "4.5"},
    )
    assert response.status_code == 302
    config = ProviderConfig.objects.get(name="sandbox")
    assert (config.enabled, config.priority_phone, config.read_timeout) == (False, 2, 4.5)


def test_change_page_shows_an_open_breaker_and_the_action_closes_it(admin_client):
    from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME

    from apps.providers import breaker

    config = ProviderConfig.objects.create(name="sandbox")
    breaker.trip("sandbox", seconds=60, reason="test")
    page = admin_client.get(reverse("admin:providers_providerconfig_change", args=[config.pk]))
    assert "OPEN" in page.content.decode()
    admin_client.post(reverse(URL), {"action": "close_circuit", ACTION_CHECKBOX_NAME: [config.pk]})
    assert not breaker.is_open("sandbox")


def test_the_list_shows_a_half_open_breaker():
    from django.core.cache import cache

    from apps.ops.admin.providers import ProviderConfigAdmin
    from apps.providers import breaker

    config = ProviderConfig.objects.create(name="sandbox")
    circuit = ProviderConfigAdmin(ProviderConfig, admin.site).circuit
    assert circuit(config) == "closed"
    breaker.trip("sandbox", seconds=60, reason="test")
    assert circuit(config).startswith("OPEN")
    cache.delete(breaker._open_key("sandbox"))  # the cool-down is over; not yet probed
    assert circuit(config).startswith("HALF-OPEN")
    breaker.reset("sandbox")


@pytest.mark.parametrize("value", ["0", "-1", "0.01", "61", "1e300", "nan", "inf"])
def test_timeouts_outside_the_sane_range_are_refused(admin_client, value):
    """requests raises ValueError (not a provider error) on a timeout <= 0 in the worker."""
    add = reverse("admin:providers_providerconfig_add")
    for field in ("connect_timeout", "read_timeout"):
        response = admin_client.post(add, {"name": "sandbox", "enabled": "on", field: value})
        assert response.status_code == 200, (field, value)
        assert response.context["adminform"].form.errors[field], (field, value)
    assert not ProviderConfig.objects.exists()


def test_timeouts_within_the_range_are_saved(admin_client):
    add = reverse("admin:providers_providerconfig_add")
    response = admin_client.post(
        add, {"name": "sandbox", "enabled": "on", "connect_timeout": "0.5", "read_timeout": "60"}
    )
    assert response.status_code == 302
    assert ProviderConfig.objects.get().timeout() == (0.5, 60.0)


def test_changelist_names_the_providers_that_run_on_settings(admin_client, settings):
    settings.PROVIDERS = {"sandbox": "x", "hunter": "y", "pdl": "z"}
    ProviderConfig.objects.create(name="sandbox")
    body = admin_client.get(reverse(URL)).content.decode()
    assert "Running on settings (no configuration row yet): hunter, pdl." in body
    ProviderConfig.objects.create(name="hunter")
    ProviderConfig.objects.create(name="pdl")
    assert "Running on settings" not in admin_client.get(reverse(URL)).content.decode()
