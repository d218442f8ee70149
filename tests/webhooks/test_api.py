"""The webhooks and events API (SPEC §6): shapes, every 4xx, and tenant isolation."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.webhooks import services
from apps.webhooks.models import Delivery, Endpoint, Event
from tests.support.api import make_client
from tests.support.endpoints import assert_each_not_found, endpoint_calls
from tests.webhooks.factories import DeliveryFactory, EndpointFactory, EventFactory

pytestmark = pytest.mark.django_db(transaction=True)

ENDPOINT_FIELDS = {
    "id",
    "url",
    "events",
    "description",
    "rate_limit",
    "filter",
    "sandbox",
    "active",
    "disabled_at",
    "disabled_reason",
    "consecutive_failures",
    "last_success_at",
    "last_failure_at",
    "created_at",
}
DELIVERY_FIELDS = {
    "id",
    "event_id",
    "event_type",
    "status",
    "attempt_count",
    "next_attempt_at",
    "created_at",
    "attempts",
}


def post(client, path, body=None):
    data = "" if body is None else json.dumps(body)
    return client.post(path, data, content_type="application/json")


def patch(client, path, body):
    return client.patch(path, json.dumps(body), content_type="application/json")


def create(client, **body):
    body = {"url": "https://hooks.example.com/sluice", "events": ["contact.enriched"]} | body
    response = post(client, "/api/v1/webhooks", body)
    assert response.status_code == 201, response.json()
    return response.json()


def test_create_shows_the_secret_once_and_list_get_never_do(api):
    body = create(api, description="CRM sync")
    assert set(body) == ENDPOINT_FIELDS | {"secret"}
    assert body["secret"].startswith("whsec_")
    assert body["events"] == ["contact.enriched"] and body["active"] is True
    assert body["description"] == "CRM sync" and body["consecutive_failures"] == 0
    assert body["created_at"].endswith("Z")
    listed = api.get("/api/v1/webhooks").json()
    assert [e["id"] for e in listed["data"]] == [body["id"]]
    assert set(listed["data"][0]) == ENDPOINT_FIELDS
    assert listed["pagination"] == {"next_cursor": None, "has_more": False}
    one = api.get(f"/api/v1/webhooks/{body['id']}")
    assert one.status_code == 200 and set(one.json()) == ENDPOINT_FIELDS


def test_events_default_to_every_type(api):
    response = post(api, "/api/v1/webhooks", {"url": "https://hooks.example.com/all"})
    assert response.status_code == 201
    assert response.json()["events"] == Event.TYPES


def test_duplicate_active_endpoint_is_409_but_a_different_event_set_is_not(api):
    create(api, events=["contact.enriched", "bulk.completed"])
    again = post(
        api,
        "/api/v1/webhooks",
        {
            "url": "https://hooks.example.com/sluice",
            "events": ["bulk.completed", "contact.enriched"],
        },
    )
    assert again.status_code == 409 and again.json()["code"] == "duplicate_endpoint"
    create(api, events=["bulk.completed"])
    # Another account may subscribe the same URL.
    create(make_client())


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": "ftp://hooks.example.com/x"}, "url"),
        ({"url": "https://user:pw@hooks.example.com/x"}, "url"),
        ({"url": 42}, "url"),
        ({"url": "https://hooks.example.com/x", "events": ["nope"]}, "events"),
        ({"url": "https://hooks.example.com/x", "events": []}, "events"),
        ({"url": "https://hooks.example.com/x", "events": "contact.enriched"}, "events"),
        (
            {"url": "https://hooks.example.com/x", "events": ["bulk.completed", "bulk.completed"]},
            "events",
        ),
        ({"url": "https://hooks.example.com/x", "description": "x" * 501}, "description"),
        ({"url": "https://hooks.example.com/x", "secret": "mine"}, "secret"),
    ],
)
def test_invalid_create_is_422_with_the_field_path(api, body, field):
    # Private targets are allowed in the test settings, so no DNS is needed for example.com.
    response = post(api, "/api/v1/webhooks", body)
    assert response.status_code == 422, response.json()
    assert response.json()["code"] == "validation_error"
    assert field in response.json()["details"]
    assert not Endpoint.objects.exists()


def test_http_targets_are_refused_when_not_allowed(api, settings):
    settings.WEBHOOK_ALLOW_HTTP = False
    response = post(api, "/api/v1/webhooks", {"url": "http://hooks.example.com/x"})
    assert response.status_code == 422
    assert response.json()["details"]["url"] == "Must be an https:// URL."


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", '"text"'])
def test_malformed_bodies_are_400(api, raw):
    response = api.post("/api/v1/webhooks", raw, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] in ("invalid_json", "invalid_body")


def test_missing_key_is_401_and_missing_scope_is_403(db):
    from rest_framework.test import APIClient

    assert APIClient().get("/api/v1/webhooks").status_code == 401
    assert APIClient().get("/api/v1/events").status_code == 401
    reader = make_client(scopes=["read", "enrich"])
    response = reader.get("/api/v1/webhooks")
    assert response.status_code == 403 and response.json()["code"] == "insufficient_scope"
    assert reader.get("/api/v1/events").status_code == 403


def test_patch_changes_fields_and_checks_them(api):
    endpoint = create(api)
    path = f"/api/v1/webhooks/{endpoint['id']}"
    response = patch(api, path, {"events": ["bulk.completed"], "description": "new"})
    assert response.status_code == 200
    assert response.json()["events"] == ["bulk.completed"]
    assert response.json()["description"] == "new"
    assert patch(api, path, {"url": "gopher://x"}).status_code == 422
    assert patch(api, path, {"active": False}).json()["details"] == {"active": "Unknown field."}
    # Turning it into a copy of another active endpoint is a conflict.
    other = create(api, url="https://hooks.example.com/other")
    clash = patch(
        api,
        f"/api/v1/webhooks/{other['id']}",
        {"url": "https://hooks.example.com/sluice", "events": ["bulk.completed"]},
    )
    assert clash.status_code == 409
    assert api.get(f"/api/v1/webhooks/{other['id']}").json()["url"].endswith("/other")


def test_two_patches_of_different_fields_at_once_both_stick():
    # Two requests each loaded the endpoint before either saved.
    endpoint = EndpointFactory(description="old")
    first, second = (Endpoint.objects.get(pk=endpoint.pk) for _ in range(2))
    services.endpoint_update(endpoint=first, description="new")
    services.endpoint_update(endpoint=second, events=["bulk.completed"])
    endpoint.refresh_from_db()
    assert (endpoint.description, endpoint.events) == ("new", ["bulk.completed"])


def test_delete_removes_the_endpoint_and_its_deliveries(api):
    endpoint = EndpointFactory(account=api.account)
    DeliveryFactory(endpoint=endpoint)
    assert api.delete(f"/api/v1/webhooks/{endpoint.pk}").status_code == 204
    assert not Endpoint.objects.exists() and not Delivery.objects.exists()
    assert api.delete(f"/api/v1/webhooks/{endpoint.pk}").status_code == 404


def test_test_queues_a_sample_event_marked_as_test(api, redis_client):
    endpoint = EndpointFactory(account=api.account, events=["bulk.completed"])
    response = post(api, f"/api/v1/webhooks/{endpoint.pk}/test")
    assert response.status_code == 202
    body = response.json()
    assert set(body) == DELIVERY_FIELDS
    assert body["event_type"] == "bulk.completed" and body["status"] == "pending"
    event = Event.objects.get(pk=body["event_id"])
    assert event.test and event.payload["_test"] is True
    assert redis_client.llen("webhooks") == 1
    assert api.get("/api/v1/events").json()["data"] == []  # never listed
    chosen = post(api, f"/api/v1/webhooks/{endpoint.pk}/test", {"event_type": "credits.low"})
    assert chosen.json()["event_type"] == "credits.low"
    bad = post(api, f"/api/v1/webhooks/{endpoint.pk}/test", {"event_type": "nope"})
    assert bad.status_code == 422 and "event_type" in bad.json()["details"]


def test_test_sends_the_test_header(api, receiver):
    endpoint = EndpointFactory(account=api.account, url=receiver.url())
    delivery_id = post(api, f"/api/v1/webhooks/{endpoint.pk}/test").json()["id"]
    assert services.delivery_attempt(delivery_id=delivery_id) == "succeeded"
    (request,) = receiver.received()
    assert request.headers["x-sluice-test"] == "true"
    assert json.loads(request.body)["_test"] is True


def test_disabled_endpoint_refuses_test_recover_and_retry_with_409(api):
    endpoint = EndpointFactory(account=api.account, active=False)
    delivery = DeliveryFactory(endpoint=endpoint, status=Delivery.FAILED)
    base = f"/api/v1/webhooks/{endpoint.pk}"
    for path, body in (
        (f"{base}/test", None),
        (f"{base}/recover", {"since": "2020-01-01T00:00:00Z"}),
        (f"{base}/deliveries/{delivery.pk}/retry", None),
    ):
        response = post(api, path, body)
        assert response.status_code == 409, path
        assert response.json()["code"] == "endpoint_disabled"


def test_enable_reactivates_and_replays_what_was_skipped(api, redis_client):
    endpoint = EndpointFactory(account=api.account)
    services.endpoint_deactivate(endpoint=endpoint, reason="test")
    missed = DeliveryFactory(endpoint=endpoint, status=Delivery.SKIPPED, next_attempt_at=None)
    done = DeliveryFactory(endpoint=endpoint, status=Delivery.SUCCEEDED)
    redis_client.flushdb()
    response = post(api, f"/api/v1/webhooks/{endpoint.pk}/enable", {"replay": True})
    assert response.status_code == 200
    body = response.json()
    assert body["active"] is True and body["disabled_at"] is None and body["replayed"] == 1
    missed.refresh_from_db()
    done.refresh_from_db()
    assert missed.status == Delivery.PENDING and done.status == Delivery.SUCCEEDED
    assert redis_client.llen("webhooks") == 1
    assert post(api, f"/api/v1/webhooks/{endpoint.pk}/enable", {"replay": "x"}).status_code == 422


def test_enable_without_replay_leaves_skipped_deliveries(api):
    endpoint = EndpointFactory(account=api.account, active=False, disabled_reason="x")
    DeliveryFactory(endpoint=endpoint, status=Delivery.SKIPPED)
    body = post(api, f"/api/v1/webhooks/{endpoint.pk}/enable").json()
    assert body["active"] is True and body["replayed"] == 0
    assert Delivery.objects.get().status == Delivery.SKIPPED


def test_enable_is_409_when_an_identical_endpoint_is_active(api):
    live = EndpointFactory(account=api.account)
    dead = EndpointFactory(account=api.account, active=False, url=live.url, events=live.events)
    assert post(api, f"/api/v1/webhooks/{dead.pk}/enable").status_code == 409


def test_rotate_secret_returns_the_new_secret_and_keeps_the_old_for_a_day(api):
    endpoint = EndpointFactory(account=api.account)
    old = endpoint.secret
    before = timezone.now()
    response = post(api, f"/api/v1/webhooks/{endpoint.pk}/rotate-secret")
    after = timezone.now()
    assert response.status_code == 200
    assert response.json()["secret"].startswith("whsec_") and response.json()["secret"] != old
    endpoint.refresh_from_db()
    assert endpoint.previous_secret == old
    expires = endpoint.previous_secret_expires_at
    assert before + timedelta(hours=24) <= expires <= after + timedelta(hours=24)


def test_recover_resends_failed_deliveries_since_a_moment(api):
    endpoint = EndpointFactory(account=api.account)
    old = DeliveryFactory(endpoint=endpoint, status=Delivery.FAILED)
    Delivery.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=3))
    recent = DeliveryFactory(endpoint=endpoint, status=Delivery.FAILED, round_attempts=8)
    DeliveryFactory(endpoint=endpoint, status=Delivery.SUCCEEDED)
    since = (timezone.now() - timedelta(days=1)).isoformat()
    response = post(api, f"/api/v1/webhooks/{endpoint.pk}/recover", {"since": since})
    assert response.status_code == 202 and response.json() == {"recovered": 1}
    recent.refresh_from_db()
    old.refresh_from_db()
    assert (recent.status, recent.round_attempts) == (Delivery.PENDING, 0)
    assert old.status == Delivery.FAILED


@pytest.mark.parametrize(
    "body", [None, {}, {"since": "yesterday"}, {"since": "2026-01-01T00:00:00"}, {"since": 5}]
)
def test_recover_needs_a_zoned_timestamp(api, body):
    endpoint = EndpointFactory(account=api.account)
    response = post(api, f"/api/v1/webhooks/{endpoint.pk}/recover", body)
    assert response.status_code in (400, 422)
    if body is not None:
        assert "since" in response.json()["details"]


def test_deliveries_list_detail_and_retry(api, redis_client):
    endpoint = EndpointFactory(account=api.account)
    first = DeliveryFactory(endpoint=endpoint, status=Delivery.FAILED, attempt_count=1)
    first.attempts.create(at=timezone.now(), status_code=500, duration_ms=12, error="HTTP 500")
    second = DeliveryFactory(endpoint=endpoint)
    base = f"/api/v1/webhooks/{endpoint.pk}/deliveries"
    listed = api.get(base).json()
    assert [d["id"] for d in listed["data"]] == [str(second.pk), str(first.pk)]
    assert api.get(f"{base}?status=failed").json()["data"][0]["id"] == str(first.pk)
    assert api.get(f"{base}?status=odd").status_code == 422
    page = api.get(f"{base}?limit=1").json()
    assert page["pagination"]["has_more"] is True
    rest = api.get(f"{base}?limit=1&cursor={page['pagination']['next_cursor']}").json()
    assert [d["id"] for d in rest["data"]] == [str(first.pk)]
    detail = api.get(f"{base}/{first.pk}").json()
    assert set(detail) == DELIVERY_FIELDS
    assert detail["attempts"] == [
        {
            "at": detail["attempts"][0]["at"],
            "status_code": 500,
            "duration_ms": 12,
            "error": "HTTP 500",
            "response_body": "",
        }
    ]
    redis_client.flushdb()
    retried = post(api, f"{base}/{first.pk}/retry")
    assert retried.status_code == 202 and retried.json()["status"] == "pending"
    assert redis_client.llen("webhooks") == 1


def test_retry_of_a_delivery_in_flight_is_409_not_a_second_concurrent_send(api, redis_client):
    endpoint = EndpointFactory(account=api.account)
    now = timezone.now()
    # A worker holds the claim: its request is on the wire.
    delivery = DeliveryFactory(endpoint=endpoint, claimed_until=now + timedelta(seconds=30))
    path = f"/api/v1/webhooks/{endpoint.pk}/deliveries/{delivery.pk}/retry"
    redis_client.flushdb()
    response = post(api, path)
    assert response.status_code == 409 and response.json()["code"] == "delivery_in_flight"
    delivery.refresh_from_db()
    assert delivery.claimed_until is not None and redis_client.llen("webhooks") == 0
    # Once the lease has lapsed (the worker died), the retry goes through.
    Delivery.objects.filter(pk=delivery.pk).update(claimed_until=now - timedelta(seconds=1))
    assert post(api, path).status_code == 202
    assert redis_client.llen("webhooks") == 1


def test_events_are_polled_by_type_and_since(api):
    now = timezone.now()
    old = EventFactory(account=api.account, created_at=now - timedelta(hours=5))
    verified = EventFactory(account=api.account, type="contact.verified")
    enriched = EventFactory(account=api.account)
    EventFactory()  # another account's
    body = api.get("/api/v1/events").json()
    assert [e["id"] for e in body["data"]] == [enriched.pk, verified.pk, old.pk]
    # The stored body plus its mode (bodies stored before modes existed have none).
    assert body["data"][0] == {**enriched.payload, "sandbox": True}
    typed = api.get("/api/v1/events?type=contact.verified").json()["data"]
    assert [e["id"] for e in typed] == [verified.pk]
    since = (now - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    recent = api.get("/api/v1/events", {"since": since}).json()["data"]
    assert {e["id"] for e in recent} == {enriched.pk, verified.pk}
    assert api.get("/api/v1/events?type=nope").status_code == 422
    assert api.get("/api/v1/events?since=soon").status_code == 422
    assert api.get("/api/v1/events?limit=0").status_code == 422
    assert api.get("/api/v1/events?cursor=%%%").status_code == 422


@pytest.mark.parametrize(
    ("since", "status"),
    [
        # Python accepts offsets up to ±23:59, PostgreSQL only up to ±15:59: once a 500.
        # Beyond ±15:59 is refused, as ?updated_after= and cursors refuse it (one parser).
        ("2026-01-01T23:00:00+23:00", 422),
        ("2026-01-01T00:00:00-23:59", 422),
        ("2026-01-01T23:00:00+15:59", 200),
        ("2025-12-31T00:00:00-15:59", 200),
        ("0001-01-01T00:00:00+05:00", 422),
        ("9999-12-31T23:59:59-05:00", 422),
    ],
)
def test_since_with_any_offset_is_never_a_500(api, since, status):
    event = EventFactory(account=api.account, created_at=timezone.now())
    response = api.get("/api/v1/events", {"since": since})
    assert response.status_code == status, response.content
    if status == 200:
        assert [e["id"] for e in response.json()["data"]] == [event.pk]
    endpoint = EndpointFactory(account=api.account)
    recovered = post(api, f"/api/v1/webhooks/{endpoint.pk}/recover", {"since": since})
    assert recovered.status_code == (202 if status == 200 else 422), recovered.content


def test_another_accounts_ids_are_404_everywhere(api):
    theirs = EndpointFactory()
    their_secret = theirs.secret
    delivery = DeliveryFactory(endpoint=theirs)
    mine = EndpointFactory(account=api.account)
    calls = [
        *endpoint_calls(theirs, delivery, mine),
        ("get", "/api/v1/webhooks/not-a-uuid", None),
        ("get", f"/api/v1/webhooks/{mine.pk}/deliveries/not-a-uuid", None),
    ]
    assert_each_not_found(api, calls)
    theirs.refresh_from_db()
    assert (theirs.description, theirs.secret, theirs.active) == ("", their_secret, True)
    assert api.get("/api/v1/webhooks").json()["data"][0]["id"] == str(mine.pk)
    assert len(api.get("/api/v1/webhooks").json()["data"]) == 1


def test_paths_have_no_trailing_slash(api):
    assert api.get("/api/v1/webhooks/").status_code == 404
    assert post(api, "/api/v1/webhooks/", {"url": "https://x.example.com"}).status_code == 404


def test_every_spec_6_operation_is_in_the_openapi_schema(db):
    from rest_framework.test import APIClient

    paths = APIClient().get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"]
    base = "/api/v1/webhooks/{endpoint_id}"
    expected = {
        "/api/v1/webhooks": {"get", "post"},
        base: {"get", "patch", "delete"},
        f"{base}/test": {"post"},
        f"{base}/enable": {"post"},
        f"{base}/rotate-secret": {"post"},
        f"{base}/recover": {"post"},
        f"{base}/deliveries": {"get"},
        f"{base}/deliveries/{{delivery_id}}": {"get"},
        f"{base}/deliveries/{{delivery_id}}/retry": {"post"},
        "/api/v1/events": {"get"},
        "/api/v1/callback-secret/rotate": {"post"},
    }
    for path, methods in expected.items():
        assert methods <= set(paths.get(path, {})), path
