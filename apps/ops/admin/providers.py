"""Admin for provider configuration: on/off, timeouts, order per kind, recent hit rate and p95."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from apps.ops.selectors import provider_stat
from apps.providers import breaker
from apps.providers.models import ProviderConfig

from .base import SluiceModelAdmin

STATS_WINDOW = timedelta(hours=24)
# A zero or negative timeout makes requests raise ValueError (not a provider error) in the
# worker; a huge one lets one call outlive the task's time limit.
TIMEOUT_MIN_SECONDS = 0.1
TIMEOUT_MAX_SECONDS = 60.0


def _timeout_field(label: str) -> forms.FloatField:
    return forms.FloatField(
        label=label,
        required=False,
        min_value=TIMEOUT_MIN_SECONDS,
        max_value=TIMEOUT_MAX_SECONDS,
        help_text=f"Seconds, {TIMEOUT_MIN_SECONDS:g} to {TIMEOUT_MAX_SECONDS:g}; empty = settings.",
    )


class ProviderConfigForm(forms.ModelForm):
    name = forms.ChoiceField(choices=())
    connect_timeout = _timeout_field("Connect timeout")
    read_timeout = _timeout_field("Read timeout")

    class Meta:
        model = ProviderConfig
        fields = (
            "name",
            "enabled",
            "notes",
            "priority_email",
            "priority_phone",
            "priority_personal_email",
            "connect_timeout",
            "read_timeout",
        )

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        # Only providers that exist in settings.PROVIDERS can be configured.
        self.fields["name"].choices = [(n, n) for n in sorted(settings.PROVIDERS)]


_BREAKER_STATES = {
    breaker.OPEN: "OPEN: calls are skipped until it cools down",
    breaker.HALF_OPEN: "HALF-OPEN: the next call is a probe",
    breaker.CLOSED: "closed",
}


@admin.register(ProviderConfig)
class ProviderConfigAdmin(SluiceModelAdmin):
    form = ProviderConfigForm
    list_display = (
        "name",
        "enabled",
        "priority_email",
        "priority_phone",
        "priority_personal_email",
        "timeouts",
        "calls_24h",
        "hit_rate_24h",
        "p95_24h",
        "updated_at",
    )
    list_editable = ("enabled", "priority_email", "priority_phone", "priority_personal_email")
    list_filter = ("enabled",)
    search_fields = ("name", "notes")
    readonly_fields = ("circuit", "calls_24h", "hit_rate_24h", "p95_24h", "updated_at")
    actions = ("close_circuit",)
    fieldsets = (
        (None, {"fields": ("name", "enabled", "circuit", "notes")}),
        (
            "Waterfall order (lower first; empty = the PROVIDER_ORDER position)",
            {"fields": ("priority_email", "priority_phone", "priority_personal_email")},
        ),
        ("Timeouts (seconds; empty = settings)", {"fields": ("connect_timeout", "read_timeout")}),
        ("Last 24 hours", {"fields": ("calls_24h", "hit_rate_24h", "p95_24h", "updated_at")}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[ProviderConfig]:
        # Stats as subqueries of the one changelist query, whatever the number of providers.
        since = timezone.now() - STATS_WINDOW
        return (
            super()
            .get_queryset(request)
            .annotate(
                _calls=provider_stat("calls", since=since),
                _hits=provider_stat("hits", since=since),
                _p95=provider_stat("p95_ms", since=since),
            )
        )

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> Any:
        # A provider without a row runs on settings and is missing from this list: say so,
        # or ops looking for its hit rate or its off switch would not know it exists.
        if request.method == "GET":
            configured = set(ProviderConfig.objects.values_list("name", flat=True))
            missing = sorted(set(settings.PROVIDERS) - configured)
            if missing:
                self.message_user(
                    request,
                    f"Running on settings (no configuration row yet): {', '.join(missing)}. "
                    "Add one to switch it off, reorder it or change its timeouts.",
                    level=messages.INFO,
                )
        return super().changelist_view(request, extra_context)

    @admin.display(description="circuit breaker")
    def circuit(self, obj: ProviderConfig) -> str:
        if not obj.pk:
            return "-"
        return _BREAKER_STATES[breaker.state(obj.name)]

    @admin.action(
        description="Close the circuit breaker of selected providers", permissions=["change"]
    )
    def close_circuit(self, request: HttpRequest, queryset: QuerySet[ProviderConfig]) -> None:
        names = list(queryset.values_list("name", flat=True))
        for name in names:
            breaker.reset(name)
        self.message_user(
            request, f"Circuit breaker closed for {', '.join(names)}.", level=messages.SUCCESS
        )

    @admin.display(description="timeouts (connect/read)")
    def timeouts(self, obj: ProviderConfig) -> str:
        connect = obj.connect_timeout or settings.PROVIDER_CONNECT_TIMEOUT
        read = obj.read_timeout or settings.PROVIDER_READ_TIMEOUT
        return f"{connect:g} s / {read:g} s"

    @admin.display(description="calls (24 h)", ordering="_calls")
    def calls_24h(self, obj: ProviderConfig) -> int:
        return obj._calls

    @admin.display(description="hit rate (24 h)")
    def hit_rate_24h(self, obj: ProviderConfig) -> str:
        return f"{100 * obj._hits / obj._calls:.1f} %" if obj._calls else "-"

    @admin.display(description="p95 latency (24 h)", ordering="_p95")
    def p95_24h(self, obj: ProviderConfig) -> str:
        return "-" if obj._p95 is None else f"{obj._p95:.0f} ms"
