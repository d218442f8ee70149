"""Request and response shapes of the prospiq dialect for the OpenAPI schema (validation is
``validation.py``, over Sluice's cleaners; these serializers never validate)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.enrichment.validation import CONTACT_REQUEST

from . import shapes
from .validation import MIN_LENGTH, TYPES


def _schema(schema: dict, *, name: str, help_text: str = "", required: bool = False):
    """A field the schema shows as ``schema``: inline, so that no enum component of
    Sluice's own is redefined (prospiq's ``status`` and ``type`` have other values)."""
    field_class = extend_schema_field(schema)(type(name, (serializers.JSONField,), {}))
    return field_class(required=required, help_text=help_text or None)


def _choices(values, *, name: str) -> dict:
    # Its own enum id: the schema names the enum after its component and property
    # (ProspiqEnrichRequestTypeEnum) rather than colliding with Sluice's "type" and "status".
    return {"type": "string", "enum": list(values), "x-spec-enum-id": name}


def _enum(values, *, name: str, help_text: str = "", required: bool = True):
    return _schema(_choices(values, name=name), name=name, help_text=help_text, required=required)


_SLUICE = {spec.name: spec for spec in CONTACT_REQUEST}


def _extension(field_name: str):
    spec = _SLUICE[field_name]
    return _schema(
        spec.schema,
        name=f"Prospiq{field_name.title().replace('_', '')}Field",
        help_text=f"Sluice's own field (not prospiq's). {spec.description}".strip(),
    )


class ProspiqContactSerializer(serializers.Serializer):
    first_name = serializers.CharField(min_length=MIN_LENGTH, max_length=100)
    last_name = serializers.CharField(max_length=100)
    company = serializers.CharField(
        min_length=MIN_LENGTH,
        help_text="Company name or domain: a domain (stripe.com) is looked up as one, "
        "anything else as a company name",
    )
    linkedin_url = _extension("linkedin_url")
    custom = _extension("custom")
    phone_country_codes = _extension("phone_country_codes")


_TYPE_HELP = "email (default), phone or both; phone needs linkedin_url"


class ProspiqEnrichSerializer(ProspiqContactSerializer):
    type = _enum(TYPES, name="ProspiqTypeField", help_text=_TYPE_HELP, required=False)
    fields = _schema(
        {
            "type": "array",
            "minItems": 1,
            "items": _choices(shapes.RESULT_FIELDS, name="ProspiqFieldsField"),
        },
        name="ProspiqFieldsField",
        help_text="Restrict the response to these result fields; default all",
    )


class ProspiqBulkSerializer(serializers.Serializer):
    contacts = ProspiqContactSerializer(many=True, help_text="At most the plan's bulk max")
    type = _enum(TYPES, name="ProspiqBulkTypeField", help_text=_TYPE_HELP, required=False)
    webhook_url = serializers.URLField(
        required=False, help_text="Receives bulk.completed once the batch finishes"
    )
    phone_country_codes = _extension("phone_country_codes")


class ProspiqPhoneSerializer(serializers.Serializer):
    number = serializers.CharField(help_text="+1 (555) 000-0000; other countries +44 20 …")
    type = _enum(shapes.PHONE_TYPES, name="ProspiqPhoneTypeField")


class ProspiqResultFieldsSerializer(serializers.Serializer):
    email = serializers.EmailField(required=False, help_text="Only when found")
    phone = ProspiqPhoneSerializer(many=True, required=False, help_text="Only when found")
    job_title = serializers.CharField(required=False)
    company_domain = serializers.CharField(required=False)
    confidence = serializers.IntegerField(
        required=False, min_value=0, max_value=100, help_text="When VERIFIED"
    )
    search_id = serializers.UUIDField(
        help_text="Sluice's enrichment_id: GET /api/v1/contacts/{search_id}"
    )


class ProspiqEnrichResultSerializer(ProspiqResultFieldsSerializer):
    status = _enum(("VERIFIED", "NOT_FOUND"), name="ProspiqEnrichStatusField")
    credits_remaining = serializers.IntegerField()
    _sandbox = serializers.BooleanField(required=False, help_text="Only with a sandbox key")


class ProspiqEnrichPendingSerializer(serializers.Serializer):
    status = _enum((shapes.PENDING,), name="ProspiqPendingStatusField")
    search_id = serializers.UUIDField(help_text="Poll GET /api/v1/contacts/{search_id}")
    _sandbox = serializers.BooleanField(required=False)


class ProspiqBulkResultSerializer(ProspiqResultFieldsSerializer):
    first_name = serializers.CharField()
    last_name = serializers.CharField()
    company = serializers.CharField()
    status = _enum(shapes.STATUSES, name="ProspiqContactStatusField")


class ProspiqBulkSerializerOut(serializers.Serializer):
    status = _enum(("completed",), name="ProspiqBulkStatusField")
    bulk_id = serializers.UUIDField(help_text="GET /api/v1/bulk/{bulk_id}")
    total = serializers.IntegerField()
    verified = serializers.IntegerField()
    not_found = serializers.IntegerField()
    credits_used = serializers.IntegerField()
    credits_remaining = serializers.IntegerField()
    results = ProspiqBulkResultSerializer(many=True)
    _sandbox = serializers.BooleanField(required=False)


class ProspiqPendingContactSerializer(serializers.Serializer):
    first_name = serializers.CharField()
    last_name = serializers.CharField()
    company = serializers.CharField()
    status = _enum((shapes.PENDING,), name="ProspiqPendingContactStatusField")
    search_id = serializers.UUIDField()


class ProspiqBulkPendingSerializer(serializers.Serializer):
    status = _enum(("pending",), name="ProspiqBulkPendingStatusField")
    bulk_id = serializers.UUIDField(help_text="Poll GET /api/v1/bulk/{bulk_id}")
    total = serializers.IntegerField()
    results = ProspiqPendingContactSerializer(many=True)
    _sandbox = serializers.BooleanField(required=False)


class ProspiqCreditsSerializer(serializers.Serializer):
    credits = serializers.IntegerField()
    plan = serializers.CharField(help_text="free, starter, growth or pro")
    daily_requests_used = serializers.IntegerField()
    daily_limit = serializers.IntegerField(allow_null=True)


class ProspiqSubscribeSerializer(serializers.Serializer):
    event = _enum(shapes.EVENTS, name="ProspiqEventField")
    target_url = serializers.URLField(help_text="https (http is refused with 422 in production)")


class ProspiqSubscriptionCreatedSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    event = _enum(shapes.EVENTS, name="ProspiqSubscriptionEventField")
    target_url = serializers.CharField()
    secret = serializers.CharField(help_text="whsec_…: shown only here")
    active = serializers.BooleanField()
    created_at = serializers.DateTimeField()


class ProspiqSubscriptionSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    event = _enum(shapes.EVENTS, name="ProspiqListedEventField")
    target_url = serializers.CharField()
    active = serializers.BooleanField()
    consecutive_failures = serializers.IntegerField()
    last_triggered_at = serializers.DateTimeField(allow_null=True)
    last_failure_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()


class ProspiqAvailableEventSerializer(serializers.Serializer):
    event = _enum(shapes.EVENTS, name="ProspiqCatalogueEventField")
    label = serializers.CharField()


class ProspiqWebhooksSerializer(serializers.Serializer):
    subscriptions = ProspiqSubscriptionSerializer(many=True)
    available_events = ProspiqAvailableEventSerializer(many=True)


class ProspiqSuccessSerializer(serializers.Serializer):
    success = serializers.BooleanField()


class ProspiqTestRequestSerializer(serializers.Serializer):
    subscription_id = serializers.UUIDField()


class ProspiqTestSerializer(serializers.Serializer):
    success = serializers.BooleanField(help_text="The receiver answered 2xx")
    message = serializers.CharField()
    status_code = serializers.IntegerField(
        allow_null=True, help_text="The receiver's status; null: no answer (or not sent yet)"
    )


class ProspiqPayloadSerializer(serializers.Serializer):
    event = _enum(shapes.EVENTS, name="ProspiqPayloadEventField")
    data = serializers.JSONField()
    timestamp = serializers.DateTimeField()
    _sandbox = serializers.BooleanField(required=False)


class ProspiqPolledEventSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="evt_…, the webhook-id of its deliveries")
    event = _enum(shapes.EVENTS, name="ProspiqPolledEventField")
    payload = ProspiqPayloadSerializer(help_text="The body its deliveries are sent with")
    created_at = serializers.DateTimeField()


class ProspiqPollSerializer(serializers.Serializer):
    events = ProspiqPolledEventSerializer(many=True)


class ProspiqErrorSerializer(serializers.Serializer):
    error = serializers.CharField()
