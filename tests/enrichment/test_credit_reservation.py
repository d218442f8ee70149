"""Credits are held for live work before paid vendors are called, and released when unused.

Vendors are mocked at their documented HTTP shapes (``responses``); workers are threads that
each run ``contacts_run`` for their own chunk, on their own database connection.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import responses
from django.db import connections
from django.utils import timezone

from apps.accounts.models import LedgerEntry
from apps.accounts.selectors import ledger_sum
from apps.enrichment import services
from apps.enrichment.models import Contact
from apps.enrichment.services import holds, running
from apps.enrichment.waterfall import Outcome
from apps.providers import breaker, registry
from tests.factories import BulkJobFactory, live_contact
from tests.support.api import make_client
from tests.support.credits import CountingHunter, assert_settled
from tests.support.vendors import HUNTER_URL, hunter_body, use_vendors


@pytest.fixture(autouse=True)
def _vendors(settings):
    use_vendors(settings)
    # Hunter alone for email, so a miss is a miss and every paid call is counted here.
    settings.PROVIDER_ORDER = {**settings.PROVIDER_ORDER, "email": ["hunter"]}
    yield
    registry.provider.cache_clear()
    breaker.reset()


def run_as_workers(chunks: list[list[Contact]]) -> None:
    """Each chunk run by its own "worker" (thread, own connection), all started at once."""
    start = threading.Barrier(len(chunks))

    def work(chunk: list[Contact]) -> int:
        try:
            start.wait(timeout=30)
            return services.contacts_run(contact_ids=[str(c.pk) for c in chunk])
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=len(chunks)) as pool:
        list(pool.map(work, chunks))


@pytest.mark.django_db(transaction=True)
@responses.activate
def test_100_single_requests_against_1_credit_call_paid_vendors_for_one_contact(settings):
    settings.ENRICHMENT_CONCURRENCY = 8
    account = make_client(mode="live", credits=1).account
    hunter = CountingHunter(delay=0.05)
    responses.add_callback(responses.GET, HUNTER_URL, callback=hunter)
    contacts = [live_contact(account) for _ in range(100)]
    # Single requests land in many messages, run by several workers at once.
    run_as_workers([contacts[i : i + 10] for i in range(0, 100, 10)])

    assert hunter.calls == 1  # before: every chunk saw a balance of 1 and called
    statuses = list(Contact.objects.filter(account=account).values_list("result_status", flat=True))
    assert statuses.count(Contact.VERIFIED) == 1
    assert statuses.count(Contact.NO_CREDITS) == 99
    assert assert_settled(account).credits == 0
    assert LedgerEntry.objects.filter(account=account, entry_type="charge").count() == 1


@pytest.mark.django_db(transaction=True)
@responses.activate
def test_held_credits_bound_the_calls_in_flight_even_when_nothing_is_found(settings):
    settings.ENRICHMENT_CONCURRENCY = 8
    account = make_client(mode="live", credits=1).account
    hunter = CountingHunter(hits=set(), delay=0.02)
    responses.add_callback(responses.GET, HUNTER_URL, callback=hunter)
    contacts = [live_contact(account) for _ in range(12)]
    run_as_workers([contacts[i : i + 4] for i in range(0, 12, 4)])

    # The one credit passes from contact to contact as each finds nothing: one at a time.
    assert hunter.peak == 1
    assert hunter.calls == 12
    assert set(Contact.objects.filter(account=account).values_list("result_status", flat=True)) == {
        Contact.NOT_FOUND
    }
    assert assert_settled(account).credits == 1  # nothing found, nothing spent


@pytest.mark.django_db(transaction=True)
@responses.activate
@pytest.mark.parametrize("workers", [1, 4])
def test_a_live_bulk_of_40_against_5_credits_leaves_no_credit_unused(settings, workers):
    settings.ENRICHMENT_CONCURRENCY = 8
    account = make_client(mode="live", credits=5).account
    bulk = BulkJobFactory(account=account, total=40)
    # Every other contact is found: more than 5 could be, so all 5 credits must be spent.
    hits = {f"P{i}" for i in range(0, 40, 2)}
    hunter = CountingHunter(hits=hits, delay=0.01)
    responses.add_callback(responses.GET, HUNTER_URL, callback=hunter)
    contacts = [live_contact(account, bulk=bulk, position=i, first_name=f"P{i}") for i in range(40)]
    size = 40 // workers
    run_as_workers([contacts[i : i + size] for i in range(0, 40, size)])

    account = assert_settled(account)
    statuses = list(Contact.objects.filter(bulk=bulk).values_list("result_status", flat=True))
    assert statuses.count(Contact.VERIFIED) == 5
    # NO_CREDITS only because the balance really could not pay: none is left.
    assert account.credits == 0
    bulk.refresh_from_db()
    assert (bulk.finished, bulk.verified, bulk.credits_used) == (40, 5, 5)
    assert bulk.no_credits == statuses.count(Contact.NO_CREDITS)


@pytest.mark.django_db(transaction=True)
@responses.activate
def test_a_short_contact_waits_for_a_hold_that_comes_back(settings):
    settings.ENRICHMENT_CONCURRENCY = 8
    account = make_client(mode="live", credits=1).account
    hunter = CountingHunter(hits={"Second"}, delay=0.05)
    responses.add_callback(responses.GET, HUNTER_URL, callback=hunter)
    first = live_contact(account, first_name="First")
    second = live_contact(account, first_name="Second")
    # One chunk: the first contact holds the only credit, the second waits for it.
    services.contacts_run(contact_ids=[str(first.pk), str(second.pk)])

    first.refresh_from_db()
    second.refresh_from_db()
    # The first found nothing and gave the credit back; the second used it.
    assert first.result_status == Contact.NOT_FOUND
    assert second.result_status == Contact.VERIFIED
    assert assert_settled(account).credits == 0


@pytest.mark.django_db
@responses.activate
def test_a_hold_is_the_contacts_maximum_price_capped_by_max_credits(settings):
    account = make_client(mode="live", credits=100).account
    contact = live_contact(
        account, enrichment_type=["email", "phone"], linkedin_url="https://linkedin.com/in/x"
    )
    capped = live_contact(account, max_credits=0)
    token, claimed = services.contacts_claim(contact_ids=[str(contact.pk), str(capped.pk)])
    held = holds.contacts_hold(token, list(Contact.objects.filter(pk__in=claimed)))
    assert held == {contact.pk: 11}  # email 1 + phone 10; max_credits 0 holds nothing
    account.refresh_from_db()
    assert (account.credits, account.held) == (89, 11)
    assert account.credits == ledger_sum(account=account)
    row = LedgerEntry.objects.get(contact=contact, entry_type="hold")
    assert (row.amount, row.hold_token, row.balance_after) == (-11, token, 89)


@pytest.mark.django_db
@responses.activate
def test_a_dead_runs_hold_is_released_by_the_reaper_then_charged_once():
    account = make_client(mode="live", credits=10).account
    responses.get(HUNTER_URL, json=hunter_body())
    contact = live_contact(account)
    # A worker claims and holds, then dies before its waterfall ends.
    token, claimed = services.contacts_claim(contact_ids=[str(contact.pk)])
    holds.contacts_hold(token, list(Contact.objects.filter(pk__in=claimed)))
    account.refresh_from_db()
    assert (account.credits, account.held) == (9, 1)
    Contact.objects.filter(pk=contact.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert services.contacts_reap() == 1
    account = assert_settled(account)
    assert account.credits == 10
    # Run again by another worker: held anew, charged once, the rest released.
    services.contacts_run(contact_ids=[str(contact.pk)])
    contact.refresh_from_db()
    assert contact.result_status == Contact.VERIFIED
    account = assert_settled(account)
    assert account.credits == 9
    kinds = list(
        LedgerEntry.objects.filter(contact=contact)
        .order_by("pk")
        .values_list("entry_type", "amount")
    )
    assert kinds == [("hold", -1), ("release", 1), ("hold", -1), ("release", 1), ("charge", -1)]


@pytest.mark.django_db
@responses.activate
def test_a_hold_left_by_a_dead_run_is_released_at_the_next_claim():
    account = make_client(mode="live", credits=10).account
    responses.get(HUNTER_URL, json=hunter_body(email=None, score=None, status=None))
    contact = live_contact(account)
    token, claimed = services.contacts_claim(contact_ids=[str(contact.pk)])
    holds.contacts_hold(token, list(Contact.objects.filter(pk__in=claimed)))
    Contact.objects.filter(pk=contact.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    services.contacts_run(contact_ids=[str(contact.pk)])  # before the reaper saw it
    contact.refresh_from_db()
    assert contact.result_status == Contact.NOT_FOUND
    assert assert_settled(account).credits == 10


@pytest.mark.django_db
@responses.activate
def test_a_crashed_waterfall_releases_its_hold_at_once(monkeypatch):
    account = make_client(mode="live", credits=10).account
    contact = live_contact(account)

    def crash(*args, **kwargs):
        raise RuntimeError("adapter bug")

    monkeypatch.setattr(running, "waterfall_run", crash)
    assert services.contacts_run(contact_ids=[str(contact.pk)]) == 0
    contact.refresh_from_db()
    assert contact.status == Contact.PENDING  # left for the reaper
    assert assert_settled(account).credits == 10


@pytest.mark.django_db
@responses.activate
def test_a_contact_given_up_on_releases_its_hold(settings):
    settings.ENRICHMENT_MAX_RUNS = 1
    account = make_client(mode="live", credits=10).account
    contact = live_contact(account)
    token, claimed = services.contacts_claim(contact_ids=[str(contact.pk)])
    holds.contacts_hold(token, list(Contact.objects.filter(pk__in=claimed)))
    Contact.objects.filter(pk=contact.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    services.contacts_reap()
    contact.refresh_from_db()
    assert contact.result_status == Contact.FAILED
    assert assert_settled(account).credits == 10


@pytest.mark.django_db
def test_credits_shows_the_available_balance_held_credits_as_spent():
    client = make_client(mode="live", credits=10)
    contact = live_contact(client.account, enrichment_type=["email", "phone"])
    token, claimed = services.contacts_claim(contact_ids=[str(contact.pk)])
    holds.contacts_hold(token, list(Contact.objects.filter(pk__in=claimed)))
    assert client.get("/api/v1/credits").json()["credits"] == 0  # 10 of 11 held
    services.contacts_finish(items=[(contact, Outcome())])
    assert client.get("/api/v1/credits").json()["credits"] == 10
