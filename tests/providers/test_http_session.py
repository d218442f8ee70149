"""Vendor HTTP sessions against real local servers: a redirect is never followed (the key
stays with the configured host), and neither environment proxies nor ``~/.netrc`` apply."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from apps.providers import registry
from apps.providers.base import ProviderError
from tests.support.receiver import Answer, Receiver, clean_http_environment
from tests.support.vendors import QUERY, hunter_body, use_vendors

KEY = "test-hunter-key"


def vendor_answer(status: int = 200, **headers: str) -> Answer:
    """Hunter's JSON body, with ``status`` and ``headers``, whatever was asked."""
    return Answer(
        status=status,
        body=json.dumps(hunter_body()).encode(),
        headers={"Content-Type": "application/json", **headers},
    )


@pytest.fixture
def servers() -> Iterator[tuple[Receiver, Receiver]]:
    """The vendor, and a second server standing for any other host (redirect or proxy)."""
    vendor, other = Receiver(vendor_answer()).start(), Receiver(vendor_answer()).start()
    yield vendor, other
    vendor.stop()
    other.stop()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    # No proxy or netrc of the machine running the tests may change what is measured here.
    clean_http_environment(monkeypatch, tmp_path)
    yield
    registry.provider.cache_clear()


def hunter_at(settings, url: str):
    use_vendors(settings)
    settings.PROVIDER_CREDENTIALS = {"hunter": {"api_key": KEY, "base_url": url}}
    registry.provider.cache_clear()
    return registry.provider("hunter")


def test_a_redirect_to_another_host_is_not_followed_and_the_key_never_reaches_it(servers, settings):
    vendor, other = servers
    vendor.default = vendor_answer(302, Location=other.url("/steal?x=1"))
    hunter = hunter_at(settings, vendor.url(""))
    with pytest.raises(ProviderError) as caught:
        hunter.lookup(QUERY, "email")
    assert other.received() == []
    assert len(vendor.received()) == 1 and vendor.received()[0].headers["x-api-key"] == KEY
    error = caught.value
    assert "redirect (not followed)" in str(error) and other.url("") not in str(error)
    # A misconfigured vendor, not a rejected request: counts against it, no retry.
    assert error.retryable is False and error.provider_fault is True


@pytest.mark.parametrize("status", [301, 303, 307, 308])
def test_no_redirect_status_is_followed(servers, settings, status):
    vendor, other = servers
    vendor.default = vendor_answer(status, Location=other.url("/v2/email-finder"))
    with pytest.raises(ProviderError, match=f"HTTP {status} redirect"):
        hunter_at(settings, vendor.url("")).lookup(QUERY, "email")
    assert other.received() == []


def test_a_caller_asking_to_follow_redirects_is_overruled(servers, settings):
    vendor, other = servers
    vendor.default = vendor_answer(302, Location=other.url("/x"))
    hunter = hunter_at(settings, vendor.url(""))
    with pytest.raises(ProviderError):
        hunter.request("GET", "/v2/email-finder", headers={"X-API-KEY": KEY}, allow_redirects=True)
    assert other.received() == []


def test_environment_proxies_are_ignored(servers, settings, monkeypatch):
    vendor, proxy = servers
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, proxy.url(""))
    found = hunter_at(settings, vendor.url("")).lookup(QUERY, "email")
    assert found is not None and found.data["email"]
    assert proxy.received() == []
    assert len(vendor.received()) == 1 and vendor.received()[0].path.startswith("/v2/email-finder")


def test_netrc_credentials_are_not_sent(servers, settings, tmp_path):
    vendor, _ = servers
    (tmp_path / ".netrc").write_text("machine 127.0.0.1 login someone password hunter2\n")
    (tmp_path / ".netrc").chmod(0o600)
    found = hunter_at(settings, vendor.url("")).lookup(QUERY, "email")
    assert found is not None
    headers = vendor.received()[0].headers
    assert "authorization" not in headers
    assert headers["x-api-key"] == KEY
