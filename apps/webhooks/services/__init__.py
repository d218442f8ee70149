"""Writes for webhooks, split by sub-domain; every public service is importable from here."""

from .deliveries import (
    Sent,
    deliveries_record,
    delivery_attempt,
    delivery_request,
    delivery_retry,
    retry_delay,
)
from .endpoints import (
    callback_secret_rotate,
    endpoint_create,
    endpoint_deactivate,
    endpoint_delete,
    endpoint_disable,
    endpoint_enable,
    endpoint_recover,
    endpoint_secret_rotate,
    endpoint_test,
    endpoint_update,
)
from .events import EventDraft, event_emit, events_emit
from .maintenance import deliveries_sweep, events_purge
from .publishing import deliveries_publish, deliveries_requeue
from .sender import deliveries_dispatch, sender
from .transport import AttemptResult, http_post

__all__ = [
    "AttemptResult",
    "EventDraft",
    "Sent",
    "callback_secret_rotate",
    "deliveries_dispatch",
    "deliveries_publish",
    "deliveries_record",
    "deliveries_requeue",
    "deliveries_sweep",
    "delivery_attempt",
    "delivery_request",
    "delivery_retry",
    "endpoint_create",
    "endpoint_deactivate",
    "endpoint_delete",
    "endpoint_disable",
    "endpoint_enable",
    "endpoint_recover",
    "endpoint_secret_rotate",
    "endpoint_test",
    "endpoint_update",
    "event_emit",
    "events_emit",
    "events_purge",
    "http_post",
    "retry_delay",
    "sender",
]
