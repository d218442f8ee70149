"""Each vendor adapter against its vendor's documented HTTP shapes (mocked with ``responses``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests
import responses

from apps.providers import registry
from apps.providers.base import ProviderError
from apps.providers.http import parse_reset_time, parse_retry_after
from tests.support.vendors import (
    APOLLO_URL,
    HUNTER_URL,
    PDL_URL,
    QUERY,
    apollo_body,
    hunter_body,
    hunter_error,
    pdl_body,
    pdl_error,
    use_vendors,
)

# vendor -> (HTTP method, URL, a kind it serves)
VENDORS = {
    "hunter": (responses.GET, HUNTER_URL, "email"),
    "pdl": (responses.GET, PDL_URL, "email"),
    "apollo": (responses.POST, APOLLO_URL, "email"),
}


@pytest.fixture(autouse=True)
def _vendors(settings):
    use_vendors(settings)
    yield
    registry.provider.cache_clear()


def adapter(name: str):
    return registry.provider(name)


# --- success ----------------------------------------------------------------------------------


@responses.activate
def test_hunter_finds_email_with_status_score_and_sends_key_in_header():
    responses.get(HUNTER_URL, json=hunter_body(status="accept_all", score=91))
    found = adapter("hunter").lookup(QUERY, "email")
    assert found.confidence == 91
    assert found.data["email"] == "Sarah.Chen@Stripe.com"  # the waterfall lowercases
    assert found.data["email_status"] == "catch_all"
    assert found.data["job_title"] == "Head of Growth"
    request = responses.calls[0].request
    assert request.headers["X-API-KEY"] == "test-hunter-key"
    assert "api_key" not in request.url  # the secret never goes into a URL
    assert "domain=stripe.com" in request.url and "first_name=Sarah" in request.url


@responses.activate
def test_hunter_phone_comes_from_phone_number():
    responses.get(HUNTER_URL, json=hunter_body(phone="+1 415-555-0123"))
    found = adapter("hunter").lookup(QUERY, "phone")
    assert found.data["phones"] == [{"number": "+1 415-555-0123", "type": "work"}]


@responses.activate
def test_pdl_finds_email_phone_and_personal_email_with_likelihood_as_confidence():
    responses.get(PDL_URL, json=pdl_body(likelihood=8, personal_emails=["sarah@gmail.com"]))
    pdl = adapter("pdl")
    email = pdl.lookup(QUERY, "email")
    assert (email.data["email"], email.data["email_status"], email.confidence) == (
        "sarah.chen@stripe.com",
        "unknown",
        80,
    )
    assert pdl.lookup(QUERY, "phone").data["phones"] == [
        {"number": "+14155550123", "type": "mobile"}
    ]
    assert pdl.lookup(QUERY, "personal_email").data["personal_email"] == "sarah@gmail.com"
    first = responses.calls[0].request
    assert first.headers["X-Api-Key"] == "test-pdl-key"
    assert "required=work_email" in first.url and "profile=" in first.url
    assert "required=phone_numbers" in responses.calls[1].request.url


@responses.activate
def test_apollo_maps_verified_to_valid_and_guessed_below_threshold():
    responses.post(APOLLO_URL, json=apollo_body(email_status="verified"))
    responses.post(APOLLO_URL, json=apollo_body(email_status="guessed"))
    verified = adapter("apollo").lookup(QUERY, "email")
    assert (verified.data["email_status"], verified.confidence) == ("valid", 95)
    guessed = adapter("apollo").lookup(QUERY, "email")
    assert guessed.data["email_status"] == "unknown"
    assert guessed.confidence < 80
    request = responses.calls[0].request
    assert request.headers["x-api-key"] == "test-apollo-key"
    assert "domain=stripe.com" in request.url and "organization_name=Stripe" in request.url


@responses.activate
def test_apollo_personal_email_asks_for_reveal():
    responses.post(APOLLO_URL, json=apollo_body(personal_emails=["s.chen@gmail.com"]))
    found = adapter("apollo").lookup(QUERY, "personal_email")
    assert found.data["personal_email"] == "s.chen@gmail.com"
    assert "reveal_personal_emails=true" in responses.calls[0].request.url


# --- not found ----------------------------------------------------------------------------------


@responses.activate
def test_hunter_not_found_is_a_null_email():
    responses.get(HUNTER_URL, json=hunter_body(email=None, score=None, status=None))
    assert adapter("hunter").lookup(QUERY, "email") is None


@responses.activate
def test_hunter_451_person_opted_out_is_not_found_not_an_error():
    responses.get(
        HUNTER_URL,
        status=451,
        json=hunter_error(451, "claimed_email", "The person behind this email has opted out"),
    )
    assert adapter("hunter").lookup(QUERY, "email") is None


@responses.activate
def test_pdl_not_found_is_http_404():
    responses.get(
        PDL_URL,
        status=404,
        json=pdl_error(404, "not_found", "No records were found matching your request"),
    )
    assert adapter("pdl").lookup(QUERY, "email") is None


@responses.activate
def test_apollo_not_found_is_a_null_person():
    responses.post(APOLLO_URL, json={"person": None})
    assert adapter("apollo").lookup(QUERY, "email") is None


@responses.activate
def test_apollo_unavailable_or_locked_email_is_not_found():
    responses.post(APOLLO_URL, json=apollo_body(email=None, email_status="unavailable"))
    responses.post(
        APOLLO_URL, json=apollo_body(email="email_not_unlocked@domain.com", email_status=None)
    )
    assert adapter("apollo").lookup(QUERY, "email") is None
    assert adapter("apollo").lookup(QUERY, "email") is None


# --- errors, for every vendor -----------------------------------------------------------------

ERROR_BODIES = {
    "hunter": lambda status: hunter_error(status, "error", f"status {status}"),
    "pdl": lambda status: pdl_error(status, "error", f"status {status}"),
    "apollo": lambda status: {"error": f"status {status}"},
}


@pytest.mark.parametrize("vendor", VENDORS)
@responses.activate
def test_401_is_permanent(vendor):
    method, url, kind = VENDORS[vendor]
    responses.add(method, url, status=401, json=ERROR_BODIES[vendor](401))
    with pytest.raises(ProviderError) as info:
        adapter(vendor).lookup(QUERY, kind)
    assert info.value.retryable is False
    assert info.value.provider_fault is True  # unusable for us: counts towards the breaker
    assert "401" in str(info.value)
    assert "test-" not in str(info.value)  # the key is never part of an error text


@pytest.mark.parametrize("vendor", VENDORS)
@responses.activate
def test_429_is_retryable_with_retry_after(vendor):
    method, url, kind = VENDORS[vendor]
    responses.add(
        method, url, status=429, json=ERROR_BODIES[vendor](429), headers={"Retry-After": "7"}
    )
    with pytest.raises(ProviderError) as info:
        adapter(vendor).lookup(QUERY, kind)
    assert info.value.retryable is True
    assert info.value.retry_after == 7.0


@pytest.mark.parametrize(
    "reset",
    [
        lambda now: (now + timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        lambda now: str(int(now.timestamp()) + 30),
    ],
    ids=["iso", "epoch"],
)
@responses.activate
def test_pdl_429_waits_until_its_rate_limit_window_resets(reset):
    now = datetime.now(UTC)
    responses.get(
        PDL_URL,
        status=429,
        json=pdl_error(429, "rate_limit_error", "too quick"),
        headers={"x-ratelimit-reset": reset(now)},
    )
    with pytest.raises(ProviderError) as info:
        adapter("pdl").lookup(QUERY, "email")
    assert info.value.retryable is True
    assert 25 <= info.value.retry_after <= 31


@responses.activate
def test_pdl_retry_after_wins_over_the_window_reset():
    responses.get(
        PDL_URL,
        status=429,
        json=pdl_error(429, "rate_limit_error", "too quick"),
        headers={"Retry-After": "2", "x-ratelimit-reset": "2099-01-01T00:00:00Z"},
    )
    with pytest.raises(ProviderError) as info:
        adapter("pdl").lookup(QUERY, "email")
    assert info.value.retry_after == 2.0


@pytest.mark.parametrize(
    ("header", "expected"),
    [(None, None), ("", None), ("soon", None), ("2015-10-21T07:28:00Z", 0.0), ("1", 0.0)],
)
def test_parse_reset_time_past_or_bad(header, expected):
    assert parse_reset_time(header) == expected


@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize("status", [500, 502, 503])
@responses.activate
def test_5xx_is_retryable(vendor, status):
    method, url, kind = VENDORS[vendor]
    responses.add(method, url, status=status, body="<html>Bad gateway</html>")
    with pytest.raises(ProviderError) as info:
        adapter(vendor).lookup(QUERY, kind)
    assert info.value.retryable is True
    assert info.value.retry_after is None


@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize(
    "body", ["not json at all", "[1, 2]", '{"unexpected": true}'], ids=["text", "list", "shape"]
)
@responses.activate
def test_malformed_body_is_permanent(vendor, body):
    method, url, kind = VENDORS[vendor]
    responses.add(method, url, status=200, body=body, content_type="application/json")
    with pytest.raises(ProviderError) as info:
        adapter(vendor).lookup(QUERY, kind)
    assert info.value.retryable is False
    assert "malformed" in str(info.value)


@pytest.mark.parametrize("vendor", VENDORS)
@responses.activate
@pytest.mark.parametrize("status", [400, 422])
def test_400_is_permanent_and_not_the_providers_fault(vendor, status):
    method, url, kind = VENDORS[vendor]
    responses.add(method, url, status=status, json=ERROR_BODIES[vendor](status))
    with pytest.raises(ProviderError) as info:
        adapter(vendor).lookup(QUERY, kind)
    assert info.value.retryable is False
    assert info.value.provider_fault is False  # this request was rejected; the vendor is up


@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize(
    "exc", [requests.ConnectTimeout(), requests.ReadTimeout(), requests.ConnectionError()]
)
@responses.activate
def test_timeouts_and_connection_errors_are_retryable(vendor, exc):
    method, url, kind = VENDORS[vendor]
    responses.add(method, url, body=exc)
    with pytest.raises(ProviderError) as info:
        adapter(vendor).lookup(QUERY, kind)
    assert info.value.retryable is True


@responses.activate
def test_hunter_403_rate_limit_is_retryable_as_documented():
    responses.get(
        HUNTER_URL, status=403, json=hunter_error(403, "rate_limit", "You have reached the limit")
    )
    with pytest.raises(ProviderError) as info:
        adapter("hunter").lookup(QUERY, "email")
    assert info.value.retryable is True


@pytest.mark.parametrize("vendor", ["pdl", "apollo"])
@responses.activate
def test_403_is_permanent_for_other_vendors(vendor):
    method, url, kind = VENDORS[vendor]
    responses.add(method, url, status=403, json=ERROR_BODIES[vendor](403))
    with pytest.raises(ProviderError) as info:
        adapter(vendor).lookup(QUERY, kind)
    assert info.value.retryable is False


def test_timeouts_and_pool_come_from_settings(settings):
    settings.PROVIDER_CONNECT_TIMEOUT = 1.5
    settings.PROVIDER_READ_TIMEOUT = 4.0
    settings.PROVIDER_HTTP_POOL_SIZE = 77
    registry.provider.cache_clear()
    hunter = adapter("hunter")
    assert hunter.timeout == (1.5, 4.0)
    assert hunter.session.get_adapter("https://api.hunter.io")._pool_maxsize == 77


@responses.activate
def test_configured_timeout_is_passed_to_requests():
    responses.get(HUNTER_URL, json=hunter_body())
    adapter("hunter").lookup(QUERY, "email", timeout=(0.5, 2.0))
    assert responses.calls[0].request.req_kwargs["timeout"] == (0.5, 2.0)


def test_simulator_url_overrides_every_vendor_and_stands_in_for_keys(settings):
    use_vendors(settings, simulator_url="http://127.0.0.1:8100/")
    settings.PROVIDER_CREDENTIALS = {}
    registry.provider.cache_clear()
    for name in ("hunter", "pdl", "apollo"):
        assert adapter(name).base_url == "http://127.0.0.1:8100"
        assert adapter(name).available()


def test_vendor_without_key_or_simulator_is_unavailable(settings):
    settings.PROVIDER_CREDENTIALS = {}
    registry.provider.cache_clear()
    assert not adapter("pdl").available()


@pytest.mark.parametrize(
    ("header", "expected"),
    [("3", 3.0), ("0", 0.0), ("", None), ("soon", None), (None, None)],
)
def test_parse_retry_after(header, expected):
    assert parse_retry_after(header) == expected


def test_parse_retry_after_http_date():
    value = parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT")
    assert value == 0.0  # in the past: retry now
