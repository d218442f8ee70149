"""The body of webhook deliveries this dialect's clients receive (apps.webhooks.formats).

A Pronto client's ``webhook_url`` gets, per finished contact, the same object as
``GET contacts/{id}`` (representations.contact_object), rendered from the stored
``contact.enriched`` event: the same event always gives the same bytes, so every retry sends
and signs the same body.
"""

from __future__ import annotations

import json
from typing import Any

from apps.webhooks.formats import BodyFormat, register

from .representations import contact_object, contact_path
from .validation import WEBHOOK_FORMAT

CONTACT_EVENTS = frozenset({"contact.enriched", "contact.verified"})


def _dumps(body: Any) -> bytes:
    # As Sluice's own event bodies: compact, ASCII-only.
    return json.dumps(body, separators=(",", ":")).encode()


def render(payload: dict[str, Any]) -> bytes:
    """Sluice's event payload (``{"id", "type", "created_at", "sandbox", "data"}``) -> the
    bytes a Pronto client receives."""
    data = payload.get("data")
    if payload.get("type") not in CONTACT_EVENTS or not isinstance(data, dict):
        # Pronto has no other callback (the dialect sends its clients none): should one come
        # through all the same, it goes out in Sluice's shape rather than not at all.
        return _dumps(payload)
    if data.get("truncated"):
        # An event too large to send whole (WEBHOOK_MAX_EVENT_BYTES) keeps only its ids:
        # say where the whole contact is, in this dialect's path.
        enrichment_id = data.get("enrichment_id")
        return _dumps(
            {
                "enrichment_id": enrichment_id,
                "status": "finished",
                "truncated": True,
                "url": contact_path(str(enrichment_id)) if enrichment_id else None,
            }
        )
    return _dumps(contact_object(data))


def register_format() -> None:
    """Registers the 'pronto' body format (called once at start-up by apps.compat)."""
    register(BodyFormat(WEBHOOK_FORMAT, render=render))
