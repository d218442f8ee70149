"""Request and response shapes for the OpenAPI schema (validation: validation.py)."""

from __future__ import annotations

from rest_framework import serializers

from apps.core.api import PaginationSerializer


class _Options(serializers.Serializer):
    enrichment_type = serializers.JSONField(
        help_text="For every row: 'email', 'phone', 'personal_email', or a list of them"
    )
    phone_country_codes = serializers.JSONField(
        required=False, help_text="ISO 3166-1 alpha-2 codes; default: the account's"
    )
    webhook_url = serializers.URLField(
        required=False, help_text="Receives every contact's contact.enriched and import.completed"
    )
    mapping = serializers.JSONField(
        required=False,
        help_text="CSV column -> first_name, last_name, company_name, domain, linkedin_url "
        "(null: keep it in custom); unnamed columns are matched by their common spellings",
    )
    name = serializers.CharField(required=False, max_length=200)
    list_id = serializers.UUIDField(required=False, help_text="Every contact joins this list")


class ImportUploadSerializer(_Options):
    """multipart/form-data: the file and the options (lists as JSON or comma-separated)."""

    file = serializers.FileField(help_text="CSV: UTF-8 (BOM or not) or Latin-1; , ; or tab")


class ImportJsonSerializer(_Options):
    file_name = serializers.CharField(max_length=255)
    file_data = serializers.CharField(help_text="The CSV file, base64")


class ImportSerializer(serializers.Serializer):
    import_id = serializers.UUIDField()
    object = serializers.ChoiceField(["import"])
    status = serializers.ChoiceField(["processing", "completed", "failed"])
    stage = serializers.ChoiceField(["validating", "enqueueing", "enriching", "done"])
    name = serializers.CharField(allow_null=True)
    file_name = serializers.CharField()
    total_rows = serializers.IntegerField(help_text="Data rows in the file (blank lines aside)")
    valid_rows = serializers.IntegerField()
    imported_rows = serializers.IntegerField(help_text="Contacts created so far")
    error_count = serializers.IntegerField(help_text="Rows skipped as invalid")
    finished = serializers.IntegerField()
    verified = serializers.IntegerField()
    not_found = serializers.IntegerField()
    no_credits = serializers.IntegerField()
    failed = serializers.IntegerField()
    credits_used = serializers.IntegerField()
    bulk_id = serializers.UUIDField(allow_null=True)
    list_id = serializers.UUIDField(allow_null=True)
    enrichment_type = serializers.ListField(child=serializers.CharField())
    columns = serializers.ListField(child=serializers.CharField())
    mapping = serializers.DictField(child=serializers.CharField())
    error_message = serializers.CharField(allow_null=True)
    sandbox = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    completed_at = serializers.DateTimeField(allow_null=True)


class ImportListSerializer(serializers.Serializer):
    data = ImportSerializer(many=True)
    pagination = PaginationSerializer()


class RowErrorSerializer(serializers.Serializer):
    row = serializers.IntegerField(help_text="Record number in the file; the header is 1")
    field = serializers.CharField(allow_null=True)
    column = serializers.CharField(allow_null=True)
    message = serializers.CharField()


class RowErrorListSerializer(serializers.Serializer):
    data = RowErrorSerializer(many=True)
    pagination = PaginationSerializer()


class ExportRequestSerializer(serializers.Serializer):
    """Exactly one of the four."""

    import_id = serializers.UUIDField(required=False)
    bulk_id = serializers.UUIDField(required=False)
    list_id = serializers.UUIDField(required=False)
    filters = serializers.DictField(
        child=serializers.CharField(),
        required=False,
        help_text="GET /contacts filters: status, result_status, bulk_id, updated_after",
    )


class ExportSerializer(serializers.Serializer):
    export_id = serializers.UUIDField()
    object = serializers.ChoiceField(["export"])
    status = serializers.ChoiceField(["processing", "completed", "failed", "expired"])
    source = serializers.ChoiceField(["import", "bulk", "list", "filters"])
    source_id = serializers.UUIDField(allow_null=True)
    filters = serializers.DictField(child=serializers.CharField(), allow_null=True)
    row_count = serializers.IntegerField()
    download_ready = serializers.BooleanField()
    download_url = serializers.CharField(allow_null=True)
    error_message = serializers.CharField(allow_null=True)
    sandbox = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    completed_at = serializers.DateTimeField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)


class ExportListSerializer(serializers.Serializer):
    data = ExportSerializer(many=True)
    pagination = PaginationSerializer()
