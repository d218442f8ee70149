"""The body of webhook deliveries this dialect's clients receive (apps.webhooks.formats):
prospiq's ``{"event", "data", "timestamp"}`` and its hex ``X-ProspIQ-Signature``."""

from __future__ import annotations

import json
from typing import Any

from apps.webhooks import formats
from apps.webhooks.signing import body_signature

from . import shapes

FORMAT = "prospiq"
SIGNATURE_HEADER = "X-ProspIQ-Signature"
EVENT_HEADER = "X-ProspIQ-Event"
TEST_HEADER = "X-ProspIQ-Test"


def render(payload: dict[str, Any]) -> bytes:
    """The bytes sent for a stored event: the same for the same event on every retry (the
    shape is built from the stored payload alone, in a fixed key order, compact, ASCII)."""
    return json.dumps(shapes.event_body(payload), separators=(",", ":")).encode()


def headers(secret: str, body: bytes) -> dict[str, str]:
    """prospiq's headers beside the Standard Webhooks ones. The signature is what the seed's
    ``openssl dgst -sha256 -hmac "$WEBHOOK_SECRET"`` prints for the raw body: HMAC-SHA256
    keyed with the whole secret string (``whsec_…``, UTF-8), hex."""
    sent = json.loads(body)
    extra = {
        SIGNATURE_HEADER: body_signature(secret=secret, body=body),
        EVENT_HEADER: str(sent.get("event", "")),
    }
    if sent.get("_test"):
        extra[TEST_HEADER] = "true"
    return extra


def register_format() -> None:
    """Registers the 'prospiq' body format (called by apps.compat at start-up)."""
    formats.register(formats.BodyFormat(FORMAT, render=render, headers=headers))
