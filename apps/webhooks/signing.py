"""Webhook signatures: Standard Webhooks headers plus Sluice's hex body HMAC (SPEC §6)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"


def secret_generate() -> str:
    """``whsec_`` + base64 of 32 random bytes: the key any Standard Webhooks library derives."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret, derived exactly as the Standard Webhooks libraries do.

    Extra padding is added because the libraries accept unpadded base64 too.
    """
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(encoded + "==")
    except (binascii.Error, ValueError):
        # Not base64 at all: fall back to the raw bytes so the delivery is still signed.
        return encoded.encode()


def standard_signature(*, secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``."""
    to_sign = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), to_sign, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def body_signature(*, secret: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of the body keyed with the whole secret (``openssl dgst -hmac``)."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signed_headers(
    *, secrets_in_use: list[str], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """Signature headers, one signature per secret (new first) separated by spaces."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(
            standard_signature(secret=s, msg_id=msg_id, timestamp=timestamp, body=body)
            for s in secrets_in_use
        ),
        "X-Sluice-Signature": " ".join(body_signature(secret=s, body=body) for s in secrets_in_use),
    }
