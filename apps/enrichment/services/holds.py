"""Credits held for running contacts: what each may spend, held before any paid call.

Right after the claim, each live contact's maximum price is held from the account's
available balance (``contacts_hold``, or ``claims_hold`` for every claim the finisher has
waiting: one conditional UPDATE per account, ledger rows); a
short budget asks for more while the chunk runs (``credit_asks_serve``); the finish turns
the hold into the charge and releases the rest (``holds_release``).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import Account
from apps.accounts.services import credits_hold, credits_hold_many, credits_release

from ..models import Contact
from .leases import LeaseLost

logger = logging.getLogger(__name__)


# How long a contact short of credits waits for credits that other running contacts hold
# (they may find nothing and release them), and how often it looks again.
CREDIT_WAIT_SECONDS = 30.0

CREDIT_POLL_SECONDS = 0.1


def kind_prices(contact: Contact) -> list[int]:
    """The prices of the kinds the waterfall may charge this contact for, in its order:
    those ``max_credits`` leaves room for (as ``waterfall_run`` skips the others)."""
    cap = contact.max_credits
    prices = []
    for kind in contact.enrichment_type:
        price = settings.CREDIT_PRICES[kind]
        if not price or (cap is not None and price > cap):
            continue
        prices.append(price)
        if cap is not None:
            cap -= price
    return prices


def max_price(contact: Contact) -> int:
    """The most this contact may be charged: what it holds at claim time, at most."""
    return sum(kind_prices(contact))


def contacts_hold(token: uuid.UUID, contacts: list[Contact]) -> dict[Any, int]:
    """Hold, per account in one UPDATE, what the claimed live contacts may spend (in order,
    while the available balance lasts); returns what each contact got."""
    return claims_hold([(token, contacts)])


def claims_hold(
    claims: Sequence[tuple[uuid.UUID, list[Contact]]], *, again: bool = False
) -> dict[Any, int]:
    """``contacts_hold`` for several claims at once (the finisher's, for every claim that
    arrived meanwhile): one transaction per account whatever the number of claims
    (``credits_hold_many``), each contact's hold under its own claim's token, the contacts
    taken in the claims' order, so each gets what it would have got one claim after another.
    A contact is in one claim only. ``again``: a retry of a call whose COMMIT may have been
    lost, so whatever these contacts hold is released first instead of being held twice."""
    wants: dict[Any, list[tuple[Any, int, uuid.UUID]]] = {}
    replace: dict[Any, list[Any]] = {}
    for token, contacts in claims:
        for contact in contacts:
            if contact.sandbox:
                continue
            wants.setdefault(contact.account_id, []).append((contact.pk, max_price(contact), token))
            # A hold left by an earlier claim of this contact (a run that died before the
            # reaper saw it) is released first, never leaked. A contact claimed for the
            # first time (the claim made its run_count 1) has no earlier hold: its claim
            # spares the look, two statements while the account's row is locked.
            if again or contact.run_count != 1:
                replace.setdefault(contact.account_id, []).append(contact.pk)
    held: dict[Any, int] = {}
    for account_id, account_wants in wants.items():
        held.update(
            credits_hold_many(
                account_id=account_id, wants=account_wants, replace=replace.get(account_id, ())
            )
        )
    return held


@dataclass
class CreditAsk:
    """A short ``CreditBudget`` asking for a kind's price (``CreditBudget.more``)."""

    contact: Contact
    amount: int
    unused: int  # what the budget still had: given back first
    spent: int  # what the contact holds for kinds it found: will be charged, not released
    deadline: float
    start: bool = False  # asked before the waterfall starts, for its first kind
    answered: threading.Event = field(default_factory=threading.Event)
    granted: bool = False
    lost: bool = False

    def answer(self, *, granted: bool = False, lost: bool = False) -> None:
        self.granted, self.lost = granted, lost
        self.answered.set()


def credit_asks_serve(
    asks: list[CreditAsk], *, token: uuid.UUID, still_ours: Any
) -> list[CreditAsk]:
    """Answer what can be answered; returns the asks still waiting.

    An ask is granted when the available balance pays the whole price (held for it, fenced
    by the claim's token). It is refused only when the balance cannot and no other contact
    of the account holds credits that might come back (or after ``CREDIT_WAIT_SECONDS``):
    so a contact ends NO_CREDITS only when the balance really cannot pay. One read of the
    account per poll; a hold only when it can succeed.
    """
    try:
        still_ours()
    except LeaseLost:
        for ask in asks:
            ask.answer(lost=True)
        return []
    still: list[CreditAsk] = []
    per_account: dict[Any, list[CreditAsk]] = {}
    for ask in asks:
        per_account.setdefault(ask.contact.account_id, []).append(ask)
    for account_id, group in per_account.items():
        try:
            for ask in group:
                if ask.unused:
                    credits_release(
                        account_id=account_id,
                        contact_ids=[ask.contact.pk],
                        token=token,
                        amount=ask.unused,
                    )
                    ask.unused = 0
            available, held = Account.objects.values_list("credits", "held").get(pk=account_id)
        except Exception:
            logger.exception("asking for credits failed; trying again")
            still += group
            continue
        for ask in group:
            try:
                if available >= ask.amount:
                    if hold_more(ask.contact, token, ask.amount):
                        available -= ask.amount
                        held += ask.amount  # held now, and may come back to the others
                        ask.answer(granted=True)
                    else:
                        # Another worker took it a moment ago: held, so it may come back.
                        available, held = 0, held + ask.amount
                        still.append(ask)
                elif held - ask.spent <= 0 or time.monotonic() >= ask.deadline:
                    ask.answer(granted=False)
                else:
                    still.append(ask)
            except LeaseLost:
                ask.answer(lost=True)
            except Exception:
                logger.exception("holding credits failed; trying again")
                still.append(ask)
    return still


def hold_more(contact: Contact, token: uuid.UUID, amount: int) -> bool:
    """Hold ``amount`` for the contact from what is available, if this claim still owns it."""
    with transaction.atomic():
        ours = (
            Contact.objects.select_for_update()
            .filter(
                pk=contact.pk,
                status=Contact.PENDING,
                lease_owner=token,
                lease_expires_at__gt=timezone.now(),
            )
            .values_list("pk", flat=True)
        )
        if not list(ours):
            # Finished, reaped or taken over: nothing may be held for this run any more.
            raise LeaseLost()
        return bool(
            credits_hold(
                account_id=contact.account_id,
                token=token,
                wants=[(contact.pk, amount)],
                whole=True,
            )
        )


def holds_release(contacts: list[Contact], *, token: uuid.UUID | None) -> None:
    """Release what these live contacts hold (under ``token`` only, when given), per account."""
    per_account: dict[Any, list[Any]] = {}
    for contact in contacts:
        if not contact.sandbox:
            per_account.setdefault(contact.account_id, []).append(contact.pk)
    for account_id, ids in per_account.items():
        credits_release(account_id=account_id, contact_ids=ids, token=token)
