"""One webhook HTTP request: timeouts, no redirects, the SSRF-guarded session, a 1 KB snippet."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import requests
import urllib3
from django.conf import settings
from django.utils import timezone

from .. import targets

RESPONSE_SNIPPET_BYTES = 1024

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AttemptResult:
    status_code: int | None
    duration_ms: int
    error: str | None
    response_body: str
    retry_after: float | None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, (moment - timezone.now()).total_seconds())


def _read_snippet(response: requests.Response) -> str:
    try:
        raw = response.raw.read(RESPONSE_SNIPPET_BYTES, decode_content=True) or b""
    except (urllib3.exceptions.HTTPError, OSError):
        return ""
    # PostgreSQL text cannot hold NUL. A replacement character takes 3 bytes, so the text is
    # cut again to keep the snippet within 1 KB as stored (UTF-8), never mid-character.
    text = raw[:RESPONSE_SNIPPET_BYTES].decode("utf-8", errors="replace").replace("\x00", "")
    return text.encode()[:RESPONSE_SNIPPET_BYTES].decode("utf-8", errors="ignore")


def _connection_error(exc: requests.exceptions.ConnectionError) -> str:
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    if isinstance(reason, targets.PrivateAddressError):
        return str(reason).split(": ", 1)[-1]
    return f"Connection error: {reason or exc}"


def http_post(*, url: str, body: bytes, headers: dict[str, str]) -> AttemptResult:
    """One POST with the SPEC's timeouts, no redirects and the public-address guard."""
    started = time.monotonic()
    status_code: int | None = None
    snippet = ""
    error: str | None = None
    retry_after: float | None = None
    # The whole answer (headers and snippet) within connect + read timeouts, as the claim
    # lease assumes; a receiver trickling bytes is cut off then.
    deadline = settings.WEBHOOK_CONNECT_TIMEOUT + settings.WEBHOOK_READ_TIMEOUT
    watch = targets.attempt_watch()
    timer = threading.Timer(deadline, watch.cut_off)
    timer.daemon = True
    timer.start()
    try:
        with targets.session().post(
            url,
            data=body,
            headers=headers,
            timeout=(settings.WEBHOOK_CONNECT_TIMEOUT, settings.WEBHOOK_READ_TIMEOUT),
            allow_redirects=False,
            stream=True,
        ) as response:
            watch.answered = True
            status_code = response.status_code
            if status_code in (429, 503):
                retry_after = _retry_after(response.headers.get("Retry-After"))
            snippet = _read_snippet(response)
            if 300 <= status_code < 400:
                error = f"Redirect to {response.headers.get('Location', '?')} (not followed)"
            elif not 200 <= status_code < 300:
                error = f"HTTP {status_code}"
    except requests.exceptions.ConnectTimeout:
        error = f"Connect timeout ({settings.WEBHOOK_CONNECT_TIMEOUT:g} s)"
    except requests.exceptions.ReadTimeout:
        error = f"Read timeout ({settings.WEBHOOK_READ_TIMEOUT:g} s)"
    except requests.exceptions.ConnectionError as exc:
        error = _connection_error(exc)
    except requests.exceptions.RequestException as exc:
        error = f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # e.g. urllib3's LocationParseError, which requests lets through
        # A crash here would leave no attempt: the sweep would re-send it forever, uncounted.
        logger.warning("webhook request raised", exc_info=True)
        error = f"{type(exc).__name__}: {exc}"
    finally:
        timer.cancel()
    if watch.cut_before_answer:
        status_code, snippet, retry_after = None, "", None
        error = f"Timeout: no complete answer within {deadline:g} s"
    return AttemptResult(
        status_code=status_code,
        duration_ms=int((time.monotonic() - started) * 1000),
        error=error[:1000] if error else None,
        response_body=snippet,
        retry_after=retry_after,
    )
