"""Request and response shapes of the webhooks API (input serializers only check types)."""

from __future__ import annotations

from rest_framework import serializers

from apps.core.api import PaginationSerializer

from .models import Delivery, Event


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


class EndpointUpdateSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=2048, required=False)
    events = serializers.ListField(child=serializers.CharField(), required=False)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)


class EndpointSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    url = serializers.CharField()
    events = serializers.ListField(child=serializers.ChoiceField(Event.TYPES))
    description = serializers.CharField()
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
    recovered = serializers.IntegerField(help_text="Failed deliveries queued again")


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
