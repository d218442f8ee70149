"""Endpoints (subscriptions): create, change, rotate, test, deactivate, enable, recover."""

from __future__ import annotations

import enum
import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts.models import Account
from apps.core.errors import Conflict, InvalidRequest, NotFound
from apps.core.timefmt import iso

from .. import filters, samples, signing, targets
from ..models import (
    RATE_LIMIT_MAX,
    RATE_LIMIT_MIN,
    Delivery,
    Endpoint,
    Event,
    event_id_generate,
)
from .events import event_body, event_emit
from .publishing import deliveries_publish, deliveries_requeue

logger = logging.getLogger(__name__)


ROTATION_OVERLAP = timedelta(hours=24)


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


def _clean_rate_limit(value: Any) -> int | None:
    if value is None:
        return None
    # A JSON true is no number of deliveries, though Python would count it as 1.
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not RATE_LIMIT_MIN <= value <= RATE_LIMIT_MAX
    ):
        raise InvalidRequest(
            details={
                "rate_limit": f"Must be a whole number of deliveries per second from "
                f"{RATE_LIMIT_MIN} to {RATE_LIMIT_MAX}, or null for no limit."
            }
        )
    return value


class _Keep(enum.Enum):
    """``endpoint_update``'s default for fields where ``None`` is a value (no limit, no
    filter): the field was not given, keep it."""

    KEEP = "keep"


KEEP = _Keep.KEEP


def _endpoint_cap_check(*, account: Account, sandbox: bool) -> None:
    """422 ``too_many_endpoints`` once the account has the cap's number of endpoints in this
    mode (disabled ones count: they still collect skipped deliveries). Counted per mode, so a
    sandbox key learns nothing about live endpoints. Call with the account row locked."""
    cap = settings.WEBHOOK_MAX_ENDPOINTS_PER_ACCOUNT
    if Endpoint.objects.filter(account=account, sandbox=sandbox).count() >= cap:
        mode = "sandbox" if sandbox else "live"
        raise InvalidRequest(
            f"An account may have at most {cap} {mode} webhook endpoints; delete one to "
            "add another",
            code="too_many_endpoints",
            details={"limit": cap},
        )


def _duplicate() -> Conflict:
    return Conflict(
        "An active endpoint with this URL and event set already exists",
        code="duplicate_endpoint",
    )


def endpoint_create(
    *,
    account: Account,
    url: str,
    events: list[str] | None = None,
    description: str = "",
    sandbox: bool = False,
    rate_limit: int | None = None,
    filter: Any = None,
    body_format: str = "",
) -> Endpoint:
    """Create a subscription with a fresh ``whsec_`` secret (the caller shows it once), in the
    mode of the key that asked: it will receive only that mode's events (those its
    ``filter`` accepts), at most ``rate_limit`` per second.

    Past ``WEBHOOK_MAX_ENDPOINTS_PER_ACCOUNT`` endpoints in that mode: 422
    ``too_many_endpoints``.
    """
    clean_events = _clean_events(events)
    endpoint = Endpoint(
        account=account,
        sandbox=sandbox,
        url=_clean_url(url),
        events=clean_events,
        events_key=",".join(sorted(clean_events)),
        description=description,
        rate_limit=_clean_rate_limit(rate_limit),
        filter=filters.filter_clean(filter),
        body_format=body_format,
        secret=signing.secret_generate(),
    )
    try:
        with transaction.atomic():
            # The account row lock makes count-then-insert one step: two concurrent creations
            # at the cap's last free place cannot both pass (as api_key_create's key cap).
            Account.objects.select_for_update().only("pk").get(pk=account.pk)
            _endpoint_cap_check(account=account, sandbox=sandbox)
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
    rate_limit: int | _Keep | None = KEEP,
    filter: Any = KEEP,
) -> Endpoint:
    """Change the fields given; ``rate_limit=None`` removes the limit, ``filter=None`` (or
    ``{}``) the filter. Everything is validated before anything is written."""
    # Only the fields given are written: a concurrent PATCH of another field must survive.
    changed = ["updated_at"]
    if rate_limit is not KEEP:
        endpoint.rate_limit = _clean_rate_limit(rate_limit)
        changed.append("rate_limit")
    if filter is not KEEP:
        endpoint.filter = filters.filter_clean(filter)
        changed.append("filter")
    if url is not None:
        endpoint.url = _clean_url(url)
        changed.append("url")
    if events is not None:
        endpoint.events = _clean_events(events)
        endpoint.events_key = ",".join(sorted(endpoint.events))
        changed += ["events", "events_key"]
    if description is not None:
        endpoint.description = description
        changed.append("description")
    try:
        with transaction.atomic():
            endpoint.save(update_fields=changed)
    except IntegrityError:
        endpoint.refresh_from_db()
        raise _duplicate()
    return endpoint


def endpoint_delete(*, endpoint: Endpoint) -> None:
    """Delete the endpoint with its deliveries and their attempts; queued messages for them
    find no row and stop, and an attempt in flight is not recorded (its claim's fence).

    Locks in the order every writer of an endpoint's deliveries uses (the recorder,
    ``deliveries_record``, and deactivation): the endpoint row first, then its deliveries in
    id order. The cascade's own DELETE locked deliveries in table order, then the endpoint,
    and so deadlocked with a recorder locking them in id order (tests/webhooks/
    test_delete_race.py). Deleted meanwhile by another request: 404.
    """
    with transaction.atomic():
        if not Endpoint.objects.select_for_update().filter(pk=endpoint.pk).exists():
            raise NotFound()
        # Locked here, the rows the cascade deletes next can gain no attempt meanwhile.
        list(
            Delivery.objects.select_for_update()
            .filter(endpoint_id=endpoint.pk)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        endpoint.delete()


def endpoint_secret_rotate(*, endpoint: Endpoint) -> Endpoint:
    """New secret; the old one keeps signing beside it for 24 h (both in every signature).
    A second rotation while the old one still signs is a 409 ``rotation_in_progress``."""
    _secret_rotate(
        endpoint,
        secret="secret",
        previous="previous_secret",
        expires="previous_secret_expires_at",
        also_save=("updated_at",),
    )
    return endpoint


def callback_secret_rotate(*, account: Account) -> Account:
    """New callback secret (request ``webhook_url`` deliveries); the old one signs beside it
    for 24 h, as with an endpoint's ``rotate-secret``."""
    _secret_rotate(
        account,
        secret="callback_secret",
        previous="previous_callback_secret",
        expires="previous_callback_secret_expires_at",
    )
    return account


def _secret_rotate(
    obj: Endpoint | Account,
    *,
    secret: str,
    previous: str,
    expires: str,
    also_save: tuple[str, ...] = (),
) -> None:
    """The current secret becomes the previous one (signing beside the new one until
    ``expires``), read under a row lock.

    Refused (409 ``rotation_in_progress``) while an earlier rotation's previous secret still
    signs: rotating again would drop that secret before its 24 h, and a receiver that has not
    yet deployed the newer one would start rejecting every delivery. Refusing keeps the rule
    with two columns, and a concurrent second rotation is refused the same way, so no secret a
    client has been shown is ever dropped early.
    """
    now = timezone.now()
    with transaction.atomic():
        # NO KEY: a rotation changes no key, so it need not wait for the finish batches that
        # hold the endpoint FOR KEY SHARE while emitting (services/events.py).
        current, until = (
            type(obj)
            .objects.select_for_update(no_key=True)
            .values_list(secret, expires)
            .get(pk=obj.pk)
        )
        if until is not None and until > now:
            raise Conflict(
                "The previous secret still signs beside the current one until "
                f"{iso(until)}; rotate again after that",
                code="rotation_in_progress",
                details={"previous_secret_expires_at": iso(until)},
            )
        setattr(obj, previous, current)
        setattr(obj, expires, now + ROTATION_OVERLAP)
        setattr(obj, secret, signing.secret_generate())
        obj.save(update_fields=[secret, previous, expires, *also_save])


def endpoint_deactivate(*, endpoint: Endpoint, reason: str) -> bool:
    """Disable the endpoint, mark its pending deliveries skipped, emit ``endpoint.disabled``.

    A conditional UPDATE makes this happen once even when several failing deliveries race.
    Returns whether this call disabled it.
    """
    from .. import selectors

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
            sandbox=endpoint.sandbox,
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


def endpoint_require_active(endpoint: Endpoint) -> None:
    if not endpoint.active:
        raise Conflict("The endpoint is disabled; enable it first", code="endpoint_disabled")


def endpoint_recover(*, endpoint: Endpoint, since: datetime) -> int:
    """Send again every delivery of this endpoint created since ``since`` that it did not
    receive with a 2xx and that is not still under way: ``failed`` ones (schedule exhausted)
    and ``skipped`` ones (cut short, or never tried, while the endpoint was disabled)."""
    endpoint_require_active(endpoint)
    with transaction.atomic():
        ids = list(
            Delivery.objects.filter(endpoint_id=endpoint.pk, created_at__gte=since)
            # Pending ones are still on their schedule; a requeue would only restart it.
            .exclude(status__in=[Delivery.SUCCEEDED, Delivery.PENDING])
            .values_list("pk", flat=True)
        )
        return deliveries_requeue(delivery_ids=ids)


def endpoint_test(*, endpoint: Endpoint, event_type: str | None = None) -> Delivery:
    """Queue a sample event (``_test: true``, header ``X-Sluice-Test: true``) to one endpoint.

    Sample events are stored (so the delivery can be inspected) but never listed in /events.
    """
    from .. import selectors

    endpoint_require_active(endpoint)
    event_type = event_type or (endpoint.events[0] if endpoint.events else Event.CONTACT_ENRICHED)
    if event_type not in Event.TYPES:
        raise InvalidRequest(details={"event_type": f"Unknown event type '{event_type}'."})
    now = timezone.now()
    data = samples.sample_data(event_type, endpoint_data=selectors.endpoint_data(endpoint))
    with transaction.atomic():
        event = Event(
            account_id=endpoint.account_id,
            type=event_type,
            sandbox=endpoint.sandbox,
            created_at=now,
            test=True,
        )
        event.id = event_id_generate()
        event.body = event_body(
            event_id=event.id,
            type=event_type,
            created_at=now,
            data=data,
            sandbox=endpoint.sandbox,
            test=True,
        )
        event.save(force_insert=True)
        delivery = Delivery.objects.create(
            account_id=endpoint.account_id,
            event=event,
            endpoint=endpoint,
            body_format=endpoint.body_format,
            next_attempt_at=now,
            published_at=now,
        )
        ids = [str(delivery.pk)]
        transaction.on_commit(lambda: deliveries_publish(ids))
    return delivery
