"""One webhook HTTP request: timeouts, no redirects, the SSRF-guarded session, a 1 KB snippet."""

from __future__ import annotations

import heapq
import itertools
import logging
import os
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


class _Watchdog:
    """One thread that cuts off attempts past their total deadline (``AttemptWatch.cut_off``).

    A ``threading.Timer`` per request cost a thread start and its teardown on every delivery
    (a good part of the sender threads' CPU, bench/webhooks.sh). Here an attempt is an entry
    in a heap; finishing it only marks the entry, which the thread drops when it reaches the
    top. Deadlines are the same for every attempt, so a new entry never goes first and the
    thread is not woken per request. Cutting off and cancelling happen under one lock: once
    ``cancel`` returns, that attempt's connection is never shut down (it may be reused).
    """

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, list[targets.AttemptWatch | None]]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(
        self, watch: targets.AttemptWatch, *, seconds: float
    ) -> list[targets.AttemptWatch | None]:
        entry: list[targets.AttemptWatch | None] = [watch]
        at = time.monotonic() + seconds
        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="sluice-webhook-watchdog", daemon=True
                )
                self._thread.start()
            first = not self._heap or at < self._heap[0][0]
            heapq.heappush(self._heap, (at, next(self._order), entry))
            if first:
                self._cond.notify()
        return entry

    def cancel(self, entry: list[targets.AttemptWatch | None]) -> None:
        with self._cond:
            entry[0] = None

    def _loop(self) -> None:
        with self._cond:
            while True:
                while self._heap and self._heap[0][2][0] is None:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                _, _, entry = heapq.heappop(self._heap)
                watch = entry[0]
                if watch is not None:
                    try:
                        watch.cut_off()
                    except Exception:  # the watchdog must outlive any one attempt
                        logger.warning("could not cut off a webhook attempt", exc_info=True)

    def pending(self) -> int:
        """Attempts being watched (for tests)."""
        with self._cond:
            return sum(1 for _, _, entry in self._heap if entry[0] is not None)


watchdog = _Watchdog()


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
    entry = watchdog.watch(watch, seconds=deadline)
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
        watchdog.cancel(entry)
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
