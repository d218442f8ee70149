"""Cross-cutting HTTP behaviour: request ids, the error envelope, health, exact paths."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def test_request_id_is_echoed(api):
    response = api.get("/api/v1/credits", HTTP_X_REQUEST_ID="client-123")
    assert response["X-Request-ID"] == "client-123"


def test_request_id_is_minted_and_in_errors(db):
    response = APIClient().get("/api/v1/credits")
    assert response["X-Request-ID"].startswith("req_")
    assert response.json()["request_id"] == response["X-Request-ID"]


def test_unknown_path_is_json_404(api):
    response = api.get("/api/v1/nope")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_trailing_slash_is_not_redirected(api):
    response = api.post("/api/v1/enrich/", {}, format="json")
    assert response.status_code == 404


def test_wrong_method_is_405_envelope(api):
    response = api.get("/api/v1/enrich")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


def test_healthz(db):
    response = APIClient().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_checks_database_cache_and_broker(db):
    response = APIClient().get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert {k: v["ok"] for k, v in body["checks"].items()} == {
        "database": True,
        "cache": True,
        "broker": True,
    }


def test_openapi_schema_and_docs(db):
    schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in (
        "/api/v1/enrich",
        "/api/v1/enrich/bulk",
        "/api/v1/contacts",
        "/api/v1/contacts/{enrichment_id}",
        "/api/v1/bulk/{bulk_id}",
        "/api/v1/credits",
    ):
        assert path in paths
    assert "BearerAuth" in schema.json()["components"]["securitySchemes"]
    assert APIClient().get("/api/docs/").status_code == 200
