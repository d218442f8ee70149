"""System checks (``manage.py check``, and the ``release`` step's ``migrate``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Warning, register


@register()
def simulator_in_production(**_: Any) -> list[Warning]:
    """Production settings with the simulator URL set send live keys' lookups, and the real
    vendor credentials, to the simulator: every result would be synthetic."""
    if settings.PRODUCTION and settings.PROVIDER_SIMULATOR_URL:
        return [
            Warning(
                "PROVIDER_SIMULATOR_URL is set with SLUICE_ENV=production: every vendor call "
                "goes to the simulator and live results are synthetic.",
                hint="Unset PROVIDER_SIMULATOR_URL to call the real vendors.",
                id="sluice.W001",
            )
        ]
    return []
