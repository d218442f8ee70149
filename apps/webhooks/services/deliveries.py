"""Delivery attempts: claim a batch, sign, send, record a batch, schedule the retries.

A ``deliver`` message carries up to ``WEBHOOK_BATCH_SIZE`` delivery ids. ``deliveries_dispatch``
claims the due ones in one UPDATE (a lease under one token), loads them in one SELECT and
hands them to the process's sender (``sender.py``), which sends them concurrently and fairly
and records finished attempts in batches (``deliveries_record``: five statements whatever
the batch's size). ``delivery_attempt`` does the same for one delivery, in the caller's thread.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from apps.core.errors import Conflict, NotFound
from apps.core.leases import LeaseKeeper
from apps.core.outages import db_retry
from apps.core.timefmt import iso

from .. import formats, signing
from ..models import Delivery, DeliveryAttempt, Endpoint
from .endpoints import endpoint_deactivate, endpoint_require_active
from .publishing import deliveries_publish_later, deliveries_requeue
from .transport import AttemptResult, http_post

logger = logging.getLogger(__name__)


# Retries due sooner than this ride a broker countdown; later ones wait for the sweep, so no
# message ever waits on the broker longer than its visibility timeout.
COUNTDOWN_MAX_SECONDS = 60.0


USER_AGENT = "Sluice-Webhooks/1.0"

# What ``deliveries_record`` says of an attempt whose endpoint was deleted meanwhile (with the
# delivery): nothing recorded, and nothing more to send to it.
GONE = "gone"


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
    # Sluice's stored body, or a vendor dialect's rendering of it (same bytes every retry).
    body, body_format = formats.rendered(delivery.body_format, event.body)
    secrets_in_use = _secrets_in_use(delivery, now)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Sluice-Event": event.type,
        "X-Sluice-Delivery": str(delivery.pk),
        **signing.signed_headers(
            secrets_in_use=secrets_in_use,
            msg_id=event.id,
            timestamp=int(now.timestamp()),
            body=body,
        ),
    }
    if body_format is not None:
        # The format's own signature under every secret in use (a rotation's overlap), its
        # values space-separated as in webhook-signature; a constant header stays one value.
        for secret in secrets_in_use:
            for name, value in body_format.headers(secret, body).items():
                known = headers.get(name)
                headers[name] = value if known in (None, value) else f"{known} {value}"
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


def claim(delivery_ids: Sequence[str], now: datetime, token: uuid.UUID) -> int:
    """Lease the due, unclaimed deliveries among ``delivery_ids`` under ``token``: one UPDATE.

    A message may fire a hair before its row is due (clock skew between machines). Rows this
    token already holds count as free: a retry after a lost COMMIT reply gets them back.
    """
    return (
        Delivery.objects.filter(
            pk__in=list(delivery_ids),
            status=Delivery.PENDING,
            next_attempt_at__lte=now + timedelta(seconds=1),
        )
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now) | Q(claim_token=token))
        .update(claimed_until=delivery_leases.expiry(), claim_token=token)
    )


def claimed(token: uuid.UUID, now: datetime) -> list[Delivery]:
    """What ``token`` claimed, ready to send (event, endpoint, account); inactive endpoints'
    deliveries are marked skipped instead (one UPDATE)."""
    rows = list(
        Delivery.objects.select_related("event", "endpoint", "account").filter(
            claim_token=token, status=Delivery.PENDING
        )
    )
    inactive = [d.pk for d in rows if d.endpoint is not None and not d.endpoint.active]
    if inactive:
        Delivery.objects.filter(pk__in=inactive, claim_token=token).update(
            status=Delivery.SKIPPED,
            next_attempt_at=None,
            claimed_until=None,
            claim_token=None,
            updated_at=now,
        )
    skipped = set(inactive)
    return [d for d in rows if d.pk not in skipped]


def valid_ids(delivery_ids: Sequence[Any]) -> list[str]:
    valid = []
    for raw in delivery_ids:
        try:
            valid.append(str(uuid.UUID(str(raw))))
        except ValueError:  # a malformed id from a hand-made message
            logger.warning("unclaimable delivery id", extra={"delivery_id": str(raw)[:64]})
    return valid


def deliveries_claim(delivery_ids: Sequence[str]) -> tuple[uuid.UUID, int, list[Delivery]]:
    """Claim the due ones among these (valid) ids under a new token, keep their lease renewed,
    and load them: ``(token, how many were claimed, the rows to send)``. The caller releases
    the token once their attempts are recorded; rows not to send are released here."""
    now = timezone.now()
    since = time.monotonic()
    token = delivery_leases.new_token()
    count = db_retry(lambda: claim(delivery_ids, now, token), what="claim deliveries")
    if not count:
        return token, 0, []
    delivery_leases.hold(token, delivery_ids, since=since)
    try:
        rows = db_retry(lambda: claimed(token, now), what="load deliveries")
    except Exception:
        delivery_leases.release(token)
        raise
    delivery_leases.release(token, set(delivery_ids) - {str(d.pk) for d in rows})
    return token, count, rows


def delivery_attempt(*, delivery_id: str) -> str | None:
    """Make the next attempt of one due delivery, in this thread; returns its new status, or
    None if it was not claimed (not due, claimed by another, or unknown)."""
    ids = valid_ids([delivery_id])
    if not ids:
        return None
    token, count, rows = deliveries_claim(ids)
    if not count:
        return None
    try:
        if not rows:
            return (
                Delivery.SKIPPED
                if Delivery.objects.filter(pk=ids[0], status=Delivery.SKIPPED).exists()
                else None
            )
        (delivery,) = rows
        at = timezone.now()
        url, body, headers = delivery_request(delivery, now=at)
        result = http_post(url=url, body=body, headers=headers)
        recorded = db_retry(
            lambda: deliveries_record([Sent(delivery, token, result, at)]),
            what="record delivery attempt",
        )
        status = recorded.get(delivery.pk)
        return None if status == GONE else status
    finally:
        delivery_leases.release(token)


@dataclass(frozen=True)
class Sent:
    """One finished attempt, waiting to be recorded."""

    delivery: Delivery
    token: uuid.UUID
    result: AttemptResult
    at: datetime


@dataclass
class _Plan:
    """What recording one attempt changes on its delivery."""

    sent: Sent
    status: str
    delay: float | None = None  # seconds until the retry, when one is scheduled


def _plan(sent: Sent, *, current_status: str, round_attempts: int) -> _Plan:
    """The delivery's next state after this attempt (SPEC §6's schedule and rules)."""
    result = sent.result
    schedule = settings.WEBHOOK_RETRY_SCHEDULE
    if result.succeeded:
        status, delay = Delivery.SUCCEEDED, None
    elif result.status_code == 410 and sent.delivery.endpoint_id is None:
        # A request's webhook_url has no endpoint to deactivate; 410 still means stop.
        status, delay = Delivery.FAILED, None
    elif round_attempts + 1 < len(schedule):
        status = Delivery.PENDING
        delay = retry_delay(scheduled=schedule[round_attempts + 1], retry_after=result.retry_after)
    else:
        status, delay = Delivery.FAILED, None
    # Only a pending delivery moves on: one skipped meanwhile (its endpoint was disabled by
    # another delivery's failure) stays skipped, but still counts this attempt; unless this
    # attempt got through, so that a replay after enable does not send it twice.
    if current_status == Delivery.SKIPPED and not result.succeeded:
        return _Plan(sent, Delivery.SKIPPED)
    if current_status not in (Delivery.PENDING, Delivery.SKIPPED):
        return _Plan(sent, current_status)
    return _Plan(sent, status, delay if status == Delivery.PENDING else None)


def deliveries_record(batch: Sequence[Sent]) -> dict[Any, str]:
    """Store a batch of attempts and move each delivery on (done, retry or failed), and each
    endpoint's failure streak, in one transaction of five statements whatever the batch's
    size (plus one per endpoint this batch deactivates, a rare event).

    Fenced by each claim's token: an attempt whose claim was taken over after it lapsed (or
    whose delivery was deleted with its endpoint) is not recorded. Returns the new status of
    each recorded delivery (``skipped`` for one whose endpoint this batch deactivated), and
    ``GONE`` for each attempt whose endpoint no longer exists (the sender drops the rest).
    """
    if not batch:
        return {}
    done = timezone.now()
    by_id = {sent.delivery.pk: sent for sent in batch}
    statuses: dict[Any, str] = {}
    retries: list[tuple[str, float]] = []
    endpoint_ids = sorted({s.delivery.endpoint_id for s in batch if s.delivery.endpoint_id})
    with transaction.atomic():
        # The endpoints first, then the deliveries in id order: the order of every writer of
        # an endpoint's deliveries (endpoint_delete, endpoint_deactivate below), so none of
        # them deadlocks with another. NO KEY: a fan-out inserting deliveries (whose foreign
        # key takes KEY SHARE on the endpoint) is not held up by recording.
        endpoints = (
            {
                e.pk: e
                for e in Endpoint.objects.select_for_update(no_key=True)
                .filter(pk__in=endpoint_ids)
                .order_by("pk")
            }
            if endpoint_ids
            else {}
        )
        statuses.update(
            {
                sent.delivery.pk: GONE
                for sent in batch
                if sent.delivery.endpoint_id and sent.delivery.endpoint_id not in endpoints
            }
        )
        current = {
            pk: (status, rounds, attempts, token)
            for pk, status, rounds, attempts, token in Delivery.objects.select_for_update()
            .filter(pk__in=list(by_id))
            .order_by("pk")
            .values_list("pk", "status", "round_attempts", "attempt_count", "claim_token")
        }
        plans = [
            _plan(by_id[pk], current_status=row[0], round_attempts=row[1])
            for pk, row in current.items()
            if row[3] == by_id[pk].token  # the fence
        ]
        lost = len(batch) - len(plans)
        if lost:
            logger.warning("delivery claims lost; attempts not recorded", extra={"count": lost})
        if not plans:
            return statuses
        updates = []
        for plan in plans:
            delivery, at = plan.sent.delivery, plan.sent.at
            _, rounds, attempts, _ = current[delivery.pk]
            # The objects follow the rows (delivery_attempt's caller may look at them).
            delivery.status = plan.status
            delivery.attempt_count = attempts + 1
            delivery.round_attempts = rounds + 1
            delivery.last_attempt_at = at
            delivery.claimed_until = None
            # The fence matches once: a retry of this record after a lost COMMIT reply, or a
            # late record by a claim that lapsed, changes nothing.
            delivery.claim_token = None
            delivery.updated_at = done
            retry_at = published = None
            if plan.delay is not None:
                retry_at = done + timedelta(seconds=plan.delay)
                delivery.next_attempt_at = retry_at
                # Short waits ride a countdown published after commit; long ones wait for the
                # sweep (no message waits on the broker longer than its visibility timeout).
                published = retry_at if plan.delay <= COUNTDOWN_MAX_SECONDS else None
                delivery.published_at = published
            elif plan.status != Delivery.PENDING:
                delivery.next_attempt_at = None
            updates.append((delivery.pk, plan.sent.token, plan.status, at, retry_at, published))
        _deliveries_update(updates, now=done)
        DeliveryAttempt.objects.bulk_create(
            [
                DeliveryAttempt(
                    delivery_id=plan.sent.delivery.pk,
                    at=plan.sent.at,
                    status_code=plan.sent.result.status_code,
                    duration_ms=plan.sent.result.duration_ms,
                    error=plan.sent.result.error,
                    response_body=plan.sent.result.response_body,
                    succeeded=plan.sent.result.succeeded,
                )
                for plan in plans
            ]
        )
        deactivate = _endpoints_record(plans, endpoints, now=done)
        disabled = {
            endpoint.pk
            for endpoint, reason in deactivate
            if endpoint_deactivate(endpoint=endpoint, reason=reason)
        }
        for plan in plans:
            delivery = plan.sent.delivery
            if plan.status == Delivery.PENDING and delivery.endpoint_id in disabled:
                statuses[delivery.pk] = Delivery.SKIPPED
                continue
            statuses[delivery.pk] = plan.status
            if plan.delay is not None and plan.delay <= COUNTDOWN_MAX_SECONDS:
                retries.append((str(delivery.pk), plan.delay))
        if retries:
            transaction.on_commit(lambda: _retries_publish(retries))
    return statuses


@cache
def _deliveries_update_sql() -> str:
    """One UPDATE for a batch's deliveries, its values as one array per column (unnest): a
    constant statement whatever the batch's size, where ``bulk_update`` built a CASE per
    field per row (most of the recorder's CPU, bench/webhooks.sh). Fenced again by each
    claim's token; the rows are locked already (``deliveries_record``)."""
    table = connection.ops.quote_name(Delivery._meta.db_table)
    return f"""
        UPDATE {table} AS d SET
            status = v.status,
            attempt_count = d.attempt_count + 1,
            round_attempts = d.round_attempts + 1,
            last_attempt_at = v.at,
            claimed_until = NULL,
            claim_token = NULL,
            updated_at = %s,
            next_attempt_at = CASE
                WHEN v.retry_at IS NOT NULL THEN v.retry_at
                WHEN v.status <> %s THEN NULL
                ELSE d.next_attempt_at END,
            published_at = CASE
                WHEN v.retry_at IS NOT NULL THEN v.published_at
                ELSE d.published_at END
        FROM unnest(
            %s::uuid[], %s::uuid[], %s::varchar[], %s::timestamptz[], %s::timestamptz[],
            %s::timestamptz[]
        ) AS v(id, token, status, at, retry_at, published_at)
        WHERE d.id = v.id AND d.claim_token = v.token
    """  # noqa: S608 - the table name comes from model metadata


def _deliveries_update(
    updates: list[tuple[Any, uuid.UUID, str, datetime, datetime | None, datetime | None]],
    *,
    now: datetime,
) -> None:
    """Each ``(id, claim token, status, attempted at, retry at, published at)``: the
    delivery's new status, attempt counted, claim ended; with a retry, when it is due and
    whether a countdown message carries it (``published_at``)."""
    columns = [list(column) for column in zip(*updates, strict=True)]
    with connection.cursor() as cursor:
        cursor.execute(_deliveries_update_sql(), [now, Delivery.PENDING, *columns])


def _retries_publish(retries: list[tuple[str, float]]) -> None:
    for delivery_id, countdown in retries:
        deliveries_publish_later(delivery_id=delivery_id, countdown=countdown)


def _endpoints_record(
    plans: list[_Plan], locked: dict[Any, Endpoint], *, now: datetime
) -> list[tuple[Endpoint, str]]:
    """Each endpoint's failure streak after the batch's attempts, in attempt order (one
    statement; ``locked``: the batch's endpoints, read under their row locks); returns the
    endpoints to deactivate, with why: a 410, or a streak long enough in count and time
    (SPEC §6)."""
    per_endpoint: dict[Any, list[Sent]] = {}
    for plan in sorted(plans, key=lambda p: p.sent.at):
        if plan.sent.delivery.endpoint_id is not None:
            per_endpoint.setdefault(plan.sent.delivery.endpoint_id, []).append(plan.sent)
    if not per_endpoint:
        return []
    endpoints = [locked[pk] for pk in sorted(per_endpoint) if pk in locked]
    if not endpoints:
        return []
    deactivate = []
    for endpoint in endpoints:
        gone = False
        for sent in per_endpoint[endpoint.pk]:
            if sent.result.succeeded:
                endpoint.consecutive_failures = 0
                endpoint.failing_since = None
                endpoint.last_success_at = now
            else:
                endpoint.consecutive_failures += 1
                endpoint.failing_since = endpoint.failing_since or now
                endpoint.last_failure_at = now
                gone = gone or sent.result.status_code == 410
        if not endpoint.active or endpoint.consecutive_failures == 0:
            continue
        if gone:
            deactivate.append((endpoint, "The endpoint answered 410 Gone."))
        elif endpoint.consecutive_failures >= settings.WEBHOOK_DISABLE_AFTER_FAILURES and (
            now - endpoint.failing_since
        ) >= timedelta(seconds=settings.WEBHOOK_DISABLE_AFTER_SECONDS):
            deactivate.append(
                (
                    endpoint,
                    f"{endpoint.consecutive_failures} consecutive failed attempts since "
                    f"{iso(endpoint.failing_since)}.",
                )
            )
    table = connection.ops.quote_name(Endpoint._meta.db_table)
    columns = [
        [e.pk for e in endpoints],
        [e.consecutive_failures for e in endpoints],
        [e.failing_since for e in endpoints],
        [e.last_success_at for e in endpoints],
        [e.last_failure_at for e in endpoints],
    ]
    # One UPDATE from arrays (unnest), as for the deliveries; the rows are locked above.
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {table} AS e SET
                consecutive_failures = v.consecutive_failures,
                failing_since = v.failing_since,
                last_success_at = v.last_success_at,
                last_failure_at = v.last_failure_at
            FROM unnest(%s::uuid[], %s::integer[], %s::timestamptz[], %s::timestamptz[],
                %s::timestamptz[])
                AS v(id, consecutive_failures, failing_since, last_success_at, last_failure_at)
            WHERE e.id = v.id
            """,  # noqa: S608 - the table name comes from model metadata
            columns,
        )
    return deactivate
