"""What ``apps.core.db.insert_one`` relies on beyond Django's and psycopg's public API.

insert_one is the single-enrich intake's INSERT without the ORM's per-call compiling (a
third of the request's CPU, docs/benchmarks.md). It uses a few internals; each test here
names one and says what to do when an upgrade changes it. The behaviour itself (the same
row as ``save(force_insert=True)``) is tests/core/test_db.py.
"""

from __future__ import annotations

import django
import psycopg
import pytest
from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.test.utils import CaptureQueriesContext

from apps.core import db as fast_db
from apps.enrichment.models import Contact
from tests.factories import AccountFactory

UPGRADE = (
    "apps.core.db.insert_one relies on {what}, which this version no longer has as it was. "
    "Check the internals listed in this file against the new release, adapt insert_one (or "
    "fall back to Model.save(force_insert=True) and drop the fast path), and re-run "
    "tests/core/test_db.py and bench/intake.sh."
)

# The releases insert_one was checked against (major, minor). A new one fails here first, on
# purpose: re-read the internals below and tests/core/test_db.py, then add it.
VERIFIED_DJANGO = {(5, 2)}
VERIFIED_PSYCOPG = {(3, 2), (3, 3)}


def test_the_installed_django_and_psycopg_were_verified():
    assert django.VERSION[:2] in VERIFIED_DJANGO, UPGRADE.format(what=f"Django {django.VERSION}")
    version = tuple(int(part) for part in psycopg.__version__.split(".")[:2])
    assert version in VERIFIED_PSYCOPG, UPGRADE.format(what=f"psycopg {psycopg.__version__}")


@pytest.mark.parametrize(
    "name",
    ["validate_thread_sharing", "ensure_connection", "make_cursor", "make_debug_cursor"],
)
def test_the_database_wrapper_still_builds_cursors_the_same_way(name):
    # _cursor() is BaseDatabaseWrapper.cursor() minus its health check: these four steps.
    assert callable(getattr(BaseDatabaseWrapper, name, None)), UPGRADE.format(
        what=f"BaseDatabaseWrapper.{name}()"
    )
    assert isinstance(BaseDatabaseWrapper.queries_logged, property), UPGRADE.format(
        what="BaseDatabaseWrapper.queries_logged"
    )


def test_the_server_binding_cursor_is_still_a_psycopg_cursor():
    from django.db.backends.postgresql import base

    cursor_class = getattr(base, "ServerBindingCursor", None)
    assert cursor_class is not None and issubclass(cursor_class, psycopg.Cursor), UPGRADE.format(
        what="django.db.backends.postgresql.base.ServerBindingCursor"
    )


@pytest.mark.django_db
def test_prepare_threshold_is_still_a_connection_setting():
    connection.ensure_connection()
    raw = connection.connection
    assert hasattr(raw, "prepare_threshold"), UPGRADE.format(
        what="psycopg.Connection.prepare_threshold"
    )
    previous = raw.prepare_threshold
    raw.prepare_threshold = 0
    try:
        assert raw.prepare_threshold == 0
    finally:
        raw.prepare_threshold = previous


@pytest.mark.django_db
def test_the_insert_is_counted_logged_and_prepared_as_django_would(settings):
    """What the internals are for: the statement is one query that Django's own tooling sees
    (so the query-count tests and DEBUG logging cover it), and it becomes a prepared
    statement on the connection after DATABASE_PREPARE_THRESHOLD runs."""
    settings.DATABASE_PREPARE_THRESHOLD = 1
    account = AccountFactory()
    with CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            assert fast_db.insert_one(Contact(account=account, first_name="A", last_name="B"))
    assert len(queries) == 3
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s",
            ["INSERT INTO%enrichment_contact%"],
        )
        (prepared,) = cursor.fetchone()
    assert prepared >= 1, UPGRADE.format(what="psycopg's prepared statements (prepare_threshold)")
    # Only around that statement: the connection's own setting is left as Django opened it.
    assert connection.connection.prepare_threshold is None


@pytest.mark.django_db
def test_a_written_row_is_marked_saved_as_save_marks_it():
    # Model._state (documented in "Model instance reference"): adding and db.
    contact = Contact(account=AccountFactory(), first_name="A", last_name="B")
    assert fast_db.insert_one(contact)
    assert contact._state.adding is False and contact._state.db == "default"
