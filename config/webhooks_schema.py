"""The events Sluice sends, as OpenAPI 3.1 ``webhooks`` (``SPECTACULAR_SETTINGS["WEBHOOKS"]``).

Each webhook names the body one delivery carries (the event envelope with that type's
``data``); the headers every delivery carries are added by
``apps.core.schema.add_webhook_headers``. Here, above the apps, because the payloads are the
API objects of several apps (a contact, a bulk, an endpoint, a credit notice).
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, OpenApiWebhook, extend_schema
from rest_framework import serializers

from apps.enrichment.serializers import BulkSerializer, ContactSerializer
from apps.imports.serializers import ImportSerializer
from apps.webhooks.models import Event
from apps.webhooks.serializers import EndpointSerializer


class AddedToListSerializer(serializers.Serializer):
    """``apps.enrichment.services.lists.added_to_list_data``: prospiq's fields with Sluice's
    ids. A contact added as it is created is still pending (no email, no title yet)."""

    list_id = serializers.UUIDField()
    list_name = serializers.CharField()
    enrichment_id = serializers.UUIDField()
    status = serializers.ChoiceField(["pending", "finished"])
    contact_email = serializers.CharField(allow_null=True)
    contact_name = serializers.CharField()
    company = serializers.CharField(allow_null=True)
    job_title = serializers.CharField(allow_null=True)
    bulk_id = serializers.UUIDField(allow_null=True)
    custom = serializers.JSONField()
    added_at = serializers.DateTimeField()


class CreditNoticeSerializer(serializers.Serializer):
    account_id = serializers.CharField()
    credits = serializers.IntegerField(help_text="The available balance right after the change")
    threshold = serializers.IntegerField(help_text="CREDITS_LOW_THRESHOLD")


def _envelope(name: str, event_type: str, data: serializers.Serializer) -> type:
    """A serializer class for one event type's envelope (``id``, ``type``, ``data``…)."""
    fields = {
        "id": serializers.CharField(help_text="evt_…; also the webhook-id header"),
        "type": serializers.ChoiceField([event_type]),
        "created_at": serializers.DateTimeField(),
        "sandbox": serializers.BooleanField(help_text="The mode of what happened"),
        "data": data,
        "Meta": type("Meta", (), {}),
    }
    serializer = type(f"{name}Serializer", (serializers.Serializer,), fields)
    # ``_test`` is not an identifier DRF accepts as a declared field: added afterwards.
    serializer._declared_fields["_test"] = serializers.BooleanField(
        required=False, help_text="Present (true) only on a sample from POST /webhooks/{id}/test"
    )
    return serializer


def _webhook(event_type: str, name: str, data: serializers.Serializer, when: str) -> OpenApiWebhook:
    return OpenApiWebhook(
        name=event_type,
        decorator=extend_schema(
            summary=event_type,
            description=(
                f"{when}\n\nSent as a POST with the headers below. Verify `webhook-signature` "
                "(Standard Webhooks) before parsing; answer 2xx within WEBHOOK_READ_TIMEOUT. "
                "A body over WEBHOOK_MAX_EVENT_BYTES carries, instead of the object, its ids "
                'with `"truncated": true`, `size` and the `url` to GET it from.'
            ),
            tags=["webhooks (sent by Sluice)"],
            request=_envelope(name, event_type, data),
            responses={
                200: OpenApiResponse(description="Any 2xx: received"),
                410: OpenApiResponse(description="Gone: the endpoint is deactivated at once"),
            },
        ),
    )


contact_enriched = _webhook(
    Event.CONTACT_ENRICHED,
    "ContactEnrichedEvent",
    ContactSerializer(),
    "A contact finished, whatever its outcome; `data` is the GET /contacts/{id} object.",
)
contact_verified = _webhook(
    Event.CONTACT_VERIFIED,
    "ContactVerifiedEvent",
    ContactSerializer(),
    "A contact finished VERIFIED; `data` is the GET /contacts/{id} object.",
)
bulk_completed = _webhook(
    Event.BULK_COMPLETED,
    "BulkCompletedEvent",
    BulkSerializer(),
    "The last contact of a bulk finished (once per bulk); `data` is the GET /bulk/{id} object.",
)
credits_low = _webhook(
    Event.CREDITS_LOW,
    "CreditsLowEvent",
    CreditNoticeSerializer(),
    "A charge or a negative adjustment took the live balance below CREDITS_LOW_THRESHOLD.",
)
credits_exhausted = _webhook(
    Event.CREDITS_EXHAUSTED,
    "CreditsExhaustedEvent",
    CreditNoticeSerializer(),
    "A charge or a negative adjustment took the live balance to 0.",
)
contact_added_to_list = _webhook(
    Event.CONTACT_ADDED_TO_LIST,
    "ContactAddedToListEvent",
    AddedToListSerializer(),
    "A contact was put in a list: by POST /lists/{id}/contacts, or as it was created by an "
    "enrich, bulk or import naming a `list_id`.",
)
import_completed = _webhook(
    Event.IMPORT_COMPLETED,
    "ImportCompletedEvent",
    ImportSerializer(),  # the GET /imports/{id} object itself
    "Every contact of a CSV import (POST /imports) has finished; `data` is the "
    "GET /imports/{id} object. Sent to the import's `webhook_url` too.",
)
endpoint_disabled = _webhook(
    Event.ENDPOINT_DISABLED,
    "EndpointDisabledEvent",
    EndpointSerializer(),
    "An endpoint was deactivated (failures or a 410); sent to the account's other endpoints. "
    "`data` is the endpoint object, with `disabled_reason`.",
)
