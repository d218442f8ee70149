"""The delivery engine with real webhooks worker processes (real PostgreSQL, Redis and
receiver): fairness between accounts, several processes on one queue, rate limits."""

from __future__ import annotations

from collections import Counter

import pytest
from django.db import transaction
from django.utils import timezone

from apps.webhooks import services
from apps.webhooks.models import Delivery, DeliveryAttempt
from apps.webhooks.services import EventDraft
from tests.support.receiver import Answer
from tests.support.worker import wait_for
from tests.webhooks.factories import EndpointFactory

pytestmark = pytest.mark.django_db(transaction=True)


def emit(account, count: int, *, target_url: str = "") -> None:
    drafts = [
        EventDraft(
            account_id=account.pk,
            type="contact.enriched",
            data={"n": n},
            sandbox=True,
            target_urls=(target_url,) if target_url else (),
        )
        for n in range(count)
    ]
    with transaction.atomic():
        services.events_emit(drafts)


def test_an_account_stuck_on_a_slow_receiver_does_not_hold_up_another(
    worker_factory, receiver, settings
):
    """Account A has 1,000 events for an endpoint and 1,000 for a request-level URL, both
    answering in 15 s; account B's single delivery to a fast receiver arrives within 2 s of
    being due, and A holds no more than its targets' shares of the sender meanwhile."""
    receiver.routes["/slow"] = Answer(delay=15)
    receiver.routes["/slow-url"] = Answer(delay=15)
    slow = EndpointFactory(url=receiver.url("/slow"), events=["contact.enriched"])
    fast = EndpointFactory(url=receiver.url("/fast"), events=["contact.enriched"])
    worker_factory(queues="webhooks")  # the sender's production defaults
    emit(slow.account, 1000, target_url=receiver.url("/slow-url"))
    per_target = settings.WEBHOOK_MAX_IN_FLIGHT_PER_TARGET
    wait_for(
        lambda: (
            len(receiver.received(path="/slow")) >= per_target
            and len(receiver.received(path="/slow-url")) >= per_target
        ),
        timeout=20,
        message="account A's first deliveries never went out",
    )
    due = timezone.now()
    emit(fast.account, 1)
    wait_for(lambda: receiver.received(path="/fast"), timeout=10, message="B never arrived")
    (arrived,) = receiver.received(path="/fast")
    assert arrived.at - due.timestamp() <= 2.0
    # Nothing slow has answered yet (15 s): every request so far is still in flight, and each
    # of A's targets holds at most its share.
    assert len(receiver.received(path="/slow")) == per_target
    assert len(receiver.received(path="/slow-url")) == per_target


def test_two_webhooks_processes_send_every_attempt_exactly_once(worker_factory, receiver, settings):
    settings.WEBHOOK_BATCH_SIZE = 10  # many messages, so that both processes take some
    receiver.routes["/flaky"] = Answer(status=500)
    ok = EndpointFactory(url=receiver.url("/ok"), events=["contact.enriched"])
    flaky = EndpointFactory(url=receiver.url("/flaky"), events=["contact.enriched"])
    env = {"WEBHOOK_RETRY_SCHEDULE": "0,0.3", "WEBHOOK_BATCH_SIZE": "10"}
    workers = [worker_factory(queues="webhooks", env=env) for _ in range(2)]
    emit(ok.account, 150)
    emit(flaky.account, 150)
    wait_for(
        lambda: not Delivery.objects.filter(status=Delivery.PENDING).exists(),
        timeout=60,
        message="deliveries still pending",
    )
    assert Delivery.objects.filter(endpoint=ok, status=Delivery.SUCCEEDED).count() == 150
    assert Delivery.objects.filter(endpoint=flaky, status=Delivery.FAILED).count() == 150
    per_id = Counter(r.headers["webhook-id"] for r in receiver.received(path="/ok"))
    assert len(per_id) == 150 and set(per_id.values()) == {1}
    # Two attempts each (the schedule has two), each sent once, each recorded once.
    per_id = Counter(r.headers["webhook-id"] for r in receiver.received(path="/flaky"))
    assert len(per_id) == 150 and set(per_id.values()) == {2}
    assert DeliveryAttempt.objects.count() == 150 + 2 * 150
    for worker in workers:
        assert "apps.webhooks.tasks.deliver" in worker.log_path.read_text(), "one process idled"


def test_an_endpoint_rate_limit_holds_across_processes(worker_factory, receiver, settings):
    settings.WEBHOOK_BATCH_SIZE = 4
    limited = EndpointFactory(url=receiver.url("/limited"), events=["contact.enriched"])
    limited.rate_limit = 4
    limited.save(update_fields=["rate_limit"])
    for _ in range(2):
        worker_factory(queues="webhooks", env={"WEBHOOK_BATCH_SIZE": "4"})
    emit(limited.account, 24)
    wait_for(
        lambda: len(receiver.received(path="/limited")) >= 24,
        timeout=40,
        message="the limited endpoint did not get its 24 deliveries",
    )
    arrivals = sorted(r.at for r in receiver.received(path="/limited"))
    assert len(arrivals) == 24
    # 4 a second, whichever process sends: 24 take at least 5 whole seconds (without the
    # limit they arrive within a fraction of one; two processes each counting on their own
    # would send 8 a second, done within 3 s).
    assert arrivals[-1] - arrivals[0] >= 4.5
    # Counted per second of the sender's clock, so one second of arrivals may hold the end of
    # one window and the start of the next, never more.
    assert all(sum(1 for t in arrivals if start <= t < start + 1) <= 2 * 4 for start in arrivals)
