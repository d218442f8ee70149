"""One timestamp reader for the whole API: what it accepts, what is a 422, never a 500."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from apps.core.errors import InvalidRequest
from apps.core.pagination import encode_cursor
from apps.core.timefmt import parse_timestamp

ACCEPTED = [
    ("2026-01-01T00:00:00Z", datetime(2026, 1, 1, tzinfo=UTC)),
    ("2026-01-01t00:00:00z", datetime(2026, 1, 1, tzinfo=UTC)),
    ("2026-01-01T00:00:00+00:00", datetime(2026, 1, 1, tzinfo=UTC)),
    ("2026-01-01T00:00:00-00:00", datetime(2026, 1, 1, tzinfo=UTC)),
    ("2026-01-01T09:30:00+09:30", datetime(2026, 1, 1, tzinfo=UTC)),
    ("2026-01-01T15:59:00+15:59", datetime(2026, 1, 1, tzinfo=UTC)),
    ("2025-12-31T08:01:00-15:59", datetime(2026, 1, 1, tzinfo=UTC)),
    ("2026-01-01T00:00:00.5Z", datetime(2026, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)),
    ("2026-01-01T00:00:00.123456Z", datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)),
    # Go's RFC3339Nano: nanoseconds, truncated to what PostgreSQL keeps.
    ("2026-01-01T00:00:00.123456789Z", datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)),
    ("1970-01-01T00:00:00Z", datetime(1970, 1, 1, tzinfo=UTC)),
    ("2999-12-31T23:59:59+15:59", datetime(2999, 12, 31, 8, 0, 59, tzinfo=UTC)),
]

REFUSED = [
    # Offsets Python accepts and PostgreSQL does not (once a 500).
    "2026-01-01T00:00:00+16:00",
    "2026-01-01T00:00:00-16:00",
    "2026-01-01T00:00:00+23:59",
    "2026-01-01T00:00:00+05:60",
    # Years at the edges of Python's range: converting to UTC overflows.
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+05:00",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59-05:00",
    "1969-12-31T23:59:59Z",
    "3000-01-01T00:00:00Z",
    # Forms fromisoformat accepts that no client means.
    "2026-01-01",
    "2026-01-01T00:00:00",
    "2026-01-01T00:00Z",
    "2026-01-01T00Z",
    "2026-W01-1T00:00:00Z",
    "2026-001T00:00:00Z",
    "20260101T000000Z",
    "2026-01-01T000000Z",
    "2026-01-01T00:00:00+0100",
    "2026-01-01T00:00:00+01",
    "2026-01-01T00:00:00+01:00:30",
    "2026-01-01T00:00:00,5Z",
    "2026-01-01 00:00:00Z",
    "2026-01-01T00:00:00.1234567890Z",
    "2026-01-01T00:00:00 00:00",  # '+' unencoded in a URL
    " 2026-01-01T00:00:00Z",
    "2026-01-01T00:00:00Z ",
    "2026-01-01T00:00:00Z\n",
    "+2026-01-01T00:00:00Z",
    "\uff12\uff10\uff12\uff16-01-01T00:00:00Z",  # fullwidth digits, which \d alone takes
    # Impossible dates and times.
    "2026-02-30T00:00:00Z",
    "2026-13-01T00:00:00Z",
    "2026-01-01T24:00:00Z",
    "2026-01-01T23:59:60Z",
    "",
    "yesterday",
    "2026-01-01T00:00:00Z" + "0" * 5000,
]


@pytest.mark.parametrize(("raw", "expected"), ACCEPTED)
def test_rfc3339_timestamps_are_read_in_utc(raw, expected):
    moment = parse_timestamp(raw, field="since")
    assert moment == expected
    assert moment.utcoffset().total_seconds() == 0


@pytest.mark.parametrize("raw", REFUSED)
def test_anything_else_is_a_422_naming_the_field(raw):
    with pytest.raises(InvalidRequest) as refused:
        parse_timestamp(raw, field="updated_after")
    assert refused.value.status_code == 422
    assert set(refused.value.details) == {"updated_after"}


@pytest.mark.parametrize("value", [None, 5, 1.5, ["2026-01-01T00:00:00Z"], {}])
def test_non_strings_are_a_422(value):
    with pytest.raises(InvalidRequest):
        parse_timestamp(value, field="since")


def test_messages_say_what_is_wrong():
    def message(raw):
        with pytest.raises(InvalidRequest) as refused:
            parse_timestamp(raw, field="f")
        return refused.value.details["f"]

    assert "-15:59 and +15:59" in message("2026-01-01T00:00:00+16:00")
    assert "1970 and 2999" in message("9999-12-31T23:59:59Z")
    assert "time zone" in message("2026-01-01T00:00:00")
    assert "%2B" in message("2026-01-01T00:00:00 02:00")
    assert "valid date" in message("2026-02-30T00:00:00Z")


# --- Through the API: every place that reads a timestamp --------------------------------------

API_CASES = [
    "2026-01-01T00:00:00+16:00",
    "2026-01-01T00:00:00-23:59",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59-05:00",
    "2026-W01-1T00:00:00Z",
    "20260101T000000Z",
    "2026-01-01",
]


def _assert_422_envelope(response, field: str) -> None:
    assert response.status_code == 422, response.content
    body = response.json()
    assert body["code"] == "validation_error"
    assert field in body["details"]
    assert body["request_id"]


@pytest.mark.django_db
@pytest.mark.parametrize("raw", API_CASES)
def test_updated_after_on_contacts(api, raw):
    _assert_422_envelope(api.get("/api/v1/contacts", {"updated_after": raw}), "updated_after")


@pytest.mark.django_db
@pytest.mark.parametrize("raw", API_CASES)
def test_since_on_events_and_recover(api, raw):
    _assert_422_envelope(api.get("/api/v1/events", {"since": raw}), "since")
    # Made through the API, so that it is of the key's mode whatever the factories default to.
    endpoint = api.post(
        "/api/v1/webhooks",
        json.dumps({"url": "https://hooks.example.com/sluice", "events": ["contact.enriched"]}),
        content_type="application/json",
    )
    assert endpoint.status_code == 201, endpoint.content
    recovered = api.post(
        f"/api/v1/webhooks/{endpoint.json()['id']}/recover",
        json.dumps({"since": raw}),
        content_type="application/json",
    )
    _assert_422_envelope(recovered, "since")


def _forged_cursor(moment: str, pk: str = "00000000-0000-0000-0000-000000000000") -> str:
    return base64.urlsafe_b64encode(f"{moment}|{pk}".encode()).decode().rstrip("=")


@pytest.mark.django_db
@pytest.mark.parametrize("raw", API_CASES)
@pytest.mark.parametrize("path", ["/api/v1/contacts", "/api/v1/events", "/api/v1/webhooks"])
def test_a_cursor_holding_an_odd_moment_is_a_422(api, raw, path):
    _assert_422_envelope(api.get(path, {"cursor": _forged_cursor(raw)}), "cursor")


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/contacts", "/api/v1/events", "/api/v1/webhooks"])
def test_a_well_formed_hand_made_cursor_is_read(api, path):
    """The control for the test above: only the moment makes those cursors a 422."""
    response = api.get(path, {"cursor": _forged_cursor("2026-01-01T00:00:00+15:59")})
    assert response.status_code == 200, response.content


@pytest.mark.django_db
def test_real_cursors_still_page(api):
    # Made through the API, so that they are of the key's mode whatever the factories default to.
    made = [
        api.post(
            "/api/v1/webhooks",
            json.dumps({"url": f"https://hooks.example.com/{n}", "events": ["contact.enriched"]}),
            content_type="application/json",
        ).json()["id"]
        for n in range(3)
    ]
    first = api.get("/api/v1/webhooks", {"limit": 2}).json()
    assert first["pagination"]["has_more"]
    cursor = first["pagination"]["next_cursor"]
    rest = api.get("/api/v1/webhooks", {"limit": 2, "cursor": cursor})
    assert rest.status_code == 200, rest.content
    seen = [e["id"] for e in first["data"] + rest.json()["data"]]
    assert sorted(seen) == sorted(made)


def test_encoded_cursors_parse_back():
    moment = datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)
    raw = base64.urlsafe_b64decode(encode_cursor(moment, "x") + "==").decode()
    assert parse_timestamp(raw.split("|")[0], field="cursor") == moment


@pytest.mark.django_db
@pytest.mark.parametrize("raw", ["2026-01-01T23:00:00+15:59", "2026-01-01T00:00:00.5-15:59"])
def test_offsets_up_to_15_59_are_read_everywhere(api, raw):
    assert api.get("/api/v1/contacts", {"updated_after": raw}).status_code == 200
    assert api.get("/api/v1/events", {"since": raw}).status_code == 200
