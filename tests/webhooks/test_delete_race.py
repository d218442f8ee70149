"""DELETE /webhooks/{id} and the events purge racing the sender's recorder, on the real
PostgreSQL.

The recorder locks a batch's deliveries, then their endpoints; the delete used to lock the
endpoint's deliveries in whatever order its DELETE scanned them, then the endpoint. A third
transaction holding one delivery lines the two up deterministically: once it lets go, the
orders cross and PostgreSQL reports ``deadlock detected`` unless both take the same order.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone

from apps.core.errors import NotFound
from apps.webhooks import services
from apps.webhooks.models import Delivery, DeliveryAttempt, Endpoint
from apps.webhooks.services.deliveries import GONE as GONE_STATUS
from apps.webhooks.services.transport import AttemptResult
from tests.webhooks.factories import DeliveryFactory, EndpointFactory, EventFactory

pytestmark = pytest.mark.django_db(transaction=True)

FAILED = AttemptResult(500, 3, "HTTP 500", "", None)
GONE = AttemptResult(410, 3, "HTTP 410", "", None)


class Racer(threading.Thread):
    """Runs ``fn`` on its own connection; keeps its backend pid, result and error."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self.fn = fn
        self.pid: int | None = None
        self.result: Any = None
        self.error: BaseException | None = None
        self.started_pid = threading.Event()

    def run(self) -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                self.pid = cursor.fetchone()[0]
            self.started_pid.set()
            self.result = self.fn()
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.started_pid.set()
            connection.close()


def wait_until_blocked(racer: Racer, timeout: float = 10.0) -> None:
    """Until the racer's backend waits on a lock (pg_stat_activity)."""
    racer.started_pid.wait(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if racer.error is not None:
            raise AssertionError(f"the racer failed early: {racer.error!r}")
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [racer.pid]
            )
            row = cursor.fetchone()
        if row and row[0] == "Lock":
            return
        time.sleep(0.01)
    raise AssertionError("the racer never waited on a lock")


def claimed_batch(
    endpoint: Endpoint, n: int, result: AttemptResult = FAILED
) -> tuple[list[Delivery], list[services.Sent]]:
    """``n`` deliveries of the endpoint claimed under one token, inserted in descending id
    order (so a scan in table order meets them highest id first), with a failed attempt each."""
    token = uuid.uuid4()
    ids = sorted((uuid.uuid4() for _ in range(n)), reverse=True)
    deliveries = [DeliveryFactory(id=pk, endpoint=endpoint, claim_token=token) for pk in ids]
    now = timezone.now()
    return deliveries, [services.Sent(d, token, result, now) for d in deliveries]


@pytest.mark.parametrize(
    ("result", "recorded"),
    [
        (FAILED, Delivery.PENDING),  # retries scheduled
        # A 410 deactivates the endpoint in the same transaction, which also locks (skips)
        # its other pending deliveries, those the delete is after too.
        (GONE, Delivery.SKIPPED),
    ],
)
def test_a_delete_while_a_batch_of_its_deliveries_is_recorded_does_not_deadlock(result, recorded):
    endpoint = EndpointFactory()
    DeliveryFactory.create_batch(3, endpoint=endpoint)  # pending, not in the batch
    deliveries, batch = claimed_batch(endpoint, 6, result)
    lowest = min(d.pk for d in deliveries)
    holding, release = threading.Event(), threading.Event()

    def hold_the_lowest() -> None:
        # Stands for any short transaction on one delivery (a claim, a lease renewal).
        with transaction.atomic():
            Delivery.objects.select_for_update().filter(pk=lowest).exists()
            holding.set()
            release.wait(10)

    blocker = Racer(hold_the_lowest)
    blocker.start()
    assert holding.wait(10)
    recorder = Racer(lambda: services.deliveries_record(batch))
    recorder.start()
    wait_until_blocked(recorder)
    deleter = Racer(lambda: services.endpoint_delete(endpoint=endpoint))
    deleter.start()
    wait_until_blocked(deleter)
    release.set()
    for racer in (blocker, recorder, deleter):
        racer.join(15)
        assert not racer.is_alive()
    assert blocker.error is None
    assert recorder.error is None, f"recorder: {recorder.error!r}"
    assert deleter.error is None, f"delete: {deleter.error!r}"
    # Recorded first (it was first in line), then deleted with everything it wrote.
    assert recorder.result == {d.pk: recorded for d in deliveries}
    assert not Endpoint.objects.filter(pk=endpoint.pk).exists()
    assert not Delivery.objects.exists() and not DeliveryAttempt.objects.exists()


def test_a_batch_recorded_after_its_endpoint_was_deleted_writes_nothing():
    # The attempts were in flight when the endpoint went: the recorder neither fails nor
    # brings anything back, and tells the sender the endpoint is gone (it drops the rest).
    endpoint, other = EndpointFactory(), EndpointFactory()
    deliveries, batch = claimed_batch(endpoint, 3)
    kept, kept_batch = claimed_batch(other, 1)
    services.endpoint_delete(endpoint=endpoint)
    statuses = services.deliveries_record(batch + kept_batch)
    assert statuses == {
        **{d.pk: GONE_STATUS for d in deliveries},
        kept[0].pk: Delivery.PENDING,
    }
    assert list(Delivery.objects.values_list("pk", flat=True)) == [kept[0].pk]
    assert list(DeliveryAttempt.objects.values_list("delivery_id", flat=True)) == [kept[0].pk]
    assert Endpoint.objects.get(pk=other.pk).consecutive_failures == 1


def test_a_second_delete_of_the_same_endpoint_is_a_404(api):
    endpoint = EndpointFactory(account=api.account)
    stale = Endpoint.objects.get(pk=endpoint.pk)  # as a concurrent request loaded it
    assert api.delete(f"/api/v1/webhooks/{endpoint.pk}").status_code == 204
    with pytest.raises(NotFound):
        services.endpoint_delete(endpoint=stale)


def test_the_purge_waits_for_a_locked_delivery_and_keeps_it_if_it_became_pending():
    """The purge picks old events without a pending delivery, then locks their deliveries in
    id order: one made pending meanwhile (a manual retry, a recover) keeps its event."""
    old = timezone.now() - timedelta(days=30)
    delivery = DeliveryFactory(event=EventFactory(created_at=old), status=Delivery.FAILED)
    held, release = threading.Event(), threading.Event()

    def retry_it() -> None:
        with transaction.atomic():
            Delivery.objects.select_for_update().get(pk=delivery.pk)
            held.set()
            release.wait(10)
            Delivery.objects.filter(pk=delivery.pk).update(status=Delivery.PENDING)

    holder = Racer(retry_it)
    holder.start()
    assert held.wait(10)
    purge = Racer(services.events_purge)
    purge.start()
    wait_until_blocked(purge)
    release.set()
    holder.join(10)
    purge.join(10)
    assert holder.error is None and purge.error is None
    assert purge.result == 0
    assert Delivery.objects.filter(pk=delivery.pk, status=Delivery.PENDING).exists()


def test_a_delete_while_an_event_is_emitted_to_the_endpoint_waits_for_it():
    """The emitter reads the endpoints it fans out to FOR KEY SHARE: the delete waits for the
    emitting transaction and takes its new delivery with it. Without the lock the delete
    went first and the emitter (a whole finish batch, in production) failed at commit on the
    delivery's deferred foreign key."""
    endpoint = EndpointFactory()
    emitted, release = threading.Event(), threading.Event()

    def emit() -> Any:
        with transaction.atomic():
            event = services.event_emit(
                account_id=endpoint.account_id,
                type="contact.enriched",
                data={"enrichment_id": "c-1"},
                sandbox=True,
            )
            emitted.set()
            release.wait(10)
        return event

    emitter = Racer(emit)
    emitter.start()
    assert emitted.wait(10)
    deleter = Racer(lambda: services.endpoint_delete(endpoint=endpoint))
    deleter.start()
    wait_until_blocked(deleter)
    release.set()
    for racer in (emitter, deleter):
        racer.join(15)
        assert not racer.is_alive()
    assert emitter.error is None, f"emitter: {emitter.error!r}"
    assert deleter.error is None, f"delete: {deleter.error!r}"
    assert emitter.result.type == "contact.enriched"
    assert not Endpoint.objects.filter(pk=endpoint.pk).exists()
    assert not Delivery.objects.exists()


def test_an_endpoint_updated_while_an_event_is_emitted_does_not_wait():
    """KEY SHARE does not hold up the recorder's FOR NO KEY UPDATE or a PATCH."""
    endpoint = EndpointFactory()
    emitted, release = threading.Event(), threading.Event()

    def emit() -> None:
        with transaction.atomic():
            services.event_emit(
                account_id=endpoint.account_id, type="contact.enriched", data={}, sandbox=True
            )
            emitted.set()
            release.wait(10)

    emitter = Racer(emit)
    emitter.start()
    try:
        assert emitted.wait(10)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '2s'")  # waiting would be an error
            locked = Endpoint.objects.select_for_update(no_key=True).get(pk=endpoint.pk)
            Endpoint.objects.filter(pk=locked.pk).update(consecutive_failures=1)
    finally:
        release.set()
        emitter.join(15)
    assert emitter.error is None
    assert Endpoint.objects.get(pk=endpoint.pk).consecutive_failures == 1
