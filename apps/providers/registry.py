"""Which providers exist and in which order the waterfall tries them for a kind."""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string

from .base import Provider

SANDBOX = "sandbox"


@cache
def provider(name: str) -> Provider:
    """The (process-wide, reusable) adapter instance for ``name``."""
    path = settings.PROVIDERS[name]
    return import_string(path)()


def order_for(*, kind: str, sandbox: bool, account_order: dict | None = None) -> list[Provider]:
    """Providers to try for ``kind``: sandbox keys get the sandbox provider only."""
    if sandbox:
        return [provider(SANDBOX)]
    names = (account_order or {}).get(kind) or settings.PROVIDER_ORDER.get(kind, [])
    return [provider(n) for n in names if n in settings.PROVIDERS and kind in provider(n).kinds]
