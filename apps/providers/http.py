"""Shared HTTP plumbing for vendor adapters: pooled sessions, timeouts, error mapping."""

from __future__ import annotations

import email.utils
import json
import time
from datetime import UTC, datetime
from typing import Any

import environ
import requests
from django.conf import settings
from requests.adapters import HTTPAdapter

from .base import Provider, ProviderError

_env = environ.Env()

# Statuses a vendor uses for "slow down / try later": retrying (after a wait) can help.
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
# Statuses that reject this one request (its parameters), not the provider being down or
# our account being unusable there (401, 402, 403 are that, and do count as failures).
REQUEST_REJECTED_STATUSES = frozenset({400, 409, 413, 414, 422})


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def parse_reset_time(value: str | None) -> float | None:
    """Seconds until a rate-limit window resets, from a header holding that moment as an
    ISO 8601 UTC timestamp (``2022-02-23T20:19:55Z``) or epoch seconds; None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        when = float(value)
    except ValueError:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        when = moment.timestamp()
    return max(0.0, when - time.time())


class HttpProvider(Provider):
    """A vendor reached over HTTP with one pooled ``requests.Session`` per adapter instance.

    Subclasses set ``name``, ``kinds``, ``default_base_url`` and the env-derived key, and
    implement ``lookup`` with ``self.request``. The registry keeps one instance per process,
    so the connection pool is shared by every thread of a worker.
    """

    default_base_url: str = ""
    settings_key: str = ""  # key into settings.PROVIDER_CREDENTIALS

    def __init__(self) -> None:
        creds = self.credentials()
        simulator = settings.PROVIDER_SIMULATOR_URL.rstrip("/")
        # The simulator answers every vendor's paths, so one URL stands in for all of them.
        self.base_url = simulator or (creds.get("base_url") or self.default_base_url).rstrip("/")
        self.api_key = creds.get("api_key") or ("simulator" if simulator else "")
        self.timeout = (settings.PROVIDER_CONNECT_TIMEOUT, settings.PROVIDER_READ_TIMEOUT)
        self.session = requests.Session()
        # The vendor key goes to the configured host and nowhere else: no HTTP(S)_PROXY or
        # ALL_PROXY from the environment (a proxy would see every key), no ~/.netrc
        # credentials mixed into vendor calls, no REQUESTS_CA_BUNDLE swap. Redirects are
        # refused in ``request``. (Not ``max_redirects = 0``: requests then raises
        # TooManyRedirects on any 3xx even with ``allow_redirects=False``, hiding the status.)
        self.session.trust_env = False
        # One pool per host, as large as the number of threads that may call at once, so
        # threads never wait for (or throw away) a connection.
        pool = settings.PROVIDER_HTTP_POOL_SIZE
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = "sluice-enrichment/1.0"

    def credentials(self) -> dict[str, str]:
        """``PROVIDER_CREDENTIALS[name]`` when settings list it, else ``<NAME>_API_KEY`` and
        ``<NAME>_BASE_URL`` from the environment, so that a new vendor needs no settings
        entry beyond its line in ``PROVIDERS``."""
        key = self.settings_key or self.name
        configured = settings.PROVIDER_CREDENTIALS.get(key)
        if configured is not None:
            return configured
        prefix = key.upper().replace("-", "_")
        return {
            "api_key": _env.str(f"{prefix}_API_KEY", default=""),
            "base_url": _env.str(f"{prefix}_BASE_URL", default=""),
        }

    def available(self) -> bool:
        return bool(self.api_key and self.base_url)

    def request(
        self,
        method: str,
        path: str,
        *,
        timeout: tuple[float, float] | None = None,
        not_found_statuses: frozenset[int] = frozenset({404}),
        **kwargs: Any,
    ) -> dict[str, Any] | None:
        """Send one request; the JSON object on success, None on a "not found" status.

        Raises ``ProviderError``: retryable for timeouts, connection errors, 429 and 5xx
        (with ``retry_after`` from the header); permanent for other 4xx and bad bodies.
        """
        url = f"{self.base_url}{path}"
        # A redirect is never followed: requests would resend our headers (the key in
        # ``X-Api-Key`` or a query parameter) to whatever host the Location names.
        kwargs["allow_redirects"] = False
        try:
            response = self.session.request(method, url, timeout=timeout or self.timeout, **kwargs)
        except requests.Timeout as exc:
            raise ProviderError(f"{self.name}: timeout ({type(exc).__name__})", retryable=True)
        except requests.ConnectionError as exc:
            raise ProviderError(
                f"{self.name}: connection error ({type(exc).__name__})", retryable=True
            )
        except requests.RequestException as exc:
            raise ProviderError(f"{self.name}: {type(exc).__name__}", retryable=False)
        status = response.status_code
        if status in not_found_statuses:
            return None
        if 300 <= status < 400:
            # A vendor API does not redirect a lookup; one that does is misconfigured (or its
            # base URL is wrong), which is the provider's fault, and retrying will not help.
            # The Location is left out of the message: it may hold the key echoed back.
            raise ProviderError(
                f"{self.name}: HTTP {status} redirect (not followed)",
                retryable=False,
                provider_fault=True,
            )
        if self.is_retryable(response):
            raise ProviderError(
                f"{self.name}: HTTP {status}{self.error_detail(response)}",
                retryable=True,
                retry_after=self.retry_after(response),
            )
        if status >= 400:
            raise ProviderError(
                f"{self.name}: HTTP {status}{self.error_detail(response)}",
                retryable=False,
                provider_fault=status not in REQUEST_REJECTED_STATUSES,
            )
        try:
            body = response.json()
        except (ValueError, json.JSONDecodeError):
            raise ProviderError(f"{self.name}: malformed body (not JSON)", retryable=False)
        if not isinstance(body, dict):
            raise ProviderError(f"{self.name}: malformed body (not an object)", retryable=False)
        return body

    def retry_after(self, response: requests.Response) -> float | None:
        """How long the vendor asked us to wait before trying again (``Retry-After``)."""
        return parse_retry_after(response.headers.get("Retry-After"))

    def is_retryable(self, response: requests.Response) -> bool:
        return response.status_code in RETRYABLE_STATUSES or response.status_code >= 500

    def error_detail(self, response: requests.Response) -> str:
        """A short, secret-free hint from the vendor's error body (never the request)."""
        try:
            body = response.json()
        except ValueError:
            return ""
        message = self.error_message(body) if isinstance(body, dict) else None
        return f": {str(message)[:200]}" if message else ""

    def error_message(self, body: dict[str, Any]) -> str | None:
        return None


def malformed(name: str, what: str) -> ProviderError:
    return ProviderError(f"{name}: malformed body ({what})", retryable=False)
