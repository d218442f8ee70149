"""``Sluice``: one method per ``/api/v1`` operation, with retries, idempotency keys, cursor
paging and waiting helpers."""

from __future__ import annotations

import json as _json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, Protocol, TypeVar
from urllib.parse import quote

import requests

from . import errors
from .types import (
    Accepted,
    Bulk,
    BulkAccepted,
    CallbackSecret,
    Contact,
    ContactList,
    Credits,
    Delivery,
    Endpoint,
    EndpointEnabled,
    EndpointWithSecret,
    Event,
    Export,
    Import,
    ListEntry,
    Page,
    Recover,
    RowError,
)

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
USER_AGENT = "sluice-client-python/0.1"
# 5xx answers worth another try: the server said it is (or a proxy found it) unavailable.
_RETRY_STATUSES = frozenset({502, 503, 504})

T = TypeVar("T")
logger = logging.getLogger("sluice_client")


class Writable(Protocol):
    """Where a download goes: a binary file, or anything with its ``write``."""

    def write(self, data: bytes, /) -> object: ...


# A file to upload: its name, its bytes or a binary file object, its content type.
Upload = tuple[str, bytes | BinaryIO, str]


def _backoff(attempt: int) -> float:
    """Seconds before retry ``attempt + 1`` when the server named none: 0.5, 1, 2, 4…"""
    return 2**attempt * 0.5


def _retrying(
    method: str, path: str, reason: str, wait: float, *, status: int | None, retry_after: str | None
) -> None:
    """One log line per retry (logger ``sluice_client``, INFO); the fields also as attributes
    of the record, for a handler that wants them."""
    logger.info(
        "%s %s: %s; retrying in %.1f s",
        method,
        path,
        reason,
        wait,
        extra={"sluice_status": status, "sluice_wait": wait, "sluice_retry_after": retry_after},
    )


def _path(template: str, **ids: str) -> str:
    return template.format(**{k: quote(str(v), safe="") for k, v in ids.items()})


def _drop_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


class Sluice:
    """A client for one API key.

    ``api_key`` defaults to ``$SLUICE_API_KEY``, ``base_url`` to ``$SLUICE_BASE_URL`` (else
    ``http://127.0.0.1:8000``). Every POST carries an ``Idempotency-Key`` (yours, or a fresh
    UUID) that stays the same on each retry, so a retried request never enqueues or charges
    twice. Retried up to ``max_retries`` times: 429 (after ``Retry-After``, at most
    ``max_retry_wait`` seconds), 409 ``idempotency_key_in_flight``, 502/503/504, connection
    errors and timeouts. Every call either returns the decoded JSON or raises a subclass of
    ``sluice_client.errors.SluiceError``.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 4,
        max_retry_wait: float = 60.0,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        key = api_key or os.environ.get("SLUICE_API_KEY")
        if not key:
            raise errors.SluiceError("No API key: pass api_key= or set SLUICE_API_KEY.")
        self.api_key = key
        self.base_url = (base_url or os.environ.get("SLUICE_BASE_URL") or DEFAULT_BASE_URL).rstrip(
            "/"
        )
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        self._sleep = sleep
        self._session = session or requests.Session()
        self._session.headers.update(
            {
                "Authorization": f"Bearer {key}",
                "User-Agent": USER_AGENT,
                "Accept": "application/json",
            }
        )
        #: Headers of the last answer (``X-RateLimit-*``, ``X-Request-ID``…).
        self.last_headers: dict[str, str] = {}

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Sluice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transport ------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
        upload: Upload | None = None,
    ) -> Any:
        """One API call with the retry policy above; the decoded body (``None`` for 204).
        ``upload``: send ``json`` (a flat dict of strings) and this file as
        ``multipart/form-data`` instead of a JSON body."""
        response = self._send(
            method,
            path,
            params=params,
            json=json,
            idempotency_key=idempotency_key,
            timeout=timeout,
            upload=upload,
        )
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
        upload: Upload | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """The answer (below 400) after the retry policy, or the error it ends with raised."""
        headers: dict[str, str] = {}
        if method == "POST":
            headers["Idempotency-Key"] = idempotency_key or str(uuid.uuid4())
        url = f"{self.base_url}{path}"
        start: int | None = None
        if upload is not None and not isinstance(upload[1], bytes):
            if upload[1].seekable():
                start = upload[1].tell()
            else:  # a pipe: read once, so that every resend sends the same bytes
                upload = (upload[0], upload[1].read(), upload[2])
        attempt = 0
        while True:
            body: dict[str, Any] = {"json": json}
            if upload is not None:
                # Every resend sends the file from where it stood. The server takes a resent
                # upload with the same key and length as the same request, whatever the
                # boundary of its multipart framing.
                name, data, content_type = upload
                if start is not None and not isinstance(data, bytes):
                    data.seek(start)
                body = {"data": json, "files": {"file": (name, data, content_type)}}
            try:
                response = self._session.request(
                    method,
                    url,
                    params=_drop_none(params or {}),
                    headers=headers,
                    timeout=timeout or self.timeout,
                    stream=stream,
                    **body,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                # Safe to repeat: GET/PATCH/DELETE are idempotent and every POST carries its
                # Idempotency-Key (a replay, or 409 in flight, which is retried too).
                if attempt >= self.max_retries:
                    raise errors.ConnectionError(f"{method} {url}: {exc}") from exc
                wait = min(_backoff(attempt), self.max_retry_wait)
                _retrying(method, path, type(exc).__name__, wait, status=None, retry_after=None)
                self._sleep(wait)
                attempt += 1
                continue
            self.last_headers = dict(response.headers)
            if response.status_code < 400:
                return response
            try:
                error_body = response.json()
            except ValueError:
                error_body = None
            error = errors.error_from_response(
                response.status_code, error_body, dict(response.headers)
            )
            if attempt < self.max_retries and self._retryable(error, method):
                wait = self._wait_before_retry(error, attempt)
                retry_after = error.headers.get("Retry-After")
                reason = error.code or f"HTTP {error.status}"
                _retrying(method, path, reason, wait, status=error.status, retry_after=retry_after)
                self._sleep(wait)
                attempt += 1
                continue
            raise error

    @staticmethod
    def _retryable(error: errors.APIError, method: str) -> bool:
        return (
            error.status == 429
            or error.status in _RETRY_STATUSES
            or (error.status == 409 and error.code == "idempotency_key_in_flight")
            # Any 5xx of a read or a delete (a deadlock, a blip): repeating it is harmless.
            # Not of a POST: a 500 is not kept with its Idempotency-Key, so a retry would
            # run the request again after it may have done its work.
            or (error.status >= 500 and method in ("GET", "DELETE"))
        )

    def _wait_before_retry(self, error: errors.APIError, attempt: int) -> float:
        retry_after = error.headers.get("Retry-After")
        try:
            wait = float(retry_after) if retry_after is not None else _backoff(attempt)
        except ValueError:
            wait = _backoff(attempt)
        return max(0.0, min(wait, self.max_retry_wait))

    def _pages(self, path: str, params: Mapping[str, Any]) -> Iterator[Any]:
        """Every item of a cursor-paginated list, fetching the next page when needed."""
        query = dict(params)
        while True:
            page = self.request("GET", path, params=query)
            yield from page["data"]
            cursor = page["pagination"].get("next_cursor")
            if not page["pagination"].get("has_more") or not cursor:
                return
            query["cursor"] = cursor

    # --- enrichment -----------------------------------------------------------------------

    def enrich(
        self,
        *,
        first_name: str,
        last_name: str,
        enrichment_type: Sequence[str] = ("email",),
        idempotency_key: str | None = None,
        **fields: Any,
    ) -> Accepted:
        """``POST /enrich``: one contact; 202 ``{enrichment_id, status: "pending", …}``.
        ``fields``: ``company_name``, ``domain``, ``linkedin_url``, ``phone_country_codes``,
        ``webhook_url``, ``custom``, ``max_credits``, ``list_id``."""
        body = {
            "first_name": first_name,
            "last_name": last_name,
            "enrichment_type": list(enrichment_type),
            **fields,
        }
        return self.request("POST", "/api/v1/enrich", json=body, idempotency_key=idempotency_key)

    def enrich_sync(
        self,
        *,
        first_name: str,
        last_name: str,
        enrichment_type: Sequence[str] = ("email",),
        timeout: int | None = None,
        idempotency_key: str | None = None,
        **fields: Any,
    ) -> Contact | Accepted:
        """``POST /enrich/sync``: the finished contact, or the 202 answer (``status:
        "pending"``) when it took longer than ``timeout`` seconds (server default 30)."""
        body = {
            "first_name": first_name,
            "last_name": last_name,
            "enrichment_type": list(enrichment_type),
            **_drop_none({"timeout": timeout}),
            **fields,
        }
        wait = (timeout or 60) + self.timeout
        return self.request(
            "POST", "/api/v1/enrich/sync", json=body, idempotency_key=idempotency_key, timeout=wait
        )

    def enrich_bulk(
        self,
        contacts: Sequence[Mapping[str, Any]],
        *,
        enrichment_type: Sequence[str] | None = None,
        phone_country_codes: Sequence[str] | None = None,
        webhook_url: str | None = None,
        list_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> BulkAccepted:
        """``POST /enrich/bulk``: up to the plan's bulk max, all or nothing; 202 ``{bulk_id,
        total, contacts: [{enrichment_id, custom}]}`` in request order; ``list_id`` puts every
        contact in that list as it is created."""
        body = {
            "contacts": [dict(c) for c in contacts],
            **_drop_none(
                {
                    "enrichment_type": list(enrichment_type) if enrichment_type else None,
                    "phone_country_codes": list(phone_country_codes)
                    if phone_country_codes
                    else None,
                    "webhook_url": webhook_url,
                    "list_id": list_id,
                }
            ),
        }
        return self.request(
            "POST", "/api/v1/enrich/bulk", json=body, idempotency_key=idempotency_key
        )

    def get_contact(self, enrichment_id: str) -> Contact:
        """``GET /contacts/{id}``."""
        return self.request("GET", _path("/api/v1/contacts/{id}", id=enrichment_id))

    def list_contacts(
        self,
        *,
        status: str | None = None,
        result_status: str | None = None,
        bulk_id: str | None = None,
        updated_after: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Contact]:
        """``GET /contacts``: one page, newest first (``iter_contacts`` pages for you)."""
        return self.request(
            "GET",
            "/api/v1/contacts",
            params={
                "status": status,
                "result_status": result_status,
                "bulk_id": bulk_id,
                "updated_after": updated_after,
                "limit": limit,
                "cursor": cursor,
            },
        )

    def iter_contacts(
        self,
        *,
        status: str | None = None,
        result_status: str | None = None,
        bulk_id: str | None = None,
        updated_after: str | None = None,
        page_size: int = 100,
    ) -> Iterator[Contact]:
        """Every contact matching the filters, across pages, newest first."""
        return self._pages(
            "/api/v1/contacts",
            _drop_none(
                {
                    "status": status,
                    "result_status": result_status,
                    "bulk_id": bulk_id,
                    "updated_after": updated_after,
                    "limit": page_size,
                }
            ),
        )

    def get_bulk(self, bulk_id: str) -> Bulk:
        """``GET /bulk/{id}``: the batch's progress counters."""
        return self.request("GET", _path("/api/v1/bulk/{id}", id=bulk_id))

    def wait(self, enrichment_id: str, *, timeout: float = 300.0, interval: float = 1.0) -> Contact:
        """Poll ``GET /contacts/{id}`` until it is finished; ``WaitTimeout`` after
        ``timeout`` seconds."""
        return self._wait_for(
            lambda: self.get_contact(enrichment_id),
            lambda c: c["status"] == "finished",
            timeout=timeout,
            interval=interval,
            what=f"enrichment {enrichment_id}",
        )

    def wait_bulk(
        self,
        bulk_id: str,
        *,
        timeout: float = 3600.0,
        interval: float = 2.0,
        on_progress: Callable[[Bulk], None] | None = None,
    ) -> Bulk:
        """Poll ``GET /bulk/{id}`` until it is completed (``on_progress`` sees every read)."""

        def read() -> Bulk:
            bulk = self.get_bulk(bulk_id)
            if on_progress is not None:
                on_progress(bulk)
            return bulk

        return self._wait_for(
            read,
            lambda b: b["status"] == "completed",
            timeout=timeout,
            interval=interval,
            what=f"bulk {bulk_id}",
        )

    def _wait_for(
        self,
        read: Callable[[], T],
        done: Callable[[T], bool],
        *,
        timeout: float,
        interval: float,
        what: str,
    ) -> T:
        deadline = time.monotonic() + timeout
        while True:
            value = read()
            if done(value):
                return value
            if time.monotonic() >= deadline:
                raise errors.WaitTimeout(f"{what} not finished after {timeout:g} s")
            self._sleep(interval)

    # --- account --------------------------------------------------------------------------

    def credits(self) -> Credits:
        """``GET /credits``: balance, plan, today's requests and the daily limit."""
        return self.request("GET", "/api/v1/credits")

    def rotate_callback_secret(self, *, idempotency_key: str | None = None) -> CallbackSecret:
        """``POST /callback-secret/rotate`` (live keys): a new ``webhook_secret``."""
        return self.request(
            "POST", "/api/v1/callback-secret/rotate", idempotency_key=idempotency_key
        )

    # --- events ---------------------------------------------------------------------------

    def list_events(
        self,
        *,
        type: str | None = None,
        since: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Event]:
        """``GET /events``: one page, newest first; ``since`` is RFC 3339 and inclusive."""
        return self.request(
            "GET",
            "/api/v1/events",
            params={"type": type, "since": since, "limit": limit, "cursor": cursor},
        )

    def iter_events(
        self, *, type: str | None = None, since: str | None = None, page_size: int = 100
    ) -> Iterator[Event]:
        """Every event (kept ``WEBHOOK_EVENT_RETENTION_SECONDS``), newest first."""
        return self._pages(
            "/api/v1/events", _drop_none({"type": type, "since": since, "limit": page_size})
        )

    # --- webhook endpoints ----------------------------------------------------------------

    def create_webhook(
        self,
        url: str,
        *,
        events: Sequence[str] | None = None,
        description: str | None = None,
        rate_limit: int | None = None,
        filter: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> EndpointWithSecret:
        """``POST /webhooks``: the endpoint with its ``secret`` (shown only here)."""
        body = _drop_none(
            {
                "url": url,
                "events": list(events) if events else None,
                "description": description,
                "rate_limit": rate_limit,
                "filter": dict(filter) if filter else None,
            }
        )
        return self.request("POST", "/api/v1/webhooks", json=body, idempotency_key=idempotency_key)

    def list_webhooks(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[Endpoint]:
        """``GET /webhooks``: one page."""
        return self.request("GET", "/api/v1/webhooks", params={"limit": limit, "cursor": cursor})

    def iter_webhooks(self, *, page_size: int = 100) -> Iterator[Endpoint]:
        return self._pages("/api/v1/webhooks", {"limit": page_size})

    def get_webhook(self, endpoint_id: str) -> Endpoint:
        return self.request("GET", _path("/api/v1/webhooks/{id}", id=endpoint_id))

    def update_webhook(self, endpoint_id: str, **changes: Any) -> Endpoint:
        """``PATCH /webhooks/{id}``: ``url``, ``events``, ``description``, ``rate_limit``,
        ``filter`` (``None`` clears ``rate_limit``/``filter``)."""
        return self.request("PATCH", _path("/api/v1/webhooks/{id}", id=endpoint_id), json=changes)

    def delete_webhook(self, endpoint_id: str) -> None:
        self.request("DELETE", _path("/api/v1/webhooks/{id}", id=endpoint_id))

    def test_webhook(
        self, endpoint_id: str, *, event_type: str | None = None, idempotency_key: str | None = None
    ) -> Delivery:
        """``POST /webhooks/{id}/test``: queue a sample event (``"_test": true``)."""
        return self.request(
            "POST",
            _path("/api/v1/webhooks/{id}/test", id=endpoint_id),
            json=_drop_none({"event_type": event_type}),
            idempotency_key=idempotency_key,
        )

    def enable_webhook(
        self, endpoint_id: str, *, replay: bool = False, idempotency_key: str | None = None
    ) -> EndpointEnabled:
        """``POST /webhooks/{id}/enable``; ``replay`` resends what was skipped."""
        return self.request(
            "POST",
            _path("/api/v1/webhooks/{id}/enable", id=endpoint_id),
            json={"replay": replay},
            idempotency_key=idempotency_key,
        )

    def rotate_webhook_secret(
        self, endpoint_id: str, *, idempotency_key: str | None = None
    ) -> EndpointWithSecret:
        """``POST /webhooks/{id}/rotate-secret``: the old secret keeps signing for 24 h."""
        return self.request(
            "POST",
            _path("/api/v1/webhooks/{id}/rotate-secret", id=endpoint_id),
            idempotency_key=idempotency_key,
        )

    def recover_webhook(
        self, endpoint_id: str, *, since: str, idempotency_key: str | None = None
    ) -> Recover:
        """``POST /webhooks/{id}/recover``: resend what it did not receive since then."""
        return self.request(
            "POST",
            _path("/api/v1/webhooks/{id}/recover", id=endpoint_id),
            json={"since": since},
            idempotency_key=idempotency_key,
        )

    def list_deliveries(
        self,
        endpoint_id: str,
        *,
        status: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Delivery]:
        return self.request(
            "GET",
            _path("/api/v1/webhooks/{id}/deliveries", id=endpoint_id),
            params={"status": status, "limit": limit, "cursor": cursor},
        )

    def iter_deliveries(
        self, endpoint_id: str, *, status: str | None = None, page_size: int = 100
    ) -> Iterator[Delivery]:
        return self._pages(
            _path("/api/v1/webhooks/{id}/deliveries", id=endpoint_id),
            _drop_none({"status": status, "limit": page_size}),
        )

    def get_delivery(self, endpoint_id: str, delivery_id: str) -> Delivery:
        return self.request(
            "GET",
            _path(
                "/api/v1/webhooks/{id}/deliveries/{delivery}", id=endpoint_id, delivery=delivery_id
            ),
        )

    def retry_delivery(
        self, endpoint_id: str, delivery_id: str, *, idempotency_key: str | None = None
    ) -> Delivery:
        return self.request(
            "POST",
            _path(
                "/api/v1/webhooks/{id}/deliveries/{delivery}/retry",
                id=endpoint_id,
                delivery=delivery_id,
            ),
            idempotency_key=idempotency_key,
        )

    # --- lists ----------------------------------------------------------------------------

    def create_list(
        self,
        name: str,
        *,
        description: str | None = None,
        color: str | None = None,
        is_pinned: bool | None = None,
        idempotency_key: str | None = None,
    ) -> ContactList:
        """``POST /lists``: a named set of contacts."""
        body = _drop_none(
            {"name": name, "description": description, "color": color, "is_pinned": is_pinned}
        )
        return self.request("POST", "/api/v1/lists", json=body, idempotency_key=idempotency_key)

    def list_lists(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[ContactList]:
        """``GET /lists``: one page, pinned first, then most recently updated."""
        return self.request("GET", "/api/v1/lists", params={"limit": limit, "cursor": cursor})

    def iter_lists(self, *, page_size: int = 100) -> Iterator[ContactList]:
        return self._pages("/api/v1/lists", {"limit": page_size})

    def get_list(self, list_id: str) -> ContactList:
        return self.request("GET", _path("/api/v1/lists/{id}", id=list_id))

    def update_list(self, list_id: str, **changes: Any) -> ContactList:
        """``PATCH /lists/{id}``: ``name``, ``description``, ``color``, ``is_pinned``."""
        return self.request("PATCH", _path("/api/v1/lists/{id}", id=list_id), json=changes)

    def delete_list(self, list_id: str) -> None:
        """``DELETE /lists/{id}``: its entries go, its contacts stay."""
        self.request("DELETE", _path("/api/v1/lists/{id}", id=list_id))

    def list_list_contacts(
        self, list_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[Contact]:
        """``GET /lists/{id}/contacts``: one page, most recently added first."""
        return self.request(
            "GET",
            _path("/api/v1/lists/{id}/contacts", id=list_id),
            params={"limit": limit, "cursor": cursor},
        )

    def iter_list_contacts(self, list_id: str, *, page_size: int = 100) -> Iterator[Contact]:
        return self._pages(_path("/api/v1/lists/{id}/contacts", id=list_id), {"limit": page_size})

    def add_to_list(
        self, list_id: str, enrichment_id: str, *, idempotency_key: str | None = None
    ) -> ListEntry:
        """``POST /lists/{id}/contacts``: 409 ``already_in_list`` if it is there already."""
        return self.request(
            "POST",
            _path("/api/v1/lists/{id}/contacts", id=list_id),
            json={"enrichment_id": enrichment_id},
            idempotency_key=idempotency_key,
        )

    def remove_from_list(self, list_id: str, enrichment_id: str) -> None:
        """``DELETE /lists/{id}/contacts/{enrichment_id}``: the contact itself stays."""
        self.request(
            "DELETE",
            _path("/api/v1/lists/{id}/contacts/{contact}", id=list_id, contact=enrichment_id),
        )

    # --- imports and exports --------------------------------------------------------------

    def create_import(
        self,
        file: str | os.PathLike[str] | bytes | BinaryIO,
        *,
        enrichment_type: Sequence[str] = ("email",),
        file_name: str | None = None,
        phone_country_codes: Sequence[str] | None = None,
        webhook_url: str | None = None,
        mapping: Mapping[str, str | None] | None = None,
        name: str | None = None,
        list_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> Import:
        """``POST /imports``: a CSV file (a path, its bytes or a binary file object) as
        ``multipart/form-data``; 202 at once, then a worker parses and enqueues it (poll
        ``get_import`` or ``wait_import``). ``mapping``: CSV column → contact field, ``None``
        to keep a column in ``custom``; unnamed columns are matched by their usual spellings.
        A resend of the same file (a retry, or your own with the same ``idempotency_key``) is
        answered with the first upload's import; a refused upload (4xx) is not kept, so its
        resend runs again."""
        form = _drop_none(
            {
                "enrichment_type": ",".join(enrichment_type),
                "phone_country_codes": ",".join(phone_country_codes)
                if phone_country_codes
                else None,
                "webhook_url": webhook_url,
                "mapping": _json.dumps(dict(mapping)) if mapping is not None else None,
                "name": name,
                "list_id": list_id,
            }
        )
        if isinstance(file, (str, os.PathLike)):
            path = Path(file)
            with path.open("rb") as opened:
                return self.request(
                    "POST",
                    "/api/v1/imports",
                    json=form,
                    upload=(file_name or path.name, opened, "text/csv"),
                    idempotency_key=idempotency_key,
                )
        return self.request(
            "POST",
            "/api/v1/imports",
            json=form,
            upload=(file_name or "contacts.csv", file, "text/csv"),
            idempotency_key=idempotency_key,
        )

    def list_imports(self, *, limit: int | None = None, cursor: str | None = None) -> Page[Import]:
        """``GET /imports``: one page, newest first."""
        return self.request("GET", "/api/v1/imports", params={"limit": limit, "cursor": cursor})

    def iter_imports(self, *, page_size: int = 100) -> Iterator[Import]:
        return self._pages("/api/v1/imports", {"limit": page_size})

    def get_import(self, import_id: str) -> Import:
        """``GET /imports/{id}``: its stage, row counts and enrichment counters."""
        return self.request("GET", _path("/api/v1/imports/{id}", id=import_id))

    def list_import_errors(
        self, import_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[RowError]:
        """``GET /imports/{id}/errors``: one page of the skipped rows, in file order."""
        return self.request(
            "GET",
            _path("/api/v1/imports/{id}/errors", id=import_id),
            params={"limit": limit, "cursor": cursor},
        )

    def iter_import_errors(self, import_id: str, *, page_size: int = 100) -> Iterator[RowError]:
        return self._pages(_path("/api/v1/imports/{id}/errors", id=import_id), {"limit": page_size})

    def wait_import(
        self,
        import_id: str,
        *,
        timeout: float = 3600.0,
        interval: float = 2.0,
        on_progress: Callable[[Import], None] | None = None,
    ) -> Import:
        """Poll ``GET /imports/{id}`` until it is ``completed`` or ``failed`` (check
        ``status``: a failed import says why in ``error_message``)."""

        def read() -> Import:
            job = self.get_import(import_id)
            if on_progress is not None:
                on_progress(job)
            return job

        return self._wait_for(
            read,
            lambda j: j["status"] in ("completed", "failed"),
            timeout=timeout,
            interval=interval,
            what=f"import {import_id}",
        )

    def create_export(
        self,
        *,
        import_id: str | None = None,
        bulk_id: str | None = None,
        list_id: str | None = None,
        filters: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Export:
        """``POST /exports`` with exactly one source: an import's contacts (in its columns),
        a bulk's, a list's, or the ``GET /contacts`` ``filters``'; 202, written by a worker."""
        body = _drop_none(
            {
                "import_id": import_id,
                "bulk_id": bulk_id,
                "list_id": list_id,
                "filters": dict(filters) if filters is not None else None,
            }
        )
        return self.request("POST", "/api/v1/exports", json=body, idempotency_key=idempotency_key)

    def list_exports(self, *, limit: int | None = None, cursor: str | None = None) -> Page[Export]:
        """``GET /exports``: one page, newest first."""
        return self.request("GET", "/api/v1/exports", params={"limit": limit, "cursor": cursor})

    def iter_exports(self, *, page_size: int = 100) -> Iterator[Export]:
        return self._pages("/api/v1/exports", {"limit": page_size})

    def get_export(self, export_id: str) -> Export:
        """``GET /exports/{id}``: ``download_ready`` once its file is written."""
        return self.request("GET", _path("/api/v1/exports/{id}", id=export_id))

    def wait_export(
        self, export_id: str, *, timeout: float = 600.0, interval: float = 1.0
    ) -> Export:
        """Poll ``GET /exports/{id}`` until its file is ready, or it ``failed``/``expired``."""
        return self._wait_for(
            lambda: self.get_export(export_id),
            lambda e: e["download_ready"] or e["status"] in ("failed", "expired"),
            timeout=timeout,
            interval=interval,
            what=f"export {export_id}",
        )

    def download_export(
        self, export_id: str, to: str | os.PathLike[str] | Writable | None = None
    ) -> bytes | None:
        """``GET /exports/{id}/download``: the CSV (UTF-8 with a BOM), as the server wrote
        it. Returned as bytes, or streamed into ``to`` (a path, a binary file, anything with
        ``write``) without holding it in memory."""
        response = self._send(
            "GET",
            _path("/api/v1/exports/{id}/download", id=export_id),
            stream=to is not None,
        )
        if to is None:
            return response.content
        try:
            if isinstance(to, (str, os.PathLike)):
                with Path(to).open("wb") as out:
                    _copy(response, out)
            else:
                _copy(response, to)
        except requests.RequestException as exc:  # cut off mid-file: download it again
            raise errors.ConnectionError(f"GET {response.url}: {exc}") from exc
        finally:
            response.close()
        return None


def _copy(response: requests.Response, out: Writable) -> None:
    for block in response.iter_content(chunk_size=64 * 1024):
        out.write(block)


# The operation each method calls (``operationId`` in the OpenAPI schema), checked against
# the server's schema by the test suite: a new operation without a method, or a method whose
# operation is gone, fails it.
OPERATIONS: dict[str, tuple[str, str, str]] = {
    "enrich": ("POST", "/api/v1/enrich", "enrich"),
    "enrich_sync": ("POST", "/api/v1/enrich/sync", "enrich_sync"),
    "enrich_bulk": ("POST", "/api/v1/enrich/bulk", "enrich_bulk"),
    "contact_retrieve": ("GET", "/api/v1/contacts/{enrichment_id}", "get_contact"),
    "contact_list": ("GET", "/api/v1/contacts", "list_contacts"),
    "bulk_retrieve": ("GET", "/api/v1/bulk/{bulk_id}", "get_bulk"),
    "credits_retrieve": ("GET", "/api/v1/credits", "credits"),
    "callback_secret_rotate": ("POST", "/api/v1/callback-secret/rotate", "rotate_callback_secret"),
    "event_list": ("GET", "/api/v1/events", "list_events"),
    "webhook_list": ("GET", "/api/v1/webhooks", "list_webhooks"),
    "webhook_create": ("POST", "/api/v1/webhooks", "create_webhook"),
    "webhook_retrieve": ("GET", "/api/v1/webhooks/{endpoint_id}", "get_webhook"),
    "webhook_update": ("PATCH", "/api/v1/webhooks/{endpoint_id}", "update_webhook"),
    "webhook_delete": ("DELETE", "/api/v1/webhooks/{endpoint_id}", "delete_webhook"),
    "webhook_test": ("POST", "/api/v1/webhooks/{endpoint_id}/test", "test_webhook"),
    "webhook_enable": ("POST", "/api/v1/webhooks/{endpoint_id}/enable", "enable_webhook"),
    "webhook_rotate_secret": (
        "POST",
        "/api/v1/webhooks/{endpoint_id}/rotate-secret",
        "rotate_webhook_secret",
    ),
    "webhook_recover": ("POST", "/api/v1/webhooks/{endpoint_id}/recover", "recover_webhook"),
    "webhook_delivery_list": (
        "GET",
        "/api/v1/webhooks/{endpoint_id}/deliveries",
        "list_deliveries",
    ),
    "webhook_delivery_retrieve": (
        "GET",
        "/api/v1/webhooks/{endpoint_id}/deliveries/{delivery_id}",
        "get_delivery",
    ),
    "list_list": ("GET", "/api/v1/lists", "list_lists"),
    "list_create": ("POST", "/api/v1/lists", "create_list"),
    "list_retrieve": ("GET", "/api/v1/lists/{list_id}", "get_list"),
    "list_update": ("PATCH", "/api/v1/lists/{list_id}", "update_list"),
    "list_delete": ("DELETE", "/api/v1/lists/{list_id}", "delete_list"),
    "list_contacts": ("GET", "/api/v1/lists/{list_id}/contacts", "list_list_contacts"),
    "list_contact_add": ("POST", "/api/v1/lists/{list_id}/contacts", "add_to_list"),
    "list_contact_remove": (
        "DELETE",
        "/api/v1/lists/{list_id}/contacts/{enrichment_id}",
        "remove_from_list",
    ),
    "import_create": ("POST", "/api/v1/imports", "create_import"),
    "import_list": ("GET", "/api/v1/imports", "list_imports"),
    "import_retrieve": ("GET", "/api/v1/imports/{import_id}", "get_import"),
    "import_errors": ("GET", "/api/v1/imports/{import_id}/errors", "list_import_errors"),
    "export_create": ("POST", "/api/v1/exports", "create_export"),
    "export_list": ("GET", "/api/v1/exports", "list_exports"),
    "export_retrieve": ("GET", "/api/v1/exports/{export_id}", "get_export"),
    "export_download": ("GET", "/api/v1/exports/{export_id}/download", "download_export"),
    "webhook_delivery_retry": (
        "POST",
        "/api/v1/webhooks/{endpoint_id}/deliveries/{delivery_id}/retry",
        "retry_delivery",
    ),
}
