"""The waterfall run and finish services, called directly (no worker)."""

from __future__ import annotations

import pytest

from apps.accounts.models import LedgerEntry
from apps.enrichment import services
from apps.enrichment.models import BulkJob, Contact, ProviderAttempt
from tests.factories import BulkJobFactory, ContactFactory
from tests.support.api import make_client

pytestmark = pytest.mark.django_db


def test_sandbox_contact_finishes_with_generated_email():
    contact = ContactFactory(
        first_name="José",
        last_name="Núñez",
        company_name="Café Co",
        domain="",
        enrichment_type=["email", "phone"],
        linkedin_url="https://linkedin.com/in/jose",
    )
    assert services.contacts_run(contact_ids=[str(contact.pk)]) == 1
    contact.refresh_from_db()
    assert contact.status == Contact.FINISHED
    assert contact.result_status == Contact.VERIFIED
    assert contact.result["email"] == "jose.nunez@cafeco.com"
    assert contact.result["phones"] == [
        {"number": "+15550000000", "type": "mobile", "country": "US"}
    ]
    assert contact.result["providers"] == {"email": "sandbox", "phone": "sandbox"}
    assert contact.credits_charged == 0
    assert list(contact.attempts.values_list("provider", "kind", "outcome")) == [
        ("sandbox", "email", "hit"),
        ("sandbox", "phone", "hit"),
    ]
    assert not LedgerEntry.objects.filter(contact=contact).exists()


def test_sandbox_notfound_name_is_not_found():
    contact = ContactFactory(first_name="Not", last_name="Found")
    services.contacts_run(contact_ids=[str(contact.pk)])
    contact.refresh_from_db()
    assert contact.result_status == Contact.NOT_FOUND
    assert contact.result["email"] is None


def test_running_a_finished_contact_again_does_nothing():
    contact = ContactFactory()
    services.contacts_run(contact_ids=[str(contact.pk)])
    contact.refresh_from_db()
    first_result = contact.result
    assert services.contacts_run(contact_ids=[str(contact.pk)]) == 0
    contact.refresh_from_db()
    assert contact.result == first_result
    assert ProviderAttempt.objects.filter(contact=contact).count() == 1


def test_finish_is_exactly_once_even_when_two_runs_race():
    client = make_client(mode="live", credits=100)
    contact = ContactFactory(account=client.account, sandbox=False)
    from apps.enrichment.waterfall import Outcome

    outcome = Outcome(
        data={"email": "a@b.co"}, found_kinds=["email"], providers={"email": "x"}, confidence=90
    )
    assert services.contacts_finish(items=[(contact, outcome)]) == 1
    assert services.contacts_finish(items=[(contact, outcome)]) == 0
    client.account.refresh_from_db()
    assert client.account.credits == 99
    assert LedgerEntry.objects.filter(contact=contact, entry_type="charge").count() == 1


def test_live_contact_short_of_credits_finishes_no_credits():
    client = make_client(mode="live", credits=5)
    contact = ContactFactory(account=client.account, sandbox=False, enrichment_type=["phone"])
    from apps.enrichment.waterfall import Outcome

    outcome = Outcome(data={"phones": [{"number": "+1"}]}, found_kinds=["phone"], confidence=90)
    services.contacts_finish(items=[(contact, outcome)])
    contact.refresh_from_db()
    assert contact.result_status == Contact.NO_CREDITS
    assert contact.result["phones"] == []
    client.account.refresh_from_db()
    assert client.account.credits == 5


def test_bulk_counters_and_completion():
    bulk = BulkJobFactory(total=3)
    contacts = [ContactFactory(account=bulk.account, bulk=bulk) for _ in range(2)]
    contacts.append(ContactFactory(account=bulk.account, bulk=bulk, first_name="notfound"))
    services.contacts_run(contact_ids=[str(c.pk) for c in contacts[:2]])
    bulk.refresh_from_db()
    assert (bulk.finished, bulk.verified, bulk.status) == (2, 2, "pending")
    services.contacts_run(contact_ids=[str(contacts[2].pk)])
    bulk.refresh_from_db()
    assert (bulk.finished, bulk.verified, bulk.not_found, bulk.status) == (3, 2, 1, "completed")
    assert bulk.completed_at is not None


def test_claim_skips_contacts_leased_by_another_worker():
    contact = ContactFactory()
    token, claimed = services.contacts_claim(contact_ids=[str(contact.pk)])
    assert claimed == [str(contact.pk)]
    assert services.contacts_claim(contact_ids=[str(contact.pk)])[1] == []
    contact.refresh_from_db()
    assert contact.lease_owner == token and contact.run_count == 1


def test_reaper_republishes_stuck_contacts(redis_client, settings):
    from datetime import timedelta

    from django.utils import timezone

    stuck = ContactFactory()
    Contact.objects.filter(pk=stuck.pk).update(created_at=timezone.now() - timedelta(minutes=10))
    ContactFactory()  # fresh: not stuck yet
    assert services.contacts_reap() == 1
    assert redis_client.llen("enrichment") == 1
    assert BulkJob.objects.count() == 0


def test_a_finish_of_many_live_contacts_costs_the_statements_of_one():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apps.enrichment.services import holds
    from apps.enrichment.waterfall import AttemptRecord, Outcome

    account = make_client(mode="live", credits=100).account
    contacts = [ContactFactory(account=account, sandbox=False) for _ in range(10)]

    def finish(some: list[Contact], found: bool) -> int:
        token, claimed = services.contacts_claim(contact_ids=[str(c.pk) for c in some])
        rows = list(Contact.objects.filter(pk__in=claimed))
        holds.contacts_hold(token, rows)
        outcome = Outcome(
            data={"email": "zoë@bücher.example", "email_status": "valid"} if found else {},
            found_kinds=["email"] if found else [],
            providers={"email": "sim"} if found else {},
            confidence=91 if found else 0,
            attempts=[AttemptRecord("sim", "email", "hit" if found else "miss", duration_ms=50)],
        )
        with CaptureQueriesContext(connection) as queries:
            assert services.contacts_finish(items=[(c, outcome) for c in rows], token=token)
        return len(queries)

    assert finish(contacts[:1], True) == finish(contacts[1:8], True)
    finish(contacts[8:], False)
    found = Contact.objects.get(pk=contacts[3].pk)
    assert (found.status, found.result_status, found.credits_charged) == ("finished", "VERIFIED", 1)
    assert found.result["email"] == "zoë@bücher.example" and found.result["confidence"] == 91
    assert found.lease_expires_at is None and found.finished_at is not None
    missed = Contact.objects.get(pk=contacts[9].pk)
    assert (missed.result_status, missed.credits_charged, missed.result["email"]) == (
        "NOT_FOUND",
        0,
        None,
    )
    account.refresh_from_db()
    assert (account.credits, account.held) == (92, 0)
    assert LedgerEntry.objects.filter(account=account, entry_type="charge").count() == 8
