"""Verify a delivery's Standard Webhooks signature before trusting its body."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

__all__ = ["WebhookVerificationError", "verify_webhook"]


def verify_webhook(body: bytes | str, headers: Mapping[str, str], secret: str) -> dict[str, Any]:
    """The event (``{"id", "type", "created_at", "sandbox", "data"}``) if ``body`` is signed
    with ``secret`` (the endpoint's ``whsec_…``, or the account's callback secret) within the
    last five minutes; else raises ``WebhookVerificationError``.

    ``body`` must be the raw bytes received, not re-serialised JSON. Header names may be in
    any case. During a secret rotation either secret verifies (the header carries both
    signatures).
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    raw = body.decode() if isinstance(body, bytes) else body
    Webhook(secret).verify(raw, lowered)
    return json.loads(raw)
