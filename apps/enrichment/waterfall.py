"""The waterfall: for each requested kind, try providers in order until one finds it.

It owns everything around the adapters: order, credit caps, reuse of past results, bounded
retries with backoff, the circuit breaker, normalising what was found (lowercase emails,
E.164 phones in the wanted countries) and recording every call as an attempt. It never
touches the database itself (``contacts_run`` loads what it needs in batches and
``contacts_finish`` stores the outcome; only a short ``CreditBudget`` asks the ledger for
more, through the callback ``contacts_run`` gives it), so it can run in many threads at once.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from apps.providers import breaker, registry
from apps.providers.base import ContactQuery, Found, Provider, ProviderError

from .models import Contact, ProviderAttempt
from .normalize import normalize_email, normalize_phones

logger = logging.getLogger(__name__)

# Which result fields each kind fills; job_title and company_domain come along with any hit.
KIND_FIELDS = {
    "email": ("email", "email_status"),
    "phone": ("phones",),
    "personal_email": ("personal_email",),
}
EXTRA_FIELDS = ("job_title", "company_domain")
EMAIL_STATUSES = frozenset({"valid", "catch_all", "unknown"})


@dataclass
class AttemptRecord:
    provider: str
    kind: str
    outcome: str
    duration_ms: int = 0
    error: str | None = None


@dataclass
class Outcome:
    """What the waterfall found for one contact, before charging."""

    data: dict[str, Any] = field(default_factory=dict)
    found_kinds: list[str] = field(default_factory=list)
    providers: dict[str, str] = field(default_factory=dict)
    confidence: int = 0
    attempts: list[AttemptRecord] = field(default_factory=list)
    # A kind was skipped because the balance or the contact's max_credits could not pay it.
    unaffordable: bool = False

    @property
    def all_errored(self) -> bool:
        """Nobody answered: every try errored or was skipped by a breaker (so FAILED)."""
        return bool(self.attempts) and not any(
            a.outcome in (ProviderAttempt.HIT, ProviderAttempt.MISS, ProviderAttempt.CACHE)
            for a in self.attempts
        )


class CreditBudget:
    """Credits one contact's waterfall may spend: what the ledger holds for it (``held``).

    A kind's price is reserved from it before its providers are called and released (back
    to the budget) if nothing is found, so no paid provider is ever called for credits that
    are not held. When the budget is short, ``more(amount, unused)`` may ask the ledger for
    the price (giving back the ``unused`` part first, which then leaves the budget); it
    returns whether the price is now held. Without ``more`` the budget is all there is.
    """

    def __init__(self, held: int, *, more: Callable[[int, int], bool] | None = None) -> None:
        self._left = max(0, held)
        self._spent = 0
        self._more = more
        self._lock = threading.Lock()

    def reserve(self, amount: int) -> bool:
        with self._lock:
            if amount <= self._left:
                self._left -= amount
                self._spent += amount
                return True
            if self._more is None:
                return False
            unused, self._left = self._left, 0
        # Outside the lock: asking the ledger may wait for other work to release credits.
        if not self._more(amount, unused):
            return False
        with self._lock:
            self._spent += amount
        return True

    def release(self, amount: int) -> None:
        with self._lock:
            self._left += amount
            self._spent -= amount

    @property
    def spent(self) -> int:
        """Reserved for kinds being looked up or found (the charge at finish takes them)."""
        return self._spent

    @property
    def left(self) -> int:
        return self._left


def query_for(contact: Contact) -> ContactQuery:
    return ContactQuery(
        first_name=contact.first_name,
        last_name=contact.last_name,
        company_name=contact.company_name,
        domain=contact.domain,
        linkedin_url=contact.linkedin_url,
        phone_country_codes=tuple(contact.phone_country_codes),
    )


def waterfall_run(
    contact: Contact,
    *,
    lineup: registry.Lineup | None = None,
    budget: CreditBudget | None = None,
    reuse: dict[str, Any] | None = None,
    before_call: Callable[[], None] | None = None,
) -> Outcome:
    """Run every requested kind of ``contact`` through its providers; no database access
    except the shared cache behind the circuit breaker.

    ``reuse`` is a past VERIFIED result for the same person in the same account (within
    ``PROVIDER_RESULT_REUSE_TTL_SECONDS``); ``budget`` the credits held for this contact;
    ``before_call`` runs before every provider call and may raise to stop the waterfall (the
    worker's lease check: ``contacts_run``).
    """
    outcome = Outcome()
    query = query_for(contact)
    lineup = lineup or registry.Lineup()
    cap_left = None if contact.max_credits is None else contact.max_credits
    for kind in contact.enrichment_type:
        price = 0 if contact.sandbox else settings.CREDIT_PRICES[kind]
        providers = registry.order_for(
            kind=kind,
            sandbox=contact.sandbox,
            account_order=contact.account.provider_order,
            lineup=lineup,
        )
        first = providers[0].name if providers else ""
        if cap_left is not None and price > cap_left:
            outcome.unaffordable = True
            outcome.attempts.append(
                AttemptRecord(
                    first,
                    kind,
                    ProviderAttempt.SKIPPED,
                    error=f"max_credits: price {price} > {cap_left} left",
                )
            )
            continue
        if price and budget is not None and not budget.reserve(price):
            outcome.unaffordable = True
            outcome.attempts.append(
                AttemptRecord(first, kind, ProviderAttempt.SKIPPED, error="insufficient credits")
            )
            continue
        found = _reused(contact, kind, reuse, outcome) if reuse else False
        if not found:
            if not providers:
                outcome.attempts.append(
                    AttemptRecord("", kind, ProviderAttempt.SKIPPED, error="no provider available")
                )
            found = _run_kind(contact, query, kind, providers, lineup, outcome, before_call)
        if found:
            if cap_left is not None:
                cap_left -= price
        elif price and budget is not None:
            budget.release(price)
    return outcome


def _reused(contact: Contact, kind: str, past: dict[str, Any], outcome: Outcome) -> bool:
    """Take ``kind`` from a past result of the same person; recorded as outcome ``cache``."""
    data: dict[str, Any] = {}
    if kind == "email" and past.get("email"):
        data = {"email": past["email"], "email_status": past.get("email_status") or "unknown"}
    elif kind == "phone" and past.get("phones"):
        # The past contact may have asked for other countries: filter again for this one.
        phones = normalize_phones(past["phones"], contact.phone_country_codes)
        if phones:
            data = {"phones": phones}
    elif kind == "personal_email" and past.get("personal_email"):
        data = {"personal_email": past["personal_email"]}
    if not data:
        return False
    provider = (past.get("providers") or {}).get(kind, "")
    outcome.attempts.append(AttemptRecord(provider, kind, ProviderAttempt.CACHE))
    _accept(outcome, kind, provider, data, past, int(past.get("confidence") or 0))
    return True


def _accept(
    outcome: Outcome,
    kind: str,
    provider: str,
    data: dict[str, Any],
    extra_from: dict[str, Any],
    confidence: int,
) -> None:
    outcome.data.update(data)
    for key in EXTRA_FIELDS:
        if extra_from.get(key) and not outcome.data.get(key):
            outcome.data[key] = extra_from[key]
    outcome.found_kinds.append(kind)
    outcome.providers[kind] = provider
    outcome.confidence = max(outcome.confidence, confidence)


def _run_kind(
    contact: Contact,
    query: ContactQuery,
    kind: str,
    providers: list[Provider],
    lineup: registry.Lineup,
    outcome: Outcome,
    before_call: Callable[[], None] | None = None,
) -> bool:
    threshold = settings.PROVIDER_CONFIDENCE_THRESHOLD
    for adapter in providers:
        answer = _call(adapter, query, kind, lineup, outcome, before_call)
        if answer is _FAILED:
            continue
        started, found = answer
        data = _usable(kind, found, contact) if found is not None else None
        if found is None or data is None or found.confidence < threshold:
            reason = None
            if found is not None and found.confidence < threshold:
                reason = f"confidence {found.confidence} < {threshold}"
            elif found is not None:
                reason = _unusable_reason(kind, found, contact)
            outcome.attempts.append(
                AttemptRecord(adapter.name, kind, ProviderAttempt.MISS, started, reason)
            )
            continue
        outcome.attempts.append(AttemptRecord(adapter.name, kind, ProviderAttempt.HIT, started))
        _accept(outcome, kind, adapter.name, data, found.data, found.confidence)
        return True
    return False


_FAILED = object()


def _call(
    adapter: Provider,
    query: ContactQuery,
    kind: str,
    lineup: registry.Lineup,
    outcome: Outcome,
    before_call: Callable[[], None] | None = None,
) -> Any:
    """One provider, with bounded retries: ``(duration_ms, Found | None)`` or ``_FAILED``.

    Every try is recorded (errors here; the hit/miss by the caller). A breaker that is open
    skips the provider; a ``Retry-After`` longer than we are willing to wait opens it.
    """
    name = adapter.name
    retries = settings.PROVIDER_MAX_RETRIES
    for try_no in range(retries + 1):
        if before_call is not None:
            before_call()
        if not breaker.allow_call(name):
            outcome.attempts.append(
                AttemptRecord(name, kind, ProviderAttempt.SKIPPED, error="circuit open")
            )
            return _FAILED
        started = time.perf_counter()
        try:
            found = adapter.lookup(query, kind, timeout=lineup.timeout(name))
        except ProviderError as exc:
            outcome.attempts.append(
                AttemptRecord(name, kind, ProviderAttempt.ERROR, _ms(started), str(exc)[:500])
            )
            if exc.provider_fault:
                breaker.record_failure(name)
            else:
                breaker.record_success(name)  # it answered: up, even if it said no to this
            if not exc.retryable:
                return _FAILED
            longest = settings.PROVIDER_RETRY_AFTER_MAX_SECONDS
            if exc.retry_after is not None and exc.retry_after > longest:
                # Too long to hold a worker thread: let every worker skip it for that long
                # (also after the last try, or the next contacts would ask again at once).
                breaker.trip(name, seconds=min(exc.retry_after, 3600), reason="Retry-After")
                return _FAILED
            if try_no == retries:
                return _FAILED
            time.sleep(min(_backoff(try_no, exc.retry_after), longest))
            continue
        except Exception as exc:  # an adapter bug must not leave the contact pending forever
            logger.exception("provider adapter crashed", extra={"provider": name})
            outcome.attempts.append(
                AttemptRecord(
                    name, kind, ProviderAttempt.ERROR, _ms(started), f"{type(exc).__name__}"
                )
            )
            breaker.record_failure(name)
            return _FAILED
        if found is not None and not _well_formed(found):
            # An adapter bug, not the vendor's: recorded as an error like a crash, so the
            # contact still finishes instead of failing in normalisation and staying pending.
            outcome.attempts.append(
                AttemptRecord(
                    name,
                    kind,
                    ProviderAttempt.ERROR,
                    _ms(started),
                    f"adapter returned {type(found).__name__}, not Found(data: dict, confidence)",
                )
            )
            breaker.record_failure(name)
            return _FAILED
        breaker.record_success(name)
        return _ms(started), found
    return _FAILED  # pragma: no cover - the loop always returns


def _well_formed(found: Any) -> bool:
    return (
        isinstance(found, Found)
        and isinstance(found.data, dict)
        and isinstance(found.confidence, int | float)
        and not isinstance(found.confidence, bool)
    )


def _backoff(try_no: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return retry_after
    # Exponential with full jitter so that many threads retrying together spread out.
    base = settings.PROVIDER_RETRY_BACKOFF_SECONDS * (2**try_no)
    return base * (0.5 + random.random())


def _usable(kind: str, found: Found, contact: Contact) -> dict[str, Any] | None:
    """The fields of ``kind`` from a provider answer, normalised; None makes it a miss."""
    data = found.data
    if contact.sandbox:
        # The sandbox's fixed answers are the contract (SPEC §2), e.g. +15550000000, which
        # is not a valid NANP number: pass them through untouched.
        return {key: data[key] for key in KIND_FIELDS[kind] if key in data} or None
    if kind == "email":
        email = normalize_email(data.get("email"))
        status = str(data.get("email_status") or "unknown").lower()
        if not email or status not in EMAIL_STATUSES:
            return None  # "invalid" (or anything unknown to us) is a miss
        return {"email": email, "email_status": status}
    if kind == "phone":
        phones = normalize_phones(data.get("phones") or [], contact.phone_country_codes)
        return {"phones": phones} if phones else None
    if kind == "personal_email":
        email = normalize_email(data.get("personal_email"))
        return {"personal_email": email} if email else None
    return None


def _unusable_reason(kind: str, found: Found, contact: Contact) -> str:
    """What was wrong with an answer ``_usable`` refused, for the attempt's ``error``: said
    for the kind that was asked, so a phone miss never reads as an email problem."""
    data = found.data
    if kind == "email":
        if not data.get("email"):
            return "unusable answer: no email"
        if not normalize_email(data.get("email")):
            return "unusable answer: not a valid email address"
        status = str(data.get("email_status") or "unknown").lower()
        return f"unusable answer: email status {status!r}"
    if kind == "phone":
        if not data.get("phones"):
            return "unusable answer: no phone number"
        wanted = [c.upper() for c in contact.phone_country_codes or [] if c]
        if wanted:
            return f"unusable answer: no valid phone number in {', '.join(wanted)}"
        return "unusable answer: no valid phone number"
    if kind == "personal_email":
        if not data.get("personal_email"):
            return "unusable answer: no personal email"
        return "unusable answer: not a valid personal email address"
    return f"unusable answer for {kind}"


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
