"""Bad input of any shape to the webhooks and events API gets a 4xx JSON error, never a 500."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.fuzz import assert_client_error, fuzz_settings, json_values, unlimited_client
from tests.webhooks.factories import EndpointFactory

pytestmark = pytest.mark.django_db

FUZZ = fuzz_settings(max_examples=60)
VALID = {"url": "https://hooks.example.com/x", "events": ["contact.enriched"], "description": ""}


@pytest.fixture
def unlimited(db):
    return unlimited_client()


def check(response, accepted=(200, 201, 202)) -> None:
    assert_client_error(response, accepted)


def send(client, method: str, path: str, body) -> None:
    check(getattr(client, method)(path, json.dumps(body), content_type="application/json"))


@FUZZ
@given(field=st.sampled_from(sorted(VALID)), value=json_values)
def test_any_value_in_any_endpoint_field(unlimited, field, value):
    send(unlimited, "post", "/api/v1/webhooks", {**VALID, field: value})
    endpoint = EndpointFactory(account=unlimited.account)
    send(unlimited, "patch", f"/api/v1/webhooks/{endpoint.pk}", {field: value})


@FUZZ
@given(
    action=st.sampled_from(["test", "enable", "recover", "rotate-secret"]),
    body=json_values,
)
def test_any_body_to_endpoint_actions(unlimited, action, body):
    endpoint = EndpointFactory(account=unlimited.account)
    send(unlimited, "post", f"/api/v1/webhooks/{endpoint.pk}/{action}", body)


@FUZZ
@given(
    param=st.sampled_from(["type", "since", "limit", "cursor", "status"]),
    value=st.text(max_size=40),
)
def test_any_query_parameter(unlimited, param, value):
    endpoint = EndpointFactory(account=unlimited.account)
    for path in (
        "/api/v1/events",
        "/api/v1/webhooks",
        f"/api/v1/webhooks/{endpoint.pk}/deliveries",
    ):
        check(unlimited.get(path, {param: value}))


# A forged cursor (a pk that is not the model's pk, a NUL byte) was once a 500 on every list.
# Events have string ids, so "not-a-uuid" is a well-formed (if unknown) event id there.
UUID_LISTS = ("/api/v1/webhooks", "/api/v1/webhooks/{endpoint}/deliveries", "/api/v1/contacts")


@pytest.mark.parametrize(
    ("raw", "paths"),
    [
        ("2026-01-01T00:00:00+00:00|not-a-uuid", UUID_LISTS),
        ("2026-01-01T00:00:00+00:00|evt_\x00", ("/api/v1/events", *UUID_LISTS)),
        ("2026-01-01T00:00:00|evt_1", ("/api/v1/events", *UUID_LISTS)),
    ],
)
def test_forged_cursors_are_422(unlimited, raw, paths):
    cursor = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
    endpoint = EndpointFactory(account=unlimited.account)
    for path in paths:
        response = unlimited.get(path.format(endpoint=endpoint.pk), {"cursor": cursor})
        assert response.status_code == 422, (path, response.content)
        assert response.json()["details"] == {"cursor": "Invalid cursor."}
