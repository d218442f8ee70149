"""Bad input of any shape gets a 4xx JSON error, never a 500 (SPEC §9)."""

from __future__ import annotations

import json

import pytest
from django.test import RequestFactory
from hypothesis import given
from hypothesis import strategies as st
from rest_framework.parsers import JSONParser
from rest_framework.request import Request

from apps.core.api import json_object
from tests.support.api import make_client
from tests.support.fuzz import assert_client_error, fuzz_settings, json_values, unlimited_client

pytestmark = pytest.mark.django_db

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
FUZZ = fuzz_settings(max_examples=120)


@pytest.fixture
def unlimited(db):
    return unlimited_client()


@FUZZ
@given(body=json_values)
def test_any_json_body_to_enrich(unlimited, body):
    response = unlimited.post("/api/v1/enrich", json.dumps(body), content_type="application/json")
    assert_client_error(response, accepted=(202,))
    if not isinstance(body, dict):
        assert response.status_code == 400


@FUZZ
@given(field=st.sampled_from(sorted(VALID)), value=json_values)
def test_any_value_in_any_contact_field(unlimited, field, value):
    body = {**VALID, field: value}
    response = unlimited.post("/api/v1/enrich", json.dumps(body), content_type="application/json")
    assert_client_error(response, accepted=(202,))


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
    assert_client_error(response, accepted=(202,))


@FUZZ
@given(raw=st.binary(max_size=200))
def test_any_bytes_as_body(unlimited, raw):
    response = unlimited.post("/api/v1/enrich", raw, content_type="application/json")
    assert_client_error(response, accepted=(202,))


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
    assert_client_error(response, accepted=(200,))


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


def _post_raw(client, raw: str | bytes, path: str = "/api/v1/enrich"):
    return client.post(path, raw, content_type="application/json")


def _with(field: str, raw_json_value: str) -> str:
    """VALID with one field set to a raw JSON text (for values json.dumps cannot write)."""
    return json.dumps(VALID)[:-1] + f', "{field}": {raw_json_value}}}'


@pytest.mark.parametrize(
    "raw",
    ["[" * 50_000, '{"custom": ' + "[" * 3000 + "]" * 3000 + "}"],
    ids=["array", "inside-object"],
)
def test_json_nested_past_the_parser_limit_is_400(unlimited, raw):
    response = _post_raw(unlimited, raw)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_json"


def test_json_nested_deeper_than_any_body_is_422(unlimited):
    deep = "[" * 200 + "]" * 200
    response = _post_raw(unlimited, json.dumps(VALID)[:-1] + f', "custom": {{"a": {deep}}}}}')
    assert response.status_code == 422
    (path,) = response.json()["details"]
    assert path.startswith("custom.a[0]")
    bulk = _post_raw(
        unlimited, '{"contacts": [' + "[" * 500 + "]" * 500 + "]}", "/api/v1/enrich/bulk"
    )
    assert bulk.status_code == 422


@pytest.mark.parametrize(
    ("field", "raw_value", "path"),
    [
        ("custom", '{"a": 1e400}', "custom.a"),
        ("custom", '{"a": [-1e999]}', "custom.a[0]"),
        ("max_credits", "1e400", "max_credits"),
        ("custom", '{"a": "\\ud800"}', "custom.a"),
        ("first_name", '"Sa\\udc00rah"', "first_name"),
        ("custom", '{"\\ud800": 1}', "custom.\\ud800"),
    ],
)
def test_values_the_database_cannot_store_are_422(unlimited, field, raw_value, path):
    """1e400 parses as infinity (jsonb has none); a lone surrogate is not UTF-8."""
    response = _post_raw(unlimited, _with(field, raw_value))
    assert response.status_code == 422, response.content
    assert path in response.json()["details"]


def test_lone_surrogates_in_bulk_contacts_are_422(unlimited):
    raw = (
        '{"enrichment_type": ["email"], "contacts": ['
        + json.dumps(VALID)
        + ', {"first_name": "\\ud83d", "last_name": "B", "domain": "acme.com"}]}'
    )
    response = _post_raw(unlimited, raw, "/api/v1/enrich/bulk")
    assert response.status_code == 422
    assert "contacts[1].first_name" in response.json()["details"]


def test_a_body_over_the_upload_limit_is_a_413_envelope(unlimited, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    raw = json.dumps({**VALID, "custom": {"a": "x" * 20_000}})
    response = _post_raw(unlimited, raw)
    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "body_too_large"
    keyed = unlimited.post(
        "/api/v1/enrich", raw, content_type="application/json", HTTP_IDEMPOTENCY_KEY="big-1"
    )
    assert keyed.status_code == 413
    assert keyed.json()["code"] == "body_too_large"


def _json_object_outcome(raw: bytes, content_type: str):
    request = Request(
        RequestFactory().post("/api/v1/enrich", raw, content_type=content_type),
        parsers=[JSONParser()],
    )
    try:
        return "ok", json_object(request)
    except Exception as exc:
        # The error and its field details. A ParseError's message is not compared: clients
        # only ever see it as the fixed invalid_json envelope.
        return type(exc).__name__, getattr(exc, "details", None)


def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


@FUZZ
@given(
    raw=st.dictionaries(st.text(max_size=10), json_values, max_size=4).map(json.dumps)
    # Around MAX_BODY_DEPTH, where the bracket count decides which path a body takes.
    | st.integers(0, 40).map(lambda depth: json.dumps({"custom": _nested(depth)}))
    # What json.dumps never writes: overflowing numbers, escapes, an escaped backslash.
    | st.sampled_from(
        [
            '{"a": 1e400}',
            '{"a": [-1e999]}',
            '{"a": 1.5e300}',
            '{"a": "\\u0000"}',
            '{"\\ud800": 1}',
            '{"a": "C:\\\\users"}',
            '{"a": NaN}',
        ]
    ),
)
def test_bare_json_bodies_are_read_as_rest_framework_reads_them(raw):
    """A bare ``application/json`` body is parsed without REST framework's parser, and most
    skip the walk for unstorable values: the outcome is the same as through the parser and
    the walk (a charset parameter takes that path), whatever JSON text the body holds."""
    fast = _json_object_outcome(raw.encode(), "application/json")
    assert fast == _json_object_outcome(raw.encode(), "application/json; charset=utf-8")


def test_a_body_ending_inside_a_utf8_sequence_is_400(unlimited):
    """REST framework's stream decoder would drop the incomplete bytes and accept the body;
    the bare-JSON path refuses what is not UTF-8."""
    response = _post_raw(unlimited, json.dumps(VALID).encode() + b"\xe2\x82")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_json"


# --- Long request lines: answered by Sluice, not by gunicorn's HTML error page ----------------

LONG_CURSOR = "A" * 5000


@pytest.fixture(scope="module")
def gunicorn(django_db_setup, django_db_blocker):
    """The Procfile's ``web`` line as a real process (``tests/support/stack.py``)."""
    from tests.support.stack import WebProcess

    web = WebProcess().start()
    yield web
    web.stop()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["/api/v1/contacts", "/api/v1/events", "/api/v1/webhooks"])
def test_a_5000_character_cursor_through_gunicorn_is_the_json_envelope(gunicorn, path):
    """gunicorn's default ``--limit-request-line 4094`` answered this with its own HTML 400
    before Django saw it; the web line raises the limit and the cursor cap answers."""
    import requests

    client = make_client()
    response = requests.get(
        f"{gunicorn.url}{path}",
        params={"cursor": LONG_CURSOR},
        headers={"Authorization": f"Bearer {client.key.raw_key}"},
        timeout=30,
    )
    assert response.status_code == 422, response.text[:300]
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["code"] == "validation_error"
    assert body["details"] == {"cursor": "Invalid cursor."}
    assert body["request_id"]


@pytest.mark.django_db(transaction=True)
def test_any_request_line_gunicorn_accepts_is_answered_in_json(gunicorn):
    """Up to the 8190-byte limit, whatever the query holds, Django (so the envelope) answers:
    a long value of a known parameter, many unknown ones, more fields than Django parses."""
    import requests

    client = make_client()
    headers = {"Authorization": f"Bearer {client.key.raw_key}"}
    cases = [
        ("status=" + "x" * 7000, 422),
        ("updated_after=" + "2026" * 1500, 422),
        ("&".join(f"x{n}=1" for n in range(900)), 200),  # ignored, as unknown filters are
        ("&".join(["a=1"] * 1500), 400),  # over DATA_UPLOAD_MAX_NUMBER_FIELDS
    ]
    for query, status in cases:
        url = f"{gunicorn.url}/api/v1/contacts?{query}"
        assert 5000 < len(url) < 8000
        response = requests.get(url, headers=headers, timeout=30)
        assert response.status_code == status, (query[:40], response.text[:300])
        assert response.headers["Content-Type"].startswith("application/json")
        if status != 200:
            assert response.json()["request_id"]


@pytest.mark.parametrize("path", ["/api/v1/contacts", "/api/v1/events", "/api/v1/webhooks"])
def test_a_cursor_over_the_cap_is_422_in_django(unlimited, path):
    from apps.core.pagination import MAX_CURSOR_LENGTH

    response = unlimited.get(path, {"cursor": "A" * (MAX_CURSOR_LENGTH + 1)})
    assert response.status_code == 422
    assert response.json()["details"] == {"cursor": "Invalid cursor."}


def test_every_web_command_raises_gunicorns_request_line_limit():
    """The test above runs ``WebProcess``; these are what production runs."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    procfile_web = next(
        line for line in (root / "Procfile").read_text().splitlines() if line.startswith("web:")
    )
    assert "--limit-request-line 8190" in procfile_web
    flag = '"--limit-request-line", "8190"'
    assert flag in (root / "docker-compose.yml").read_text()
    assert flag in (root / "Dockerfile").read_text()
    assert (
        '"--limit-request-line",\n                "8190",'
        in (root / "tests" / "support" / "stack.py").read_text()
    )
