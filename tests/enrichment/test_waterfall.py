"""The waterfall's rules, through ``contacts_run`` with only the vendors' HTTP mocked."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest
import responses
from django.core.cache import cache
from django.utils import timezone

from apps.accounts.models import LedgerEntry
from apps.enrichment import services, waterfall
from apps.enrichment.models import Contact, ProviderAttempt
from apps.enrichment.normalize import normalize_email
from apps.enrichment.waterfall import _backoff
from apps.providers import breaker, registry
from apps.providers.base import Provider
from apps.providers.models import ProviderConfig
from tests.factories import BulkJobFactory, live_contact
from tests.support.api import make_client
from tests.support.vendors import (
    APOLLO_URL,
    HUNTER_URL,
    PDL_URL,
    apollo_body,
    hunter_body,
    hunter_error,
    pdl_body,
    pdl_error,
    use_vendors,
)

pytestmark = pytest.mark.django_db

PDL_NOT_FOUND = pdl_error(404, "not_found", "No records were found matching your request")


@pytest.fixture(autouse=True)
def _vendors(settings):
    use_vendors(settings)
    yield
    registry.provider.cache_clear()
    breaker.reset()


@pytest.fixture
def account():
    return make_client(mode="live", credits=1000).account


class _SleepSpy:
    """The waterfall module's ``time``, recording how long each ``sleep`` was asked for."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.asked.append(seconds)
        time.sleep(seconds)

    def __getattr__(self, name: str):
        return getattr(time, name)


@pytest.fixture
def waits(monkeypatch) -> list[float]:
    """The seconds each wait between retries lasted (each is still really waited)."""
    spy = _SleepSpy()
    monkeypatch.setattr(waterfall, "time", spy)
    return spy.asked


def run(*contacts) -> None:
    services.contacts_run(contact_ids=[str(c.pk) for c in contacts])
    for contact in contacts:
        contact.refresh_from_db()


def attempts(contact) -> list[tuple[str, str, str]]:
    return list(contact.attempts.values_list("provider", "kind", "outcome"))


# --- order, threshold, attempts ----------------------------------------------------------------


@responses.activate
def test_stops_at_first_provider_at_or_above_threshold(account):
    responses.get(HUNTER_URL, json=hunter_body(email=None, score=None, status=None))
    responses.post(APOLLO_URL, json=apollo_body(email="Sarah.Chen@Stripe.COM"))
    responses.get(PDL_URL, json=pdl_body())
    contact = live_contact(account)
    run(contact)
    assert contact.result_status == Contact.VERIFIED
    assert contact.result["email"] == "sarah.chen@stripe.com"  # lowercased
    assert contact.result["email_status"] == "valid"
    assert contact.result["providers"] == {"email": "apollo"}
    assert attempts(contact) == [("hunter", "email", "miss"), ("apollo", "email", "hit")]
    assert len(responses.calls) == 2  # PDL never called


@responses.activate
def test_confidence_exactly_at_the_threshold_is_a_hit(account, settings):
    settings.PROVIDER_CONFIDENCE_THRESHOLD = 85
    responses.get(HUNTER_URL, json=hunter_body(score=85))
    contact = live_contact(account)
    run(contact)
    assert attempts(contact) == [("hunter", "email", "hit")]
    assert contact.result["confidence"] == 85


@responses.activate
def test_low_confidence_answer_is_a_miss_and_the_waterfall_goes_on(account, settings):
    settings.PROVIDER_CONFIDENCE_THRESHOLD = 90
    responses.get(HUNTER_URL, json=hunter_body(score=85))
    responses.post(APOLLO_URL, json=apollo_body(email_status="verified"))
    contact = live_contact(account)
    run(contact)
    assert contact.result["providers"] == {"email": "apollo"}
    miss = contact.attempts.get(provider="hunter")
    assert miss.outcome == ProviderAttempt.MISS
    assert "confidence 85 < 90" in miss.error
    assert contact.result["confidence"] == 95


@responses.activate
def test_invalid_email_is_a_miss_and_catch_all_is_kept(account):
    responses.get(HUNTER_URL, json=hunter_body(status="invalid"))
    responses.post(APOLLO_URL, json={"person": None})
    responses.get(PDL_URL, status=404, json=PDL_NOT_FOUND)
    first = live_contact(account)
    run(first)
    assert first.result_status == Contact.NOT_FOUND
    assert attempts(first) == [
        ("hunter", "email", "miss"),
        ("apollo", "email", "miss"),
        ("pdl", "email", "miss"),
    ]
    hunter_miss = first.attempts.get(provider="hunter")
    assert hunter_miss.error == "unusable answer: email status 'invalid'"
    responses.replace(responses.GET, HUNTER_URL, json=hunter_body(status="accept_all"))
    second = live_contact(account)
    run(second)
    assert (second.result["email_status"], second.result["providers"]) == (
        "catch_all",
        {"email": "hunter"},
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Sarah.Chen@Stripe.COM ", "sarah.chen@stripe.com"),
        ("sarah@stripe", None),
        ("sarah@@stripe.com", None),
        ("sa rah@stripe.com", None),
        ("sarah\t@stripe.com", None),
        ("sarah@stripe..com", None),
        ("sarah@.stripe.com", None),
        ("@stripe.com", None),
        (None, None),
        (42, None),
    ],
)
def test_normalize_email(raw, expected):
    assert normalize_email(raw) == expected


@responses.activate
def test_account_order_overrides_settings(account):
    account.provider_order = {"email": ["pdl", "hunter"]}
    account.save()
    responses.get(PDL_URL, json=pdl_body())
    contact = live_contact(account)
    run(contact)
    assert contact.result["providers"] == {"email": "pdl"}
    assert attempts(contact) == [("pdl", "email", "hit")]


@responses.activate
def test_disabled_provider_is_never_called_and_priority_reorders(account):
    ProviderConfig.objects.create(name="hunter", enabled=False)
    ProviderConfig.objects.create(name="pdl", priority_email=1)
    responses.get(PDL_URL, status=404, json=PDL_NOT_FOUND)
    responses.post(APOLLO_URL, json=apollo_body())
    contact = live_contact(account)
    run(contact)
    assert attempts(contact) == [("pdl", "email", "miss"), ("apollo", "email", "hit")]


@responses.activate
def test_provider_config_timeout_reaches_the_call(account):
    ProviderConfig.objects.create(name="hunter", connect_timeout=0.7, read_timeout=2.5)
    responses.get(HUNTER_URL, json=hunter_body())
    run(live_contact(account))
    assert responses.calls[0].request.req_kwargs["timeout"] == (0.7, 2.5)


# --- phones -----------------------------------------------------------------------------------


@responses.activate
def test_phones_normalised_to_e164_and_filtered_to_wanted_countries(account):
    responses.get(
        PDL_URL,
        json=pdl_body(
            mobile_phone="+44 7400 123456",
            phone_numbers=["+44 7400 123456", "(415) 555-2671", "+33 6 12 34 56 78", "12"],
        ),
    )
    contact = live_contact(
        account,
        enrichment_type=["phone"],
        linkedin_url="https://linkedin.com/in/sarahchen",
        phone_country_codes=["US", "FR"],
    )
    run(contact)
    assert contact.result_status == Contact.VERIFIED
    # The UK mobile is dropped; the bare US number is parsed with the contact's first country.
    assert contact.result["phones"] == [
        {"number": "+14155552671", "type": "unknown", "country": "US"},
        {"number": "+33612345678", "type": "mobile", "country": "FR"},
    ]
    assert contact.result["providers"] == {"phone": "pdl"}
    assert contact.credits_charged == 10


@responses.activate
def test_phone_only_in_unwanted_country_is_a_miss_and_next_provider_is_tried(account):
    responses.get(PDL_URL, json=pdl_body(mobile_phone="+447400123456", phone_numbers=[]))
    responses.get(HUNTER_URL, json=hunter_body(phone="+1 415-555-2671"))
    contact = live_contact(
        account,
        enrichment_type=["phone"],
        linkedin_url="https://linkedin.com/in/sarahchen",
        phone_country_codes=["US"],
    )
    run(contact)
    assert attempts(contact) == [("pdl", "phone", "miss"), ("hunter", "phone", "hit")]
    assert contact.result["phones"] == [{"number": "+14155552671", "type": "work", "country": "US"}]
    # The miss says what was wrong with the phone answer, not with an email.
    miss = contact.attempts.get(provider="pdl")
    assert miss.error == "unusable answer: no valid phone number in US"


@pytest.mark.parametrize(
    ("requested", "expected"),
    [(None, ["+447400123456"]), (["US"], ["+14155552671"])],
    ids=["account-default", "request-wins"],
)
@responses.activate
def test_phones_filtered_to_request_countries_else_the_account_default(
    account, requested, expected
):
    account.default_phone_country_codes = ["GB"]
    account.save()
    api = make_client(mode="live", account=account)
    responses.get(
        PDL_URL, json=pdl_body(mobile_phone="+14155552671", phone_numbers=["+447400123456"])
    )
    body = {
        "first_name": "Sarah",
        "last_name": "Chen",
        "domain": "stripe.com",
        "linkedin_url": "https://www.linkedin.com/in/sarahchen",
        "enrichment_type": ["phone"],
    }
    if requested:
        body["phone_country_codes"] = requested
    response = api.post("/api/v1/enrich", body, format="json")
    assert response.status_code == 202, response.content
    contact = Contact.objects.get(pk=response.json()["enrichment_id"])
    run(contact)
    assert [p["number"] for p in contact.result["phones"]] == expected


@responses.activate
def test_national_number_is_read_in_each_wanted_country_in_turn(account):
    responses.get(
        PDL_URL,
        json=pdl_body(mobile_phone=None, phone_numbers=["(415) 555-2671", "06 12 34 56 78"]),
    )
    contact = live_contact(
        account,
        enrichment_type=["phone"],
        linkedin_url="https://linkedin.com/in/sarahchen",
        phone_country_codes=["fr", "US"],
    )
    run(contact)
    # Not valid as a French number, valid as a US one: kept, not dropped.
    assert [(p["number"], p["country"]) for p in contact.result["phones"]] == [
        ("+14155552671", "US"),
        ("+33612345678", "FR"),
    ]


@responses.activate
def test_each_kind_names_its_own_provider(account):
    responses.get(HUNTER_URL, json=hunter_body(phone=None))
    responses.get(PDL_URL, json=pdl_body(mobile_phone="+14155552671"))
    contact = live_contact(
        account, enrichment_type=["email", "phone"], linkedin_url="https://linkedin.com/in/sc"
    )
    run(contact)
    assert contact.result["providers"] == {"email": "hunter", "phone": "pdl"}
    assert contact.credits_charged == 11
    assert LedgerEntry.objects.get(contact=contact, entry_type="charge").amount == -11


# --- retries, circuit breaker -----------------------------------------------------------------


@responses.activate
def test_retryable_error_is_retried_then_succeeds(account):
    responses.get(HUNTER_URL, status=503, body="unavailable")
    responses.get(HUNTER_URL, json=hunter_body())
    contact = live_contact(account)
    run(contact)
    assert attempts(contact) == [("hunter", "email", "error"), ("hunter", "email", "hit")]
    assert "HTTP 503" in contact.attempts.first().error


@responses.activate
def test_retries_are_bounded_then_next_provider(account, settings):
    settings.PROVIDER_MAX_RETRIES = 2
    responses.get(HUNTER_URL, status=502, body="bad gateway")
    responses.post(APOLLO_URL, json=apollo_body())
    contact = live_contact(account)
    run(contact)
    assert attempts(contact) == [("hunter", "email", "error")] * 3 + [("apollo", "email", "hit")]
    assert contact.result_status == Contact.VERIFIED


@responses.activate
def test_permanent_error_is_not_retried(account):
    responses.get(HUNTER_URL, status=401, json=hunter_error(401, "auth", "No valid API key"))
    responses.post(APOLLO_URL, json=apollo_body())
    contact = live_contact(account)
    run(contact)
    assert attempts(contact) == [("hunter", "email", "error"), ("apollo", "email", "hit")]


@responses.activate
def test_retry_after_is_honoured_and_a_long_one_skips_the_provider_for_everyone(
    account, settings, redis_client
):
    settings.PROVIDER_RETRY_AFTER_MAX_SECONDS = 2
    # A short Retry-After is waited for, then the same provider is tried again.
    responses.get(HUNTER_URL, status=429, json={}, headers={"Retry-After": "1"})
    responses.get(HUNTER_URL, json=hunter_body())
    contact = live_contact(account)
    started = time.monotonic()
    run(contact)
    assert time.monotonic() - started >= 1.0
    assert attempts(contact) == [("hunter", "email", "error"), ("hunter", "email", "hit")]

    # A long one is not waited for: the provider's breaker opens for that long.
    responses.replace(
        responses.GET, HUNTER_URL, status=429, json={}, headers={"Retry-After": "120"}
    )
    responses.post(APOLLO_URL, json=apollo_body())
    second, third = live_contact(account), live_contact(account)
    run(second)
    assert attempts(second) == [("hunter", "email", "error"), ("apollo", "email", "hit")]
    assert 100 < redis_client.ttl("sluice:1:breaker:hunter:open") <= 120
    run(third)
    assert attempts(third)[0] == ("hunter", "email", "skipped")
    assert third.attempts.first().error == "circuit open"


@responses.activate
def test_a_long_retry_after_opens_the_breaker_even_without_retries_left(
    account, settings, redis_client
):
    settings.PROVIDER_MAX_RETRIES = 0
    settings.PROVIDER_BREAKER_FAILURES = 100
    responses.get(HUNTER_URL, status=429, json={}, headers={"Retry-After": "60"})
    responses.post(APOLLO_URL, json=apollo_body())
    first, second = live_contact(account), live_contact(account)
    run(first)
    run(second)
    assert attempts(first) == [("hunter", "email", "error"), ("apollo", "email", "hit")]
    assert attempts(second)[0] == ("hunter", "email", "skipped")
    assert 50 < redis_client.ttl("sluice:1:breaker:hunter:open") <= 60


@responses.activate
def test_exponential_backoff_never_waits_longer_than_the_retry_after_cap(account, settings, waits):
    settings.PROVIDER_MAX_RETRIES = 1
    settings.PROVIDER_RETRY_BACKOFF_SECONDS = 60  # misconfigured: must not hold the thread
    settings.PROVIDER_RETRY_AFTER_MAX_SECONDS = 0.05
    responses.get(HUNTER_URL, status=503, body="")
    responses.get(HUNTER_URL, json=hunter_body())
    contact = live_contact(account)
    run(contact)
    assert waits == [0.05]  # the cap, not 30 to 90 s of backoff
    assert attempts(contact) == [("hunter", "email", "error"), ("hunter", "email", "hit")]
    assert not breaker.is_open("hunter")


def test_backoff_is_exponential_with_jitter_unless_the_vendor_said_how_long(settings):
    settings.PROVIDER_RETRY_BACKOFF_SECONDS = 1.0
    waits = {n: [_backoff(n, None) for _ in range(200)] for n in range(3)}
    for n, values in waits.items():
        assert all(0.5 * 2**n <= w <= 1.5 * 2**n for w in values)
        assert len(set(values)) > 100  # jittered, so retrying threads spread out
    assert _backoff(2, 0.3) == 0.3  # Retry-After wins


@responses.activate
def test_breaker_opens_after_repeated_failures_and_state_is_shared(account, settings):
    settings.PROVIDER_MAX_RETRIES = 0
    settings.PROVIDER_BREAKER_FAILURES = 3
    responses.get(HUNTER_URL, status=500, body="boom")
    responses.post(APOLLO_URL, json=apollo_body())
    contacts = [live_contact(account) for _ in range(4)]
    for contact in contacts:
        run(contact)
    hunter_calls = [c for c in responses.calls if c.request.url.startswith(HUNTER_URL)]
    assert len(hunter_calls) == 3
    assert attempts(contacts[3])[0] == ("hunter", "email", "skipped")
    # Another worker (a process that never saw a failure) sees it open through Redis.
    breaker._seen.clear()
    breaker._failing.clear()
    assert breaker.is_open("hunter")
    breaker.reset("hunter")
    assert not breaker.is_open("hunter")


@responses.activate
def test_breaker_half_opens_after_the_cool_down_one_probe_decides(account, settings):
    settings.PROVIDER_MAX_RETRIES = 0
    settings.PROVIDER_BREAKER_FAILURES = 2
    responses.get(HUNTER_URL, status=500, body="boom")
    responses.post(APOLLO_URL, json=apollo_body())

    def hunter_calls() -> int:
        return sum(c.request.url.startswith(HUNTER_URL) for c in responses.calls)

    for _ in range(2):
        run(live_contact(account))
    assert hunter_calls() == 2  # the breaker is open now
    cache.delete("breaker:hunter:open")  # the cool-down is over: half-open
    probe, after = live_contact(account), live_contact(account)
    run(probe)
    run(after)
    assert attempts(probe)[0] == ("hunter", "email", "error")
    # The failed probe reopened it at once: no second streak of failing calls.
    assert attempts(after)[0] == ("hunter", "email", "skipped")
    assert hunter_calls() == 3

    cache.delete("breaker:hunter:open")
    responses.replace(responses.GET, HUNTER_URL, json=hunter_body())
    recovered = [live_contact(account) for _ in range(3)]
    for contact in recovered:
        run(contact)
        assert contact.result["providers"] == {"email": "hunter"}
    assert hunter_calls() == 6


@responses.activate
def test_requests_the_vendor_rejects_do_not_open_its_breaker(account, settings):
    settings.PROVIDER_BREAKER_FAILURES = 2
    responses.get(HUNTER_URL, status=400, json=hunter_error(400, "wrong_params", "Invalid domain"))
    responses.post(APOLLO_URL, json=apollo_body())
    contacts = [live_contact(account) for _ in range(4)]
    for contact in contacts:
        run(contact)
        assert attempts(contact) == [("hunter", "email", "error"), ("apollo", "email", "hit")]
    assert not breaker.is_open("hunter")


@responses.activate
def test_every_provider_erroring_is_failed_and_free(account, settings):
    settings.PROVIDER_MAX_RETRIES = 0
    responses.get(HUNTER_URL, status=500, body="")
    responses.post(APOLLO_URL, status=503, body="")
    responses.get(PDL_URL, status=502, body="")
    contact = live_contact(account)
    run(contact)
    assert contact.result_status == Contact.FAILED
    assert contact.credits_charged == 0
    assert [a[2] for a in attempts(contact)] == ["error"] * 3
    account.refresh_from_db()
    assert account.credits == 1000


# --- credits ----------------------------------------------------------------------------------


@responses.activate
def test_max_credits_skips_a_kind_it_cannot_pay_for(account):
    responses.get(HUNTER_URL, json=hunter_body())
    contact = live_contact(
        account,
        enrichment_type=["email", "phone"],
        linkedin_url="https://linkedin.com/in/sc",
        max_credits=5,
    )
    run(contact)
    assert contact.result_status == Contact.VERIFIED
    assert contact.credits_charged == 1
    assert contact.result["phones"] == []
    skipped = contact.attempts.get(kind="phone")
    assert skipped.outcome == ProviderAttempt.SKIPPED
    assert "max_credits" in skipped.error
    assert all(HUNTER_URL in c.request.url for c in responses.calls)  # no phone provider called


@responses.activate
def test_max_credits_zero_calls_nobody_and_is_no_credits(account):
    contact = live_contact(account, max_credits=0)
    run(contact)
    assert contact.result_status == Contact.NO_CREDITS
    assert len(responses.calls) == 0


@responses.activate
def test_credits_running_out_mid_batch(settings):
    settings.ENRICHMENT_CONCURRENCY = 1  # deterministic order of spending
    account = make_client(mode="live", credits=3).account
    responses.get(HUNTER_URL, json=hunter_body())
    bulk = BulkJobFactory(account=account, total=5)
    contacts = [live_contact(account, bulk=bulk, position=i) for i in range(5)]
    run(*contacts)
    statuses = sorted(c.result_status for c in contacts)
    assert statuses == [Contact.NO_CREDITS] * 2 + [Contact.VERIFIED] * 3
    assert len(responses.calls) == 3  # no paid call for what can no longer be paid
    for contact in contacts:
        if contact.result_status == Contact.NO_CREDITS:
            assert contact.result["email"] is None
            assert contact.credits_charged == 0
    account.refresh_from_db()
    assert account.credits == 0
    assert LedgerEntry.objects.filter(account=account, entry_type="charge").count() == 3
    bulk.refresh_from_db()
    assert (bulk.verified, bulk.no_credits, bulk.credits_used) == (3, 2, 3)


@responses.activate
def test_credits_running_out_with_concurrent_waterfalls_calls_no_unpayable_provider(settings):
    settings.ENRICHMENT_CONCURRENCY = 8
    account = make_client(mode="live", credits=3).account
    responses.get(HUNTER_URL, json=hunter_body())
    contacts = [live_contact(account) for _ in range(12)]
    run(*contacts)
    statuses = [c.result_status for c in contacts]
    assert statuses.count(Contact.VERIFIED) == 3
    assert statuses.count(Contact.NO_CREDITS) == 9
    # The price is reserved before calling, so threads never call for credits already taken.
    assert len(responses.calls) == 3
    account.refresh_from_db()
    assert account.credits == 0


@responses.activate
def test_charge_failing_at_finish_yields_no_credits_without_data(account):
    responses.get(HUNTER_URL, json=hunter_body())
    contact = live_contact(account)
    # Spent elsewhere (another worker) after this chunk read the balance.
    _token, claimed = services.contacts_claim(contact_ids=[str(contact.pk)])
    assert claimed
    from apps.enrichment.waterfall import CreditBudget, waterfall_run

    outcome = waterfall_run(contact, budget=CreditBudget(1000))
    type(account).objects.filter(pk=account.pk).update(credits=0)
    assert services.contacts_finish(items=[(contact, outcome)]) == 1
    contact.refresh_from_db()
    assert contact.result_status == Contact.NO_CREDITS
    assert contact.result["email"] is None and contact.result["providers"] == {}
    assert not LedgerEntry.objects.filter(contact=contact).exists()
    assert list(contact.attempts.values_list("outcome", flat=True)) == ["hit"]


# --- reuse of past results ---------------------------------------------------------------------


@responses.activate
def test_verified_result_for_same_person_is_reused_within_ttl(account):
    responses.get(HUNTER_URL, json=hunter_body())
    key = "linkedin.com/in/sarahchen"
    first = live_contact(account, person_key=key)
    run(first)
    assert len(responses.calls) == 1
    second = live_contact(account, person_key=key)
    run(second)
    assert len(responses.calls) == 1  # no provider called again
    assert attempts(second) == [("hunter", "email", "cache")]
    assert second.result["email"] == first.result["email"]
    assert second.result["providers"] == {"email": "hunter"}
    assert second.result_status == Contact.VERIFIED
    assert second.credits_charged == 1  # found (from our store) is charged like found


@responses.activate
def test_reuse_is_per_account_and_ends_with_the_ttl(account, settings):
    responses.get(HUNTER_URL, json=hunter_body())
    key = "name:sarah chen@stripe.com"
    first = live_contact(account, person_key=key)
    run(first)
    other_account = make_client(mode="live", credits=10).account
    run(live_contact(other_account, person_key=key))
    assert len(responses.calls) == 2  # another account's results are never reused

    Contact.objects.filter(pk=first.pk).update(finished_at=timezone.now() - timedelta(hours=2))
    Contact.objects.filter(account=other_account).delete()
    settings.PROVIDER_RESULT_REUSE_TTL_SECONDS = 3600
    third = live_contact(account, person_key=key)
    run(third)
    assert len(responses.calls) == 3
    assert attempts(third) == [("hunter", "email", "hit")]


@responses.activate
def test_reuse_covers_the_kinds_it_has_and_asks_providers_for_the_rest(account):
    responses.get(HUNTER_URL, json=hunter_body())
    responses.get(PDL_URL, json=pdl_body(mobile_phone="+14155552671"))
    key = "linkedin.com/in/sarahchen"
    run(live_contact(account, person_key=key))
    second = live_contact(
        account, person_key=key, enrichment_type=["email", "phone"], linkedin_url="https://x.co"
    )
    run(second)
    assert attempts(second) == [("hunter", "email", "cache"), ("pdl", "phone", "hit")]


@responses.activate
def test_reused_phones_are_filtered_again_for_this_contacts_countries(account):
    account.provider_order = {"phone": ["pdl"]}
    account.save()
    responses.get(
        PDL_URL, json=pdl_body(mobile_phone="+14155552671", phone_numbers=["+447400123456"])
    )
    key = "linkedin.com/in/sarahchen"
    fields = {"enrichment_type": ["phone"], "linkedin_url": "https://linkedin.com/in/sarahchen"}
    first = live_contact(account, person_key=key, phone_country_codes=[], **fields)
    run(first)
    assert len(first.result["phones"]) == 2
    gb = live_contact(account, person_key=key, phone_country_codes=["GB"], **fields)
    run(gb)
    assert attempts(gb) == [("pdl", "phone", "cache")]
    assert [p["number"] for p in gb.result["phones"]] == ["+447400123456"]
    assert len(responses.calls) == 1
    de = live_contact(account, person_key=key, phone_country_codes=["DE"], **fields)
    run(de)
    # Nothing reusable in Germany: the providers are asked (and find nothing there either).
    assert attempts(de)[0] == ("pdl", "phone", "miss")
    assert de.result_status == Contact.NOT_FOUND
    assert len(responses.calls) == 2


@responses.activate
def test_reuse_ttl_zero_never_reuses(account, settings):
    settings.PROVIDER_RESULT_REUSE_TTL_SECONDS = 0
    responses.get(HUNTER_URL, json=hunter_body())
    key = "linkedin.com/in/sarahchen"
    run(live_contact(account, person_key=key))
    second = live_contact(account, person_key=key)
    run(second)
    assert attempts(second) == [("hunter", "email", "hit")]
    assert len(responses.calls) == 2


# --- throughput --------------------------------------------------------------------------------


@responses.activate
def test_a_chunk_keeps_many_provider_calls_in_flight(account, settings):
    settings.ENRICHMENT_CONCURRENCY = 8
    in_flight = 0
    peak = 0
    lock = threading.Lock()
    # The vendor answers a call only once 8 are in flight at the same time: the 16 calls pass
    # as two full rounds of 8, or the barrier breaks (30 s: a bound, not a measurement).
    eight_at_once = threading.Barrier(8, timeout=30)
    broken = []

    def vendor(request):
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        try:
            eight_at_once.wait()
        except threading.BrokenBarrierError:
            broken.append(request.url)
        with lock:
            in_flight -= 1
        return 200, {}, json.dumps(hunter_body())

    responses.add_callback(responses.GET, HUNTER_URL, callback=vendor)
    contacts = [live_contact(account) for _ in range(16)]
    assert services.contacts_run(contact_ids=[str(c.pk) for c in contacts]) == 16
    assert not broken, f"{len(broken)} calls never had 7 others in flight beside them"
    assert len(responses.calls) == 16
    assert peak == 8  # every thread of the pool busy, and never more
    assert Contact.objects.filter(pk__in=[c.pk for c in contacts], status="finished").count() == 16
    assert LedgerEntry.objects.filter(account=account, entry_type="charge").count() == 16


@responses.activate
def test_chunk_run_twice_finishes_and_charges_once(account):
    responses.get(HUNTER_URL, json=hunter_body())
    contacts = [live_contact(account) for _ in range(5)]
    ids = [str(c.pk) for c in contacts]
    assert services.contacts_run(contact_ids=ids) == 5
    assert services.contacts_run(contact_ids=ids) == 0
    assert len(responses.calls) == 5
    assert LedgerEntry.objects.filter(account=account, entry_type="charge").count() == 5
    assert ProviderAttempt.objects.filter(contact__in=contacts).count() == 5


class MalformedAnswerProvider(Provider):
    """An adapter with a bug: answers a plain dict instead of ``Found``."""

    name = "malformed"
    kinds = frozenset({"email"})

    def lookup(self, query, kind, *, timeout=None):
        return {"email": "sarah@stripe.com"}


@responses.activate
def test_an_adapter_answering_garbage_is_an_error_and_the_waterfall_goes_on(account, settings):
    settings.PROVIDERS = {
        **settings.PROVIDERS,
        "malformed": f"{__name__}.MalformedAnswerProvider",
    }
    account.provider_order = {"email": ["malformed", "hunter"]}
    account.save()
    responses.get(HUNTER_URL, json=hunter_body())
    contact = live_contact(account)
    run(contact)
    assert contact.status == Contact.FINISHED
    assert attempts(contact) == [("malformed", "email", "error"), ("hunter", "email", "hit")]
    assert "not Found" in contact.attempts.get(provider="malformed").error
    assert contact.result["providers"] == {"email": "hunter"}


def test_no_provider_available_is_failed(account, settings):
    settings.PROVIDER_CREDENTIALS = {}
    registry.provider.cache_clear()
    contact = live_contact(account)
    run(contact)
    assert contact.result_status == Contact.FAILED
    assert contact.attempts.get().error == "no provider available"


def test_max_credits_beyond_the_column_is_a_422(client_factory):
    api = client_factory(mode="live", credits=10)
    body = {
        "first_name": "Sarah",
        "last_name": "Chen",
        "domain": "stripe.com",
        "enrichment_type": ["email"],
        "max_credits": 10**13,
    }
    response = api.post("/api/v1/enrich", body, format="json")
    assert response.status_code == 422
    assert "max_credits" in response.json()["details"]
    assert not Contact.objects.exists()


def test_a_short_budget_asks_for_the_price_and_gives_back_what_it_had():
    from apps.enrichment.waterfall import CreditBudget

    asked = []

    def more(amount: int, unused: int) -> bool:
        asked.append((amount, unused))
        return amount <= 10

    budget = CreditBudget(3, more=more)
    assert budget.reserve(1) and budget.spent == 1
    assert budget.reserve(10)  # 2 left is short: asked for 10, giving back the 2
    assert asked == [(10, 2)] and budget.left == 0 and budget.spent == 11
    assert not budget.reserve(20)
    budget.release(10)  # phone not found: back to the budget
    assert budget.left == 10 and budget.spent == 1
    assert not CreditBudget(0).reserve(1)  # without ``more`` the budget is all there is
