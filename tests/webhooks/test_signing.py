"""Signatures checked with the official ``standardwebhooks`` package, not the project's code."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import subprocess
from datetime import timedelta

import pytest
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from apps.accounts.services import webhook_secret_generate
from apps.core.errors import Conflict
from apps.webhooks import services
from apps.webhooks.models import Delivery, Endpoint
from tests.factories import ContactFactory
from tests.support.api import make_client
from tests.webhooks.factories import DeliveryFactory, EndpointFactory

pytestmark = pytest.mark.django_db(transaction=True)


def deliver(delivery: Delivery) -> None:
    assert services.delivery_attempt(delivery_id=str(delivery.pk)) == Delivery.SUCCEEDED


def test_delivery_verifies_with_standardwebhooks_and_the_hex_signature(receiver):
    endpoint = EndpointFactory(url=receiver.url())
    delivery = DeliveryFactory(endpoint=endpoint)
    before = int(timezone.now().timestamp())
    deliver(delivery)
    after = timezone.now().timestamp()
    (request,) = receiver.received()
    payload = Webhook(endpoint.secret).verify(request.body, request.headers)
    assert payload["id"] == delivery.event_id == request.headers["webhook-id"]
    assert before <= int(request.headers["webhook-timestamp"]) <= after  # stamped when sent
    assert request.headers["webhook-signature"].startswith("v1,")
    # What `openssl dgst -sha256 -hmac "$SECRET"` prints for the raw body.
    expected = hmac.new(endpoint.secret.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["x-sluice-signature"] == expected
    with pytest.raises(WebhookVerificationError):
        Webhook(EndpointFactory().secret).verify(request.body, request.headers)


def test_tampered_body_fails_verification(receiver):
    endpoint = EndpointFactory(url=receiver.url())
    deliver(DeliveryFactory(endpoint=endpoint))
    (request,) = receiver.received()
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint.secret).verify(
            request.body.replace(b"contact", b"kontact"), request.headers
        )


def test_rotated_secret_signs_beside_the_old_one_for_24_hours(receiver):
    endpoint = EndpointFactory(url=receiver.url())
    old_secret = endpoint.secret
    services.endpoint_secret_rotate(endpoint=endpoint)
    assert endpoint.secret != old_secret
    deliver(DeliveryFactory(endpoint=endpoint))
    request = receiver.received()[-1]
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    assert len(request.headers["x-sluice-signature"].split(" ")) == 2
    for secret in (endpoint.secret, old_secret):
        Webhook(secret).verify(request.body, request.headers)
    # After the overlap only the new secret signs.
    endpoint.previous_secret_expires_at = timezone.now()
    endpoint.save()
    deliver(DeliveryFactory(endpoint=endpoint))
    request = receiver.received()[-1]
    Webhook(endpoint.secret).verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old_secret).verify(request.body, request.headers)


def test_two_rotations_at_once_never_drop_a_secret_already_shown():
    # Two requests each loaded the endpoint before either rotated: the second is refused
    # (tests/webhooks/test_modes.py has the rule), so the original still signs beside the first.
    endpoint = EndpointFactory()
    original = endpoint.secret
    first, second = (Endpoint.objects.get(pk=endpoint.pk) for _ in range(2))
    shown_first = services.endpoint_secret_rotate(endpoint=first).secret
    with pytest.raises(Conflict):
        services.endpoint_secret_rotate(endpoint=second)
    endpoint.refresh_from_db()
    assert (endpoint.secret, endpoint.previous_secret) == (shown_first, original)


def test_request_webhook_url_is_signed_with_the_account_callback_secret(receiver):
    client = make_client()
    contact = ContactFactory(account=client.account, webhook_url=receiver.url("/mine"))
    from apps.enrichment import services as enrichment_services
    from apps.enrichment.waterfall import Outcome

    enrichment_services.contacts_finish(items=[(contact, Outcome())])
    delivery = Delivery.objects.get(target_url=receiver.url("/mine"))
    deliver(delivery)
    (request,) = receiver.received(path="/mine")
    payload = Webhook(client.account.callback_secret).verify(request.body, request.headers)
    assert payload["type"] == "contact.enriched"
    assert payload["data"]["enrichment_id"] == str(contact.pk)
    assert json.loads(request.body) == payload


def test_generated_secrets_are_standard_base64_keys():
    for secret in (webhook_secret_generate(), EndpointFactory().secret):
        assert secret.startswith("whsec_")
        Webhook(secret)  # the official library accepts and decodes it
        import base64

        assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")
def test_hex_signature_is_what_openssl_prints(receiver):
    endpoint = EndpointFactory(url=receiver.url())
    deliver(DeliveryFactory(endpoint=endpoint))
    (request,) = receiver.received()
    printed = subprocess.run(
        ["openssl", "dgst", "-sha256", "-hmac", endpoint.secret],
        input=request.body,
        capture_output=True,
        check=True,
    ).stdout.decode()
    assert printed.strip().rsplit(" ", 1)[-1] == request.headers["x-sluice-signature"]


def test_callback_secret_rotates_and_the_old_one_signs_beside_it_for_24_hours(receiver):
    from apps.enrichment import services as enrichment_services
    from apps.enrichment.waterfall import Outcome

    client = make_client(mode="live")
    old_secret = client.account.callback_secret
    before = timezone.now()
    response = client.post("/api/v1/callback-secret/rotate")
    after = timezone.now()
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"webhook_secret", "previous_secret_expires_at"}
    new_secret = body["webhook_secret"]
    assert new_secret.startswith("whsec_") and new_secret != old_secret
    client.account.refresh_from_db()
    assert client.account.callback_secret == new_secret
    expires = client.account.previous_callback_secret_expires_at
    assert before + timedelta(hours=24) <= expires <= after + timedelta(hours=24)
    assert body["previous_secret_expires_at"].endswith("Z")

    contact = ContactFactory(account=client.account, webhook_url=receiver.url("/mine"))
    enrichment_services.contacts_finish(items=[(contact, Outcome())])
    deliver(Delivery.objects.get(target_url=receiver.url("/mine")))
    (request,) = receiver.received(path="/mine")
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (new_secret, old_secret):
        Webhook(secret).verify(request.body, request.headers)
    # After the overlap only the new one signs.
    client.account.previous_callback_secret_expires_at = timezone.now()
    client.account.save()
    second = ContactFactory(account=client.account, webhook_url=receiver.url("/again"))
    enrichment_services.contacts_finish(items=[(second, Outcome())])
    deliver(Delivery.objects.get(target_url=receiver.url("/again")))
    (request,) = receiver.received(path="/again")
    Webhook(new_secret).verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old_secret).verify(request.body, request.headers)


def test_callback_secret_rotation_needs_the_webhooks_scope(db):
    reader = make_client(scopes=["read", "enrich"])
    secret = reader.account.callback_secret
    response = reader.post("/api/v1/callback-secret/rotate")
    assert response.status_code == 403
    reader.account.refresh_from_db()
    assert reader.account.callback_secret == secret
