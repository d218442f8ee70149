"""factory-boy factories for every app's models."""

from __future__ import annotations

from datetime import timedelta

import factory
from django.utils import timezone

from apps.accounts.models import Account, ApiKey, Plan
from apps.accounts.services import _random_base62, api_key_hash, webhook_secret_generate
from apps.core.models import IdempotencyRecord
from apps.enrichment.models import BulkJob, Contact

PLAN_ROWS = {
    "free": {"name": "Free", "api_access": False},
    "starter": {"name": "Starter", "api_access": False},
    "growth": {
        "name": "Growth",
        "api_access": True,
        "daily_requests": 500,
        "per_minute": 100,
        "max_active_keys": 2,
        "bulk_max": 50,
    },
    "pro": {
        "name": "Pro",
        "api_access": True,
        "daily_requests": 1000,
        "per_minute": 200,
        "max_active_keys": 5,
        "bulk_max": 100,
    },
}


def plan(code: str) -> Plan:
    """The seeded plan row (recreated if a transactional test flushed the table)."""
    obj, _ = Plan.objects.get_or_create(code=code, defaults=PLAN_ROWS[code])
    return obj


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Account

    name = factory.Sequence(lambda n: f"Account {n}")
    plan = factory.LazyFunction(lambda: plan("pro"))
    credits = 0
    callback_secret = factory.LazyFunction(webhook_secret_generate)


class ApiKeyFactory(factory.django.DjangoModelFactory):
    """A key row; the raw value is left on the instance as ``raw_key`` (as at creation)."""

    class Meta:
        model = ApiKey

    account = factory.SubFactory(AccountFactory)
    mode = ApiKey.MODE_TEST
    name = "test"
    raw = factory.LazyAttribute(lambda o: f"sk_{o.mode}_{_random_base62(40)}")
    prefix = factory.LazyAttribute(lambda o: o.raw[:12])
    key_hash = factory.LazyAttribute(lambda o: api_key_hash(o.raw))

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        raw = kwargs.pop("raw")
        obj = super()._create(model_class, *args, **kwargs)
        obj.raw_key = raw
        return obj


class BulkJobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BulkJob

    account = factory.SubFactory(AccountFactory)
    total = 0


class ContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contact

    account = factory.SubFactory(AccountFactory)
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    company_name = "Acme"
    domain = "acme.com"
    enrichment_type = factory.LazyFunction(lambda: ["email"])
    sandbox = True


def live_contact(account: Account, **fields) -> Contact:
    """A live contact of ``account`` for Sarah Chen at Stripe (an email lookup by default)."""
    fields.setdefault("enrichment_type", ["email"])
    fields.setdefault("first_name", "Sarah")
    fields.setdefault("last_name", "Chen")
    fields.setdefault("company_name", "Stripe")
    fields.setdefault("domain", "stripe.com")
    return ContactFactory(account=account, sandbox=False, **fields)


def leased_contact(
    *, lease: float | None = None, age: float = 0, runs: int | None = None, **fields
) -> Contact:
    """A contact accepted ``age`` seconds ago whose lease ends ``lease`` seconds from now
    (None: never claimed; negative: lapsed), claimed ``runs`` times (default: 1 if leased)."""
    import uuid

    now = timezone.now()
    contact = ContactFactory(**fields)
    Contact.objects.filter(pk=contact.pk).update(
        created_at=now - timedelta(seconds=age),
        lease_expires_at=None if lease is None else now + timedelta(seconds=lease),
        lease_owner=None if lease is None else uuid.uuid4(),
        run_count=runs if runs is not None else int(lease is not None),
    )
    contact.refresh_from_db()
    return contact


class IdempotencyRecordFactory(factory.django.DjangoModelFactory):
    """A completed enrich request's stored answer, live for 24 h."""

    class Meta:
        model = IdempotencyRecord

    account = factory.SubFactory(AccountFactory)
    key = factory.Sequence(lambda n: f"idem-{n}")
    fingerprint = "f" * 64
    method = "POST"
    path = "/api/v1/enrich"
    state = IdempotencyRecord.COMPLETED
    response_status = 202
    response_body = b'{"enrichment_id": "abc"}'
    locked_at = factory.LazyFunction(timezone.now)
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(hours=24))
