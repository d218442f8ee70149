"""Lists (issue 17, item 1): the API, tenant and mode isolation, membership, list_id on
enrich and bulk, the contact.added_to_list event and its delivery."""

from __future__ import annotations

import json
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from standardwebhooks.webhooks import Webhook

from apps.enrichment.models import Contact, List, ListEntry
from apps.enrichment.services.lists import (
    ListNotFound,
    contacts_add_to_list,
    list_for_account,
)
from apps.webhooks.models import Delivery, Event
from tests.factories import ContactFactory
from tests.support.api import EMAIL_CONTACT, make_client
from tests.support.receiver import Receiver
from tests.support.worker import wait_for
from tests.webhooks.factories import EndpointFactory

pytestmark = pytest.mark.django_db


def post(client, path, body):
    return client.post(path, json.dumps(body), content_type="application/json")


def patch(client, path, body):
    return client.patch(path, json.dumps(body), content_type="application/json")


def new_list(client, **fields) -> dict:
    response = post(client, "/api/v1/lists", {"name": "Q2 SaaS targets", **fields})
    assert response.status_code == 201, response.json()
    return response.json()


def contact_of(client, **fields) -> Contact:
    return ContactFactory(account=client.account, sandbox=client.key.sandbox, **fields)


def bulk_body(count: int, **extra) -> dict:
    contacts = [dict(EMAIL_CONTACT, first_name=f"Ada{i}") for i in range(count)]
    return {"contacts": contacts, "enrichment_type": ["email"], **extra}


# --- CRUD ---------------------------------------------------------------------------------------


def test_create_retrieve_update_delete(api):
    created = new_list(api, description="Outreach for the June launch", color="indigo")
    assert created["name"] == "Q2 SaaS targets"
    assert created["description"] == "Outreach for the June launch"
    assert (created["color"], created["is_pinned"], created["contact_count"]) == (
        "indigo",
        False,
        0,
    )
    assert created["sandbox"] is True
    assert created["created_at"].endswith("Z") and created["updated_at"].endswith("Z")
    path = f"/api/v1/lists/{created['id']}"
    assert api.get(path).json() == created

    changed = patch(api, path, {"name": " Hot leads ", "is_pinned": True, "description": None})
    assert changed.status_code == 200, changed.json()
    body = changed.json()
    assert (body["name"], body["is_pinned"], body["description"], body["color"]) == (
        "Hot leads",
        True,
        None,
        "indigo",
    )
    assert body["updated_at"] >= created["updated_at"]

    assert api.delete(path).status_code == 204
    gone = api.get(path)
    assert gone.status_code == 404 and gone.json()["code"] == "list_not_found"


def test_defaults_as_prospiq_shows_them(api):
    created = new_list(api)
    assert created["description"] is None
    assert created["color"] == List.DEFAULT_COLOR
    assert created["is_pinned"] is False


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "name"),
        ({"name": "   "}, "name"),
        ({"name": 7}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "ok", "color": "#ff0000"}, "color"),
        ({"name": "ok", "color": "Indigo"}, "color"),
        ({"name": "ok", "color": None}, "color"),
        ({"name": "ok", "is_pinned": "yes"}, "is_pinned"),
        ({"name": "ok", "description": 3}, "description"),
        ({"name": "ok", "description": "d" * 501}, "description"),
        ({"name": "ok", "colour": "red"}, "colour"),
    ],
)
def test_invalid_fields_are_422_naming_the_field(api, body, field):
    response = post(api, "/api/v1/lists", body)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
    assert field in response.json()["details"]
    assert not List.objects.exists()


def test_patch_refuses_what_create_refuses_and_changes_nothing(api):
    created = new_list(api, color="amber")
    path = f"/api/v1/lists/{created['id']}"
    response = patch(api, path, {"color": "chartreuse", "name": ""})
    assert response.status_code == 422
    assert set(response.json()["details"]) == {"color", "name"}
    assert api.get(path).json()["color"] == "amber"
    assert patch(api, path, [1]).status_code == 400


def test_a_retried_create_or_add_with_an_idempotency_key_happens_once(api):
    body = json.dumps({"name": "Retried"})
    first = api.post(
        "/api/v1/lists", body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="l-1"
    )
    again = api.post(
        "/api/v1/lists", body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="l-1"
    )
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert List.objects.count() == 1
    contact = contact_of(api)
    path = f"/api/v1/lists/{first.json()['id']}/contacts"
    add = json.dumps({"enrichment_id": str(contact.pk)})
    for _ in range(2):
        response = api.post(path, add, content_type="application/json", HTTP_IDEMPOTENCY_KEY="a-1")
        assert response.status_code == 201  # the replay, not a 409
    assert Event.objects.filter(type=Event.CONTACT_ADDED_TO_LIST).count() == 1


# --- Order and pagination -----------------------------------------------------------------------


def test_pinned_first_then_most_recently_updated_across_pages(api):
    ids = [new_list(api, name=f"list {i}")["id"] for i in range(7)]
    # Touch them so the update order differs from the creation order; pin two.
    for i in (2, 5, 0):
        assert (
            patch(api, f"/api/v1/lists/{ids[i]}", {"description": f"touched {i}"}).status_code
            == 200
        )
    for i in (3, 6):
        assert patch(api, f"/api/v1/lists/{ids[i]}", {"is_pinned": True}).status_code == 200
    lists = List.objects.filter(account=api.account)
    expected = [
        str(x.pk) for x in sorted(lists, key=lambda x: (x.is_pinned, x.updated_at), reverse=True)
    ]
    assert expected[:2] == [ids[6], ids[3]]
    assert expected[2:5] == [ids[0], ids[5], ids[2]]

    seen, cursor, pages = [], None, 0
    while True:
        query = "?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = api.get(f"/api/v1/lists{query}").json()
        seen += [item["id"] for item in page["data"]]
        pages += 1
        if not page["pagination"]["has_more"]:
            assert page["pagination"]["next_cursor"] is None
            break
        cursor = page["pagination"]["next_cursor"]
    assert seen == expected
    assert pages == 3


@pytest.mark.parametrize("cursor", ["nope", "W10", "WzEsMiwzXQ", "x" * 300, "bnVsbA"])
def test_forged_cursors_are_422(api, cursor):
    new_list(api)
    response = api.get(f"/api/v1/lists?cursor={cursor}")
    assert response.status_code == 422
    assert response.json()["details"] == {"cursor": "Invalid cursor."}


def test_the_list_page_costs_the_same_queries_for_2_or_40_lists(api):
    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert api.get("/api/v1/lists?limit=100").status_code == 200
        return len(ctx.captured_queries)

    for i in range(2):
        new_list(api, name=f"a{i}")
    few = queries()
    for i in range(38):
        new_list(api, name=f"b{i}")
    assert queries() == few


# --- Isolation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("other_mode", ["another account", "another mode"])
def test_another_accounts_or_modes_list_is_404_everywhere(api, other_mode):
    if other_mode == "another account":
        other = make_client()
    else:
        other = make_client(mode="live", account=api.account)
    theirs = new_list(other)
    contact = contact_of(api)
    base = f"/api/v1/lists/{theirs['id']}"
    answers = [
        api.get(base),
        patch(api, base, {"name": "mine now"}),
        api.delete(base),
        api.get(f"{base}/contacts"),
        post(api, f"{base}/contacts", {"enrichment_id": str(contact.pk)}),
        api.delete(f"{base}/contacts/{contact.pk}"),
        post(api, "/api/v1/enrich", dict(EMAIL_CONTACT, list_id=theirs["id"])),
        post(api, "/api/v1/enrich/bulk", bulk_body(2, list_id=theirs["id"])),
    ]
    for response in answers:
        assert response.status_code == 404, response.request["PATH_INFO"]
        assert response.json()["code"] == "list_not_found"
    assert api.get("/api/v1/lists").json()["data"] == []
    assert other.get(base).json() == theirs  # untouched
    assert not Contact.objects.filter(account=api.account).exclude(pk=contact.pk).exists()


def test_another_accounts_or_modes_contact_cannot_be_added(api):
    mine = new_list(api)
    strangers = [
        ContactFactory(account=make_client().account, sandbox=True),
        ContactFactory(account=api.account, sandbox=False),
    ]
    for contact in strangers:
        response = post(
            api, f"/api/v1/lists/{mine['id']}/contacts", {"enrichment_id": str(contact.pk)}
        )
        assert response.status_code == 404
        assert response.json()["code"] == "contact_not_found"
    for bad in ("not-a-uuid", str(uuid.uuid4())):
        response = post(api, f"/api/v1/lists/{mine['id']}/contacts", {"enrichment_id": bad})
        assert response.status_code == 404
    assert api.get(f"/api/v1/lists/{mine['id']}").json()["contact_count"] == 0
    assert not ListEntry.objects.exists()


def test_ids_that_are_not_uuids_are_404(api):
    for path in ("/api/v1/lists/list_8f2a91", "/api/v1/lists/1/contacts"):
        assert api.get(path).status_code == 404


def test_a_read_only_key_reads_lists_but_cannot_change_them(api):
    created = new_list(api)
    reader = make_client(account=api.account, scopes=["read"])
    assert reader.get(f"/api/v1/lists/{created['id']}").status_code == 200
    assert reader.get("/api/v1/lists").status_code == 200
    refused = post(reader, "/api/v1/lists", {"name": "x"})
    assert refused.status_code == 403
    assert refused.json()["code"] == "insufficient_scope"
    assert reader.delete(f"/api/v1/lists/{created['id']}").status_code == 403


# --- Membership ---------------------------------------------------------------------------------


def test_add_list_and_remove_a_contact(api):
    created = new_list(api)
    contact = contact_of(
        api,
        status=Contact.FINISHED,
        result_status=Contact.VERIFIED,
        result={"status": "VERIFIED", "email": "ada@x.io", "phones": [], "job_title": "CTO"},
    )
    base = f"/api/v1/lists/{created['id']}"
    added = post(api, f"{base}/contacts", {"enrichment_id": str(contact.pk)})
    assert added.status_code == 201, added.json()
    assert added.json()["list_id"] == created["id"]
    assert added.json()["enrichment_id"] == str(contact.pk)

    again = post(api, f"{base}/contacts", {"enrichment_id": str(contact.pk)})
    assert again.status_code == 409
    assert again.json()["code"] == "already_in_list"
    assert api.get(base).json()["contact_count"] == 1

    page = api.get(f"{base}/contacts").json()
    assert page["pagination"] == {"next_cursor": None, "has_more": False}
    assert page["data"] == [api.get(f"/api/v1/contacts/{contact.pk}").json()]

    assert api.delete(f"{base}/contacts/{contact.pk}").status_code == 204
    assert api.get(base).json()["contact_count"] == 0
    assert api.get(f"{base}/contacts").json()["data"] == []
    missing = api.delete(f"{base}/contacts/{contact.pk}")
    assert missing.status_code == 404 and missing.json()["code"] == "not_in_list"
    assert Contact.objects.filter(pk=contact.pk).exists()  # removing never deletes it


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "enrichment_id"),
        ({"enrichment_id": 5}, "enrichment_id"),
        ({"search_id": "x"}, "search_id"),
    ],
)
def test_add_with_a_bad_body_is_422(api, body, field):
    created = new_list(api)
    response = post(api, f"/api/v1/lists/{created['id']}/contacts", body)
    assert response.status_code == 422
    assert field in response.json()["details"]


def test_list_contacts_most_recently_added_first_across_pages(api):
    created = new_list(api)
    contacts = [contact_of(api, first_name=f"C{i}") for i in range(5)]
    for contact in contacts:
        assert (
            post(
                api, f"/api/v1/lists/{created['id']}/contacts", {"enrichment_id": str(contact.pk)}
            ).status_code
            == 201
        )
    contact_of(api, first_name="Not in the list")
    seen, cursor = [], None
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = api.get(f"/api/v1/lists/{created['id']}/contacts{query}").json()
        seen += [item["enrichment_id"] for item in page["data"]]
        cursor = page["pagination"]["next_cursor"]
        if not cursor:
            break
    assert seen == [str(c.pk) for c in reversed(contacts)]


def test_deleting_a_list_keeps_its_contacts(api):
    created = new_list(api)
    contact = contact_of(api)
    post(api, f"/api/v1/lists/{created['id']}/contacts", {"enrichment_id": str(contact.pk)})
    assert api.delete(f"/api/v1/lists/{created['id']}").status_code == 204
    assert not ListEntry.objects.exists()
    assert api.get(f"/api/v1/contacts/{contact.pk}").status_code == 200


# --- list_id on enrich and bulk -----------------------------------------------------------------


def test_enrich_with_list_id_adds_the_contact_as_it_is_created(api):
    created = new_list(api)
    response = post(api, "/api/v1/enrich", dict(EMAIL_CONTACT, list_id=created["id"]))
    assert response.status_code == 202, response.json()
    enrichment_id = response.json()["enrichment_id"]
    listed = api.get(f"/api/v1/lists/{created['id']}/contacts").json()["data"]
    assert [c["enrichment_id"] for c in listed] == [enrichment_id]
    assert api.get(f"/api/v1/lists/{created['id']}").json()["contact_count"] == 1
    event = Event.objects.get(type=Event.CONTACT_ADDED_TO_LIST)
    data = event.payload["data"]
    assert data["list_id"] == created["id"] and data["enrichment_id"] == enrichment_id
    assert (data["contact_name"], data["company"], data["status"]) == (
        "Sarah Chen",
        "stripe.com",
        "pending",
    )
    assert event.sandbox is True


@pytest.mark.parametrize("list_id", [5, ["x"], {"id": "x"}])
def test_a_list_id_that_is_not_a_string_is_422(api, list_id):
    for path, body in (
        ("/api/v1/enrich", dict(EMAIL_CONTACT, list_id=list_id)),
        ("/api/v1/enrich/bulk", bulk_body(1, list_id=list_id)),
    ):
        response = post(api, path, body)
        assert response.status_code == 422, path
        assert "list_id" in response.json()["details"]
    assert not Contact.objects.exists()


def test_an_unknown_list_id_stores_nothing(api):
    for path, body in (
        ("/api/v1/enrich", dict(EMAIL_CONTACT, list_id=str(uuid.uuid4()))),
        ("/api/v1/enrich/bulk", bulk_body(3, list_id="list_8f2a91")),
        ("/api/v1/enrich/sync", dict(EMAIL_CONTACT, list_id=str(uuid.uuid4()), timeout=0.1)),
    ):
        response = post(api, path, body)
        assert response.status_code == 404, path
        assert response.json()["code"] == "list_not_found"
        assert "list_id" in response.json()["details"]
    assert not Contact.objects.exists()


def test_a_null_list_id_is_no_list(api):
    response = post(api, "/api/v1/enrich/bulk", bulk_body(2, list_id=None))
    assert response.status_code == 202
    assert not ListEntry.objects.exists()


def test_a_bulk_with_list_id_costs_the_same_queries_for_5_or_100_contacts(api):
    EndpointFactory(account=api.account, sandbox=True, events=[Event.CONTACT_ADDED_TO_LIST])
    created = new_list(api)

    def queries(count: int) -> tuple[int, dict]:
        with CaptureQueriesContext(connection) as ctx:
            response = post(api, "/api/v1/enrich/bulk", bulk_body(count, list_id=created["id"]))
        assert response.status_code == 202, response.json()
        return len(ctx.captured_queries), response.json()

    few, _ = queries(5)
    many, accepted = queries(100)
    assert many == few
    ids = [c["enrichment_id"] for c in accepted["contacts"]]
    # Most recently added first: the bulk's contacts in exactly the reverse of the request.
    page = api.get(f"/api/v1/lists/{created['id']}/contacts?limit=100").json()
    assert [c["enrichment_id"] for c in page["data"]] == ids[::-1]
    assert api.get(f"/api/v1/lists/{created['id']}").json()["contact_count"] == 105
    events = Event.objects.filter(type=Event.CONTACT_ADDED_TO_LIST)
    assert events.count() == 105
    assert Delivery.objects.filter(event__in=events).count() == 105


# --- The service the imports use ----------------------------------------------------------------


def test_contacts_add_to_list_skips_those_present_and_counts_the_rest(api):
    created = List.objects.create(account=api.account, sandbox=True, name="imports")
    first = [contact_of(api) for _ in range(3)]
    assert contacts_add_to_list(list_obj=created, contacts=first) == 3
    more = [*first[1:], *(contact_of(api) for _ in range(4)), first[0]]
    with CaptureQueriesContext(connection) as ctx:
        assert contacts_add_to_list(list_obj=created, contacts=more) == 4
    assert len(ctx.captured_queries) <= 9
    assert created.contact_count == 7
    created.refresh_from_db()
    assert created.contact_count == 7 == ListEntry.objects.filter(list=created).count()
    assert contacts_add_to_list(list_obj=created, contacts=[]) == 0
    assert Event.objects.filter(type=Event.CONTACT_ADDED_TO_LIST).count() == 7


def test_list_for_account_finds_only_the_accounts_list_in_its_mode(api):
    created = List.objects.create(account=api.account, sandbox=True, name="mine")
    assert list_for_account(api.account, str(created.pk), sandbox=True) == created
    assert list_for_account(api.account, created.pk, sandbox=True) == created
    for account, list_id, sandbox in (
        (api.account, created.pk, False),
        (make_client().account, created.pk, True),
        (api.account, "nope", True),
        (api.account, None, True),
    ):
        with pytest.raises(ListNotFound) as raised:
            list_for_account(account, list_id, sandbox=sandbox)
        assert (raised.value.status_code, raised.value.code) == (404, "list_not_found")


# --- The event ----------------------------------------------------------------------------------


def test_the_event_reaches_only_endpoints_subscribed_to_it_in_the_lists_mode(api):
    wants = EndpointFactory(account=api.account, sandbox=True, events=[Event.CONTACT_ADDED_TO_LIST])
    EndpointFactory(account=api.account, sandbox=True, events=[Event.CONTACT_ENRICHED])
    EndpointFactory(account=api.account, sandbox=False, events=[Event.CONTACT_ADDED_TO_LIST])
    filtered = EndpointFactory(
        account=api.account,
        sandbox=True,
        events=[Event.CONTACT_ADDED_TO_LIST],
        filter={"custom.crm": ["hubspot"]},
    )
    created = new_list(api)
    contact = contact_of(api, custom={"crm": "salesforce"})
    post(api, f"/api/v1/lists/{created['id']}/contacts", {"enrichment_id": str(contact.pk)})
    deliveries = Delivery.objects.filter(event__type=Event.CONTACT_ADDED_TO_LIST)
    assert [d.endpoint_id for d in deliveries] == [wants.pk]
    assert filtered.pk not in {d.endpoint_id for d in deliveries}


def test_subscribing_and_polling_the_event(api):
    response = post(
        api,
        "/api/v1/webhooks",
        {"url": "https://hooks.example.com/lists", "events": ["contact.added_to_list"]},
    )
    assert response.status_code == 201, response.json()
    created = new_list(api)
    contact = contact_of(api)
    post(api, f"/api/v1/lists/{created['id']}/contacts", {"enrichment_id": str(contact.pk)})
    polled = api.get("/api/v1/events?type=contact.added_to_list").json()["data"]
    assert len(polled) == 1
    assert polled[0]["data"]["enrichment_id"] == str(contact.pk)


@pytest.mark.django_db(transaction=True)
@pytest.mark.e2e
def test_the_event_is_delivered_signed_through_a_real_worker(worker_factory):
    client = make_client()
    worker_factory(queues="enrichment,webhooks")
    receiver = Receiver().start()
    try:
        endpoint = post(
            client, "/api/v1/webhooks", {"url": receiver.url(), "events": ["contact.added_to_list"]}
        ).json()
        created = new_list(client, name="Launch list")
        body = bulk_body(3, list_id=created["id"])
        accepted = post(client, "/api/v1/enrich/bulk", body).json()
        wait_for(lambda: len(receiver.received()) >= 3, timeout=30, message="events not delivered")
        got = {}
        for request in receiver.received():
            payload = Webhook(endpoint["secret"]).verify(request.body, request.headers)
            assert payload["type"] == "contact.added_to_list"
            assert request.event_type == "contact.added_to_list"
            got[payload["data"]["enrichment_id"]] = payload["data"]
        assert set(got) == {c["enrichment_id"] for c in accepted["contacts"]}
        assert {d["list_name"] for d in got.values()} == {"Launch list"}
        assert {d["bulk_id"] for d in got.values()} == {accepted["bulk_id"]}
    finally:
        receiver.stop()


def test_the_webhook_test_send_has_a_sample_in_the_events_shape(api):
    endpoint = EndpointFactory(account=api.account, events=[Event.CONTACT_ADDED_TO_LIST])
    response = post(api, f"/api/v1/webhooks/{endpoint.pk}/test", {})
    assert response.status_code == 202, response.json()
    assert response.json()["event_type"] == "contact.added_to_list"
    sample = Event.objects.get(pk=response.json()["event_id"]).payload["data"]
    created = new_list(api)
    contact = contact_of(api)
    post(api, f"/api/v1/lists/{created['id']}/contacts", {"enrichment_id": str(contact.pk)})
    real = Event.objects.get(type=Event.CONTACT_ADDED_TO_LIST, test=False).payload["data"]
    assert set(sample) == set(real)
