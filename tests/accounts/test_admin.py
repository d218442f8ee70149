"""Admin for plans, accounts, API keys and the ledger: pages, actions, secrets, query counts."""

from __future__ import annotations

import re

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from apps.accounts.models import Account, ApiKey, LedgerEntry, Plan
from apps.accounts.services import api_key_hash, credits_add, credits_charge
from tests.factories import AccountFactory, ApiKeyFactory, plan
from tests.support.querycount import MAX_CHANGELIST_QUERIES, page_queries

pytestmark = pytest.mark.django_db


def _ledger_rows(account: Account, n: int) -> None:
    """Rows with every column the list shows filled: a staff user and a contact."""
    from django.contrib.auth import get_user_model

    from tests.factories import ContactFactory

    staff = get_user_model().objects.create_user(f"staff-{account.pk}-{n}", is_staff=True)
    for i in range(n):
        credits_add(account=account, amount=i + 1, reason=f"row {i}", created_by=staff)
        credits_charge(
            account_id=account.pk, contact_id=ContactFactory(account=account).pk, amount=1
        )


def _plans(n: int) -> None:
    start = Plan.objects.count()
    for i in range(start, start + n):
        AccountFactory(plan=Plan.objects.create(code=f"plan-{i}", name=f"Plan {i}"))


@pytest.mark.parametrize(
    ("url_name", "make"),
    [
        ("admin:accounts_account_changelist", lambda n: AccountFactory.create_batch(n)),
        ("admin:accounts_apikey_changelist", lambda n: ApiKeyFactory.create_batch(n)),
        ("admin:accounts_ledgerentry_changelist", lambda n: _ledger_rows(AccountFactory(), n)),
        ("admin:accounts_plan_changelist", _plans),
    ],
)
def test_changelist_query_count_does_not_grow_with_rows(admin_client, url_name, make):
    url = reverse(url_name)
    make(5)
    few = page_queries(admin_client, url)
    make(45)
    many = page_queries(admin_client, url)
    assert few == many
    assert many <= MAX_CHANGELIST_QUERIES


def test_account_list_shows_balance_plan_consent_countries_and_key_count(admin_client):
    account = AccountFactory(
        name="Globex", personal_email_consent=True, default_phone_country_codes=["US", "GB"]
    )
    credits_add(account=account, amount=1234, reason="test")
    ApiKeyFactory(account=account)
    ApiKeyFactory(account=account, revoked_at="2026-01-01T00:00:00Z")
    body = admin_client.get(reverse("admin:accounts_account_changelist")).content.decode()
    row = re.search(r"<tr>.*?Globex.*?</tr>", body, re.S).group(0)
    assert "1234" in row
    assert "Pro" in row
    assert "US, GB" in row
    assert 'class="field-active_keys">1<' in row
    assert account.callback_secret not in body


def test_account_search_by_name_and_by_id(admin_client):
    wanted = AccountFactory(name="Initech")
    AccountFactory(name="Umbrella")
    url = reverse("admin:accounts_account_changelist")
    for term in ("initech", str(wanted.pk)):
        body = admin_client.get(url, {"q": term}).content.decode()
        assert "Initech" in body
        assert "Umbrella" not in body


def test_account_add_creates_account_and_key_through_the_service_and_shows_them_once(
    admin_client,
):
    response = admin_client.post(
        reverse("admin:accounts_account_add"),
        {
            "name": "Hooli",
            "plan": "growth",
            "credits": "50",
            "mode": "test",
            "personal_email_consent": "on",
            "default_phone_country_codes": "us, gb",
        },
    )
    assert response.status_code == 200
    account = Account.objects.get(name="Hooli")
    assert account.plan == plan("growth")
    assert account.credits == 50
    assert account.default_phone_country_codes == ["US", "GB"]
    assert account.personal_email_consent
    assert account.ledger.get().reason == "opening balance"
    raw = re.search(r"sk_test_[A-Za-z0-9]+", response.content.decode()).group(0)
    assert ApiKey.objects.get(account=account).key_hash == api_key_hash(raw)
    assert account.callback_secret in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    # The change page afterwards never shows either secret again.
    page = admin_client.get(reverse("admin:accounts_account_change", args=[account.pk]))
    assert raw not in page.content.decode()
    assert account.callback_secret not in page.content.decode()


def test_account_add_rejects_bad_country_codes(admin_client):
    response = admin_client.post(
        reverse("admin:accounts_account_add"),
        {
            "name": "Bad",
            "plan": "pro",
            "credits": "0",
            "mode": "test",
            "default_phone_country_codes": "XX",
        },
    )
    assert response.status_code == 200
    assert "is not an ISO 3166-1 alpha-2 country code" in response.content.decode()
    assert not Account.objects.filter(name="Bad").exists()


def test_credits_are_read_only_on_the_change_form(admin_client):
    account = AccountFactory(name="Before")
    credits_add(account=account, amount=10, reason="seed")
    response = admin_client.post(
        reverse("admin:accounts_account_change", args=[account.pk]),
        {
            "name": "After",
            "plan": plan("pro").pk,
            "credits": "999999",
            "default_phone_country_codes": "FR",
            "provider_order": '{"email": ["sandbox"]}',
            "api_keys-TOTAL_FORMS": "0",
            "api_keys-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    account.refresh_from_db()
    assert account.name == "After"
    assert account.default_phone_country_codes == ["FR"]
    assert account.provider_order == {"email": ["sandbox"]}
    assert account.credits == 10


def test_provider_order_override_rejects_unknown_providers(admin_client):
    account = AccountFactory()
    response = admin_client.post(
        reverse("admin:accounts_account_change", args=[account.pk]),
        {
            "name": account.name,
            "plan": account.plan_id,
            "provider_order": '{"email": ["nobody"]}',
            "api_keys-TOTAL_FORMS": "0",
            "api_keys-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200
    assert "Unknown provider" in response.content.decode()


def test_top_up_action_shows_a_form_then_writes_a_ledger_row_with_user_and_reason(
    admin_client, admin_user
):
    account = AccountFactory()
    url = reverse("admin:accounts_account_changelist")
    form = admin_client.post(url, {"action": "top_up", ACTION_CHECKBOX_NAME: [account.pk]})
    assert form.status_code == 200
    assert 'name="reason"' in form.content.decode()
    assert not LedgerEntry.objects.exists()

    done = admin_client.post(
        url,
        {
            "action": "top_up",
            "apply": "1",
            ACTION_CHECKBOX_NAME: [account.pk],
            "entry_type": "topup",
            "amount": "500",
            "reason": "invoice 42",
        },
    )
    assert done.status_code == 302
    entry = LedgerEntry.objects.get(account=account)
    assert (entry.entry_type, entry.amount, entry.balance_after) == ("topup", 500, 500)
    assert entry.reason == "invoice 42"
    assert entry.created_by == admin_user
    account.refresh_from_db()
    assert account.credits == 500


def test_top_up_refuses_an_adjustment_below_zero_and_a_negative_top_up(admin_client):
    account = AccountFactory()
    credits_add(account=account, amount=5, reason="seed")
    url = reverse("admin:accounts_account_changelist")
    base = {"action": "top_up", "apply": "1", ACTION_CHECKBOX_NAME: [account.pk], "reason": "x"}
    negative_topup = admin_client.post(url, {**base, "entry_type": "topup", "amount": "-3"})
    assert "Only an adjustment may be negative." in negative_topup.content.decode()
    too_low = admin_client.post(
        url, {**base, "entry_type": "adjustment", "amount": "-6"}, follow=True
    )
    assert "cannot go below zero" in too_low.content.decode()
    account.refresh_from_db()
    assert account.credits == 5
    assert account.ledger.count() == 1


def test_api_key_add_mints_through_the_service_and_shows_the_raw_key_once(admin_client):
    account = AccountFactory()
    response = admin_client.post(
        reverse("admin:accounts_apikey_add"),
        {
            "account": account.pk,
            "name": "crm sync",
            "mode": "live",
            "ip_allowlist": "10.0.0.0/8, 192.0.2.7",
            "scopes": ["read"],
        },
    )
    assert response.status_code == 200
    body = response.content.decode()
    raw = re.search(r"sk_live_[A-Za-z0-9]{40}", body).group(0)
    key = ApiKey.objects.get(account=account)
    assert key.key_hash == api_key_hash(raw)
    assert (key.name, key.mode, key.scopes) == ("crm sync", "live", ["read"])
    assert key.ip_allowlist == ["10.0.0.0/8", "192.0.2.7"]
    # Listed afterwards by its prefix only.
    listing = admin_client.get(reverse("admin:accounts_apikey_changelist")).content.decode()
    assert key.prefix in listing
    assert raw not in listing
    assert (
        raw
        not in admin_client.get(
            reverse("admin:accounts_apikey_change", args=[key.pk])
        ).content.decode()
    )


def test_api_key_add_reports_the_plan_key_cap_as_a_form_error(admin_client):
    account = AccountFactory(plan=plan("growth"))
    ApiKeyFactory.create_batch(2, account=account)
    response = admin_client.post(
        reverse("admin:accounts_apikey_add"), {"account": account.pk, "name": "x", "mode": "test"}
    )
    assert response.status_code == 200
    assert "allows 2 active keys" in response.content.decode()
    assert account.api_keys.count() == 2


def test_revoke_action_revokes_and_the_key_stops_working(admin_client, client_factory):
    api = client_factory()
    assert api.get("/api/v1/credits").status_code == 200
    admin_client.post(
        reverse("admin:accounts_apikey_changelist"),
        {"action": "revoke", ACTION_CHECKBOX_NAME: [api.key.pk]},
    )
    api.key.refresh_from_db()
    assert api.key.revoked_at is not None
    assert api.get("/api/v1/credits").status_code == 401


def test_api_keys_cannot_be_deleted(admin_client):
    key = ApiKeyFactory()
    response = admin_client.post(
        reverse("admin:accounts_apikey_delete", args=[key.pk]), {"post": "yes"}
    )
    assert response.status_code == 403
    assert ApiKey.objects.filter(pk=key.pk).exists()


def test_ledger_is_read_only(admin_client):
    account = AccountFactory()
    entry = credits_add(account=account, amount=3, reason="seed")
    assert admin_client.get(reverse("admin:accounts_ledgerentry_add")).status_code == 403
    change = reverse("admin:accounts_ledgerentry_change", args=[entry.pk])
    assert admin_client.get(change).status_code == 200  # viewable
    assert admin_client.post(change, {"amount": "1000"}).status_code == 403
    delete = reverse("admin:accounts_ledgerentry_delete", args=[entry.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    entry.refresh_from_db()
    assert entry.amount == 3


def test_ledger_filters_by_account_link(admin_client):
    mine, other = AccountFactory(name="Mine"), AccountFactory(name="Other")
    credits_add(account=mine, amount=7, reason="mine-row")
    credits_add(account=other, amount=8, reason="other-row")
    page = admin_client.get(reverse("admin:accounts_account_change", args=[mine.pk]))
    link = re.search(r'href="([^"]+)">All ledger entries', page.content.decode()).group(1)
    body = admin_client.get(link.replace("&amp;", "&")).content.decode()
    assert "mine-row" in body
    assert "other-row" not in body


def test_account_page_links_to_a_key_form_for_that_account(admin_client):
    account = AccountFactory(name="Linked")
    page = admin_client.get(reverse("admin:accounts_account_change", args=[account.pk]))
    link = re.search(r'href="([^"]+)">Create a key for this account', page.content.decode())
    form = admin_client.get(link.group(1)).content.decode()
    assert f'<option value="{account.pk}" selected>' in form


def _updates(ctx, table: str) -> list[str]:
    return [q["sql"] for q in ctx.captured_queries if q["sql"].startswith(f'UPDATE "{table}"')]


def test_saving_an_account_writes_only_the_changed_fields_never_credits(admin_client):
    """A charge committed while the form is open must survive the save."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    account = AccountFactory(name="Race")
    with CaptureQueriesContext(connection) as ctx:
        response = admin_client.post(
            reverse("admin:accounts_account_change", args=[account.pk]),
            {
                "name": "Race renamed",
                "plan": account.plan_id,
                "provider_order": "{}",
                "api_keys-TOTAL_FORMS": "0",
                "api_keys-INITIAL_FORMS": "0",
            },
        )
    assert response.status_code == 302
    (update,) = _updates(ctx, "accounts_account")
    assert '"name"' in update
    assert '"credits"' not in update


def test_saving_a_key_never_writes_revoked_at_or_last_used_at(admin_client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    key = ApiKeyFactory()
    with CaptureQueriesContext(connection) as ctx:
        admin_client.post(
            reverse("admin:accounts_apikey_change", args=[key.pk]),
            {"name": "renamed", "ip_allowlist": "", "scopes": ["read"]},
        )
    (update,) = _updates(ctx, "accounts_apikey")
    assert '"revoked_at"' not in update and '"last_used_at"' not in update
    key.refresh_from_db()
    assert (key.name, key.scopes) == ("renamed", ["read"])


def test_top_up_from_the_account_page(admin_client, admin_user):
    account = AccountFactory()
    page = admin_client.get(reverse("admin:accounts_account_change", args=[account.pk]))
    link = re.search(r'href="([^"]+)">Top up or adjust credits', page.content.decode()).group(1)
    assert 'name="amount"' in admin_client.get(link).content.decode()
    response = admin_client.post(
        link,
        {"apply": "1", "entry_type": "refund", "amount": "25", "reason": "goodwill"},
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:accounts_account_change", args=[account.pk])
    entry = account.ledger.get()
    assert (entry.entry_type, entry.amount, entry.reason, entry.created_by) == (
        "refund",
        25,
        "goodwill",
        admin_user,
    )


def test_support_user_cannot_top_up(client, django_user_model):
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user("sup", password="x-12345-long", is_staff=True)
    user.groups.add(Group.objects.get(name="support"))
    client.force_login(user)
    account = AccountFactory()
    url = reverse("admin:accounts_account_top_up", args=[account.pk])
    response = client.post(url, {"apply": "1", "entry_type": "topup", "amount": "5", "reason": "x"})
    assert response.status_code == 403
    assert not account.ledger.exists()


def test_credit_amounts_beyond_the_form_limit_are_form_errors_not_500s(admin_client):
    """10**19 does not fit the 64-bit balance: it was a DataError, a 500."""
    account = AccountFactory()
    url = reverse("admin:accounts_account_changelist")
    base = {"action": "top_up", "apply": "1", ACTION_CHECKBOX_NAME: [account.pk], "reason": "x"}
    for amount, entry_type in ((str(10**19), "topup"), (str(-(10**19)), "adjustment")):
        response = admin_client.post(url, {**base, "entry_type": entry_type, "amount": amount})
        assert response.status_code == 200
        assert 'name="amount"' in response.content.decode()
    assert not account.ledger.exists()
    add = admin_client.post(
        reverse("admin:accounts_account_add"),
        {"name": "Huge", "plan": "pro", "credits": str(10**19), "mode": "test"},
    )
    assert add.status_code == 200
    assert "less than or equal to" in add.content.decode()
    assert not Account.objects.filter(name="Huge").exists()


def test_search_finds_keys_by_display_prefix(admin_client):
    # Searching is a GET: a whole key typed there would land in access logs and browser
    # history, so keys are found by the prefix the admin shows, never by the secret.
    wanted, other = ApiKeyFactory(), ApiKeyFactory()
    url = reverse("admin:accounts_apikey_changelist")
    listed = admin_client.get(url, {"q": wanted.prefix}).context["cl"].result_list
    assert [k.pk for k in listed] == [wanted.pk]
    assert other.prefix != wanted.prefix


def test_account_page_hides_top_up_and_new_key_links_from_support(client, django_user_model):
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user("sup2", password="x-12345-long", is_staff=True)
    user.groups.add(Group.objects.get(name="support"))
    client.force_login(user)
    account = AccountFactory(name="Quiet")
    body = client.get(reverse("admin:accounts_account_change", args=[account.pk])).content.decode()
    assert "Quiet" in body and "All ledger entries" in body
    assert "Top up or adjust credits" not in body
    assert "Create a key for this account" not in body


def test_accounts_with_their_own_provider_order_can_be_listed(admin_client):
    own = AccountFactory(provider_order={"email": ["sandbox"]})
    default = AccountFactory()
    url = reverse("admin:accounts_account_changelist")
    for value, expected in (("custom", own), ("default", default)):
        listed = admin_client.get(url, {"provider_order": value}).context["cl"].result_list
        assert [a.pk for a in listed] == [expected.pk], value


def test_keys_can_be_listed_by_state(admin_client):
    account = AccountFactory()
    active = ApiKeyFactory(account=account)
    revoked = ApiKeyFactory(account=account, revoked_at="2026-01-01T00:00:00Z")
    url = reverse("admin:accounts_apikey_changelist")
    for value, expected in (("active", active), ("revoked", revoked)):
        listed = admin_client.get(url, {"state": value}).context["cl"].result_list
        assert [k.pk for k in listed] == [expected.pk], value


def test_a_plan_code_is_set_once_its_limits_stay_editable(admin_client):
    pro = plan("pro")
    url = reverse("admin:accounts_plan_change", args=[pro.pk])
    response = admin_client.post(
        url,
        {"code": "renamed", "name": "Pro", "api_access": "on", "per_minute": "300"},
    )
    assert response.status_code == 302
    pro.refresh_from_db()
    assert (pro.code, pro.per_minute) == ("pro", 300)
    add = admin_client.post(
        reverse("admin:accounts_plan_add"), {"code": "enterprise", "name": "Enterprise"}
    )
    assert add.status_code == 302
    assert Plan.objects.filter(code="enterprise").exists()


def test_account_page_links_to_its_rows_in_every_list(admin_client):
    from apps.core.models import IdempotencyRecord
    from apps.enrichment.models import List
    from tests.factories import BulkJobFactory, ContactFactory
    from tests.imports.factories import import_rows
    from tests.webhooks.factories import DeliveryFactory

    def one_of_each(account):
        key = ApiKeyFactory(account=account)
        BulkJobFactory(account=account)
        ContactFactory(account=account)
        List.objects.create(account=account, sandbox=True, name="Targets")
        import_rows(account=account, key=key)  # an import and its export
        DeliveryFactory(endpoint__account=account)
        IdempotencyRecord.objects.create(
            account=account,
            key=f"k-{account.pk}",
            fingerprint="f",
            method="POST",
            path="/api/v1/enrich",
            locked_at="2026-01-01T00:00:00Z",
            expires_at="2026-01-02T00:00:00Z",
        )

    mine, other = AccountFactory(), AccountFactory()
    one_of_each(mine)
    one_of_each(other)
    page = admin_client.get(reverse("admin:accounts_account_change", args=[mine.pk]))
    links = re.findall(r'href="([^"]+\?account__id__exact=[^"]+)"', page.content.decode())
    assert len(links) == 11  # the ledger and the ten lists
    for link in links:
        response = admin_client.get(link.replace("&amp;", "&"))
        assert response.status_code == 200, link
        if "ledgerentry" in link:
            continue  # no ledger rows here
        listed = response.context["cl"].result_list
        assert listed and {row.account_id for row in listed} == {mine.pk}, link
