"""Cross-cutting HTTP behaviour: request ids, the error envelope, health, exact paths."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def test_request_id_is_echoed(api):
    response = api.get("/api/v1/credits", HTTP_X_REQUEST_ID="client-123")
    assert response["X-Request-ID"] == "client-123"


@pytest.mark.parametrize(
    "supplied", ["3f2a9c1e-8b7d-4e6f-a5b4-c3d2e1f0a9b8", "abc/def+ghi==", "00-4bf92f-01", "x" * 200]
)
def test_any_visible_ascii_request_id_is_echoed(api, supplied):
    response = api.post(
        "/api/v1/enrich", "{", content_type="application/json", HTTP_X_REQUEST_ID=supplied
    )
    assert response["X-Request-ID"] == supplied
    assert response.json()["request_id"] == supplied


@pytest.mark.parametrize("supplied", ["x" * 201, "has space", "caf\u00e9"])
def test_an_unusable_request_id_is_replaced(api, supplied):
    response = api.get("/api/v1/credits", HTTP_X_REQUEST_ID=supplied.encode().decode("latin-1"))
    assert response["X-Request-ID"].startswith("req_")


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


def test_every_kind_of_response_carries_a_request_id(api, db):
    """Success, envelope errors raised in and outside DRF, health, schema, admin redirect."""
    anonymous = APIClient()
    responses = [
        api.get("/api/v1/credits"),
        api.post("/api/v1/enrich", "{", content_type="application/json"),
        api.get("/api/v1/contacts/nope"),
        anonymous.get("/api/v1/credits"),
        anonymous.get("/nowhere"),
        anonymous.get("/healthz"),
        anonymous.get("/api/schema/"),
        anonymous.get("/admin/"),
    ]
    for response in responses:
        assert response["X-Request-ID"].startswith("req_"), response


def test_django_level_400_is_the_envelope(settings, client):
    """Errors Django raises before any view (a Host outside ALLOWED_HOSTS) are JSON too."""
    settings.ALLOWED_HOSTS = ["api.example"]
    response = client.get("/anything", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert response.json()["code"] == "bad_request"
    assert response.json()["request_id"] == response["X-Request-ID"]


def _https_on(settings) -> None:
    """REQUIRE_HTTPS as production sets it (SECURE_SSL_REDIRECT follows it at start-up)."""
    settings.REQUIRE_HTTPS = True
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]


def test_require_https_redirects_the_admin_and_refuses_the_api(settings):
    _https_on(settings)
    client = APIClient()
    admin = client.get("/admin/login/", REMOTE_ADDR="198.51.100.1")
    assert admin.status_code == 301
    assert admin["Location"] == "https://testserver/admin/login/"
    # A direct client claiming HTTPS is not believed: still redirected.
    spoofed = client.get(
        "/admin/login/", REMOTE_ADDR="198.51.100.1", HTTP_X_FORWARDED_PROTO="https"
    )
    assert spoofed.status_code == 301
    api_call = client.post("/api/v1/enrich", {}, format="json", REMOTE_ADDR="198.51.100.1")
    assert api_call.status_code == 403
    assert api_call.json()["code"] == "https_required"
    # The vendor dialects are API calls too: refused, never redirected with the key in clear.
    for path in ("/compat/pronto/api/v2/contacts/single_enrich", "/compat/prospiq/api/v1/enrich"):
        dialect = client.post(path, {}, format="json", REMOTE_ADDR="198.51.100.1")
        assert dialect.status_code == 403, path


def test_probes_stay_on_plain_http_under_require_https(settings):
    _https_on(settings)
    assert APIClient().get("/healthz").status_code == 200
    assert APIClient().get("/readyz").status_code == 200


def test_hsts_is_sent_over_https_from_a_trusted_proxy_only(settings):
    _https_on(settings)
    client = APIClient()
    proxied = client.get("/admin/login/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_PROTO="https")
    assert proxied.status_code == 200
    assert proxied["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    plain = client.get("/healthz", REMOTE_ADDR="198.51.100.1", HTTP_X_FORWARDED_PROTO="https")
    assert "Strict-Transport-Security" not in plain
