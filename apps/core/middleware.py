"""Request id on every response; optional HTTPS enforcement for API requests; 503 for a
dependency outage."""

from __future__ import annotations

import re
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from .context import new_request_id, request_id_var
from .errors import outage_dependency, service_unavailable_response

# Any visible ASCII (UUIDs, base64, "trace/123", W3C traceparent): echoed as sent (SPEC §4).
# Nothing else, so that a value can never split a header or a log line.
_CLIENT_ID = re.compile(r"[!-~]{1,200}")


class RequestIdMiddleware:
    """Echo the client's ``X-Request-ID`` (1-200 visible ASCII characters) or mint ``req_…``;
    expose it to logs and errors."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        supplied = request.headers.get("X-Request-ID", "")
        request_id = supplied if _CLIENT_ID.fullmatch(supplied) else new_request_id()
        request.request_id = request_id  # type: ignore[attr-defined]
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response["X-Request-ID"] = request_id
        return response


class RequireHttpsMiddleware:
    """Refuse plain-HTTP API calls when ``REQUIRE_HTTPS`` is on (honours X-Forwarded-Proto)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if (
            settings.REQUIRE_HTTPS
            and request.path.startswith("/api/v1/")
            and not request.is_secure()
        ):
            return JsonResponse(
                {
                    "error": "HTTPS is required",
                    "code": "https_required",
                    "details": {},
                    "request_id": getattr(request, "request_id", None),
                },
                status=403,
            )
        return self.get_response(request)


class DependencyOutageMiddleware:
    """A view outside REST framework's (the admin, the ops dashboard, /metrics) that finds
    PostgreSQL, Redis or the broker unreachable answers 503 ``service_unavailable`` with
    ``Retry-After`` instead of a 500 (REST framework's views get the same from the API's
    exception handler). An outage met in a middleware rather than a view is answered alike
    by ``handler500`` (``apps.core.errors.json_500``)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        dependency = outage_dependency(exception)
        if dependency is None:
            return None  # Django's own handling: handler500, or the debug page
        return service_unavailable_response(dependency, exception)
