"""Building blocks every Sluice ModelAdmin shares: id search, read-only admins, shown-once pages."""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.contrib import admin
from django.db.models import Model, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html


class UUIDSearchMixin:
    """A search term that is a UUID matches these fields exactly (an indexed lookup) and
    nothing else; other terms go through ``search_fields`` as usual."""

    uuid_search_fields: tuple[str, ...] = ("pk",)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        try:
            value = uuid.UUID(search_term.strip())
        except ValueError:
            return super().get_search_results(request, queryset, search_term)  # type: ignore[misc]
        match = Q()
        for field in self.uuid_search_fields:
            match |= Q(**{field: value})
        return queryset.filter(match), False


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written by the product (attempts, ledger, events): staff look, nobody edits."""

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


def pretty_json(value: Any) -> str:
    if value is None:
        return "-"
    return format_html(
        '<pre style="margin:0;white-space:pre-wrap">{}</pre>',
        json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True),
    )


def admin_link(obj: Model | None, text: Any = None, *, pk: Any = None, model: Any = None) -> str:
    """A link to a row's admin change page, from the row or from its model and primary key."""
    if obj is None and pk is None:
        return "-"
    meta = (model or obj)._meta
    url = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[pk or obj.pk])
    return format_html('<a href="{}">{}</a>', url, obj if text is None else text)


def short_id(value: Any) -> str:
    return format_html('<code title="{}">{}…</code>', value, str(value)[:8])


def secret_shown_once(
    request: HttpRequest,
    *,
    model_admin: admin.ModelAdmin,
    obj: Model,
    title: str,
    secrets: list[tuple[str, str]],
    next_url: str,
) -> HttpResponse:
    """Show freshly minted secrets on one page that is never cached; they are not stored."""
    response = TemplateResponse(
        request,
        "admin/ops/secret_once.html",
        {
            **model_admin.admin_site.each_context(request),
            "opts": model_admin.model._meta,
            "title": title,
            "object": obj,
            "secrets": secrets,
            "next_url": next_url,
        },
    )
    response["Cache-Control"] = "no-store"
    return response
