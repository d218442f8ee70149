"""SSRF guard (SPEC §6 URL rules): refused at creation and at the address actually connected to."""

from __future__ import annotations

import json
import logging
import socket

import pytest

from apps.webhooks import services, targets
from apps.webhooks.models import Delivery, DeliveryAttempt, Endpoint
from apps.webhooks.targets import address_is_public, webhook_url_problem
from tests.factories import AccountFactory
from tests.webhooks.factories import DeliveryFactory, EndpointFactory

pytestmark = pytest.mark.django_db(transaction=True)

PRIVATE_URLS = [
    "https://127.0.0.1/hook",
    "https://10.0.0.1/hook",
    "https://169.254.169.254/latest/meta-data",
    "https://[::1]/hook",
    "https://localhost/hook",  # a host name that resolves to loopback
    "https://192.168.1.10:8443/hook",
    "https://[::ffff:127.0.0.1]/hook",
    "https://0.0.0.0/hook",
]


@pytest.fixture
def strict(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    settings.WEBHOOK_ALLOW_HTTP = False
    return settings


@pytest.mark.parametrize("url", PRIVATE_URLS)
def test_private_targets_are_refused_at_creation(api, strict, url):
    response = api.post(
        "/api/v1/webhooks", json.dumps({"url": url}), content_type="application/json"
    )
    assert response.status_code == 422
    assert response.json()["details"] == {"url": "The host must resolve to public addresses only."}
    assert not Endpoint.objects.exists()


def test_private_request_webhook_url_is_refused_at_enrich(api, strict):
    body = {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "domain": "engines.io",
        "enrichment_type": ["email"],
        "webhook_url": "https://169.254.169.254/latest",
    }
    response = api.post("/api/v1/enrich", json.dumps(body), content_type="application/json")
    assert response.status_code == 422 and "webhook_url" in response.json()["details"]


def test_a_public_address_is_accepted(api, strict):
    response = api.post(
        "/api/v1/webhooks",
        json.dumps({"url": "https://93.184.215.14/hook"}),
        content_type="application/json",
    )
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.0.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("0.0.0.0", False),
        ("::1", False),
        ("fe80::1%eth0", False),
        ("fc00::1", False),
        ("::ffff:10.0.0.1", False),
        ("2002:a00:1::1", False),  # 6to4 of 10.0.0.1
        ("2002:808:808::1", True),  # 6to4 of 8.8.8.8
        ("64:ff9b::a00:1", False),  # NAT64 (reserved as a whole)
        ("not-an-ip", False),
    ],
)
def test_address_is_public(address, public):
    assert address_is_public(address) is public


def test_url_rules_without_dns(settings):
    settings.WEBHOOK_ALLOW_HTTP = False
    assert webhook_url_problem("http://hooks.example.com") == "Must be an https:// URL."
    assert webhook_url_problem("https://u:p@hooks.example.com") == "Must not contain credentials."
    assert webhook_url_problem("https://" + "a" * 2100) is not None
    assert webhook_url_problem("https:///path") == "Must include a host."
    # Whatever the private-target setting: no request could ever be made to these.
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    for host in ("a" * 64 + ".example.com", "hooks..example.com"):
        assert webhook_url_problem(f"https://{host}/x") == "Must have a valid host name."
    assert webhook_url_problem("https://" + "a" * 63 + ".example.com/x") is None
    assert webhook_url_problem("https://exämple.com/x") is None


def test_a_url_the_http_stack_cannot_parse_is_a_failed_attempt_not_a_crash():
    # Accepted before the host name rule existed: the request raised past requests, so no
    # attempt was recorded and the sweep re-sent it forever.
    endpoint = EndpointFactory(url="http://" + "a" * 70 + ".example.com/hook")
    delivery = DeliveryFactory(endpoint=endpoint)
    assert services.delivery_attempt(delivery_id=str(delivery.pk)) == Delivery.PENDING
    row = DeliveryAttempt.objects.get(delivery=delivery)
    assert row.status_code is None and "LocationParseError" in row.error
    endpoint.refresh_from_db()
    assert endpoint.consecutive_failures == 1


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_delivery_rechecks_the_address_it_connects_to(receiver, settings, host):
    # The row was accepted earlier (say the name resolved to a public address then); now it
    # resolves to loopback, as in DNS rebinding. Nothing may reach the receiver.
    endpoint = EndpointFactory(url=f"http://{host}:{receiver.port}/hook")
    delivery = DeliveryFactory(endpoint=endpoint)
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    assert services.delivery_attempt(delivery_id=str(delivery.pk)) == Delivery.PENDING
    row = DeliveryAttempt.objects.get(delivery=delivery)
    assert row.status_code is None
    assert row.error.startswith("Refused:") and "non-public address" in row.error
    assert "127.0.0.1" not in row.error  # the tenant reads attempts: no internal address
    assert receiver.received() == []
    # The same delivery goes through once private targets are allowed (local development).
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=delivery.created_at)
    assert services.delivery_attempt(delivery_id=str(delivery.pk)) == Delivery.SUCCEEDED
    assert len(receiver.received()) == 1


def test_request_webhook_url_is_rechecked_at_delivery(receiver, settings):
    delivery = DeliveryFactory(endpoint=None, account=AccountFactory(), target_url=receiver.url())
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    services.delivery_attempt(delivery_id=str(delivery.pk))
    assert DeliveryAttempt.objects.get(delivery=delivery).error.startswith("Refused:")
    assert receiver.received() == []


def _fake_dns(monkeypatch, answers):
    """targets.resolve answering from ``answers`` (host -> addresses; missing: NXDOMAIN)."""
    asked = []

    def fake(host, port):
        asked.append(host)
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return answers[host]

    monkeypatch.setattr(targets, "resolve", fake)
    return asked


def test_intake_does_not_tell_which_internal_names_exist(api, strict, monkeypatch, caplog):
    # A tenant probing 'db.corp' (or a CNAME to it) must not learn that it exists, nor its
    # address: one message whether it resolves to a private address or not at all.
    _fake_dns(monkeypatch, {"db.corp": ["10.20.30.40"], "split.example": ["8.8.8.8", "10.9.9.9"]})
    caplog.set_level(logging.INFO, logger="apps.webhooks.targets")
    answers = {}
    for host in ("db.corp", "nothing-here.corp", "split.example"):
        response = api.post(
            "/api/v1/webhooks",
            json.dumps({"url": f"https://{host}/hook"}),
            content_type="application/json",
        )
        assert response.status_code == 422
        answers[host] = response.content.decode()
    details = {json.loads(a)["details"]["url"] for a in answers.values()}
    assert details == {"The host must resolve to public addresses only."}
    assert not any("10.20.30.40" in a or "10.9.9.9" in a for a in answers.values())
    # The detail is in the server log for the operator.
    assert "10.20.30.40" in caplog.text and "nothing-here.corp" in caplog.text


def test_delivery_does_not_tell_which_internal_names_exist(strict, monkeypatch, caplog):
    # Accepted once, then rebound: to a private address, or to a name that does not exist.
    _fake_dns(monkeypatch, {"private.example": ["10.20.30.40"]})
    caplog.set_level(logging.INFO, logger="apps.webhooks.targets")
    errors = []
    for host in ("private.example", "ghost.example"):
        delivery = DeliveryFactory(endpoint=EndpointFactory(url=f"https://{host}/hook"))
        services.delivery_attempt(delivery_id=str(delivery.pk))
        errors.append(DeliveryAttempt.objects.get(delivery=delivery).error)
    assert errors[0] == errors[1]
    assert errors[0].startswith("Refused:") and "10.20.30.40" not in errors[0]
    assert "10.20.30.40" in caplog.text


def test_a_unicode_host_is_checked_as_it_will_be_delivered_to(strict, monkeypatch):
    # IDNA 2008 (what requests sends), not the socket module's IDNA 2003 'strasse.de'.
    asked = _fake_dns(monkeypatch, {"xn--strae-oqa.de": ["93.184.215.14"]})
    assert webhook_url_problem("https://Straße.de/hook") is None
    assert asked == ["xn--strae-oqa.de"]
    assert webhook_url_problem("https://a\u200cb.example/hook") == (
        "Must have a valid host name (IDNA 2008)."
    )
