"""Domain exceptions and the one handler that maps every error to the SPEC envelope.

``{"error": "...", "code": "...", "details": {...}, "request_id": "req_..."}``
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response

from .context import request_id_var


class SluiceError(Exception):
    """Base of every domain error a view may let escape; carries status, code and details."""

    status_code = 400
    code = "bad_request"
    message = "Bad request"

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.message
        self.code = code or self.code
        self.details = details or {}
        self.headers = headers or {}
        super().__init__(self.message)


class InvalidRequest(SluiceError):
    status_code = 422
    code = "validation_error"
    message = "The request is invalid"


class InsufficientCredits(SluiceError):
    status_code = 402
    code = "insufficient_credits"
    message = "Insufficient credits"


class Forbidden(SluiceError):
    status_code = 403
    code = "forbidden"
    message = "Forbidden"


class NotFound(SluiceError):
    status_code = 404
    code = "not_found"
    message = "Not found"


class Conflict(SluiceError):
    status_code = 409
    code = "conflict"
    message = "Conflict"


class RateLimited(SluiceError):
    status_code = 429
    code = "rate_limited"
    message = "Rate limit exceeded"


def flatten_details(detail: Any, prefix: str = "") -> dict[str, str]:
    """Turn DRF's nested error structure into ``{"contacts[3].linkedin_url": "message"}``."""
    out: dict[str, str] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            if key == "non_field_errors":
                path = prefix or "non_field_errors"
            else:
                path = f"{prefix}.{key}" if prefix else str(key)
            out.update(flatten_details(value, path))
    elif isinstance(detail, list):
        if detail and all(isinstance(item, str) for item in detail):
            out[prefix or "non_field_errors"] = " ".join(str(item) for item in detail)
        else:
            for index, value in enumerate(detail):
                if value in ({}, [], None):
                    continue
                out.update(flatten_details(value, f"{prefix}[{index}]"))
    else:
        out[prefix or "non_field_errors"] = str(detail)
    return out


def envelope(message: str, code: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "error": message,
        "code": code,
        "details": details or {},
        "request_id": request_id_var.get(),
    }


def _drf_to_envelope(exc: drf.APIException) -> tuple[int, dict[str, Any]]:
    if isinstance(exc, drf.ValidationError):
        return 422, envelope(
            "The request is invalid", "validation_error", flatten_details(exc.detail)
        )
    if isinstance(exc, drf.ParseError):
        return 400, envelope("The body is not valid JSON", "invalid_json")
    if isinstance(exc, drf.NotAuthenticated | drf.AuthenticationFailed):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) and codes != "not_authenticated" else "unauthorized"
        return 401, envelope(str(exc.detail), code)
    if isinstance(exc, drf.PermissionDenied):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) and codes != "permission_denied" else "forbidden"
        return 403, envelope(str(exc.detail), code)
    if isinstance(exc, drf.NotFound):
        return 404, envelope("Not found", "not_found")
    if isinstance(exc, drf.MethodNotAllowed):
        return 405, envelope(str(exc.detail), "method_not_allowed")
    if isinstance(exc, drf.NotAcceptable):
        return 406, envelope(str(exc.detail), "not_acceptable")
    if isinstance(exc, drf.UnsupportedMediaType):
        return 415, envelope("Send the body as application/json", "unsupported_media_type")
    if isinstance(exc, drf.Throttled):
        return 429, envelope("Rate limit exceeded", "rate_limited")
    return exc.status_code, envelope(str(exc.detail), "error")


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF ``EXCEPTION_HANDLER``: every known error becomes the envelope; others stay 500."""
    headers: dict[str, str] = {}
    if isinstance(exc, SluiceError):
        status = exc.status_code
        body = envelope(exc.message, exc.code, exc.details)
        headers = exc.headers
    elif isinstance(exc, Http404):
        status, body = 404, envelope("Not found", "not_found")
    elif isinstance(exc, DjangoPermissionDenied):
        status, body = 403, envelope("Forbidden", "forbidden")
    elif isinstance(exc, RequestDataTooBig):
        # Django's own answer would be an HTML 400 (a SuspiciousOperation).
        status, body = 413, envelope("The request body is too large", "body_too_large")
    elif isinstance(exc, drf.APIException):
        status, body = _drf_to_envelope(exc)
        if isinstance(exc, drf.Throttled) and exc.wait is not None:
            headers["Retry-After"] = str(int(exc.wait) + 1)
        auth_header = getattr(exc, "auth_header", None)
        if auth_header:
            headers["WWW-Authenticate"] = auth_header
    else:
        return None
    response = Response(body, status=status)
    for key, value in headers.items():
        response[key] = value
    return response


def json_400(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """``handler400``: Django's answer to a SuspiciousOperation (a Host outside
    ``ALLOWED_HOSTS``, a malformed request), raised before any view runs."""
    return JsonResponse(envelope("Bad request", "bad_request"), status=400)


def json_403(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """``handler403``: a PermissionDenied raised outside REST framework's views."""
    return JsonResponse(envelope("Forbidden", "forbidden"), status=403)


def json_404(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(envelope("Not found", "not_found"), status=404)


def json_500(request: HttpRequest) -> JsonResponse:
    return JsonResponse(envelope("Internal server error", "internal_error"), status=500)
