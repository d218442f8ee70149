"""The sandbox provider's fixed answers (SPEC §2): derived from the name, never the network."""

from __future__ import annotations

import pytest

from apps.providers.adapters.sandbox import SANDBOX_PHONE, SandboxProvider
from apps.providers.base import ContactQuery

SANDBOX = SandboxProvider()


@pytest.mark.parametrize(
    ("first", "last", "company", "domain", "email"),
    [
        ("Sarah", "Chen", "Stripe", "stripe.com", "sarah.chen@stripe.com"),
        ("José", "Núñez", "Acme Corp", "", "jose.nunez@acmecorp.com"),
        ("李", "Wei", "", "x.cn", "wei@x.cn"),
        ("李", "王", "腾讯", "", "contact@example.com"),
    ],
)
def test_email_is_first_dot_last_at_the_company_domain(first, last, company, domain, email):
    query = ContactQuery(first_name=first, last_name=last, company_name=company, domain=domain)
    found = SANDBOX.lookup(query, "email")
    assert found.data["email"] == email
    assert found.data["email_status"] == "valid"


def test_personal_email_and_phone():
    query = ContactQuery(first_name="李", last_name="Wei")
    assert SANDBOX.lookup(query, "personal_email").data["personal_email"] == "wei@gmail.com"
    phones = SANDBOX.lookup(query, "phone").data["phones"]
    assert phones == [{"number": SANDBOX_PHONE, "type": "mobile", "country": "US"}]


@pytest.mark.parametrize("kind", ["email", "phone", "personal_email"])
def test_a_name_containing_notfound_is_not_found(kind):
    query = ContactQuery(first_name="Not", last_name="Found", domain="stripe.com")
    assert SANDBOX.lookup(query, kind) is None
