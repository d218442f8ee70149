"""Writes for accounts: creating tenants and keys, and every change of a balance (the ledger)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import string
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import F, Sum
from django.utils import timezone

from apps.core.db import pk_param, sql_column, sql_table
from apps.core.errors import Conflict, InvalidRequest

from .models import Account, ApiKey, LedgerEntry, Plan

BASE62 = string.ascii_letters + string.digits
KEY_RANDOM_LENGTH = 40
KEY_DISPLAY_LENGTH = 4


def api_key_hash(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def _random_base62(length: int) -> str:
    return "".join(secrets.choice(BASE62) for _ in range(length))


def webhook_secret_generate() -> str:
    # Standard Webhooks: the part after "whsec_" is the base64 (standard alphabet) of the key.
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass(frozen=True)
class CreatedKey:
    api_key: ApiKey
    raw_key: str


@dataclass(frozen=True)
class CreatedAccount:
    account: Account
    key: CreatedKey


def api_key_create(
    *,
    account: Account,
    mode: str,
    name: str = "default",
    ip_allowlist: list[str] | None = None,
    scopes: list[str] | None = None,
) -> CreatedKey:
    """Mint a key; the raw value exists only in the return value (show it once)."""
    if mode not in (ApiKey.MODE_LIVE, ApiKey.MODE_TEST):
        raise InvalidRequest(details={"mode": "Must be 'live' or 'test'."})
    unknown = set(scopes or []) - set(ApiKey.ALL_SCOPES)
    if unknown:
        raise InvalidRequest(details={"scopes": f"Unknown scopes: {', '.join(sorted(unknown))}."})
    with transaction.atomic():
        # Lock the account so two concurrent creations cannot both pass the plan's key cap.
        plan = Account.objects.select_for_update().select_related("plan").get(pk=account.pk).plan
        if plan.max_active_keys is not None:
            active = ApiKey.objects.filter(account=account, revoked_at__isnull=True).count()
            if active >= plan.max_active_keys:
                raise Conflict(
                    f"The {plan.name} plan allows {plan.max_active_keys} active keys",
                    code="too_many_keys",
                )
        raw = f"sk_{mode}_{_random_base62(KEY_RANDOM_LENGTH)}"
        key = ApiKey.objects.create(
            account=account,
            mode=mode,
            name=name,
            prefix=raw[: len(f"sk_{mode}_") + KEY_DISPLAY_LENGTH],
            key_hash=api_key_hash(raw),
            ip_allowlist=list(ip_allowlist or []),
            scopes=list(scopes or []),
        )
    return CreatedKey(api_key=key, raw_key=raw)


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    api_key.refresh_from_db(fields=["revoked_at"])
    return api_key


def account_create(
    *,
    name: str,
    plan_code: str,
    credits: int = 0,
    mode: str = ApiKey.MODE_TEST,
    personal_email_consent: bool = False,
    default_phone_country_codes: list[str] | None = None,
) -> CreatedAccount:
    """Create a tenant with its first API key and, if any, its opening credit top-up."""
    try:
        plan = Plan.objects.get(code=plan_code)
    except Plan.DoesNotExist:
        raise InvalidRequest(details={"plan": f"Unknown plan '{plan_code}'."})
    if credits < 0:
        raise InvalidRequest(details={"credits": "Must be zero or more."})
    with transaction.atomic():
        account = Account.objects.create(
            name=name,
            plan=plan,
            personal_email_consent=personal_email_consent,
            default_phone_country_codes=list(default_phone_country_codes or []),
            callback_secret=webhook_secret_generate(),
        )
        if credits:
            credits_add(
                account=account,
                amount=credits,
                entry_type=LedgerEntry.TOPUP,
                reason="opening balance",
            )
            account.refresh_from_db(fields=["credits"])
        key = api_key_create(account=account, mode=mode)
    return CreatedAccount(account=account, key=key)


# --- Credits: every change goes through here and writes a ledger row ---------------------------


MAX_LEDGER_AMOUNT = 1_000_000_000


def credits_add(
    *,
    account: Account,
    amount: int,
    entry_type: str = LedgerEntry.TOPUP,
    reason: str = "",
    created_by: Any = None,
) -> LedgerEntry:
    """Top-up, refund or adjustment. A negative adjustment may not take the balance below 0."""
    if entry_type == LedgerEntry.CHARGE:
        raise ValueError("charges go through credits_charge or credits_settle")
    if entry_type in (LedgerEntry.HOLD, LedgerEntry.RELEASE):
        raise ValueError("holds go through credits_hold and credits_release")
    if amount == 0:
        raise InvalidRequest(details={"amount": "Must not be zero."})
    if abs(amount) > MAX_LEDGER_AMOUNT:
        # The balance column is a 64-bit integer: refuse what could overflow it.
        raise InvalidRequest(details={"amount": f"At most {MAX_LEDGER_AMOUNT:,} per entry."})
    if amount < 0 and entry_type != LedgerEntry.ADJUSTMENT:
        raise InvalidRequest(details={"amount": "Only adjustments may be negative."})
    with transaction.atomic():
        query = Account.objects.filter(pk=account.pk)
        if amount < 0:
            query = query.filter(credits__gte=-amount)
        if not query.update(credits=F("credits") + amount):
            raise InvalidRequest(details={"amount": "The balance cannot go below zero."})
        balance = Account.objects.values_list("credits", flat=True).get(pk=account.pk)
        return LedgerEntry.objects.create(
            account=account,
            entry_type=entry_type,
            amount=amount,
            balance_after=balance,
            reason=reason,
            created_by=created_by,
        )


def credits_charge(
    *, account_id: Any, contact_id: Any, amount: int, reason: str = ""
) -> int | None:
    """Charge a contact once. Returns the new balance, or ``None`` when the balance is short.

    The conditional UPDATE makes a negative balance impossible under any concurrency; the
    partial unique index on (contact, charge) makes a second charge for one contact
    impossible even if a task runs twice. A duplicate raises ``AlreadyCharged``.
    """
    if amount <= 0:
        raise ValueError("a charge is a positive amount")
    try:
        with transaction.atomic():
            if not Account.objects.filter(pk=account_id, credits__gte=amount).update(
                credits=F("credits") - amount
            ):
                return None
            balance = Account.objects.values_list("credits", flat=True).get(pk=account_id)
            LedgerEntry.objects.create(
                account_id=account_id,
                entry_type=LedgerEntry.CHARGE,
                amount=-amount,
                balance_after=balance,
                contact_id=contact_id,
                reason=reason,
            )
    except IntegrityError as exc:
        if not _violates(exc, "ledger_one_charge_per_contact"):
            raise
        raise AlreadyCharged(str(contact_id)) from exc
    return balance


def credits_refund(
    *, contact_id: Any, amount: int | None = None, reason: str = "", created_by: Any = None
) -> LedgerEntry:
    """Give back a contact's charge, or part of it (``amount``), at most once per contact.

    The partial unique index on (contact, refund) makes a second refund impossible, as the
    one on charges does for charges; a duplicate raises ``AlreadyRefunded`` and changes nothing.
    """
    try:
        with transaction.atomic():
            charge = LedgerEntry.objects.filter(
                contact_id=contact_id, entry_type=LedgerEntry.CHARGE
            ).first()
            if charge is None:
                raise InvalidRequest(details={"contact": "This contact has no charge to refund."})
            charged = -charge.amount
            amount = charged if amount is None else amount
            if not 0 < amount <= charged:
                raise InvalidRequest(details={"amount": f"Must be between 1 and {charged}."})
            Account.objects.filter(pk=charge.account_id).update(credits=F("credits") + amount)
            balance = Account.objects.values_list("credits", flat=True).get(pk=charge.account_id)
            return LedgerEntry.objects.create(
                account_id=charge.account_id,
                entry_type=LedgerEntry.REFUND,
                amount=amount,
                balance_after=balance,
                contact_id=contact_id,
                reason=reason,
                created_by=created_by,
            )
    except IntegrityError as exc:
        if not _violates(exc, "ledger_one_refund_per_contact"):
            raise
        raise AlreadyRefunded(str(contact_id)) from exc


# --- Holds: credits set aside for running live work -------------------------------------------
#
# A live contact's waterfall may only call paid vendors for credits held for it: a ``hold``
# row moves them from ``credits`` (available) to ``held`` in one conditional UPDATE, so two
# workers can never both spend the last credit, and a ``release`` row moves back what was
# not used. Every hold and release is a ledger row, so ``credits == ledger sum`` still holds;
# ``held >= 0`` and ``credits >= 0`` are CHECK constraints. Both functions first lock the
# account row (a no-op UPDATE, which SQLite's writer lock honours too), so the holds and
# releases of one account are computed one at a time and a hold is never released twice.


def _locked_balance(account_id: Any) -> int:
    """Lock the account's row and read its available balance, in one statement: a no-op
    ``UPDATE … RETURNING`` (an UPDATE, so SQLite's writer lock honours it too). Raw SQL built
    once: these few statements run in every hold and finish, where compiling them through
    the ORM cost more than their round trips."""
    with connection.cursor() as cursor:
        cursor.execute(_balance_sql()[0], [pk_param(Account, account_id)])
        row = cursor.fetchone()
    if row is None:
        raise Account.DoesNotExist(f"account {account_id}")
    return int(row[0])


def _balance_move(account_id: Any, *, credits: int, held: int) -> bool:
    """Add ``credits`` to the available balance and ``held`` to what is held, unless the
    balance would go below zero (conditional even under the row lock); whether it did."""
    with connection.cursor() as cursor:
        cursor.execute(_balance_sql()[1], [credits, held, pk_param(Account, account_id), credits])
        return cursor.rowcount == 1


@cache
def _balance_sql() -> tuple[str, str]:
    table, pk = sql_table(Account), sql_column(Account, "pk")
    credits, held = sql_column(Account, "credits"), sql_column(Account, "held")
    lock = f"UPDATE {table} SET {held} = {held} WHERE {pk} = %s RETURNING {credits}"  # noqa: S608
    move = (
        f"UPDATE {table} SET {credits} = {credits} + %s, {held} = {held} + %s"  # noqa: S608
        f" WHERE {pk} = %s AND {credits} + %s >= 0"
    )
    return lock, move


def credits_hold(
    *,
    account_id: Any,
    token: Any,
    wants: list[tuple[Any, int]],
    whole: bool = False,
    replace: bool = False,
) -> dict[Any, int]:
    """Hold credits for contacts, in order, from what is available; returns what each got.

    Each contact gets what it wants while the balance lasts (the first short one gets the
    rest, unless ``whole``: then all of it or nothing). ``replace`` releases first whatever
    these contacts still hold from earlier claims (a run that died), so a claim never leaks
    a previous claim's hold. One claim's ``credits_hold_many``.
    """
    return credits_hold_many(
        account_id=account_id,
        wants=[(contact_id, amount, token) for contact_id, amount in wants],
        whole=whole,
        replace=[contact_id for contact_id, _ in wants] if replace else (),
    )


def credits_hold_many(
    *,
    account_id: Any,
    wants: Sequence[tuple[Any, int, Any]],
    whole: bool = False,
    replace: Collection[Any] = (),
) -> dict[Any, int]:
    """Hold credits for one account's contacts, each under its own claim's token
    (``(contact_id, amount, token)``), in order, from what is available; returns what each
    contact got.

    As ``credits_hold`` (the first short contact gets the rest, or with ``whole`` nothing,
    and the contacts after it nothing), for any number of claims at once: one transaction
    and one lock of the account's row, a constant number of statements however many
    contacts (lock, read, one conditional UPDATE, one INSERT of the rows). The contacts in
    ``replace`` first give back whatever they still hold (a redelivered message's new claim:
    its earlier claim's hold is released, never held twice). Each hold row carries its own
    claim's token, so each claim releases only its own.
    """
    wants = [(contact_id, amount, token) for contact_id, amount, token in wants if amount > 0]
    if not wants:
        return {}
    if len({contact_id for contact_id, _, _ in wants}) < len(wants):
        raise ValueError("a contact is held once per call")
    with transaction.atomic():
        available = _locked_balance(account_id)
        if replace:
            again = set(replace)
            available += credits_release(
                account_id=account_id, contact_ids=[c for c, _, _ in wants if c in again]
            )
        got: dict[Any, tuple[int, Any]] = {}
        left = available
        for contact_id, amount, token in wants:
            take = min(amount, left)
            if take <= 0 or (whole and take < amount):
                continue
            got[contact_id] = (take, token)
            left -= take
        total = available - left
        if not total:
            return {}
        # Conditional even under the lock: the balance can never go below zero.
        if not _balance_move(account_id, credits=-total, held=total):
            return {}
        balance = available
        entries = []
        for contact_id, (take, token) in got.items():
            balance -= take
            entries.append(
                LedgerEntry(
                    account_id=account_id,
                    entry_type=LedgerEntry.HOLD,
                    amount=-take,
                    balance_after=balance,
                    contact_id=contact_id,
                    hold_token=token,
                    reason="held for a running enrichment",
                )
            )
        LedgerEntry.objects.bulk_create(entries)
    return {contact_id: take for contact_id, (take, _) in got.items()}


def credits_release(
    *,
    account_id: Any,
    contact_ids: list[Any],
    token: Any = None,
    amount: int | None = None,
) -> int:
    """Give back what these contacts hold (only under ``token`` when given; at most
    ``amount`` in all, for one contact's unused part); returns how much was released."""
    if not contact_ids:
        return 0
    with transaction.atomic():
        balance = _locked_balance(account_id)
        outstanding, _ = _holds_outstanding(account_id, contact_ids, token=token)
        if amount is not None:
            outstanding = [(c, t, min(held, amount)) for c, t, held in outstanding[:1]]
        total = sum(held for _, _, held in outstanding)
        if not total:
            return 0
        if not _balance_move(account_id, credits=total, held=-total):
            raise IntegrityError(f"account {account_id}: the balance changed under its lock")
        LedgerEntry.objects.bulk_create(_release_rows(account_id, outstanding, balance))
    return total


def credits_settle(
    *,
    account_id: Any,
    contact_ids: Collection[Any],
    charges: Sequence[tuple[Any, int]],
    reason: str = "",
) -> dict[Any, bool]:
    """Finish contacts' credits in one go: release everything they hold (whatever claim
    took it), then charge each ``(contact_id, amount)`` of ``charges`` once, in order, while
    the balance lasts. Returns, per charged contact, whether it is charged (True also when
    it already was: it is never charged twice); False when the balance could not pay.

    ``credits_release`` then one ``credits_charge`` per contact, with the same ledger rows,
    in a constant number of statements whatever the number of contacts: lock the account's
    row, read its balance and the contacts' ledger rows, one conditional UPDATE, one INSERT.
    Under the row lock the read is the truth (every change of a balance takes that lock
    first); the conditional UPDATE and the one-charge-per-contact index still guard it.
    """
    ids = list(dict.fromkeys([*contact_ids, *(c for c, _ in charges)]))
    if not ids:
        return {}
    with transaction.atomic():
        credits = _locked_balance(account_id)
        outstanding, charged = _holds_outstanding(account_id, ids, token=None, charged=True)
        released = sum(held for _, _, held in outstanding)
        rows = _release_rows(account_id, outstanding, credits)
        balance = credits + released
        paid: dict[Any, bool] = {}
        for contact_id, amount in charges:
            if amount <= 0:
                raise ValueError("a charge is a positive amount")
            if contact_id in charged or contact_id in paid:
                paid[contact_id] = paid.get(contact_id, True)
                continue
            paid[contact_id] = balance >= amount
            if not paid[contact_id]:
                continue
            balance -= amount
            rows.append(
                LedgerEntry(
                    account_id=account_id,
                    entry_type=LedgerEntry.CHARGE,
                    amount=-amount,
                    balance_after=balance,
                    contact_id=contact_id,
                    reason=reason,
                )
            )
        if not rows:
            return paid
        change = balance - credits
        # Conditional even under the lock: the balance can never go below zero.
        if not _balance_move(account_id, credits=change, held=-released):
            raise IntegrityError(f"account {account_id}: the balance changed under its lock")
        LedgerEntry.objects.bulk_create(rows)
    return paid


def _holds_outstanding(
    account_id: Any, contact_ids: Collection[Any], *, token: Any, charged: bool = False
) -> tuple[list[tuple[Any, Any, int]], set[Any]]:
    """What each hold on these contacts still holds, ``(contact, hold token, amount)`` (only
    under ``token`` when given), and with ``charged`` which contacts have a charge row; one
    query. Call with the account's row locked."""
    types = [LedgerEntry.HOLD, LedgerEntry.RELEASE] + ([LedgerEntry.CHARGE] if charged else [])
    rows = LedgerEntry.objects.filter(
        account_id=account_id, contact_id__in=list(contact_ids), entry_type__in=types
    )
    if token is not None:
        rows = rows.filter(hold_token=token)
    # Per hold (contact and the claim's token that took it), and each release names the
    # hold's own token: a release made without a token (finish, reaper, next claim) then
    # nets that hold to zero for a later release by its token too, so no hold is ever
    # given back twice.
    totals: dict[tuple[Any, Any], int] = {}
    charged_ids: set[Any] = set()
    for contact_id, hold_token, entry_type, total in (
        rows.order_by()
        .values("contact_id", "hold_token", "entry_type")
        .annotate(total=Sum("amount"))
        .values_list("contact_id", "hold_token", "entry_type", "total")
    ):
        if entry_type == LedgerEntry.CHARGE:
            charged_ids.add(contact_id)
        else:
            totals[(contact_id, hold_token)] = totals.get((contact_id, hold_token), 0) + total
    outstanding = [(c, t, -total) for (c, t), total in totals.items() if total < 0]
    return outstanding, charged_ids


def _release_rows(
    account_id: Any, outstanding: list[tuple[Any, Any, int]], balance: int
) -> list[LedgerEntry]:
    """The release rows of ``outstanding`` holds, from ``balance`` before them."""
    entries = []
    for contact_id, hold_token, held in outstanding:
        balance += held
        entries.append(
            LedgerEntry(
                account_id=account_id,
                entry_type=LedgerEntry.RELEASE,
                amount=held,
                balance_after=balance,
                contact_id=contact_id,
                hold_token=hold_token,
                reason="released: not used",
            )
        )
    return entries


def _violates(exc: IntegrityError, constraint: str) -> bool:
    """Whether the error is that constraint (PostgreSQL names it; SQLite cannot, so assume)."""
    name = getattr(getattr(exc.__cause__, "diag", None), "constraint_name", None)
    return name == constraint if name else True


class AlreadyCharged(Exception):
    """The contact already has a charge row; the caller must not charge again."""


class AlreadyRefunded(Exception):
    """The contact's charge was already refunded."""
