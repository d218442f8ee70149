"""The prospiq dialect (/compat/prospiq/api/v1/): every example request of the seed page
(/work/shared/seeds/000_…txt) gets an answer of the documented shape, with sandbox keys and
with live keys through the provider simulator; the seed's error cases get its status codes
and ``{"error": "..."}``; webhook bodies and signatures are the seed's."""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import clear_url_caches
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator

from apps.accounts.models import Account, LedgerEntry
from apps.compat.prospiq import errors, shapes, validation, views
from apps.compat.prospiq import webhooks as prospiq_webhooks
from apps.core.errors import InvalidRequest
from apps.core.timefmt import iso
from apps.enrichment import services as enrichment_services
from apps.enrichment.models import BulkJob, Contact
from apps.enrichment.services import waiting
from apps.webhooks import formats
from apps.webhooks.models import Event
from apps.webhooks.services import event_emit
from apps.webhooks.services.events import event_body
from apps.webhooks.signing import secret_generate, secret_key
from tests.factories import AccountFactory
from tests.support.api import make_client
from tests.support.ratelimit import small_plan
from tests.support.receiver import Answer, Receiver
from tests.support.simulator import SimulatorProcess
from tests.support.worker import wait_for

BASE = "/compat/prospiq/api/v1"

# --- The seed's example requests, as the page writes them -------------------------------------

SEED_ENRICH = {"first_name": "Sarah", "last_name": "Chen", "company": "Stripe", "type": "email"}
SEED_BULK = {
    "type": "email",
    "contacts": [
        {"first_name": "Sarah", "last_name": "Chen", "company": "Stripe"},
        {"first_name": "Maya", "last_name": "Patel", "company": "Linear"},
        {"first_name": "Jordan", "last_name": "Park", "company": "Vercel"},
    ],
}
LINKEDIN = "https://www.linkedin.com/in/sarahchen"

# --- The documented shapes: key -> type (required keys, then those that may be absent) -------

ENRICH_KEYS = {"status": str, "credits_remaining": int, "search_id": str}
ENRICH_OPTIONAL = {
    "email": str,
    "phone": list,
    "job_title": str,
    "company_domain": str,
    "confidence": int,
    "_sandbox": bool,
}
BULK_KEYS = {
    "status": str,
    "bulk_id": str,
    "total": int,
    "verified": int,
    "not_found": int,
    "credits_used": int,
    "credits_remaining": int,
    "results": list,
}
BULK_RESULT_KEYS = {"first_name": str, "last_name": str, "company": str, "status": str}
BULK_RESULT_OPTIONAL = {**ENRICH_OPTIONAL, "search_id": str}
CREDITS_KEYS = {"credits": int, "plan": str, "daily_requests_used": int, "daily_limit": int}
SUBSCRIPTION_CREATED_KEYS = {
    "id": str,
    "event": str,
    "target_url": str,
    "secret": str,
    "active": bool,
    "created_at": str,
}
SUBSCRIPTION_KEYS = {
    "id": str,
    "event": str,
    "target_url": str,
    "active": bool,
    "consecutive_failures": int,
    "last_triggered_at": (str, type(None)),
    "last_failure_at": (str, type(None)),
    "created_at": str,
}
CONTACT_EVENT_DATA_KEYS = {
    # The seed's contact.verified data, then Sluice's additions (status, company_domain).
    "first_name": str,
    "last_name": str,
    "company": str,
    "email": (str, type(None)),
    "phone": (list, type(None)),
    "job_title": (str, type(None)),
    "confidence": (int, type(None)),
    "search_id": str,
    "status": str,
    "company_domain": (str, type(None)),
}


def assert_shape(body: dict, keys: dict, optional: dict | None = None) -> None:
    optional = optional or {}
    assert isinstance(body, dict), body
    assert set(keys) <= set(body), f"missing {set(keys) - set(body)} in {body}"
    assert set(body) <= set(keys) | set(optional), f"unexpected {set(body) - set(keys)}"
    for key, kind in {**keys, **optional}.items():
        if key in body:
            assert isinstance(body[key], kind), (key, body[key])
            if kind is int:
                assert not isinstance(body[key], bool), key


def assert_phones(phones: list) -> None:
    for item in phones:
        assert set(item) == {"number", "type"} and item["type"] in shapes.PHONE_TYPES, item


def post(client, path: str, body, **extra):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(BASE + path, data, content_type="application/json", **extra)


def error_of(response) -> str:
    """The seed's error body: exactly ``{"error": "..."}``."""
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"], body
    return body["error"]


@pytest.fixture(autouse=True, scope="module")
def _stop_the_listener():
    """The sync wait's LISTEN connection would keep the test database from being dropped."""
    yield
    waiting.listener.stop()


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def no_waiting(settings):
    """Every wait slot taken: the enrich and bulk answers are the 202 at once (no worker)."""
    settings.ENRICH_SYNC_MAX_WAITS = 0


# --- Sandbox keys, end to end through a real worker ------------------------------------------


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_seed_enrich_examples_with_a_sandbox_key(api, worker):
    response = post(api, "/enrich", SEED_ENRICH)
    assert response.status_code == 200, response.content
    body = response.json()
    assert_shape(body, ENRICH_KEYS, ENRICH_OPTIONAL)
    # The sandbox answer: deterministic, marked, free.
    assert body["status"] == "VERIFIED" and body["_sandbox"] is True
    assert body["email"] == "sarah.chen@stripe.com" and body["company_domain"] == "stripe.com"
    assert 0 <= body["confidence"] <= 100 and "phone" not in body
    assert body["credits_remaining"] == 1000
    assert response["Location"] == f"/api/v1/contacts/{body['search_id']}"
    # The same contact through Sluice's own API.
    sluice = api.get(f"/api/v1/contacts/{body['search_id']}").json()
    assert sluice["result"]["email"] == body["email"] and sluice["company_name"] == "Stripe"

    # type=both: the seed's sandbox shape, with the seed's phone.
    both = post(api, "/enrich", SEED_ENRICH | {"type": "both", "linkedin_url": LINKEDIN})
    assert both.status_code == 200, both.content
    assert_shape(both.json(), ENRICH_KEYS, ENRICH_OPTIONAL)
    assert both.json()["phone"] == [{"number": "+1 (555) 000-0000", "type": "mobile"}]
    assert both.json()["email"] == "sarah.chen@stripe.com"

    # fields restricts the result fields; status and the balance stay.
    only = post(api, "/enrich", SEED_ENRICH | {"fields": ["email"]}).json()
    assert set(only) == {"status", "email", "search_id", "credits_remaining", "_sandbox"}

    # A company given as a domain is looked up as one.
    domain = post(api, "/enrich", SEED_ENRICH | {"company": "https://www.Linear.app/about"})
    assert domain.json()["email"] == "sarah.chen@linear.app"

    # Nobody found: NOT_FOUND, no email, no confidence, nothing charged.
    missing = post(api, "/enrich", SEED_ENRICH | {"last_name": "Notfound"})
    assert missing.status_code == 200
    assert_shape(missing.json(), ENRICH_KEYS, ENRICH_OPTIONAL)
    assert missing.json()["status"] == "NOT_FOUND"
    assert "email" not in missing.json() and "confidence" not in missing.json()


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_seed_bulk_example_with_a_sandbox_key_answers_every_result(api, worker):
    body = SEED_BULK | {"contacts": [*SEED_BULK["contacts"], {
        "first_name": "Nobody", "last_name": "Notfound", "company": "vercel.com"
    }]}  # fmt: skip
    response = post(api, "/enrich/bulk", body)
    assert response.status_code == 200, response.content
    answer = response.json()
    assert_shape(answer, BULK_KEYS, {"_sandbox": bool})
    assert answer["status"] == "completed" and answer["_sandbox"] is True
    assert (answer["total"], answer["verified"], answer["not_found"]) == (4, 3, 1)
    assert answer["credits_used"] == 0 and answer["credits_remaining"] == 1000
    for result in answer["results"]:
        assert_shape(result, BULK_RESULT_KEYS, BULK_RESULT_OPTIONAL)
    # In request order, the input echoed.
    assert [(r["first_name"], r["company"]) for r in answer["results"]] == [
        ("Sarah", "Stripe"),
        ("Maya", "Linear"),
        ("Jordan", "Vercel"),
        ("Nobody", "vercel.com"),
    ]
    assert answer["results"][1]["email"] == "maya.patel@linear.com"
    # As in the seed: NOT_FOUND still names the company's domain.
    assert answer["results"][3]["status"] == "NOT_FOUND"
    assert answer["results"][3]["company_domain"] == "vercel.com"
    assert "email" not in answer["results"][3]
    assert BulkJob.objects.get(pk=answer["bulk_id"]).completed_at is not None


def assert_prospiq_delivery(request, secret: str) -> dict:
    """A delivery as the seed describes it: its body shape, its hex signature over the raw
    bytes keyed with the whole secret, its event header; and the Standard Webhooks headers."""
    from standardwebhooks.webhooks import Webhook

    sent = json.loads(request.body)
    assert list(sent)[:3] == ["event", "data", "timestamp"], sent
    expected = hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["x-prospiq-signature"] == expected
    assert request.headers["x-prospiq-event"] == sent["event"]
    assert Webhook(secret).verify(request.body, request.headers) == sent
    return sent


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_subscriptions_and_a_bulk_webhook_url_receive_prospiqs_payloads(api, worker, receiver):
    verified = subscribe(api, receiver.url("/verified")).json()
    completed = subscribe(api, receiver.url("/completed"), "bulk.completed").json()
    body = SEED_BULK | {"webhook_url": receiver.url("/bulk")}
    answer = post(api, "/enrich/bulk", body).json()
    assert answer["status"] == "completed"

    wait_for(
        lambda: len(receiver.received()) >= 5,
        timeout=30,
        message=f"deliveries: {[r.path for r in receiver.received()]}",
    )
    by_path: dict[str, list] = {}
    for request in receiver.received():
        by_path.setdefault(request.path, []).append(request)
    assert sorted((path, len(got)) for path, got in by_path.items()) == [
        ("/bulk", 1),
        ("/completed", 1),
        ("/verified", 3),
    ]
    search_ids = set()
    for request in by_path["/verified"]:
        sent = assert_prospiq_delivery(request, verified["secret"])
        assert sent["event"] == "contact.verified" and sent["_sandbox"] is True
        assert_shape(sent["data"], CONTACT_EVENT_DATA_KEYS)
        search_ids.add(sent["data"]["search_id"])
    assert search_ids == {r["search_id"] for r in answer["results"]}
    (done,) = by_path["/completed"]
    sent = assert_prospiq_delivery(done, completed["secret"])
    assert sent["event"] == "bulk.completed" and sent["data"]["bulk_id"] == answer["bulk_id"]
    assert {k: sent["data"][k] for k in ("total", "verified", "not_found", "credits_used")} == {
        "total": 3,
        "verified": 3,
        "not_found": 0,
        "credits_used": 0,
    }
    # The request's webhook_url: the completion only, signed with the account's callback
    # secret (Sluice's rule for request-level URLs).
    (callback,) = by_path["/bulk"]
    account = Account.objects.get(pk=api.account.pk)
    assert assert_prospiq_delivery(callback, account.callback_secret)["event"] == "bulk.completed"


# --- Live keys, end to end through the worker and the provider simulator ---------------------


@pytest.fixture
def simulator():
    # Every vendor knows everyone: the answers are VERIFIED where the waterfall accepts them.
    proc = SimulatorProcess(
        env={
            "SIMULATOR_LATENCY_MS": "5",
            "SIMULATOR_HUNTER_HIT_RATE": "1",
            "SIMULATOR_PDL_HIT_RATE": "1",
            "SIMULATOR_APOLLO_HIT_RATE": "1",
        }
    ).start()
    yield proc
    proc.stop()


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_seed_examples_with_a_live_key_through_the_simulator(worker_factory, simulator):
    live = make_client(mode="live", credits=500)
    worker_factory(
        env={"PROVIDER_SIMULATOR_URL": simulator.url, "PROVIDER_RETRY_BACKOFF_SECONDS": "0.01"},
        queues="enrichment",
    )

    response = post(live, "/enrich", SEED_ENRICH)
    assert response.status_code == 200, response.content
    body = response.json()
    assert_shape(body, ENRICH_KEYS, ENRICH_OPTIONAL)
    assert "_sandbox" not in body and body["status"] in ("VERIFIED", "NOT_FOUND")
    contact = Contact.objects.get(pk=body["search_id"])
    assert contact.sandbox is False and contact.result["providers"] != {"email": "sandbox"}
    # The balance after this request: what the ledger says, the charge taken.
    assert body["credits_remaining"] == Account.objects.get(pk=live.account.pk).credits
    assert body["credits_remaining"] == 500 - contact.credits_charged
    if body["status"] == "VERIFIED":
        assert body["email"] == contact.result["email"] and contact.credits_charged == 1

    bulk = post(live, "/enrich/bulk", SEED_BULK)
    assert bulk.status_code == 200, bulk.content
    answer = bulk.json()
    assert_shape(answer, BULK_KEYS)
    assert answer["status"] == "completed" and answer["total"] == 3
    for result in answer["results"]:
        assert_shape(result, BULK_RESULT_KEYS, BULK_RESULT_OPTIONAL)
        assert result["status"] in shapes.STATUSES
    charged = sum(
        -e.amount
        for e in LedgerEntry.objects.filter(
            contact__bulk_id=answer["bulk_id"], entry_type=LedgerEntry.CHARGE
        )
    )
    assert answer["credits_used"] == charged
    assert answer["verified"] == sum(r["status"] == "VERIFIED" for r in answer["results"])
    assert answer["credits_remaining"] == Account.objects.get(pk=live.account.pk).credits
    assert answer["verified"] >= 1, "the simulator knows everyone: something is verified"


# --- The waits: bounded, then 202 with the ids ------------------------------------------------


def test_an_enrich_that_cannot_wait_answers_202_with_its_id(api, no_waiting):
    response = post(api, "/enrich", SEED_ENRICH)
    assert response.status_code == 202
    body = response.json()
    assert body == {"status": "PENDING", "search_id": body["search_id"], "_sandbox": True}
    assert response["Location"] == f"/api/v1/contacts/{body['search_id']}"
    contact = Contact.objects.get(pk=body["search_id"])
    assert contact.status == Contact.PENDING and contact.company_name == "Stripe"


def test_a_bulk_that_cannot_wait_answers_202_with_every_id(api, no_waiting):
    response = post(api, "/enrich/bulk", SEED_BULK)
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "pending" and body["total"] == 3 and body["_sandbox"] is True
    assert response["Location"] == f"/api/v1/bulk/{body['bulk_id']}"
    stored = list(Contact.objects.filter(bulk_id=body["bulk_id"]).order_by("position"))
    assert [r["search_id"] for r in body["results"]] == [str(c.pk) for c in stored]
    assert [(r["first_name"], r["company"], r["status"]) for r in body["results"]] == [
        ("Sarah", "Stripe", "PENDING"),
        ("Maya", "Linear", "PENDING"),
        ("Jordan", "Vercel", "PENDING"),
    ]


def test_the_waits_use_the_sync_timeout_setting(api, settings, monkeypatch):
    settings.ENRICH_SYNC_TIMEOUT_SECONDS = 0.01
    seen = []

    def spy(real):
        def call(**kwargs):
            seen.append(kwargs["timeout"])
            return real(**kwargs)

        return call

    monkeypatch.setattr(
        enrichment_services, "contact_enrich_sync", spy(enrichment_services.contact_enrich_sync)
    )
    monkeypatch.setattr(
        enrichment_services, "bulk_enrich_sync", spy(enrichment_services.bulk_enrich_sync)
    )
    assert post(api, "/enrich", SEED_ENRICH).status_code == 202
    assert post(api, "/enrich/bulk", SEED_BULK).status_code == 202
    assert seen == [0.01, 0.01]


def test_a_single_enrichment_that_ends_no_credits_is_a_402(db, monkeypatch):
    """The seed: NO_CREDITS appears only in bulk answers; a single request is refused."""
    live = make_client(mode="live", credits=5)

    def finished_without_credits(*, account, api_key, clean, timeout):
        contact = enrichment_services.contact_enqueue(account=account, api_key=api_key, clean=clean)
        Contact.objects.filter(pk=contact.pk).update(
            status=Contact.FINISHED,
            result_status=Contact.NO_CREDITS,
            result={"status": "NO_CREDITS", "phones": []},
        )
        # As the service answers: the contact as read once finished, and its attempts.
        return Contact.objects.get(pk=contact.pk), []

    monkeypatch.setattr(enrichment_services, "contact_enrich_sync", finished_without_credits)
    response = post(live, "/enrich", SEED_ENRICH)
    assert response.status_code == 402
    assert error_of(response) == "Insufficient credits"


def test_bulk_results_carry_no_credits_per_contact_and_failed_as_not_found(db, monkeypatch):
    """The seed: NO_CREDITS appears in bulk answers, per contact; Sluice's FAILED (every
    provider errored) is NOT_FOUND to a prospiq client, and counted so."""
    live = make_client(mode="live", credits=5)
    outcomes = [Contact.VERIFIED, Contact.NO_CREDITS, Contact.FAILED]

    def finished_in_turn(*, account, api_key, clean, timeout):
        bulk, contacts = enrichment_services.bulk_enqueue(
            account=account, api_key=api_key, clean=clean
        )
        for contact, outcome in zip(contacts, outcomes, strict=True):
            result = {"status": outcome, "phones": [], "email": None, "confidence": None}
            if outcome == Contact.VERIFIED:
                result |= {"email": "sarah@stripe.com", "confidence": 90}
            Contact.objects.filter(pk=contact.pk).update(
                status=Contact.FINISHED, result_status=outcome, result=result, credits_charged=1
            )
        BulkJob.objects.filter(pk=bulk.pk).update(
            finished=3, verified=1, no_credits=1, failed=1, credits_used=1
        )
        return bulk, contacts, True

    monkeypatch.setattr(enrichment_services, "bulk_enrich_sync", finished_in_turn)
    answer = post(live, "/enrich/bulk", SEED_BULK).json()
    assert [r["status"] for r in answer["results"]] == ["VERIFIED", "NO_CREDITS", "NOT_FOUND"]
    assert (answer["verified"], answer["not_found"], answer["credits_used"]) == (1, 1, 1)
    assert answer["results"][0]["email"] == "sarah@stripe.com"
    assert "email" not in answer["results"][1] and "confidence" not in answer["results"][2]
    assert "_sandbox" not in answer and answer["credits_remaining"] == 5


def test_a_key_revoked_since_it_was_cached_is_refused_in_prospiqs_body(api, no_waiting):
    from apps.accounts.services import api_key_revoke

    assert post(api, "/enrich", SEED_ENRICH).status_code == 202  # the key is cached now
    api_key_revoke(api_key=api.key)
    response = post(api, "/enrich", SEED_ENRICH)
    assert response.status_code == 401
    assert error_of(response) == "This API key has been revoked"
    assert Contact.objects.count() == 1


# --- The seed's error cases, with its status codes --------------------------------------------


def test_missing_fields_are_422_named_as_prospiq_names_them(api):
    response = post(api, "/enrich", {"last_name": "Chen"})
    assert response.status_code == 422
    assert sorted(error_of(response).split("; ")) == [
        "company: This field is required.",
        "first_name: This field is required.",
    ]
    assert not Contact.objects.exists()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"first_name": "S"}, "first_name: Must be 2+ characters."),
        ({"company": "S"}, "company: Must be 2+ characters."),
        ({"company": 7}, "company: Must be a string."),
        ({"company": "  "}, "company: This field may not be blank."),
        ({"last_name": ""}, "last_name: This field may not be blank."),
        ({"type": "personal_email"}, "type: Must be one of email, phone or both."),
        ({"type": ["email"]}, "type: Must be one of email, phone or both."),
        ({"domain": "stripe.com"}, "domain: Unknown field."),
        ({"enrichment_type": ["email"]}, "enrichment_type: Unknown field."),
        ({"fields": ["email", "linkedin"]}, "fields: Unknown field 'linkedin'"),
        ({"fields": []}, "fields: Must be a non-empty list"),
        # Sluice's rule, named by Sluice's field that prospiq lacks (accepted as an extension).
        ({"type": "phone"}, "linkedin_url: The phone enrichment needs a linkedin_url."),
        ({"type": "both"}, "linkedin_url: The phone enrichment needs a linkedin_url."),
        ({"linkedin_url": "https://example.com/x"}, "linkedin_url: Must be an http(s) LinkedIn"),
        ({"custom": [1]}, "custom: Must be a JSON object."),
        # Sluice's cleaner on the company it was given, renamed back to prospiq's field.
        ({"company": "x" * 201}, "company: Must be at most 200 characters."),
    ],
)
def test_invalid_enrich_bodies_are_422_with_the_field_named(api, change, expected):
    response = post(api, "/enrich", SEED_ENRICH | change)
    assert response.status_code == 422, response.content
    assert error_of(response).startswith(expected)
    assert not Contact.objects.exists()


def test_the_company_is_a_domain_when_it_reads_as_one(api, no_waiting):
    for company, stored in [
        ("Stripe", ("Stripe", "")),
        ("Acme, Inc.", ("Acme, Inc.", "")),
        ("https://www.Stripe.com/about", ("", "stripe.com")),
        ("booking.com", ("", "booking.com")),
    ]:
        response = post(api, "/enrich", SEED_ENRICH | {"company": company})
        assert response.status_code == 202, response.content
        contact = Contact.objects.get(pk=response.json()["search_id"])
        assert (contact.company_name, contact.domain) == stored, company


def test_type_maps_to_sluices_enrichment_types(api, no_waiting):
    for kind, expected in [
        (None, ["email"]),
        ("email", ["email"]),
        ("phone", ["phone"]),
        ("both", ["email", "phone"]),
    ]:
        body = {k: v for k, v in SEED_ENRICH.items() if k != "type"} | {"linkedin_url": LINKEDIN}
        if kind:
            body["type"] = kind
        response = post(api, "/enrich", body)
        assert response.status_code == 202, response.content
        assert Contact.objects.get(pk=response.json()["search_id"]).enrichment_type == expected


def test_sluices_extensions_pass_through(api, no_waiting):
    body = SEED_ENRICH | {
        "type": "phone",
        "linkedin_url": LINKEDIN,
        "custom": {"hubspot_id": "4447901"},
        "phone_country_codes": ["us"],
    }
    contact = Contact.objects.get(pk=post(api, "/enrich", body).json()["search_id"])
    assert contact.linkedin_url == LINKEDIN and contact.custom == {"hubspot_id": "4447901"}
    assert contact.phone_country_codes == ["US"]


def test_bulk_over_the_plan_max_is_422(db):
    growth = make_client(plan_code="growth")
    contacts = [
        {"first_name": "Ada", "last_name": f"L{i}", "company": "engines.io"} for i in range(51)
    ]
    response = post(growth, "/enrich/bulk", {"contacts": contacts})
    assert response.status_code == 422
    assert error_of(response) == "contacts: At most 50 contacts per request on this plan."
    assert not Contact.objects.exists()


def test_bulk_problems_name_each_contact_and_nothing_is_stored(api):
    body = {
        "type": "sms",
        "contacts": [
            {"first_name": "Sarah", "last_name": "Chen", "company": "Stripe"},
            {"first_name": "M", "last_name": "Patel"},
            "Jordan Park",
            {"first_name": "Jo", "last_name": "Park", "company": "Vercel", "title": "CEO"},
        ],
    }
    response = post(api, "/enrich/bulk", body)
    assert response.status_code == 422
    message = error_of(response)
    for part in [
        "type: Must be one of email, phone or both.",
        "contacts[1].first_name: Must be 2+ characters.",
        "contacts[1].company: This field is required.",
        "contacts[2]: Must be a JSON object.",
        "contacts[3].title: Unknown field.",
    ]:
        assert part in message, message
    assert "company_name" not in message and "domain" not in message
    assert not Contact.objects.exists() and not BulkJob.objects.exists()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"contacts": []}, "contacts: Must be a non-empty list of contacts."),
        ({}, "contacts: Must be a non-empty list of contacts."),
        ({"contacts": [SEED_ENRICH], "fields": ["email"]}, "fields: Unknown field."),
        (
            {"contacts": SEED_BULK["contacts"], "type": "phone"},
            "contacts[0].linkedin_url: The phone enrichment needs a linkedin_url.",
        ),
        ({"contacts": SEED_BULK["contacts"], "webhook_url": "ftp://x"}, "webhook_url: "),
    ],
)
def test_bad_bulk_bodies_are_422(api, body, expected):
    response = post(api, "/enrich/bulk", body)
    assert response.status_code == 422, response.content
    assert error_of(response).startswith(expected)


def test_a_bulk_webhook_url_gets_the_completion_only_in_prospiqs_shape(api, no_waiting):
    body = SEED_BULK | {"webhook_url": "http://127.0.0.1:9/hooks"}
    response = post(api, "/enrich/bulk", body)
    assert response.status_code == 202, response.content
    bulk = BulkJob.objects.get(pk=response.json()["bulk_id"])
    assert bulk.webhook_url == "http://127.0.0.1:9/hooks"
    assert bulk.webhook_format == prospiq_webhooks.FORMAT
    # Not one contact.enriched per contact, as Sluice's own bulk webhook_url would get.
    assert set(bulk.contacts.values_list("webhook_url", flat=True)) == {""}


def test_out_of_credits_is_402(db):
    empty = make_client(mode="live", credits=0)
    for path, body in [("/enrich", SEED_ENRICH), ("/enrich/bulk", SEED_BULK)]:
        response = post(empty, path, body)
        assert response.status_code == 402, path
        assert error_of(response) == "Insufficient credits"
    assert not Contact.objects.exists()


def test_rate_limited_is_429_with_retry_after(db):
    client = make_client(account=AccountFactory(plan=small_plan(per_minute=2)))
    assert client.get(f"{BASE}/credits").status_code == 200
    assert post(client, "/enrich", {"first_name": "x"}).status_code == 422
    for response in (client.get(f"{BASE}/credits"), post(client, "/enrich", SEED_ENRICH)):
        assert response.status_code == 429
        assert error_of(response).startswith("Rate limit exceeded")
        assert int(response["Retry-After"]) >= 1
    assert not Contact.objects.exists()


def test_authentication_and_body_errors_have_the_seeds_codes(db):
    anonymous = make_client()
    anonymous.credentials()
    assert anonymous.get(f"{BASE}/credits").status_code == 401
    assert error_of(anonymous.get(f"{BASE}/credits")) == "Missing API key"
    anonymous.credentials(HTTP_AUTHORIZATION="Bearer piq_live_xxxxxxxxxxxx")
    assert error_of(post(anonymous, "/enrich", SEED_ENRICH)) == "Malformed API key"

    free = make_client(plan_code="free")
    response = post(free, "/enrich", SEED_ENRICH)
    assert response.status_code == 403 and "no API access" in error_of(response)

    api = make_client()
    for raw in ("{", "[1]", ""):
        response = post(api, "/enrich", raw)
        assert response.status_code == 400, raw
        error_of(response)
    response = api.get(f"{BASE}/enrich")
    assert response.status_code == 405 and error_of(response)

    reader = make_client(scopes=["read"])
    response = post(reader, "/enrich", SEED_ENRICH)
    assert response.status_code == 403
    assert error_of(response) == "This key lacks the 'enrich' scope"
    assert reader.get(f"{BASE}/credits").status_code == 200
    assert reader.get(f"{BASE}/webhooks").status_code == 403


def test_an_unexpected_error_is_a_500_in_prospiqs_body(api, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(views.account_selectors, "credits_data", broken)
    response = api.get(f"{BASE}/credits")
    assert response.status_code == 500
    assert error_of(response) == "Internal server error"


def test_error_paths_are_renamed_to_prospiqs_fields():
    assert validation.prospiq_path("company_name") == "company"
    assert validation.prospiq_path("contacts[3].domain") == "contacts[3].company"
    assert validation.prospiq_path("enrichment_type") == "type"
    assert validation.prospiq_path("url") == "target_url"
    assert validation.prospiq_path("contacts[3]") == "contacts[3]"
    assert validation.prospiq_path("linkedin_url") == "linkedin_url"
    # Two Sluice fields that are one prospiq field: the first message stands alone.
    refused = InvalidRequest(details={"company_name": "Too long.", "domain": "Bad."})
    assert validation.renamed(refused).details == {"company": "Too long."}
    body = {"error": "The request is invalid", "details": {"company": "Too short."}}
    assert errors.message(body, 422) == "company: Too short."
    # A 422 with its own message keeps it (its details are not about fields).
    body = {"error": "At most 20 endpoints", "details": {"limit": 20}}
    assert errors.message(body, 422) == "At most 20 endpoints"
    assert errors.message({"error": "Not found", "details": {}}, 404) == "Not found"


# --- GET credits ------------------------------------------------------------------------------


def test_credits_has_the_seeds_shape(db):
    live = make_client(mode="live", credits=1497, plan_code="growth")
    response = live.get(f"{BASE}/credits")
    assert response.status_code == 200
    body = response.json()
    assert_shape(body, CREDITS_KEYS)
    assert (body["credits"], body["plan"], body["daily_limit"]) == (1497, "growth", 500)
    # This very request counts against today's cap (live keys).
    assert body["daily_requests_used"] == 1
    assert body == live.get("/api/v1/credits").json() | {"daily_requests_used": 1}


# --- Webhook bodies and signatures ------------------------------------------------------------

CONTACT_DATA = {
    "enrichment_id": "0b6f0000-0000-4000-8000-000000000000",
    "status": "finished",
    "first_name": "Sarah",
    "last_name": "Chen",
    "company_name": "Stripe",
    "domain": None,
    "linkedin_url": None,
    "enrichment_type": ["email", "phone"],
    "result": {
        "status": "VERIFIED",
        "email": "sarah.chen@stripe.com",
        "email_status": "valid",
        "personal_email": None,
        "phones": [{"number": "+442079460000", "type": "work", "country": "GB"}],
        "job_title": "Head of Growth",
        "company_domain": "stripe.com",
        "confidence": 97,
        "providers": {"email": "hunter"},
    },
    "credits_charged": 11,
    "sandbox": False,
    "bulk_id": None,
    "custom": None,
    "attempts": [],
    "created_at": "2026-05-13T18:29:59.000Z",
    "finished_at": "2026-05-13T18:30:00.000Z",
}


def stored(type: str, data, *, sandbox: bool = False, test: bool = False) -> str:
    """An event body exactly as Sluice stores it."""
    return event_body(
        event_id="evt_a8f31b",
        type=type,
        created_at=datetime(2026, 5, 13, 18, 30, tzinfo=UTC),
        data=data,
        sandbox=sandbox,
        test=test,
    )


def test_the_prospiq_format_is_registered_at_start_up():
    assert formats.FORMATS[prospiq_webhooks.FORMAT].render is prospiq_webhooks.render
    body, used = formats.rendered("prospiq", stored("contact.verified", CONTACT_DATA))
    assert used is formats.FORMATS["prospiq"]
    assert json.loads(body)["event"] == "contact.verified"


def test_a_contact_event_is_the_seeds_payload_shape():
    body = json.loads(prospiq_webhooks.render(json.loads(stored("contact.verified", CONTACT_DATA))))
    assert list(body) == ["event", "data", "timestamp"]
    assert body["event"] == "contact.verified" and body["timestamp"] == "2026-05-13T18:30:00.000Z"
    assert_shape(body["data"], CONTACT_EVENT_DATA_KEYS)
    assert body["data"] == {
        "first_name": "Sarah",
        "last_name": "Chen",
        "company": "Stripe",
        "email": "sarah.chen@stripe.com",
        "phone": [{"number": "+44 20 7946 0000", "type": "office"}],
        "job_title": "Head of Growth",
        "confidence": 97,
        "search_id": CONTACT_DATA["enrichment_id"],
        "status": "VERIFIED",
        "company_domain": "stripe.com",
    }
    # No phone found: null, as the seed's example.
    found_nothing = CONTACT_DATA | {"result": {**CONTACT_DATA["result"], "phones": []}}
    payload = json.loads(stored("contact.enriched", found_nothing))
    body = json.loads(prospiq_webhooks.render(payload))
    assert body["data"]["phone"] is None and body["event"] == "contact.enriched"


def test_every_event_type_renders_the_seeds_data():
    def data_of(type: str, data) -> dict:
        return json.loads(prospiq_webhooks.render(json.loads(stored(type, data))))["data"]

    bulk = {"bulk_id": "b", "total": 50, "verified": 38, "not_found": 10, "failed": 2}
    assert data_of("bulk.completed", bulk | {"credits_used": 38, "no_credits": 0}) == {
        "total": 50,
        "verified": 38,
        "not_found": 12,
        "credits_used": 38,
        "credits_remaining": None,
        "bulk_id": "b",
    }
    low = {"account_id": "a", "credits": 42, "threshold": 100}
    assert data_of("credits.low", low) == {"credits": 42, "plan": None, "threshold": 100}
    exhausted = {"account_id": "a", "credits": 0, "threshold": 100}
    assert data_of("credits.exhausted", exhausted) == {"credits": 0, "plan": None}
    endpoint = {
        "id": "e",
        "url": "https://x.example/h",
        "events": ["contact.verified"],
        "active": False,
        "consecutive_failures": 20,
        "last_success_at": None,
        "last_failure_at": "2026-05-13T18:30:00.000Z",
        "created_at": "2026-05-01T00:00:00.000Z",
        "disabled_reason": "The endpoint answered 410 Gone.",
    }
    disabled = data_of("endpoint.disabled", endpoint)
    assert disabled["event"] == "contact.verified" and disabled["target_url"] == endpoint["url"]
    assert disabled["disabled_reason"] == endpoint["disabled_reason"]
    added = {
        "list_id": "l",
        "list_name": "Q2 SaaS targets",
        "enrichment_id": "c",
        "status": "finished",
        "contact_email": "sarah.chen@stripe.com",
        "contact_name": "Sarah Chen",
        "company": "Stripe",
        "job_title": "Head of Growth",
        "bulk_id": None,
        "custom": {"row": 1},
        "added_at": "2026-05-13T18:30:00.000Z",
    }
    # The seed's seven fields first (search_id is the enrichment id), then Sluice's status/custom.
    assert data_of("contact.added_to_list", added) == {
        "list_id": "l",
        "list_name": "Q2 SaaS targets",
        "contact_email": "sarah.chen@stripe.com",
        "contact_name": "Sarah Chen",
        "company": "Stripe",
        "job_title": "Head of Growth",
        "search_id": "c",
        "status": "finished",
        "custom": {"row": 1},
    }


def test_test_and_sandbox_events_are_marked_in_the_body_and_headers():
    payload = json.loads(stored("contact.verified", CONTACT_DATA, sandbox=True, test=True))
    body = prospiq_webhooks.render(payload)
    sent = json.loads(body)
    assert sent["_test"] is True and sent["_sandbox"] is True
    headers = prospiq_webhooks.headers(secret_generate(), body)
    assert headers["X-ProspIQ-Test"] == "true"
    plain = prospiq_webhooks.render(json.loads(stored("contact.verified", CONTACT_DATA)))
    assert "_test" not in json.loads(plain) and "_sandbox" not in json.loads(plain)
    assert "X-ProspIQ-Test" not in prospiq_webhooks.headers(secret_generate(), plain)


def test_rendering_is_deterministic():
    event = stored("contact.verified", CONTACT_DATA | {"custom": {"b": 1, "a": "é"}})
    first = prospiq_webhooks.render(json.loads(event))
    assert prospiq_webhooks.render(json.loads(event)) == first
    assert first.isascii() and b'", "' not in first and b'": ' not in first  # compact
    assert json.loads(first)["data"]["custom"] == {"b": 1, "a": "é"}


def test_the_signature_is_the_seeds_openssl_hmac_of_the_whole_secret():
    secret = secret_generate()
    body = prospiq_webhooks.render(json.loads(stored("contact.verified", CONTACT_DATA)))
    headers = prospiq_webhooks.headers(secret, body)
    # echo -n "$REQUEST_BODY" | openssl dgst -sha256 -hmac "$WEBHOOK_SECRET" -hex
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-ProspIQ-Signature"] == expected
    # Not the Standard Webhooks key (the decoded part after whsec_).
    assert (
        headers["X-ProspIQ-Signature"]
        != hmac.new(secret_key(secret), body, hashlib.sha256).hexdigest()
    )
    assert headers["X-ProspIQ-Event"] == "contact.verified"
    assert prospiq_webhooks.headers(secret, body + b" ")["X-ProspIQ-Signature"] != expected


def test_phones_are_written_as_prospiq_writes_them():
    assert shapes.phone({"number": "+15550000000", "type": "mobile"}) == {
        "number": "+1 (555) 000-0000",
        "type": "mobile",
    }
    assert shapes.phone({"number": "+14155552671", "type": "landline"}) == {
        "number": "+1 (415) 555-2671",
        "type": "direct",
    }
    assert shapes.phone({"number": "+33142685300", "type": "toll_free"})["type"] == "office"
    assert shapes.phone({"number": "not a number", "type": None}) == {
        "number": "not a number",
        "type": "direct",
    }


# --- Subscriptions: subscribe, list, test, unsubscribe, poll ----------------------------------


def subscribe(client, url: str, event: str = "contact.verified"):
    return post(client, "/subscribe", {"event": event, "target_url": url})


def test_subscribe_list_and_unsubscribe_have_the_seeds_shapes(api, receiver):
    response = subscribe(api, receiver.url())
    assert response.status_code == 200, response.content
    created = response.json()
    assert_shape(created, SUBSCRIPTION_CREATED_KEYS)
    assert created["secret"].startswith("whsec_") and created["active"] is True
    assert (created["event"], created["target_url"]) == ("contact.verified", receiver.url())

    # The same event and URL again: 409.
    again = subscribe(api, receiver.url())
    assert again.status_code == 409 and error_of(again)

    listed = api.get(f"{BASE}/webhooks").json()
    assert set(listed) == {"subscriptions", "available_events"}
    (subscription,) = listed["subscriptions"]
    assert_shape(subscription, SUBSCRIPTION_KEYS)
    assert subscription["id"] == created["id"] and "secret" not in subscription
    assert {e["event"] for e in listed["available_events"]} == set(shapes.EVENTS)
    for entry in listed["available_events"]:
        assert set(entry) == {"event", "label"} and entry["label"]
    # An endpoint made with Sluice's own API is not a prospiq subscription.
    sluice = api.post(
        "/api/v1/webhooks",
        json.dumps({"url": receiver.url("/sluice")}),
        content_type="application/json",
    )
    assert sluice.status_code == 201
    assert len(api.get(f"{BASE}/webhooks").json()["subscriptions"]) == 1
    gone = api.delete(f"{BASE}/subscribe?id={sluice.json()['id']}")
    assert gone.status_code == 404 and error_of(gone) == "Not found"

    deleted = api.delete(f"{BASE}/subscribe?id={created['id']}")
    assert deleted.status_code == 200 and deleted.json() == {"success": True}
    assert api.get(f"{BASE}/webhooks").json()["subscriptions"] == []
    assert api.delete(f"{BASE}/subscribe?id={created['id']}").status_code == 404
    missing = api.delete(f"{BASE}/subscribe")
    assert missing.status_code == 422 and error_of(missing).startswith("id: ")


def test_another_accounts_or_modes_subscription_is_not_found(api, receiver):
    created = subscribe(api, receiver.url()).json()
    for other in (make_client(), make_client(mode="live", account=api.account)):
        assert other.get(f"{BASE}/webhooks").json()["subscriptions"] == []
        assert other.delete(f"{BASE}/subscribe?id={created['id']}").status_code == 404
        test = post(other, "/webhooks/test", {"subscription_id": created["id"]})
        assert test.status_code == 404


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"target_url": "https://x.example"}, "event: This field is required."),
        ({"event": "contact.deleted", "target_url": "https://x.example"}, "event: "),
        ({"event": "contact.verified"}, "target_url: This field is required."),
        ({"event": "contact.verified", "target_url": "ftp://x.example"}, "target_url: "),
        (
            {"event": "contact.verified", "target_url": "https://x.example", "secret": "s"},
            "secret: Unknown field.",
        ),
    ],
)
def test_bad_subscriptions_are_422(api, body, expected):
    response = post(api, "/subscribe", body)
    assert response.status_code == 422, response.content
    assert error_of(response).startswith(expected)


def test_http_targets_are_refused_when_http_is_not_allowed(api, settings):
    settings.WEBHOOK_ALLOW_HTTP = False
    response = subscribe(api, "http://127.0.0.1:9/hook")
    assert response.status_code == 422 and error_of(response).startswith("target_url: ")


def test_the_test_endpoint_delivers_in_prospiqs_shape_and_says_how_it_went(api, receiver):
    created = subscribe(api, receiver.url()).json()
    response = post(api, "/webhooks/test", {"subscription_id": created["id"]})
    assert response.status_code == 200, response.content
    assert response.json() == {
        "success": True,
        "message": f"Test webhook delivered to {receiver.url()}",
        "status_code": 200,
    }
    (request,) = receiver.received()
    sent = assert_prospiq_delivery(request, created["secret"])
    assert sent["event"] == "contact.verified" and sent["_test"] is True
    assert request.headers["x-prospiq-test"] == "true"
    assert_shape(sent["data"], CONTACT_EVENT_DATA_KEYS, {"custom": dict})

    receiver.then(Answer(status=500))
    failed = post(api, "/webhooks/test", {"subscription_id": created["id"]})
    assert failed.status_code == 200
    assert failed.json() == {
        "success": False,
        "message": f"Test webhook to {receiver.url()} failed: HTTP 500",
        "status_code": 500,
    }
    assert post(api, "/webhooks/test", {}).status_code == 422
    unknown = post(api, "/webhooks/test", {"subscription_id": "sub_3f7a02"})
    assert unknown.status_code == 404 and error_of(unknown) == "Not found"


def test_poll_returns_the_stored_events_in_prospiqs_shape(api):
    account = api.account
    old = event_emit(account_id=account.pk, type=Event.CONTACT_VERIFIED, data=CONTACT_DATA)
    Event.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=25))
    emitted = []
    for minute in range(30):
        event = event_emit(
            account_id=account.pk, type=Event.CONTACT_VERIFIED, data=CONTACT_DATA, sandbox=True
        )
        at = timezone.now() - timedelta(minutes=60 - minute)
        Event.objects.filter(pk=event.pk).update(created_at=at)
        emitted.append((event.pk, at))
    event_emit(account_id=account.pk, type=Event.BULK_COMPLETED, data={}, sandbox=True)
    event_emit(account_id=account.pk, type=Event.CONTACT_VERIFIED, data=CONTACT_DATA)  # live

    response = api.get(f"{BASE}/webhooks/poll/contact.verified")
    assert response.status_code == 200
    events = response.json()["events"]
    # The latest 25 of the last 24 hours, in this key's mode, oldest first.
    assert [e["id"] for e in events] == [pk for pk, _ in emitted[-25:]]
    for entry in events:
        assert set(entry) == {"id", "event", "payload", "created_at"}
        assert entry["event"] == "contact.verified"
        assert list(entry["payload"])[:3] == ["event", "data", "timestamp"]
        assert entry["payload"]["_sandbox"] is True
        assert_shape(entry["payload"]["data"], CONTACT_EVENT_DATA_KEYS)

    # since: the first events after it, so the last one's timestamp pages on without a gap.
    since = iso(emitted[2][1])
    page = api.get(f"{BASE}/webhooks/poll/contact.verified", {"since": since}).json()["events"]
    assert [e["id"] for e in page] == [pk for pk, _ in emitted[3:28]]
    rest = api.get(
        f"{BASE}/webhooks/poll/contact.verified", {"since": page[-1]["created_at"]}
    ).json()["events"]
    assert [e["id"] for e in rest] == [pk for pk, _ in emitted[28:]]
    # An event's payload timestamp is its created_at (the rows above were moved in time).
    fresh = event_emit(account_id=account.pk, type=Event.CONTACT_ENRICHED, data=CONTACT_DATA)
    (polled,) = (
        make_client(mode="live", account=account)
        .get(f"{BASE}/webhooks/poll/contact.enriched")
        .json()["events"]
    )
    assert polled["id"] == fresh.pk
    assert polled["payload"]["timestamp"] == polled["created_at"] == iso(fresh.created_at)
    assert "_sandbox" not in polled["payload"]

    unknown = api.get(f"{BASE}/webhooks/poll/contact.deleted")
    assert unknown.status_code == 422 and error_of(unknown).startswith("event: ")
    bad = api.get(f"{BASE}/webhooks/poll/contact.verified", {"since": "yesterday"})
    assert bad.status_code == 422 and error_of(bad).startswith("since: ")


# --- The dialect's switch and its place in the OpenAPI schema ---------------------------------


def _reload_urls() -> None:
    import apps.compat.urls
    import config.urls

    importlib.reload(apps.compat.urls)
    importlib.reload(config.urls)
    clear_url_caches()


def test_the_setting_switches_the_dialect_off(api, settings):
    settings.COMPAT_PROSPIQ_ENABLED = False
    try:
        _reload_urls()
        assert api.get(f"{BASE}/credits").status_code == 404
        assert api.get("/api/v1/credits").status_code == 200
    finally:
        settings.COMPAT_PROSPIQ_ENABLED = True
        _reload_urls()
    assert api.get(f"{BASE}/credits").status_code == 200


def test_every_operation_is_in_the_schema_under_its_own_tag():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    operations = {
        (path.removeprefix(BASE), method): operation
        for path, methods in schema["paths"].items()
        if path.startswith(BASE)
        for method, operation in methods.items()
    }
    assert set(operations) == {
        ("/enrich", "post"),
        ("/enrich/bulk", "post"),
        ("/credits", "get"),
        ("/subscribe", "post"),
        ("/subscribe", "delete"),
        ("/webhooks", "get"),
        ("/webhooks/test", "post"),
        ("/webhooks/poll/{event}", "get"),
    }
    for operation in operations.values():
        assert operation["tags"] == ["compat: prospiq"]
        assert "422" in operation["responses"] or "200" in operation["responses"]
    assert set(schema["components"]["schemas"]["ProspiqError"]["properties"]) == {"error"}
    assert "/api/v1/enrich" not in {p for p in schema["paths"] if "prospiq" in p}


def test_the_validation_translates_without_a_second_copy_of_sluices_rules(db):
    """prospiq's own rules only; the rest is Sluice's cleaner (its messages, unchanged)."""
    account = AccountFactory(personal_email_consent=False)
    with pytest.raises(InvalidRequest) as refused:
        validation.enrich_validated(SEED_ENRICH | {"last_name": "x" * 101}, account=account)
    assert refused.value.details == {"last_name": "Must be at most 100 characters."}
