"""Reads for accounts."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from django.db import connection
from django.db.models import F, Model, Sum
from django.db.models.expressions import Col
from django.db.models.functions import Coalesce

from . import ratelimit
from .models import Account, ApiKey, LedgerEntry, Plan
from .services import api_key_hash


def _column_converter(column: Col) -> Callable[[Any], Any] | None:
    """What the ORM's compiler applies to this column: the backend's converters (SQLite
    returns datetimes naive and UUIDs as hex strings) then the field's own (JSON)."""
    functions = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
    if not functions:
        return None

    def convert(value: Any) -> Any:
        for function in functions:
            value = function(value, column, connection)
        return value

    return convert


@cache
def _auth_query() -> tuple[str, list[tuple[type[Model], list[str], list[Callable | None], slice]]]:
    """SQL for key + account + plan, built once from the models' own field lists.

    Authentication runs on every request; compiling the ORM's three-table select_related
    costs more than the query itself, so the SQL is built once per process.
    """
    columns: list[str] = []
    parts = []
    for model, alias in ((ApiKey, "k"), (Account, "a"), (Plan, "p")):
        fields = model._meta.concrete_fields
        start = len(columns)
        columns += [f'{alias}."{f.column}"' for f in fields]
        converters = [_column_converter(f.get_col(model._meta.db_table)) for f in fields]
        parts.append((model, [f.attname for f in fields], converters, slice(start, len(columns))))
    # Identifiers come from model metadata; the only value is a bound parameter.
    sql = (
        f"SELECT {', '.join(columns)} FROM {ApiKey._meta.db_table} k "  # noqa: S608
        f"JOIN {Account._meta.db_table} a ON a.id = k.account_id "
        f"JOIN {Plan._meta.db_table} p ON p.id = a.plan_id "
        "WHERE k.key_hash = %s"
    )
    return sql, parts


def api_key_by_raw(raw_key: str) -> ApiKey | None:
    """The key with its account and plan (one query), or None."""
    sql, parts = _auth_query()
    with connection.cursor() as cursor:
        cursor.execute(sql, [api_key_hash(raw_key)])
        row = cursor.fetchone()
    if row is None:
        return None
    objects: list[Any] = []
    for model, names, converters, span in parts:
        values = [
            conv(v) if conv is not None else v
            for conv, v in zip(converters, row[span], strict=True)
        ]
        objects.append(model.from_db(connection.alias, names, values))
    key, account, plan = objects
    account.plan = plan
    key.account = account
    return key


def ledger_sum(*, account: Account) -> int:
    return LedgerEntry.objects.filter(account=account).aggregate(s=Sum("amount"))["s"] or 0


def ledger_mismatches() -> list[tuple[Any, int, int]]:
    """Accounts whose balance differs from their ledger sum: (id, balance, ledger sum).

    Always empty while every change goes through the services; an audit for ops and tests.
    """
    rows = Account.objects.annotate(total=Coalesce(Sum("ledger__amount"), 0)).exclude(
        credits=F("total")
    )
    return [(a.pk, a.credits, a.total) for a in rows]


def balance(*, account: Account) -> int:
    """The available balance now (held credits count as spent), read afresh."""
    return Account.objects.values_list("credits", flat=True).get(pk=account.pk)


def credits_data(*, account: Account) -> dict[str, Any]:
    """``GET /credits``: balance, plan, requests used today and the daily limit."""
    return {
        "credits": balance(account=account),
        "plan": account.plan.code,
        "daily_requests_used": ratelimit.daily_requests_used(account=account),
        "daily_limit": account.plan.daily_requests,
    }
