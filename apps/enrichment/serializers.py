"""Request and response shapes for the OpenAPI schema (validation lives in validation.py,
whose ``CONTACT_REQUEST`` the request shapes are built from)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.core.api import PaginationSerializer

from .models import List
from .validation import CONTACT_REQUEST, LIST_ID, SYNC_TIMEOUT, RequestField


def _schema_field(spec: RequestField, *, batch: bool = False) -> serializers.Field:
    """A serializer field that the schema shows as ``spec.schema`` (validation itself is
    ``validation.clean_contact``, never this field)."""
    field_class = extend_schema_field(spec.schema)(
        type(f"{spec.name.title().replace('_', '')}Field", (serializers.JSONField,), {})
    )
    required = spec.required and not (batch and spec.per_batch)
    return field_class(required=required, help_text=spec.description or None)


def _request_serializer(
    name: str, fields: tuple[RequestField, ...], *, batch: bool = False, doc: str = ""
) -> type[serializers.Serializer]:
    attrs: dict[str, object] = {spec.name: _schema_field(spec, batch=batch) for spec in fields}
    attrs["__doc__"] = doc
    return type(name, (serializers.Serializer,), attrs)


# The request components, from the one description of a contact (validation.CONTACT_REQUEST).
EnrichRequestSerializer = _request_serializer(
    "EnrichRequestSerializer", (*CONTACT_REQUEST, LIST_ID)
)
EnrichSyncRequestSerializer = _request_serializer(
    "EnrichSyncRequestSerializer", (*CONTACT_REQUEST, SYNC_TIMEOUT, LIST_ID)
)
BulkContactSerializer = _request_serializer(
    "BulkContactSerializer",
    CONTACT_REQUEST,
    batch=True,
    doc="One contact of a batch; the batch-level fields may be overridden per contact.",
)


class BulkRequestSerializer(
    _request_serializer(
        "BulkFieldsSerializer",
        (*(f for f in CONTACT_REQUEST if f.per_batch), LIST_ID),
        batch=True,
    )
):
    contacts = BulkContactSerializer(many=True, help_text="At most the plan's bulk max")


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


# --- Lists (schema only: validation is services.lists.list_fields_clean) ----------------------

_COLOR_HELP = "A named colour, as prospiq's lists have: " + ", ".join(List.COLORS)


class ListCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=List.NAME_MAX_LENGTH)
    description = serializers.CharField(
        max_length=List.DESCRIPTION_MAX_LENGTH, required=False, allow_null=True
    )
    color = serializers.ChoiceField(
        List.COLORS, required=False, help_text=f"{_COLOR_HELP}; default {List.DEFAULT_COLOR}"
    )
    is_pinned = serializers.BooleanField(required=False, help_text="Pinned lists come first")


class ListUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=List.NAME_MAX_LENGTH, required=False)
    description = serializers.CharField(
        max_length=List.DESCRIPTION_MAX_LENGTH, required=False, allow_null=True
    )
    color = serializers.ChoiceField(List.COLORS, required=False, help_text=_COLOR_HELP)
    is_pinned = serializers.BooleanField(required=False)


class ListSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    description = serializers.CharField(allow_null=True)
    color = serializers.ChoiceField(List.COLORS)
    is_pinned = serializers.BooleanField()
    contact_count = serializers.IntegerField()
    sandbox = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField(
        help_text="Also moved when contacts are added or removed"
    )


class ListPageSerializer(serializers.Serializer):
    data = ListSerializer(many=True)
    pagination = PaginationSerializer()


class ListContactAddSerializer(serializers.Serializer):
    enrichment_id = serializers.UUIDField(
        help_text="A contact of this account and mode (prospiq's search_id)"
    )


class ListEntrySerializer(serializers.Serializer):
    list_id = serializers.UUIDField()
    enrichment_id = serializers.UUIDField()
    added_at = serializers.DateTimeField()
