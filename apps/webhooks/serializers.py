"""Request and response shapes of the webhooks API (input serializers only check types)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.core.api import PaginationSerializer

from . import filters
from .models import RATE_LIMIT_MAX, RATE_LIMIT_MIN, Delivery, Event

# Not null here: the fields' allow_null adds it (OpenAPI 3.1: "type": [..., "null"]).
_RATE_LIMIT_SCHEMA = {
    "type": "integer",
    "minimum": RATE_LIMIT_MIN,
    "maximum": RATE_LIMIT_MAX,
}
_RATE_LIMIT_HELP = (
    f"Deliveries per second at most, {RATE_LIMIT_MIN} to {RATE_LIMIT_MAX}; null: no limit"
)
_FILTER_SCHEMA = {
    "type": "object",
    "maxProperties": filters.MAX_KEYS,
    "additionalProperties": {
        "type": "array",
        "minItems": 1,
        "maxItems": filters.MAX_VALUES,
        "items": {"description": "A string, number, boolean or null"},
    },
    "example": {"result.status": ["VERIFIED"], "custom.crm": ["hubspot"]},
}
_FILTER_HELP = (
    "Only events whose data matches: keys are dotted paths into data (at most "
    f"{filters.MAX_SEGMENTS} fields deep, at most {filters.MAX_KEYS} keys), values the accepted "
    "scalars (any of them; a lone scalar is a list of one); every key must match. A path the "
    "data lacks matches nothing. null or {}: every event"
)


# Passed through as sent: the services check the values (a JSON true is no rate, "5" neither)
# and name the problem; the schema still shows the real shape.
@extend_schema_field(_RATE_LIMIT_SCHEMA)
class RateLimitField(serializers.JSONField):
    pass


@extend_schema_field(_FILTER_SCHEMA)
class FilterField(serializers.JSONField):
    pass


class EndpointCreateSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=2048, help_text="https:// URL with a public host")
    # Plain strings here: the service names unknown types in one message per field.
    events = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text=f"Event types to receive ({', '.join(Event.TYPES)}); all when omitted",
    )
    description = serializers.CharField(
        max_length=500, required=False, allow_blank=True, default=""
    )
    rate_limit = RateLimitField(required=False, allow_null=True, help_text=_RATE_LIMIT_HELP)
    filter = FilterField(required=False, allow_null=True, help_text=_FILTER_HELP)


class EndpointUpdateSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=2048, required=False)
    events = serializers.ListField(child=serializers.CharField(), required=False)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    rate_limit = RateLimitField(required=False, allow_null=True, help_text=_RATE_LIMIT_HELP)
    filter = FilterField(required=False, allow_null=True, help_text=_FILTER_HELP)


class EndpointSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    url = serializers.CharField()
    events = serializers.ListField(child=serializers.ChoiceField(Event.TYPES))
    description = serializers.CharField()
    rate_limit = serializers.IntegerField(
        allow_null=True,
        min_value=RATE_LIMIT_MIN,
        max_value=RATE_LIMIT_MAX,
        help_text=_RATE_LIMIT_HELP,
    )
    filter = FilterField(allow_null=True, help_text=_FILTER_HELP)
    sandbox = serializers.BooleanField(
        help_text="The mode of the key that created it; it receives only that mode's events"
    )
    active = serializers.BooleanField()
    disabled_at = serializers.DateTimeField(allow_null=True)
    disabled_reason = serializers.CharField(allow_null=True)
    consecutive_failures = serializers.IntegerField()
    last_success_at = serializers.DateTimeField(allow_null=True)
    last_failure_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()


class EndpointWithSecretSerializer(EndpointSerializer):
    secret = serializers.CharField(help_text="whsec_…; shown only on create and rotate")


class EndpointEnabledSerializer(EndpointSerializer):
    replayed = serializers.IntegerField(help_text="Skipped deliveries queued again")


class CallbackSecretSerializer(serializers.Serializer):
    webhook_secret = serializers.CharField(
        help_text="whsec_…: signs deliveries to a request's webhook_url; shown only here"
    )
    previous_secret_expires_at = serializers.DateTimeField(
        help_text="Until then the old secret signs beside the new one"
    )


class EndpointListSerializer(serializers.Serializer):
    data = EndpointSerializer(many=True)
    pagination = PaginationSerializer()


class EnableRequestSerializer(serializers.Serializer):
    replay = serializers.BooleanField(
        required=False, default=False, help_text="Resend what was skipped while disabled"
    )


class TestRequestSerializer(serializers.Serializer):
    event_type = serializers.ChoiceField(Event.TYPES, required=False)


class RecoverRequestSerializer(serializers.Serializer):
    since = serializers.DateTimeField(help_text="ISO-8601 with a time zone")


class RecoverSerializer(serializers.Serializer):
    recovered = serializers.IntegerField(
        help_text="Deliveries queued again: the failed and the skipped ones"
    )


class DeliveryAttemptSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    status_code = serializers.IntegerField(allow_null=True)
    duration_ms = serializers.IntegerField()
    error = serializers.CharField(allow_null=True)
    response_body = serializers.CharField(help_text="First 1 KB of the answer")


class DeliverySerializer(serializers.Serializer):
    id = serializers.UUIDField()
    event_id = serializers.CharField()
    event_type = serializers.ChoiceField(Event.TYPES)
    status = serializers.ChoiceField([s for s, _ in Delivery.STATUSES])
    attempt_count = serializers.IntegerField()
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    attempts = DeliveryAttemptSerializer(many=True)


class DeliveryListSerializer(serializers.Serializer):
    data = DeliverySerializer(many=True)
    pagination = PaginationSerializer()


class EventSerializer(serializers.Serializer):
    id = serializers.CharField()
    type = serializers.ChoiceField(Event.TYPES)
    created_at = serializers.DateTimeField()
    sandbox = serializers.BooleanField(help_text="Sandbox or live, as the key that lists it")
    data = serializers.JSONField()


class EventListSerializer(serializers.Serializer):
    data = EventSerializer(many=True)
    pagination = PaginationSerializer()
