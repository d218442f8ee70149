"""Request and response shapes for the OpenAPI schema (validation lives in validation.py)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.core.api import PaginationSerializer

KIND_CHOICES = ["email", "phone", "personal_email"]


class ContactFieldsSerializer(serializers.Serializer):
    first_name = serializers.CharField(max_length=100)
    last_name = serializers.CharField(max_length=100)
    company_name = serializers.CharField(required=False, max_length=200)
    domain = serializers.CharField(
        required=False, help_text="Normalised: scheme, www., path stripped"
    )
    linkedin_url = serializers.URLField(
        required=False, max_length=500, help_text="https://www.linkedin.com/in/<slug>"
    )
    custom = serializers.JSONField(
        required=False, help_text="JSON object, ≤ 4 KB, depth ≤ 3; echoed back"
    )
    max_credits = serializers.IntegerField(
        required=False, min_value=0, help_text="Cap on what this contact may be charged"
    )


@extend_schema_field(
    {
        "oneOf": [
            {"type": "array", "items": {"enum": KIND_CHOICES}, "minItems": 1, "uniqueItems": True},
            {"enum": KIND_CHOICES},
        ],
        "description": "Distinct kinds; a single string is accepted and wrapped",
    }
)
class EnrichmentTypeField(serializers.JSONField):
    pass


class EnrichRequestSerializer(ContactFieldsSerializer):
    enrichment_type = EnrichmentTypeField()
    phone_country_codes = serializers.ListField(
        child=serializers.CharField(min_length=2, max_length=2),
        required=False,
        help_text="ISO 3166-1 alpha-2; default: the account's",
    )
    webhook_url = serializers.URLField(required=False)


class BulkContactSerializer(ContactFieldsSerializer):
    """One contact of a batch; the batch-level fields may be overridden per contact."""

    enrichment_type = EnrichmentTypeField(required=False)
    phone_country_codes = serializers.ListField(
        child=serializers.CharField(min_length=2, max_length=2), required=False
    )
    webhook_url = serializers.URLField(required=False)


class BulkRequestSerializer(serializers.Serializer):
    contacts = BulkContactSerializer(many=True, help_text="At most the plan's bulk max")
    enrichment_type = EnrichmentTypeField(
        required=False, help_text="For every contact that does not name its own"
    )
    phone_country_codes = serializers.ListField(
        child=serializers.CharField(min_length=2, max_length=2), required=False
    )
    webhook_url = serializers.URLField(required=False)


class AcceptedSerializer(serializers.Serializer):
    enrichment_id = serializers.UUIDField()
    status = serializers.ChoiceField(["pending"])
    first_name = serializers.CharField()
    last_name = serializers.CharField()
    custom = serializers.JSONField(allow_null=True)
    created_at = serializers.DateTimeField()


class BulkAcceptedContactSerializer(serializers.Serializer):
    enrichment_id = serializers.UUIDField()
    custom = serializers.JSONField(allow_null=True)


class BulkAcceptedSerializer(serializers.Serializer):
    bulk_id = serializers.UUIDField()
    status = serializers.ChoiceField(["pending"])
    total = serializers.IntegerField()
    contacts = BulkAcceptedContactSerializer(many=True)


class PhoneSerializer(serializers.Serializer):
    number = serializers.CharField(help_text="E.164")
    type = serializers.CharField()
    country = serializers.CharField()


class ResultSerializer(serializers.Serializer):
    status = serializers.ChoiceField(["VERIFIED", "NOT_FOUND", "NO_CREDITS", "FAILED"])
    email = serializers.EmailField(allow_null=True)
    email_status = serializers.CharField(allow_null=True)
    personal_email = serializers.EmailField(allow_null=True)
    phones = PhoneSerializer(many=True)
    job_title = serializers.CharField(allow_null=True)
    company_domain = serializers.CharField(allow_null=True)
    confidence = serializers.IntegerField(allow_null=True)
    providers = serializers.DictField(child=serializers.CharField())


class AttemptSerializer(serializers.Serializer):
    provider = serializers.CharField()
    kind = serializers.CharField()
    outcome = serializers.ChoiceField(["hit", "miss", "error", "skipped", "cache"])
    duration_ms = serializers.IntegerField()
    error = serializers.CharField(allow_null=True)


class ContactSerializer(serializers.Serializer):
    enrichment_id = serializers.UUIDField()
    status = serializers.ChoiceField(["pending", "finished"])
    first_name = serializers.CharField()
    last_name = serializers.CharField()
    company_name = serializers.CharField(allow_null=True)
    domain = serializers.CharField(allow_null=True)
    linkedin_url = serializers.CharField(allow_null=True)
    enrichment_type = serializers.ListField(child=serializers.CharField())
    result = ResultSerializer(allow_null=True)
    credits_charged = serializers.IntegerField()
    sandbox = serializers.BooleanField()
    bulk_id = serializers.UUIDField(allow_null=True)
    custom = serializers.JSONField(allow_null=True)
    attempts = AttemptSerializer(many=True)
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


class ContactListSerializer(serializers.Serializer):
    data = ContactSerializer(many=True)
    pagination = PaginationSerializer()


class BulkSerializer(serializers.Serializer):
    bulk_id = serializers.UUIDField()
    status = serializers.ChoiceField(["pending", "completed"])
    total = serializers.IntegerField()
    finished = serializers.IntegerField()
    verified = serializers.IntegerField()
    not_found = serializers.IntegerField()
    no_credits = serializers.IntegerField()
    failed = serializers.IntegerField()
    credits_used = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    completed_at = serializers.DateTimeField(allow_null=True)
