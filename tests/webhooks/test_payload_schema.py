"""The OpenAPI ``webhooks`` describe what a real worker really sends: every event type's
delivered body validates against its schema, strictly (no field the schema does not name)."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest
from drf_spectacular.generators import SchemaGenerator
from standardwebhooks.webhooks import Webhook

from apps.core.schema import WEBHOOK_HEADERS
from apps.webhooks.models import Event
from tests.support.worker import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def _strict(node: Any) -> Any:
    """Every object schema with ``properties`` refuses other fields (the documents leave
    them open for forward compatibility; this test wants to hear of any undocumented one)."""
    if isinstance(node, dict):
        node = {k: _strict(v) for k, v in node.items()}
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        return node
    if isinstance(node, list):
        return [_strict(v) for v in node]
    return node


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    # Through JSON, as served: no lazy strings or tuples left.
    return json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True)))


def validator_for(openapi: dict[str, Any], event_type: str) -> jsonschema.Validator:
    document = _strict(copy.deepcopy(openapi))
    pointer = f"#/webhooks/{event_type}/post/requestBody/content/application~1json/schema"
    return jsonschema.Draft202012Validator({**document, "$ref": pointer})


def test_every_event_type_is_a_webhook_with_the_delivery_headers(openapi):
    assert set(openapi["webhooks"]) == set(Event.TYPES)
    for event_type, item in openapi["webhooks"].items():
        headers = {p["name"] for p in item["post"]["parameters"] if p["in"] == "header"}
        assert headers == {name for name, _, _ in WEBHOOK_HEADERS}, event_type


def test_real_deliveries_validate_against_their_schemas(openapi, api, worker, receiver):
    endpoint = api.post(
        "/api/v1/webhooks", {"url": receiver.url()}, format="json"
    ).json()  # every event type
    q2 = api.post("/api/v1/lists", {"name": "Q2"}, format="json").json()
    bulk = api.post(
        "/api/v1/enrich/bulk",
        {
            "enrichment_type": ["email"],
            "list_id": q2["id"],
            "contacts": [
                {"first_name": "Ada", "last_name": "Lovelace", "domain": "engines.io"},
                {
                    "first_name": "Notfound",
                    "last_name": "Person",
                    "domain": "nowhere.io",
                    "custom": {"row": 2, "tags": ["a"]},
                },
            ],
        },
        format="json",
    )
    assert bulk.status_code == 202, bulk.json()
    # The events no sandbox bulk causes, as the samples a real delivery sends.
    for event_type in ("credits.low", "credits.exhausted", "endpoint.disabled"):
        test = api.post(
            f"/api/v1/webhooks/{endpoint['id']}/test", {"event_type": event_type}, format="json"
        )
        assert test.status_code == 202, test.json()

    # 2 contact.added_to_list, 2 contact.enriched, 1 contact.verified, 1 bulk.completed,
    # 3 samples.
    wait_for(lambda: len(receiver.received()) >= 9, timeout=60, message="deliveries missing")
    seen: dict[str, int] = {}
    for request in receiver.received():
        payload = Webhook(endpoint["secret"]).verify(request.body, request.headers)
        event_type = request.headers["x-sluice-event"]
        assert payload["type"] == event_type
        errors = [e.message for e in validator_for(openapi, event_type).iter_errors(payload)]
        assert errors == [], (event_type, errors, payload)
        for name, required, _ in WEBHOOK_HEADERS:
            assert not required or name.lower() in request.headers, name
        seen[event_type] = seen.get(event_type, 0) + 1
    assert seen == {
        "contact.added_to_list": 2,
        "contact.enriched": 2,
        "contact.verified": 1,
        "bulk.completed": 1,
        "credits.low": 1,
        "credits.exhausted": 1,
        "endpoint.disabled": 1,
    }


def test_the_schema_refuses_a_body_that_is_not_the_documented_one(openapi):
    validator = validator_for(openapi, "bulk.completed")
    body = {
        "id": "evt_1",
        "type": "bulk.completed",
        "created_at": "2026-05-19T14:30:04.000Z",
        "sandbox": True,
        "data": {"bulk_id": "00000000-0000-4000-8000-000000000001", "status": "completed"},
    }
    assert any("required" in e.message for e in validator.iter_errors(body))
    assert not validator.is_valid({**body, "type": "contact.enriched"})
