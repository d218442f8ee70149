"""Writes for webhooks: events emitted by the rest of the product, endpoints, and deliveries."""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import requests
import urllib3
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.accounts.models import Account
from apps.core.errors import Conflict, InvalidRequest
from apps.core.timefmt import iso

from . import samples, signing, targets
from .models import Delivery, DeliveryAttempt, Endpoint, Event, event_id_generate

logger = logging.getLogger(__name__)

ROTATION_OVERLAP = timedelta(hours=24)
RESPONSE_SNIPPET_BYTES = 1024
# Retries due sooner than this ride a broker countdown; later ones wait for the sweep, so no
# message ever waits on the broker longer than its visibility timeout.
COUNTDOWN_MAX_SECONDS = 60.0
USER_AGENT = "Sluice-Webhooks/1.0"


# --- Events and their fan-out -----------------------------------------------------------------


def _event_body(
    *, event_id: str, type: str, created_at: datetime, data: Any, test: bool = False
) -> str:
    payload: dict[str, Any] = {
        "id": event_id,
        "type": type,
        "created_at": iso(created_at),
        "data": data,
    }
    if test:
        payload["_test"] = True
    return json.dumps(payload, cls=DjangoJSONEncoder, separators=(",", ":"))


def _account_endpoints(account_id: Any) -> list[Endpoint]:
    # Filtered in Python: JSON containment is not portable to the embedded SQLite database, and
    # an account has a handful of endpoints.
    return list(
        Endpoint.objects.filter(account_id=account_id).only("id", "account_id", "events", "active")
    )


def event_emit(
    *,
    account_id: Any,
    type: str,
    data: Any,
    target_urls: Iterable[str] = (),
    endpoints: list[Endpoint] | None = None,
    exclude_endpoint_id: Any = None,
) -> Event:
    """Store an event and a delivery per subscribed endpoint and per extra URL, atomically.

    Runs inside the caller's transaction when there is one, so the event exists if and only if
    the change that caused it does; messages go to the broker only after the commit. Endpoints
    that are disabled get a ``skipped`` delivery, which ``endpoint_enable(replay=True)`` resends.
    """
    now = timezone.now()
    with transaction.atomic(savepoint=False):
        event = Event(account_id=account_id, type=type, created_at=now)
        event.id = event_id_generate()
        event.body = _event_body(event_id=event.id, type=type, created_at=now, data=data)
        event.save(force_insert=True)
        if endpoints is None:
            endpoints = _account_endpoints(account_id)
        rows = [
            Delivery(
                account_id=account_id,
                event=event,
                endpoint=endpoint,
                status=Delivery.PENDING if endpoint.active else Delivery.SKIPPED,
                next_attempt_at=now if endpoint.active else None,
                published_at=now if endpoint.active else None,
            )
            for endpoint in endpoints
            if type in endpoint.events and endpoint.pk != exclude_endpoint_id
        ]
        rows += [
            Delivery(
                account_id=account_id,
                event=event,
                target_url=url,
                next_attempt_at=now,
                published_at=now,
            )
            for url in target_urls
            if url
        ]
        if rows:
            Delivery.objects.bulk_create(rows)
            pending = [str(d.pk) for d in rows if d.status == Delivery.PENDING]
            if pending:
                transaction.on_commit(lambda: deliveries_publish(pending))
    return event


def contact_finished_emit(*, contact: Any) -> None:
    """``contact.enriched`` (also to the contact's ``webhook_url``), ``contact.verified``, and
    the credit events a charge caused. Called inside the transaction that finishes the contact.
    """
    from apps.enrichment.selectors import contact_data

    data = contact_data(contact)
    endpoints = _account_endpoints(contact.account_id)
    event_emit(
        account_id=contact.account_id,
        type=Event.CONTACT_ENRICHED,
        data=data,
        target_urls=[contact.webhook_url],
        endpoints=endpoints,
    )
    if contact.result_status == "VERIFIED":
        event_emit(
            account_id=contact.account_id,
            type=Event.CONTACT_VERIFIED,
            data=data,
            endpoints=endpoints,
        )
    if contact.credits_charged and not contact.sandbox:
        _credit_events_emit(
            account_id=contact.account_id, charged=contact.credits_charged, endpoints=endpoints
        )


def _credit_events_emit(*, account_id: Any, charged: int, endpoints: list[Endpoint]) -> None:
    # The charge's UPDATE holds the account row lock until our commit, so this read is the
    # balance right after this very charge: each threshold crossing is seen by one charge only.
    balance = Account.objects.values_list("credits", flat=True).get(pk=account_id)
    before = balance + charged
    threshold = settings.CREDITS_LOW_THRESHOLD
    data = {"account_id": str(account_id), "credits": balance, "threshold": threshold}
    if balance == 0:
        event_emit(
            account_id=account_id, type=Event.CREDITS_EXHAUSTED, data=data, endpoints=endpoints
        )
    elif before >= threshold > balance:
        event_emit(account_id=account_id, type=Event.CREDITS_LOW, data=data, endpoints=endpoints)


def bulk_completed_emit(*, bulk: Any) -> None:
    """``bulk.completed``, also to the bulk's ``webhook_url``; called once per bulk."""
    from apps.enrichment.selectors import bulk_data

    event_emit(
        account_id=bulk.account_id,
        type=Event.BULK_COMPLETED,
        data=bulk_data(bulk),
        target_urls=[bulk.webhook_url],
    )


# --- Endpoints --------------------------------------------------------------------------------


def _clean_url(url: str) -> str:
    url = url.strip()
    problem = targets.webhook_url_problem(url)
    if problem:
        raise InvalidRequest(details={"url": problem})
    return url


def _clean_events(events: list[str] | None) -> list[str]:
    if events is None:
        return list(Event.TYPES)
    unknown = [e for e in events if e not in Event.TYPES]
    if unknown:
        raise InvalidRequest(
            details={"events": f"Unknown event types: {', '.join(unknown)}."},
        )
    if not events:
        raise InvalidRequest(details={"events": "Must name at least one event type."})
    if len(set(events)) != len(events):
        raise InvalidRequest(details={"events": "Must not repeat an event type."})
    return list(events)


def _duplicate() -> Conflict:
    return Conflict(
        "An active endpoint with this URL and event set already exists",
        code="duplicate_endpoint",
    )


def endpoint_create(
    *, account: Account, url: str, events: list[str] | None = None, description: str = ""
) -> Endpoint:
    """Create a subscription with a fresh ``whsec_`` secret (the caller shows it once)."""
    clean_events = _clean_events(events)
    endpoint = Endpoint(
        account=account,
        url=_clean_url(url),
        events=clean_events,
        events_key=",".join(sorted(clean_events)),
        description=description,
        secret=signing.secret_generate(),
    )
    try:
        with transaction.atomic():
            endpoint.save(force_insert=True)
    except IntegrityError:
        raise _duplicate()
    return endpoint


def endpoint_update(
    *,
    endpoint: Endpoint,
    url: str | None = None,
    events: list[str] | None = None,
    description: str | None = None,
) -> Endpoint:
    if url is not None:
        endpoint.url = _clean_url(url)
    if events is not None:
        endpoint.events = _clean_events(events)
        endpoint.events_key = ",".join(sorted(endpoint.events))
    if description is not None:
        endpoint.description = description
    try:
        with transaction.atomic():
            endpoint.save(
                update_fields=["url", "events", "events_key", "description", "updated_at"]
            )
    except IntegrityError:
        endpoint.refresh_from_db()
        raise _duplicate()
    return endpoint


def endpoint_delete(*, endpoint: Endpoint) -> None:
    """Delete the endpoint with its deliveries; queued messages for them find no row and stop."""
    endpoint.delete()


def endpoint_secret_rotate(*, endpoint: Endpoint) -> Endpoint:
    """New secret; the old one keeps signing beside it for 24 h (both in every signature)."""
    now = timezone.now()
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = now + ROTATION_OVERLAP
    endpoint.secret = signing.secret_generate()
    endpoint.save(
        update_fields=["secret", "previous_secret", "previous_secret_expires_at", "updated_at"]
    )
    return endpoint


def endpoint_deactivate(*, endpoint: Endpoint, reason: str) -> bool:
    """Disable the endpoint, mark its pending deliveries skipped, emit ``endpoint.disabled``.

    A conditional UPDATE makes this happen once even when several failing deliveries race.
    Returns whether this call disabled it.
    """
    from . import selectors

    now = timezone.now()
    with transaction.atomic():
        flipped = Endpoint.objects.filter(pk=endpoint.pk, active=True).update(
            active=False, disabled_at=now, disabled_reason=reason[:200], updated_at=now
        )
        if not flipped:
            return False
        Delivery.objects.filter(endpoint_id=endpoint.pk, status=Delivery.PENDING).update(
            status=Delivery.SKIPPED, next_attempt_at=None, claimed_until=None, updated_at=now
        )
        endpoint.refresh_from_db()
        event_emit(
            account_id=endpoint.account_id,
            type=Event.ENDPOINT_DISABLED,
            data=selectors.endpoint_data(endpoint),
            exclude_endpoint_id=endpoint.pk,
        )
    logger.warning(
        "webhook endpoint disabled", extra={"endpoint_id": str(endpoint.pk), "reason": reason}
    )
    return True


def endpoint_disable(*, endpoint: Endpoint, reason: str = "Disabled by an operator.") -> bool:
    """Manual deactivation (admin action); same effects as an automatic one."""
    return endpoint_deactivate(endpoint=endpoint, reason=reason)


def endpoint_enable(*, endpoint: Endpoint, replay: bool = False) -> int:
    """Re-activate with a fresh failure streak; with ``replay``, resend what was skipped.

    Returns how many deliveries were queued again.
    """
    now = timezone.now()
    try:
        with transaction.atomic():
            Endpoint.objects.filter(pk=endpoint.pk, active=False).update(
                active=True,
                disabled_at=None,
                disabled_reason="",
                consecutive_failures=0,
                failing_since=None,
                updated_at=now,
            )
    except IntegrityError:
        raise _duplicate()
    replayed = 0
    if replay:
        with transaction.atomic():
            ids = list(
                Delivery.objects.filter(
                    endpoint_id=endpoint.pk, status=Delivery.SKIPPED
                ).values_list("pk", flat=True)
            )
            replayed = deliveries_requeue(delivery_ids=ids)
    endpoint.refresh_from_db()
    return replayed


def _require_active(endpoint: Endpoint) -> None:
    if not endpoint.active:
        raise Conflict("The endpoint is disabled; enable it first", code="endpoint_disabled")


def endpoint_recover(*, endpoint: Endpoint, since: datetime) -> int:
    """Send again every failed delivery of this endpoint created since ``since``."""
    _require_active(endpoint)
    with transaction.atomic():
        ids = list(
            Delivery.objects.filter(
                endpoint_id=endpoint.pk, status=Delivery.FAILED, created_at__gte=since
            ).values_list("pk", flat=True)
        )
        return deliveries_requeue(delivery_ids=ids)


def endpoint_test(*, endpoint: Endpoint, event_type: str | None = None) -> Delivery:
    """Queue a sample event (``_test: true``, header ``X-Sluice-Test: true``) to one endpoint.

    Sample events are stored (so the delivery can be inspected) but never listed in /events.
    """
    from . import selectors

    _require_active(endpoint)
    event_type = event_type or (endpoint.events[0] if endpoint.events else Event.CONTACT_ENRICHED)
    if event_type not in Event.TYPES:
        raise InvalidRequest(details={"event_type": f"Unknown event type '{event_type}'."})
    now = timezone.now()
    data = samples.sample_data(event_type, endpoint_data=selectors.endpoint_data(endpoint))
    with transaction.atomic():
        event = Event(account_id=endpoint.account_id, type=event_type, created_at=now, test=True)
        event.id = event_id_generate()
        event.body = _event_body(
            event_id=event.id, type=event_type, created_at=now, data=data, test=True
        )
        event.save(force_insert=True)
        delivery = Delivery.objects.create(
            account_id=endpoint.account_id,
            event=event,
            endpoint=endpoint,
            next_attempt_at=now,
            published_at=now,
        )
        ids = [str(delivery.pk)]
        transaction.on_commit(lambda: deliveries_publish(ids))
    return delivery


# --- Deliveries -------------------------------------------------------------------------------


def deliveries_publish(delivery_ids: list[str]) -> None:
    """Put one message per delivery on the ``webhooks`` queue (called after commit)."""
    from . import tasks

    for delivery_id in delivery_ids:
        tasks.deliver.apply_async(args=[delivery_id])


def deliveries_requeue(*, delivery_ids: list[Any]) -> int:
    """Make deliveries due now with a fresh retry schedule (manual retry, recover, replay)."""
    if not delivery_ids:
        return 0
    now = timezone.now()
    with transaction.atomic():
        count = Delivery.objects.filter(pk__in=delivery_ids).update(
            status=Delivery.PENDING,
            round_attempts=0,
            next_attempt_at=now,
            published_at=now,
            claimed_until=None,
            updated_at=now,
        )
        ids = [str(pk) for pk in delivery_ids]
        transaction.on_commit(lambda: deliveries_publish(ids))
    return count


def delivery_retry(*, delivery: Delivery) -> Delivery:
    """Send one delivery again now, whatever its status (its endpoint must be active)."""
    if delivery.endpoint is not None:
        _require_active(delivery.endpoint)
    deliveries_requeue(delivery_ids=[delivery.pk])
    delivery.refresh_from_db()
    return delivery


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
    # PostgreSQL text cannot hold NUL; replacement keeps the snippet within 1 KB of characters.
    return raw[:RESPONSE_SNIPPET_BYTES].decode("utf-8", errors="replace").replace("\x00", "")


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
    try:
        with targets.session().post(
            url,
            data=body,
            headers=headers,
            timeout=(settings.WEBHOOK_CONNECT_TIMEOUT, settings.WEBHOOK_READ_TIMEOUT),
            allow_redirects=False,
            stream=True,
        ) as response:
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
    return AttemptResult(
        status_code=status_code,
        duration_ms=int((time.monotonic() - started) * 1000),
        error=error[:1000] if error else None,
        response_body=snippet,
        retry_after=retry_after,
    )


def _secrets_in_use(delivery: Delivery, now: datetime) -> list[str]:
    if delivery.endpoint is not None:
        current, previous, until = (
            delivery.endpoint.secret,
            delivery.endpoint.previous_secret,
            delivery.endpoint.previous_secret_expires_at,
        )
    else:
        account = delivery.account
        current, previous, until = (
            account.callback_secret,
            account.previous_callback_secret,
            account.previous_callback_secret_expires_at,
        )
    used = [current]
    if previous and until and until > now:
        used.append(previous)
    return used


def delivery_request(delivery: Delivery, *, now: datetime) -> tuple[str, bytes, dict[str, str]]:
    """URL, body and headers of the next attempt (same ``webhook-id`` every time)."""
    event = delivery.event
    body = event.body.encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Sluice-Event": event.type,
        "X-Sluice-Delivery": str(delivery.pk),
        **signing.signed_headers(
            secrets_in_use=_secrets_in_use(delivery, now),
            msg_id=event.id,
            timestamp=int(now.timestamp()),
            body=body,
        ),
    }
    if event.test:
        headers["X-Sluice-Test"] = "true"
    url = delivery.endpoint.url if delivery.endpoint is not None else delivery.target_url
    return url, body, headers


def retry_delay(*, scheduled: float, retry_after: float | None) -> float:
    """The schedule's delay with ±20 % jitter, stretched to a Retry-After of up to twice it."""
    delay = scheduled * random.uniform(0.8, 1.2)
    if retry_after is not None:
        delay = max(delay, min(retry_after, 2 * scheduled))
    return delay


def _claim(delivery_id: str, now: datetime) -> bool:
    lease = settings.WEBHOOK_CONNECT_TIMEOUT + settings.WEBHOOK_READ_TIMEOUT + 30
    # A message may fire a hair before the row is due (clock skew between machines).
    return bool(
        Delivery.objects.filter(
            pk=delivery_id,
            status=Delivery.PENDING,
            next_attempt_at__lte=now + timedelta(seconds=1),
        )
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .update(claimed_until=now + timedelta(seconds=lease))
    )


def delivery_attempt(*, delivery_id: str) -> str | None:
    """Make the next attempt of a due delivery; returns its new status, or None if not claimed.

    Safe to call twice for one delivery: the conditional claim lets exactly one caller send.
    """
    now = timezone.now()
    try:
        if not _claim(delivery_id, now):
            return None
    except Exception as exc:  # a malformed id from a hand-made message
        logger.warning("unclaimable delivery id", extra={"error": str(exc)})
        return None
    delivery = Delivery.objects.select_related("event", "endpoint", "account").get(pk=delivery_id)
    endpoint = delivery.endpoint
    if endpoint is not None and not endpoint.active:
        Delivery.objects.filter(pk=delivery.pk, status=Delivery.PENDING).update(
            status=Delivery.SKIPPED, next_attempt_at=None, claimed_until=None, updated_at=now
        )
        return Delivery.SKIPPED
    url, body, headers = delivery_request(delivery, now=now)
    result = http_post(url=url, body=body, headers=headers)
    try:
        return delivery_result_record(delivery=delivery, result=result, at=now)
    except IntegrityError:
        # The endpoint (and so this delivery) was deleted while the request was in flight.
        if Delivery.objects.filter(pk=delivery.pk).exists():
            raise
        return None


def delivery_result_record(*, delivery: Delivery, result: AttemptResult, at: datetime) -> str:
    """Store the attempt, move the delivery on (done, retry or failed) and update the endpoint."""
    done = timezone.now()
    delay: float | None = None
    deactivated = False
    with transaction.atomic():
        DeliveryAttempt.objects.create(
            delivery=delivery,
            at=at,
            status_code=result.status_code,
            duration_ms=result.duration_ms,
            error=result.error,
            response_body=result.response_body,
            succeeded=result.succeeded,
        )
        update: dict[str, Any] = {
            "attempt_count": F("attempt_count") + 1,
            "round_attempts": F("round_attempts") + 1,
            "last_attempt_at": at,
            "claimed_until": None,
            "updated_at": done,
        }
        schedule = settings.WEBHOOK_RETRY_SCHEDULE
        if result.succeeded:
            status = Delivery.SUCCEEDED
            update |= {"next_attempt_at": None}
        elif delivery.round_attempts + 1 < len(schedule):
            status = Delivery.PENDING
            delay = retry_delay(
                scheduled=schedule[delivery.round_attempts + 1], retry_after=result.retry_after
            )
            due = done + timedelta(seconds=delay)
            # Short waits ride a countdown published below; long ones are left to the sweep.
            update |= {
                "next_attempt_at": due,
                "published_at": due if delay <= COUNTDOWN_MAX_SECONDS else None,
            }
        else:
            status = Delivery.FAILED
            update |= {"next_attempt_at": None}
        # Only a pending delivery moves on: one skipped meanwhile (its endpoint was disabled by
        # another delivery's failure) stays skipped, but still counts this attempt.
        Delivery.objects.filter(pk=delivery.pk).update(
            status=Case(When(status=Delivery.PENDING, then=Value(status)), default=F("status")),
            **update,
        )
        if delivery.endpoint_id is not None:
            if result.succeeded:
                Endpoint.objects.filter(pk=delivery.endpoint_id).update(
                    consecutive_failures=0, failing_since=None, last_success_at=done
                )
            else:
                deactivated = _endpoint_failure_record(
                    endpoint_id=delivery.endpoint_id, now=done, gone=result.status_code == 410
                )
        if status == Delivery.PENDING and not deactivated and delay <= COUNTDOWN_MAX_SECONDS:
            delivery_id = str(delivery.pk)
            countdown = delay
            transaction.on_commit(
                lambda: _publish_later(delivery_id=delivery_id, countdown=countdown)
            )
    return Delivery.SKIPPED if deactivated and status == Delivery.PENDING else status


def _publish_later(*, delivery_id: str, countdown: float) -> None:
    from . import tasks

    tasks.deliver.apply_async(args=[delivery_id], countdown=countdown)


def _endpoint_failure_record(*, endpoint_id: Any, now: datetime, gone: bool) -> bool:
    """Extend the failure streak; deactivate on 410 or a streak long enough in count and time."""
    Endpoint.objects.filter(pk=endpoint_id).update(
        consecutive_failures=F("consecutive_failures") + 1,
        failing_since=Coalesce("failing_since", Value(now)),
        last_failure_at=now,
    )
    endpoint = Endpoint.objects.filter(pk=endpoint_id).first()
    if endpoint is None or not endpoint.active:
        return False
    if gone:
        reason = "The endpoint answered 410 Gone."
    elif endpoint.consecutive_failures >= settings.WEBHOOK_DISABLE_AFTER_FAILURES and (
        now - endpoint.failing_since
    ) >= timedelta(seconds=settings.WEBHOOK_DISABLE_AFTER_SECONDS):
        reason = (
            f"{endpoint.consecutive_failures} consecutive failed attempts since "
            f"{iso(endpoint.failing_since)}."
        )
    else:
        return False
    return endpoint_deactivate(endpoint=endpoint, reason=reason)


# --- Periodic maintenance ---------------------------------------------------------------------


def deliveries_sweep(*, limit: int = 1000) -> int:
    """Publish due deliveries that have no live message: long-wait retries, and lost messages."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.WEBHOOK_REPUBLISH_AFTER_SECONDS)
    with transaction.atomic():
        ids = list(
            Delivery.objects.select_for_update(skip_locked=True)
            .filter(status=Delivery.PENDING, next_attempt_at__lte=now)
            .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
            .filter(Q(published_at__isnull=True) | Q(published_at__lt=stale))
            .order_by("next_attempt_at")
            .values_list("pk", flat=True)[:limit]
        )
        if ids:
            Delivery.objects.filter(pk__in=ids).update(published_at=now)
            published = [str(pk) for pk in ids]
            transaction.on_commit(lambda: deliveries_publish(published))
    return len(ids)


def events_purge(*, batch: int = 1000, max_seconds: float = 60.0) -> int:
    """Delete events past the retention, with their deliveries, unless one is still pending."""
    cutoff = timezone.now() - timedelta(seconds=settings.WEBHOOK_EVENT_RETENTION_SECONDS)
    started = time.monotonic()
    purged = 0
    while time.monotonic() - started < max_seconds:
        ids = list(
            Event.objects.filter(created_at__lt=cutoff)
            .exclude(pk__in=Delivery.objects.filter(status=Delivery.PENDING).values("event_id"))
            .values_list("pk", flat=True)[:batch]
        )
        if not ids:
            break
        with transaction.atomic():
            DeliveryAttempt.objects.filter(delivery__event_id__in=ids).delete()
            Delivery.objects.filter(event_id__in=ids).delete()
            purged += Event.objects.filter(pk__in=ids).delete()[0]
    return purged
