"""Sandbox and live are separate (issue 13, item 1): endpoints, events and deliveries belong to
one mode; a key sees and changes only its own mode's; a sandbox endpoint receives only sandbox
events. Also the rule for a second secret rotation within the 24 h overlap (item 8)."""

from __future__ import annotations

import importlib
import json
from datetime import timedelta

import pytest
from django.apps import apps as django_apps
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.enrichment import services as enrichment_services
from apps.enrichment.models import Contact
from apps.enrichment.services.finishing import bulk_completed_event, finished_events
from apps.enrichment.waterfall import Outcome
from apps.webhooks import services
from apps.webhooks.models import Delivery, Endpoint, Event
from tests.factories import BulkJobFactory, ContactFactory
from tests.support.api import make_client
from tests.support.endpoints import assert_each_not_found, endpoint_calls
from tests.webhooks.factories import DeliveryFactory, EndpointFactory, EventFactory

pytestmark = pytest.mark.django_db(transaction=True)


def post(client, path, body=None):
    data = "" if body is None else json.dumps(body)
    return client.post(path, data, content_type="application/json")


def two_modes():
    """A sandbox and a live client on the same account."""
    sandbox = make_client()
    live = make_client(mode="live", account=sandbox.account)
    return sandbox, live


def subscribe(client, url="https://hooks.example.com/sluice"):
    response = post(client, "/api/v1/webhooks", {"url": url})
    assert response.status_code == 201, response.json()
    return response.json()


def found_email() -> Outcome:
    return Outcome(
        data={"email": "a@b.co"}, found_kinds=["email"], providers={"email": "x"}, confidence=90
    )


def test_an_endpoint_takes_the_creating_keys_mode_and_each_mode_lists_only_its_own():
    sandbox, live = two_modes()
    # The same receiver may subscribe in both modes: no 409, which would also tell a sandbox
    # key that a live endpoint exists.
    mine = subscribe(sandbox)
    theirs = subscribe(live)
    assert (mine["sandbox"], theirs["sandbox"]) == (True, False)
    assert Endpoint.objects.get(pk=mine["id"]).sandbox is True
    assert Endpoint.objects.get(pk=theirs["id"]).sandbox is False
    assert [e["id"] for e in sandbox.get("/api/v1/webhooks").json()["data"]] == [mine["id"]]
    assert [e["id"] for e in live.get("/api/v1/webhooks").json()["data"]] == [theirs["id"]]
    assert sandbox.get(f"/api/v1/webhooks/{mine['id']}").json()["sandbox"] is True


@pytest.mark.parametrize("attacker_mode", ["test", "live"])
def test_another_modes_ids_are_404_everywhere(attacker_mode):
    sandbox, live = two_modes()
    attacker, victim = (sandbox, live) if attacker_mode == "test" else (live, sandbox)
    theirs = EndpointFactory(account=victim.account, sandbox=victim.key.sandbox)
    their_secret = theirs.secret
    delivery = DeliveryFactory(endpoint=theirs, status=Delivery.FAILED)
    mine = EndpointFactory(account=attacker.account, sandbox=attacker.key.sandbox)
    assert_each_not_found(attacker, endpoint_calls(theirs, delivery, mine))
    theirs.refresh_from_db()
    assert (theirs.description, theirs.secret, theirs.active) == ("", their_secret, True)
    delivery.refresh_from_db()
    assert delivery.status == Delivery.FAILED and delivery.attempt_count == 0
    # The owner's own mode still reaches it.
    assert victim.get(f"/api/v1/webhooks/{theirs.pk}/deliveries/{delivery.pk}").status_code == 200


def test_events_are_listed_only_to_their_own_mode():
    sandbox, live = two_modes()
    sandbox_event = EventFactory(account=sandbox.account, sandbox=True)
    live_event = EventFactory(account=sandbox.account, sandbox=False, type="credits.low")
    listed = sandbox.get("/api/v1/events").json()["data"]
    assert [(e["id"], e["sandbox"]) for e in listed] == [(sandbox_event.pk, True)]
    listed = live.get("/api/v1/events").json()["data"]
    assert [(e["id"], e["sandbox"]) for e in listed] == [(live_event.pk, False)]
    assert live.get("/api/v1/events?type=contact.enriched").json()["data"] == []


def test_a_contact_event_reaches_only_endpoints_of_the_contacts_mode():
    account = make_client().account
    sandbox_endpoint = EndpointFactory(account=account, sandbox=True)
    live_endpoint = EndpointFactory(account=account, sandbox=False)
    test_contact = ContactFactory(account=account, sandbox=True)
    enrichment_services.contacts_finish(items=[(test_contact, found_email())])
    live_contact = ContactFactory(account=account, sandbox=False)
    enrichment_services.contacts_finish(items=[(live_contact, found_email())])

    def routed(contact):
        events = Event.objects.filter(body__contains=str(contact.pk))
        return {(e.type, e.sandbox, d.endpoint_id) for e in events for d in e.deliveries.all()}

    assert routed(test_contact) == {
        ("contact.enriched", True, sandbox_endpoint.pk),
        ("contact.verified", True, sandbox_endpoint.pk),
    }
    assert routed(live_contact) == {
        ("contact.enriched", False, live_endpoint.pk),
        ("contact.verified", False, live_endpoint.pk),
    }
    body = json.loads(Event.objects.filter(sandbox=True).first().body)
    assert body["sandbox"] is True and body["data"]["sandbox"] is True


def test_credit_events_are_live_and_reach_only_live_endpoints(settings):
    settings.CREDITS_LOW_THRESHOLD = 5
    live = make_client(mode="live", credits=5)
    sandbox_endpoint = EndpointFactory(account=live.account, sandbox=True)
    live_endpoint = EndpointFactory(account=live.account, sandbox=False)
    contact = ContactFactory(account=live.account, sandbox=False)
    enrichment_services.contacts_finish(items=[(contact, found_email())])
    low = Event.objects.get(type="credits.low")
    assert low.sandbox is False
    assert [d.endpoint_id for d in low.deliveries.all()] == [live_endpoint.pk]
    assert not Delivery.objects.filter(endpoint=sandbox_endpoint).exists()


def test_bulk_completed_and_endpoint_disabled_keep_their_objects_mode():
    account = make_client().account
    sandbox_endpoint = EndpointFactory(account=account, sandbox=True)
    live_endpoint = EndpointFactory(account=account, sandbox=False)
    services.events_emit([bulk_completed_event(BulkJobFactory(account=account, sandbox=True))])
    bulk_event = Event.objects.get(type="bulk.completed")
    assert bulk_event.sandbox is True
    assert [d.endpoint_id for d in bulk_event.deliveries.all()] == [sandbox_endpoint.pk]
    # A second sandbox endpoint fails for good: only the other sandbox endpoint is told.
    failing = EndpointFactory(account=account, sandbox=True)
    assert services.endpoint_deactivate(endpoint=failing, reason="410")
    disabled = Event.objects.get(type="endpoint.disabled")
    assert disabled.sandbox is True
    assert [d.endpoint_id for d in disabled.deliveries.all()] == [sandbox_endpoint.pk]
    assert not Delivery.objects.filter(endpoint=live_endpoint).exists()


def test_a_sample_event_takes_its_endpoints_mode():
    live = make_client(mode="live")
    endpoint = subscribe(live)
    assert post(live, f"/api/v1/webhooks/{endpoint['id']}/test").status_code == 202
    event = Event.objects.get(test=True)
    assert event.sandbox is False and json.loads(event.body)["sandbox"] is False


def test_a_mixed_chunk_emits_in_the_same_constant_number_of_queries():
    account = EndpointFactory(sandbox=True).account
    EndpointFactory(account=account, sandbox=False)

    def emit_queries(modes: list[bool]) -> int:
        ids = [ContactFactory(account=account, sandbox=mode).pk for mode in modes]
        contacts = list(Contact.objects.filter(pk__in=ids).prefetch_related("attempts"))
        with CaptureQueriesContext(connection) as queries, transaction.atomic():
            services.events_emit(finished_events(contacts))
        return len(queries)

    assert emit_queries([True]) == emit_queries([True, False, True, False, False])
    # Each contact.enriched went to exactly one endpoint: the one of its mode.
    for event in Event.objects.all():
        (delivery,) = event.deliveries.all()
        assert delivery.endpoint.sandbox is event.sandbox


def test_migration_gives_old_events_their_contacts_or_bulks_mode():
    migration = importlib.import_module("apps.webhooks.migrations.0004_modes")
    account = make_client().account
    sandbox_contact = ContactFactory(account=account, sandbox=True)
    live_contact = ContactFactory(account=account, sandbox=False)
    sandbox_bulk = BulkJobFactory(account=account, sandbox=True)

    def old_event(type, data):
        # As stored before modes: no "sandbox" in the body, the column at its default.
        return EventFactory(
            account=account, type=type, sandbox=False, body=json.dumps({"data": data})
        )

    marked = [
        old_event("contact.enriched", {"enrichment_id": str(sandbox_contact.pk)}),
        old_event("contact.verified", {"enrichment_id": str(sandbox_contact.pk)}),
        old_event("bulk.completed", {"bulk_id": str(sandbox_bulk.pk)}),
    ]
    kept = [
        old_event("contact.enriched", {"enrichment_id": str(live_contact.pk)}),
        old_event("credits.low", {"account_id": str(account.pk)}),
        old_event("contact.enriched", {"enrichment_id": "not-a-uuid"}),
    ]
    migration._sandbox_events_mark(django_apps, None)
    assert [Event.objects.get(pk=e.pk).sandbox for e in marked] == [True, True, True]
    assert [Event.objects.get(pk=e.pk).sandbox for e in kept] == [False, False, False]


# --- A second rotation within the overlap (issue 13, item 8) ----------------------------------


def test_a_second_rotation_within_the_overlap_is_409_and_drops_no_secret(api):
    endpoint = subscribe(api)
    original = endpoint["secret"]
    path = f"/api/v1/webhooks/{endpoint['id']}/rotate-secret"
    first = post(api, path)
    assert first.status_code == 200
    refused = post(api, path)
    assert refused.status_code == 409
    body = refused.json()
    assert body["code"] == "rotation_in_progress"
    row = Endpoint.objects.get(pk=endpoint["id"])
    assert body["details"]["previous_secret_expires_at"].endswith("Z")
    # Both secrets a client has been shown still sign, for the full 24 h.
    assert (row.secret, row.previous_secret) == (first.json()["secret"], original)
    # Once the old secret has stopped signing, rotating works again.
    Endpoint.objects.filter(pk=row.pk).update(
        previous_secret_expires_at=timezone.now() - timedelta(seconds=1)
    )
    again = post(api, path)
    assert again.status_code == 200
    row.refresh_from_db()
    assert (row.secret, row.previous_secret) == (again.json()["secret"], first.json()["secret"])
    assert row.previous_secret_expires_at > timezone.now() + timedelta(hours=23)


def test_callback_secret_rotation_needs_a_live_key_and_refuses_a_second_in_the_overlap():
    sandbox, live = two_modes()
    account = sandbox.account
    original = account.callback_secret
    # The one callback secret also signs live deliveries: a sandbox key must not obtain it.
    refused = sandbox.post("/api/v1/callback-secret/rotate")
    assert refused.status_code == 403 and refused.json()["code"] == "live_key_required"
    account.refresh_from_db()
    assert account.callback_secret == original
    first = live.post("/api/v1/callback-secret/rotate")
    assert first.status_code == 200
    second = live.post("/api/v1/callback-secret/rotate")
    assert second.status_code == 409 and second.json()["code"] == "rotation_in_progress"
    account.refresh_from_db()
    assert (account.callback_secret, account.previous_callback_secret) == (
        first.json()["webhook_secret"],
        original,
    )
