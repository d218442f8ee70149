"""Which providers exist and in which order the waterfall tries them for a kind."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string

from .base import Provider
from .models import ProviderConfig

SANDBOX = "sandbox"


@cache
def provider(name: str) -> Provider:
    """The (process-wide, reusable) adapter instance for ``name``: one HTTP pool each."""
    path = settings.PROVIDERS[name]
    return import_string(path)()


@dataclass(frozen=True)
class Lineup:
    """The provider line-up as loaded once per chunk from ProviderConfig: which are off,
    priorities, timeouts."""

    configs: dict[str, ProviderConfig] = field(default_factory=dict)

    @classmethod
    def load(cls) -> Lineup:
        return cls({c.name: c for c in ProviderConfig.objects.all()})

    def enabled(self, name: str) -> bool:
        config = self.configs.get(name)
        return config is None or config.enabled

    def timeout(self, name: str) -> tuple[float, float] | None:
        config = self.configs.get(name)
        return config.timeout() if config else None

    def default_order(self, kind: str) -> list[str]:
        names = list(settings.PROVIDER_ORDER.get(kind, []))
        # A provider given a priority in admin joins the line-up even when the settings
        # order does not name it (e.g. a vendor just added to PROVIDERS).
        names += [
            n
            for n, c in self.configs.items()
            if n not in names and n in settings.PROVIDERS and c.priority(kind) is not None
        ]
        ranked = {
            n: p
            for n in names
            if (c := self.configs.get(n)) is not None and (p := c.priority(kind)) is not None
        }
        if not ranked:
            return names
        # Stable: prioritised providers first (lowest first), then the rest in settings order.
        return sorted(names, key=lambda n: (0, ranked[n]) if n in ranked else (1, 0))


def order_for(
    *, kind: str, sandbox: bool, account_order: dict | None = None, lineup: Lineup | None = None
) -> list[Provider]:
    """Providers to try for ``kind``: sandbox keys get the sandbox provider only.

    The account's own order wins; else ProviderConfig priorities over ``PROVIDER_ORDER``.
    Unknown names, disabled providers, providers without credentials and providers that do
    not serve ``kind`` are left out.
    """
    if sandbox:
        return [provider(SANDBOX)]
    lineup = lineup or Lineup()
    names = (account_order or {}).get(kind) or lineup.default_order(kind)
    chosen: list[Provider] = []
    for name in dict.fromkeys(names):
        if name == SANDBOX or name not in settings.PROVIDERS or not lineup.enabled(name):
            continue
        adapter = provider(name)
        if kind in adapter.kinds and adapter.available():
            chosen.append(adapter)
    return chosen
