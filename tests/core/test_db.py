"""insert_one writes exactly what save(force_insert=True) would."""

from __future__ import annotations

import datetime
import warnings

import psycopg
import pytest
from django.db import DataError, InterfaceError, OperationalError, connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.safestring import SafeString
from psycopg.types.json import Jsonb

from apps.core.db import _insert_plan, insert_one
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


def _comparable(value):
    return ("jsonb", value.obj) if isinstance(value, Jsonb) else value


@override_settings(TIME_ZONE="America/New_York")
def test_insert_one_values_are_those_the_orm_sends(monkeypatch):
    """Each column's value is what ``get_db_prep_save(pre_save(…))`` gives, including for
    values the fast path must hand to the field: an int for a CharField, a bool for an
    integer, a ``str`` subclass, a naive datetime (put in the default time zone), JSON,
    NULLs."""
    now = timezone.now()
    monkeypatch.setattr(timezone, "now", lambda: now)
    naive = datetime.datetime(2024, 6, 1, 12)
    contact = Contact(
        account=AccountFactory(),
        first_name=SafeString("José"),
        last_name="Núñez",
        domain=7,
        max_credits=True,
        custom={"a": [1, None]},
        webhook_url="",
        result=None,
        lease_expires_at=naive,
    )
    _, getters = _insert_plan(Contact, None)
    fields = Contact._meta.concrete_fields
    assert len(getters) == len(fields)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "received a naive datetime"
        for field, getter in zip(fields, getters, strict=True):
            expected = field.get_db_prep_save(field.pre_save(contact, True), connection)
            got = getter(contact, connection)
            assert _comparable(got) == _comparable(expected), field.name
            assert type(got) is type(expected), field.name
        assert insert_one(contact)
    stored = Contact.objects.get(pk=contact.pk)
    assert (stored.domain, stored.max_credits, stored.created_at) == ("7", 1, now)
    assert stored.lease_expires_at == timezone.make_aware(naive)  # 16:00 UTC, not 12:00


def test_the_intake_insert_becomes_a_prepared_statement():
    """After DATABASE_PREPARE_THRESHOLD runs the INSERT is prepared on the connection, so
    PostgreSQL no longer parses and plans it (half its cost, docs/benchmarks.md)."""
    account = AccountFactory()
    for _ in range(6):
        insert_one(Contact(account=account, first_name="A", last_name="B"))
    # Only around that statement: the connection's other queries are not even counted.
    assert connection.connection.prepare_threshold is None
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        statements = [row[0] for row in cursor.fetchall()]
    assert any(s.startswith('INSERT INTO "enrichment_contact"') for s in statements), statements


def test_insert_one_where_writes_only_when_the_condition_holds():
    account = AccountFactory()
    refused = Contact(account=account, first_name="A", last_name="B")
    assert insert_one(refused, where="1 = %s", params=[2]) is False
    assert refused._state.adding is True
    assert not Contact.objects.filter(pk=refused.pk).exists()

    written = Contact(account=account, first_name="A", last_name="B", custom=None)
    with CaptureQueriesContext(connection) as queries:
        assert insert_one(written, where="1 = %s", params=[1]) is True
    assert len(queries) == 1  # checked and written in one statement, counted like any query
    stored = Contact.objects.get(pk=written.pk)
    assert (stored.first_name, stored.custom, stored.status) == ("A", None, Contact.PENDING)


def _kill_connection() -> None:
    """Terminate this test's database connection from another one, as a restarted or
    failed-over server would: the next statement on it fails."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    with psycopg.connect(**connection.get_connection_params()) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])


@pytest.mark.django_db(transaction=True)
def test_insert_one_replaces_a_broken_connection_and_writes_once():
    account = AccountFactory()
    _kill_connection()
    contact = Contact(account=account, first_name="A", last_name="B")
    assert insert_one(contact) is True
    assert Contact.objects.filter(pk=contact.pk).count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("where", "params"),
    [
        # The retry is a duplicate key: the first attempt had committed.
        (None, ()),
        # The condition turned false before the retry (a key revoked in that instant): no
        # duplicate key then, so the retry looks for the row itself.
        ("1 = %s", [2]),
    ],
)
def test_insert_one_retry_after_a_commit_counts_it_as_written(where, params):
    """The connection dies after the INSERT committed: the retry reports it written, once."""
    account = AccountFactory()
    contact = Contact(account=account, first_name="A", last_name="B")
    Contact(pk=contact.pk, account=account, first_name="A", last_name="B").save()
    _kill_connection()
    assert insert_one(contact, where=where, params=params) is True
    assert Contact.objects.filter(pk=contact.pk).count() == 1


@pytest.mark.django_db(transaction=True)
def test_insert_one_in_a_transaction_does_not_retry():
    """Inside atomic() the broken connection lost the transaction: the error is raised."""
    account = AccountFactory()
    with pytest.raises((OperationalError, InterfaceError)), transaction.atomic():
        _kill_connection()
        insert_one(Contact(account=account, first_name="A", last_name="B"))


def test_insert_one_where_refuses_an_over_long_value_instead_of_cutting_it():
    """The casts INSERT … SELECT needs carry no length: the column's own limit still holds."""
    contact = Contact(account=AccountFactory(), first_name="A" * 101, last_name="B")
    with pytest.raises(DataError), transaction.atomic():
        insert_one(contact, where="1 = %s", params=[1])
    assert not Contact.objects.filter(pk=contact.pk).exists()
