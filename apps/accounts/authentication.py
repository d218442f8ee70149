"""API-key authentication: ``Authorization: Bearer sk_…`` or ``X-API-KEY: sk_…`` (SPEC §2)."""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from apps.core.middleware import is_trusted_proxy

from .keycache import key_cache
from .models import Account, ApiKey
from .ratelimit import rate_limit_request
from .selectors import api_key_by_raw
from .services import api_key_hash

# The HttpRequest attribute holding a successful (account, key) for this request.
AUTHENTICATED_ATTRIBUTE = "sluice_authenticated"
KEY_FORMAT = re.compile(r"^sk_(live|test)_[A-Za-z0-9]{32,128}$")


def raw_key_from_request(request: Request | HttpRequest) -> str | None:
    """The raw key from ``Authorization: Bearer`` or, failing that, ``X-API-KEY``.

    An ``Authorization`` header of another scheme (say, Basic auth added by a gateway) does not
    hide an ``X-API-KEY``; on its own it is a 401.
    """
    header = request.headers.get("Authorization", "").strip()
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    api_key_header = request.headers.get("X-API-KEY", "").strip()
    if api_key_header:
        return api_key_header
    if header:
        raise exceptions.AuthenticationFailed(
            "Use 'Authorization: Bearer <key>'", code="invalid_api_key"
        )
    return None


def client_ip(request: Request | HttpRequest) -> str:
    """The address an IP allowlist is checked against.

    ``REMOTE_ADDR``, unless that peer is a trusted proxy (``TRUSTED_PROXIES``): then the
    right-most ``X-Forwarded-For`` entry that is not itself a trusted proxy, the client as the
    outermost of our proxies saw it. Every entry left of that was written by the client and
    could name any allowlisted address. A malformed entry there stops the walk at itself: it
    is not an address, so no allowlist matches it.
    """
    peer = request.META.get("REMOTE_ADDR", "")
    # Checked here as well as in TrustedProxyMiddleware, so that the header can never widen
    # an allowlist even where that middleware is not installed.
    if not is_trusted_proxy(peer):
        return peer
    hops = [hop.strip() for hop in request.headers.get("X-Forwarded-For", "").split(",")]
    for hop in reversed([hop for hop in hops if hop]):
        if not is_trusted_proxy(hop):
            return hop
    # Only proxies (or no header): the request came from the proxy network itself.
    return peer


def ip_allowed(ip: str, allowlist: list[str]) -> bool:
    if not allowlist:
        return True
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    # A dual-stack server sees an IPv4 client as ::ffff:a.b.c.d; match it as a.b.c.d too.
    candidates = [address]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        candidates.append(address.ipv4_mapped)
    for entry in allowlist:
        try:
            network = ipaddress.ip_network(str(entry).strip(), strict=False)
        except ValueError:
            continue
        if any(candidate in network for candidate in candidates):
            return True
    return False


def _view(request: Request | HttpRequest) -> object | None:
    """The DRF view handling this request (None for a plain HttpRequest, as in middleware)."""
    context = getattr(request, "parser_context", None)
    return context.get("view") if context else None


def _cache_digest(request: Request | HttpRequest) -> str | None:
    """The key cache's entry name for this request's key (its hash); None without a
    well-formed key (``_authenticate`` then answers for it)."""
    raw = raw_key_from_request(request)
    return api_key_hash(raw) if raw is not None and KEY_FORMAT.match(raw) else None


class ApiKeyAuthentication(BaseAuthentication):
    """Resolve the key to (account, key); 401 for bad keys, 403 for plan or IP refusals."""

    def authenticate(self, request: Request | HttpRequest) -> tuple[Account, ApiKey] | None:
        # The idempotency middleware authenticates the same HttpRequest before DRF does:
        # reuse its result so the key is looked up, and the request counted, once.
        http_request: HttpRequest = getattr(request, "_request", request)
        cached = getattr(http_request, AUTHENTICATED_ATTRIBUTE, None)
        if cached is not None:
            return cached
        if getattr(_view(request), "api_key_cache", False):
            result = self._authenticate_cached(request)
        else:
            result = self._authenticate(request)
        if result is not None:
            # Counted here, not in the throttle, so that every authenticated response (a
            # scope refusal, a 404, an idempotent replay) carries the X-RateLimit headers.
            rate_limit_request(request=http_request, account=result[0], api_key=result[1])
            setattr(http_request, AUTHENTICATED_ATTRIBUTE, result)
        return result

    def _authenticate(self, request: Request | HttpRequest) -> tuple[Account, ApiKey] | None:
        raw = raw_key_from_request(request)
        if raw is None:
            return None
        if not KEY_FORMAT.match(raw):
            raise exceptions.AuthenticationFailed("Malformed API key", code="invalid_api_key")
        key = api_key_by_raw(raw)
        if key is None:
            raise exceptions.AuthenticationFailed("Unknown API key", code="invalid_api_key")
        if key.revoked_at is not None:
            raise exceptions.AuthenticationFailed(
                "This API key has been revoked", code="api_key_revoked"
            )
        if not key.account.plan.api_access:
            raise exceptions.PermissionDenied(
                f"The {key.account.plan.name} plan has no API access",
                code="plan_without_api_access",
            )
        if not ip_allowed(client_ip(request), key.ip_allowlist):
            raise exceptions.PermissionDenied(
                "Request IP is not in this key's allowlist", code="ip_not_allowed"
            )
        self._touch(key)
        return key.account, key

    def _authenticate_cached(self, request: Request | HttpRequest) -> tuple[Account, ApiKey] | None:
        """``_authenticate`` trusting this process's lookup of a key for
        ``API_KEY_CACHE_SECONDS``: for views with ``api_key_cache = True``, the single-contact
        intake, where the lookup was a fifth of the request.

        Only for views whose write re-checks the key in its own statement
        (``apps.accounts.keycache``: not revoked, plan with API access, credits for a live
        key), so that those refusals still apply at once; such a view (``CachedKeyView``)
        calls ``authenticate_fresh`` when its write is refused, and before answering a 422
        (a 401 or 403 outranks it). Only a key that could submit work when looked up is
        kept (a live key of an account without credits is looked up on every request, so a
        top-up counts at once). The IP allowlist is checked on every request, against the
        cached list. What can be up to ``API_KEY_CACHE_SECONDS`` old: allowlist and scope
        edits, the plan's rate limits, the account's consent and default phone countries.
        The cached objects are shared between requests and threads: such views must not
        modify them.
        """
        max_age = settings.API_KEY_CACHE_SECONDS
        digest = _cache_digest(request)
        if digest is None or max_age <= 0:
            return self._authenticate(request)
        key = key_cache.get(digest, max_age)
        if key is not None and ip_allowed(client_ip(request), key.ip_allowlist):
            return key.account, key
        result = self._authenticate(request)
        if result is not None and (result[1].sandbox or result[0].credits > 0):
            key_cache.put(digest, result[1])
        return result

    def authenticate_fresh(self, request: Request) -> tuple[Account, ApiKey]:
        """Look the request's key up again, bypassing the cache: 401/403 as usual when it no
        longer passes. For a view whose write was refused with a cached key."""
        digest = _cache_digest(request)
        if digest is not None:
            key_cache.evict(digest)
        result = self._authenticate(request)
        if result is None:  # the header cannot have vanished; for the type checker
            raise exceptions.NotAuthenticated("Missing API key", code="missing_api_key")
        return result

    @staticmethod
    def _touch(key: ApiKey) -> None:
        # One write per key per minute at most, not one per request.
        now = timezone.now()
        resolution = timedelta(seconds=settings.API_KEY_LAST_USED_RESOLUTION_SECONDS)
        if key.last_used_at is None or now - key.last_used_at > resolution:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
            key.last_used_at = now

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="sluice"'


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "apps.accounts.authentication.ApiKeyAuthentication"
    name = ["BearerAuth", "ApiKeyHeader"]

    def get_security_definition(self, auto_schema):  # type: ignore[no-untyped-def]
        return [
            {"type": "http", "scheme": "bearer", "bearerFormat": "sk_live_… / sk_test_…"},
            {"type": "apiKey", "in": "header", "name": "X-API-KEY"},
        ]
