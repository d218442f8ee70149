"""The simulator URL under production settings is flagged by `manage.py check`."""

from __future__ import annotations

from apps.providers.checks import simulator_in_production


def test_simulator_url_in_production_warns(settings):
    settings.PRODUCTION = True
    settings.PROVIDER_SIMULATOR_URL = "http://127.0.0.1:8100"
    assert [w.id for w in simulator_in_production()] == ["sluice.W001"]


def test_no_warning_in_development_or_without_the_simulator(settings):
    settings.PRODUCTION = False
    settings.PROVIDER_SIMULATOR_URL = "http://127.0.0.1:8100"
    assert simulator_in_production() == []
    settings.PRODUCTION = True
    settings.PROVIDER_SIMULATOR_URL = ""
    assert simulator_in_production() == []
