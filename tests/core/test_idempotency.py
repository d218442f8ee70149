"""Idempotency keys on every POST (SPEC §4): replay, reuse, concurrency, expiry, purge."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.services import credits_add
from apps.core.idempotency import request_fingerprint
from apps.core.models import IdempotencyRecord
from apps.core.tasks import purge_idempotency_keys
from apps.enrichment import services as enrichment_services
from apps.enrichment.models import BulkJob, Contact
from config.celery import app as celery_app
from tests.factories import AccountFactory
from tests.support.api import make_client
from tests.support.queues import queue_length

pytestmark = pytest.mark.django_db(transaction=True)

SARAH = {
    "first_name": "Sarah",
    "last_name": "Chen",
    "company_name": "Stripe",
    "enrichment_type": ["email"],
    "custom": {"hubspot_id": "4447901"},
}


def post(client, path: str, body, key: str | None = "key-1", **extra):
    if key is not None:
        extra["HTTP_IDEMPOTENCY_KEY"] = key
    raw = body if isinstance(body, str) else json.dumps(body)
    return client.post(path, raw, content_type="application/json", **extra)


def test_same_key_and_body_replays_without_storing_or_enqueuing(api, redis_client):
    first = post(api, "/api/v1/enrich", SARAH)
    assert first.status_code == 202
    assert "Idempotent-Replayed" not in first
    assert queue_length(redis_client) == 1
    # Same JSON with another key order and spacing is the same request.
    reordered = json.dumps(dict(reversed(list(SARAH.items()))), indent=2)
    again = post(api, "/api/v1/enrich", reordered)
    assert again.status_code == 202
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert again["Location"] == first["Location"]
    assert again["X-Request-ID"] != first["X-Request-ID"]
    assert Contact.objects.count() == 1
    assert queue_length(redis_client) == 1


def test_bulk_replay_enqueues_nothing(api, redis_client):
    batch = {"contacts": [SARAH, {**SARAH, "first_name": "Ann"}], "enrichment_type": ["email"]}
    first = post(api, "/api/v1/enrich/bulk", batch, key="bulk-1")
    assert first.status_code == 202
    again = post(api, "/api/v1/enrich/bulk", batch, key="bulk-1")
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert BulkJob.objects.count() == 1
    assert Contact.objects.count() == 2
    assert queue_length(redis_client) == 1


def test_live_replay_charges_nothing_and_needs_no_balance(db, redis_client):
    client = make_client(mode="live", credits=5)
    first = post(client, "/api/v1/enrich", SARAH)
    assert first.status_code == 202
    client.account.__class__.objects.filter(pk=client.account.pk).update(credits=0)
    again = post(client, "/api/v1/enrich", SARAH)
    assert again.status_code == 202  # the stored answer, not a fresh 402
    assert again["Idempotent-Replayed"] == "true"
    assert Contact.objects.count() == 1


def test_same_key_with_a_different_body_or_endpoint_is_422(api, redis_client):
    assert post(api, "/api/v1/enrich", SARAH).status_code == 202
    changed = post(api, "/api/v1/enrich", {**SARAH, "first_name": "Sara"})
    assert changed.status_code == 422
    assert changed.json()["code"] == "idempotency_key_reused"
    assert set(changed.json()) == {"error", "code", "details", "request_id"}
    assert "X-RateLimit-Remaining" in changed
    other_path = post(api, "/api/v1/enrich/bulk", {"contacts": [SARAH]})
    assert other_path.status_code == 422
    assert other_path.json()["code"] == "idempotency_key_reused"
    assert Contact.objects.count() == 1
    assert queue_length(redis_client) == 1


def test_keys_are_scoped_per_account(api, redis_client):
    other = make_client()
    assert post(api, "/api/v1/enrich", SARAH).status_code == 202
    theirs = post(other, "/api/v1/enrich", SARAH)
    assert theirs.status_code == 202
    assert "Idempotent-Replayed" not in theirs
    assert Contact.objects.filter(account=other.account).count() == 1


def test_keys_of_one_account_are_shared_by_its_keys(api):
    second_key = make_client(account=api.account)
    first = post(api, "/api/v1/enrich", SARAH)
    again = post(second_key, "/api/v1/enrich", SARAH)
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()


def test_sandbox_and_live_keys_have_separate_key_spaces(api, redis_client):
    live = make_client(account=api.account, mode="live")
    credits_add(account=api.account, amount=10, reason="top-up")
    sandbox_answer = post(api, "/api/v1/enrich", SARAH)
    live_answer = post(live, "/api/v1/enrich", SARAH)
    assert live_answer.status_code == 202
    assert "Idempotent-Replayed" not in live_answer
    assert live_answer.json()["enrichment_id"] != sandbox_answer.json()["enrichment_id"]
    assert sorted(Contact.objects.values_list("sandbox", flat=True)) == [False, True]
    assert post(live, "/api/v1/enrich", SARAH)["Idempotent-Replayed"] == "true"


@pytest.mark.parametrize("bad", ["", "x" * 256, "caf\u00e9", "tab\there"])
def test_invalid_key_is_422(api, bad):
    response = api.post(
        "/api/v1/enrich", SARAH, format="json", HTTP_IDEMPOTENCY_KEY=bad.encode().decode("latin-1")
    )
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_idempotency_key"
    assert Contact.objects.count() == 0


def test_longest_valid_key_is_accepted(api):
    assert post(api, "/api/v1/enrich", SARAH, key="k" * 255).status_code == 202


def test_without_a_key_every_post_runs(api):
    assert post(api, "/api/v1/enrich", SARAH, key=None).status_code == 202
    assert post(api, "/api/v1/enrich", SARAH, key=None).status_code == 202
    assert Contact.objects.count() == 2


def test_failed_authentication_passes_through(db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer sk_test_" + "a" * 40)
    response = post(client, "/api/v1/enrich", SARAH)
    assert response.status_code == 401
    assert IdempotencyRecord.objects.count() == 0


def test_validation_errors_are_stored_and_replayed(api):
    invalid = {**SARAH, "first_name": ""}
    first = post(api, "/api/v1/enrich", invalid)
    assert first.status_code == 422
    again = post(api, "/api/v1/enrich", invalid)
    assert again.status_code == 422
    assert again["Idempotent-Replayed"] == "true"
    assert again.content == first.content  # the original body, its request_id included
    assert again["X-Request-ID"] != first["X-Request-ID"]


def test_402_is_not_stored_so_a_retry_after_top_up_runs(db, redis_client):
    client = make_client(mode="live", credits=0)
    assert post(client, "/api/v1/enrich", SARAH).status_code == 402
    credits_add(account=client.account, amount=10, reason="top-up")
    retry = post(client, "/api/v1/enrich", SARAH)
    assert retry.status_code == 202
    assert "Idempotent-Replayed" not in retry
    assert queue_length(redis_client) == 1


def test_a_server_error_releases_the_key(api, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("database blip")

    monkeypatch.setattr(enrichment_services, "contact_enqueue", broken)
    api.raise_request_exception = False
    assert post(api, "/api/v1/enrich", SARAH).status_code == 500
    assert IdempotencyRecord.objects.count() == 0
    monkeypatch.undo()
    retry = post(api, "/api/v1/enrich", SARAH)
    assert retry.status_code == 202
    assert "Idempotent-Replayed" not in retry


def _record(client, *, body=SARAH, path="/api/v1/enrich", **fields) -> IdempotencyRecord:
    now = timezone.now()
    values = {
        "account": client.account,
        "sandbox": client.key.sandbox,
        "key": "key-1",
        "fingerprint": request_fingerprint(
            method="POST", path=path, body=json.dumps(body).encode()
        ),
        "method": "POST",
        "path": path,
        "locked_at": now,
        "expires_at": now + timedelta(hours=24),
        **fields,
    }
    return IdempotencyRecord.objects.create(**values)


def test_a_key_in_flight_is_409(api):
    _record(api)
    response = post(api, "/api/v1/enrich", SARAH)
    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_key_in_flight"
    assert response["X-RateLimit-Limit"] == "200"  # answered by the middleware, still counted
    assert response["X-Request-ID"] == response.json()["request_id"]
    assert Contact.objects.count() == 0


def test_a_stale_in_flight_key_is_taken_over(api, settings):
    stale = timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_LOCK_TIMEOUT_SECONDS + 5)
    _record(api, locked_at=stale)
    response = post(api, "/api/v1/enrich", SARAH)
    assert response.status_code == 202
    record = IdempotencyRecord.objects.get()
    assert record.state == IdempotencyRecord.COMPLETED
    assert post(api, "/api/v1/enrich", SARAH)["Idempotent-Replayed"] == "true"


def test_an_expired_key_runs_again(api):
    past = timezone.now() - timedelta(hours=25)
    _record(
        api,
        state=IdempotencyRecord.COMPLETED,
        response_status=202,
        response_body=b"{}",
        locked_at=past,
        expires_at=past + timedelta(hours=24),
    )
    response = post(api, "/api/v1/enrich", SARAH)
    assert response.status_code == 202
    assert "Idempotent-Replayed" not in response
    assert Contact.objects.count() == 1


def test_purge_deletes_only_expired_records():
    old = make_client()
    past = timezone.now() - timedelta(hours=25)
    _record(old, key="old", locked_at=past, expires_at=past + timedelta(hours=24))
    _record(old, key="fresh")
    assert purge_idempotency_keys() == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["fresh"]


def test_purge_task_is_scheduled_on_the_maintenance_queue(settings):
    names = [entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()]
    assert "maintenance.purge_idempotency_keys" in names
    route = celery_app.amqp.router.route({}, "maintenance.purge_idempotency_keys")
    assert route["queue"].name == "maintenance"


def test_replays_count_against_the_rate_limit(api):
    first = post(api, "/api/v1/enrich", SARAH)
    again = post(api, "/api/v1/enrich", SARAH)
    assert int(again["X-RateLimit-Remaining"]) == int(first["X-RateLimit-Remaining"]) - 1


def test_concurrent_requests_with_one_key_create_one_contact(api, redis_client):
    raw_key = api.key.raw_key
    threads = 12
    start = threading.Barrier(threads)

    def fire(_: int):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
        try:
            start.wait(timeout=30)
            response = post(client, "/api/v1/enrich", SARAH, key="race")
            return response.status_code, response.get("Idempotent-Replayed"), response.json()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = list(pool.map(fire, range(threads)))
    assert Contact.objects.count() == 1
    assert queue_length(redis_client) == 1
    processed = [body for status, replayed, body in results if status == 202 and not replayed]
    assert len(processed) == 1
    for status, _replayed, body in results:
        assert status in (202, 409), body
        if status == 202:
            assert body == processed[0]
        else:
            assert body["code"] == "idempotency_key_in_flight"


def test_an_over_limit_request_is_429_not_a_replay(db, monkeypatch):
    from apps.accounts import ratelimit
    from tests.support.ratelimit import BEFORE_MIDNIGHT, small_plan

    monkeypatch.setattr(ratelimit, "clock", lambda: BEFORE_MIDNIGHT)  # no minute boundary
    client = make_client(account=AccountFactory(plan=small_plan(per_minute=1)))
    assert post(client, "/api/v1/enrich", SARAH).status_code == 202
    refused = post(client, "/api/v1/enrich", SARAH)
    assert refused.status_code == 429
    assert "Idempotent-Replayed" not in refused
    assert IdempotencyRecord.objects.get().state == IdempotencyRecord.COMPLETED


def test_webhook_endpoint_creation_is_idempotent_too(api):
    """The middleware covers POST views it was never told about (webhooks app)."""
    from apps.webhooks.models import Endpoint

    endpoint = {"url": "https://hooks.example.com/sluice", "events": ["contact.enriched"]}
    first = post(api, "/api/v1/webhooks", endpoint, key="hook-1")
    assert first.status_code == 201, first.json()
    again = post(api, "/api/v1/webhooks", endpoint, key="hook-1")
    assert again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert Endpoint.objects.filter(account=api.account).count() == 1


# --- A replay goes only to a key allowed to make the original request -------------------------

ENDPOINT = {"url": "https://hooks.example.com/sluice", "events": ["contact.enriched"]}


def test_a_key_without_the_webhooks_scope_cannot_replay_an_endpoint_secret(api):
    """The endpoint's secret is in the stored 201: a replay to a key that may not create (or
    read) endpoints would hand it over."""
    first = post(api, "/api/v1/webhooks", ENDPOINT, key="hook-1")
    assert first.status_code == 201
    assert first.json()["secret"].startswith("whsec_")
    assert IdempotencyRecord.objects.get().required_scope == "webhooks"
    enrich_only = make_client(account=api.account, scopes=["enrich", "read"])
    refused = post(enrich_only, "/api/v1/webhooks", ENDPOINT, key="hook-1")
    assert refused.status_code == 403
    assert refused.json()["code"] == "insufficient_scope"
    assert "Idempotent-Replayed" not in refused
    assert b"whsec_" not in refused.content
    assert first.json()["secret"].encode() not in refused.content
    # The refusal neither replaced nor released the record: the owner still gets its replay.
    assert post(api, "/api/v1/webhooks", ENDPOINT, key="hook-1").json() == first.json()


def test_a_key_with_the_required_scope_gets_the_replay(api):
    first = post(api, "/api/v1/webhooks", ENDPOINT, key="hook-1")
    webhooks_only = make_client(account=api.account, scopes=["webhooks"])
    again = post(webhooks_only, "/api/v1/webhooks", ENDPOINT, key="hook-1")
    assert again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()


def test_a_key_without_the_scope_is_refused_before_taking_the_key(api, redis_client):
    read_only = make_client(account=api.account, scopes=["read"])
    refused = post(read_only, "/api/v1/enrich", SARAH)
    assert refused.status_code == 403
    assert refused.json()["code"] == "insufficient_scope"
    assert not IdempotencyRecord.objects.exists()
    # So the key is still free for a key that may enrich.
    assert "Idempotent-Replayed" not in post(api, "/api/v1/enrich", SARAH)
    assert Contact.objects.count() == 1


def test_the_scope_stored_on_the_record_is_what_a_replay_needs(api):
    """Checked against the record, not only today's view: had the view's scope changed (or
    the path resolved elsewhere), the scope the original needed still applies."""
    post(api, "/api/v1/enrich", SARAH)
    IdempotencyRecord.objects.update(required_scope="webhooks")
    enrich_only = make_client(account=api.account, scopes=["enrich"])
    refused = post(enrich_only, "/api/v1/enrich", SARAH)
    assert refused.status_code == 403
    assert "'webhooks'" in refused.json()["error"]
    assert Contact.objects.count() == 1


def test_a_record_stored_before_scopes_were_kept_replays_only_to_an_unrestricted_key(api):
    first = post(api, "/api/v1/webhooks", ENDPOINT, key="hook-1")
    IdempotencyRecord.objects.update(required_scope=None)  # as migration 0005 leaves old rows
    webhooks_only = make_client(account=api.account, scopes=["webhooks"])
    refused = post(webhooks_only, "/api/v1/webhooks", ENDPOINT, key="hook-1")
    assert refused.status_code == 403
    assert b"whsec_" not in refused.content
    again = post(api, "/api/v1/webhooks", ENDPOINT, key="hook-1")  # api's key: every scope
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
