"""Admin for CSV imports (with their row errors) and exports: read-only, as the product
writes them."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from apps.enrichment.models import BulkJob
from apps.imports.models import Export, Import, ImportRowError

from .base import ReadOnlyAdmin, UUIDSearchMixin, admin_link, pretty_json, short_id


@admin.register(Import)
class ImportAdmin(UUIDSearchMixin, ReadOnlyAdmin):
    uuid_search_fields = ("pk", "account_id", "bulk_id")
    # Narrow enough for the results box beside the filters (tests/ops/test_browser.py); the
    # account, the mode and the counters one by one are on the change page.
    list_display = ("import_id", "file_short", "state", "rows", "created_at")
    list_display_links = ("import_id",)
    list_filter = ("status", "stage", "sandbox", "created_at")
    search_fields = ("file_name", "name", "account__name")
    search_help_text = "Import, account or bulk id; file name, import name or account name."
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    fields = (
        "id",
        "account_link",
        "api_key",
        "sandbox",
        "status",
        "stage",
        "error_message",
        "name",
        "file_name",
        "file_size",
        "encoding",
        "delimiter",
        "columns_shown",
        "mapping_shown",
        "enrichment_type",
        "phone_country_codes",
        "webhook_url",
        "list_id",
        "bulk_link",
        "total_rows",
        "valid_rows",
        "imported_rows",
        "next_row",
        "errors_link",
        "lease_owner",
        "lease_expires_at",
        "run_count",
        "created_at",
        "updated_at",
        "completed_at",
    )
    readonly_fields = fields

    @admin.display(description="import id", ordering="id")
    def import_id(self, obj: Import) -> str:
        return short_id(obj.id)

    @admin.display(description="file", ordering="file_name")
    def file_short(self, obj: Import) -> str:
        name = obj.file_name
        return format_html(
            '<span title="{}">{}</span>', name, name if len(name) <= 28 else name[:27] + "…"
        )

    @admin.display(description="status", ordering="status")
    def state(self, obj: Import) -> str:
        return obj.status if obj.stage == Import.DONE else f"{obj.status} ({obj.stage})"

    @admin.display(description="rows")
    def rows(self, obj: Import) -> str:
        return f"{obj.imported_rows}/{obj.total_rows}, {obj.error_count} bad"

    @admin.display(description="account")
    def account_link(self, obj: Import) -> str:
        return admin_link(obj.account)

    @admin.display(description="bulk")
    def bulk_link(self, obj: Import) -> str:
        return admin_link(None, short_id(obj.bulk_id), pk=obj.bulk_id, model=BulkJob)

    @admin.display(description="columns")
    def columns_shown(self, obj: Import) -> str:
        return pretty_json(obj.columns)

    @admin.display(description="mapping")
    def mapping_shown(self, obj: Import) -> str:
        return pretty_json(obj.mapping)

    @admin.display(description="row errors")
    def errors_link(self, obj: Import) -> str:
        url = (
            reverse("admin:imports_importrowerror_changelist") + f"?import_job__id__exact={obj.pk}"
        )
        return format_html('<a href="{}">{} rows skipped</a>', url, obj.error_count)


@admin.register(ImportRowError)
class ImportRowErrorAdmin(UUIDSearchMixin, ReadOnlyAdmin):
    uuid_search_fields = ("import_job_id",)
    show_full_result_count = False
    list_display = ("import_link", "row", "field", "column", "message")
    list_select_related = ("import_job",)
    search_fields = ("message", "column")
    search_help_text = "Import id, or the message's or column's text."
    ordering = ("-id",)
    fields = ("import_link", "row", "field", "column", "message")
    readonly_fields = fields

    @admin.display(description="import")
    def import_link(self, obj: ImportRowError) -> str:
        return admin_link(obj.import_job, obj.import_job.file_name)


@admin.register(Export)
class ExportAdmin(UUIDSearchMixin, ReadOnlyAdmin):
    uuid_search_fields = ("pk", "account_id", "source_id")
    list_display = ("export_id", "source", "status", "row_count", "created_at", "expires_at")
    list_display_links = ("export_id",)
    list_filter = ("status", "source", "sandbox", "created_at")
    search_fields = ("account__name",)
    search_help_text = "Export, account or source id; account name."
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    fields = (
        "id",
        "account_link",
        "api_key",
        "sandbox",
        "status",
        "error_message",
        "source",
        "source_id",
        "filters_shown",
        "row_count",
        "file_key",
        "lease_owner",
        "lease_expires_at",
        "run_count",
        "created_at",
        "updated_at",
        "completed_at",
        "expires_at",
    )
    readonly_fields = fields

    @admin.display(description="export id", ordering="id")
    def export_id(self, obj: Export) -> str:
        return short_id(obj.id)

    @admin.display(description="account")
    def account_link(self, obj: Export) -> str:
        return admin_link(obj.account)

    @admin.display(description="filters")
    def filters_shown(self, obj: Export) -> str:
        return pretty_json(obj.filters if obj.source == "filters" else None)
