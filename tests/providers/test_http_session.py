"""Vendor HTTP sessions against real local servers: a redirect is never followed (the key
stays with the configured host), and neither environment proxies nor ``~/.netrc`` apply."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from apps.providers import registry
from apps.providers.base import ProviderError
from tests.providers.test_adapters import QUERY
from tests.support.vendors import hunter_body, use_vendors

KEY = "test-hunter-key"


class Recorder:
    """A local HTTP server that records every request (path and headers) and answers each
    with one fixed status, headers and JSON body."""

    def __init__(self, *, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.headers = headers or {}
        self.body = json.dumps(hunter_body()).encode()
        self.requests: list[tuple[str, dict[str, str]]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                recorder.requests.append(
                    (self.path, {k.lower(): v for k, v in self.headers.items()})
                )
                self.send_response(recorder.status)
                for name, value in recorder.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(recorder.body)))
                self.end_headers()
                self.wfile.write(recorder.body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def servers() -> Iterator[tuple[Recorder, Recorder]]:
    """The vendor, and a second server standing for any other host (redirect or proxy)."""
    vendor, other = Recorder(), Recorder()
    yield vendor, other
    vendor.stop()
    other.stop()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    # No proxy or netrc of the machine running the tests may change what is measured here.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(tmp_path / ".netrc"))
    yield
    registry.provider.cache_clear()


def hunter_at(settings, url: str):
    use_vendors(settings)
    settings.PROVIDER_CREDENTIALS = {"hunter": {"api_key": KEY, "base_url": url}}
    registry.provider.cache_clear()
    return registry.provider("hunter")


def test_a_redirect_to_another_host_is_not_followed_and_the_key_never_reaches_it(servers, settings):
    vendor, other = servers
    vendor.status = 302
    vendor.headers = {"Location": f"{other.url}/steal?x=1"}
    hunter = hunter_at(settings, vendor.url)
    with pytest.raises(ProviderError) as caught:
        hunter.lookup(QUERY, "email")
    assert other.requests == []
    assert len(vendor.requests) == 1 and vendor.requests[0][1]["x-api-key"] == KEY
    error = caught.value
    assert "redirect (not followed)" in str(error) and other.url not in str(error)
    # A misconfigured vendor, not a rejected request: counts against it, no retry.
    assert error.retryable is False and error.provider_fault is True


@pytest.mark.parametrize("status", [301, 303, 307, 308])
def test_no_redirect_status_is_followed(servers, settings, status):
    vendor, other = servers
    vendor.status = status
    vendor.headers = {"Location": f"{other.url}/v2/email-finder"}
    with pytest.raises(ProviderError, match=f"HTTP {status} redirect"):
        hunter_at(settings, vendor.url).lookup(QUERY, "email")
    assert other.requests == []


def test_a_caller_asking_to_follow_redirects_is_overruled(servers, settings):
    vendor, other = servers
    vendor.status = 302
    vendor.headers = {"Location": f"{other.url}/x"}
    hunter = hunter_at(settings, vendor.url)
    with pytest.raises(ProviderError):
        hunter.request("GET", "/v2/email-finder", headers={"X-API-KEY": KEY}, allow_redirects=True)
    assert other.requests == []


def test_environment_proxies_are_ignored(servers, settings, monkeypatch):
    vendor, proxy = servers
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, proxy.url)
    found = hunter_at(settings, vendor.url).lookup(QUERY, "email")
    assert found is not None and found.data["email"]
    assert proxy.requests == []
    assert len(vendor.requests) == 1 and vendor.requests[0][0].startswith("/v2/email-finder")


def test_netrc_credentials_are_not_sent(servers, settings, tmp_path):
    vendor, _ = servers
    (tmp_path / ".netrc").write_text("machine 127.0.0.1 login someone password hunter2\n")
    (tmp_path / ".netrc").chmod(0o600)
    found = hunter_at(settings, vendor.url).lookup(QUERY, "email")
    assert found is not None
    headers = vendor.requests[0][1]
    assert "authorization" not in headers
    assert headers["x-api-key"] == KEY
