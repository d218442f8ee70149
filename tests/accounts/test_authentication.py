"""API-key authentication and authorisation rules (SPEC §2)."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import Account, ApiKey
from apps.accounts.services import api_key_create, api_key_hash
from apps.core.errors import Conflict
from tests.conftest import make_client
from tests.factories import AccountFactory, plan

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
