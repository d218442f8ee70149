"""Body formats of webhook deliveries: Sluice's own, or one a vendor dialect registers.

An event is stored once, in Sluice's shape (``Event.body``). A delivery with a ``format``
(a Pronto client's ``webhook_url``, a prospiq subscription) is sent as that format renders
the event: deterministically, so every retry sends (and signs) the same bytes. The
Standard Webhooks headers sign whatever is sent; a format may add its own (prospiq's hex
HMAC). Dialects register at start-up (``apps.compat``): webhooks never imports them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def _no_headers(secret: str, body: bytes) -> dict[str, str]:
    return {}


@dataclass(frozen=True)
class BodyFormat:
    name: str
    # Sluice's event payload ({"id", "type", "created_at", "sandbox", "data", …}) -> the body.
    render: Callable[[dict[str, Any]], bytes]
    # (signing secret, body) -> extra headers, e.g. a vendor's own signature.
    headers: Callable[[str, bytes], dict[str, str]] = field(default=_no_headers)


FORMATS: dict[str, BodyFormat] = {}


def register(body_format: BodyFormat) -> None:
    FORMATS[body_format.name] = body_format


def rendered(format_name: str, event_body: str) -> tuple[bytes, BodyFormat | None]:
    """The bytes to send for an event in this format ('' is Sluice's own: the stored body).
    An unknown format (a dialect switched off since) falls back to Sluice's body."""
    body_format = FORMATS.get(format_name) if format_name else None
    if body_format is None:
        return event_body.encode(), None
    return body_format.render(json.loads(event_body)), body_format
