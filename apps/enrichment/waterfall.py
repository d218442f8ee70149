"""The waterfall: for each requested kind, try providers in order until one finds it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from apps.providers import registry
from apps.providers.base import ContactQuery, ProviderError

from .models import Contact, ProviderAttempt


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

    @property
    def all_errored(self) -> bool:
        return bool(self.attempts) and all(
            a.outcome == ProviderAttempt.ERROR for a in self.attempts
        )


def query_for(contact: Contact) -> ContactQuery:
    return ContactQuery(
        first_name=contact.first_name,
        last_name=contact.last_name,
        company_name=contact.company_name,
        domain=contact.domain,
        linkedin_url=contact.linkedin_url,
        phone_country_codes=tuple(contact.phone_country_codes),
    )


def waterfall_run(contact: Contact) -> Outcome:
    outcome = Outcome()
    query = query_for(contact)
    threshold = settings.PROVIDER_CONFIDENCE_THRESHOLD
    for kind in contact.enrichment_type:
        providers = registry.order_for(
            kind=kind, sandbox=contact.sandbox, account_order=contact.account.provider_order
        )
        for adapter in providers:
            started = time.perf_counter()
            try:
                found = adapter.lookup(query, kind)
            except ProviderError as exc:
                outcome.attempts.append(
                    AttemptRecord(
                        adapter.name, kind, ProviderAttempt.ERROR, _ms(started), str(exc)[:500]
                    )
                )
                continue
            if found is None or found.confidence < threshold:
                outcome.attempts.append(
                    AttemptRecord(adapter.name, kind, ProviderAttempt.MISS, _ms(started))
                )
                continue
            outcome.attempts.append(
                AttemptRecord(adapter.name, kind, ProviderAttempt.HIT, _ms(started))
            )
            for key, value in found.data.items():
                outcome.data.setdefault(key, value)
            outcome.found_kinds.append(kind)
            outcome.providers[kind] = adapter.name
            outcome.confidence = max(outcome.confidence, found.confidence)
            break
    return outcome


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
