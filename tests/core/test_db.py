"""insert_one writes exactly what save(force_insert=True) would."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.core.db import insert_one
from apps.enrichment.models import Contact
from tests.factories import AccountFactory

pytestmark = pytest.mark.django_db


def test_insert_one_matches_the_orm():
    account = AccountFactory()
    fields = {
        "account": account,
        "first_name": "José",
        "last_name": "Núñez",
        "enrichment_type": ["email", "phone"],
        "phone_country_codes": ["FR"],
        "custom": {"crm": {"id": 7, "tags": ["a", None]}},
        "max_credits": 3,
    }
    fast, orm = Contact(**fields), Contact(**fields)
    with CaptureQueriesContext(connection) as queries:
        insert_one(fast)
    assert len(queries) == 1
    orm.save(force_insert=True)

    assert fast._state.adding is False
    assert fast.created_at is not None  # auto_now_add ran
    stored, expected = Contact.objects.get(pk=fast.pk), Contact.objects.get(pk=orm.pk)
    for field in Contact._meta.concrete_fields:
        if field.name in ("id", "created_at", "updated_at"):
            continue
        assert getattr(stored, field.attname) == getattr(expected, field.attname), field.name
    assert stored.created_at == fast.created_at
