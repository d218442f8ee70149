"""End to end: the API, real Celery workers on the real broker, and a real HTTP receiver."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from apps.enrichment.models import BulkJob, Contact
from apps.webhooks.models import Delivery, Endpoint, Event
from apps.webhooks.tasks import sweep_webhook_deliveries
from tests.support.receiver import Answer
from tests.support.worker import wait_for
from tests.webhooks.factories import DeliveryFactory, EndpointFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

ADA = {
    "first_name": "Ada",
    "last_name": "Lovelace",
    "company_name": "Analytical Engines",
    "domain": "engines.io",
    "enrichment_type": ["email"],
}


def post(client, path, body):
    response = client.post(path, json.dumps(body), content_type="application/json")
    assert response.status_code in (201, 202), response.json()
    return response.json()


def post_adas(client, count: int, *, webhook_url: str) -> str:
    """A bulk of ``count`` distinct Adas, each one's result sent to ``webhook_url``: its id."""
    contacts = [dict(ADA, first_name=f"Ada{i}", domain=f"engine{i}.io") for i in range(count)]
    body = {"contacts": contacts, "enrichment_type": ["email"], "webhook_url": webhook_url}
    return post(client, "/api/v1/enrich/bulk", body)["bulk_id"]


def subscribe(client, url: str, events: list[str]) -> dict:
    return post(client, "/api/v1/webhooks", {"url": url, "events": events})


def test_flapping_receiver_gets_the_event_on_the_fourth_attempt(api, worker_factory, receiver):
    worker_factory(env={"WEBHOOK_RETRY_SCHEDULE": "0,0.2,0.2,0.2"})
    receiver.then(Answer(status=500), Answer(status=502), Answer(status=503, body=b"busy"))
    endpoint = subscribe(api, receiver.url(), ["contact.enriched"])
    enrichment_id = post(api, "/api/v1/enrich", ADA)["enrichment_id"]

    delivery = wait_for(
        lambda: Delivery.objects.filter(endpoint_id=endpoint["id"], status="succeeded").first(),
        timeout=30,
        message="delivery did not succeed",
    )
    assert delivery.attempt_count == 4
    detail = api.get(f"/api/v1/webhooks/{endpoint['id']}/deliveries/{delivery.pk}").json()
    assert [a["status_code"] for a in detail["attempts"]] == [500, 502, 503, 200]
    assert detail["attempts"][2]["response_body"] == "busy"
    requests = receiver.received()
    assert len(requests) == 4
    assert {r.headers["webhook-id"] for r in requests} == {delivery.event_id}
    payload = Webhook(endpoint["secret"]).verify(requests[-1].body, requests[-1].headers)
    assert payload["type"] == "contact.enriched"
    assert payload["data"]["enrichment_id"] == enrichment_id
    assert payload["data"]["result"]["email"] == "ada.lovelace@engines.io"
    ok = api.get(f"/api/v1/webhooks/{endpoint['id']}").json()
    assert ok["consecutive_failures"] == 0 and ok["last_success_at"] is not None


def test_dead_endpoint_is_deactivated_at_the_threshold(api, worker_factory, receiver):
    worker_factory(
        env={
            "WEBHOOK_RETRY_SCHEDULE": "0,0.1,0.1,0.1,0.1,0.1",
            "WEBHOOK_DISABLE_AFTER_FAILURES": "3",
            "WEBHOOK_DISABLE_AFTER_SECONDS": "0",
        }
    )
    dead = subscribe(api, receiver.url("/dead"), ["contact.enriched"])
    watcher = subscribe(api, receiver.url("/watch"), ["endpoint.disabled"])
    receiver.routes["/dead"] = Answer(status=500)
    post(api, "/api/v1/enrich", ADA)

    wait_for(
        lambda: not Endpoint.objects.get(pk=dead["id"]).active,
        timeout=30,
        message="endpoint was not deactivated",
    )
    endpoint = api.get(f"/api/v1/webhooks/{dead['id']}").json()
    assert endpoint["consecutive_failures"] == 3
    assert endpoint["disabled_reason"].startswith("3 consecutive failed attempts")
    delivery = Delivery.objects.get(endpoint_id=dead["id"])
    assert (delivery.status, delivery.attempt_count) == ("skipped", 3)
    assert len(receiver.received(path="/dead")) == 3
    notice = wait_for(
        lambda: receiver.received(path="/watch"), timeout=20, message="no endpoint.disabled"
    )
    assert notice[0].event_type == "endpoint.disabled"
    assert json.loads(notice[0].body)["data"]["id"] == dead["id"]
    wait_for(
        lambda: Delivery.objects.get(endpoint_id=watcher["id"]).status == "succeeded",
        timeout=10,
        message="the notice was not recorded as delivered",
    )


def test_a_slow_receiver_does_not_delay_enrichment(api, worker_factory, receiver):
    # Enrichment and webhooks on their own processes, as in the Procfile.
    worker_factory(queues="enrichment,maintenance")
    # Each webhook thread waits on its first request for as long as the receiver holds it.
    worker_factory(
        queues="webhooks",
        concurrency=2,
        env={"WEBHOOK_READ_TIMEOUT": "60", "WEBHOOK_CONCURRENCY": "2"},
    )
    receiver.default = Answer(hold=True)  # answers only once released below
    bulk_id = post_adas(api, 20, webhook_url=receiver.url())
    wait_for(
        lambda: BulkJob.objects.get(pk=bulk_id).completed_at,
        timeout=20,
        message="enrichment was held up by the slow receiver",
    )
    assert Contact.objects.filter(status="pending").count() == 0
    # Both webhook threads are stuck on a request the receiver holds, yet every contact
    # finished: at most two deliveries have been tried, and none has succeeded.
    assert len(receiver.received()) <= 2
    untouched = Delivery.objects.filter(status="pending", attempt_count=0).count()
    assert Delivery.objects.count() == 21  # 20 contact.enriched and one bulk.completed
    assert untouched >= 19, untouched
    assert Delivery.objects.filter(status="succeeded").count() == 0
    receiver.release()


def test_a_bulk_finishing_on_several_workers_emits_one_bulk_completed(
    api, worker_factory, receiver, settings
):
    settings.ENRICHMENT_CHUNK_SIZE = 1  # one message per contact, spread over every thread
    workers = [worker_factory(queues="enrichment,webhooks", concurrency=4) for _ in range(2)]
    bulk_id = post_adas(api, 40, webhook_url=receiver.url())
    wait_for(
        lambda: (
            len(receiver.received("contact.enriched")) == 40 and receiver.received("bulk.completed")
        ),
        timeout=60,
        message="not every webhook arrived",
    )
    assert Event.objects.filter(type="bulk.completed").count() == 1
    (completed,) = receiver.received("bulk.completed")
    body = json.loads(completed.body)
    assert body["data"]["bulk_id"] == bulk_id and body["data"]["finished"] == 40
    assert Contact.objects.filter(bulk_id=bulk_id, status="finished").count() == 40
    # Both worker processes finished contacts of this bulk, so the race was real.
    for proc in workers:
        assert "apps.enrichment.tasks.run_contacts" in proc.log_path.read_text()


def test_a_delivery_whose_message_was_lost_is_sent_after_the_sweep(api, worker_factory, receiver):
    worker_factory(queues="maintenance,webhooks", env={"WEBHOOK_REPUBLISH_AFTER_SECONDS": "1"})
    endpoint = EndpointFactory(account=api.account, url=receiver.url())
    # A committed row whose message never reached the broker (say Redis restarted).
    delivery = DeliveryFactory(
        endpoint=endpoint, published_at=timezone.now() - timedelta(minutes=1)
    )
    assert receiver.received() == []
    sweep_webhook_deliveries.delay()  # what beat sends every WEBHOOK_SWEEP_INTERVAL_SECONDS
    wait_for(
        lambda: Delivery.objects.get(pk=delivery.pk).status == "succeeded",
        timeout=30,
        message="the sweep did not re-publish the delivery",
    )
    (request,) = receiver.received()
    assert request.headers["webhook-id"] == delivery.event_id
