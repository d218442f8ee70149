"""Delivery attempts: claim, sign, send, record, and schedule the retry."""

from __future__ import annotations

import logging
import random
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Case, DateTimeField, F, Q, Value, When
from django.utils import timezone

from apps.core.errors import Conflict, NotFound
from apps.core.leases import LeaseKeeper
from apps.core.outages import db_retry

from .. import signing
from ..models import Delivery, DeliveryAttempt, Endpoint
from .endpoints import endpoint_failure_record, endpoint_require_active
from .publishing import deliveries_publish_later, deliveries_requeue
from .transport import AttemptResult, http_post

logger = logging.getLogger(__name__)


# Retries due sooner than this ride a broker countdown; later ones wait for the sweep, so no
# message ever waits on the broker longer than its visibility timeout.
COUNTDOWN_MAX_SECONDS = 60.0


USER_AGENT = "Sluice-Webhooks/1.0"


def delivery_retry(*, delivery: Delivery) -> Delivery:
    """Send one delivery again now, whatever its status (its endpoint must be active)."""
    if delivery.endpoint is not None:
        endpoint_require_active(delivery.endpoint)
    if not deliveries_requeue(delivery_ids=[delivery.pk]):
        if not Delivery.objects.filter(pk=delivery.pk).exists():
            raise NotFound()  # deleted with its endpoint meanwhile
        raise Conflict(
            "The delivery is being attempted right now; retry once the attempt ends",
            code="delivery_in_flight",
        )
    delivery.refresh_from_db()
    return delivery


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


# The claims this webhooks process holds on deliveries in flight (apps/core/leases.py):
# renewed while the request runs, so a process killed mid-attempt frees them within a lease.
delivery_leases = LeaseKeeper(
    Delivery,
    expires_field="claimed_until",
    owner_field="claim_token",
    lease_seconds=lambda: settings.WEBHOOK_LEASE_SECONDS,
    still_held=Q(status=Delivery.PENDING),
    name="deliveries",
)


def _claim(delivery_id: str, now: datetime, token: uuid.UUID) -> uuid.UUID | None:
    # A message may fire a hair before the row is due (clock skew between machines). A row
    # this token already holds counts as free: a retry after a lost COMMIT reply gets it back.
    claimed = (
        Delivery.objects.filter(
            pk=delivery_id,
            status=Delivery.PENDING,
            next_attempt_at__lte=now + timedelta(seconds=1),
        )
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now) | Q(claim_token=token))
        .update(claimed_until=delivery_leases.expiry(), claim_token=token)
    )
    return token if claimed else None


def delivery_attempt(*, delivery_id: str) -> str | None:
    """Make the next attempt of a due delivery; returns its new status, or None if not claimed.

    Safe to call twice for one delivery: the conditional claim lets exactly one caller send,
    and only that claim (its token) may record the outcome. The claim is renewed while the
    request is in flight; claim and record ride out a database outage (``db_retry``).
    """
    now = timezone.now()
    since = time.monotonic()
    try:
        token = delivery_leases.new_token()
        token = db_retry(lambda: _claim(delivery_id, now, token), what="claim delivery")
    except (ValueError, ValidationError) as exc:  # a malformed id from a hand-made message
        logger.warning("unclaimable delivery id", extra={"error": str(exc)})
        return None
    if token is None:
        return None
    delivery_leases.hold(token, [delivery_id], since=since)
    try:
        return _attempt_claimed(delivery_id, token, now)
    finally:
        delivery_leases.release(token)


def _attempt_claimed(delivery_id: str, token: uuid.UUID, now: datetime) -> str | None:
    delivery = db_retry(
        lambda: Delivery.objects.select_related("event", "endpoint", "account").get(pk=delivery_id),
        what="load delivery",
    )
    endpoint = delivery.endpoint
    if endpoint is not None and not endpoint.active:
        Delivery.objects.filter(pk=delivery.pk, status=Delivery.PENDING).update(
            status=Delivery.SKIPPED, next_attempt_at=None, claimed_until=None, updated_at=now
        )
        return Delivery.SKIPPED
    url, body, headers = delivery_request(delivery, now=now)
    result = http_post(url=url, body=body, headers=headers)
    try:
        return db_retry(
            lambda: delivery_result_record(delivery=delivery, result=result, at=now, token=token),
            what="record delivery attempt",
        )
    except IntegrityError:
        # The endpoint (and so this delivery) was deleted while the request was in flight.
        if Delivery.objects.filter(pk=delivery.pk).exists():
            raise
        return None


def delivery_result_record(
    *,
    delivery: Delivery,
    result: AttemptResult,
    at: datetime,
    token: uuid.UUID | None = None,
) -> str | None:
    """Store the attempt, move the delivery on (done, retry or failed) and update the endpoint.

    With a claim's ``token``, nothing is recorded unless that claim still holds the delivery
    (the fence): returns None when another claim took it over after ours lapsed.
    """
    done = timezone.now()
    delay: float | None = None
    deactivated = False
    with transaction.atomic():
        update: dict[str, Any] = {
            "attempt_count": F("attempt_count") + 1,
            "round_attempts": F("round_attempts") + 1,
            "last_attempt_at": at,
            "claimed_until": None,
            # The fence matches once: a retry of this record after a lost COMMIT reply, or a
            # late record by a claim that lapsed, changes nothing.
            "claim_token": None,
            "updated_at": done,
        }
        schedule = settings.WEBHOOK_RETRY_SCHEDULE
        gone = result.status_code == 410
        if result.succeeded:
            status = Delivery.SUCCEEDED
            update |= {"next_attempt_at": None}
        elif gone and delivery.endpoint_id is None:
            # A request's webhook_url has no endpoint to deactivate; 410 still means stop.
            status = Delivery.FAILED
            update |= {"next_attempt_at": None}
        elif delivery.round_attempts + 1 < len(schedule):
            status = Delivery.PENDING
            delay = retry_delay(
                scheduled=schedule[delivery.round_attempts + 1], retry_after=result.retry_after
            )
            due = done + timedelta(seconds=delay)
            # Short waits ride a countdown published below; long ones are left to the sweep.
            # Only while still pending: a row skipped meanwhile has no next attempt.
            still_pending = Q(status=Delivery.PENDING)
            update |= {
                "next_attempt_at": Case(
                    When(still_pending, then=Value(due)),
                    default=Value(None, output_field=DateTimeField()),
                ),
                "published_at": Case(
                    When(
                        still_pending,
                        then=Value(
                            due if delay <= COUNTDOWN_MAX_SECONDS else None,
                            output_field=DateTimeField(),
                        ),
                    ),
                    default=F("published_at"),
                ),
            }
        else:
            status = Delivery.FAILED
            update |= {"next_attempt_at": None}
        # Only a pending delivery moves on: one skipped meanwhile (its endpoint was disabled by
        # another delivery's failure) stays skipped, but still counts this attempt; unless
        # this attempt got through, so that a replay after enable does not send it twice.
        movable = [Delivery.PENDING, Delivery.SKIPPED] if result.succeeded else [Delivery.PENDING]
        row = Delivery.objects.filter(pk=delivery.pk)
        if token is not None:
            row = row.filter(claim_token=token)  # the fence
        if not row.update(
            status=Case(When(status__in=movable, then=Value(status)), default=F("status")),
            **update,
        ):
            # Another claim took it over after ours lapsed, or it was deleted with its endpoint.
            logger.warning(
                "delivery claim lost; attempt not recorded", extra={"delivery_id": str(delivery.pk)}
            )
            return None
        DeliveryAttempt.objects.create(
            delivery=delivery,
            at=at,
            status_code=result.status_code,
            duration_ms=result.duration_ms,
            error=result.error,
            response_body=result.response_body,
            succeeded=result.succeeded,
        )
        if delivery.endpoint_id is not None:
            if result.succeeded:
                Endpoint.objects.filter(pk=delivery.endpoint_id).update(
                    consecutive_failures=0, failing_since=None, last_success_at=done
                )
            else:
                deactivated = endpoint_failure_record(
                    endpoint_id=delivery.endpoint_id, now=done, gone=gone
                )
        if status == Delivery.PENDING and not deactivated and delay <= COUNTDOWN_MAX_SECONDS:
            delivery_id = str(delivery.pk)
            countdown = delay
            transaction.on_commit(
                lambda: deliveries_publish_later(delivery_id=delivery_id, countdown=countdown)
            )
    return Delivery.SKIPPED if deactivated and status == Delivery.PENDING else status
