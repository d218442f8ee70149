"""Delivery claims: renewed while the request is in flight, fenced, swept once they lapse."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.webhooks import services
from apps.webhooks.models import Delivery, DeliveryAttempt
from apps.webhooks.services.deliveries import delivery_leases
from apps.webhooks.services.transport import AttemptResult
from tests.support.queues import queued_delivery_ids
from tests.support.receiver import Answer
from tests.support.worker import wait_for
from tests.webhooks.factories import DeliveryFactory, EndpointFactory

pytestmark = pytest.mark.django_db(transaction=True)


def record(delivery, result, *, token, at=None):
    """Record one attempt made under claim ``token``, as the sender's recorder does."""
    sent = services.Sent(delivery, token, result, at or timezone.now())
    return services.deliveries_record([sent]).get(delivery.pk)


def test_a_slow_receiver_keeps_its_claim_alive(receiver, settings):
    settings.WEBHOOK_LEASE_SECONDS = 0.5  # renewed every 0.1 s
    receiver.then(Answer(delay=1.5))  # three leases long
    delivery = DeliveryFactory(endpoint=EndpointFactory(url=receiver.url()))
    done: list[str | None] = []

    def send() -> None:
        try:
            done.append(services.delivery_attempt(delivery_id=str(delivery.pk)))
        finally:
            connection.close()

    thread = threading.Thread(target=send)
    thread.start()
    try:
        wait_for(lambda: receiver.received(), timeout=5, message="no request arrived")
        time.sleep(0.8)  # past the first lease: only renewals keep the claim
        row = Delivery.objects.get(pk=delivery.pk)
        assert row.claimed_until > timezone.now()
        assert services.deliveries_sweep() == 0  # a live claim is not swept
    finally:
        thread.join(10)
    assert done == [Delivery.SUCCEEDED]
    assert len(receiver.received()) == 1
    assert delivery_leases.holding() == 0


def test_the_sweep_republishes_a_lapsed_claim_at_once(redis_client, settings):
    settings.WEBHOOK_REPUBLISH_AFTER_SECONDS = 300
    now = timezone.now()
    # Its process died mid-attempt: claimed, never recorded, message published just now.
    orphaned = DeliveryFactory(published_at=now, claimed_until=now - timedelta(seconds=1))
    DeliveryFactory(published_at=now, claimed_until=now + timedelta(seconds=10))  # in flight
    redis_client.flushdb()
    assert services.deliveries_sweep() == 1
    assert queued_delivery_ids(redis_client) == [str(orphaned.pk)]
    assert Delivery.objects.get(pk=orphaned.pk).claimed_until is None
    assert services.deliveries_sweep() == 0


def test_an_attempt_whose_claim_was_taken_over_is_not_recorded():
    delivery = DeliveryFactory()
    ok = AttemptResult(
        status_code=200, duration_ms=5, error=None, response_body="", retry_after=None
    )
    Delivery.objects.filter(pk=delivery.pk).update(claim_token=delivery_leases.new_token())
    stale = delivery_leases.new_token()
    assert record(delivery, ok, token=stale) is None
    row = Delivery.objects.get(pk=delivery.pk)
    assert (row.status, row.attempt_count) == (Delivery.PENDING, 0)
    assert not DeliveryAttempt.objects.filter(delivery=delivery).exists()
    current = row.claim_token
    assert record(delivery, ok, token=current) == Delivery.SUCCEEDED


def test_an_unclaimed_delivery_is_lost_after_one_lease_while_the_queue_is_empty(redis_client):
    now = timezone.now()
    taken = DeliveryFactory(published_at=now - timedelta(seconds=20))
    DeliveryFactory(published_at=now)  # its message may still be on its way
    redis_client.flushdb()
    redis_client.rpush("webhooks", b"{}")  # a backlog: a message may simply be waiting
    assert services.deliveries_sweep() == 0
    redis_client.delete("webhooks")
    assert services.deliveries_sweep() == 1
    assert queued_delivery_ids(redis_client) == [str(taken.pk)]


def test_an_attempt_is_recorded_once_even_when_its_record_is_retried():
    delivery = DeliveryFactory()
    token = delivery_leases.new_token()
    Delivery.objects.filter(pk=delivery.pk).update(claim_token=token)
    failed = AttemptResult(
        status_code=500, duration_ms=5, error=None, response_body="", retry_after=None
    )
    now = timezone.now()
    first = record(delivery, failed, token=token, at=now)
    assert first == Delivery.PENDING
    # The same call again, as db_retry makes it after a COMMIT whose reply was lost.
    assert record(delivery, failed, token=token, at=now) is None
    row = Delivery.objects.get(pk=delivery.pk)
    assert row.attempt_count == 1
    assert DeliveryAttempt.objects.filter(delivery=delivery).count() == 1
