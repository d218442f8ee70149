"""Forwarded headers believed from trusted proxies only; request id on every response;
optional HTTPS enforcement for API requests; 503 for a dependency outage."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from .context import new_request_id, request_id_var
from .errors import outage_dependency, service_unavailable_response

# Any visible ASCII (UUIDs, base64, "trace/123", W3C traceparent): echoed as sent (SPEC §4).
# Nothing else, so that a value can never split a header or a log line.
_CLIENT_ID = re.compile(r"[!-~]{1,200}")

# What a proxy tells us about the client. Django reads X-Forwarded-Proto for is_secure()
# (SECURE_PROXY_SSL_HEADER), client_ip() reads X-Forwarded-For; the others are dropped too so
# that nothing added later can be fooled by them.
FORWARDED_HEADERS = (
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
    "HTTP_X_FORWARDED_SSL",
    "HTTP_X_FORWARDED_PROTOCOL",
    "HTTP_X_REAL_IP",
    "HTTP_FORWARDED",
)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# What the deprecated TRUST_X_FORWARDED_FOR=true trusts when TRUSTED_PROXIES is empty: the
# networks a reverse proxy in front of gunicorn sits on. It used to trust every peer, which
# let a client reaching gunicorn directly name any address.
DEPRECATED_ALIAS_NETWORKS = (
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "::1/128",
    "fc00::/7",
)


def trusted_proxy_cidrs() -> tuple[str, ...]:
    if settings.TRUSTED_PROXIES:
        return tuple(settings.TRUSTED_PROXIES)
    return DEPRECATED_ALIAS_NETWORKS if settings.TRUST_X_FORWARDED_FOR else ()


@lru_cache(maxsize=8)
def _networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def is_trusted_proxy(address: str, *, cidrs: Sequence[str] | None = None) -> bool:
    """Whether ``address`` is in ``TRUSTED_PROXIES`` (or ``cidrs``). An IPv4 peer seen
    through a dual-stack socket (``::ffff:a.b.c.d``) is matched as ``a.b.c.d``; anything that
    is not an address is not trusted."""
    networks = _networks(trusted_proxy_cidrs() if cidrs is None else tuple(cidrs))
    if not networks:
        return False
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)


class TrustedProxyMiddleware:
    """Drop the forwarded headers of a request whose peer (``REMOTE_ADDR``) is not a trusted
    proxy. Without it a client reaching gunicorn directly could send ``X-Forwarded-Proto:
    https`` past ``REQUIRE_HTTPS`` or ``X-Forwarded-For`` naming an allowlisted address.
    Installed first, before anything reads them."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not is_trusted_proxy(request.META.get("REMOTE_ADDR", "")):
            for name in FORWARDED_HEADERS:
                request.META.pop(name, None)
        return self.get_response(request)


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


# Where API clients call: Sluice's own API and the vendor dialects (apps.compat).
API_PREFIXES = ("/api/v1/", "/compat/")


class RequireHttpsMiddleware:
    """Refuse plain-HTTP API calls when ``REQUIRE_HTTPS`` is on (honours X-Forwarded-Proto
    from a trusted proxy). Other pages are redirected by ``SECURE_SSL_REDIRECT``; an API
    client is told instead, since a redirected POST would send its key and body in clear
    again."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if (
            settings.REQUIRE_HTTPS
            and request.path.startswith(API_PREFIXES)
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
