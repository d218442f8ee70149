"""Ops-editable provider configuration: on/off, timeouts and per-kind priority."""

from __future__ import annotations

from django.db import models


class ProviderConfig(models.Model):
    """One row per provider name (a key of ``settings.PROVIDERS``); absent = settings defaults.

    ``priority_<kind>`` reorders the default waterfall for that kind: providers with a
    priority come first, lowest first; the rest keep their ``PROVIDER_ORDER`` position. An
    account's own ``provider_order`` still wins over both. Disabled providers are never called.
    """

    name = models.CharField(max_length=50, unique=True)
    enabled = models.BooleanField(default=True)
    connect_timeout = models.FloatField(
        null=True, blank=True, help_text="Seconds; empty = PROVIDER_CONNECT_TIMEOUT"
    )
    read_timeout = models.FloatField(
        null=True, blank=True, help_text="Seconds; empty = PROVIDER_READ_TIMEOUT"
    )
    priority_email = models.PositiveSmallIntegerField(null=True, blank=True)
    priority_phone = models.PositiveSmallIntegerField(null=True, blank=True)
    priority_personal_email = models.PositiveSmallIntegerField(null=True, blank=True)
    notes = models.TextField(blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "provider configuration"

    def __str__(self) -> str:
        return f"{self.name} ({'on' if self.enabled else 'off'})"

    def priority(self, kind: str) -> int | None:
        return getattr(self, f"priority_{kind}", None)

    def timeout(self) -> tuple[float, float] | None:
        """(connect, read) when either is set here, else None (the adapter's default)."""
        if self.connect_timeout is None and self.read_timeout is None:
            return None
        from django.conf import settings

        return (
            self.connect_timeout or settings.PROVIDER_CONNECT_TIMEOUT,
            self.read_timeout or settings.PROVIDER_READ_TIMEOUT,
        )
