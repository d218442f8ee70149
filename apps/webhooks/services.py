"""Writes for webhooks: events emitted by the rest of the product, and their deliveries."""

from __future__ import annotations

from typing import Any


def contact_finished_emit(*, contact: Any) -> None:
    """Called inside the transaction that finishes a contact (events arrive with issue #5)."""


def bulk_completed_emit(*, bulk: Any) -> None:
    """Called once, inside the transaction that completes a bulk (events arrive with issue #5)."""
