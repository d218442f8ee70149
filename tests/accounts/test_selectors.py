"""Account reads: the hand-built authentication query must load what the ORM loads."""

from __future__ import annotations

import pytest
from django.utils import timezone

from apps.accounts.models import Account, ApiKey, LedgerEntry
from apps.accounts.selectors import api_key_by_raw, ledger_mismatches
from apps.accounts.services import credits_add
from tests.factories import AccountFactory, ApiKeyFactory

pytestmark = pytest.mark.django_db


def _values(obj) -> dict:
    return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}


def test_api_key_by_raw_matches_the_orm_field_for_field():
    account = AccountFactory(default_phone_country_codes=["US", "GB"])
    key = ApiKeyFactory(account=account, ip_allowlist=["10.0.0.0/8"], scopes=["read"])
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now())
    loaded = api_key_by_raw(key.raw_key)
    orm = ApiKey.objects.select_related("account__plan").get(pk=key.pk)
    assert _values(loaded) == _values(orm)
    assert _values(loaded.account) == _values(orm.account)
    assert _values(loaded.account.plan) == _values(orm.account.plan)
    assert loaded.last_used_at.tzinfo is not None
    assert api_key_by_raw("sk_test_" + "x" * 40) is None


def test_ledger_mismatches_finds_a_balance_changed_outside_the_ledger():
    account = AccountFactory()
    credits_add(account=account, amount=10)
    assert ledger_mismatches() == []
    Account.objects.filter(pk=account.pk).update(credits=11)  # what nothing may ever do
    assert ledger_mismatches() == [(account.pk, 11, 10)]
    assert LedgerEntry.objects.filter(account=account).count() == 1
