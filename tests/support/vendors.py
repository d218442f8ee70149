"""Test helpers for provider adapters: vendor response bodies (as documented) and the
simulator running in a thread of the test process."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from apps.providers import breaker, registry
from apps.providers.base import ContactQuery
from apps.providers.simulator.server import SimulatorConfig, SimulatorServer, VendorConfig

HUNTER_URL = "https://api.hunter.io/v2/email-finder"
PDL_URL = "https://api.peopledatalabs.com/v5/person/enrich"
APOLLO_URL = "https://api.apollo.io/api/v1/people/match"

# The person every adapter test looks up.
QUERY = ContactQuery(
    first_name="Sarah",
    last_name="Chen",
    company_name="Stripe",
    domain="stripe.com",
    linkedin_url="https://www.linkedin.com/in/sarahchen",
)


def use_vendors(settings, *, simulator_url: str = "", **overrides: Any) -> None:
    """Point the adapters at the vendors' own URLs (mocked by ``responses``) or at a
    simulator, with test keys, and forget adapter instances and breaker state."""
    settings.PROVIDER_SIMULATOR_URL = simulator_url
    settings.PROVIDER_CREDENTIALS = {
        name: {"api_key": f"test-{name}-key", "base_url": ""}
        for name in ("hunter", "pdl", "apollo")
    }
    settings.PROVIDER_RETRY_BACKOFF_SECONDS = 0.001
    settings.PROVIDER_BREAKER_LOCAL_SECONDS = 0
    for key, value in overrides.items():
        setattr(settings, key, value)
    registry.provider.cache_clear()
    breaker.reset()


def hunter_body(
    email: str | None = "Sarah.Chen@Stripe.com",
    *,
    score: int | None = 97,
    status: str | None = "valid",
    phone: str | None = None,
) -> dict[str, Any]:
    """Hunter Email Finder 200 body (hunter.io/api-documentation/v2#email-finder)."""
    return {
        "data": {
            "first_name": "Sarah",
            "last_name": "Chen",
            "email": email,
            "score": score,
            "domain": "stripe.com",
            "accept_all": status == "accept_all",
            "position": "Head of Growth",
            "twitter": None,
            "linkedin_url": None,
            "phone_number": phone,
            "company": "Stripe",
            "sources": [],
            "verification": {"date": "2026-05-01", "status": status},
        },
        "meta": {"params": {"first_name": "Sarah", "last_name": "Chen", "domain": "stripe.com"}},
    }


def hunter_error(status: int, error_id: str, details: str) -> dict[str, Any]:
    return {"errors": [{"id": error_id, "code": status, "details": details}]}


def pdl_body(
    *,
    likelihood: int = 9,
    work_email: str | None = "sarah.chen@stripe.com",
    mobile_phone: str | None = "+14155550123",
    phone_numbers: list[str] | None = None,
    personal_emails: list[str] | None = None,
) -> dict[str, Any]:
    """PDL Person Enrichment 200 body (docs.peopledatalabs.com, output response)."""
    return {
        "status": 200,
        "likelihood": likelihood,
        "data": {
            "id": "qEnOZ5Oh0poWnQ1luFBfVw_0000",
            "full_name": "sarah chen",
            "job_title": "head of growth",
            "job_company_website": "stripe.com",
            "work_email": work_email,
            "mobile_phone": mobile_phone,
            "phone_numbers": phone_numbers if phone_numbers is not None else [mobile_phone],
            "personal_emails": personal_emails if personal_emails is not None else [],
        },
    }


def pdl_error(status: int, error_type: str, message: str) -> dict[str, Any]:
    return {"status": status, "error": {"type": error_type, "message": message}}


def apollo_body(
    *,
    email: str | None = "sarah.chen@stripe.com",
    email_status: str | None = "verified",
    personal_emails: list[str] | None = None,
) -> dict[str, Any]:
    """Apollo People Enrichment 200 body (docs.apollo.io, people enrichment)."""
    return {
        "person": {
            "id": "64a7ff0cc4dfae00013df1a5",
            "first_name": "Sarah",
            "last_name": "Chen",
            "name": "Sarah Chen",
            "linkedin_url": "http://www.linkedin.com/in/sarahchen",
            "title": "Head of Growth",
            "email_status": email_status,
            "email": email,
            "personal_emails": personal_emails or [],
            "organization": {"name": "Stripe", "primary_domain": "stripe.com"},
        }
    }


@contextmanager
def simulator(**vendor_overrides: Any) -> Iterator[SimulatorServer]:
    """The simulator on a free loopback port in a thread; ``latency_ms=0`` unless given.

    ``vendor_overrides``: ``latency_ms``, ``error_rate``, ``hit_rate`` for every vendor, or a
    ``vendors={"hunter": VendorConfig(...)}`` mapping.
    """
    vendors = vendor_overrides.pop("vendors", None)
    base = SimulatorConfig.from_env({})
    if vendors is None:
        vendors = {
            name: VendorConfig(
                latency_ms=vendor_overrides.get("latency_ms", 0),
                error_rate=vendor_overrides.get("error_rate", 0),
                hit_rate=vendor_overrides.get("hit_rate", cfg.hit_rate),
            )
            for name, cfg in base.vendors.items()
        }
    config = SimulatorConfig(
        seed=vendor_overrides.get("seed", 42),
        companies=10,
        people_per_company=10,
        retry_after=vendor_overrides.get("retry_after", 0),
        vendors=vendors,
    )
    server = SimulatorServer(("127.0.0.1", 0), config)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def simulator_url(server: SimulatorServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}"
