"""Provider order resolution and the circuit breaker on its own."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from apps.providers import breaker, registry
from apps.providers.base import Found
from apps.providers.http import HttpProvider
from apps.providers.models import ProviderConfig
from tests.support.vendors import use_vendors

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _vendors(settings):
    use_vendors(settings)
    yield
    registry.provider.cache_clear()
    breaker.reset()


def names(kind: str, **kwargs) -> list[str]:
    return [p.name for p in registry.order_for(kind=kind, sandbox=False, **kwargs)]


def test_default_order_per_kind_leaves_out_vendors_that_do_not_serve_it(settings):
    settings.PROVIDER_ORDER = {"phone": ["apollo", "pdl", "hunter"], "email": ["pdl", "nope"]}
    assert names("phone", lineup=registry.Lineup.load()) == ["pdl", "hunter"]  # apollo: no phones
    assert names("email", lineup=registry.Lineup.load()) == ["pdl"]  # unknown names ignored


def test_sandbox_gets_only_the_sandbox_and_live_never_does(settings):
    assert [p.name for p in registry.order_for(kind="email", sandbox=True)] == ["sandbox"]
    assert "sandbox" not in names("email", account_order={"email": ["sandbox", "hunter"]})


def test_priority_and_enabled_from_provider_config():
    ProviderConfig.objects.create(name="pdl", priority_email=1)
    ProviderConfig.objects.create(name="apollo", priority_email=2)
    ProviderConfig.objects.create(name="hunter", priority_phone=1)
    lineup = registry.Lineup.load()
    assert names("email", lineup=lineup) == ["pdl", "apollo", "hunter"]
    assert names("phone", lineup=lineup) == ["hunter", "pdl"]
    ProviderConfig.objects.filter(name="pdl").update(enabled=False)
    assert names("email", lineup=registry.Lineup.load()) == ["apollo", "hunter"]


def test_account_order_wins_but_disabled_stays_off():
    ProviderConfig.objects.create(name="apollo", enabled=False)
    lineup = registry.Lineup.load()
    assert names("email", lineup=lineup, account_order={"email": ["apollo", "pdl"]}) == ["pdl"]


class AcmeDataProvider(HttpProvider):
    """A fourth vendor as docs/providers.md adds one: this class + one PROVIDERS line."""

    name = "acmedata"
    kinds = frozenset({"email"})
    default_base_url = "https://api.acmedata.example"

    def lookup(self, query, kind, *, timeout=None):
        body = self.request("GET", "/v1/people/find", timeout=timeout)
        return Found(data={"email": body["match"]["email"]}, confidence=90) if body else None


def test_a_fourth_vendor_needs_one_adapter_and_one_settings_line(settings, monkeypatch):
    settings.PROVIDERS = {**settings.PROVIDERS, "acmedata": f"{__name__}.AcmeDataProvider"}
    registry.provider.cache_clear()
    assert "acmedata" not in settings.PROVIDER_CREDENTIALS
    assert not registry.provider("acmedata").available()  # no key yet: never tried

    monkeypatch.setenv("ACMEDATA_API_KEY", "acme-key")
    monkeypatch.setenv("ACMEDATA_BASE_URL", "https://eu.acmedata.example/")
    registry.provider.cache_clear()
    acme = registry.provider("acmedata")
    assert (acme.api_key, acme.base_url) == ("acme-key", "https://eu.acmedata.example")
    # An account can use it at once; everyone else once ops give it a priority in admin.
    assert names("email", account_order={"email": ["acmedata", "hunter"]})[0] == "acmedata"
    assert "acmedata" not in names("email", lineup=registry.Lineup.load())
    ProviderConfig.objects.create(name="acmedata", priority_email=1)
    assert names("email", lineup=registry.Lineup.load()) == ["acmedata", "hunter", "apollo", "pdl"]
    assert "acmedata" not in names("phone", lineup=registry.Lineup.load())


def test_provider_config_timeout():
    config = ProviderConfig.objects.create(name="pdl", read_timeout=4)
    assert config.timeout() == (3.0, 4)
    assert registry.Lineup.load().timeout("hunter") is None


def test_breaker_counts_failures_opens_and_success_resets(settings):
    settings.PROVIDER_BREAKER_FAILURES = 3
    assert breaker.record_failure("pdl") == 1
    breaker.record_success("pdl")
    assert breaker.record_failure("pdl") == 1  # the success reset the streak
    breaker.record_failure("pdl")
    assert not breaker.is_open("pdl")
    breaker.record_failure("pdl")
    assert breaker.is_open("pdl")
    assert not breaker.is_open("hunter")


def _cool_down_over(name: str) -> None:
    """What the open key's expiry does after the cool-down (no test sleeps through it)."""
    cache.delete(f"breaker:{name}:open")


def _another_process() -> None:
    """Forget this process's view, as a worker that never called would have none."""
    breaker._seen.clear()
    breaker._failing.clear()
    breaker._probing.clear()


def test_breaker_half_opens_after_cool_down_with_a_single_probe(settings):
    settings.PROVIDER_BREAKER_FAILURES = 2
    breaker.record_failure("pdl")
    breaker.record_failure("pdl")
    assert breaker.is_open("pdl") and not breaker.allow_call("pdl")
    _cool_down_over("pdl")
    assert breaker.state("pdl") == breaker.HALF_OPEN
    assert breaker.allow_call("pdl")  # this caller is the probe
    probe_state = dict(breaker._probing)
    _another_process()
    assert not breaker.allow_call("pdl"), "only one probe at a time, across workers"
    breaker._probing.update(probe_state)
    # The probe fails: open again at once, not after another full streak of failures.
    assert breaker.record_failure("pdl") == 2
    _another_process()
    assert breaker.is_open("pdl") and not breaker.allow_call("pdl")

    _cool_down_over("pdl")
    assert breaker.allow_call("pdl")  # a new probe
    breaker.record_success("pdl")
    _another_process()
    assert breaker.state("pdl") == breaker.CLOSED
    assert breaker.allow_call("pdl") and breaker.allow_call("pdl")  # closed for everyone
    assert breaker.record_failure("pdl") == 1  # a fresh streak is needed to open again
    assert breaker.allow_call("pdl")


def test_looking_at_a_half_open_breaker_does_not_take_the_probe():
    breaker.trip("pdl", seconds=30)
    _cool_down_over("pdl")
    _another_process()
    for _ in range(3):  # e.g. the admin page showing the breaker
        assert not breaker.is_open("pdl")
        assert breaker.state("pdl") == breaker.HALF_OPEN
    assert breaker.allow_call("pdl")  # the probe is still there for a real call


def test_a_half_open_failure_by_a_worker_with_a_stale_view_reopens_too(settings):
    settings.PROVIDER_BREAKER_FAILURES = 5
    breaker.trip("hunter", seconds=30, reason="Retry-After")
    _cool_down_over("hunter")
    _another_process()
    breaker.record_failure("hunter")
    assert breaker.is_open("hunter")


def test_a_probe_that_never_reports_back_lets_another_probe_through_later(settings, redis_client):
    settings.PROVIDER_BREAKER_COOLDOWN_SECONDS = 7
    breaker.trip("apollo", seconds=7)
    _cool_down_over("apollo")
    assert breaker.allow_call("apollo")
    assert 0 < redis_client.ttl("sluice:1:breaker:apollo:probe") <= 7
    _another_process()
    assert not breaker.allow_call("apollo")
    cache.delete("breaker:apollo:probe")  # its lock expired: the probing worker died
    assert breaker.allow_call("apollo")
