"""The credit ledger (SPEC §2): exactly-once charges, never negative, balance == ledger sum."""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import IntegrityError, connections, transaction

from apps.accounts.models import Account, LedgerEntry
from apps.accounts.selectors import ledger_mismatches, ledger_sum
from apps.accounts.services import (
    AlreadyCharged,
    AlreadyRefunded,
    credits_add,
    credits_charge,
    credits_refund,
)
from apps.core.errors import InvalidRequest
from apps.enrichment import services as enrichment_services
from apps.enrichment.models import Contact
from tests.factories import AccountFactory, ContactFactory
from tests.support.api import make_client


def funded_account(credits: int) -> Account:
    account = AccountFactory()
    if credits:
        credits_add(account=account, amount=credits, reason="opening balance")
    account.refresh_from_db()
    return account


def run_concurrently(fn, args: list) -> list:
    """Call ``fn`` for every arg from its own thread (own DB connection), all released at once."""
    start = threading.Barrier(len(args))

    def call(arg):
        try:
            start.wait(timeout=60)
            return fn(arg)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=len(args)) as pool:
        return list(pool.map(call, args))


def assert_consistent(account: Account) -> int:
    account.refresh_from_db()
    assert account.credits >= 0
    assert account.credits == ledger_sum(account=account)
    assert ledger_mismatches() == []
    return account.credits


@pytest.mark.django_db(transaction=True)
def test_100_concurrent_charges_against_40_credits():
    account = funded_account(40)
    contacts = [ContactFactory(account=account, sandbox=False) for _ in range(100)]

    def charge(contact: Contact) -> int | None:
        return credits_charge(
            account_id=account.pk, contact_id=contact.pk, amount=1, reason="enrichment"
        )

    results = run_concurrently(charge, contacts)
    succeeded = [r for r in results if r is not None]
    assert len(succeeded) == 40
    assert sorted(succeeded) == list(range(40))  # every balance_after from 39 down to 0, once
    assert assert_consistent(account) == 0
    assert LedgerEntry.objects.filter(account=account, entry_type="charge").count() == 40


@pytest.mark.django_db(transaction=True)
def test_concurrent_charges_of_uneven_amounts_never_overdraw():
    account = funded_account(40)
    contacts = [ContactFactory(account=account, sandbox=False) for _ in range(30)]
    results = run_concurrently(
        lambda c: credits_charge(account_id=account.pk, contact_id=c.pk, amount=3), contacts
    )
    assert sum(r is not None for r in results) == 13  # 13 x 3 = 39; the 14th would overdraw
    assert assert_consistent(account) == 1


@pytest.mark.django_db(transaction=True)
def test_one_contact_charged_from_many_threads_is_charged_once():
    account = funded_account(100)
    contact = ContactFactory(account=account, sandbox=False)

    def charge(_: int) -> str:
        try:
            credits_charge(account_id=account.pk, contact_id=contact.pk, amount=11)
        except AlreadyCharged:
            return "duplicate"
        return "charged"

    outcomes = run_concurrently(charge, list(range(10)))
    assert outcomes.count("charged") == 1
    assert outcomes.count("duplicate") == 9
    assert LedgerEntry.objects.filter(contact=contact, entry_type="charge").count() == 1
    assert assert_consistent(account) == 89


@pytest.mark.django_db
def test_a_second_charge_for_a_contact_changes_nothing():
    account = funded_account(20)
    contact = ContactFactory(account=account, sandbox=False)
    assert credits_charge(account_id=account.pk, contact_id=contact.pk, amount=11) == 9
    with pytest.raises(AlreadyCharged):
        credits_charge(account_id=account.pk, contact_id=contact.pk, amount=1)
    assert assert_consistent(account) == 9
    entry = LedgerEntry.objects.get(contact=contact)
    assert (entry.entry_type, entry.amount, entry.balance_after) == ("charge", -11, 9)


@pytest.mark.django_db
def test_a_short_balance_charges_nothing():
    account = funded_account(5)
    contact = ContactFactory(account=account, sandbox=False)
    assert credits_charge(account_id=account.pk, contact_id=contact.pk, amount=10) is None
    assert LedgerEntry.objects.filter(contact=contact).count() == 0
    assert assert_consistent(account) == 5


@pytest.mark.django_db
def test_the_database_refuses_a_negative_balance_and_a_second_charge_row():
    account = funded_account(1)
    with pytest.raises(IntegrityError), transaction.atomic():
        Account.objects.filter(pk=account.pk).update(credits=-1)
    contact = ContactFactory(account=account, sandbox=False)
    credits_charge(account_id=account.pk, contact_id=contact.pk, amount=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerEntry.objects.create(
            account=account, entry_type="charge", amount=0, balance_after=0, contact=contact
        )


@pytest.mark.django_db
def test_every_kind_of_change_is_a_ledger_row():
    account = funded_account(0)
    credits_add(account=account, amount=50, reason="invoice 12")
    credits_add(account=account, amount=-20, entry_type="adjustment", reason="goodwill reversal")
    contact = ContactFactory(account=account, sandbox=False)
    credits_charge(account_id=account.pk, contact_id=contact.pk, amount=11, reason="enrichment")
    credits_refund(contact_id=contact.pk, reason="bad phone number")
    rows = list(
        LedgerEntry.objects.filter(account=account)
        .order_by("pk")
        .values_list("entry_type", "amount", "balance_after", "reason")
    )
    assert rows == [
        ("topup", 50, 50, "invoice 12"),
        ("adjustment", -20, 30, "goodwill reversal"),
        ("charge", -11, 19, "enrichment"),
        ("refund", 11, 30, "bad phone number"),
    ]
    assert assert_consistent(account) == 30


@pytest.mark.django_db
def test_an_adjustment_cannot_take_the_balance_below_zero():
    account = funded_account(5)
    with pytest.raises(InvalidRequest):
        credits_add(account=account, amount=-6, entry_type="adjustment")
    with pytest.raises(InvalidRequest):
        credits_add(account=account, amount=-1, entry_type="topup")
    assert assert_consistent(account) == 5
    assert LedgerEntry.objects.filter(account=account).count() == 1


@pytest.mark.django_db
def test_an_entry_beyond_the_ledger_bound_is_refused_not_an_overflow():
    account = funded_account(5)
    for amount in (10**9 + 1, 10**19):
        with pytest.raises(InvalidRequest):
            credits_add(account=account, amount=amount, reason="typo")
    assert credits_add(account=account, amount=10**9, reason="big order").balance_after == 10**9 + 5


@pytest.mark.django_db
def test_a_refund_happens_once_and_never_exceeds_the_charge():
    account = funded_account(20)
    contact = ContactFactory(account=account, sandbox=False)
    credits_charge(account_id=account.pk, contact_id=contact.pk, amount=10)
    with pytest.raises(InvalidRequest):
        credits_refund(contact_id=contact.pk, amount=11)
    credits_refund(contact_id=contact.pk, amount=4)
    with pytest.raises(AlreadyRefunded):
        credits_refund(contact_id=contact.pk)
    assert assert_consistent(account) == 14
    uncharged = ContactFactory(account=account)
    with pytest.raises(InvalidRequest):
        credits_refund(contact_id=uncharged.pk)


@pytest.mark.django_db(transaction=True)
def test_concurrent_refunds_of_one_contact_refund_once():
    account = funded_account(20)
    contact = ContactFactory(account=account, sandbox=False)
    credits_charge(account_id=account.pk, contact_id=contact.pk, amount=10)

    def refund(_: int) -> str:
        try:
            credits_refund(contact_id=contact.pk)
        except AlreadyRefunded:
            return "duplicate"
        return "refunded"

    assert sorted(run_concurrently(refund, list(range(8)))) == ["duplicate"] * 7 + ["refunded"]
    assert assert_consistent(account) == 20


@pytest.mark.django_db(transaction=True)
def test_live_request_at_zero_balance_is_402():
    client = make_client(mode="live", credits=0)
    response = client.post(
        "/api/v1/enrich",
        json.dumps(
            {"first_name": "A", "last_name": "B", "domain": "acme.com", "enrichment_type": "email"}
        ),
        content_type="application/json",
    )
    assert response.status_code == 402
    assert response.json()["code"] == "insufficient_credits"


@pytest.mark.django_db(transaction=True)
def test_sandbox_keys_never_touch_the_ledger():
    client = make_client(mode="test", credits=0)
    response = client.post(
        "/api/v1/enrich",
        json.dumps(
            {
                "first_name": "Ada",
                "last_name": "Lovelace",
                "domain": "acme.com",
                "enrichment_type": ["email", "phone"],
                "linkedin_url": "https://www.linkedin.com/in/ada",
            }
        ),
        content_type="application/json",
    )
    assert response.status_code == 202
    contact_id = response.json()["enrichment_id"]
    enrichment_services.contacts_run(contact_ids=[contact_id])
    contact = Contact.objects.get(pk=contact_id)
    assert contact.status == Contact.FINISHED
    assert contact.result_status == Contact.VERIFIED
    assert contact.credits_charged == 0
    assert LedgerEntry.objects.filter(account=client.account).count() == 0
    assert assert_consistent(client.account) == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kinds", "price"),
    [(["email"], 1), (["phone"], 10), (["email", "phone"], 11), (["personal_email"], 2)],
)
def test_default_prices_charge_found_kinds_once_with_a_linked_ledger_row(kinds, price):
    from apps.enrichment.waterfall import Outcome

    account = funded_account(100)
    contact = ContactFactory(account=account, sandbox=False, enrichment_type=kinds)
    outcome = Outcome(data={}, found_kinds=kinds, confidence=90)
    enrichment_services.contacts_finish(items=[(contact, outcome)])
    contact.refresh_from_db()
    assert contact.result_status == Contact.VERIFIED
    assert contact.credits_charged == price
    entry = LedgerEntry.objects.get(account=account, entry_type="charge")
    assert (entry.amount, entry.balance_after, entry.contact_id) == (
        -price,
        100 - price,
        contact.pk,
    )
    assert entry.reason
    assert assert_consistent(account) == 100 - price


@pytest.mark.django_db
def test_prices_are_settings(settings):
    from apps.enrichment.waterfall import Outcome

    settings.CREDIT_PRICES = {"email": 3, "phone": 20, "personal_email": 5}
    account = funded_account(100)
    contact = ContactFactory(account=account, sandbox=False, enrichment_type=["email", "phone"])
    outcome = Outcome(data={}, found_kinds=["email", "phone"], confidence=90)
    enrichment_services.contacts_finish(items=[(contact, outcome)])
    contact.refresh_from_db()
    assert contact.credits_charged == 23
    assert assert_consistent(account) == 77


@pytest.mark.django_db
def test_not_found_and_failed_results_are_free():
    from apps.enrichment.waterfall import Outcome

    account = funded_account(10)
    contact = ContactFactory(account=account, sandbox=False)
    enrichment_services.contacts_finish(items=[(contact, Outcome())])
    contact.refresh_from_db()
    assert (contact.result_status, contact.credits_charged) == (Contact.NOT_FOUND, 0)
    assert LedgerEntry.objects.filter(contact=contact).count() == 0
    assert assert_consistent(account) == 10


# --- holds: credits set aside for running live work ------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_50_concurrent_holds_against_10_credits_hold_exactly_10():
    from apps.accounts.services import credits_hold, credits_release

    account = funded_account(10)
    contacts = [ContactFactory(account=account, sandbox=False) for _ in range(50)]

    def hold(contact: Contact) -> dict:
        return credits_hold(
            account_id=account.pk, token=contact.pk, wants=[(contact.pk, 1)], whole=True
        )

    results = run_concurrently(hold, contacts)
    assert sum(len(r) for r in results) == 10
    assert assert_consistent(account) == 0
    assert account.held == 10
    # Released twice from two threads each: given back once.
    held = [c for c, r in zip(contacts, results, strict=True) if r]
    run_concurrently(
        lambda c: credits_release(account_id=account.pk, contact_ids=[c.pk]), held + held
    )
    assert assert_consistent(account) == 10
    assert account.held == 0
    assert LedgerEntry.objects.filter(account=account, entry_type="release").count() == 10


@pytest.mark.django_db
def test_a_hold_takes_what_is_left_and_whole_takes_all_or_nothing():
    from apps.accounts.services import credits_hold

    account = funded_account(5)
    a, b, c = (ContactFactory(account=account, sandbox=False) for _ in range(3))
    got = credits_hold(account_id=account.pk, token=a.pk, wants=[(a.pk, 3), (b.pk, 3), (c.pk, 3)])
    assert got == {a.pk: 3, b.pk: 2}
    assert credits_hold(account_id=account.pk, token=c.pk, wants=[(c.pk, 1)], whole=True) == {}
    assert assert_consistent(account) == 0
    assert account.held == 5
    assert list(
        LedgerEntry.objects.filter(entry_type="hold")
        .order_by("pk")
        .values_list("amount", "balance_after")
    ) == [(-3, 2), (-2, 0)]


@pytest.mark.django_db
def test_a_release_is_bounded_by_what_the_token_holds():
    from apps.accounts.services import credits_hold, credits_release

    account = funded_account(5)
    contact = ContactFactory(account=account, sandbox=False)
    credits_hold(account_id=account.pk, token=contact.pk, wants=[(contact.pk, 4)])
    other = credits_release(account_id=account.pk, contact_ids=[contact.pk], token=account.pk)
    assert other == 0  # another claim's token holds nothing here
    assert (
        credits_release(account_id=account.pk, contact_ids=[contact.pk], token=contact.pk, amount=1)
        == 1
    )
    assert credits_release(account_id=account.pk, contact_ids=[contact.pk]) == 3
    assert credits_release(account_id=account.pk, contact_ids=[contact.pk]) == 0
    assert assert_consistent(account) == 5
    assert account.held == 0


@pytest.mark.django_db
def test_the_database_refuses_a_negative_hold_and_holds_are_not_adjustments():
    account = funded_account(5)
    with pytest.raises(ValueError):
        credits_add(account=account, amount=5, entry_type=LedgerEntry.RELEASE)
    with pytest.raises(IntegrityError), transaction.atomic():
        Account.objects.filter(pk=account.pk).update(held=-1)


@pytest.mark.django_db
def test_a_hold_released_without_its_token_is_not_released_again_by_it():
    """The takeover the fence exists for: the next claim (or the reaper, or the finish)
    releases an old claim's hold without naming its token; the old claim, abandoning the
    contact, then releases by its token: nothing more may come back."""
    from apps.accounts.services import credits_hold, credits_release

    account = funded_account(20)
    contact = ContactFactory(account=account, sandbox=False)
    other = ContactFactory(account=account, sandbox=False)
    old_claim, new_claim = uuid.uuid4(), uuid.uuid4()
    credits_hold(account_id=account.pk, token=old_claim, wants=[(contact.pk, 10)])
    credits_hold(account_id=account.pk, token=new_claim, wants=[(other.pk, 5)])
    assert credits_release(account_id=account.pk, contact_ids=[contact.pk]) == 10
    assert credits_release(account_id=account.pk, contact_ids=[contact.pk], token=old_claim) == 0
    assert assert_consistent(account) == 15
    assert account.held == 5  # the other contact's hold is untouched


# --- holds for many claims at once (the enrichment finisher's) -----------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("whole", [False, True])
def test_concurrent_holds_of_many_claims_never_hold_more_than_the_balance(whole):
    from apps.accounts.services import credits_hold_many

    account = funded_account(23)
    batches = [
        [(ContactFactory(account=account, sandbox=False).pk, 2, uuid.uuid4()) for _ in range(5)]
        for _ in range(10)
    ]

    def hold(wants: list) -> dict:
        return credits_hold_many(account_id=account.pk, wants=wants, whole=whole)

    results = run_concurrently(hold, batches)
    got = {pk: amount for result in results for pk, amount in result.items()}
    assert sum(got.values()) == (22 if whole else 23)
    # Whole: eleven contacts get their 2; otherwise one more gets the last credit.
    assert sorted(got.values()) == ([2] * 11 if whole else [1] + [2] * 11)
    assert assert_consistent(account) == (1 if whole else 0)
    assert account.held == sum(got.values())
    # Each hold row is its own claim's: the token that contact was held under.
    tokens = {pk: token for batch in batches for pk, _, token in batch}
    rows = LedgerEntry.objects.filter(account=account, entry_type="hold")
    assert {(r.contact_id, r.hold_token, -r.amount) for r in rows} == {
        (pk, tokens[pk], amount) for pk, amount in got.items()
    }


@pytest.mark.django_db
def test_a_hold_of_many_claims_short_of_credits_covers_them_in_order():
    from apps.accounts.services import credits_hold_many, credits_release

    account = funded_account(5)
    a, b, c = (ContactFactory(account=account, sandbox=False) for _ in range(3))
    ta, tb, tc = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    got = credits_hold_many(
        account_id=account.pk, wants=[(a.pk, 3, ta), (b.pk, 3, tb), (c.pk, 3, tc)]
    )
    assert got == {a.pk: 3, b.pk: 2}  # as one claim after another: c gets nothing
    assert list(
        LedgerEntry.objects.filter(entry_type="hold")
        .order_by("pk")
        .values_list("contact_id", "hold_token", "amount", "balance_after")
    ) == [(a.pk, ta, -3, 2), (b.pk, tb, -2, 0)]
    # Each claim releases only its own contact's hold.
    assert credits_release(account_id=account.pk, contact_ids=[a.pk, b.pk], token=tb) == 2
    assert assert_consistent(account) == 2
    # All or nothing per contact: b (3) cannot be covered by 2, c (2) can, after it.
    got = credits_hold_many(account_id=account.pk, wants=[(b.pk, 3, tb), (c.pk, 2, tc)], whole=True)
    assert got == {c.pk: 2}
    assert assert_consistent(account) == 0
    assert account.held == 5


@pytest.mark.django_db
def test_a_hold_of_many_claims_costs_the_statements_of_one():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apps.accounts.services import credits_hold_many

    account = funded_account(1000)
    contacts = [ContactFactory(account=account, sandbox=False) for _ in range(26)]

    def count(wants: list, replace: list) -> int:
        with CaptureQueriesContext(connection) as queries:
            assert credits_hold_many(account_id=account.pk, wants=wants, replace=replace)
        return len(queries)

    one = count([(contacts[0].pk, 1, uuid.uuid4())], [])
    assert one == count([(c.pk, 1, uuid.uuid4()) for c in contacts[1:26]], [])
    # Held again by a new claim, the earlier holds released first: a constant number more.
    again = count([(contacts[0].pk, 1, uuid.uuid4())], [contacts[0].pk])
    assert one < again
    assert again == count(
        [(c.pk, 1, uuid.uuid4()) for c in contacts[1:26]], [c.pk for c in contacts[1:26]]
    )
    assert assert_consistent(account) == 1000 - 26
    assert account.held == 26


@pytest.mark.django_db
def test_a_redelivered_claims_hold_replaces_the_earlier_one_instead_of_adding_to_it():
    from apps.accounts.services import credits_hold_many, credits_release

    account = funded_account(10)
    a, b, fresh = (ContactFactory(account=account, sandbox=False) for _ in range(3))
    first = uuid.uuid4()
    credits_hold_many(account_id=account.pk, wants=[(a.pk, 3, first), (b.pk, 3, first)])
    # The message is delivered again: a new claim of a and b, beside a fresh contact.
    second, other = uuid.uuid4(), uuid.uuid4()
    got = credits_hold_many(
        account_id=account.pk,
        wants=[(a.pk, 3, second), (b.pk, 3, second), (fresh.pk, 4, other)],
        replace=[a.pk, b.pk],
    )
    assert got == {a.pk: 3, b.pk: 3, fresh.pk: 4}  # 10: only if the first hold came back
    assert assert_consistent(account) == 0
    assert account.held == 10
    # The first claim, abandoning them now, gets nothing back: released once only.
    assert credits_release(account_id=account.pk, contact_ids=[a.pk, b.pk], token=first) == 0
    assert credits_release(account_id=account.pk, contact_ids=[a.pk, b.pk, fresh.pk]) == 10
    assert assert_consistent(account) == 10
    assert account.held == 0


@pytest.mark.django_db
def test_a_contact_is_held_once_per_call():
    from apps.accounts.services import credits_hold_many

    account = funded_account(10)
    contact = ContactFactory(account=account, sandbox=False)
    with pytest.raises(ValueError):
        credits_hold_many(
            account_id=account.pk,
            wants=[(contact.pk, 1, uuid.uuid4()), (contact.pk, 1, uuid.uuid4())],
        )
    assert assert_consistent(account) == 10


@pytest.mark.django_db
def test_a_settle_releases_every_hold_then_charges_in_order_while_the_balance_lasts():
    from apps.accounts.services import credits_hold_many, credits_settle

    account = funded_account(5)
    a, b, c, unheld = (ContactFactory(account=account, sandbox=False) for _ in range(4))
    ta, tb = uuid.uuid4(), uuid.uuid4()
    credits_hold_many(account_id=account.pk, wants=[(a.pk, 2, ta), (b.pk, 2, tb), (c.pk, 1, tb)])
    assert assert_consistent(account) == 0
    paid = credits_settle(
        account_id=account.pk,
        contact_ids=[a.pk, b.pk, c.pk],
        charges=[(a.pk, 1), (b.pk, 3), (unheld.pk, 2)],
        reason="enrichment",
    )
    # Everything held comes back first (5), then a pays 1 and b 3; 1 is left, short of 2.
    assert paid == {a.pk: True, b.pk: True, unheld.pk: False}
    assert assert_consistent(account) == 1
    assert account.held == 0
    rows = list(
        LedgerEntry.objects.filter(account=account, entry_type__in=("release", "charge"))
        .order_by("pk")
        .values_list("entry_type", "contact_id", "amount", "balance_after")
    )
    releases = rows[:3]
    assert sorted((r[1], r[2]) for r in releases) == sorted([(a.pk, 2), (b.pk, 2), (c.pk, 1)])
    # Each release row's balance runs on from the one before (from 0: everything was held).
    assert [r[3] for r in releases] == [sum(r[2] for r in releases[: i + 1]) for i in range(3)]
    assert rows[3:] == [("charge", a.pk, -1, 4), ("charge", b.pk, -3, 1)]
    assert LedgerEntry.objects.get(contact=a, entry_type="charge").reason == "enrichment"


@pytest.mark.django_db
def test_a_settle_never_charges_a_contact_twice_nor_releases_a_hold_twice():
    from apps.accounts.services import credits_hold_many, credits_settle

    account = funded_account(10)
    contact = ContactFactory(account=account, sandbox=False)
    credits_hold_many(account_id=account.pk, wants=[(contact.pk, 3, uuid.uuid4())])
    settle = {"account_id": account.pk, "contact_ids": [contact.pk], "charges": [(contact.pk, 2)]}
    assert credits_settle(**settle) == {contact.pk: True}
    assert assert_consistent(account) == 8
    # Run again (a redelivered finish): already charged, nothing held, nothing changes.
    assert credits_settle(**settle) == {contact.pk: True}
    assert assert_consistent(account) == 8
    assert account.held == 0
    assert LedgerEntry.objects.filter(contact=contact, entry_type="charge").count() == 1
    assert LedgerEntry.objects.filter(contact=contact, entry_type="release").count() == 1


@pytest.mark.django_db
def test_a_settle_of_many_contacts_costs_the_statements_of_one():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apps.accounts.services import credits_hold_many, credits_settle

    account = funded_account(1000)
    contacts = [ContactFactory(account=account, sandbox=False) for _ in range(26)]
    credits_hold_many(account_id=account.pk, wants=[(c.pk, 2, uuid.uuid4()) for c in contacts])

    def count(some: list) -> int:
        with CaptureQueriesContext(connection) as queries:
            paid = credits_settle(
                account_id=account.pk,
                contact_ids=[c.pk for c in some],
                charges=[(c.pk, 1) for c in some],
            )
        assert paid == {c.pk: True for c in some}
        return len(queries)

    assert count(contacts[:1]) == count(contacts[1:])
    assert assert_consistent(account) == 1000 - 26
    assert account.held == 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_settles_and_holds_never_overdraw_nor_charge_twice():
    from apps.accounts.services import credits_hold_many, credits_settle

    account = funded_account(30)
    contacts = [ContactFactory(account=account, sandbox=False).pk for _ in range(40)]
    credits_hold_many(account_id=account.pk, wants=[(pk, 1, uuid.uuid4()) for pk in contacts[:20]])
    # Each of 40 contacts is settled twice, from racing threads, charged 1 each: 30 pay.
    batches = [contacts[i : i + 5] for i in range(0, 40, 5)] * 2

    def settle(batch: list) -> dict:
        with transaction.atomic():
            return credits_settle(
                account_id=account.pk, contact_ids=batch, charges=[(pk, 1) for pk in batch]
            )

    run_concurrently(settle, batches)
    charged = LedgerEntry.objects.filter(account=account, entry_type="charge")
    assert charged.count() == 30
    assert len(set(charged.values_list("contact_id", flat=True))) == 30
    assert assert_consistent(account) == 0
    assert account.held == 0
