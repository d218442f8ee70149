"""The Pronto dialect (/compat/pronto/api/v2/), built from the seed pages: every example request
gets the documented shape, sandbox and live; the seed's error cases get the seed's statuses."""

from __future__ import annotations

import copy
import importlib
import json
import uuid

import pytest
import requests
from django.urls import clear_url_caches
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook

from apps.accounts import ratelimit
from apps.accounts.models import Account
from apps.compat.pronto import representations, webhooks
from apps.compat.pronto.validation import ONE_TYPE_MESSAGE
from apps.enrichment import services
from apps.enrichment.models import BulkJob, Contact
from apps.enrichment.validation import CONSENT_MESSAGE
from apps.webhooks import formats
from apps.webhooks.models import Event
from tests.factories import AccountFactory
from tests.support.api import KeyedClient, make_client
from tests.support.fuzz import fuzz_settings, json_values, unlimited_client
from tests.support.ratelimit import BEFORE_MIDNIGHT, small_plan
from tests.support.receiver import Receiver
from tests.support.simulator import SimulatorProcess
from tests.support.worker import wait_for

BASE = "/compat/pronto/api/v2"
SEED_WEBHOOK_URL = "https://webhook.site/8b53c96f-f2cd-4c24-bc09-b3c2176d7ea8"

# 001_ede5e6b4f4934add.txt, the example request of POST contacts/single_enrich, as written.
SINGLE_SEED = {
    "firstname": "Mathieu",
    "lastname": "Brun-Picard",
    "domain": "prontohq.com",
    "company_name": "Pronto",
    "linkedin_url": "https://www.linkedin.com/in/mathieu-brun-picard/",
    "webhook_url": SEED_WEBHOOK_URL,
    "enrichment_type": ["phone"],
    "custom": {"hubspot_id": "4447901"},
}
# 003_35057b68be272095.txt keeps the prose of POST contacts/bulk_enrich only; this is the
# example request of the same page as Pronto publishes it.
BULK_SEED = {
    "contacts": [
        {
            "firstname": "Mathieu",
            "lastname": "Brun-Picard",
            "domain": "prontohq.com",
            "company_name": "Pronto",
            "linkedin_url": "https://www.linkedin.com/in/mathieu-brun-picard/",
            "custom": {"hubspot_id": "4447901"},
        },
        {
            "firstname": "Nicolas",
            "lastname": "Fernandez-Le Follic",
            "domain": "prontohq.com",
            "company_name": "Pronto",
            "linkedin_url": "https://www.linkedin.com/in/nicolasfernandezlefollic/",
            "custom": {"hubspot_id": "4447902"},
        },
    ],
    "webhook_url": SEED_WEBHOOK_URL,
    "enrichment_type": ["email"],
}

NULLABLE_STR = (str, type(None))
NULLABLE_OBJECT = (dict, type(None))
# The documented shapes: keys and the JSON types of their values.
ACCEPTED_SHAPE = {
    "enrichment_id": str,
    "first_name": str,
    "last_name": str,
    "status": str,
    "custom": NULLABLE_OBJECT,
}
BULK_ACCEPTED_SHAPE = {"enrichment_id": str, "status": str}
CONTACT_SHAPE = {
    "enrichment_id": str,
    "first_name": str,
    "last_name": str,
    "status": str,
    "email": NULLABLE_STR,
    "email_status": str,
    "personal_email": NULLABLE_STR,
    "personal_email_status": str,
    "phone": list,
    "custom": NULLABLE_OBJECT,
}
ERROR_SHAPE = {"message": str, "errors": dict}


def assert_shape(body: dict, shape: dict) -> None:
    assert set(body) == set(shape), body
    for key, types in shape.items():
        assert isinstance(body[key], types), (key, body[key])


def pronto_client(**kwargs) -> KeyedClient:
    """A client holding a Sluice key, sent as Pronto clients send theirs (X-API-KEY)."""
    client = make_client(**kwargs)
    client.credentials(HTTP_X_API_KEY=client.key.raw_key)
    return client


def post(client, path: str, body) -> object:
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(f"{BASE}/{path}", data, content_type="application/json")


def single(**changes) -> dict:
    body = copy.deepcopy(SINGLE_SEED)
    for key, value in changes.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def bulk_of(count: int, **changes) -> dict:
    contact = {"firstname": "Ada", "lastname": "Lovelace", "domain": "engines.io"}
    body = {"contacts": [dict(contact, custom={"row": i}) for i in range(count)]}
    return {**body, "enrichment_type": ["email"], **changes}


@pytest.fixture
def pronto_api(db) -> KeyedClient:
    """A sandbox (sk_test_) key on the pro plan."""
    return pronto_client()


@pytest.fixture(params=["test", "live"])
def pronto_any_mode(request, db) -> KeyedClient:
    """A sandbox key, then a live key with 1,000 credits."""
    return pronto_client(mode=request.param)


# --- The seed's example requests --------------------------------------------------------------


def test_single_enrich_seed_example_is_accepted_in_the_seed_shape(pronto_any_mode):
    response = post(pronto_any_mode, "contacts/single_enrich", SINGLE_SEED)

    assert response.status_code == 202, response.content
    body = response.json()
    assert_shape(body, ACCEPTED_SHAPE)
    assert (body["first_name"], body["last_name"], body["status"]) == (
        "Mathieu",
        "Brun-Picard",
        "pending",
    )
    assert body["custom"] == {"hubspot_id": "4447901"}
    assert response["Location"] == f"{BASE}/contacts/{body['enrichment_id']}"
    # Stored by Sluice's intake under Sluice's names, in the key's mode.
    contact = Contact.objects.get(pk=uuid.UUID(body["enrichment_id"]))
    assert (contact.first_name, contact.last_name) == ("Mathieu", "Brun-Picard")
    assert (contact.domain, contact.company_name) == ("prontohq.com", "Pronto")
    assert contact.linkedin_url == SINGLE_SEED["linkedin_url"]
    assert contact.enrichment_type == ["phone"]
    assert contact.webhook_url == SEED_WEBHOOK_URL
    assert contact.webhook_format == "pronto"
    assert contact.sandbox is (pronto_any_mode.key.mode == "test")
    assert contact.account_id == pronto_any_mode.account.pk


def test_bulk_enrich_seed_example_is_accepted_in_the_seed_shape(pronto_any_mode):
    response = post(pronto_any_mode, "contacts/bulk_enrich", BULK_SEED)

    assert response.status_code == 202, response.content
    body = response.json()
    assert_shape(body, BULK_ACCEPTED_SHAPE)
    assert body["status"] == "queued"
    bulk = BulkJob.objects.get(pk=uuid.UUID(body["enrichment_id"]))
    assert bulk.total == 2 and bulk.enrichment_type == ["email"]
    assert bulk.sandbox is (pronto_any_mode.key.mode == "test")
    contacts = list(Contact.objects.filter(bulk=bulk).order_by("position"))
    assert [(c.first_name, c.last_name, c.custom) for c in contacts] == [
        ("Mathieu", "Brun-Picard", {"hubspot_id": "4447901"}),
        ("Nicolas", "Fernandez-Le Follic", {"hubspot_id": "4447902"}),
    ]
    # One Pronto payload per contact to the batch's webhook_url, and no bulk.completed.
    assert {(c.webhook_url, c.webhook_format) for c in contacts} == {(SEED_WEBHOOK_URL, "pronto")}
    assert bulk.webhook_url == ""


def test_get_contact_is_pronto_shape_while_pending_and_once_finished(pronto_api):
    accepted = post(pronto_api, "contacts/single_enrich", SINGLE_SEED).json()
    path = f"{BASE}/contacts/{accepted['enrichment_id']}"

    pending = pronto_api.get(path)
    assert pending.status_code == 200
    assert_shape(pending.json(), CONTACT_SHAPE)
    assert pending.json() == {
        "enrichment_id": accepted["enrichment_id"],
        "first_name": "Mathieu",
        "last_name": "Brun-Picard",
        "status": "pending",
        "email": None,
        "email_status": "N/A",
        "personal_email": None,
        "personal_email_status": "N/A",
        "phone": [],
        "custom": {"hubspot_id": "4447901"},
    }

    assert services.contacts_run(contact_ids=[accepted["enrichment_id"]]) == 1
    finished = pronto_api.get(path).json()
    assert_shape(finished, CONTACT_SHAPE)
    assert finished["status"] == "finished"
    assert finished["phone"] == ["+15550000000"]  # the sandbox's phone, E.164 strings
    assert (finished["email"], finished["email_status"]) == (None, "N/A")  # not asked for
    assert finished["custom"] == {"hubspot_id": "4447901"}


def test_bulk_seed_contacts_finish_with_pronto_email_fields(pronto_api):
    bulk_id = post(pronto_api, "contacts/bulk_enrich", BULK_SEED).json()["enrichment_id"]
    ids = [str(pk) for pk in Contact.objects.filter(bulk_id=bulk_id).values_list("pk", flat=True)]
    assert services.contacts_run(contact_ids=ids) == 2

    for enrichment_id in ids:
        body = pronto_api.get(f"{BASE}/contacts/{enrichment_id}").json()
        assert_shape(body, CONTACT_SHAPE)
        assert body["status"] == "finished"
        assert body["email"].endswith("@prontohq.com")
        assert body["email_status"] == "deliverable"  # Sluice's "valid"
        assert body["phone"] == []


def test_personal_email_with_consent_gives_pronto_personal_email_fields(db):
    client = pronto_client(consent=True)
    body = single(enrichment_type=["personal_email"])
    accepted = post(client, "contacts/single_enrich", body)
    assert accepted.status_code == 202, accepted.content
    services.contacts_run(contact_ids=[accepted.json()["enrichment_id"]])

    found = client.get(f"{BASE}/contacts/{accepted.json()['enrichment_id']}").json()
    assert found["personal_email"].endswith("@gmail.com")
    assert found["personal_email_status"] == "valid"
    no_profile = single(enrichment_type=["personal_email"], linkedin_url=None)
    refused = post(client, "contacts/single_enrich", no_profile)
    assert refused.status_code == 422
    assert refused.json()["errors"] == {
        "linkedin_url": "The personal_email enrichment needs a linkedin_url."
    }


def test_bearer_keys_work_too(db):
    client = make_client()  # Authorization: Bearer sk_test_…
    assert post(client, "contacts/single_enrich", SINGLE_SEED).status_code == 202


@pytest.mark.django_db(transaction=True)
def test_live_keys_end_to_end_through_the_simulator(client_factory, worker_factory):
    simulator = SimulatorProcess(env={"SIMULATOR_LATENCY_MS": "5"}).start()
    try:
        # Enrichment only: nothing is delivered to the seed's webhook.site URL.
        worker_factory(env={"PROVIDER_SIMULATOR_URL": simulator.url}, queues="enrichment")
        client = client_factory(mode="live", credits=1000)
        client.credentials(HTTP_X_API_KEY=client.key.raw_key)
        person = requests.get(f"{simulator.url}/_simulator/people?limit=1", timeout=5).json()[
            "people"
        ][0]
        known = {
            "firstname": person["first_name"],
            "lastname": person["last_name"],
            "company_name": person["company_name"],
            "domain": person["domain"],
            "linkedin_url": person["linkedin_url"],
            "enrichment_type": ["email"],
            "custom": {"row": "simulated"},
        }
        ids = [
            post(client, "contacts/single_enrich", SINGLE_SEED).json()["enrichment_id"],
            post(client, "contacts/single_enrich", known).json()["enrichment_id"],
        ]
        bulk_id = post(client, "contacts/bulk_enrich", BULK_SEED).json()["enrichment_id"]
        ids += [
            str(pk) for pk in Contact.objects.filter(bulk_id=bulk_id).values_list("pk", flat=True)
        ]
        assert len(ids) == 4

        wait_for(
            lambda: Contact.objects.filter(pk__in=ids, status=Contact.FINISHED).count() == 4,
            timeout=60,
            message="live contacts did not finish",
        )
        bodies = [client.get(f"{BASE}/contacts/{i}").json() for i in ids]
        for body in bodies:
            assert_shape(body, CONTACT_SHAPE)
            assert body["status"] == "finished"
            assert all(
                isinstance(number, str) and number.startswith("+") for number in body["phone"]
            )
        # The simulator knows this person: a real adapter's hit, in Pronto's words.
        assert bodies[1]["email"] and bodies[1]["email_status"] in {
            "deliverable",
            "catch-all",
            "unknown",
        }
        assert bodies[1]["custom"] == {"row": "simulated"}
        assert Contact.objects.get(pk=ids[1]).result_status == Contact.VERIFIED
    finally:
        simulator.stop()


# --- The seed's error cases -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "path", "message"),
    [
        ({"firstname": None}, "firstname", "This field is required."),
        ({"lastname": None}, "lastname", "This field is required."),
        ({"lastname": "  "}, "lastname", "This field may not be blank."),
        ({"enrichment_type": None}, "enrichment_type", "This field is required."),
        # phone needs linkedin_url; email needs domain or company_name (the seed's rules)
        ({"linkedin_url": None}, "linkedin_url", "The phone enrichment needs a linkedin_url."),
        (
            {"enrichment_type": ["email"], "domain": None, "company_name": None},
            "domain",
            "The email enrichment needs a domain or a company_name.",
        ),
        ({"enrichment_type": ["email", "phone"]}, "enrichment_type", ONE_TYPE_MESSAGE),
        ({"first_name": "Mathieu"}, "first_name", "Unknown field."),
        ({"max_credits": 5}, "max_credits", "Unknown field."),
    ],
)
def test_single_enrich_refuses_what_the_seed_requires_with_422(pronto_api, changes, path, message):
    response = post(pronto_api, "contacts/single_enrich", single(**changes))

    assert response.status_code == 422
    body = response.json()
    assert_shape(body, ERROR_SHAPE)
    assert body["errors"][path] == message
    assert body["message"] == "The request is invalid"
    assert not Contact.objects.exists()


def test_email_with_only_a_domain_or_only_a_company_is_enough(pronto_api):
    for changes in ({"company_name": None}, {"domain": None}):
        body = single(enrichment_type=["email"], linkedin_url=None, **changes)
        assert post(pronto_api, "contacts/single_enrich", body).status_code == 202


def test_the_services_own_rules_and_normalisation_apply(pronto_api):
    body = single(domain="https://www.ProntoHQ.com/about", phone_country_codes=["fr", "us"])
    accepted = post(pronto_api, "contacts/single_enrich", body)
    assert accepted.status_code == 202
    contact = Contact.objects.get(pk=accepted.json()["enrichment_id"])
    assert contact.domain == "prontohq.com"
    assert contact.phone_country_codes == ["FR", "US"]

    refused = post(pronto_api, "contacts/single_enrich", single(phone_country_codes=["XX"]))
    assert refused.status_code == 422
    assert refused.json()["errors"] == {
        "phone_country_codes": "'XX' is not an ISO 3166-1 alpha-2 country code."
    }
    wrong = post(pronto_api, "contacts/single_enrich", single(linkedin_url="https://x.com/m"))
    assert wrong.json()["errors"]["linkedin_url"].startswith("Must be an http(s) LinkedIn")


def test_bulk_refuses_an_invalid_contact_by_its_pronto_path_and_stores_nothing(pronto_api):
    body = copy.deepcopy(BULK_SEED)
    del body["contacts"][1]["lastname"]
    body["contacts"][0]["first_name"] = "Mathieu"  # Sluice's name is not Pronto's
    body["contacts"][0]["enrichment_type"] = ["phone"]  # given once per batch in Pronto

    response = post(pronto_api, "contacts/bulk_enrich", body)

    assert response.status_code == 422
    assert response.json() == {
        "message": "The request is invalid",
        "errors": {
            "contacts[0].first_name": "Unknown field.",
            "contacts[0].enrichment_type": "Unknown field.",
            "contacts[1].lastname": "This field is required.",
        },
    }
    assert not BulkJob.objects.exists() and not Contact.objects.exists()


def test_bulk_batch_fields_reach_every_contact(pronto_api):
    body = bulk_of(2, phone_country_codes=["fr"], enrichment_type=["email"])
    bulk_id = post(pronto_api, "contacts/bulk_enrich", body).json()["enrichment_id"]
    contacts = Contact.objects.filter(bulk_id=bulk_id)
    assert [c.phone_country_codes for c in contacts] == [["FR"], ["FR"]]
    assert [c.enrichment_type for c in contacts] == [["email"], ["email"]]

    refused = post(pronto_api, "contacts/bulk_enrich", bulk_of(1) | {"contacts": ["Ada"]})
    assert refused.json()["errors"] == {"contacts[0]": "Must be a JSON object."}


def test_bulk_needs_one_enrichment_type_for_the_batch(pronto_api):
    body = bulk_of(2)
    del body["enrichment_type"]
    for refused in (body, bulk_of(2, enrichment_type=None)):
        missing = post(pronto_api, "contacts/bulk_enrich", refused)
        assert missing.status_code == 422
        # Said once, for the batch, not once per contact.
        assert missing.json()["errors"] == {"enrichment_type": "This field is required."}

    two = post(pronto_api, "contacts/bulk_enrich", bulk_of(2, enrichment_type=["email", "phone"]))
    assert two.status_code == 422
    assert two.json()["errors"]["enrichment_type"] == ONE_TYPE_MESSAGE

    empty = post(pronto_api, "contacts/bulk_enrich", bulk_of(0))
    assert empty.json()["errors"] == {"contacts": "Must be a non-empty list of contacts."}
    assert not BulkJob.objects.exists()


def test_consent_missing_is_422_with_the_seed_message(pronto_api):
    response = post(
        pronto_api, "contacts/single_enrich", single(enrichment_type=["personal_email"])
    )

    assert response.status_code == 422
    body = response.json()
    assert body["message"] == (
        "You can't use the personal email enrichment feature without consenting with our "
        "terms of use"
    )
    assert body["message"] == CONSENT_MESSAGE
    assert body["errors"] == {"enrichment_type": CONSENT_MESSAGE}
    assert not Contact.objects.exists()


def test_consent_missing_rejects_the_entire_batch(pronto_api):
    body = dict(BULK_SEED, enrichment_type=["personal_email"])

    response = post(pronto_api, "contacts/bulk_enrich", body)

    assert response.status_code == 422
    assert response.json() == {
        "message": CONSENT_MESSAGE,
        "errors": {"enrichment_type": CONSENT_MESSAGE},
    }
    assert not BulkJob.objects.exists() and not Contact.objects.exists()
    consenting = pronto_client(consent=True)
    assert post(consenting, "contacts/bulk_enrich", body).status_code == 202


@pytest.mark.parametrize(("plan_code", "most"), [("pro", 100), ("growth", 50)])
def test_over_the_bulk_max_is_422(db, plan_code, most):
    client = pronto_client(plan_code=plan_code)

    over = post(client, "contacts/bulk_enrich", bulk_of(most + 1))

    assert over.status_code == 422
    assert over.json()["errors"] == {
        "contacts": f"At most {most} contacts per request on this plan."
    }
    assert not Contact.objects.exists()
    assert post(client, "contacts/bulk_enrich", bulk_of(most)).status_code == 202
    assert Contact.objects.count() == most


@pytest.mark.parametrize(
    ("path", "body"), [("contacts/single_enrich", SINGLE_SEED), ("contacts/bulk_enrich", BULK_SEED)]
)
def test_out_of_credits_is_402(db, path, body):
    client = pronto_client(mode="live", credits=0)

    response = post(client, path, body)

    assert response.status_code == 402
    assert response.json() == {"message": "Insufficient credits", "errors": {}}
    assert not Contact.objects.exists()


@pytest.mark.parametrize(
    ("path", "body"), [("contacts/single_enrich", SINGLE_SEED), ("contacts/bulk_enrich", BULK_SEED)]
)
def test_rate_limited_is_429_with_retry_after(db, monkeypatch, path, body):
    # The limiter's clock pinned mid-minute: a minute boundary would reset the count.
    monkeypatch.setattr(ratelimit, "clock", lambda: BEFORE_MIDNIGHT)
    client = pronto_client(account=AccountFactory(plan=small_plan(per_minute=1)))

    assert post(client, path, body).status_code == 202
    limited = post(client, path, body)

    assert limited.status_code == 429
    assert_shape(limited.json(), ERROR_SHAPE)
    assert limited.json()["message"].startswith("Rate limit exceeded")
    assert int(limited["Retry-After"]) >= 1
    assert limited["X-RateLimit-Remaining"] == "0"
    assert Contact.objects.count() == (1 if path.endswith("single_enrich") else 2)


def test_missing_malformed_and_revoked_keys_are_401(pronto_api):
    from rest_framework.test import APIClient

    anonymous = post(APIClient(), "contacts/single_enrich", SINGLE_SEED)
    assert anonymous.status_code == 401
    assert_shape(anonymous.json(), ERROR_SHAPE)
    bad = APIClient()
    bad.credentials(HTTP_X_API_KEY="pronto-key-123")
    assert post(bad, "contacts/single_enrich", SINGLE_SEED).json() == {
        "message": "Malformed API key",
        "errors": {},
    }

    # Cached by the first request, the key is still refused at once once revoked.
    assert post(pronto_api, "contacts/single_enrich", SINGLE_SEED).status_code == 202
    pronto_api.key.revoked_at = timezone.now()
    pronto_api.key.save(update_fields=["revoked_at"])
    revoked = post(pronto_api, "contacts/single_enrich", SINGLE_SEED)
    assert revoked.status_code == 401
    assert revoked.json() == {"message": "This API key has been revoked", "errors": {}}
    assert Contact.objects.count() == 1
    # A 401 outranks the 422 the body would get.
    assert post(pronto_api, "contacts/single_enrich", {}).status_code == 401


def test_scopes_are_the_keys_own(db):
    reader = pronto_client(scopes=["read"])
    refused = post(reader, "contacts/single_enrich", SINGLE_SEED)
    assert refused.status_code == 403
    assert refused.json() == {"message": "This key lacks the 'enrich' scope", "errors": {}}
    assert post(reader, "contacts/bulk_enrich", BULK_SEED).status_code == 403

    writer = pronto_client(scopes=["enrich"])
    accepted = post(writer, "contacts/single_enrich", SINGLE_SEED).json()
    assert writer.get(f"{BASE}/contacts/{accepted['enrichment_id']}").status_code == 403


def test_bad_json_is_400_in_pronto_shape(pronto_api):
    response = post(pronto_api, "contacts/single_enrich", b"{not json")
    assert response.status_code == 400
    assert_shape(response.json(), ERROR_SHAPE)
    assert post(pronto_api, "contacts/bulk_enrich", b"[]").status_code == 400


def test_unknown_ids_and_other_accounts_or_modes_are_404(pronto_api):
    accepted = post(pronto_api, "contacts/single_enrich", SINGLE_SEED).json()
    path = f"{BASE}/contacts/{accepted['enrichment_id']}"
    live_same_account = pronto_client(account=pronto_api.account, mode="live")
    for client, target in [
        (pronto_api, f"{BASE}/contacts/{uuid.uuid4()}"),
        (pronto_api, f"{BASE}/contacts/not-a-uuid"),
        (pronto_client(), path),  # another account
        (live_same_account, path),  # the other mode
    ]:
        response = client.get(target)
        assert response.status_code == 404, target
        assert response.json() == {"message": "Not found", "errors": {}}


# Any input at all is a 4xx in Pronto's error shape, never a 500 (SPEC §9).
FUZZ = fuzz_settings(max_examples=80)


def assert_pronto_client_error(response) -> None:
    assert response.status_code < 500, response.content
    if response.status_code != 202:
        assert_shape(response.json(), ERROR_SHAPE)


@pytest.fixture
def pronto_unlimited(db) -> KeyedClient:
    client = unlimited_client()
    client.credentials(HTTP_X_API_KEY=client.key.raw_key)
    return client


@FUZZ
@given(field=st.sampled_from(sorted(SINGLE_SEED)), value=json_values, extra=json_values)
def test_any_value_in_any_single_enrich_field(pronto_unlimited, field, value, extra):
    for body in ({**SINGLE_SEED, field: value}, extra):
        assert_pronto_client_error(post(pronto_unlimited, "contacts/single_enrich", body))


@FUZZ
@given(
    field=st.sampled_from(["contacts", "enrichment_type", "phone_country_codes", "webhook_url"]),
    value=json_values,
    item=json_values,
)
def test_any_value_in_bulk_enrich_fields(pronto_unlimited, field, value, item):
    body = {**BULK_SEED, "contacts": [BULK_SEED["contacts"][0], item], field: value}
    assert_pronto_client_error(post(pronto_unlimited, "contacts/bulk_enrich", body))


# --- The webhook a Pronto client receives -----------------------------------------------------


def _finished_event(client) -> tuple[dict, Event]:
    accepted = post(client, "contacts/single_enrich", SINGLE_SEED).json()
    services.contacts_run(contact_ids=[accepted["enrichment_id"]])
    event = Event.objects.get(account=client.account, type=Event.CONTACT_ENRICHED)
    return client.get(f"{BASE}/contacts/{accepted['enrichment_id']}").json(), event


def test_the_format_is_registered_at_start_up():
    assert formats.FORMATS["pronto"].render is webhooks.render


def test_webhook_body_is_the_get_contact_object_and_the_same_bytes_every_time(pronto_api):
    contact, event = _finished_event(pronto_api)

    body, body_format = formats.rendered("pronto", event.body)

    assert body_format is formats.FORMATS["pronto"]
    assert json.loads(body) == contact
    assert_shape(json.loads(body), CONTACT_SHAPE)
    assert json.loads(body)["custom"] == {"hubspot_id": "4447901"}
    assert formats.rendered("pronto", event.body)[0] == body  # every retry signs the same bytes
    assert body.isascii()


@pytest.mark.parametrize(
    ("sluice", "pronto"),
    [("valid", "deliverable"), ("catch_all", "catch-all"), ("unknown", "unknown")],
)
def test_email_statuses_in_pronto_words(sluice, pronto):
    data = {
        "enrichment_id": str(uuid.uuid4()),
        "first_name": "Ada",
        "last_name": "Lovelace",
        "status": "finished",
        "result": {
            "status": "VERIFIED",
            "email": "ada@engines.io",
            "email_status": sluice,
            "personal_email": None,
            "phones": [{"number": "+447700900123", "type": "mobile", "country": "GB"}],
        },
        "custom": None,
    }

    body = representations.contact_object(data)

    assert (body["email"], body["email_status"]) == ("ada@engines.io", pronto)
    assert body["phone"] == ["+447700900123"]
    assert (body["personal_email"], body["personal_email_status"]) == (None, "N/A")


def test_a_truncated_event_says_where_the_contact_is(pronto_api):
    enrichment_id = str(uuid.uuid4())
    payload = {
        "id": "evt_1",
        "type": "contact.enriched",
        "created_at": "2026-12-04T00:00:00Z",
        "sandbox": True,
        "data": {"enrichment_id": enrichment_id, "bulk_id": None, "truncated": True, "size": 1},
    }

    body = json.loads(webhooks.render(payload))

    assert body == {
        "enrichment_id": enrichment_id,
        "status": "finished",
        "truncated": True,
        "url": representations.contact_path(enrichment_id),
    }


def test_other_events_go_out_unchanged():
    payload = {"id": "evt_2", "type": "bulk.completed", "data": {"bulk_id": "b"}}
    assert json.loads(webhooks.render(payload)) == payload


@pytest.mark.django_db(transaction=True)
def test_a_pronto_clients_webhook_url_receives_the_pronto_body(worker_factory):
    receiver = Receiver().start()
    try:
        worker_factory()
        client = pronto_client()
        accepted = post(client, "contacts/single_enrich", single(webhook_url=receiver.url()))
        assert accepted.status_code == 202

        delivered = wait_for(receiver.received, timeout=30, message="no webhook delivery")
        contact = client.get(f"{BASE}/contacts/{accepted.json()['enrichment_id']}").json()
        secret = Account.objects.get(pk=client.account.pk).callback_secret
        assert Webhook(secret).verify(delivered[0].body, delivered[0].headers) == contact
        assert contact["status"] == "finished" and contact["phone"] == ["+15550000000"]
    finally:
        receiver.stop()


# --- Switch and schema ------------------------------------------------------------------------


@pytest.fixture
def pronto_switched_off(settings):
    import apps.compat.urls
    import config.urls

    def reload_urls() -> None:
        importlib.reload(apps.compat.urls)
        importlib.reload(config.urls)
        clear_url_caches()

    settings.COMPAT_PRONTO_ENABLED = False
    reload_urls()
    yield
    settings.COMPAT_PRONTO_ENABLED = True
    reload_urls()


def test_the_setting_switches_the_dialect_off(pronto_api, pronto_switched_off):
    assert post(pronto_api, "contacts/single_enrich", SINGLE_SEED).status_code == 404
    assert pronto_api.get(f"{BASE}/contacts/{uuid.uuid4()}").status_code == 404
    assert not Contact.objects.exists()


def test_the_operations_are_in_the_schema_under_their_own_tag(db):
    from rest_framework.test import APIClient

    schema = APIClient().get("/api/schema/", {"format": "json"}).json()

    operations = {
        (path, method): operation
        for path, item in schema["paths"].items()
        if path.startswith(BASE)
        for method, operation in item.items()
    }
    assert set(operations) == {
        (f"{BASE}/contacts/single_enrich", "post"),
        (f"{BASE}/contacts/bulk_enrich", "post"),
        (f"{BASE}/contacts/{{enrichment_id}}", "get"),
    }
    assert all(op["tags"] == ["compat: pronto"] for op in operations.values())
    single_op = operations[(f"{BASE}/contacts/single_enrich", "post")]
    request_ref = single_op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    request_schema = schema["components"]["schemas"][request_ref.rsplit("/", 1)[1]]
    assert {"firstname", "lastname", "enrichment_type"} <= set(request_schema["required"])
    assert request_schema["properties"]["enrichment_type"]["maxItems"] == 1
    assert "422" in single_op["responses"] and "202" in single_op["responses"]
    get_op = operations[(f"{BASE}/contacts/{{enrichment_id}}", "get")]
    contact_ref = get_op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    contact_schema = schema["components"]["schemas"][contact_ref.rsplit("/", 1)[1]]
    assert set(contact_schema["properties"]) == set(CONTACT_SHAPE)
