"""Exceptions: every API error carries the SPEC envelope (``code``, ``details``,
``request_id``) and the HTTP status."""

from __future__ import annotations

from typing import Any


class SluiceError(Exception):
    """Base of everything this package raises."""


class APIError(SluiceError):
    """The API answered with an error envelope
    ``{"error", "code", "details", "request_id"}``."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str,
        details: dict[str, Any] | None = None,
        request_id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.details = details or {}
        self.request_id = request_id
        self.headers = headers or {}

    def __str__(self) -> str:
        extra = f" {self.details}" if self.details else ""
        return f"{self.status} {self.code}: {self.message}{extra} (request_id {self.request_id})"


class InvalidRequestError(APIError):
    """400, 413 and 422: the request itself is wrong; ``details`` names the fields."""


class AuthenticationError(APIError):
    """401: no key, an unknown or revoked one."""


class PaymentRequiredError(APIError):
    """402: not enough credits."""


class PermissionDeniedError(APIError):
    """403: the key may not do this (scope, mode, allowlist, plan)."""


class NotFoundError(APIError):
    """404: no such object in this account and mode."""


class ConflictError(APIError):
    """409: a duplicate, an idempotency key in flight, a rotation in progress…"""


class RateLimitError(APIError):
    """429 after the retries: ``retry_after`` is the server's ``Retry-After`` in seconds."""

    @property
    def retry_after(self) -> float | None:
        try:
            return float(self.headers.get("Retry-After", ""))
        except ValueError:
            return None


class ServerError(APIError):
    """5xx after the retries."""


# Named like the builtin and requests' own, as callers expect; import it qualified.
class ConnectionError(SluiceError):
    """The server could not be reached (after the retries, for a call that may be retried)."""


class WaitTimeout(SluiceError):
    """``wait``/``wait_bulk`` gave up before the object finished."""


_BY_STATUS: dict[int, type[APIError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    402: PaymentRequiredError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: InvalidRequestError,
    422: InvalidRequestError,
    429: RateLimitError,
}


def error_from_response(status: int, body: Any, headers: dict[str, str]) -> APIError:
    envelope = body if isinstance(body, dict) else {}
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else APIError)
    return cls(
        str(envelope.get("error") or f"HTTP {status}"),
        status=status,
        code=str(envelope.get("code") or "http_error"),
        details=envelope.get("details") if isinstance(envelope.get("details"), dict) else {},
        request_id=envelope.get("request_id") or headers.get("X-Request-ID"),
        headers=dict(headers),
    )
