"""Admin for webhook endpoints (streak, enable/disable), deliveries (attempts, retry) and events."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from apps.core.errors import SluiceError
from apps.webhooks.models import (
    RATE_LIMIT_MAX,
    RATE_LIMIT_MIN,
    Delivery,
    DeliveryAttempt,
    Endpoint,
    Event,
)
from apps.webhooks.services import (
    delivery_retry,
    endpoint_disable,
    endpoint_enable,
    endpoint_update,
)

from .base import (
    ActionsOnlyMixin,
    FixedValuesFilter,
    ReadOnlyAdmin,
    ReadOnlyInline,
    SluiceModelAdmin,
    StatusClassFilter,
    UUIDSearchMixin,
    admin_link,
    error_text,
    form_page,
    pretty_json,
    short_id,
)


def _short_url(url: str, limit: int = 60) -> str:
    return url if len(url) <= limit else url[: limit - 1] + "…"


def _payload(body: str) -> str:
    try:
        return pretty_json(json.loads(body))
    except ValueError:
        return body


class RateLimitForm(forms.Form):
    rate_limit = forms.IntegerField(
        required=False,
        min_value=RATE_LIMIT_MIN,
        max_value=RATE_LIMIT_MAX,
        label="Rate limit",
        help_text=f"Deliveries per second, {RATE_LIMIT_MIN} to {RATE_LIMIT_MAX}; empty: no limit.",
    )


@admin.register(Endpoint)
class EndpointAdmin(ActionsOnlyMixin, UUIDSearchMixin, SluiceModelAdmin):
    uuid_search_fields = ("pk", "account_id")
    list_display = (
        "endpoint_url",
        "account",
        "event_list",
        "rate_limit",
        "active",
        "consecutive_failures",
        "last_success_at",
        "last_failure_at",
        "disabled_reason",
    )
    list_display_links = ("endpoint_url",)
    list_select_related = ("account",)
    list_filter = (
        "active",
        "sandbox",
        ("disabled_at", admin.EmptyFieldListFilter),
        "created_at",
    )
    search_fields = ("url", "description", "account__name", "disabled_reason")
    search_help_text = "Endpoint URL, description, account name, endpoint or account id."
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    # Secrets (current and previous) are never shown; the URL is changed through the API so
    # that it passes the SSRF rules. The rate limit is set by an action (endpoint_update).
    fields = (
        "id",
        "account_link",
        "sandbox",
        "url",
        "events",
        "filter_rules",
        "rate_limit",
        "rate_limit_link",
        "description",
        "active",
        "disabled_at",
        "disabled_reason",
        "consecutive_failures",
        "failing_since",
        "last_success_at",
        "last_failure_at",
        "deliveries",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields
    actions = ("enable", "enable_and_replay", "disable", "set_rate_limit")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Endpoint | None = None) -> bool:
        return False

    def get_fields(self, request: HttpRequest, obj: Endpoint | None = None) -> Any:
        # A read-only (support) user would only get a 403 from the rate-limit page.
        fields = super().get_fields(request, obj)
        if self.has_change_permission(request, obj):
            return fields
        return [f for f in fields if f != "rate_limit_link"]

    @admin.display(description="filter")
    def filter_rules(self, obj: Endpoint) -> str:
        return pretty_json(obj.filter) if obj.filter else "- (every event of its types)"

    @admin.display(description="set rate limit")
    def rate_limit_link(self, obj: Endpoint) -> str:
        url = reverse("admin:webhooks_endpoint_rate_limit", args=[obj.pk])
        return format_html('<a href="{}">Set or remove the rate limit…</a>', url)

    def get_urls(self) -> list[URLPattern]:
        rate_limit = path(
            "<path:object_id>/rate-limit/",
            self.admin_site.admin_view(self.rate_limit_view),
            name="webhooks_endpoint_rate_limit",
        )
        return [rate_limit, *super().get_urls()]

    def rate_limit_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The rate-limit action for one endpoint, reached from its page."""
        endpoint = self.get_object(request, object_id)
        if endpoint is None:
            raise Http404
        if not self.has_change_permission(request, endpoint):
            raise PermissionDenied
        response = self.set_rate_limit(request, Endpoint.objects.filter(pk=endpoint.pk))
        return response or redirect("admin:webhooks_endpoint_change", endpoint.pk)

    @admin.action(description="Set the rate limit of selected endpoints…", permissions=["change"])
    def set_rate_limit(
        self, request: HttpRequest, queryset: QuerySet[Endpoint]
    ) -> HttpResponse | None:
        form = RateLimitForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            rate_limit = form.cleaned_data["rate_limit"]
            done = 0
            for endpoint in queryset:
                try:
                    # Writes that one column: a streak recorded meanwhile survives.
                    endpoint_update(endpoint=endpoint, rate_limit=rate_limit)
                except SluiceError as exc:
                    self.message_user(
                        request, f"{endpoint.url}: {error_text(exc)}", level=messages.ERROR
                    )
                    continue
                done += 1
                self.log_change(request, endpoint, f"Rate limit set to {rate_limit or 'none'}")
            shown = f"{rate_limit} deliveries per second" if rate_limit else "no limit"
            self.message_user(
                request, f"{done} endpoint(s) now have {shown}.", level=messages.SUCCESS
            )
            return None
        return form_page(
            request,
            self,
            title="Set the rate limit",
            intro="The most deliveries per second the sender makes to each endpoint.",
            objects=[f"{_short_url(e.url)}: {e.rate_limit or 'no limit'}" for e in queryset],
            form=form,
            hidden=[("action", "set_rate_limit"), ("apply", "1")]
            + [(ACTION_CHECKBOX_NAME, e.pk) for e in queryset],
            submit_name="_set_rate_limit",
            submit_label="Set rate limit",
        )

    @admin.display(description="url", ordering="url")
    def endpoint_url(self, obj: Endpoint) -> str:
        return _short_url(obj.url)

    @admin.display(description="events")
    def event_list(self, obj: Endpoint) -> str:
        return ", ".join(obj.events) or "all"

    @admin.display(description="account")
    def account_link(self, obj: Endpoint) -> str:
        return admin_link(obj.account)

    @admin.display(description="deliveries")
    def deliveries(self, obj: Endpoint) -> str:
        url = reverse("admin:webhooks_delivery_changelist") + f"?endpoint__id__exact={obj.pk}"
        return format_html('<a href="{}">Deliveries to this endpoint</a>', url)

    def _enable(self, request: HttpRequest, queryset: QuerySet[Endpoint], *, replay: bool) -> None:
        enabled = replayed = 0
        for endpoint in queryset.filter(active=False):
            try:
                replayed += endpoint_enable(endpoint=endpoint, replay=replay)
            except SluiceError as exc:
                self.message_user(request, f"{endpoint.url}: {exc.message}", level=messages.ERROR)
                continue
            enabled += 1
            self.log_change(request, endpoint, "Enabled" + (" with replay" if replay else ""))
        text = f"Enabled {enabled} endpoint(s)."
        if replay:
            text += f" {replayed} skipped deliveries queued again."
        self.message_user(request, text, level=messages.SUCCESS if enabled else messages.WARNING)

    @admin.action(description="Enable selected endpoints", permissions=["change"])
    def enable(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> None:
        self._enable(request, queryset, replay=False)

    @admin.action(
        description="Enable selected endpoints and replay skipped deliveries",
        permissions=["change"],
    )
    def enable_and_replay(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> None:
        self._enable(request, queryset, replay=True)

    @admin.action(description="Disable selected endpoints", permissions=["change"])
    def disable(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> None:
        disabled = 0
        for endpoint in queryset.filter(active=True):
            if endpoint_disable(
                endpoint=endpoint, reason=f"Disabled by an operator ({request.user})."
            ):
                disabled += 1
                self.log_change(request, endpoint, "Disabled")
        self.message_user(request, f"Disabled {disabled} endpoint(s).", level=messages.SUCCESS)


class DeliveryAttemptInline(ReadOnlyInline):
    model = DeliveryAttempt
    fields = ("at", "succeeded", "status_code", "duration_ms", "error", "response_body")
    readonly_fields = fields
    ordering = ("at", "id")


class EventTypeFilter(FixedValuesFilter):
    title = "event type"
    parameter_name = "event_type"
    field_name = "event__type"
    values = tuple(Event.TYPES)


@admin.register(Delivery)
class DeliveryAdmin(ActionsOnlyMixin, UUIDSearchMixin, SluiceModelAdmin):
    uuid_search_fields = ("pk", "account_id", "endpoint_id")
    # Big tables: skip the second COUNT(*) over the whole table when filtering.
    show_full_result_count = False
    list_display = (
        "delivery_id",
        "event_type",
        "target",
        "account",
        "status",
        "attempt_count",
        "last_attempt_at",
        "next_attempt_at",
        "created_at",
    )
    list_display_links = ("delivery_id",)
    list_select_related = ("account", "event", "endpoint")
    list_filter = ("status", EventTypeFilter, "created_at")
    search_fields = ("=event__id", "endpoint__url", "target_url", "account__name")
    search_help_text = "Delivery, endpoint or account id; event id (evt_…); target URL; account."
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    fields = (
        "id",
        "account_link",
        "event_link",
        "endpoint_link",
        "target_url",
        "status",
        "attempt_count",
        "round_attempts",
        "next_attempt_at",
        "last_attempt_at",
        "published_at",
        "claimed_until",
        "created_at",
        "updated_at",
        "payload",
    )
    readonly_fields = fields
    inlines = (DeliveryAttemptInline,)
    actions = ("retry",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Delivery]:
        # The list needs the event's type, not its body (the signed payload), nor any secret.
        return (
            super()
            .get_queryset(request)
            .defer("event__body", "endpoint__secret", "endpoint__previous_secret")
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Delivery | None = None) -> bool:
        return False

    @admin.display(description="delivery id", ordering="id")
    def delivery_id(self, obj: Delivery) -> str:
        return short_id(obj.id)

    @admin.display(description="event", ordering="event__type")
    def event_type(self, obj: Delivery) -> str:
        return obj.event.type

    @admin.display(description="target")
    def target(self, obj: Delivery) -> str:
        return _short_url(obj.endpoint.url if obj.endpoint_id else obj.target_url)

    @admin.display(description="account")
    def account_link(self, obj: Delivery) -> str:
        return admin_link(obj.account)

    @admin.display(description="event")
    def event_link(self, obj: Delivery) -> str:
        return admin_link(obj.event)

    @admin.display(description="endpoint")
    def endpoint_link(self, obj: Delivery) -> str:
        return admin_link(obj.endpoint) if obj.endpoint_id else "-"

    @admin.display(description="payload (signed body)")
    def payload(self, obj: Delivery) -> str:
        return _payload(Event.objects.values_list("body", flat=True).get(pk=obj.event_id))

    @admin.action(description="Retry selected deliveries now", permissions=["change"])
    def retry(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        retried = 0
        for delivery in queryset.select_related("endpoint"):
            try:
                delivery_retry(delivery=delivery)
            except SluiceError as exc:
                self.message_user(
                    request, f"Delivery {delivery.pk}: {exc.message}", level=messages.ERROR
                )
                continue
            retried += 1
            self.log_change(request, delivery, "Retried")
        self.message_user(
            request,
            f"Queued {retried} deliveries again.",
            level=messages.SUCCESS if retried else messages.WARNING,
        )


@admin.register(Event)
class EventAdmin(UUIDSearchMixin, ReadOnlyAdmin):
    uuid_search_fields = ("account_id",)
    # Big tables: skip the second COUNT(*) over the whole table when filtering.
    show_full_result_count = False
    list_display = ("id", "type", "account", "test", "delivery_count", "created_at")
    list_select_related = ("account",)
    list_filter = ("type", "sandbox", "test", "created_at")
    search_fields = ("=id", "account__name")
    search_help_text = "Event id (evt_…), account name or account id."
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    fields = (
        "id",
        "type",
        "account_link",
        "sandbox",
        "test",
        "created_at",
        "deliveries",
        "payload",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Event]:
        return super().get_queryset(request).annotate(_deliveries=Count("deliveries"))

    @admin.display(description="deliveries", ordering="_deliveries")
    def delivery_count(self, obj: Event) -> int:
        return obj._deliveries

    @admin.display(description="account")
    def account_link(self, obj: Event) -> str:
        return admin_link(obj.account)

    @admin.display(description="deliveries")
    def deliveries(self, obj: Event) -> str:
        url = reverse("admin:webhooks_delivery_changelist") + f"?event__id__exact={obj.pk}"
        return format_html('<a href="{}">{} deliveries</a>', url, obj._deliveries)

    @admin.display(description="payload")
    def payload(self, obj: Event) -> str:
        return _payload(obj.body)


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(UUIDSearchMixin, ReadOnlyAdmin):
    uuid_search_fields = ("delivery_id", "delivery__endpoint_id", "delivery__account_id")
    # Big tables: skip the second COUNT(*) over the whole table when filtering.
    show_full_result_count = False
    list_display = (
        "at",
        "delivery_link",
        "target",
        "succeeded",
        "status_code",
        "duration_ms",
        "error",
    )
    list_select_related = ("delivery__endpoint",)
    list_filter = ("succeeded", StatusClassFilter, "at")
    search_fields = ("delivery__endpoint__url", "delivery__target_url", "error")
    search_help_text = "Delivery, endpoint or account id; endpoint or target URL; error text."
    date_hierarchy = "at"
    ordering = ("-at", "-id")
    fields = (
        "delivery_link",
        "at",
        "succeeded",
        "status_code",
        "duration_ms",
        "error",
        "response_body",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[DeliveryAttempt]:
        return (
            super()
            .get_queryset(request)
            .defer("delivery__endpoint__secret", "delivery__endpoint__previous_secret")
        )

    @admin.display(description="delivery")
    def delivery_link(self, obj: DeliveryAttempt) -> str:
        return admin_link(obj.delivery, short_id(obj.delivery_id))

    @admin.display(description="target")
    def target(self, obj: DeliveryAttempt) -> str:
        delivery = obj.delivery
        return _short_url(delivery.endpoint.url if delivery.endpoint_id else delivery.target_url)
