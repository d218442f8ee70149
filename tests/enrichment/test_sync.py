"""POST /api/v1/enrich/sync: the waterfall on a real worker, the web thread woken by
PostgreSQL's NOTIFY; 202 like the async path when it takes too long or too many wait."""

from __future__ import annotations

import json

import pytest

from apps.enrichment.models import Contact
from apps.enrichment.services import intake, waiting
from tests.support.api import make_client

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True, scope="module")
def _stop_the_listener():
    """Its connection would keep the test database from being dropped at the end."""
    yield
    waiting.listener.stop()


CONTACT = {
    "first_name": "Sarah",
    "last_name": "Chen",
    "domain": "stripe.com",
    "enrichment_type": ["email"],
    "custom": {"crm": 7},
}


def post(client, body, **headers):
    return client.post(
        "/api/v1/enrich/sync", json.dumps(body), content_type="application/json", **headers
    )


@pytest.mark.e2e
def test_a_finished_contact_comes_back_whole_with_200(api, worker):
    response = post(api, CONTACT | {"timeout": 20})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "finished"
    assert body["result"]["status"] == "VERIFIED" and body["result"]["email"]
    assert body["custom"] == {"crm": 7}
    assert body["attempts"], "the full contact object, attempts included"
    # The same object GET /contacts/{id} gives.
    assert api.get(f"/api/v1/contacts/{body['enrichment_id']}").json() == body


@pytest.mark.e2e
def test_a_replay_of_a_finished_request_returns_its_200_body(api, worker):
    first = post(api, CONTACT, HTTP_IDEMPOTENCY_KEY="sync-1")
    assert first.status_code == 200
    again = post(api, CONTACT, HTTP_IDEMPOTENCY_KEY="sync-1")
    assert again.status_code == 200 and again.json() == first.json()
    assert Contact.objects.count() == 1


def test_past_the_timeout_the_answer_is_the_async_202(api):
    # No worker runs: the contact stays pending, and finishes later as any other would.
    response = post(api, CONTACT | {"timeout": 0.3})
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "pending" and body["custom"] == {"crm": 7}
    assert response["Location"] == f"/api/v1/contacts/{body['enrichment_id']}"
    assert Contact.objects.get(pk=body["enrichment_id"]).status == Contact.PENDING


def test_past_the_process_wait_bound_the_202_comes_at_once(api, settings, monkeypatch):
    settings.ENRICH_SYNC_MAX_WAITS = 0

    def never(*args, **kwargs):
        raise AssertionError("waited although every slot was taken")

    monkeypatch.setattr(intake, "contact_wait", never)
    response = post(api, CONTACT | {"timeout": 30})
    assert response.status_code == 202
    assert Contact.objects.count() == 1
    assert waiting.wait_slots.used == 0


@pytest.mark.parametrize("timeout", [0, -1, "5", True, None, 61, [1]])
def test_a_bad_timeout_is_422_beside_the_contact_problems(api, timeout):
    response = post(api, {"first_name": "Sarah", "timeout": timeout})
    assert response.status_code == 422
    details = response.json()["details"]
    assert "at most 60" in details["timeout"]
    assert details["last_name"] == "This field is required."
    assert not Contact.objects.exists()


def test_the_guards_are_those_of_the_async_path(db):
    empty = make_client(mode="live", credits=0)
    assert post(empty, CONTACT).status_code == 402
    assert post(make_client(), {"first_name": "x"}).status_code == 422
    assert (
        make_client().post("/api/v1/enrich/sync", "[", content_type="application/json").status_code
        == 400
    )


def test_a_notification_wakes_the_waiter_without_reading_in_a_loop(db, monkeypatch):
    """One read before waiting and one after the wake-up: the NOTIFY, not a poll, ends it."""
    contact_id = "8c0e2d50-0000-4000-8000-000000000001"
    reads = []

    def finished() -> bool:
        reads.append(1)
        if len(reads) == 1:
            # As a worker's finish would, in another transaction, once we listen.
            from django.db import connection, transaction

            with transaction.atomic():
                waiting.notify_finished([contact_id])
            assert connection.vendor == "postgresql"
            return False
        return True

    assert waiting.contact_wait(contact_id, timeout=10, finished=finished) is True
    assert len(reads) == 2


def test_the_answers_read_is_what_get_contacts_reads(db):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apps.enrichment import selectors
    from apps.enrichment.models import ProviderAttempt
    from tests.factories import ContactFactory

    contact = ContactFactory(
        status=Contact.FINISHED,
        result={"status": "VERIFIED", "email": "zoë@x.co"},
        custom={"crm": [1, "ü"]},
    )
    for position, provider in ((1, "apollo"), (0, "hunter")):
        ProviderAttempt.objects.create(
            contact=contact, provider=provider, kind="email", outcome="miss", position=position
        )
    pending = ContactFactory(account=contact.account)
    assert selectors.contact_has_finished(contact.pk)
    assert not selectors.contact_has_finished(pending.pk)
    assert selectors.contact_if_finished(pending.pk) is None
    with CaptureQueriesContext(connection) as queries:
        read, attempts = selectors.contact_if_finished(str(contact.pk))
    assert len(queries) == 2
    assert [a.provider for a in attempts] == ["hunter", "apollo"]
    expected = selectors.contact_data(
        selectors.contact_get(
            account=contact.account, sandbox=contact.sandbox, enrichment_id=str(contact.pk)
        )
    )
    assert selectors.contact_data(read, attempts=attempts) == expected
    assert expected["custom"] == {"crm": [1, "ü"]} and expected["result"]["email"] == "zoë@x.co"
