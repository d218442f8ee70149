"""Forwarded headers are believed only from TRUSTED_PROXIES (issue 13 item 3): a client that
reaches gunicorn directly cannot claim HTTPS or an allowlisted address by sending them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.http import HttpResponse
from django.test import RequestFactory

from apps.accounts.authentication import client_ip
from apps.core.middleware import TrustedProxyMiddleware, is_trusted_proxy
from tests.support.api import make_client

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
SPOOFED = {
    "HTTP_X_FORWARDED_PROTO": "https",
    "HTTP_X_FORWARDED_FOR": "203.0.113.7",
    "HTTP_X_FORWARDED_HOST": "evil.example",
    "HTTP_FORWARDED": "for=203.0.113.7;proto=https",
    "HTTP_X_REAL_IP": "203.0.113.7",
    "HTTP_X_FORWARDED_SSL": "on",
}


def _seen_by_the_view(**meta) -> dict:
    seen = {}

    def view(request):
        seen.update(request.META)
        seen["is_secure"] = request.is_secure()
        seen["client_ip"] = client_ip(request)
        return HttpResponse()

    TrustedProxyMiddleware(view)(RequestFactory().get("/", **meta))
    return seen


def test_forwarded_headers_from_an_untrusted_peer_are_dropped_before_anything_reads_them(
    settings,
):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    seen = _seen_by_the_view(REMOTE_ADDR="198.51.100.1", **SPOOFED)
    assert not set(SPOOFED) & set(seen)
    assert seen["is_secure"] is False
    assert seen["client_ip"] == "198.51.100.1"


def test_forwarded_headers_from_a_trusted_proxy_are_kept(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    seen = _seen_by_the_view(REMOTE_ADDR="10.1.2.3", **SPOOFED)
    assert seen["HTTP_X_FORWARDED_PROTO"] == "https"
    assert seen["is_secure"] is True
    assert seen["client_ip"] == "203.0.113.7"


def test_nothing_is_trusted_by_default(settings):
    assert settings.TRUSTED_PROXIES == []
    assert settings.TRUST_X_FORWARDED_FOR is False
    seen = _seen_by_the_view(REMOTE_ADDR="127.0.0.1", **SPOOFED)
    assert seen["is_secure"] is False
    assert seen["client_ip"] == "127.0.0.1"


def test_a_direct_client_cannot_pass_require_https_with_x_forwarded_proto(settings):
    settings.REQUIRE_HTTPS = True
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    client = make_client()
    direct = client.get(
        "/api/v1/credits", REMOTE_ADDR="198.51.100.1", HTTP_X_FORWARDED_PROTO="https"
    )
    assert direct.status_code == 403
    assert direct.json()["code"] == "https_required"
    proxied = client.get("/api/v1/credits", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_PROTO="https")
    assert proxied.status_code == 200


def test_a_direct_client_cannot_pass_an_ip_allowlist_with_x_forwarded_for(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    client = make_client(ip_allowlist=["203.0.113.7"])
    direct = client.get(
        "/api/v1/credits", REMOTE_ADDR="198.51.100.1", HTTP_X_FORWARDED_FOR="203.0.113.7"
    )
    assert direct.status_code == 403
    assert direct.json()["code"] == "ip_not_allowed"
    proxied = client.get(
        "/api/v1/credits", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.7"
    )
    assert proxied.status_code == 200


@pytest.mark.parametrize(
    ("forwarded_for", "client"),
    [
        # Our two proxies appended 10.0.0.5 and saw 203.0.113.7; what the client sent is left.
        ("192.0.2.9, 203.0.113.7, 10.0.0.5", "203.0.113.7"),
        ("203.0.113.7, 198.51.100.1", "198.51.100.1"),  # a forged entry left of the real one
        ("203.0.113.7, not-an-address", "not-an-address"),  # matches no allowlist
        ("10.0.0.9, 10.0.0.5", "10.0.0.2"),  # only proxies: the request is the proxies' own
        ("", "10.0.0.2"),
    ],
)
def test_the_client_is_the_right_most_address_that_is_not_a_trusted_proxy(
    settings, forwarded_for, client
):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    seen = _seen_by_the_view(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded_for)
    assert seen["client_ip"] == client


def test_an_ipv4_proxy_seen_through_a_dual_stack_socket_is_trusted(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8", "2001:db8::/32"]
    assert is_trusted_proxy("::ffff:10.0.0.2")
    assert is_trusted_proxy("2001:db8::1")
    assert not is_trusted_proxy("::ffff:198.51.100.1")
    assert not is_trusted_proxy("")
    assert not is_trusted_proxy("unix:/run/gunicorn.sock")


def test_deprecated_trust_x_forwarded_for_trusts_only_private_and_loopback_peers(settings):
    """The old switch trusted the header from any peer; as an alias it names the networks a
    reverse proxy sits on, and TRUSTED_PROXIES, when set, wins over it."""
    settings.TRUST_X_FORWARDED_FOR = True
    assert is_trusted_proxy("127.0.0.1")
    assert is_trusted_proxy("10.0.0.2")
    assert is_trusted_proxy("192.168.1.1")
    assert is_trusted_proxy("fd00::1")
    assert not is_trusted_proxy("198.51.100.1")
    public = _seen_by_the_view(REMOTE_ADDR="198.51.100.1", HTTP_X_FORWARDED_FOR="203.0.113.7")
    assert public["client_ip"] == "198.51.100.1"
    settings.TRUSTED_PROXIES = ["192.0.2.0/24"]
    assert not is_trusted_proxy("10.0.0.2")
    assert is_trusted_proxy("192.0.2.10")


def _settings_in_a_subprocess(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "SLUICE_VAR_DIR": str(tmp_path), **env}
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup();"
            "from django.conf import settings; print(settings.TRUSTED_PROXIES)",
        ],
        cwd=ROOT,
        env={**environment, "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_trusted_proxies_are_read_as_cidrs_and_a_malformed_one_stops_the_process(tmp_path):
    good = _settings_in_a_subprocess({"TRUSTED_PROXIES": "10.0.0.1/8, 2001:db8::/32"}, tmp_path)
    assert good.returncode == 0, good.stderr
    assert good.stdout.strip() == "['10.0.0.0/8', '2001:db8::/32']"
    bad = _settings_in_a_subprocess({"TRUSTED_PROXIES": "10.0.0.0/8,proxy.internal"}, tmp_path)
    assert bad.returncode != 0
    assert "proxy.internal" in bad.stderr
