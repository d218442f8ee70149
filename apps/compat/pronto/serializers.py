"""Pronto's request and response shapes for the OpenAPI schema only: bodies are validated by
``validation.py`` (Sluice's cleaners), never by these serializers."""

from __future__ import annotations

from rest_framework import serializers

from apps.enrichment.validation import (
    COMPANY_NAME_MAX_LENGTH,
    KINDS,
    LINKEDIN_URL_MAX_LENGTH,
    NAME_MAX_LENGTH,
)


def _enrichment_type() -> serializers.ListField:
    return serializers.ListField(
        child=serializers.ChoiceField(KINDS),
        min_length=1,
        max_length=1,
        help_text="One enrichment type; personal_email needs the account's consent",
    )


class ProntoContactFieldsSerializer(serializers.Serializer):
    """One contact of a bulk: the fields a Pronto contact may carry."""

    firstname = serializers.CharField(max_length=NAME_MAX_LENGTH)
    lastname = serializers.CharField(max_length=NAME_MAX_LENGTH)
    company_name = serializers.CharField(
        required=False,
        max_length=COMPANY_NAME_MAX_LENGTH,
        help_text="Needed for email when no domain",
    )
    domain = serializers.CharField(
        required=False, help_text="Needed for email when no company_name"
    )
    linkedin_url = serializers.URLField(
        required=False,
        max_length=LINKEDIN_URL_MAX_LENGTH,
        help_text="Needed for phone and personal_email",
    )
    custom = serializers.JSONField(
        required=False, allow_null=True, help_text="JSON object, echoed back everywhere"
    )


class ProntoSingleEnrichSerializer(ProntoContactFieldsSerializer):
    enrichment_type = _enrichment_type()
    phone_country_codes = serializers.ListField(
        child=serializers.CharField(min_length=2, max_length=2),
        required=False,
        help_text="ISO 3166-1 alpha-2; default: the account's",
    )
    webhook_url = serializers.URLField(
        required=False, help_text="Receives the finished contact (the GET contacts/{id} object)"
    )


class ProntoBulkEnrichSerializer(serializers.Serializer):
    contacts = ProntoContactFieldsSerializer(many=True, help_text="At most the plan's bulk max")
    enrichment_type = _enrichment_type()
    phone_country_codes = serializers.ListField(
        child=serializers.CharField(min_length=2, max_length=2), required=False
    )
    webhook_url = serializers.URLField(
        required=False, help_text="Receives one payload per contact as each one finishes"
    )


class ProntoAcceptedSerializer(serializers.Serializer):
    enrichment_id = serializers.UUIDField(help_text="Poll GET contacts/{id} with it")
    first_name = serializers.CharField()
    last_name = serializers.CharField()
    status = serializers.ChoiceField(["pending"])
    custom = serializers.JSONField(allow_null=True)


class ProntoBulkAcceptedSerializer(serializers.Serializer):
    enrichment_id = serializers.UUIDField(help_text="The ID of the bulk enrichment job")
    # A plain string, not an enum: its one value is always "queued".
    status = serializers.CharField(help_text='Always "queued"')


class ProntoContactSerializer(serializers.Serializer):
    enrichment_id = serializers.UUIDField()
    first_name = serializers.CharField()
    last_name = serializers.CharField()
    status = serializers.ChoiceField(["pending", "finished"])
    email = serializers.EmailField(allow_null=True)
    email_status = serializers.CharField(help_text="deliverable, catch-all, unknown or N/A")
    personal_email = serializers.EmailField(allow_null=True)
    personal_email_status = serializers.CharField(help_text="valid or N/A")
    phone = serializers.ListField(child=serializers.CharField(), help_text="E.164 numbers")
    custom = serializers.JSONField(allow_null=True)


class ProntoErrorSerializer(serializers.Serializer):
    message = serializers.CharField()
    errors = serializers.DictField(
        child=serializers.CharField(), help_text="Field path -> message (Pronto's field names)"
    )
