"""The intake and read API (SPEC §4): shapes, validation, status codes, isolation."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.enrichment.models import BulkJob, Contact
from apps.enrichment.validation import CONSENT_MESSAGE
from tests.factories import ContactFactory
from tests.support.api import make_client
from tests.support.queues import queue_length

pytestmark = pytest.mark.django_db(transaction=True)

SARAH = {
    "first_name": "Sarah",
    "last_name": "Chen",
    "company_name": "Stripe",
    "domain": "https://www.Stripe.com/about",
    "linkedin_url": "https://www.linkedin.com/in/sarahchen",
    "enrichment_type": ["email", "phone"],
    "phone_country_codes": ["US"],
    "custom": {"hubspot_id": "4447901"},
}


def post(client, path, body):
    return client.post(path, json.dumps(body), content_type="application/json")


def test_enrich_accepts_and_enqueues_after_commit(api, redis_client):
    response = post(api, "/api/v1/enrich", SARAH)
    assert response.status_code == 202, response.json()
    body = response.json()
    assert set(body) == {
        "enrichment_id",
        "status",
        "first_name",
        "last_name",
        "custom",
        "created_at",
    }
    assert body["status"] == "pending"
    assert body["custom"] == {"hubspot_id": "4447901"}
    assert body["created_at"].endswith("Z")
    assert response["Location"] == f"/api/v1/contacts/{body['enrichment_id']}"
    contact = Contact.objects.get(pk=body["enrichment_id"])
    assert contact.domain == "stripe.com"
    assert contact.sandbox is True
    assert queue_length(redis_client) == 1


def test_enrich_answers_as_the_json_renderer_would(api):
    """The 202 is rendered outside a DRF Response: same compact UTF-8 body, and an
    ``Accept: application/json; indent=4`` is still honoured."""
    compact = post(api, "/api/v1/enrich", {**SARAH, "first_name": "Zoë"})
    assert compact["Content-Type"] == "application/json"
    assert '"first_name":"Zoë"' in compact.content.decode()
    indented = api.post(
        "/api/v1/enrich",
        json.dumps(SARAH),
        content_type="application/json",
        HTTP_ACCEPT="application/json; indent=4",
    )
    assert indented.status_code == 202
    assert '\n    "enrichment_id": "' in indented.content.decode()
    assert indented.json()["custom"] == SARAH["custom"]


def test_single_string_enrichment_type_is_wrapped(api):
    response = post(api, "/api/v1/enrich", {**SARAH, "enrichment_type": "email"})
    assert response.status_code == 202
    assert Contact.objects.get().enrichment_type == ["email"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"first_name": None}, "first_name"),
        ({"first_name": "   "}, "first_name"),
        ({"last_name": "x" * 101}, "last_name"),
        ({"enrichment_type": []}, "enrichment_type"),
        ({"enrichment_type": ["email", "email"]}, "enrichment_type"),
        ({"enrichment_type": ["fax"]}, "enrichment_type"),
        ({"enrichment_type": ["email"], "domain": None, "company_name": None}, "domain"),
        ({"linkedin_url": None}, "linkedin_url"),
        ({"linkedin_url": "https://www.linkedin.com/company/stripe"}, "linkedin_url"),
        ({"linkedin_url": "ftp://linkedin.com/in/x"}, "linkedin_url"),
        ({"linkedin_url": "https://evil.com/in/sarah"}, "linkedin_url"),
        ({"linkedin_url": "https://www.linkedin.com/in/" + "s" * 480}, "linkedin_url"),
        ({"company_name": "c" * 201}, "company_name"),
        ({"company_name": 42}, "company_name"),
        ({"enrichment_type": "fax"}, "enrichment_type"),
        ({"enrichment_type": [None]}, "enrichment_type"),
        ({"max_credits": 2**31}, "max_credits"),
        ({"max_credits": True}, "max_credits"),
        ({"domain": "localhost"}, "domain"),
        ({"domain": "not a domain"}, "domain"),
        ({"phone_country_codes": ["USA"]}, "phone_country_codes"),
        ({"phone_country_codes": "US"}, "phone_country_codes"),
        ({"webhook_url": "ftp://example.com/hook"}, "webhook_url"),
        ({"webhook_url": "https://user:pw@example.com/hook"}, "webhook_url"),
        ({"custom": ["not", "object"]}, "custom"),
        ({"custom": {"a": "x" * 5000}}, "custom"),
        ({"custom": {"a": {"b": {"c": {"d": 1}}}}}, "custom"),
        ({"max_credits": -1}, "max_credits"),
        ({"max_credits": "5"}, "max_credits"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_invalid_contact_is_422_with_field_message(api, redis_client, change, field):
    body = {k: v for k, v in {**SARAH, **change}.items() if v is not None}
    response = post(api, "/api/v1/enrich", body)
    assert response.status_code == 422, response.json()
    payload = response.json()
    assert payload["code"] == "validation_error"
    assert field in payload["details"], payload
    assert Contact.objects.count() == 0
    assert queue_length(redis_client) == 0


def test_custom_depth_three_is_accepted(api):
    response = post(api, "/api/v1/enrich", {**SARAH, "custom": {"a": {"b": {"c": 1}}}})
    assert response.status_code == 202


def test_idna_domain_is_normalised(api):
    response = post(api, "/api/v1/enrich", {**SARAH, "domain": "Bücher.example:8080/x"})
    assert response.status_code == 202
    assert Contact.objects.get().domain == "xn--bcher-kva.example"


def test_personal_email_needs_consent_with_exact_message(api):
    response = post(api, "/api/v1/enrich", {**SARAH, "enrichment_type": ["personal_email"]})
    assert response.status_code == 422
    assert response.json()["details"]["enrichment_type"] == CONSENT_MESSAGE
    consenting = make_client(consent=True)
    ok = post(consenting, "/api/v1/enrich", {**SARAH, "enrichment_type": ["personal_email"]})
    assert ok.status_code == 202


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'"text"', b"", b"null"])
def test_body_not_a_json_object_is_400(api, raw):
    response = api.post("/api/v1/enrich", raw, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] in {"invalid_json", "invalid_body"}


def test_live_key_with_zero_balance_is_402(db, redis_client):
    client = make_client(mode="live", credits=0)
    response = post(client, "/api/v1/enrich", SARAH)
    assert response.status_code == 402
    assert response.json()["code"] == "insufficient_credits"
    bulk = post(client, "/api/v1/enrich/bulk", {"contacts": [SARAH], "enrichment_type": ["email"]})
    assert bulk.status_code == 402
    assert Contact.objects.count() == 0
    assert queue_length(redis_client) == 0


def test_sandbox_key_with_zero_balance_is_accepted(db):
    client = make_client(mode="test", credits=0)
    assert post(client, "/api/v1/enrich", SARAH).status_code == 202


def _bulk_body(n: int, **extra):
    contacts = [
        {"first_name": f"P{i}", "last_name": "Doe", "company_name": "Acme", "custom": {"row": i}}
        for i in range(n)
    ]
    return {"contacts": contacts, "enrichment_type": ["email"], **extra}


def test_bulk_accepts_in_request_order_with_one_message(api, redis_client):
    response = post(api, "/api/v1/enrich/bulk", _bulk_body(30))
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["status"] == "pending"
    assert body["total"] == 30
    assert [c["custom"]["row"] for c in body["contacts"]] == list(range(30))
    assert BulkJob.objects.get(pk=body["bulk_id"]).total == 30
    assert Contact.objects.filter(bulk_id=body["bulk_id"]).count() == 30
    assert queue_length(redis_client) == 1


def test_bulk_is_all_or_nothing(api, redis_client):
    body = _bulk_body(5)
    body["contacts"][3]["enrichment_type"] = ["phone"]
    body["contacts"][1]["first_name"] = ""
    response = post(api, "/api/v1/enrich/bulk", body)
    assert response.status_code == 422
    details = response.json()["details"]
    assert "contacts[3].linkedin_url" in details
    assert "contacts[1].first_name" in details
    assert Contact.objects.count() == 0 and BulkJob.objects.count() == 0
    assert queue_length(redis_client) == 0


def test_bulk_over_plan_max_is_422(db):
    client = make_client(plan_code="growth")
    response = post(client, "/api/v1/enrich/bulk", _bulk_body(51))
    assert response.status_code == 422
    assert "contacts" in response.json()["details"]
    assert post(client, "/api/v1/enrich/bulk", _bulk_body(50)).status_code == 202


def test_bulk_query_count_does_not_grow_with_contacts(api, redis_client):
    post(api, "/api/v1/enrich/bulk", _bulk_body(1))  # warm: last_used_at write, caches
    counts = []
    for n in (2, 100):
        with CaptureQueriesContext(connection) as ctx:
            assert post(api, "/api/v1/enrich/bulk", _bulk_body(n)).status_code == 202
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1], counts
    assert counts[1] <= 8, counts
    assert queue_length(redis_client) == 3


def test_get_contact_shape(api):
    created = post(api, "/api/v1/enrich", SARAH).json()
    response = api.get(f"/api/v1/contacts/{created['enrichment_id']}")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "pending"
    assert body["result"] is None
    assert body["custom"] == {"hubspot_id": "4447901"}
    assert body["domain"] == "stripe.com"
    assert body["sandbox"] is True
    assert body["attempts"] == []


def test_other_accounts_ids_are_404(api):
    other = make_client()
    theirs = post(other, "/api/v1/enrich", SARAH).json()["enrichment_id"]
    their_bulk = post(other, "/api/v1/enrich/bulk", _bulk_body(2)).json()["bulk_id"]
    assert api.get(f"/api/v1/contacts/{theirs}").status_code == 404
    assert api.get(f"/api/v1/bulk/{their_bulk}").status_code == 404
    assert api.get("/api/v1/contacts").json()["data"] == []
    assert api.get(f"/api/v1/contacts?bulk_id={their_bulk}").json()["data"] == []
    assert api.get("/api/v1/contacts/not-a-uuid").status_code == 404
    assert other.get(f"/api/v1/contacts/{theirs}").status_code == 200


def test_list_is_newest_first_and_cursor_paginated(api):
    contacts = [ContactFactory(account=api.account) for _ in range(7)]
    seen = []
    cursor = None
    while True:
        url = "/api/v1/contacts?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = api.get(url).json()
        seen += [c["enrichment_id"] for c in page["data"]]
        if not page["pagination"]["has_more"]:
            assert page["pagination"]["next_cursor"] is None
            break
        cursor = page["pagination"]["next_cursor"]
    expected = [
        str(c.pk) for c in sorted(contacts, key=lambda c: (c.created_at, c.pk), reverse=True)
    ]
    assert seen == expected


def test_list_filters(api):
    done = ContactFactory(account=api.account, status="finished", result_status="VERIFIED")
    ContactFactory(account=api.account)
    assert [
        c["enrichment_id"] for c in api.get("/api/v1/contacts?status=finished").json()["data"]
    ] == [str(done.pk)]
    assert len(api.get("/api/v1/contacts?result_status=VERIFIED").json()["data"]) == 1
    assert api.get("/api/v1/contacts?status=weird").status_code == 422
    assert api.get("/api/v1/contacts?limit=101").status_code == 422
    assert api.get("/api/v1/contacts?cursor=@@@").status_code == 422
    assert api.get("/api/v1/contacts?updated_after=2000-01-01T00:00:00Z").json()["data"]


def test_list_query_count_is_constant(api, django_assert_max_num_queries):
    for _ in range(30):
        ContactFactory(account=api.account)
    api.get("/api/v1/contacts?limit=5")
    with django_assert_max_num_queries(4):
        assert len(api.get("/api/v1/contacts?limit=30").json()["data"]) == 30


def test_bulk_status(api):
    bulk_id = post(api, "/api/v1/enrich/bulk", _bulk_body(3)).json()["bulk_id"]
    body = api.get(f"/api/v1/bulk/{bulk_id}").json()
    assert body["status"] == "pending"
    assert body["total"] == 3 and body["finished"] == 0
    assert body["completed_at"] is None


def test_credits(live_api):
    body = live_api.get("/api/v1/credits").json()
    assert body["credits"] == 1000
    assert body["plan"] == "pro"
    assert body["daily_limit"] == 1000


SPEC_CONSENT_TEXT = (
    "You can't use the personal email enrichment feature without consenting with our terms of use"
)


def test_consent_refusal_carries_the_spec_sentence_in_error_and_details(api, redis_client):
    body = {**SARAH, "enrichment_type": ["email", "personal_email"]}
    response = post(api, "/api/v1/enrich", body)
    assert response.status_code == 422
    payload = response.json()
    assert payload["error"] == SPEC_CONSENT_TEXT
    assert payload["code"] == "validation_error"
    assert payload["details"] == {"enrichment_type": SPEC_CONSENT_TEXT}
    assert Contact.objects.count() == 0
    assert queue_length(redis_client) == 0


def test_other_422s_keep_the_generic_error(api):
    response = post(api, "/api/v1/enrich", {**SARAH, "first_name": ""})
    assert response.json()["error"] == "The request is invalid"


def test_bulk_consent_refusal_is_reported_once_for_the_batch(api, redis_client):
    body = _bulk_body(20, enrichment_type=["personal_email"])
    for contact in body["contacts"]:
        contact["linkedin_url"] = "https://www.linkedin.com/in/someone"
    response = post(api, "/api/v1/enrich/bulk", body)
    assert response.status_code == 422
    assert response.json()["error"] == SPEC_CONSENT_TEXT
    assert response.json()["details"] == {"enrichment_type": SPEC_CONSENT_TEXT}
    # A contact asking for it on its own is refused at its own path.
    own = _bulk_body(3)
    own["contacts"][2].update(
        enrichment_type=["personal_email"], linkedin_url="https://www.linkedin.com/in/x"
    )
    response = post(api, "/api/v1/enrich/bulk", own)
    assert response.json()["details"] == {"contacts[2].enrichment_type": SPEC_CONSENT_TEXT}
    assert BulkJob.objects.count() == 0 and queue_length(redis_client) == 0
    consenting = make_client(consent=True)
    assert post(consenting, "/api/v1/enrich/bulk", body).status_code == 202


def test_bulk_validation_rules(api):
    cases = [
        ({"contacts": []}, "contacts"),
        ({"contacts": "nope", "enrichment_type": ["email"]}, "contacts"),
        ({**_bulk_body(2), "enrichment_type": ["fax"]}, "enrichment_type"),
        ({**_bulk_body(2), "phone_country_codes": ["XX"]}, "phone_country_codes"),
        ({**_bulk_body(2), "webhook_url": "ftp://example.com/"}, "webhook_url"),
        ({**_bulk_body(2), "surprise": True}, "surprise"),
        ({"contacts": [{"first_name": "A", "last_name": "B", "domain": "a.com"}]}, None),
        ({"contacts": [1, {}], "enrichment_type": ["email"]}, "contacts[0]"),
    ]
    for body, field in cases:
        response = post(api, "/api/v1/enrich/bulk", body)
        assert response.status_code == 422, body
        details = response.json()["details"]
        assert field in details if field else "contacts[0].enrichment_type" in details, details
    assert BulkJob.objects.count() == 0


def test_bulk_contacts_inherit_batch_settings_and_may_override_them(api):
    body = _bulk_body(2, phone_country_codes=["GB"], webhook_url="https://client.example/h")
    body["contacts"][1]["phone_country_codes"] = ["FR"]
    response = post(api, "/api/v1/enrich/bulk", body)
    assert response.status_code == 202, response.json()
    ids = [c["enrichment_id"] for c in response.json()["contacts"]]
    first, second = (Contact.objects.get(pk=i) for i in ids)
    assert first.phone_country_codes == ["GB"] and second.phone_country_codes == ["FR"]
    assert first.webhook_url == "https://client.example/h"
    assert response["Location"] == f"/api/v1/bulk/{response.json()['bulk_id']}"


def test_plan_without_a_bulk_max_refuses_bulk_requests(db):
    from apps.accounts.models import Plan

    plan, _ = Plan.objects.update_or_create(
        code="nobulk", defaults={"name": "No bulk", "api_access": True}
    )
    client = make_client()
    client.account.plan = plan
    client.account.save(update_fields=["plan"])
    response = post(client, "/api/v1/enrich/bulk", _bulk_body(1))
    assert response.status_code == 422
    assert response.json()["details"] == {"contacts": "This plan does not allow bulk requests."}


def test_contact_and_bulk_shapes_are_exactly_the_spec_fields(api):
    created = post(api, "/api/v1/enrich", SARAH).json()
    contact = api.get(f"/api/v1/contacts/{created['enrichment_id']}").json()
    assert set(contact) == {
        "enrichment_id",
        "status",
        "first_name",
        "last_name",
        "company_name",
        "domain",
        "linkedin_url",
        "enrichment_type",
        "result",
        "credits_charged",
        "sandbox",
        "bulk_id",
        "custom",
        "attempts",
        "created_at",
        "finished_at",
    }
    assert contact["created_at"] == created["created_at"]
    assert contact["created_at"].endswith("Z") and contact["finished_at"] is None
    assert contact["enrichment_type"] == ["email", "phone"]
    accepted = post(api, "/api/v1/enrich/bulk", _bulk_body(2)).json()
    assert set(accepted) == {"bulk_id", "status", "total", "contacts"}
    assert all(set(c) == {"enrichment_id", "custom"} for c in accepted["contacts"])
    bulk = api.get(f"/api/v1/bulk/{accepted['bulk_id']}").json()
    assert set(bulk) == {
        "bulk_id",
        "status",
        "total",
        "finished",
        "verified",
        "not_found",
        "no_credits",
        "failed",
        "credits_used",
        "created_at",
        "completed_at",
    }
    assert bulk["created_at"].endswith("Z")
    member = api.get(f"/api/v1/contacts/{accepted['contacts'][0]['enrichment_id']}").json()
    assert member["bulk_id"] == accepted["bulk_id"]


def test_list_filters_bulk_id_and_updated_after(api):
    from datetime import timedelta

    from django.utils import timezone

    bulk_id = post(api, "/api/v1/enrich/bulk", _bulk_body(2)).json()["bulk_id"]
    single = post(api, "/api/v1/enrich", SARAH).json()["enrichment_id"]
    in_bulk = api.get(f"/api/v1/contacts?bulk_id={bulk_id}").json()["data"]
    assert len(in_bulk) == 2 and {c["bulk_id"] for c in in_bulk} == {bulk_id}
    assert api.get("/api/v1/contacts?bulk_id=nope").status_code == 422
    old = timezone.now() - timedelta(hours=2)
    Contact.objects.exclude(pk=single).update(updated_at=old)
    since = (old + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    recent = api.get("/api/v1/contacts", {"updated_after": since}).json()["data"]
    assert [c["enrichment_id"] for c in recent] == [single]
    assert api.get("/api/v1/contacts?updated_after=2026-01-01T00:00:00").status_code == 422
    assert api.get("/api/v1/contacts?updated_after=yesterday").status_code == 422
    assert api.get("/api/v1/contacts?result_status=verified").status_code == 422
    for limit in ("0", "abc", "1.5"):
        assert api.get(f"/api/v1/contacts?limit={limit}").status_code == 422


def test_credits_and_lists_show_only_the_callers_account(db):
    mine = make_client(mode="live", credits=7)
    theirs = make_client(mode="live", credits=900)
    for _ in range(3):
        post(theirs, "/api/v1/enrich", SARAH)
    answer = mine.get("/api/v1/credits").json()
    assert answer == {"credits": 7, "plan": "pro", "daily_requests_used": 1, "daily_limit": 1000}
    assert mine.get("/api/v1/contacts").json() == {
        "data": [],
        "pagination": {"next_cursor": None, "has_more": False},
    }


def _custom_of_size(size: int) -> dict:
    base = {"k": ""}
    overhead = len(json.dumps(base, separators=(",", ":")).encode())
    return {"k": "x" * (size - overhead)}


def test_boundary_values_are_accepted_and_normalised(api):
    body = {
        **SARAH,
        "first_name": "  " + "A" * 100 + "  ",
        "linkedin_url": "http://linkedin.com/in/sarah-chen/",
        "phone_country_codes": ["us", "GB", "US"],
        "max_credits": 0,
        "custom": _custom_of_size(4096),
    }
    response = post(api, "/api/v1/enrich", body)
    assert response.status_code == 202, response.json()
    contact = Contact.objects.get()
    assert contact.first_name == "A" * 100
    assert response.json()["first_name"] == "A" * 100
    assert contact.phone_country_codes == ["US", "GB"]
    assert contact.max_credits == 0
    too_big = post(api, "/api/v1/enrich", {**SARAH, "custom": _custom_of_size(4097)})
    assert too_big.status_code == 422
    assert "custom" in too_big.json()["details"]


def test_personal_email_needs_a_linkedin_url_even_with_consent(db):
    consenting = make_client(consent=True)
    body = {k: v for k, v in SARAH.items() if k != "linkedin_url"}
    response = post(consenting, "/api/v1/enrich", {**body, "enrichment_type": "personal_email"})
    assert response.status_code == 422
    assert set(response.json()["details"]) == {"linkedin_url"}


def test_domain_or_company_name_is_enough_for_email(api):
    for company, domain in (("Stripe", None), (None, "stripe.com")):
        body = {"first_name": "A", "last_name": "B", "enrichment_type": ["email"]}
        body |= {"company_name": company} if company else {"domain": domain}
        assert post(api, "/api/v1/enrich", body).status_code == 202, body


def test_a_bulk_that_fails_to_commit_enqueues_nothing(api, redis_client, monkeypatch):
    """The publish is an on_commit hook: a rolled-back batch leaves no row and no message."""
    from django.db.models.query import QuerySet

    real = QuerySet.bulk_create

    def insert_then_fail(self, objs, *args, **kwargs):
        created = real(self, objs, *args, **kwargs)
        if self.model is Contact:
            raise RuntimeError("connection lost after the INSERT")
        return created

    monkeypatch.setattr(QuerySet, "bulk_create", insert_then_fail)
    api.raise_request_exception = False
    response = post(api, "/api/v1/enrich/bulk", _bulk_body(5))
    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    assert BulkJob.objects.count() == 0 and Contact.objects.count() == 0
    assert queue_length(redis_client) == 0


@pytest.mark.parametrize(
    "content_type", ["", "application/x-www-form-urlencoded", "text/plain; charset=utf-8"]
)
def test_json_is_read_whatever_the_declared_content_type(api, content_type):
    """curl -d sends form, requests.post(data=...) sends none: JSON is the only input format."""
    ok = api.generic("POST", "/api/v1/enrich", json.dumps(SARAH), content_type=content_type)
    assert ok.status_code == 202, ok.content
    bad = api.generic("POST", "/api/v1/enrich", "first_name=Sarah", content_type=content_type)
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_json"
    bulk = api.generic(
        "POST", "/api/v1/enrich/bulk", json.dumps(_bulk_body(2)), content_type=content_type
    )
    assert bulk.status_code == 202


def test_a_name_that_folds_past_the_person_key_column_is_accepted(api):
    """NFKD folding lengthens "⑽" to "(10)": the reuse key becomes a digest, not a 500 or a
    prefix two people could share."""
    from apps.enrichment.models import Contact
    from apps.enrichment.normalize import PERSON_KEY_MAX_LENGTH

    assert Contact._meta.get_field("person_key").max_length == PERSON_KEY_MAX_LENGTH
    body = {**SARAH, "linkedin_url": None, "enrichment_type": ["email"]}
    body.update(first_name="⑽" * 100, last_name="⑾" * 100)
    response = post(api, "/api/v1/enrich", {k: v for k, v in body.items() if v is not None})
    assert response.status_code == 202, response.json()
    key = Contact.objects.get(pk=response.json()["enrichment_id"]).person_key
    assert key.startswith("sha256:") and len(key) == len("sha256:") + 64
