"""Sandbox and live contacts and bulks are separate (issue 13, item 1): an sk_test_ key never
reads a live contact or bulk, nor a live key a sandbox one; another mode's id is a 404 exactly
like another account's."""

from __future__ import annotations

import pytest

from tests.factories import BulkJobFactory, ContactFactory
from tests.support.api import make_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def clients():
    """A sandbox and a live client on one account, with one contact in a bulk per mode."""
    sandbox = make_client()
    live = make_client(mode="live", account=sandbox.account)
    for client in (sandbox, live):
        mode = client.key.sandbox
        client.bulk = BulkJobFactory(account=client.account, sandbox=mode, total=1)
        client.contact = ContactFactory(
            account=client.account,
            sandbox=mode,
            bulk=client.bulk,
            status="finished",
            result_status="VERIFIED",
        )
    return sandbox, live


@pytest.mark.parametrize("reader_mode", ["test", "live"])
def test_another_modes_contact_and_bulk_are_404(clients, reader_mode):
    sandbox, live = clients
    reader, other = (sandbox, live) if reader_mode == "test" else (live, sandbox)
    for path in (f"/api/v1/contacts/{other.contact.pk}", f"/api/v1/bulk/{other.bulk.pk}"):
        response = reader.get(path)
        assert response.status_code == 404, path
        assert response.json()["code"] == "not_found"
        assert other.get(path).status_code == 200, path
    mine = reader.get(f"/api/v1/contacts/{reader.contact.pk}").json()
    assert mine["sandbox"] is reader.key.sandbox


@pytest.mark.parametrize("reader_mode", ["test", "live"])
def test_lists_hold_only_the_keys_mode_whatever_the_filter(clients, reader_mode):
    sandbox, live = clients
    reader, other = (sandbox, live) if reader_mode == "test" else (live, sandbox)
    queries = [
        "",
        "?status=finished",
        "?result_status=VERIFIED",
        f"?bulk_id={reader.bulk.pk}",
        "?updated_after=2000-01-01T00:00:00Z",
    ]
    for query in queries:
        listed = reader.get(f"/api/v1/contacts{query}").json()["data"]
        assert [c["enrichment_id"] for c in listed] == [str(reader.contact.pk)], query
    # Filtering by the other mode's bulk finds nothing rather than its contacts.
    assert reader.get(f"/api/v1/contacts?bulk_id={other.bulk.pk}").json()["data"] == []


def test_a_key_created_contact_is_listed_in_its_mode_only(clients):
    sandbox, live = clients
    created = sandbox.post(
        "/api/v1/enrich",
        {
            "first_name": "Ada",
            "last_name": "Lovelace",
            "domain": "engines.io",
            "enrichment_type": ["email"],
        },
        format="json",
    )
    assert created.status_code == 202
    new_id = created.json()["enrichment_id"]
    assert new_id in {c["enrichment_id"] for c in sandbox.get("/api/v1/contacts").json()["data"]}
    assert new_id not in {c["enrichment_id"] for c in live.get("/api/v1/contacts").json()["data"]}
    assert live.get(f"/api/v1/contacts/{new_id}").status_code == 404
