"""Contact leases: renewed while the work runs, fenced on finish, reaped once they lapse."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.enrichment import services
from apps.enrichment.models import Contact, ProviderAttempt
from apps.enrichment.waterfall import Outcome
from apps.providers.adapters.sandbox import SandboxProvider
from tests.factories import ContactFactory
from tests.support.queues import queued_contact_ids
from tests.support.worker import wait_for


def _lapse(contact: Contact, *, runs: int = 1) -> None:
    Contact.objects.filter(pk=contact.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1), run_count=runs
    )


def _all_queued(redis_client) -> list[str]:
    return [cid for message in queued_contact_ids(redis_client) for cid in message]


@pytest.mark.django_db(transaction=True)
def test_the_keeper_renews_a_held_lease_until_released(settings):
    settings.ENRICHMENT_LEASE_SECONDS = 1.0  # renewed every 0.2 s
    contact = ContactFactory()
    token, claimed = services.contacts_claim(contact_ids=[str(contact.pk)])
    first = Contact.objects.get(pk=contact.pk).lease_expires_at
    services.contact_leases.hold(token, claimed)
    try:
        wait_for(
            lambda: Contact.objects.get(pk=contact.pk).lease_expires_at > first,
            timeout=5,
            message="the lease was never renewed",
        )
        time.sleep(1.5)  # longer than a lease: only renewals keep it alive
        assert Contact.objects.get(pk=contact.pk).lease_expires_at > timezone.now()
        assert services.contact_leases.remaining(token) > 0.5
    finally:
        services.contact_leases.release(token)
    assert services.contact_leases.remaining(token) == 0
    time.sleep(1.5)
    assert Contact.objects.get(pk=contact.pk).lease_expires_at < timezone.now()


@pytest.mark.django_db(transaction=True)
def test_renewal_skips_a_contact_another_claim_took_over(settings):
    settings.ENRICHMENT_LEASE_SECONDS = 1.0
    contact = ContactFactory()
    token, claimed = services.contacts_claim(contact_ids=[str(contact.pk)])
    _lapse(contact)
    other, _ = services.contacts_claim(contact_ids=[str(contact.pk)])
    assert other != token
    services.contact_leases.hold(token, claimed)
    try:
        assert services.contact_leases.renew() == 0
    finally:
        services.contact_leases.release(token)
    assert Contact.objects.get(pk=contact.pk).lease_owner == other


def test_a_finish_by_a_claim_that_lost_the_contact_changes_nothing(db):
    contact = ContactFactory()
    stale, _ = services.contacts_claim(contact_ids=[str(contact.pk)])
    _lapse(contact)
    current, claimed = services.contacts_claim(contact_ids=[str(contact.pk)])
    assert claimed == [str(contact.pk)]
    assert services.contacts_finish(items=[(contact, Outcome())], token=stale) == 0
    assert Contact.objects.get(pk=contact.pk).status == Contact.PENDING
    assert services.contacts_finish(items=[(contact, Outcome())], token=current) == 1
    assert Contact.objects.get(pk=contact.pk).status == Contact.FINISHED


def test_a_waterfall_stops_calling_providers_once_its_lease_may_have_lapsed(
    db, settings, monkeypatch
):
    # A lease shorter than the claim takes: before its first provider call the waterfall
    # already cannot be sure it still holds the contact.
    settings.ENRICHMENT_LEASE_SECONDS = 0.001
    settings.ENRICHMENT_CONCURRENCY = 1
    contact = ContactFactory()
    calls = []
    monkeypatch.setattr(SandboxProvider, "lookup", lambda *args, **kw: calls.append(args))
    assert services.contacts_run(contact_ids=[str(contact.pk)]) == 0
    assert calls == []
    stored = Contact.objects.get(pk=contact.pk)
    assert (stored.status, stored.run_count) == (Contact.PENDING, 1)
    settings.ENRICHMENT_LEASE_SECONDS = 15
    _lapse(stored)
    assert services.contacts_run(contact_ids=[str(contact.pk)]) == 1  # the control
    assert len(calls) == 1


def test_the_reaper_publishes_a_lapsed_lease_at_once(db, redis_client):
    fresh = ContactFactory()
    orphaned = ContactFactory()
    _lapse(orphaned)
    held = ContactFactory()
    Contact.objects.filter(pk=held.pk).update(
        lease_expires_at=timezone.now() + timedelta(seconds=10), run_count=1
    )
    assert services.contacts_reap() == 1
    assert _all_queued(redis_client) == [str(orphaned.pk)]
    stored = Contact.objects.get(pk=orphaned.pk)
    assert stored.lease_expires_at is None and stored.published_at is not None
    assert fresh.pk and services.contacts_reap() == 0  # published: not again at once


def test_the_reaper_republishes_a_lost_message_only_once_per_stuck_period(db, redis_client):
    contact = ContactFactory()
    long_ago = timezone.now() - timedelta(minutes=10)
    Contact.objects.filter(pk=contact.pk).update(created_at=long_ago)
    assert services.contacts_reap() == 1
    assert services.contacts_reap() == 0  # just published again: give its message a chance
    Contact.objects.filter(pk=contact.pk).update(published_at=long_ago)
    assert services.contacts_reap() == 1
    assert _all_queued(redis_client) == [str(contact.pk), str(contact.pk)]


def test_the_reaper_gives_up_on_a_contact_whose_runs_keep_dying(db, redis_client, settings):
    settings.ENRICHMENT_MAX_RUNS = 3
    doomed = ContactFactory()
    _lapse(doomed, runs=3)
    again = ContactFactory()
    _lapse(again, runs=2)
    assert services.contacts_reap() == 2
    assert _all_queued(redis_client) == [str(again.pk)]
    stored = Contact.objects.get(pk=doomed.pk)
    assert (stored.status, stored.result_status) == (Contact.FINISHED, Contact.FAILED)
    attempt = ProviderAttempt.objects.get(contact=doomed)
    assert attempt.outcome == ProviderAttempt.ERROR and "3 runs" in attempt.error


def test_release_leaves_contacts_a_live_worker_holds(
    db, redis_client, django_capture_on_commit_callbacks
):
    orphaned, live, unclaimed, done = ContactFactory.create_batch(4)
    _lapse(orphaned)
    Contact.objects.filter(pk=live.pk).update(
        lease_expires_at=timezone.now() + timedelta(seconds=10)
    )
    Contact.objects.filter(pk=done.pk).update(status=Contact.FINISHED)
    ids = [c.pk for c in (orphaned, live, unclaimed, done)]
    with django_capture_on_commit_callbacks(execute=True):
        released, skipped = services.contacts_release(contact_ids=ids)
    assert sorted(released) == sorted([str(orphaned.pk), str(unclaimed.pk)])
    assert skipped == 1
    assert sorted(_all_queued(redis_client)) == sorted(released)


def test_the_keeper_releases_ids_however_they_are_spelled():
    contact_id = uuid.uuid4()
    token = services.contact_leases.new_token()
    services.contact_leases.hold(token, [str(contact_id), str(uuid.uuid4())])
    try:
        services.contact_leases.release(token, [contact_id])  # a UUID, held as a string
        assert services.contact_leases.holding() == 1
    finally:
        services.contact_leases.release(token)
    assert services.contact_leases.holding() == 0


def test_an_unclaimed_contact_is_lost_after_one_lease_while_the_queue_is_empty(db, redis_client):
    # Its message was taken by a worker that died before claiming: nothing is queued.
    taken = ContactFactory()
    Contact.objects.filter(pk=taken.pk).update(created_at=timezone.now() - timedelta(seconds=20))
    fresh = ContactFactory()  # 0 s: its message may still be on its way to a worker
    redis_client.rpush("enrichment", b"{}")  # a backlog: a message may simply be waiting
    assert services.contacts_reap() == 0
    redis_client.delete("enrichment")
    assert services.contacts_reap() == 1
    assert _all_queued(redis_client) == [str(taken.pk)]
    assert Contact.objects.get(pk=fresh.pk).published_at is None


@pytest.mark.django_db(transaction=True)
def test_a_reaped_contact_is_not_taken_back_by_its_old_holder(settings, redis_client):
    settings.ENRICHMENT_LEASE_SECONDS = 15
    contact = ContactFactory()
    token, claimed = services.contacts_claim(contact_ids=[str(contact.pk)])
    services.contact_leases.hold(token, claimed, since=time.monotonic() - 10)
    try:
        _lapse(contact)  # the holder was paused past its lease
        assert services.contacts_reap() == 1
        # Its renewal matches nothing now, and its own view of the lease is left to run out.
        assert services.contact_leases.renew() == 0
        assert services.contact_leases.remaining(token) < 15 - 9
        stored = Contact.objects.get(pk=contact.pk)
        assert stored.lease_expires_at is None and stored.lease_owner is None
        assert services.contacts_finish(items=[(contact, Outcome())], token=token) == 0
    finally:
        services.contact_leases.release(token)


def test_a_claim_retried_after_a_lost_reply_gets_its_own_rows_back(db):
    contact = ContactFactory()
    token, claimed = services.contacts_claim(contact_ids=[str(contact.pk)])
    again, reclaimed = services.contacts_claim(contact_ids=[str(contact.pk)], token=token)
    assert (again, reclaimed) == (token, claimed)
    assert services.contacts_claim(contact_ids=[str(contact.pk)])[1] == []  # another's: no


@pytest.mark.django_db(transaction=True)
def test_a_claim_loads_what_it_claimed_in_one_statement_skipping_rows_others_hold():
    import threading

    from django.db import connection, connections, transaction
    from django.test.utils import CaptureQueriesContext

    from apps.enrichment.services.running import contacts_claim_rows

    first = ContactFactory()
    account = first.account
    account.provider_order = {"email": ["pdl", "hunter"]}
    account.save()
    leased, locked, finished, second = (ContactFactory(account=account) for _ in range(4))
    Contact.objects.filter(pk=leased.pk).update(
        lease_expires_at=timezone.now() + timedelta(minutes=1), lease_owner=uuid.uuid4()
    )
    Contact.objects.filter(pk=finished.pk).update(status=Contact.FINISHED)
    holding, done = threading.Event(), threading.Event()

    def hold_lock() -> None:
        try:
            with transaction.atomic():
                list(Contact.objects.select_for_update().filter(pk=locked.pk))
                holding.set()
                done.wait(30)
        finally:
            connections.close_all()

    thread = threading.Thread(target=hold_lock)
    thread.start()
    try:
        assert holding.wait(30)
        ids = [str(c.pk) for c in (second, leased, locked, finished, first)]
        with CaptureQueriesContext(connection) as queries:
            token, rows, _ = contacts_claim_rows(contact_ids=ids)
    finally:
        done.set()
        thread.join(30)
    assert len(queries) == 1
    # Only the free pending rows, in their order, leased to this claim, counted as a run.
    assert [c.pk for c in rows] == [first.pk, second.pk]
    assert all(c.lease_owner == token and c.run_count == 1 for c in rows)
    assert rows[0].account.provider_order == {"email": ["pdl", "hunter"]}
    assert rows[0].first_name == Contact.objects.get(pk=first.pk).first_name
    assert set(Contact.objects.filter(lease_owner=token).values_list("pk", flat=True)) == {
        first.pk,
        second.pk,
    }
    # A retry with the same token (its COMMIT reply lost) gets its rows back, and the row
    # that was locked, free now.
    again, rows_again, _ = contacts_claim_rows(contact_ids=ids, token=token)
    assert again == token and [c.pk for c in rows_again] == [first.pk, locked.pk, second.pk]


@pytest.mark.django_db
def test_a_claim_brings_each_persons_newest_reusable_result_within_the_ttl(settings):
    from apps.enrichment.services.running import contacts_claim_rows

    settings.PROVIDER_RESULT_REUSE_TTL_SECONDS = 3600
    key = "linkedin.com/in/ada"
    pending = ContactFactory(sandbox=False, person_key=key)
    account = pending.account
    now = timezone.now()

    def done(result: dict, *, ago: int, **fields) -> None:
        ContactFactory(
            account=account,
            person_key=key,
            status=Contact.FINISHED,
            result_status=Contact.VERIFIED,
            result=result,
            finished_at=now - timedelta(seconds=ago),
            **{"sandbox": False, **fields},
        )

    done({"email": "old@x.co"}, ago=600)
    done({"email": "new@x.co"}, ago=60)
    done({"email": "sandbox@x.co"}, ago=1, sandbox=True)  # never a live contact's
    done({"email": "expired@x.co"}, ago=7200)
    ContactFactory(sandbox=False, person_key="someone else")
    _, rows, reusable = contacts_claim_rows(contact_ids=[str(pending.pk)])
    assert [c.pk for c in rows] == [pending.pk]
    assert reusable == {(account.pk, key): {"email": "new@x.co"}}
    Contact.objects.filter(pk=pending.pk).update(lease_expires_at=None)
    settings.PROVIDER_RESULT_REUSE_TTL_SECONDS = 0
    assert contacts_claim_rows(contact_ids=[str(pending.pk)])[2] == {}
