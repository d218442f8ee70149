"""Admin for stored idempotent responses: read-only, searchable by key, deletable to release."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.core.models import IdempotencyRecord
from tests.factories import AccountFactory, IdempotencyRecordFactory
from tests.support.querycount import MAX_CHANGELIST_QUERIES, page_queries

pytestmark = pytest.mark.django_db


def _records(n: int, account=None) -> list[IdempotencyRecord]:
    account = account or AccountFactory()
    return [
        IdempotencyRecordFactory(account=account, key=f"key-{account.pk}-{i}") for i in range(n)
    ]


def test_changelist_query_count_does_not_grow_with_rows(admin_client):
    url = reverse("admin:core_idempotencyrecord_changelist")
    _records(5)
    few = page_queries(admin_client, url)
    _records(45)
    many = page_queries(admin_client, url)
    assert few == many
    assert many <= MAX_CHANGELIST_QUERIES


def test_search_by_key_and_detail_shows_the_stored_response(admin_client):
    wanted, other = _records(2)
    url = reverse("admin:core_idempotencyrecord_changelist")
    listed = admin_client.get(url, {"q": wanted.key}).context["cl"].result_list
    assert [r.pk for r in listed] == [wanted.pk]
    page = admin_client.get(reverse("admin:core_idempotencyrecord_change", args=[wanted.pk]))
    assert "enrichment_id" in page.content.decode()
    assert other.key not in page.content.decode()


def test_read_only_but_deletable(admin_client):
    (record,) = _records(1)
    change = reverse("admin:core_idempotencyrecord_change", args=[record.pk])
    assert admin_client.post(change, {"state": "in_flight"}).status_code == 403
    delete = reverse("admin:core_idempotencyrecord_delete", args=[record.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 302
    assert not IdempotencyRecord.objects.exists()


def test_secrets_in_a_stored_response_are_redacted(admin_client):
    (record,) = _records(1)
    record.response_body = (
        b'{"id": "e1", "secret": "whsec_TOPSECRET", "nested": {"api_key": "sk_x"}}'
    )
    record.save()
    page = admin_client.get(reverse("admin:core_idempotencyrecord_change", args=[record.pk]))
    body = page.content.decode()
    assert "e1" in body
    assert "[redacted]" in body
    assert "whsec_TOPSECRET" not in body
    assert "sk_x" not in body


def test_an_idempotency_key_that_is_a_uuid_is_found_by_search(admin_client):
    """Clients often send a UUID as Idempotency-Key; a UUID term first matches account ids
    exactly, and falls back to the key search when no account has that id."""
    wanted, other = _records(2)
    key = "0b6f6a55-1c8e-4b8e-9d1c-4b3a1e2f9c77"
    IdempotencyRecord.objects.filter(pk=wanted.pk).update(key=key)
    url = reverse("admin:core_idempotencyrecord_changelist")
    for term in (key, key.upper()):
        listed = admin_client.get(url, {"q": term}).context["cl"].result_list
        assert [r.pk for r in listed] == [wanted.pk], term
    by_account = admin_client.get(url, {"q": str(other.account_id)}).context["cl"].result_list
    assert {r.pk for r in by_account} == {wanted.pk, other.pk}  # one account, two records
