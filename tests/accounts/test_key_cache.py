"""The single-contact intake trusts a web process's lookup of a key for a few seconds
(views with api_key_cache = True); its INSERT re-checks what SPEC §2 gives a status to:
revocation, the plan's API access, a live account's credits."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.accounts import keycache
from apps.accounts.keycache import KeyCache
from apps.accounts.models import LedgerEntry, Plan
from apps.accounts.services import api_key_revoke, credits_add
from apps.enrichment.models import Contact
from tests.support.api import EMAIL_CONTACT, make_client

pytestmark = pytest.mark.django_db


def enrich(client, **extra):
    return client.post("/api/v1/enrich", EMAIL_CONTACT, format="json", **extra)


def test_a_cached_key_costs_the_intake_one_statement(api):
    assert enrich(api).status_code == 202  # looks the key up, then caches it
    with CaptureQueriesContext(connection) as queries:
        assert enrich(api).status_code == 202
    # The INSERT alone, which re-checks the key (no lookup, no health check SELECT 1).
    assert len(queries) == 1, [q["sql"] for q in queries]
    assert queries[0]["sql"].startswith('INSERT INTO "enrichment_contact"')
    assert Contact.objects.filter(account=api.account).count() == 2


def test_a_revoked_key_is_refused_at_once_though_cached(api):
    assert enrich(api).status_code == 202
    api_key_revoke(api_key=api.key)
    response = enrich(api)
    assert response.status_code == 401
    assert response.json()["code"] == "api_key_revoked"
    assert Contact.objects.filter(account=api.account).count() == 1
    # And the entry is gone: the next request looks the key up again.
    assert enrich(api).status_code == 401


def test_a_plan_without_api_access_is_refused_at_once_though_cached(api):
    assert enrich(api).status_code == 202
    Plan.objects.filter(pk=api.account.plan_id).update(api_access=False)
    response = enrich(api)
    assert response.status_code == 403
    assert response.json()["code"] == "plan_without_api_access"
    assert Contact.objects.filter(account=api.account).count() == 1


def test_an_emptied_live_account_is_refused_at_once_though_cached(db):
    client = make_client(mode="live", credits=5)
    assert enrich(client).status_code == 202
    credits_add(account=client.account, amount=-5, entry_type=LedgerEntry.ADJUSTMENT, reason="test")
    response = enrich(client)
    assert response.status_code == 402
    assert response.json()["code"] == "insufficient_credits"
    assert Contact.objects.filter(account=client.account).count() == 1


def test_a_revoked_cached_key_with_an_invalid_body_is_401_not_422(api):
    assert enrich(api).status_code == 202
    api_key_revoke(api_key=api.key)
    response = api.post("/api/v1/enrich", {"first_name": "Sarah"}, format="json")
    assert response.status_code == 401
    assert response.json()["code"] == "api_key_revoked"


def test_other_endpoints_never_use_the_cache(api):
    assert enrich(api).status_code == 202
    api_key_revoke(api_key=api.key)
    assert api.get("/api/v1/contacts").status_code == 401


def test_a_live_key_without_credits_is_not_cached_so_a_top_up_counts_at_once(db):
    client = make_client(mode="live", credits=0)
    assert enrich(client).status_code == 402
    credits_add(account=client.account, amount=5, reason="top-up")
    assert enrich(client).status_code == 202


def test_the_ip_allowlist_is_checked_on_every_request(db):
    client = make_client(ip_allowlist=["10.0.0.0/8"])
    assert enrich(client, REMOTE_ADDR="10.1.2.3").status_code == 202
    response = enrich(client, REMOTE_ADDR="192.168.1.1")
    assert response.status_code == 403
    assert response.json()["code"] == "ip_not_allowed"


def test_an_entry_expires_after_api_key_cache_seconds(api, settings, monkeypatch):
    settings.API_KEY_CACHE_SECONDS = 5
    now = [1000.0]
    monkeypatch.setattr(keycache.time, "monotonic", lambda: now[0])
    assert enrich(api).status_code == 202
    now[0] += 4.9
    with CaptureQueriesContext(connection) as fresh:
        assert enrich(api).status_code == 202
    now[0] += 0.2  # 5.1 s after the lookup
    with CaptureQueriesContext(connection) as stale:
        assert enrich(api).status_code == 202
    assert len(fresh) == 1
    assert len(stale) > 1  # looked up again
    assert any("accounts_apikey" in q["sql"] and q["sql"].startswith("SELECT") for q in stale)


def test_zero_disables_the_cache(api, settings):
    settings.API_KEY_CACHE_SECONDS = 0
    assert enrich(api).status_code == 202
    with CaptureQueriesContext(connection) as queries:
        assert enrich(api).status_code == 202
    assert any(q["sql"].startswith("SELECT") and "accounts_apikey" in q["sql"] for q in queries)


def test_the_cache_is_bounded():
    cache = KeyCache(max_entries=4)
    for i in range(4):
        cache.put(f"h{i}", object())  # type: ignore[arg-type]
    cache.put("h4", object())  # type: ignore[arg-type]
    assert cache.get("h0", 60) is None and cache.get("h1", 60) is None  # the older half
    assert all(cache.get(f"h{i}", 60) is not None for i in (2, 3, 4))


@pytest.mark.django_db(transaction=True)
def test_the_intake_survives_a_broken_database_connection(db):
    """No health check runs before the intake INSERT: a connection found broken is replaced."""
    import psycopg

    client = make_client()
    assert enrich(client).status_code == 202
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    with psycopg.connect(**connection.get_connection_params()) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
    assert enrich(client).status_code == 202
    assert Contact.objects.filter(account=client.account).count() == 2
