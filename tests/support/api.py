"""API clients holding real keys, and a minimal valid contact, for tests that call the API."""

from __future__ import annotations

from rest_framework.test import APIClient

from tests.factories import AccountFactory, ApiKeyFactory, plan

# A minimal valid single contact (an email lookup), for tests about intake rather than
# validation.
EMAIL_CONTACT = {
    "first_name": "Sarah",
    "last_name": "Chen",
    "domain": "stripe.com",
    "enrichment_type": ["email"],
}


class KeyedClient(APIClient):
    """An APIClient that sends a real API key; ``account`` and ``key`` are the rows behind it."""

    account = None
    key = None


def make_client(
    *,
    plan_code: str = "pro",
    mode: str = "test",
    credits: int = 1000,
    consent: bool = False,
    account=None,
    **key_fields,
) -> KeyedClient:
    if account is None:
        account = AccountFactory(plan=plan(plan_code), credits=0, personal_email_consent=consent)
        if credits:
            from apps.accounts.services import credits_add

            credits_add(account=account, amount=credits, reason="test")
            account.refresh_from_db()
    key = ApiKeyFactory(account=account, mode=mode, **key_fields)
    client = KeyedClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key.raw_key}")
    client.account = account
    client.key = key
    return client
