"""Fuzzing the API with hypothesis: any JSON value, a client no rate limit stops, and the
check that an answer is a client error in the SPEC's envelope, never a 500."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from apps.accounts.models import Plan
from tests.support.api import KeyedClient, make_client

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


def fuzz_settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


def unlimited_client() -> KeyedClient:
    """A client on a plan with no per-minute limit: a fuzz run sends hundreds of requests."""
    plan, _ = Plan.objects.update_or_create(
        code="fuzz", defaults={"name": "Fuzz", "api_access": True, "bulk_max": 100}
    )
    client = make_client()
    client.account.plan = plan
    client.account.save(update_fields=["plan"])
    return client


def assert_client_error(response, accepted: tuple[int, ...]) -> None:
    """Below 500, and unless its status is ``accepted``, the SPEC's error envelope."""
    assert response.status_code < 500, response.content
    if response.status_code not in accepted:
        body = response.json()
        assert set(body) == {"error", "code", "details", "request_id"}, body
