"""What the dialects share with Sluice's own API: idempotency keys, and their webhook formats'
signatures under a secret rotation."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.enrichment.models import Contact
from apps.webhooks import signing
from apps.webhooks.services import delivery_request
from tests.support.api import make_client
from tests.webhooks.factories import DeliveryFactory, EndpointFactory

pytestmark = pytest.mark.django_db

PRONTO_CONTACT = {
    "firstname": "Mathieu",
    "lastname": "Brun-Picard",
    "domain": "prontohq.com",
    "enrichment_type": ["email"],
}


def test_an_idempotency_key_replays_a_dialect_request_instead_of_enqueueing_again():
    client = make_client()
    url = "/compat/pronto/api/v2/contacts/single_enrich"
    body = json.dumps(PRONTO_CONTACT)
    first = client.post(url, body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = client.post(url, body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == again.status_code == 202
    assert again.json()["enrichment_id"] == first.json()["enrichment_id"]
    assert Contact.objects.count() == 1


def test_a_prospiq_signature_is_sent_under_both_secrets_while_a_rotation_overlaps():
    endpoint = EndpointFactory(
        body_format="prospiq",
        previous_secret=signing.secret_generate(),
        previous_secret_expires_at=timezone.now() + timedelta(hours=1),
    )
    delivery = DeliveryFactory(endpoint=endpoint, body_format="prospiq")
    _, body, headers = delivery_request(delivery, now=timezone.now())
    expected = [
        hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        for secret in (endpoint.secret, endpoint.previous_secret)
    ]
    assert headers["X-ProspIQ-Signature"].split(" ") == expected
    assert " " not in headers["X-ProspIQ-Event"]  # a header that does not depend on the key
