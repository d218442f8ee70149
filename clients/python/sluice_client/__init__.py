"""Python client for the Sluice contact-enrichment API (docs/client.md)."""

from .client import OPERATIONS, Sluice
from .errors import (
    APIError,
    AuthenticationError,
    ConflictError,
    ConnectionError,
    InvalidRequestError,
    NotFoundError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    SluiceError,
    WaitTimeout,
)
from .webhooks import WebhookVerificationError, verify_webhook

__all__ = [
    "OPERATIONS",
    "APIError",
    "AuthenticationError",
    "ConflictError",
    "ConnectionError",
    "InvalidRequestError",
    "NotFoundError",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServerError",
    "Sluice",
    "SluiceError",
    "WaitTimeout",
    "WebhookVerificationError",
    "verify_webhook",
]
