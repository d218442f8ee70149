"""Database helpers for the hot paths, where the ORM's per-call compiling dominates."""

from __future__ import annotations

import datetime
import re
import uuid
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

from django.conf import settings
from django.db import (
    DEFAULT_DB_ALIAS,
    IntegrityError,
    InterfaceError,
    OperationalError,
    connections,
    models,
)
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper
from django.db.models import Field, Model


def _cast_type(field: Field, db: BaseDatabaseWrapper) -> str:
    """The field's type for a cast, without a length: ``'…'::varchar(100)`` would cut a
    longer value silently, where assigning plain ``varchar`` to the column refuses it."""
    return re.sub(r"^(varchar|char)\(\d+\)$", "varchar", field.cast_db_type(db))


# Django field classes whose ``get_db_prep_save`` depends on the value's type and the
# backend alone, never on field options or on the value itself: a ``str`` through a
# ``CharField`` comes back as the very same object. (Not so for an IP address field, which
# normalises the text, nor for a naive datetime, which a ``DateTimeField`` puts in the
# default time zone: ``_value_getter`` lets only aware ones through. Every class not listed
# keeps the full call.)
_PLAIN_FIELDS: frozenset[type[Field]] = frozenset(
    {
        models.CharField,
        models.TextField,
        models.EmailField,
        models.URLField,
        models.SlugField,
        models.BooleanField,
        models.IntegerField,
        models.SmallIntegerField,
        models.BigIntegerField,
        models.PositiveIntegerField,
        models.PositiveSmallIntegerField,
        models.PositiveBigIntegerField,
        models.AutoField,
        models.BigAutoField,
        models.SmallAutoField,
        models.UUIDField,
    }
)
# One value of each Python type whose conversion ``_identity_types`` probes.
_SAMPLES: tuple[Any, ...] = (None, "sample", 7, True, uuid.UUID(int=7))
_AWARE = datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)

# ``(obj, db)`` → the value ``obj.save()`` would send to the database for one field.
ValueGetter = Callable[[Model, BaseDatabaseWrapper], Any]


def _identity_types(field: Field, db: BaseDatabaseWrapper) -> frozenset[type]:
    """The value types that this field's ``get_db_prep_save`` returns as they are, on ``db``.

    Only for the classes in ``_PLAIN_FIELDS`` (a foreign key: when its target field is one),
    and probed on the backend rather than assumed: SQLite turns UUIDs into text, so there a
    ``UUIDField`` keeps the full call for them, as does every value of another type.
    """
    target = (
        field.target_field if type(field) in (models.ForeignKey, models.OneToOneField) else field
    )
    if type(target) not in _PLAIN_FIELDS:
        return frozenset()
    kept = set()
    for sample in _SAMPLES:
        try:
            prepared = field.get_db_prep_save(sample, db)
        except Exception:  # noqa: S112 - a type the field refuses is simply not kept
            continue
        if prepared is sample:
            kept.add(type(sample))
    return frozenset(kept)


def _value_getter(field: Field, db: BaseDatabaseWrapper) -> ValueGetter:
    """``field.get_db_prep_save(field.pre_save(obj, True), db)``, without the calls that are
    the identity (about 4 % of a single-enrich request's instructions, bench/intake.sh)."""
    attname = field.attname
    saves_itself = type(field).pre_save is not Field.pre_save  # auto_now, files…
    identity = _identity_types(field, db)
    # created_at and updated_at (auto_now: always aware) on PostgreSQL; a naive datetime
    # still takes the call, which puts it in the default time zone.
    aware_kept = (
        type(field) is models.DateTimeField and field.get_db_prep_save(_AWARE, db) is _AWARE
    )
    if aware_kept:
        identity |= {type(None)}

    def value(obj: Model, db: BaseDatabaseWrapper) -> Any:
        raw = field.pre_save(obj, True) if saves_itself else getattr(obj, attname)
        if type(raw) in identity or (
            aware_kept and type(raw) is datetime.datetime and raw.utcoffset() is not None
        ):
            return raw
        return field.get_db_prep_save(raw, db)

    return value


@cache
def _insert_plan(model: type[Model], where: str | None) -> tuple[str, tuple[ValueGetter, ...]]:
    """The INSERT's SQL and one value getter per column, built once per model and condition
    for the default database."""
    db = connections[DEFAULT_DB_ALIAS]
    fields = tuple(model._meta.concrete_fields)
    getters = tuple(_value_getter(f, db) for f in fields)
    quote = db.ops.quote_name
    # Identifiers come from model metadata; every value is a bound parameter.
    columns = ", ".join(quote(f.column) for f in fields)
    head = f"INSERT INTO {quote(model._meta.db_table)} ({columns})"
    if where is None:
        return f"{head} VALUES ({', '.join(['%s'] * len(fields))})", getters
    # INSERT … SELECT gives its parameters no column types: PostgreSQL needs them cast (a NULL
    # would be text otherwise). SQLite needs no cast, and its CAST would mangle datetimes.
    if db.vendor == "postgresql":
        values = ", ".join(f"%s::{_cast_type(f, db)}" for f in fields)
    else:
        values = ", ".join(["%s"] * len(fields))
    return f"{head} SELECT {values} WHERE {where}", getters


def _cursor(db: BaseDatabaseWrapper) -> CursorWrapper:
    """A cursor that sends values as parameters (PostgreSQL's extended protocol).

    Django's psycopg 3 cursors bind on the client, quoting each value into the SQL text; for
    a 24-column INSERT that quoting cost more than sending the statement. Wrapped like any
    Django cursor, so errors are translated and the query is counted and logged.
    """
    if db.vendor != "postgresql":
        return db.cursor()
    from django.db.backends.postgresql.base import ServerBindingCursor

    # As BaseDatabaseWrapper.cursor() does, minus its health check (see insert_one).
    db.validate_thread_sharing()
    db.ensure_connection()
    raw = ServerBindingCursor(db.connection)
    return db.make_debug_cursor(raw) if db.queries_logged else db.make_cursor(raw)


def _execute(db: BaseDatabaseWrapper, sql: str, params: list[Any]) -> bool:
    with _cursor(db) as cursor:
        if db.vendor != "postgresql":
            cursor.execute(sql, params)
            return cursor.rowcount == 1
        # A prepared statement on this connection once the INSERT has run
        # DATABASE_PREPARE_THRESHOLD times: PostgreSQL then no longer parses and plans it,
        # which was half of its CPU for the single-enrich request. Only around this
        # statement: with a threshold set, psycopg would keep the text of every other query
        # the connection runs in its LRU of candidates (a bulk INSERT's is tens of kB), and
        # those could push this one out before it was ever prepared. Django opens
        # connections with preparing off (None), for poolers that cannot keep them.
        psycopg_connection = db.connection
        previous = psycopg_connection.prepare_threshold
        psycopg_connection.prepare_threshold = settings.DATABASE_PREPARE_THRESHOLD
        try:
            cursor.execute(sql, params)
        finally:
            psycopg_connection.prepare_threshold = previous
        return cursor.rowcount == 1


def _exists(obj: Model) -> bool:
    return type(obj)._default_manager.filter(pk=obj.pk).exists()


def insert_one(obj: Model, *, where: str | None = None, params: Sequence[Any] = ()) -> bool:
    """``obj.save(force_insert=True)`` without compiling the INSERT on every call.

    With ``where`` (an SQL condition, constant per call site, whose values are ``params``) the
    row is written only if the condition holds when the INSERT runs: one statement checks and
    writes, one round trip (the check takes no lock, so a change committing during the
    statement itself may not be seen). Returns whether the row was written.

    The SQL is built once per model (and condition) from its own field list; values go
    through each field's ``pre_save`` (``auto_now_add``) and ``get_db_prep_save`` (JSON,
    UUIDs) as the ORM does. For models whose primary key has a Python default (UUIDs), no
    save signals and no database defaults: the single-contact intake path.

    Django's per-request connection health check (``CONN_HEALTH_CHECKS``: a ``SELECT 1``
    round trip, a tenth of the intake request) is not run for this statement. Instead, outside
    a transaction, a connection found broken by the INSERT itself is replaced and the INSERT
    sent once more (inside one, the transaction is lost anyway and the error is raised).
    That is safe because the primary key is set in Python: if the first attempt did commit
    before the connection died, the second is a duplicate key (or, with ``where`` no longer
    true, finds the row), which means written.

    Internals relied on, each guarded by tests/core/test_db_internals.py (which also fails on
    a Django or psycopg release it was not checked against, saying what to re-check): the
    database wrapper's cursor steps (``validate_thread_sharing``, ``ensure_connection``,
    ``make_cursor``/``make_debug_cursor``, ``queries_logged``), Django's
    ``ServerBindingCursor``, psycopg's ``Connection.prepare_threshold`` and ``Model._state``.
    """
    sql, getters = _insert_plan(type(obj), where)
    # The wrapper itself, not the ``connection`` proxy: each field reaches for it several
    # times, and every proxy access is a thread-local lookup.
    db = connections[DEFAULT_DB_ALIAS]
    values = [*(value(obj, db) for value in getters), *params]
    # Inside a transaction a broken connection has lost it: nothing to retry then.
    retry = not db.in_atomic_block
    try:
        written = _execute(db, sql, values)
    except (OperationalError, InterfaceError):
        if not retry or db.is_usable():
            raise  # the statement failed, not the connection
        db.close()
        try:
            written = _execute(db, sql, values)
        except IntegrityError:
            if not _exists(obj):
                raise
            written = True  # the first attempt committed before its connection died
        else:
            # With ``where``, a first attempt that committed is not a duplicate key on the
            # retry if the condition no longer holds: look for the row itself.
            written = written or _exists(obj)
    if written:
        obj._state.adding = False
        obj._state.db = db.alias
    return written


# --- Names and parameters for statements built once (raw SQL on the hot paths) ----------------


def sql_table(model: type[Model]) -> str:
    """The model's table, quoted for the default database."""
    return connections[DEFAULT_DB_ALIAS].ops.quote_name(model._meta.db_table)


def sql_column(model: type[Model], name: str) -> str:
    """A field's column (``"pk"`` for the primary key's), quoted for the default database."""
    field = model._meta.pk if name == "pk" else model._meta.get_field(name)
    return connections[DEFAULT_DB_ALIAS].ops.quote_name(field.column)


def sql_columns(model: type[Model], *, prefix: str = "") -> str:
    """Every concrete column of the model, quoted, each after ``prefix`` (a table alias and
    its dot): what a raw statement selects or returns for ``Model.objects.raw``."""
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    return ", ".join(f"{prefix}{quote(f.column)}" for f in model._meta.concrete_fields)


def pk_param(model: type[Model], value: Any) -> Any:
    """A primary key value as the default database takes it as a parameter (SQLite keeps
    UUIDs as hex text, PostgreSQL as uuid), as the ORM would send it."""
    return model._meta.pk.get_db_prep_value(value, connections[DEFAULT_DB_ALIAS])
