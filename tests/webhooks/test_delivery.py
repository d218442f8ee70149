"""Delivery attempts called directly (no worker) against a real local HTTP receiver."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.enrichment import services as enrichment_services
from apps.enrichment.models import Contact
from apps.enrichment.services.finishing import finished_events
from apps.enrichment.waterfall import Outcome
from apps.webhooks import services
from apps.webhooks.models import Delivery, DeliveryAttempt, Endpoint, Event
from apps.webhooks.services.transport import AttemptResult
from tests.factories import AccountFactory, BulkJobFactory, ContactFactory
from tests.support.api import make_client
from tests.support.queues import queued_delivery_ids
from tests.support.receiver import Answer
from tests.support.worker import wait_for
from tests.webhooks.factories import DeliveryFactory, EndpointFactory, EventFactory

pytestmark = pytest.mark.django_db(transaction=True)


def attempt(delivery: Delivery) -> str | None:
    return services.delivery_attempt(delivery_id=str(delivery.pk))


def due_now(delivery: Delivery) -> None:
    """Skip the wait before the next scheduled attempt (the schedule itself is tested apart)."""
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())


def scheduled_wait(delivery: Delivery) -> float:
    """Seconds from the attempt's result being recorded to the next attempt it scheduled (both
    stamped in the same update, so no test-side clock is involved)."""
    delivery.refresh_from_db()
    return (delivery.next_attempt_at - delivery.updated_at).total_seconds()


def test_success_records_the_attempt_and_resets_the_streak(receiver):
    delivery = DeliveryFactory(endpoint=EndpointFactory(url=receiver.url(), consecutive_failures=3))
    assert attempt(delivery) == Delivery.SUCCEEDED
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempt_count, delivery.next_attempt_at) == (
        "succeeded",
        1,
        None,
    )
    (row,) = DeliveryAttempt.objects.filter(delivery=delivery)
    assert (row.status_code, row.error, row.response_body) == (200, None, "ok")
    endpoint = Endpoint.objects.get(pk=delivery.endpoint_id)
    assert endpoint.consecutive_failures == 0 and endpoint.last_success_at is not None
    (request,) = receiver.received()
    assert request.body == delivery.event.body.encode()
    assert request.headers["webhook-id"] == delivery.event_id
    assert request.headers["x-sluice-event"] == "contact.enriched"
    assert request.headers["content-type"] == "application/json"


def test_failures_follow_the_schedule_with_jitter_and_keep_the_webhook_id(receiver, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = [0, 10, 100]
    receiver.default = Answer(status=500, body=b"boom")
    delivery = DeliveryFactory(endpoint=EndpointFactory(url=receiver.url()))
    assert attempt(delivery) == Delivery.PENDING
    wait = scheduled_wait(delivery)
    assert 8 <= wait <= 12, wait  # 10 s ± 20 %
    due_now(delivery)
    assert attempt(delivery) == Delivery.PENDING
    wait = scheduled_wait(delivery)
    assert 80 <= wait <= 120, wait
    # A long wait is left to the sweep, not to a broker countdown.
    assert delivery.published_at is None
    due_now(delivery)
    assert attempt(delivery) == Delivery.FAILED
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempt_count, delivery.next_attempt_at) == (
        "failed",
        3,
        None,
    )
    assert {r.headers["webhook-id"] for r in receiver.received()} == {delivery.event_id}
    assert [a.response_body for a in delivery.attempts.all()] == ["boom"] * 3
    endpoint = Endpoint.objects.get(pk=delivery.endpoint_id)
    assert endpoint.consecutive_failures == 3 and endpoint.last_failure_at is not None


def test_a_redirect_is_a_failure_and_is_not_followed(receiver):
    receiver.then(Answer(status=302, headers={"Location": receiver.url("/elsewhere")}))
    delivery = DeliveryFactory(endpoint=EndpointFactory(url=receiver.url()))
    assert attempt(delivery) == Delivery.PENDING
    row = DeliveryAttempt.objects.get(delivery=delivery)
    assert row.status_code == 302 and "not followed" in row.error
    assert [r.path for r in receiver.received()] == ["/hook"]


def test_retry_after_is_respected_up_to_twice_the_scheduled_delay(receiver, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = [0, 10, 10]
    receiver.then(
        Answer(status=429, headers={"Retry-After": "15"}),
        Answer(status=503, headers={"Retry-After": "3600"}),
    )
    delivery = DeliveryFactory(endpoint=EndpointFactory(url=receiver.url()))
    attempt(delivery)
    assert scheduled_wait(delivery) == pytest.approx(15, abs=0.001)
    due_now(delivery)
    attempt(delivery)
    assert scheduled_wait(delivery) == pytest.approx(20, abs=0.001)  # capped at 2 x 10 s


def test_response_body_snippet_is_at_most_1_kb(receiver):
    receiver.then(Answer(status=400, body=b"x" * 5000))
    delivery = DeliveryFactory(endpoint=EndpointFactory(url=receiver.url()))
    attempt(delivery)
    assert DeliveryAttempt.objects.get(delivery=delivery).response_body == "x" * 1024


@pytest.mark.parametrize(
    ("body", "snippet"),
    [
        ("é".encode() * 1000, "é" * 512),  # cut between characters, not inside one
        (b"\xff" * 2000, "\ufffd" * 341),  # not UTF-8: replacement characters, still 1 KB
        (b"a\x00b", "ab"),  # PostgreSQL text cannot hold NUL
    ],
)
def test_response_body_snippet_is_1_kb_of_utf8_whatever_the_bytes(receiver, body, snippet):
    receiver.then(Answer(status=400, body=body))
    delivery = DeliveryFactory(endpoint=EndpointFactory(url=receiver.url()))
    attempt(delivery)
    stored = DeliveryAttempt.objects.get(delivery=delivery).response_body
    assert stored == snippet and len(stored.encode()) <= 1024


def test_read_timeout_is_a_failed_attempt(receiver, settings):
    settings.WEBHOOK_READ_TIMEOUT = 0.3
    receiver.then(Answer(delay=2))
    delivery = DeliveryFactory(endpoint=EndpointFactory(url=receiver.url()))
    assert attempt(delivery) == Delivery.PENDING
    row = DeliveryAttempt.objects.get(delivery=delivery)
    assert row.status_code is None and "Read timeout" in row.error


def test_a_trickling_receiver_is_cut_off_at_connect_plus_read_timeout(receiver, settings):
    # Every header line arrives within the read timeout, yet the answer never ends.
    settings.WEBHOOK_CONNECT_TIMEOUT = 0.5
    settings.WEBHOOK_READ_TIMEOUT = 0.5
    receiver.then(Answer(trickle=0.1))
    delivery = DeliveryFactory(endpoint=EndpointFactory(url=receiver.url()))
    assert attempt(delivery) == Delivery.PENDING
    row = DeliveryAttempt.objects.get(delivery=delivery)
    # The message is the deadline timer's (it fired before the answer was complete), and the
    # receiver, which would trickle for 30 s, saw the connection cut: the attempt did not wait.
    assert row.status_code is None and row.error == "Timeout: no complete answer within 1 s"
    wait_for(lambda: receiver.hung_up, timeout=10, message="the connection was not cut")
    # The next attempt on the same thread's session is not affected.
    due_now(delivery)
    assert attempt(delivery) == Delivery.SUCCEEDED


def test_connection_refused_is_a_failed_attempt():
    delivery = DeliveryFactory(endpoint=EndpointFactory(url="http://127.0.0.1:9/hook"))
    assert attempt(delivery) == Delivery.PENDING
    row = DeliveryAttempt.objects.get(delivery=delivery)
    assert row.status_code is None and "Connection error" in row.error


def test_410_gone_deactivates_at_once_and_notifies_other_endpoints(receiver):
    receiver.then(Answer(status=410))
    gone = EndpointFactory(url=receiver.url("/gone"))
    other = EndpointFactory(
        account=gone.account, url=receiver.url("/other"), events=["endpoint.disabled"]
    )
    first = DeliveryFactory(endpoint=gone)
    waiting = DeliveryFactory(endpoint=gone, next_attempt_at=timezone.now() + timedelta(hours=1))
    assert attempt(first) == Delivery.SKIPPED
    gone.refresh_from_db()
    assert not gone.active and gone.disabled_at is not None
    assert "410" in gone.disabled_reason
    waiting.refresh_from_db()
    assert waiting.status == Delivery.SKIPPED
    event = Event.objects.get(type="endpoint.disabled")
    assert event.payload["data"]["id"] == str(gone.pk)
    assert event.payload["data"]["active"] is False
    (notice,) = Delivery.objects.filter(event=event)
    assert notice.endpoint_id == other.pk
    assert attempt(notice) == Delivery.SUCCEEDED
    assert receiver.received(path="/other")[0].event_type == "endpoint.disabled"


def test_410_gone_ends_a_request_webhook_url_delivery_at_once(receiver):
    receiver.default = Answer(status=410)
    delivery = DeliveryFactory(endpoint=None, account=AccountFactory(), target_url=receiver.url())
    assert attempt(delivery) == Delivery.FAILED
    delivery.refresh_from_db()
    assert (delivery.attempt_count, delivery.next_attempt_at) == (1, None)
    assert len(receiver.received()) == 1


def test_streak_deactivates_only_after_threshold_and_minimum_duration(receiver, settings):
    settings.WEBHOOK_DISABLE_AFTER_FAILURES = 2
    settings.WEBHOOK_DISABLE_AFTER_SECONDS = 3600
    receiver.default = Answer(status=500)
    endpoint = EndpointFactory(url=receiver.url())
    for _ in range(3):
        attempt(DeliveryFactory(endpoint=endpoint))
    endpoint.refresh_from_db()
    assert endpoint.active and endpoint.consecutive_failures == 3  # streak too young
    Endpoint.objects.filter(pk=endpoint.pk).update(
        failing_since=timezone.now() - timedelta(hours=2)
    )
    attempt(DeliveryFactory(endpoint=endpoint))
    endpoint.refresh_from_db()
    assert not endpoint.active
    assert "4 consecutive failed attempts" in endpoint.disabled_reason


def test_a_disabled_endpoint_gets_no_new_attempt(receiver):
    delivery = DeliveryFactory(endpoint=EndpointFactory(url=receiver.url(), active=False))
    assert attempt(delivery) == Delivery.SKIPPED
    assert receiver.received() == []


def attempt_in_background(delivery, receiver) -> tuple[threading.Thread, list[str | None]]:
    """Start the delivery's attempt on its own thread; return once the receiver has it."""
    outcome: list[str | None] = []

    def run() -> None:
        try:
            outcome.append(attempt(delivery))
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    wait_for(receiver.received, timeout=5, message="the request did not start")
    return thread, outcome


def test_an_attempt_that_got_through_while_its_endpoint_was_disabled_counts(receiver):
    # Disabled mid-request (another delivery's failure, or ops): the delivery was skipped, but
    # the receiver has it, so it is succeeded and a replay does not send it again.
    receiver.default = Answer(delay=0.5)
    endpoint = EndpointFactory(url=receiver.url())
    delivery = DeliveryFactory(endpoint=endpoint)
    thread, outcome = attempt_in_background(delivery, receiver)
    assert services.endpoint_disable(endpoint=endpoint)
    assert Delivery.objects.get(pk=delivery.pk).status == Delivery.SKIPPED
    thread.join(10)
    assert outcome == [Delivery.SUCCEEDED]
    assert Delivery.objects.get(pk=delivery.pk).status == Delivery.SUCCEEDED
    assert services.endpoint_enable(endpoint=endpoint, replay=True) == 0


def test_a_failed_attempt_on_a_delivery_skipped_meanwhile_leaves_it_skipped(receiver):
    receiver.default = Answer(status=500, delay=0.5)
    endpoint = EndpointFactory(url=receiver.url())
    delivery = DeliveryFactory(endpoint=endpoint)
    thread = threading.Thread(target=lambda: (attempt(delivery), connection.close()))
    thread.start()
    wait_for(receiver.received, timeout=5, message="the request did not start")
    assert services.endpoint_disable(endpoint=endpoint)
    thread.join(10)
    delivery.refresh_from_db()
    # The attempt counts, but a skipped delivery has no next attempt (and no message).
    assert (delivery.status, delivery.attempt_count) == (Delivery.SKIPPED, 1)
    assert delivery.next_attempt_at is None and delivery.claimed_until is None


def test_two_workers_racing_for_one_delivery_send_it_once(receiver):
    receiver.default = Answer(delay=0.3)
    delivery = DeliveryFactory(endpoint=EndpointFactory(url=receiver.url()))
    results: list[str | None] = []

    def run() -> None:
        try:
            results.append(attempt(delivery))
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results, key=str) == [None, None, None, "succeeded"]
    assert len(receiver.received()) == 1


def test_sweep_republishes_due_deliveries_whose_message_was_lost(redis_client, settings):
    settings.WEBHOOK_REPUBLISH_AFTER_SECONDS = 60
    now = timezone.now()
    lost = DeliveryFactory(published_at=now - timedelta(minutes=5))
    long_wait = DeliveryFactory(published_at=None)
    DeliveryFactory(published_at=now)  # its message is still on its way
    DeliveryFactory(next_attempt_at=now + timedelta(hours=1), published_at=None)  # not due
    DeliveryFactory(status=Delivery.SUCCEEDED, published_at=None)
    redis_client.flushdb()
    assert services.deliveries_sweep() == 2
    assert queued_delivery_ids(redis_client) == sorted([str(lost.pk), str(long_wait.pk)])
    assert services.deliveries_sweep() == 0  # now published


def test_purge_keeps_recent_events_and_events_with_pending_deliveries(settings):
    settings.WEBHOOK_EVENT_RETENTION_SECONDS = 86400
    old = timezone.now() - timedelta(days=2)
    expired = DeliveryFactory(status=Delivery.SUCCEEDED, event=EventFactory(created_at=old))
    DeliveryAttempt.objects.create(delivery=expired, at=old, status_code=200)
    still_pending = DeliveryFactory(event=EventFactory(created_at=old))
    recent = EventFactory()
    assert services.events_purge() == 1
    assert not Event.objects.filter(pk=expired.event_id).exists()
    assert not DeliveryAttempt.objects.exists()
    assert Event.objects.filter(pk__in=[still_pending.event_id, recent.pk]).count() == 2


# --- Events emitted by the rest of the product ------------------------------------------------


def finish(contact, **outcome) -> None:
    enrichment_services.contacts_finish(items=[(contact, Outcome(**outcome))])


def found_email() -> dict:
    return {
        "data": {"email": "a@b.co"},
        "found_kinds": ["email"],
        "providers": {"email": "x"},
        "confidence": 90,
    }


def test_finished_contact_emits_enriched_and_verified_in_its_transaction(receiver):
    client = make_client()
    endpoint = EndpointFactory(account=client.account, url=receiver.url())
    contact = ContactFactory(account=client.account, webhook_url=receiver.url("/request"))
    finish(contact, **found_email())
    enriched = Event.objects.get(type="contact.enriched")
    assert enriched.payload["data"]["enrichment_id"] == str(contact.pk)
    assert enriched.payload["data"]["result"]["status"] == "VERIFIED"
    assert Event.objects.filter(type="contact.verified").count() == 1
    targets = {(d.event.type, d.endpoint_id, d.target_url) for d in Delivery.objects.all()}
    assert targets == {
        ("contact.enriched", endpoint.pk, ""),
        ("contact.verified", endpoint.pk, ""),
        ("contact.enriched", None, receiver.url("/request")),
    }


def test_not_found_contact_emits_no_verified_event():
    contact = ContactFactory(first_name="Not", last_name="Found")
    finish(contact)
    assert list(Event.objects.values_list("type", flat=True)) == ["contact.enriched"]


def test_no_event_survives_a_rolled_back_finish():
    contact = ContactFactory()
    with pytest.raises(RuntimeError), transaction.atomic():
        finish(contact, **found_email())
        raise RuntimeError("the finishing transaction fails")
    assert not Event.objects.exists() and not Delivery.objects.exists()


def test_credits_low_then_exhausted_each_once(settings):
    settings.CREDITS_LOW_THRESHOLD = 5
    client = make_client(mode="live", credits=7)
    for _ in range(7):
        finish(ContactFactory(account=client.account, sandbox=False), **found_email())
    client.account.refresh_from_db()
    assert client.account.credits == 0
    low = Event.objects.get(type="credits.low")
    assert low.payload["data"] == {
        "account_id": str(client.account.pk),
        "credits": 4,
        "threshold": 5,
    }
    exhausted = Event.objects.get(type="credits.exhausted")
    assert exhausted.payload["data"]["credits"] == 0


def test_one_charge_from_above_the_threshold_to_zero_is_low_and_exhausted(settings):
    settings.CREDITS_LOW_THRESHOLD = 5
    client = make_client(mode="live", credits=11)
    contact = ContactFactory(account=client.account, sandbox=False)
    finish(
        contact,
        data={"email": "a@b.co", "phones": [{"number": "+14155550123", "type": "mobile"}]},
        found_kinds=["email", "phone"],
        providers={"email": "x", "phone": "x"},
        confidence=90,
    )
    client.account.refresh_from_db()
    assert client.account.credits == 0
    events = list(Event.objects.order_by("created_at", "type").values_list("type", flat=True))
    assert sorted(t for t in events if t.startswith("credits.")) == [
        "credits.exhausted",
        "credits.low",
    ]


def test_credit_events_are_right_when_one_task_finishes_many_contacts(settings):
    # The enrichment worker charges a whole chunk before emitting its events.
    settings.CREDITS_LOW_THRESHOLD = 5
    client = make_client(mode="live", credits=7)
    contacts = [ContactFactory(account=client.account, sandbox=False) for _ in range(9)]
    finished = enrichment_services.contacts_finish(
        items=[(c, Outcome(**found_email())) for c in contacts]
    )
    assert finished == 9
    assert [e.payload["data"]["credits"] for e in Event.objects.filter(type="credits.low")] == [4]
    (exhausted,) = Event.objects.filter(type="credits.exhausted")
    assert exhausted.payload["data"]["credits"] == 0


def test_bulk_completed_goes_to_the_bulk_webhook_url_once():
    bulk = BulkJobFactory(total=2, webhook_url="http://127.0.0.1:9/bulk")
    for position in range(2):
        finish(ContactFactory(account=bulk.account, bulk=bulk, position=position))
    event = Event.objects.get(type="bulk.completed")
    assert event.payload["data"]["bulk_id"] == str(bulk.pk)
    assert event.payload["data"]["finished"] == 2
    assert Delivery.objects.get(event=event).target_url == "http://127.0.0.1:9/bulk"


def test_bulk_completed_is_the_bulk_s_last_event():
    # A client that treats bulk.completed as "every contact.enriched has been sent" (and the
    # /events feed, newest first) needs it after the last contact's events, in time and order.
    bulk = BulkJobFactory(total=2, webhook_url="http://127.0.0.1:9/bulk")
    for position in range(2):
        finish(ContactFactory(account=bulk.account, bulk=bulk, position=position))
    events = list(Event.objects.order_by("created_at").values_list("type", flat=True))
    assert events[-1] == "bulk.completed"


def test_deleting_the_endpoint_mid_request_ends_the_delivery_quietly(receiver):
    receiver.default = Answer(delay=0.5)
    endpoint = EndpointFactory(url=receiver.url())
    delivery = DeliveryFactory(endpoint=endpoint)
    thread, outcome = attempt_in_background(delivery, receiver)
    services.endpoint_delete(endpoint=endpoint)
    thread.join(10)
    assert outcome == [None]
    assert not Delivery.objects.exists() and not DeliveryAttempt.objects.exists()


def test_fan_out_queries_do_not_grow_with_the_number_of_endpoints():
    account = EndpointFactory().account

    def emit_queries() -> int:
        with CaptureQueriesContext(connection) as queries, transaction.atomic():
            services.event_emit(
                account_id=account.pk, type="contact.enriched", data={}, sandbox=True
            )
        return len(queries)

    one = emit_queries()
    for i in range(5):
        EndpointFactory(account=account, url=f"http://127.0.0.1:9/hook{i}")
    assert emit_queries() == one
    assert Delivery.objects.filter(event__in=Event.objects.order_by("-created_at")[:1]).count() == 6


def test_an_attempt_is_a_constant_handful_of_queries(receiver, django_assert_num_queries):
    delivery = DeliveryFactory(endpoint=EndpointFactory(url=receiver.url()))
    # claim, load, then BEGIN, lock the endpoint, lock the delivery, update it, attempt row,
    # update the endpoint, COMMIT
    with django_assert_num_queries(9):
        assert attempt(delivery) == Delivery.SUCCEEDED


def test_a_batch_of_attempts_is_recorded_in_the_queries_of_one():
    endpoints = [EndpointFactory(), EndpointFactory()]

    def record_queries(n: int) -> int:
        token = uuid.uuid4()
        deliveries = [
            DeliveryFactory(endpoint=endpoints[i % 2], claim_token=token) for i in range(n)
        ]
        ok = AttemptResult(200, 3, None, "", None)
        failed = AttemptResult(500, 3, "HTTP 500", "", None)
        batch = [
            services.Sent(d, token, ok if i % 3 else failed, timezone.now())
            for i, d in enumerate(deliveries)
        ]
        with CaptureQueriesContext(connection) as queries:
            statuses = services.deliveries_record(batch)
        assert len(statuses) == n
        assert DeliveryAttempt.objects.filter(delivery__in=deliveries).count() == n
        return len(queries)

    assert record_queries(1) == record_queries(30)


def test_a_chunk_of_finished_contacts_emits_in_constant_queries():
    account = EndpointFactory().account
    EndpointFactory(account=account, url="http://127.0.0.1:9/second")

    def emit_queries(n: int) -> int:
        ids = [
            ContactFactory(account=account, webhook_url="http://127.0.0.1:9/r").pk for _ in range(n)
        ]
        # As the enrichment worker hands them over: attempts already in memory.
        contacts = list(Contact.objects.filter(pk__in=ids).prefetch_related("attempts"))
        for contact in contacts:
            contact.result_status = "VERIFIED"
        with CaptureQueriesContext(connection) as queries, transaction.atomic():
            services.events_emit(finished_events(contacts))
        return len(queries)

    assert emit_queries(1) == emit_queries(6)
    # 7 contacts x (enriched + verified) events; each to 2 endpoints, enriched also to its URL.
    assert Event.objects.count() == 14
    assert Delivery.objects.count() == 7 * 5
