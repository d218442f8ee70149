"""Writes the dialect needs that Sluice's services do not do (yet) as it needs them."""

from __future__ import annotations

from django.db import transaction

from apps.webhooks import services as webhook_services
from apps.webhooks.models import Delivery, Endpoint


def subscription_test(*, endpoint: Endpoint) -> Delivery:
    """Sluice's test delivery of the subscription's event (``endpoint_test``), sent in the
    endpoint's body format like its real deliveries.

    ``endpoint_test`` leaves its delivery in Sluice's body; this sets the endpoint's format
    in the same transaction, so the delivery is published (on commit) only once it says so.
    It belongs in ``endpoint_test`` (``body_format=endpoint.body_format``); then this is a
    plain call."""
    with transaction.atomic():
        delivery = webhook_services.endpoint_test(endpoint=endpoint)
        if delivery.body_format != endpoint.body_format:
            Delivery.objects.filter(pk=delivery.pk).update(body_format=endpoint.body_format)
            delivery.body_format = endpoint.body_format
    return delivery
