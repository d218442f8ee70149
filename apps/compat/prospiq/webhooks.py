"""The body of webhook deliveries this dialect's clients receive (apps.webhooks.formats)."""

from __future__ import annotations


def register_format() -> None:
    """Registers the 'prospiq' body format (to be written)."""
