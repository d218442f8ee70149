"""Vendor dialects: Pronto's and prospiq's APIs over Sluice's own services (docs/compat.md)."""

from __future__ import annotations

from django.apps import AppConfig


class CompatConfig(AppConfig):
    name = "apps.compat"
    label = "compat"
    verbose_name = "Vendor dialects"

    def ready(self) -> None:
        # Each dialect registers the body format its clients' webhooks are sent in
        # (apps.webhooks.formats), whether or not its URLs are mounted: deliveries already
        # stored in that format keep their shape.
        from .pronto import webhooks as pronto_webhooks
        from .prospiq import webhooks as prospiq_webhooks

        pronto_webhooks.register_format()
        prospiq_webhooks.register_format()
