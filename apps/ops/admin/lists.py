"""Admin for contact lists (enrichment's ``List``) and their entries."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Field
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from apps.enrichment.models import List, ListEntry

from .base import (
    ReadOnlyAdmin,
    SaveChangedFieldsMixin,
    SluiceModelAdmin,
    UUIDSearchMixin,
    admin_link,
    short_id,
)

# How each named colour looks in the list (Tailwind's 500 shades, the palette the names are
# from); display only.
SWATCHES = {
    "gray": "#6b7280",
    "red": "#ef4444",
    "orange": "#f97316",
    "amber": "#f59e0b",
    "yellow": "#eab308",
    "lime": "#84cc16",
    "green": "#22c55e",
    "emerald": "#10b981",
    "teal": "#14b8a6",
    "cyan": "#06b6d4",
    "sky": "#0ea5e9",
    "blue": "#3b82f6",
    "indigo": "#6366f1",
    "violet": "#8b5cf6",
    "purple": "#a855f7",
    "fuchsia": "#d946ef",
    "pink": "#ec4899",
    "rose": "#f43f5e",
}


@admin.register(List)
class ListAdmin(SaveChangedFieldsMixin, UUIDSearchMixin, SluiceModelAdmin):
    """Clients make lists through the API; staff may rename, recolour or pin one for them.
    No add (a list belongs to an account and a mode) and no delete (the confirmation page
    would load every entry; the client deletes through ``DELETE /lists/{id}``)."""

    uuid_search_fields = ("pk", "account_id")
    list_display = (
        "list_id",
        "name",
        "account",
        "sandbox",
        "color_swatch",
        "is_pinned",
        "contact_count",
        "updated_at",
    )
    list_display_links = ("list_id", "name")
    list_select_related = ("account",)
    list_filter = ("sandbox", "is_pinned", "color", "account", "updated_at")
    search_fields = ("name", "description", "account__name")
    search_help_text = "List or account id; list name, description or account name."
    date_hierarchy = "created_at"
    ordering = ("-is_pinned", "-updated_at")
    fields = (
        "id",
        "account_link",
        "sandbox",
        "name",
        "description",
        "color",
        "is_pinned",
        "contact_count",
        "entries_link",
        "created_at",
        "updated_at",
    )
    readonly_fields = (
        "id",
        "account_link",
        "sandbox",
        "contact_count",
        "entries_link",
        "created_at",
        "updated_at",
    )

    def formfield_for_dbfield(self, db_field: Field, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "description":  # up to 500 characters: a box, not a line
            kwargs["widget"] = forms.Textarea(attrs={"rows": 3, "cols": 60})
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: List | None = None) -> bool:
        return False

    @admin.display(description="list id", ordering="id")
    def list_id(self, obj: List) -> str:
        return short_id(obj.id)

    @admin.display(description="color", ordering="color")
    def color_swatch(self, obj: List) -> str:
        return format_html(
            '<span style="display:inline-block;width:.8em;height:.8em;border-radius:50%;'
            'background:{};vertical-align:middle"></span> {}',
            SWATCHES.get(obj.color, "#999"),
            obj.color,
        )

    @admin.display(description="account")
    def account_link(self, obj: List) -> str:
        return admin_link(obj.account)

    @admin.display(description="contacts")
    def entries_link(self, obj: List) -> str:
        url = reverse("admin:enrichment_listentry_changelist") + f"?list_id__exact={obj.pk}"
        return format_html('<a href="{}">The {} contacts of this list</a>', url, obj.contact_count)


@admin.register(ListEntry)
class ListEntryAdmin(UUIDSearchMixin, ReadOnlyAdmin):
    """Who is in which list: written by the API, the enrich and bulk ``list_id`` and the
    imports, through ``contacts_add_to_list``, which keeps the lists' counts."""

    uuid_search_fields = ("list_id", "contact_id", "list__account_id")
    show_full_result_count = False
    list_display = ("created_at", "list_link", "contact_link", "contact_status", "email", "account")
    list_select_related = ("list__account", "contact")
    list_filter = ("list__sandbox", "created_at")
    search_fields = ("list__name", "contact__first_name", "contact__last_name")
    search_help_text = "List, enrichment or account id; list name or contact name."
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-id")
    fields = ("list_link", "contact_link", "created_at")
    readonly_fields = fields

    @admin.display(description="list", ordering="list__name")
    def list_link(self, obj: ListEntry) -> str:
        return admin_link(obj.list)

    @admin.display(description="contact", ordering="contact__last_name")
    def contact_link(self, obj: ListEntry) -> str:
        return admin_link(obj.contact, f"{obj.contact.first_name} {obj.contact.last_name}")

    @admin.display(description="status")
    def contact_status(self, obj: ListEntry) -> str:
        return obj.contact.result_status or obj.contact.status

    @admin.display(description="email found")
    def email(self, obj: ListEntry) -> str:
        return (obj.contact.result or {}).get("email") or "-"

    @admin.display(description="account")
    def account(self, obj: ListEntry) -> str:
        return admin_link(obj.list.account)
