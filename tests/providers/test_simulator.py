"""The provider simulator answered through the real adapters, in a thread of the test."""

from __future__ import annotations

import pytest
import requests

from apps.providers import registry
from apps.providers.base import ContactQuery, ProviderError
from apps.providers.simulator import dataset
from apps.providers.simulator.server import SimulatorConfig, VendorConfig
from tests.support.vendors import simulator, simulator_url, use_vendors


@pytest.fixture
def sim(settings):
    with simulator() as server:
        use_vendors(settings, simulator_url=simulator_url(server))
        settings.PROVIDER_CREDENTIALS = {}  # the simulator stands in for missing keys
        registry.provider.cache_clear()
        yield server
    registry.provider.cache_clear()


def listed_people(server, limit=100) -> list[dict]:
    body = requests.get(f"{simulator_url(server)}/_simulator/people?limit={limit}", timeout=5)
    return body.json()["people"]


def query_of(person: dict) -> ContactQuery:
    return ContactQuery(
        first_name=person["first_name"],
        last_name=person["last_name"],
        company_name=person["company_name"],
        domain=person["domain"],
        linkedin_url=person["linkedin_url"],
    )


def test_lists_a_deterministic_data_set_of_people_across_companies(sim):
    people = listed_people(sim)
    assert len(people) == 100
    assert len({p["domain"] for p in people}) == 10
    assert people == listed_people(sim)  # same seed, same people
    other = dataset.people(7, 10, 10)
    assert [p.key for p in other] != [p.key for p in dataset.people(42, 10, 10)]


def test_vendors_know_different_people_so_order_matters(sim):
    known: dict[str, set[int]] = {"hunter": set(), "pdl": set(), "apollo": set()}
    for index, person in enumerate(listed_people(sim)):
        for name in known:
            if registry.provider(name).lookup(query_of(person), "email") is not None:
                known[name].add(index)
    for name, indexes in known.items():
        assert 20 < len(indexes) < 90, name  # near the configured hit rates, not all or none
    assert known["hunter"] != known["pdl"] != known["apollo"]
    assert known["pdl"] - known["hunter"], "PDL must find people Hunter does not"


def test_answers_are_deterministic_and_agree_on_the_address(sim):
    person = next(
        p
        for p in listed_people(sim)
        if registry.provider("hunter").lookup(query_of(p), "email")
        and registry.provider("pdl").lookup(query_of(p), "email")
    )
    hunter = registry.provider("hunter").lookup(query_of(person), "email")
    again = registry.provider("hunter").lookup(query_of(person), "email")
    pdl = registry.provider("pdl").lookup(query_of(person), "email")
    assert hunter == again
    assert hunter.data["email"].lower() == pdl.data["email"]
    assert hunter.data["email"].endswith("@" + person["domain"])


def test_any_submitted_name_maps_to_a_stable_synthetic_person(sim):
    query = ContactQuery(first_name="José", last_name="Núñez", domain="example-corp.io")
    results = {
        name: registry.provider(name).lookup(query, "email") for name in ("hunter", "pdl", "apollo")
    }
    again = {
        name: registry.provider(name).lookup(query, "email") for name in ("hunter", "pdl", "apollo")
    }
    assert results == again
    key = dataset.identity("José", "Núñez", "example-corp.io")
    assert key == "jose nunez|example-corp.io"
    for found in results.values():
        if found is not None:
            assert found.data["email"].lower().endswith("@example-corp.io")


def test_notfound_names_are_unknown_to_every_vendor(sim):
    query = ContactQuery(first_name="Not", last_name="Found", domain="stripe.com")
    for name in ("hunter", "pdl", "apollo"):
        assert registry.provider(name).lookup(query, "email") is None


def test_phones_are_valid_numbers_in_several_countries(sim):
    import phonenumbers

    countries = set()
    for person in listed_people(sim):
        found = registry.provider("pdl").lookup(query_of(person), "phone")
        if found:
            number = phonenumbers.parse(found.data["phones"][0]["number"])
            assert phonenumbers.is_valid_number(number)
            countries.add(phonenumbers.region_code_for_number(number))
    assert {"US", "GB"} <= countries


def test_invalid_key_gets_each_vendors_401(settings):
    with simulator() as server:
        use_vendors(settings, simulator_url=simulator_url(server))
        settings.PROVIDER_CREDENTIALS = {
            n: {"api_key": "invalid"} for n in ("hunter", "pdl", "apollo")
        }
        registry.provider.cache_clear()
        query = ContactQuery(first_name="Ada", last_name="Lovelace", domain="acme.com")
        for name in ("hunter", "pdl", "apollo"):
            with pytest.raises(ProviderError) as info:
                registry.provider(name).lookup(query, "email")
            assert info.value.retryable is False
            assert "401" in str(info.value)
    registry.provider.cache_clear()


def test_error_rate_gives_retryable_errors(settings):
    vendors = {n: VendorConfig(latency_ms=0, error_rate=1.0, hit_rate=1.0) for n in dataset.VENDORS}
    with simulator(vendors=vendors, retry_after=3) as server:
        use_vendors(settings, simulator_url=simulator_url(server))
        registry.provider.cache_clear()
        query = ContactQuery(first_name="Ada", last_name="Lovelace", domain="acme.com")
        seen_retry_after = False
        for _ in range(12):
            with pytest.raises(ProviderError) as info:
                registry.provider("hunter").lookup(query, "email")
            assert info.value.retryable is True
            seen_retry_after |= info.value.retry_after == 3.0
        assert seen_retry_after  # half the errors are 429 with Retry-After
        assert server.calls()["hunter"] == 12
    registry.provider.cache_clear()


def test_latency_is_applied(settings):
    import time

    vendors = {n: VendorConfig(latency_ms=120, hit_rate=1.0) for n in dataset.VENDORS}
    with simulator(vendors=vendors) as server:
        use_vendors(settings, simulator_url=simulator_url(server))
        registry.provider.cache_clear()
        started = time.monotonic()
        registry.provider("apollo").lookup(
            ContactQuery(first_name="Ada", last_name="Lovelace", domain="acme.com"), "email"
        )
        assert time.monotonic() - started >= 0.12
    registry.provider.cache_clear()


def test_config_from_env_per_vendor_over_global():
    config = SimulatorConfig.from_env(
        {
            "SIMULATOR_LATENCY_MS": "80",
            "SIMULATOR_ERROR_RATE": "0.1",
            "SIMULATOR_PDL_LATENCY_MS": "20",
            "SIMULATOR_APOLLO_HIT_RATE": "0.9",
            "SIMULATOR_SEED": "7",
        }
    )
    assert config.seed == 7
    assert config.vendor("hunter").latency_ms == 80
    assert config.vendor("pdl").latency_ms == 20
    assert config.vendor("pdl").error_rate == 0.1
    assert config.vendor("apollo").hit_rate == 0.9
    assert config.vendor("hunter").hit_rate == 0.55  # the documented default


def test_bad_paging_parameters_get_a_400_not_a_dropped_connection(sim):
    url = f"{simulator_url(sim)}/_simulator/people"
    response = requests.get(url, params={"offset": "x", "limit": "10"}, timeout=5)
    assert response.status_code == 400
    assert "integers" in response.json()["error"]
    people = requests.get(url, params={"offset": "-5", "limit": "2"}, timeout=5).json()["people"]
    assert people == listed_people(sim)[:2]  # a negative offset is the start, not the end
