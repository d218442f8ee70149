"""The worker process's runner: a task thread only claims (the waterfalls run in the shared
pool), one finisher finishes contacts across claims, and a warm shutdown finishes what runs
and gives back the rest. Vendors mocked at their documented HTTP shapes (``responses``)."""

from __future__ import annotations

import json
import threading

import psycopg
import pytest
import responses
from django.db import OperationalError
from django.utils import timezone

from apps.accounts.models import LedgerEntry
from apps.enrichment import services
from apps.enrichment.models import Contact
from apps.enrichment.services import holds, running, waiting
from apps.providers import breaker, registry
from tests.factories import live_contact
from tests.support.api import make_client
from tests.support.credits import CountingHunter, assert_settled
from tests.support.simulator import SimulatorProcess
from tests.support.vendors import HUNTER_URL, use_vendors
from tests.support.worker import wait_for

pytestmark = [pytest.mark.django_db(transaction=True)]

SLOW = {"SIMULATOR_LATENCY_MS": "300", "SIMULATOR_ERROR_RATE": "0"}


@pytest.fixture(autouse=True)
def _vendors(settings):
    use_vendors(settings)
    settings.PROVIDER_ORDER = {**settings.PROVIDER_ORDER, "email": ["hunter"]}
    yield
    running.runner.resume()
    registry.provider.cache_clear()
    breaker.reset()


class BarrierHunter(CountingHunter):
    """Every call waits until ``parties`` calls are in flight, so the waterfalls end at once."""

    def __init__(self, parties: int) -> None:
        super().__init__()
        self.barrier = threading.Barrier(parties, timeout=20)

        self.at_barrier = 0
        self.most_at_barrier = 0

    def __call__(self, request):
        with self._lock:
            self.at_barrier += 1
            self.most_at_barrier = max(self.most_at_barrier, self.at_barrier)
        try:
            self.barrier.wait()  # broken (a failed call) unless all eight wait together
        finally:
            with self._lock:
                self.at_barrier -= 1
        return super().__call__(request)


def _notified(stop: threading.Event, payloads: list[str], ready: threading.Event) -> None:
    with psycopg.connect(waiting._conninfo(), autocommit=True) as conn:
        conn.execute(f"LISTEN {waiting.CHANNEL}")
        ready.set()
        while not stop.is_set():
            payloads += [n.payload for n in conn.notifies(timeout=0.2)]


@responses.activate
def test_single_contact_claims_run_at_once_and_finish_together(settings):
    settings.ENRICHMENT_CONCURRENCY = 8
    account = make_client(mode="live", credits=100).account
    hunter = BarrierHunter(8)
    responses.add_callback(responses.GET, HUNTER_URL, callback=hunter)
    contacts = [live_contact(account) for _ in range(8)]
    payloads: list[str] = []
    stop, ready = threading.Event(), threading.Event()
    listener = threading.Thread(target=_notified, args=(stop, payloads, ready))
    listener.start()
    try:
        assert ready.wait(10)
        # One message per contact, all from this one thread, as one task thread would take
        # them: each start returns before its waterfall has called anybody.
        claims = [services.contacts_start(contact_ids=[str(c.pk)]) for c in contacts]
        assert all(claim is not None and claim.size == 1 for claim in claims)
        for claim in claims:
            assert claim is not None and claim.done.wait(30)
    finally:
        stop.set()
        listener.join(10)

    assert hunter.most_at_barrier == 8  # the eight waterfalls were in flight together
    assert sum(claim.finished for claim in claims if claim) == 8
    statuses = set(Contact.objects.filter(account=account).values_list("result_status", flat=True))
    assert statuses == {Contact.VERIFIED}
    assert LedgerEntry.objects.filter(account=account, entry_type="charge").count() == 8
    assert_settled(account)
    finished_ids = [i for p in payloads for i in p.split(",")]
    assert sorted(finished_ids) == sorted(str(c.pk) for c in contacts)
    # The eight ended at once: the finisher took them in fewer transactions than contacts.
    assert len(payloads) < 8


class HoldSpy:
    """``claims_hold`` as the finisher calls it: records each call's claims (their sizes) and
    what it held; the first call waits for ``go``, so the claims started meanwhile queue up
    for the finisher together."""

    def __init__(self) -> None:
        self.real = running.claims_hold
        self.calls: list[list[int]] = []
        self.held: list[dict] = []
        self.entered, self.go = threading.Event(), threading.Event()

    def __call__(self, claims, **kwargs):
        self.calls.append([len(contacts) for _, contacts in claims])
        self.entered.set()
        assert self.go.wait(20)
        held = self.real(claims, **kwargs)
        self.held.append(held)
        return held


@responses.activate
def test_claims_waiting_for_the_finisher_are_held_at_once_in_their_order(settings, monkeypatch):
    settings.ENRICHMENT_CONCURRENCY = 8
    account = make_client(mode="live", credits=5).account
    hunter = CountingHunter(delay=0.02)
    responses.add_callback(responses.GET, HUNTER_URL, callback=hunter)
    contacts = [live_contact(account) for _ in range(12)]
    spy = HoldSpy()
    monkeypatch.setattr(running, "claims_hold", spy)
    claims = [services.contacts_start(contact_ids=[str(contacts[0].pk)])]
    assert spy.entered.wait(10)  # the finisher holds the first claim's credits...
    # ... while eleven more single-contact claims arrive.
    claims += [services.contacts_start(contact_ids=[str(c.pk)]) for c in contacts[1:]]
    spy.go.set()
    for claim in claims:
        assert claim is not None and claim.done.wait(60)

    assert spy.calls == [[1], [1] * 11]  # one hold for the eleven, not eleven
    # The credits went in the claims' order, as one claim after another would have had them.
    assert spy.held[1] == {c.pk: 1 for c in contacts[1:5]}
    verified = Contact.objects.filter(account=account, result_status=Contact.VERIFIED)
    assert set(verified.values_list("pk", flat=True)) == {c.pk for c in contacts[:5]}
    assert Contact.objects.filter(account=account, result_status=Contact.NO_CREDITS).count() == 7
    assert hunter.calls == 5
    assert LedgerEntry.objects.filter(account=account, entry_type="charge").count() == 5
    assert assert_settled(account).credits == 0


@responses.activate
def test_a_redelivered_contact_held_beside_other_claims_is_held_and_charged_once(
    settings, monkeypatch
):
    settings.ENRICHMENT_CONCURRENCY = 8
    responses.add_callback(responses.GET, HUNTER_URL, callback=CountingHunter())
    account = make_client(mode="live", credits=2).account
    again, fresh = live_contact(account), live_contact(account)
    # A worker claimed ``again`` and held its credit, then died; its message is delivered
    # again before the reaper saw it.
    dead, claimed = services.contacts_claim(contact_ids=[str(again.pk)])
    holds.contacts_hold(dead, list(Contact.objects.filter(pk__in=claimed)))
    Contact.objects.filter(pk=again.pk).update(lease_expires_at=timezone.now())
    # Another account's claim keeps the finisher busy while the two arrive.
    blocker = live_contact(make_client(mode="live", credits=1).account)
    spy = HoldSpy()
    monkeypatch.setattr(running, "claims_hold", spy)
    claims = [services.contacts_start(contact_ids=[str(blocker.pk)])]
    assert spy.entered.wait(10)
    claims += [services.contacts_start(contact_ids=[str(c.pk)]) for c in (again, fresh)]
    spy.go.set()
    for claim in claims:
        assert claim is not None and claim.done.wait(60)

    assert spy.calls == [[1], [1, 1]]
    # The dead claim's hold came back first: both held at once from the two credits.
    assert spy.held[1] == {again.pk: 1, fresh.pk: 1}
    assert set(
        Contact.objects.filter(pk__in=[again.pk, fresh.pk]).values_list("result_status", flat=True)
    ) == {Contact.VERIFIED}
    assert list(
        LedgerEntry.objects.filter(contact=again).order_by("pk").values_list("entry_type", "amount")
    ) == [("hold", -1), ("release", 1), ("hold", -1), ("release", 1), ("charge", -1)]
    assert assert_settled(account).credits == 0


@responses.activate
def test_a_hold_whose_commit_reply_was_lost_is_held_once(settings, monkeypatch):
    settings.ENRICHMENT_CONCURRENCY = 8
    monkeypatch.setattr(running, "CREDIT_WAIT_SECONDS", 2.0)  # a wrong hold fails fast
    account = make_client(mode="live", credits=2).account
    hunter = CountingHunter()
    responses.add_callback(responses.GET, HUNTER_URL, callback=hunter)
    contacts = [live_contact(account) for _ in range(2)]
    real = holds.credits_hold_many
    committed: list[dict] = []

    def commit_then_lose_the_reply(**kwargs):
        held = real(**kwargs)
        if not committed:
            committed.append(held)
            raise OperationalError("server closed the connection unexpectedly")
        return held

    monkeypatch.setattr(holds, "credits_hold_many", commit_then_lose_the_reply)
    assert services.contacts_run(contact_ids=[str(c.pk) for c in contacts]) == 2

    assert committed == [{c.pk: 1 for c in contacts}]  # the first try did hold both
    # The retry released that hold before holding again: both credits were there for it.
    assert set(Contact.objects.filter(account=account).values_list("result_status", flat=True)) == {
        Contact.VERIFIED
    }
    assert hunter.calls == 2
    assert LedgerEntry.objects.filter(account=account, entry_type="charge").count() == 2
    assert assert_settled(account).credits == 0


@responses.activate
def test_a_warm_shutdown_finishes_what_runs_and_gives_back_the_rest(settings):
    settings.ENRICHMENT_CONCURRENCY = 2
    account = make_client(mode="live", credits=100).account
    hunter = CountingHunter(delay=0.3)
    responses.add_callback(responses.GET, HUNTER_URL, callback=hunter)
    contacts = [live_contact(account) for _ in range(6)]
    claim = services.contacts_start(contact_ids=[str(c.pk) for c in contacts])
    assert claim is not None and claim.size == 6
    wait_for(lambda: hunter.in_flight == 2, timeout=10, message="no waterfall started")

    assert running.runner.stop(timeout=20) == 0  # nothing left in flight
    assert claim.done.is_set()

    rows = Contact.objects.filter(account=account)
    assert rows.filter(result_status=Contact.VERIFIED).count() == claim.finished == 2
    given_back = rows.filter(status=Contact.PENDING)
    assert given_back.count() == 4
    # Lapsed at once, so the reaper's next run publishes them; nothing is held for them.
    assert not given_back.filter(lease_expires_at__gt=timezone.now()).exists()
    assert hunter.calls == 2
    assert_settled(account)
    assert services.contact_leases.holding() == 0

    # A message taken while stopping claims nothing and is marked for the reaper.
    late = live_contact(account)
    assert services.contacts_start(contact_ids=[str(late.pk)]) is None
    late.refresh_from_db()
    assert late.published_at == services.PUBLISH_FAILED and late.lease_owner is None


@pytest.mark.e2e
def test_one_task_thread_runs_many_single_contact_messages_at_once(
    live_api, worker_factory, settings
):
    simulator = SimulatorProcess(SLOW).start()
    try:
        worker_factory(
            concurrency=1,
            queues="enrichment",
            env={"PROVIDER_SIMULATOR_URL": simulator.url, "ENRICHMENT_CONCURRENCY": "8"},
        )
        settings.ENRICHMENT_PUBLISH_LINGER_MS = 0  # one message per request
        ids = []
        for i in range(6):
            response = live_api.post(
                "/api/v1/enrich",
                json.dumps(
                    {
                        "first_name": f"Ada{i}",
                        "last_name": "Lovelace",
                        "domain": f"ada{i}.example",
                        "enrichment_type": ["email"],
                    }
                ),
                content_type="application/json",
            )
            assert response.status_code == 202, response.content
            ids.append(response.json()["enrichment_id"])
        pending = Contact.objects.filter(pk__in=ids, status=Contact.PENDING)
        # Before, the one task thread held each message through its waterfall: one at a time.
        wait_for(
            lambda: pending.filter(lease_expires_at__isnull=False).count() >= 3,
            timeout=30,
            message="the messages were not run at once",
        )
        wait_for(lambda: not pending.exists(), timeout=60, message="contacts left pending")
    finally:
        simulator.stop()
