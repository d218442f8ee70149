"""Domain exceptions and the one handler that maps every error to the SPEC envelope.

``{"error": "...", "code": "...", "details": {...}, "request_id": "req_..."}``
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any

import kombu.exceptions
import psycopg
import redis
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError as DatabaseInterfaceError
from django.db import OperationalError as DatabaseOperationalError
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response

from .context import request_id_var

logger = logging.getLogger(__name__)


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


# --- Dependency outages -----------------------------------------------------------------------
# PostgreSQL, Redis or the broker unreachable: a 503 ``service_unavailable`` with Retry-After,
# never a 500 (nothing is wrong with the request) and never a hang (the connect and socket
# timeouts in settings bound every attempt). What fails open instead: docs/errors.md.

# Seconds a client is told to wait before retrying (a restart takes about that long).
RETRY_AFTER_SECONDS = 5

# PostgreSQL SQLSTATEs that mean "the server, not the statement": connection exceptions
# (class 08), an administrator's or a crash's shutdown cutting the connection (57P01, 57P02),
# a server that is starting up or shutting down (57P03), no connection slot (53300).
_PG_OUTAGE_STATES = frozenset({"57P01", "57P02", "57P03", "53300"})


class ServiceUnavailable(SluiceError):
    status_code = 503
    code = "service_unavailable"
    message = "A service Sluice depends on is unavailable; retry shortly"

    def __init__(self, dependency: str) -> None:
        super().__init__(
            details={"dependency": dependency},
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )


def _database_outage(exc: BaseException) -> bool:
    if isinstance(exc, DatabaseInterfaceError):  # the connection is closed or lost
        return True
    if not isinstance(exc, DatabaseOperationalError):
        return False
    cause = exc.__cause__
    if not isinstance(cause, psycopg.OperationalError):
        return False  # SQLite's OperationalError also covers "no such table": a bug
    # No SQLSTATE: raised by the client itself (cannot connect, connection lost).
    state = cause.sqlstate
    return state is None or state.startswith("08") or state in _PG_OUTAGE_STATES


def outage_dependency(exc: BaseException | None) -> str | None:
    """``"database"``, ``"redis"`` or ``"broker"`` when ``exc`` says that dependency cannot
    be reached (connection refused, cut, timed out; a server starting or shutting down);
    None for any other error, a statement's own failure included."""
    if exc is None:
        return None
    if _database_outage(exc):
        return "database"
    # BusyLoadingError (a restarted Redis still loading its data) is a ConnectionError.
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return "redis"
    if isinstance(exc, kombu.exceptions.OperationalError):
        return "broker"
    return None


class LogThrottle:
    """Log a recurring failure at most once every ``interval`` seconds per key and process,
    counting what was held back (an outage must not cost a log line per request or call)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def warning(self, log: logging.Logger, key: str, message: str, **extra: Any) -> bool:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval:
                self._held[key] = self._held.get(key, 0) + 1
                return False
            self._last[key] = now
            suppressed = self._held.pop(key, 0)
        log.warning(message, extra={**extra, "suppressed_since_last": suppressed})
        return True

    def reset(self) -> None:
        with self._lock:
            self._last.clear()
            self._held.clear()


_outage_log = LogThrottle(interval=5.0)


def service_unavailable(dependency: str, exc: BaseException) -> ServiceUnavailable:
    """The 503 for this outage, logged (throttled: once per dependency every few seconds)."""
    _outage_log.warning(
        logger,
        dependency,
        "dependency unavailable; answering 503",
        dependency=dependency,
        error=f"{type(exc).__name__}: {exc}"[:300],
    )
    return ServiceUnavailable(dependency)


def service_unavailable_response(dependency: str, exc: BaseException) -> JsonResponse:
    """The 503 envelope outside REST framework's views (middleware, handler500)."""
    error = service_unavailable(dependency, exc)
    response = JsonResponse(envelope(error.message, error.code, error.details), status=503)
    for key, value in error.headers.items():
        response[key] = value
    return response


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
    elif dependency := outage_dependency(exc):
        error = service_unavailable(dependency, exc)
        status = error.status_code
        body = envelope(error.message, error.code, error.details)
        headers = error.headers
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
    """``handler500``: an exception nothing else answered, raised outside REST framework's
    views (a middleware's database query, say). Django calls it while handling that
    exception, so a dependency outage still gets its 503 here."""
    exc = sys.exc_info()[1]
    dependency = outage_dependency(exc)
    if dependency and exc is not None:
        return service_unavailable_response(dependency, exc)
    return JsonResponse(envelope("Internal server error", "internal_error"), status=500)
