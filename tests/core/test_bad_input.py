"""Bad input of any shape gets a 4xx JSON error, never a 500 (SPEC §9)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.accounts.models import Plan
from tests.conftest import make_client

pytestmark = pytest.mark.django_db

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
VALID = {
    "first_name": "Sarah",
    "last_name": "Chen",
    "company_name": "Stripe",
    "domain": "stripe.com",
    "linkedin_url": "https://www.linkedin.com/in/sarahchen",
    "enrichment_type": ["email", "phone"],
    "phone_country_codes": ["US"],
    "custom": {"id": 1},
    "max_credits": 20,
}
FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def unlimited(db):
    plan, _ = Plan.objects.update_or_create(
        code="fuzz", defaults={"name": "Fuzz", "api_access": True, "bulk_max": 100}
    )
    # No per-minute limit: a fuzz run sends hundreds of requests.
    client = make_client()
    client.account.plan = plan
    client.account.save(update_fields=["plan"])
    return client


def _assert_client_error(response, accepted=(202,)):
    assert response.status_code < 500, response.content
    if response.status_code not in accepted:
        body = response.json()
        assert set(body) == {"error", "code", "details", "request_id"}, body


@FUZZ
@given(body=json_values)
def test_any_json_body_to_enrich(unlimited, body):
    response = unlimited.post("/api/v1/enrich", json.dumps(body), content_type="application/json")
    _assert_client_error(response)
    if not isinstance(body, dict):
        assert response.status_code == 400


@FUZZ
@given(field=st.sampled_from(sorted(VALID)), value=json_values)
def test_any_value_in_any_contact_field(unlimited, field, value):
    body = {**VALID, field: value}
    response = unlimited.post("/api/v1/enrich", json.dumps(body), content_type="application/json")
    _assert_client_error(response)


@FUZZ
@given(
    field=st.sampled_from(["contacts", "enrichment_type", "phone_country_codes", "webhook_url"]),
    value=json_values,
    item=json_values,
)
def test_any_value_in_bulk_fields(unlimited, field, value, item):
    body = {"contacts": [VALID, item], "enrichment_type": ["email"], field: value}
    response = unlimited.post(
        "/api/v1/enrich/bulk", json.dumps(body), content_type="application/json"
    )
    _assert_client_error(response)


@FUZZ
@given(raw=st.binary(max_size=200))
def test_any_bytes_as_body(unlimited, raw):
    response = unlimited.post("/api/v1/enrich", raw, content_type="application/json")
    _assert_client_error(response)


@FUZZ
@given(
    params=st.dictionaries(
        st.sampled_from(["limit", "cursor", "status", "result_status", "bulk_id", "updated_after"]),
        st.text(max_size=40),
        max_size=4,
    )
)
def test_any_list_query(unlimited, params):
    response = unlimited.get("/api/v1/contacts", params)
    _assert_client_error(response, accepted=(200,))


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({**VALID, "first_name": "Sa\x00rah"}, "first_name"),
        ({**VALID, "custom": {"a": ["ok", "n\x00"]}}, "custom.a[1]"),
        ({**VALID, "custom": {"k\x00": 1}}, "custom.k\x00"),
    ],
)
def test_nul_characters_are_422_not_500(unlimited, body, path):
    response = unlimited.post("/api/v1/enrich", json.dumps(body), content_type="application/json")
    assert response.status_code == 422
    assert path in response.json()["details"]
