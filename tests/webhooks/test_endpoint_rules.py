"""Per-endpoint rules of issue 15: rate limit, the endpoint cap, the data filter, the event size
limit, and recover resending everything the endpoint missed."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Group
from django.db import connections
from django.urls import reverse
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from apps.enrichment import selectors as enrichment_selectors
from apps.ops.services import SUPPORT_GROUP
from apps.webhooks import filters, samples, services
from apps.webhooks.models import Delivery, Endpoint, Event
from apps.webhooks.services import endpoints as endpoint_services
from apps.webhooks.services.events import event_body
from tests.factories import AccountFactory, ContactFactory
from tests.support.api import make_client
from tests.support.fuzz import assert_client_error, fuzz_settings, json_values, unlimited_client
from tests.support.queues import queued_delivery_ids
from tests.webhooks.factories import DeliveryFactory, EndpointFactory

pytestmark = pytest.mark.django_db

URL = "https://hooks.example.com/sluice"


def post(client, path, body=None):
    data = "" if body is None else json.dumps(body)
    return client.post(path, data, content_type="application/json")


def patch(client, path, body):
    return client.patch(path, json.dumps(body), content_type="application/json")


def create(client, **body):
    return post(client, "/api/v1/webhooks", {"url": URL, **body})


def contact_data(**changes):
    """The data of a contact event (the sample), with ``changes`` merged in at the top."""
    data = json.loads(json.dumps(samples.sample_data("contact.enriched", endpoint_data={})))
    return {**data, **changes}


def emit(account, data, type=Event.CONTACT_ENRICHED, sandbox=True) -> Event:
    (event,) = services.events_emit(
        [services.EventDraft(account_id=account.pk, type=type, data=data, sandbox=sandbox)]
    )
    return event


def delivered_to(event) -> set:
    return set(Delivery.objects.filter(event=event).values_list("endpoint_id", flat=True))


# --- Rate limit --------------------------------------------------------------------------------


def test_rate_limit_is_optional_set_on_create_and_shown_everywhere(api):
    unlimited = create(api, events=["contact.enriched"])
    assert unlimited.status_code == 201 and unlimited.json()["rate_limit"] is None
    limited = create(api, events=["bulk.completed"], rate_limit=25)
    assert limited.status_code == 201, limited.json()
    body = limited.json()
    assert body["rate_limit"] == 25
    assert Endpoint.objects.get(pk=body["id"]).rate_limit == 25
    assert api.get(f"/api/v1/webhooks/{body['id']}").json()["rate_limit"] == 25
    listed = {e["id"]: e["rate_limit"] for e in api.get("/api/v1/webhooks").json()["data"]}
    assert listed == {unlimited.json()["id"]: None, body["id"]: 25}


@pytest.mark.parametrize("value", [1, 10000])
def test_rate_limit_bounds_are_accepted(api, value):
    response = create(api, rate_limit=value)
    assert response.status_code == 201 and response.json()["rate_limit"] == value


def test_patch_sets_changes_and_removes_the_rate_limit_and_leaves_it_alone_otherwise(api):
    endpoint_id = create(api).json()["id"]
    path = f"/api/v1/webhooks/{endpoint_id}"
    assert patch(api, path, {"rate_limit": 10}).json()["rate_limit"] == 10
    assert patch(api, path, {"description": "crm"}).json()["rate_limit"] == 10
    assert Endpoint.objects.get(pk=endpoint_id).rate_limit == 10
    assert patch(api, path, {"rate_limit": None}).json()["rate_limit"] is None
    assert Endpoint.objects.get(pk=endpoint_id).rate_limit is None


@pytest.mark.parametrize("value", [0, -1, 10001, 2.5, 5.0, "5", True, False, [5], {"n": 5}])
def test_bad_rate_limits_are_422_with_a_clear_message(api, value):
    endpoint = EndpointFactory(account=api.account, rate_limit=7)
    for response in (
        create(api, rate_limit=value),
        patch(api, f"/api/v1/webhooks/{endpoint.pk}", {"rate_limit": value}),
    ):
        assert response.status_code == 422, (value, response.json())
        body = response.json()
        assert body["code"] == "validation_error"
        assert body["details"] == {
            "rate_limit": "Must be a whole number of deliveries per second from 1 to 10000, "
            "or null for no limit."
        }
    assert Endpoint.objects.count() == 1
    endpoint.refresh_from_db()
    assert endpoint.rate_limit == 7


def test_an_invalid_patch_writes_nothing_even_its_valid_fields(api):
    endpoint = EndpointFactory(account=api.account, description="before")
    response = patch(
        api, f"/api/v1/webhooks/{endpoint.pk}", {"description": "after", "rate_limit": 0}
    )
    assert response.status_code == 422
    endpoint.refresh_from_db()
    assert (endpoint.description, endpoint.rate_limit) == ("before", None)


def test_admin_shows_the_rate_limit_and_sets_it_through_an_action(admin_client):
    endpoint = EndpointFactory(url="https://crm.example/hook", rate_limit=30)
    other = EndpointFactory(rate_limit=None)
    listing = admin_client.get(reverse("admin:webhooks_endpoint_changelist")).content.decode()
    assert 'class="field-rate_limit">30<' in listing
    page = admin_client.get(reverse("admin:webhooks_endpoint_change", args=[endpoint.pk]))
    html = page.content.decode()
    assert "30" in html
    assert reverse("admin:webhooks_endpoint_rate_limit", args=[endpoint.pk]) in html

    changelist = reverse("admin:webhooks_endpoint_changelist")
    selected = {"action": "set_rate_limit", ACTION_CHECKBOX_NAME: [endpoint.pk, other.pk]}
    form = admin_client.post(changelist, selected)
    assert form.status_code == 200 and 'name="rate_limit"' in form.content.decode()
    done = admin_client.post(changelist, {**selected, "apply": "1", "rate_limit": "5"})
    assert done.status_code == 302
    assert set(Endpoint.objects.values_list("rate_limit", flat=True)) == {5}
    # Empty removes it.
    admin_client.post(changelist, {**selected, "apply": "1", "rate_limit": ""})
    assert set(Endpoint.objects.values_list("rate_limit", flat=True)) == {None}


@pytest.mark.parametrize("value", ["0", "-1", "10001", "2.5", "abc", "\x00", "1e400"])
def test_admin_rate_limit_form_refuses_bad_values_and_changes_nothing(admin_client, value):
    endpoint = EndpointFactory(rate_limit=30)
    url = reverse("admin:webhooks_endpoint_rate_limit", args=[endpoint.pk])
    response = admin_client.post(url, {"apply": "1", "rate_limit": value})
    assert response.status_code == 200
    assert "errorlist" in response.content.decode()
    endpoint.refresh_from_db()
    assert endpoint.rate_limit == 30


def test_admin_rate_limit_page_for_one_endpoint(admin_client):
    endpoint = EndpointFactory()
    url = reverse("admin:webhooks_endpoint_rate_limit", args=[endpoint.pk])
    assert admin_client.get(url).status_code == 200
    response = admin_client.post(url, {"apply": "1", "rate_limit": "100"})
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:webhooks_endpoint_change", args=[endpoint.pk])
    endpoint.refresh_from_db()
    assert endpoint.rate_limit == 100
    for bad in ("not-a-pk", "5f0c8a2e-2b1e-4f5e-9a51-2f3a6f1b7c11"):
        bad_url = reverse("admin:webhooks_endpoint_rate_limit", args=[bad])
        assert admin_client.get(bad_url).status_code == 404


def test_support_users_see_the_rate_limit_but_cannot_set_it(client, django_user_model):
    user = django_user_model.objects.create_user("helpdesk", password="pw-12345678", is_staff=True)
    user.groups.add(Group.objects.get(name=SUPPORT_GROUP))
    client.force_login(user)
    endpoint = EndpointFactory(rate_limit=30)
    url = reverse("admin:webhooks_endpoint_rate_limit", args=[endpoint.pk])
    page = client.get(reverse("admin:webhooks_endpoint_change", args=[endpoint.pk]))
    assert page.status_code == 200 and url not in page.content.decode()
    assert client.post(url, {"apply": "1", "rate_limit": "1"}).status_code == 403
    endpoint.refresh_from_db()
    assert endpoint.rate_limit == 30


# --- Endpoint cap ------------------------------------------------------------------------------


def test_creating_past_the_cap_is_422_saying_the_limit(api, settings):
    settings.WEBHOOK_MAX_ENDPOINTS_PER_ACCOUNT = 2
    assert create(api, events=["contact.enriched"]).status_code == 201
    assert create(api, events=["bulk.completed"]).status_code == 201
    response = create(api, events=["credits.low"])
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "too_many_endpoints"
    assert body["error"] == (
        "An account may have at most 2 sandbox webhook endpoints; delete one to add another"
    )
    assert body["details"] == {"limit": 2}
    assert Endpoint.objects.count() == 2


def test_the_cap_counts_disabled_endpoints_and_a_delete_frees_a_place(api, settings):
    settings.WEBHOOK_MAX_ENDPOINTS_PER_ACCOUNT = 1
    EndpointFactory(account=api.account, active=False)
    assert create(api).json()["code"] == "too_many_endpoints"
    api.delete(f"/api/v1/webhooks/{Endpoint.objects.get().pk}")
    assert create(api).status_code == 201


def test_the_cap_is_counted_per_mode_and_per_account(api, settings):
    settings.WEBHOOK_MAX_ENDPOINTS_PER_ACCOUNT = 1
    live = make_client(account=api.account, mode="live")
    EndpointFactory(account=api.account, sandbox=False)  # the live place is taken
    EndpointFactory.create_batch(3, sandbox=True)  # other accounts' endpoints
    # A full live side neither blocks the sandbox side nor shows in its answer.
    assert create(api).status_code == 201
    refused = create(live)
    assert refused.json()["code"] == "too_many_endpoints"
    assert "live" in refused.json()["error"]
    assert create(api, events=["bulk.completed"]).json()["error"].count("sandbox") == 1


@pytest.mark.django_db(transaction=True)
def test_two_creations_racing_for_the_last_place_cannot_both_win(settings, monkeypatch):
    settings.WEBHOOK_MAX_ENDPOINTS_PER_ACCOUNT = 1
    client = make_client()
    account = client.account
    # Each creation waits after its count for the other one (at most 1 s): without the
    # account row lock both would count 0 and both insert.
    barrier = threading.Barrier(2, timeout=1)
    counted = endpoint_services._endpoint_cap_check

    def count_then_wait(**kwargs):
        counted(**kwargs)
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()

    monkeypatch.setattr(endpoint_services, "_endpoint_cap_check", count_then_wait)
    outcomes = []

    def attempt(n):
        try:
            services.endpoint_create(
                account=account, url=f"{URL}/{n}", sandbox=True, events=["credits.low"]
            )
            outcomes.append("created")
        except Exception as exc:
            outcomes.append(getattr(exc, "code", repr(exc)))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["created", "too_many_endpoints"]
    assert Endpoint.objects.filter(account=account).count() == 1


# --- Filter: the language ----------------------------------------------------------------------


def test_filter_is_normalised_lone_scalars_become_lists_and_empty_means_none():
    assert filters.filter_clean(None) is None
    assert filters.filter_clean({}) is None
    assert filters.filter_clean({"result.status": "VERIFIED", "custom.n": [1, None]}) == {
        "result.status": ["VERIFIED"],
        "custom.n": [1, None],
    }


BAD_FILTERS = [
    ([], "Must be an object"),
    ("result.status=VERIFIED", "Must be an object"),
    (5, "Must be an object"),
    (True, "Must be an object"),
    ({f"custom.k{i}": ["x"] for i in range(11)}, "At most 10 paths (got 11)."),
    ({"": ["x"]}, "none empty"),
    ({"result..status": ["x"]}, "none empty"),
    ({".result": ["x"]}, "none empty"),
    ({"result.": ["x"]}, "none empty"),
    ({"result. .status": ["x"]}, "none empty"),
    ({"custom.a.b.c.d": ["x"]}, "deeper than 4 fields"),
    ({"custom." + "k" * 200: ["x"]}, "longer than 200 characters"),
    ({"result.status": []}, "at least one accepted value"),
    ({"result.status": {"in": ["VERIFIED"]}}, "must be a list of scalars"),
    ({"result.status": [{"a": 1}]}, "not objects or lists"),
    ({"result.status": [["VERIFIED"]]}, "not objects or lists"),
    ({"result.status": list(range(21))}, "at most 20 accepted values"),
    ({"custom.k": ["x" * 201]}, "longer than 200 characters"),
    ({f"custom.k{i}": ["x" * 199] * 20 for i in range(2)}, "at most 4096 bytes"),
]


@pytest.mark.parametrize(("value", "message"), BAD_FILTERS, ids=range(len(BAD_FILTERS)))
def test_bad_filters_are_422_naming_the_problem(api, value, message):
    endpoint = EndpointFactory(account=api.account, filter={"custom.crm": ["hubspot"]})
    for response in (
        create(api, filter=value),
        patch(api, f"/api/v1/webhooks/{endpoint.pk}", {"filter": value}),
    ):
        assert response.status_code == 422, (value, response.json())
        body = response.json()
        assert body["code"] == "validation_error"
        assert list(body["details"]) == ["filter"]
        assert message in body["details"]["filter"], body["details"]["filter"]
    endpoint.refresh_from_db()
    assert endpoint.filter == {"custom.crm": ["hubspot"]}
    assert Endpoint.objects.count() == 1


def test_a_long_bad_path_is_shown_shortened_in_the_message(api):
    response = create(api, filter={"x" * 150 + "..": ["a"]})
    message = response.json()["details"]["filter"]
    assert "x" * 40 + "…" in message and "x" * 41 not in message


def test_filter_set_on_create_shown_and_changed_or_removed_by_patch(api):
    body = create(api, filter={"result.status": "VERIFIED", "custom.crm": ["hubspot", "sf"]})
    assert body.status_code == 201, body.json()
    expected = {"result.status": ["VERIFIED"], "custom.crm": ["hubspot", "sf"]}
    assert body.json()["filter"] == expected
    path = f"/api/v1/webhooks/{body.json()['id']}"
    assert api.get(path).json()["filter"] == expected
    assert api.get("/api/v1/webhooks").json()["data"][0]["filter"] == expected
    assert patch(api, path, {"description": "x"}).json()["filter"] == expected
    assert patch(api, path, {"filter": {"result.status": ["NOT_FOUND"]}}).json()["filter"] == {
        "result.status": ["NOT_FOUND"]
    }
    assert patch(api, path, {"filter": {}}).json()["filter"] is None
    patch(api, path, {"filter": {"custom.crm": "x"}})
    assert patch(api, path, {"filter": None}).json()["filter"] is None
    assert Endpoint.objects.get().filter is None
    assert create(api, events=["bulk.completed"]).json()["filter"] is None


DATA = {
    "status": "finished",
    "enrichment_type": ["email", "phone"],
    "result": {
        "status": "VERIFIED",
        "confidence": 97,
        "personal_email": None,
        "phones": [{"country": "US"}, {"country": "FR"}],
    },
    "custom": {"crm": "hubspot", "flag": True, "n": 1, "deep": {"a": {"b": "x"}}},
}


@pytest.mark.parametrize(
    ("rules", "matches"),
    [
        (None, True),
        ({"result.status": ["VERIFIED"]}, True),
        ({"result.status": ["NOT_FOUND", "VERIFIED"]}, True),  # any of the values
        ({"result.status": ["verified"]}, False),  # exact, case included
        ({"result.status": ["VERIFIED"], "custom.crm": ["hubspot"]}, True),
        ({"result.status": ["VERIFIED"], "custom.crm": ["salesforce"]}, False),  # all keys
        ({"custom.missing": ["x"]}, False),  # a path the data lacks
        ({"custom.missing": [None]}, False),  # ...even when null is accepted
        ({"result.personal_email": [None]}, True),  # an explicit null
        ({"custom.flag": [1]}, False),  # true is not 1
        ({"custom.n": [True]}, False),  # and 1 is not true
        ({"custom.n": [1.0]}, True),  # 1 and 1.0 are one JSON number
        ({"custom.flag": [True]}, True),
        ({"result.confidence": [97]}, True),
        ({"result.confidence": ["97"]}, False),  # a string is not a number
        ({"enrichment_type": ["phone"]}, True),  # a list of scalars: any element
        ({"result.phones.country": ["FR"]}, True),  # through a list of objects
        ({"result.phones.country": ["DE"]}, False),
        ({"custom.deep.a.b": ["x"]}, True),
        ({"custom.deep.a": ["x"]}, False),  # an object is no scalar
        ({"status.x": ["finished"]}, False),  # below a scalar there is nothing
    ],
)
def test_filter_language(rules, matches):
    assert filters.filter_matches(rules, DATA) is matches


# --- Filter: where it is applied ---------------------------------------------------------------


# Committed for real: messages are published on commit.
@pytest.mark.django_db(transaction=True)
def test_filtered_out_endpoints_get_no_delivery_row_at_all(transactional_db, redis_client):
    account = AccountFactory()
    verified = EndpointFactory(account=account, filter={"result.status": ["VERIFIED"]})
    hubspot = EndpointFactory(account=account, filter={"custom.crm": ["hubspot"]})
    everything = EndpointFactory(account=account)
    disabled_match = EndpointFactory(
        account=account, active=False, filter={"result.status": ["VERIFIED"]}
    )
    disabled_miss = EndpointFactory(
        account=account, active=False, filter={"result.status": ["NOT_FOUND"]}
    )

    event = emit(account, contact_data(custom={"crm": "salesforce"}))
    assert delivered_to(event) == {verified.pk, everything.pk, disabled_match.pk}
    statuses = dict(Delivery.objects.filter(event=event).values_list("endpoint_id", "status"))
    assert statuses[disabled_match.pk] == Delivery.SKIPPED
    assert disabled_miss.pk not in statuses

    other = emit(
        account,
        contact_data(result={**contact_data()["result"], "status": "NOT_FOUND"}, custom=None),
    )
    assert delivered_to(other) == {everything.pk, disabled_miss.pk}
    crm = emit(account, contact_data(custom={"crm": "hubspot"}))
    assert delivered_to(crm) == {verified.pk, hubspot.pk, everything.pk, disabled_match.pk}
    # Only the pending deliveries were published; nothing for a filtered-out endpoint.
    pending = Delivery.objects.filter(status=Delivery.PENDING).values_list("pk", flat=True)
    assert queued_delivery_ids(redis_client) == sorted(str(pk) for pk in pending)


def test_endpoint_disabled_events_are_filtered_like_any_other(db):
    failing = EndpointFactory()
    account = failing.account
    wants_crm = EndpointFactory(account=account, filter={"custom.crm": ["hubspot"]})
    wants_url = EndpointFactory(account=account, filter={"url": [failing.url]})
    services.endpoint_deactivate(endpoint=failing, reason="HTTP 410 Gone")
    event = Event.objects.get(type=Event.ENDPOINT_DISABLED)
    assert delivered_to(event) == {wants_url.pk}
    assert wants_crm.pk not in delivered_to(event)


def test_filters_cost_no_extra_query_when_events_are_emitted(django_assert_num_queries):
    account = AccountFactory()
    EndpointFactory(account=account, filter={"result.status": ["VERIFIED"]})
    EndpointFactory.create_batch(2, account=account, filter={"custom.hubspot_id": ["4447901"]})
    EndpointFactory(account=account, filter={"custom.hubspot_id": ["other"]})
    drafts = [
        services.EventDraft(account_id=account.pk, type=t, data=contact_data(), sandbox=True)
        for t in (Event.CONTACT_ENRICHED, Event.CONTACT_VERIFIED)
    ]
    # events_emit's promise: one endpoint read per account and two INSERTs, filters or not
    # (the filter column is read with the endpoints, not loaded endpoint by endpoint).
    with django_assert_num_queries(3):
        services.events_emit(drafts)
    assert Delivery.objects.count() == 6


# Committed for real: messages are published on commit.
@pytest.mark.django_db(transaction=True)
def test_test_events_ignore_the_filter(api, redis_client):
    endpoint = EndpointFactory(account=api.account, filter={"custom.crm": ["never-matches"]})
    response = post(api, f"/api/v1/webhooks/{endpoint.pk}/test")
    assert response.status_code == 202
    delivery = Delivery.objects.get(pk=response.json()["id"])
    assert delivery.endpoint_id == endpoint.pk and delivery.event.test
    assert queued_delivery_ids(redis_client) == [str(delivery.pk)]


# --- Event size limit --------------------------------------------------------------------------

MOMENT = datetime(2026, 5, 19, 14, 30, tzinfo=UTC)


def body_of(data, type=Event.CONTACT_ENRICHED) -> str:
    return event_body(event_id="evt_" + "x" * 24, type=type, created_at=MOMENT, data=data)


def test_a_body_at_the_limit_is_kept_and_one_byte_more_is_truncated(settings):
    data = contact_data(custom={"note": "é" * 300})  # escaped: 6 bytes a character
    whole = body_of(data)
    settings.WEBHOOK_MAX_EVENT_BYTES = len(whole.encode())
    assert body_of(data) == whole and json.loads(whole)["data"] == data
    settings.WEBHOOK_MAX_EVENT_BYTES = len(whole.encode()) - 1
    cut = json.loads(body_of(data))
    assert cut["data"] == {
        "enrichment_id": data["enrichment_id"],
        "bulk_id": None,
        "truncated": True,
        "size": len(whole.encode()),
        "url": f"/api/v1/contacts/{data['enrichment_id']}",
    }
    # The envelope is untouched: a receiver still dedupes and routes it as before.
    assert {k: v for k, v in cut.items() if k != "data"} == {
        k: v for k, v in json.loads(whole).items() if k != "data"
    }


@pytest.mark.parametrize(
    ("type", "data", "kept", "url"),
    [
        (
            Event.BULK_COMPLETED,
            samples.sample_data("bulk.completed", endpoint_data={}),
            {"bulk_id": "00000000-0000-4000-8000-000000000001"},
            "/api/v1/bulk/00000000-0000-4000-8000-000000000001",
        ),
        (
            Event.ENDPOINT_DISABLED,
            {"id": "e1", "url": "https://x.example/" + "p" * 500, "events": []},
            {"id": "e1"},
            "/api/v1/webhooks/e1",
        ),
        (
            Event.CREDITS_LOW,
            {"account_id": "a1", "credits": 4, "threshold": 100, "pad": "p" * 500},
            {"account_id": "a1"},
            "/api/v1/credits",
        ),
    ],
)
def test_each_event_type_truncates_to_its_ids_and_the_path_of_its_object(
    settings, type, data, kept, url
):
    whole = len(body_of(data, type=type).encode())
    settings.WEBHOOK_MAX_EVENT_BYTES = 300
    body = body_of(data, type=type)
    assert whole > 300 >= len(body.encode())
    assert json.loads(body)["data"] == {**kept, "truncated": True, "size": whole, "url": url}


def test_an_oversized_event_is_stored_truncated_delivered_and_logged(api, settings, caplog):
    caplog.set_level(logging.WARNING, logger="apps.webhooks.services.events")
    contact = ContactFactory(
        account=api.account,
        status="finished",
        result_status="VERIFIED",
        result={"status": "VERIFIED", "email": "sarah@acme.com"},
        custom={"note": "n" * 3000},
    )
    data = enrichment_selectors.contact_data(contact)
    endpoint = EndpointFactory(account=api.account, filter={"custom.note": ["x"]})
    matching = EndpointFactory(account=api.account, filter={"result.status": ["VERIFIED"]})
    settings.WEBHOOK_MAX_EVENT_BYTES = 1024
    event = emit(api.account, data)
    assert len(event.body.encode()) <= 1024
    payload = event.payload
    assert payload["data"]["truncated"] is True and payload["data"]["size"] > 3000
    # The filter saw the whole data: result.status is not in the truncated body.
    assert delivered_to(event) == {matching.pk}
    assert endpoint.pk not in delivered_to(event)
    assert "webhook event data truncated" in caplog.text
    # What a receiver does next: fetch the object at the path it was given.
    full = api.get(payload["data"]["url"])
    assert full.status_code == 200
    assert full.json()["custom"] == {"note": "n" * 3000}
    # Polling shows the same bytes the receivers got.
    assert api.get("/api/v1/events").json()["data"][0]["data"] == payload["data"]


# --- Recover -----------------------------------------------------------------------------------


# Committed for real: messages are published on commit.
@pytest.mark.django_db(transaction=True)
def test_recover_after_enable_resends_a_delivery_cut_short_by_the_deactivation(api, redis_client):
    created = create(api, events=["contact.enriched"]).json()
    endpoint = Endpoint.objects.get(pk=created["id"])
    event = emit(api.account, contact_data())
    delivery = Delivery.objects.get(event=event)
    # Mid-retry: two attempts failed, the third is hours away.
    Delivery.objects.filter(pk=delivery.pk).update(
        attempt_count=2, round_attempts=2, next_attempt_at=timezone.now() + timedelta(hours=2)
    )
    services.endpoint_deactivate(endpoint=endpoint, reason="Disabled by an operator.")
    delivery.refresh_from_db()
    assert delivery.status == Delivery.SKIPPED
    base = f"/api/v1/webhooks/{endpoint.pk}"
    assert post(api, f"{base}/enable").json()["replayed"] == 0
    redis_client.flushdb()

    since = (timezone.now() - timedelta(hours=1)).isoformat()
    response = post(api, f"{base}/recover", {"since": since})
    assert response.status_code == 202 and response.json() == {"recovered": 1}
    delivery.refresh_from_db()
    assert (delivery.status, delivery.round_attempts) == (Delivery.PENDING, 0)
    assert delivery.next_attempt_at <= timezone.now()
    assert queued_delivery_ids(redis_client) == [str(delivery.pk)]


# Committed for real: messages are published on commit.
@pytest.mark.django_db(transaction=True)
def test_recover_takes_failed_and_skipped_but_not_succeeded_pending_or_older(api, redis_client):
    endpoint = EndpointFactory(account=api.account)
    failed = DeliveryFactory(endpoint=endpoint, status=Delivery.FAILED)
    skipped = DeliveryFactory(endpoint=endpoint, status=Delivery.SKIPPED, next_attempt_at=None)
    succeeded = DeliveryFactory(endpoint=endpoint, status=Delivery.SUCCEEDED)
    waiting = DeliveryFactory(
        endpoint=endpoint, round_attempts=3, next_attempt_at=timezone.now() + timedelta(hours=1)
    )
    old = DeliveryFactory(endpoint=endpoint, status=Delivery.SKIPPED)
    Delivery.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=3))
    elsewhere = DeliveryFactory(
        endpoint=EndpointFactory(account=api.account), status=Delivery.SKIPPED
    )
    redis_client.flushdb()
    since = (timezone.now() - timedelta(days=1)).isoformat()
    response = post(api, f"/api/v1/webhooks/{endpoint.pk}/recover", {"since": since})
    assert response.json() == {"recovered": 2}
    status = dict(Delivery.objects.values_list("pk", "status"))
    assert status[failed.pk] == status[skipped.pk] == Delivery.PENDING
    assert status[succeeded.pk] == Delivery.SUCCEEDED
    assert status[old.pk] == status[elsewhere.pk] == Delivery.SKIPPED
    waiting.refresh_from_db()
    assert waiting.round_attempts == 3  # its schedule was not restarted
    assert queued_delivery_ids(redis_client) == sorted([str(failed.pk), str(skipped.pk)])


# --- Any value in the new fields -----------------------------------------------------------------


@fuzz_settings(max_examples=60)
@given(
    field=st.sampled_from(["rate_limit", "filter"]),
    value=json_values | st.dictionaries(st.text(max_size=12), json_values, max_size=4),
)
def test_any_value_in_rate_limit_or_filter_is_a_4xx_or_accepted(field, value):
    client = unlimited_client()
    response = create(client, **{field: value})
    assert_client_error(response, (201,))
    if response.status_code == 201:
        assert response.json()[field] == (
            value if field == "rate_limit" else filters.filter_clean(value)
        )
    endpoint = EndpointFactory(account=client.account)
    response = patch(client, f"/api/v1/webhooks/{endpoint.pk}", {field: value})
    assert_client_error(response, (200,))
