"""The provider interface: the only thing the waterfall knows about a data vendor."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ContactQuery:
    """What a provider is told about the person it must find."""

    first_name: str
    last_name: str
    company_name: str = ""
    domain: str = ""
    linkedin_url: str = ""
    phone_country_codes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Found:
    """A provider's answer. ``data`` keys: email, email_status, phones, personal_email,
    job_title, company_domain (each optional). ``confidence`` is 0-100."""

    data: dict[str, Any] = field(default_factory=dict)
    confidence: int = 100


class ProviderError(Exception):
    """A provider call failed. ``retryable`` says whether trying again could help.

    ``provider_fault`` is False when the vendor answered but rejected this one request (bad
    parameters for this contact): the provider is up, so it must not count towards its
    circuit breaker, or a batch of odd contacts would switch a healthy vendor off for all.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        provider_fault: bool = True,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.provider_fault = provider_fault


class Provider(ABC):
    """One data vendor. ``lookup`` returns ``Found``, ``None`` (not found) or raises.

    ``lookup`` owns the vendor's HTTP shape only: no retries, no caching, no recording
    (the waterfall does those). ``timeout`` is (connect, read) seconds from ProviderConfig,
    or None for the adapter's default.
    """

    name: str = ""
    kinds: frozenset[str] = frozenset()
    cost: int = 0  # what one call costs us, in the vendor's credits

    def available(self) -> bool:
        """False when the adapter has no credentials (and no simulator): never tried then."""
        return True

    @abstractmethod
    def lookup(
        self, query: ContactQuery, kind: str, *, timeout: tuple[float, float] | None = None
    ) -> Found | None: ...
