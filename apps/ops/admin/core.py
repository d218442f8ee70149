"""Admin for stored idempotent responses: look up a key; delete one to release it early."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.core.models import IdempotencyRecord

from .base import (
    FixedValuesFilter,
    ReadOnlyAdmin,
    StatusClassFilter,
    UUIDSearchMixin,
    admin_link,
    pretty_json,
)

# Stored answers can hold secrets shown once to the client (a new endpoint's signing
# secret, a rotated one): staff see that one was returned, never its value.
_SECRET_HINTS = ("secret", "api_key", "password", "token")


def _redacted(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: "[redacted]" if any(h in k.lower() for h in _SECRET_HINTS) else _redacted(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


class MethodFilter(FixedValuesFilter):
    title = "method"
    parameter_name = "method"
    values = ("POST", "PUT", "PATCH", "DELETE")


class ResponseStatusFilter(StatusClassFilter):
    parameter_name = "response_status"
    field_name = "response_status"


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(UUIDSearchMixin, ReadOnlyAdmin):
    uuid_search_fields = ("account_id",)
    list_display = (
        "key",
        "account",
        "sandbox",
        "method",
        "path",
        "state",
        "response_status",
        "created_at",
        "expires_at",
    )
    list_select_related = ("account",)
    list_filter = ("state", "sandbox", MethodFilter, ResponseStatusFilter, "created_at")
    search_fields = ("key", "path", "account__name")
    search_help_text = "Idempotency key, path, account name or account id."
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    fields = (
        "key",
        "account_link",
        "sandbox",
        "method",
        "path",
        "fingerprint",
        "state",
        "response_status",
        "response_headers",
        "response",
        "created_at",
        "locked_at",
        "expires_at",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest):
        # The stored response body is only read on the detail page.
        return super().get_queryset(request).defer("response_body")

    def has_delete_permission(
        self, request: HttpRequest, obj: IdempotencyRecord | None = None
    ) -> bool:
        # Deleting a record lets the client reuse its key at once (e.g. a stuck in-flight lock).
        return super(ReadOnlyAdmin, self).has_delete_permission(request, obj)

    @admin.display(description="account")
    def account_link(self, obj: IdempotencyRecord) -> str:
        return admin_link(obj.account)

    @admin.display(description="response body")
    def response(self, obj: IdempotencyRecord) -> str:
        body = IdempotencyRecord.objects.values_list("response_body", flat=True).get(pk=obj.pk)
        if not body:
            return "-"
        try:
            return pretty_json(_redacted(json.loads(bytes(body))))
        except ValueError:
            return "(not JSON; not shown)"
