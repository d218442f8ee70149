"""API-key authentication and authorisation rules (SPEC §2)."""

from __future__ import annotations

import importlib
import json
import re

import pytest
from django.apps import apps as django_apps
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import Account, ApiKey, Plan
from apps.accounts.services import api_key_create, api_key_hash
from apps.core.errors import Conflict
from tests.factories import AccountFactory, plan
from tests.support.api import make_client

pytestmark = pytest.mark.django_db


def test_bearer_key_authenticates(api):
    response = api.get("/api/v1/credits")
    assert response.status_code == 200
    assert response.json()["plan"] == "pro"


def test_x_api_key_header_authenticates(api):
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=api.key.raw_key)
    assert client.get("/api/v1/credits").status_code == 200


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Bearer sk_test_short",
        "Bearer pk_test_" + "a" * 40,
        "Bearer sk_test_" + "a" * 40,  # well-formed but unknown
    ],
)
def test_missing_malformed_or_unknown_key_is_401(db, header):
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/credits")
    assert response.status_code == 401
    body = response.json()
    assert set(body) == {"error", "code", "details", "request_id"}
    assert body["request_id"].startswith("req_")


def test_revoked_key_is_401(api):
    ApiKey.objects.filter(pk=api.key.pk).update(revoked_at=timezone.now())
    response = api.get("/api/v1/credits")
    assert response.status_code == 401
    assert response.json()["code"] == "api_key_revoked"


@pytest.mark.parametrize("plan_code", ["free", "starter"])
def test_plan_without_api_access_is_403(db, plan_code):
    client = make_client(plan_code=plan_code)
    response = client.get("/api/v1/credits")
    assert response.status_code == 403
    assert response.json()["code"] == "plan_without_api_access"


def test_ip_allowlist_with_cidr(db):
    inside = make_client(ip_allowlist=["10.0.0.0/8", "127.0.0.0/30"])
    assert inside.get("/api/v1/credits", REMOTE_ADDR="127.0.0.1").status_code == 200
    outside = make_client(ip_allowlist=["10.0.0.0/8"])
    response = outside.get("/api/v1/credits", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 403
    assert response.json()["code"] == "ip_not_allowed"


def test_key_without_scope_is_403(db):
    client = make_client(scopes=["read"])
    response = client.post("/api/v1/enrich", {"first_name": "A"}, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"
    assert client.get("/api/v1/credits").status_code == 200


def test_only_the_hash_is_stored(db):
    account = AccountFactory()
    created = api_key_create(account=account, mode="live")
    assert created.raw_key.startswith("sk_live_")
    assert len(created.raw_key) - len("sk_live_") >= 32
    row = ApiKey.objects.get(pk=created.api_key.pk)
    assert row.key_hash == api_key_hash(created.raw_key)
    assert created.raw_key not in json.dumps(
        {f.name: str(getattr(row, f.name)) for f in ApiKey._meta.fields}
    )


def test_max_active_keys_per_plan(db):
    account = AccountFactory(plan=plan("growth"))
    api_key_create(account=account, mode="test")
    second = api_key_create(account=account, mode="live")
    with pytest.raises(Conflict):
        api_key_create(account=account, mode="live")
    second.api_key.revoked_at = timezone.now()
    second.api_key.save()
    assert api_key_create(account=account, mode="live").raw_key


def test_last_used_is_recorded(api):
    api.get("/api/v1/credits")
    api.key.refresh_from_db()
    assert api.key.last_used_at is not None


def test_create_account_command_prints_json_contract(db, capsys):
    plan("growth")
    call_command(
        "create_account",
        "--name",
        "Acme",
        "--plan",
        "growth",
        "--credits",
        "250",
        "--mode",
        "test",
        "--consent",
    )
    last = capsys.readouterr().out.strip().splitlines()[-1]
    out = json.loads(last)
    assert set(out) == {"account_id", "api_key", "webhook_secret"}
    assert out["api_key"].startswith("sk_test_")
    assert out["webhook_secret"].startswith("whsec_")
    account = Account.objects.get(pk=out["account_id"])
    assert account.credits == 250
    assert account.personal_email_consent is True
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {out['api_key']}")
    assert client.get("/api/v1/credits").json()["credits"] == 250


def test_ipv4_client_seen_through_a_dual_stack_socket_matches_its_ipv4_entry(db):
    """gunicorn bound to [::] reports an IPv4 client as ::ffff:a.b.c.d."""
    client = make_client(ip_allowlist=["203.0.113.0/24"])
    assert client.get("/api/v1/credits", REMOTE_ADDR="::ffff:203.0.113.7").status_code == 200
    refused = client.get("/api/v1/credits", REMOTE_ADDR="::ffff:198.51.100.7")
    assert refused.status_code == 403
    ipv6 = make_client(ip_allowlist=["2001:db8::/32", "not an address"])
    assert ipv6.get("/api/v1/credits", REMOTE_ADDR="2001:db8::1").status_code == 200
    assert ipv6.get("/api/v1/credits", REMOTE_ADDR="2001:db9::1").status_code == 403


def test_forwarded_for_is_ignored_unless_trusted(db, settings):
    client = make_client(ip_allowlist=["203.0.113.7"])
    spoofed = client.get(
        "/api/v1/credits", REMOTE_ADDR="198.51.100.1", HTTP_X_FORWARDED_FOR="203.0.113.7"
    )
    assert spoofed.status_code == 403
    settings.TRUST_X_FORWARDED_FOR = True
    proxied = client.get(
        "/api/v1/credits", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.7"
    )
    assert proxied.status_code == 200


def test_behind_a_proxy_the_address_it_appended_is_the_one_checked(db, settings):
    """Entries before the proxy's own are whatever the client sent: never trusted."""
    settings.TRUST_X_FORWARDED_FOR = True
    client = make_client(ip_allowlist=["203.0.113.7"])
    forged = client.get(
        "/api/v1/credits",
        REMOTE_ADDR="10.0.0.2",
        HTTP_X_FORWARDED_FOR="203.0.113.7, 198.51.100.1",
    )
    assert forged.status_code == 403
    assert forged.json()["code"] == "ip_not_allowed"
    real = client.get(
        "/api/v1/credits", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="192.0.2.9, 203.0.113.7"
    )
    assert real.status_code == 200


def test_key_in_either_header_and_any_bearer_case(api):
    for headers in (
        {"HTTP_AUTHORIZATION": f"bearer {api.key.raw_key}"},
        {"HTTP_AUTHORIZATION": f"Bearer   {api.key.raw_key}  "},
        {"HTTP_X_API_KEY": api.key.raw_key},
    ):
        assert APIClient().get("/api/v1/credits", **headers).status_code == 200, headers
    revoked = make_client(account=api.account)
    ApiKey.objects.filter(pk=revoked.key.pk).update(revoked_at=timezone.now())
    response = APIClient().get("/api/v1/credits", HTTP_X_API_KEY=revoked.key.raw_key)
    assert response.status_code == 401
    assert response.json()["code"] == "api_key_revoked"
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("plan_code", ["free", "starter"])
def test_plan_without_api_access_is_403_on_every_endpoint(db, plan_code):
    client = make_client(plan_code=plan_code)
    for response in (
        client.post("/api/v1/enrich", {}, format="json"),
        client.post("/api/v1/enrich/bulk", {}, format="json"),
        client.get("/api/v1/contacts"),
        client.get("/api/v1/contacts/00000000-0000-0000-0000-000000000000"),
        client.get("/api/v1/bulk/00000000-0000-0000-0000-000000000000"),
    ):
        assert response.status_code == 403
        assert response.json()["code"] == "plan_without_api_access"


def test_seed_migration_writes_the_spec_plan_table(db):
    """The data migration's own function, run against an emptied table."""
    seed_module = importlib.import_module("apps.accounts.migrations.0003_seed_plans")
    Account.objects.all().delete()
    Plan.objects.all().delete()
    seed_module.seed(django_apps, None)
    rows = {
        p.code: (p.api_access, p.daily_requests, p.per_minute, p.max_active_keys, p.bulk_max)
        for p in Plan.objects.all()
    }
    assert rows == {
        "free": (False, None, None, None, None),
        "starter": (False, None, None, None, None),
        "growth": (True, 500, 100, 2, 50),
        "pro": (True, 1000, 200, 5, 100),
    }


@pytest.mark.parametrize("mode", ["live", "test"])
def test_create_account_last_line_is_exactly_the_contract(db, capsys, mode):
    plan("pro")
    call_command(
        "create_account", "--name", "Ops", "--plan", "pro", "--credits", "0", "--mode", mode
    )
    last = capsys.readouterr().out.rstrip("\n").splitlines()[-1]
    assert re.fullmatch(
        r'\{"account_id": "[0-9a-f-]{36}", "api_key": "sk_'
        + mode
        + r'_[A-Za-z0-9]{32,}", "webhook_secret": "whsec_[A-Za-z0-9+/=]+"\}',
        last,
    ), last
    out = json.loads(last)
    key = ApiKey.objects.get(account_id=out["account_id"])
    assert key.mode == mode
    assert key.key_hash == api_key_hash(out["api_key"])
    assert Account.objects.get(pk=out["account_id"]).personal_email_consent is False


@pytest.mark.parametrize(
    "args",
    [
        ["--name", "X", "--plan", "platinum", "--credits", "1"],
        ["--name", "X", "--plan", "pro", "--credits", "-5"],
    ],
)
def test_create_account_refuses_bad_arguments(db, args):
    plan("pro")
    with pytest.raises(CommandError):
        call_command("create_account", *args)
    assert not Account.objects.filter(name="X").exists()


def test_x_api_key_is_used_beside_another_authorization_scheme(api):
    gateway = APIClient()
    gateway.credentials(
        HTTP_AUTHORIZATION="Basic dXNlcjpwYXNz", HTTP_X_API_KEY=f" {api.key.raw_key} "
    )
    assert gateway.get("/api/v1/credits").status_code == 200
    both = APIClient()
    both.credentials(
        HTTP_AUTHORIZATION=f"Bearer {api.key.raw_key}", HTTP_X_API_KEY="sk_test_" + "b" * 40
    )
    assert both.get("/api/v1/credits").status_code == 200  # Bearer wins
    empty_bearer = APIClient()
    empty_bearer.credentials(HTTP_AUTHORIZATION="Bearer ", HTTP_X_API_KEY=api.key.raw_key)
    assert empty_bearer.get("/api/v1/credits").status_code == 200
