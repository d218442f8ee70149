"""Idempotency keys for every API ``POST`` (SPEC §4): a middleware around the views."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import IntegrityError, router, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve
from django.utils import timezone
from rest_framework.exceptions import APIException
from rest_framework.parsers import MultiPartParser
from rest_framework.settings import api_settings

from .errors import envelope
from .middleware import API_PREFIXES
from .models import IdempotencyRecord

logger = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
# Refusals a retry with the same key can overcome (fix the key's scope, top up, wait): these
# are never stored, like 5xx. Everything else below 500 is the request's own outcome.
NOT_STORED = frozenset({401, 402, 403, 409, 429})
# Response headers worth replaying; the rest (request id, rate limits) belong to each request.
REPLAYED_HEADERS = ("Content-Type", "Location")


def _valid_key(value: str) -> bool:
    return 0 < len(value) <= 255 and all(" " <= ch <= "~" for ch in value)


def request_fingerprint(*, method: str, path: str, body: bytes) -> str:
    """Same method, path and JSON body (key order and whitespace aside) → same fingerprint."""
    try:
        canonical = json.dumps(
            json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
    except (ValueError, UnicodeDecodeError, RecursionError):
        canonical = body
    digest = hashlib.sha256()
    for part in (method.encode(), b"\0", path.encode(), b"\0", canonical):
        digest.update(part)
    return digest.hexdigest()


# --- Services ---------------------------------------------------------------------------------


def idempotency_begin(
    *,
    account_id: Any,
    sandbox: bool = False,
    key: str,
    method: str,
    path: str,
    fingerprint: str,
    required_scope: str = "",
) -> tuple[IdempotencyRecord, bool]:
    """Take the key's lock. Returns (record, acquired); ``acquired`` False = someone else's.

    An expired record, or an in-flight one whose holder has been gone longer than
    ``IDEMPOTENCY_LOCK_TIMEOUT_SECONDS`` (a crashed process), is replaced; the conditional
    DELETE/UPDATE lets only one contender win that too.
    """
    now = timezone.now()
    expires_at = now + timedelta(seconds=settings.IDEMPOTENCY_KEY_TTL_SECONDS)
    using = router.db_for_write(IdempotencyRecord)
    for _ in range(2):
        try:
            # Its own transaction, committed at once, so that concurrent requests see the lock.
            with transaction.atomic(using=using):
                record = IdempotencyRecord.objects.create(
                    account_id=account_id,
                    sandbox=sandbox,
                    key=key,
                    fingerprint=fingerprint,
                    method=method,
                    path=path[:255],
                    required_scope=required_scope,
                    locked_at=now,
                    expires_at=expires_at,
                )
            return record, True
        except IntegrityError:
            record = IdempotencyRecord.objects.filter(
                account_id=account_id, sandbox=sandbox, key=key
            ).first()
            if record is None:  # purged between our INSERT and SELECT: try again
                continue
        if record.expires_at <= now:
            IdempotencyRecord.objects.filter(pk=record.pk, expires_at__lte=now).delete()
            continue
        stale = now - timedelta(seconds=settings.IDEMPOTENCY_LOCK_TIMEOUT_SECONDS)
        if (
            record.state == IdempotencyRecord.IN_FLIGHT
            and record.fingerprint == fingerprint
            and record.locked_at < stale
            and IdempotencyRecord.objects.filter(
                pk=record.pk, state=IdempotencyRecord.IN_FLIGHT, locked_at=record.locked_at
            ).update(locked_at=now)
        ):
            logger.warning("idempotency lock taken over from a stale request")
            record.locked_at = now
            return record, True
        return record, False
    return record, False


def idempotency_finish(*, record: IdempotencyRecord, response: HttpResponse) -> None:
    """Store a final outcome for replay, or release the key so that a retry runs."""
    storable = (
        response.status_code < 500
        and response.status_code not in NOT_STORED
        and not response.streaming
    )
    if not storable:
        idempotency_release(record=record)
        return
    IdempotencyRecord.objects.filter(pk=record.pk, locked_at=record.locked_at).update(
        state=IdempotencyRecord.COMPLETED,
        response_status=response.status_code,
        response_headers={h: response[h] for h in REPLAYED_HEADERS if h in response},
        response_body=response.content,
    )


def idempotency_release(*, record: IdempotencyRecord) -> None:
    # Conditional on our lock, so a request that was taken over cannot delete its successor's.
    IdempotencyRecord.objects.filter(
        pk=record.pk, state=IdempotencyRecord.IN_FLIGHT, locked_at=record.locked_at
    ).delete()


def idempotency_records_purge(*, batch_size: int = 5000) -> int:
    """Delete expired records in batches (short transactions, no long table locks)."""
    now = timezone.now()
    total = 0
    while True:
        ids = list(
            IdempotencyRecord.objects.filter(expires_at__lte=now).values_list("pk", flat=True)[
                :batch_size
            ]
        )
        if not ids:
            return total
        total += IdempotencyRecord.objects.filter(pk__in=ids).delete()[0]


# --- HTTP -------------------------------------------------------------------------------------


def _error(status: int, message: str, code: str, details: dict[str, str] | None = None):
    return JsonResponse(envelope(message, code, details), status=status)


def _replay(record: IdempotencyRecord) -> HttpResponse:
    response = HttpResponse(bytes(record.response_body or b""), status=record.response_status)
    for name, value in record.response_headers.items():
        response[name] = value
    response[REPLAYED_HEADER] = "true"
    return response


def _view_class(request: HttpRequest) -> Any:
    try:
        match = resolve(request.path_info)
    except Resolver404:
        return None
    return getattr(match.func, "cls", None) or getattr(match.func, "view_class", None)


def _required_scope(view_class: Any) -> str:
    """The scope the view demands of a key (``required_scope``), "" for none."""
    return getattr(view_class, "required_scope", None) or ""


def _is_upload(request: HttpRequest, view_class: Any) -> bool:
    """A ``multipart/form-data`` body sent to a view that parses one (``POST /imports``);
    anywhere else such a body is read and compared like any other."""
    if (request.content_type or "").lower() != "multipart/form-data":
        return False
    parsers = getattr(view_class, "parser_classes", None) or ()
    return any(issubclass(p, MultiPartParser) for p in parsers if isinstance(p, type))


def may_replay(*, record: IdempotencyRecord, key: Any) -> bool:
    """Whether ``key`` could have made the request ``record`` answered: it holds the scope
    that request needed. A record from before scopes were kept (NULL) could hold anything,
    an endpoint's secret included, so only a key with every scope gets it."""
    scopes = getattr(key, "scopes", None)
    if record.required_scope is None:
        return scopes == []
    if not record.required_scope:
        return True
    has_scope = getattr(key, "has_scope", None)
    return bool(has_scope and has_scope(record.required_scope))


def _principal(request: HttpRequest) -> tuple[Any, Any] | None:
    """(account, key) as the API's authentication classes resolve them, or None (let the
    view refuse)."""
    for authenticator_class in api_settings.DEFAULT_AUTHENTICATION_CLASSES:
        try:
            result = authenticator_class().authenticate(request)
        except APIException:
            return None
        if result is not None:
            return result
    return None


class IdempotencyMiddleware:
    """Apply ``Idempotency-Key`` to every POST under ``/api/v1/`` and the vendor dialects'
    ``/compat/``.

    A middleware rather than a view mixin so that every POST view, present and future, gets
    the same behaviour without opting in. With the header present:

    1. Authenticate with the API's own authentication classes. A request that does not
       authenticate, is rate limited, or whose key lacks the view's ``required_scope``
       passes through untouched (the view answers, and that refusal is not stored).
    2. Validate the key (1-255 printable ASCII characters) → else 422.
    3. INSERT the (account, mode, key) record in its own committed transaction. The unique
       constraint is the lock: exactly one of several concurrent requests runs the view.
    4. A request that finds an existing record gets 422 ``idempotency_key_reused`` if its
       fingerprint differs, 409 ``idempotency_key_in_flight`` while the first runs, else the
       stored status and body with ``Idempotent-Replayed: true`` — only to a key holding
       the scope the record says the original needed (else 403 ``insufficient_scope``): a
       replay must never give a key what the view itself would have refused it.
    5. After the view, ``idempotency_finish`` stores the outcome or releases the key.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if (
            request.method != "POST"
            or not request.path.startswith(API_PREFIXES)
            or "HTTP_IDEMPOTENCY_KEY" not in request.META
        ):
            return self.get_response(request)
        principal = _principal(request)
        decision = getattr(request, "sluice_rate_limit", None)
        if principal is None or (decision is not None and not decision.allowed):
            return self.get_response(request)
        view_class = _view_class(request)
        scope = _required_scope(view_class)
        if scope and not principal[1].has_scope(scope):
            return self.get_response(request)
        key = request.headers.get(HEADER, "")
        if not _valid_key(key):
            return _error(
                422,
                "The Idempotency-Key header is invalid",
                "invalid_idempotency_key",
                {HEADER: "Must be 1-255 printable ASCII characters."},
            )
        upload = _is_upload(request, view_class)
        if upload:
            # A file upload (POST /imports): not read here (Django keeps file parts out of
            # memory, and a file may be larger than DATA_UPLOAD_MAX_MEMORY_SIZE), and its
            # boundary differs on every resend (requests, curl). Same length, same request.
            body = f"multipart:{request.META.get('CONTENT_LENGTH') or 0}".encode()
        else:
            try:
                body = request.body
            except RequestDataTooBig:
                return _error(413, "The request body is too large", "body_too_large")
        fingerprint = request_fingerprint(method=request.method, path=request.path, body=body)
        record, acquired = idempotency_begin(
            account_id=principal[0].pk,
            sandbox=bool(getattr(principal[1], "sandbox", False)),
            key=key,
            method=request.method,
            path=request.path,
            fingerprint=fingerprint,
            required_scope=scope,
        )
        if not acquired:
            if record.fingerprint != fingerprint:
                return _error(
                    422,
                    "This Idempotency-Key was used with a different request",
                    "idempotency_key_reused",
                    {HEADER: "Use a new key for a different request body or endpoint."},
                )
            if record.state == IdempotencyRecord.IN_FLIGHT:
                return _error(
                    409,
                    "A request with this Idempotency-Key is still in progress",
                    "idempotency_key_in_flight",
                )
            if not may_replay(record=record, key=principal[1]):
                needed = (
                    f"the '{record.required_scope}' scope"
                    if record.required_scope
                    else "every scope (the request was stored before scopes were recorded)"
                )
                return _error(
                    403,
                    f"Replaying this Idempotency-Key needs {needed}",
                    "insufficient_scope",
                    {HEADER: "A replay goes only to a key allowed to make the original request."},
                )
            return _replay(record)
        try:
            response = self.get_response(request)
        except BaseException:
            idempotency_release(record=record)
            raise
        if upload and response.status_code >= 300:
            # Not kept: an upload cut short arrives as a form without its file (a 422), and
            # its resend, the same length, must run again. A refused upload created nothing.
            idempotency_release(record=record)
        else:
            idempotency_finish(record=record, response=response)
        return response
