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


def test_a_batch_records_the_claims_it_holds_and_leaves_a_taken_over_one_alone():
    """The recorder's single UPDATE: each held row moves on as its attempt says; the row whose
    claim another token took over is not touched, nor is its attempt counted anywhere."""
    endpoint = EndpointFactory(consecutive_failures=0)
    token, other = delivery_leases.new_token(), delivery_leases.new_token()
    published = timezone.now() - timedelta(minutes=1)
    ok_row, failed_row, lost_row, skipped_row = (
        DeliveryFactory(endpoint=endpoint, published_at=published) for _ in range(4)
    )
    Delivery.objects.update(claim_token=token, claimed_until=timezone.now() + timedelta(minutes=1))
    Delivery.objects.filter(pk=lost_row.pk).update(claim_token=other)
    # Skipped meanwhile (its endpoint was disabled by another process's batch).
    Delivery.objects.filter(pk=skipped_row.pk).update(status=Delivery.SKIPPED)
    ok = AttemptResult(200, 5, None, "", None)
    failed = AttemptResult(500, 5, "HTTP 500", "", None)
    start = timezone.now()
    batch = [
        services.Sent(ok_row, token, ok, start),
        services.Sent(failed_row, token, failed, start + timedelta(seconds=1)),
        services.Sent(lost_row, token, failed, start + timedelta(seconds=2)),
        services.Sent(skipped_row, token, failed, start + timedelta(seconds=3)),
    ]
    statuses = services.deliveries_record(batch)
    assert statuses == {
        ok_row.pk: Delivery.SUCCEEDED,
        failed_row.pk: Delivery.PENDING,
        skipped_row.pk: Delivery.SKIPPED,
    }
    rows = {d.pk: d for d in Delivery.objects.all()}
    done = rows[ok_row.pk]
    assert (done.status, done.attempt_count, done.round_attempts) == (Delivery.SUCCEEDED, 1, 1)
    assert (done.claim_token, done.claimed_until, done.next_attempt_at) == (None, None, None)
    assert done.last_attempt_at == start and done.published_at == published
    retry = rows[failed_row.pk]
    assert (retry.status, retry.attempt_count, retry.claim_token) == (Delivery.PENDING, 1, None)
    wait = (retry.next_attempt_at - retry.updated_at).total_seconds()
    assert 4 <= wait <= 6, wait  # the schedule's 5 s ± 20 %
    assert retry.published_at == retry.next_attempt_at  # a countdown carries it
    lost = rows[lost_row.pk]
    assert (lost.status, lost.attempt_count, lost.claim_token) == (Delivery.PENDING, 0, other)
    assert lost.last_attempt_at is None and lost.published_at == published
    skipped = rows[skipped_row.pk]
    assert (skipped.status, skipped.attempt_count, skipped.next_attempt_at) == (
        Delivery.SKIPPED,
        1,
        None,
    )
    assert set(DeliveryAttempt.objects.values_list("delivery_id", flat=True)) == {
        ok_row.pk,
        failed_row.pk,
        skipped_row.pk,
    }
    # The streak counts the recorded attempts in order: a success, then two failures.
    endpoint.refresh_from_db()
    assert endpoint.consecutive_failures == 2
    assert endpoint.last_success_at is not None and endpoint.failing_since is not None
