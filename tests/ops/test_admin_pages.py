"""Every admin page, as a superuser and as a support user: no 500, whatever the input."""

from __future__ import annotations

from urllib.parse import quote, urlencode

import pytest
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from apps.accounts.services import credits_add
from apps.enrichment.models import Contact, List, ProviderAttempt
from apps.enrichment.services.lists import contacts_add_to_list
from apps.ops.services import SUPPORT_GROUP
from apps.providers.models import ProviderConfig
from apps.webhooks.models import Delivery, DeliveryAttempt
from apps.webhooks.services import endpoint_deactivate
from tests.factories import (
    AccountFactory,
    ApiKeyFactory,
    BulkJobFactory,
    ContactFactory,
    IdempotencyRecordFactory,
)
from tests.webhooks.factories import DeliveryFactory, EndpointFactory

pytestmark = pytest.mark.django_db

# Search terms a person pastes or a forged link carries: none may break a changelist.
SEARCH_TERMS = (
    "Sweep",
    "sarah@sweep.example",
    "5f0c8a2e-2b1e-4f5e-9a51-2f3a6f1b7c11",
    "evt_test",
    "https://hooks.sweep.example",
    "a\x00b",
    "%_'\"\\",
    "x" * 3000,
    "  ",
)


FORGED_SELECTIONS = (
    [],
    ["not-a-pk"],
    ["5f0c8a2e-2b1e-4f5e-9a51-2f3a6f1b7c11"],
    ["\x00"],
    ["99999999999999999999"],
    ["-1", "x" * 100],
)


@pytest.fixture
def rows(admin_user):
    now = timezone.now()
    account = AccountFactory(name="Sweep Inc", default_phone_country_codes=["US"])
    credits_add(account=account, amount=10, reason="seed", created_by=admin_user)
    key = ApiKeyFactory(account=account)
    bulk = BulkJobFactory(account=account, total=2, finished=1, failed=1)
    contact = ContactFactory(
        account=account,
        api_key=key,
        bulk=bulk,
        status=Contact.FINISHED,
        result_status=Contact.FAILED,
        result={"status": "FAILED", "email": "sarah@sweep.example", "phones": []},
        custom={"crm": "row-1"},
        finished_at=now,
    )
    ProviderAttempt.objects.create(
        contact=contact, provider="sandbox", kind="email", outcome="error", error="HTTP 503"
    )
    ProviderConfig.objects.create(name="sandbox", priority_email=1, read_timeout=4)
    endpoint = EndpointFactory(account=account, url="https://hooks.sweep.example/a")
    dead = EndpointFactory(account=account, url="https://hooks.sweep.example/dead")
    endpoint_deactivate(endpoint=dead, reason="HTTP 410 Gone")
    delivery = DeliveryFactory(endpoint=endpoint, status=Delivery.FAILED, attempt_count=1)
    DeliveryAttempt.objects.create(delivery=delivery, at=now, status_code=500, error="HTTP 500")
    IdempotencyRecordFactory(account=account, key="idem-1")
    sweep_list = List.objects.create(
        account=account, sandbox=True, name="Sweep targets", color="indigo"
    )
    contacts_add_to_list(list_obj=sweep_list, contacts=[contact])


@pytest.fixture
def support_client(client, django_user_model):
    user = django_user_model.objects.create_user("helpdesk", password="pw-12345678", is_staff=True)
    user.groups.add(Group.objects.get(name=SUPPORT_GROUP))
    client.force_login(user)
    return client


def _sluice(model) -> bool:
    return model.__module__.startswith("apps.")


def _name(model, view: str) -> str:
    return f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}"


def _changelist_urls(client, model, model_admin) -> list[str]:
    """The changelist, each filter choice, each sort order, a date drill-down, searches."""
    base = reverse(_name(model, "changelist"))
    response = client.get(base)
    assert response.status_code == 200, base
    cl = response.context["cl"]
    urls = [base]
    for spec in cl.filter_specs:
        urls += [base + choice["query_string"] for choice in spec.choices(cl)]
    for i in range(1, len(cl.list_display) + 1):
        urls += [f"{base}?o={i}", f"{base}?o=-{i}"]
    if model_admin.date_hierarchy:
        field = model_admin.date_hierarchy
        today = timezone.localdate()
        urls += [
            f"{base}?{field}__year={today.year}",
            f"{base}?{field}__year={today.year}&{field}__month={today.month}",
            f"{base}?{field}__year={today.year}&{field}__month={today.month}"
            f"&{field}__day={today.day}",
            f"{base}?{field}__year=abc",
        ]
    urls += [f"{base}?{urlencode({'q': term})}" for term in SEARCH_TERMS]
    urls += [f"{base}?p=999", f"{base}?p=abc", f"{base}?o=abc", f"{base}?nope=1"]
    return urls


def _object_urls(model) -> list[str]:
    urls = [reverse(_name(model, "add"))]
    for pk in model._default_manager.values_list("pk", flat=True)[:3]:
        for view in ("change", "history", "delete"):
            urls.append(reverse(_name(model, view), args=[pk]))
    for bad in ("0", "not-a-pk", "5f0c8a2e-2b1e-4f5e-9a51-2f3a6f1b7c11"):
        urls.append(reverse(_name(model, "change"), args=[bad]))
    return urls


def _sweep(client, *, allowed) -> list[str]:
    problems = []
    for model, model_admin in admin.site._registry.items():
        if not allowed(model):
            continue
        for url in _changelist_urls(client, model, model_admin) + _object_urls(model):
            status = client.get(url).status_code
            if status >= 500 or (status == 404 and "/change/" not in url):
                problems.append(f"{status} {url}")
    return problems


def test_every_admin_page_opens_for_a_superuser(admin_client, rows):
    assert _sweep(admin_client, allowed=lambda model: True) == []


def test_every_sluice_admin_page_opens_or_is_refused_for_support(support_client, rows):
    assert _sweep(support_client, allowed=_sluice) == []
    for model in admin.site._registry:
        status = support_client.get(reverse(_name(model, "changelist"))).status_code
        assert status == (200 if _sluice(model) else 403), model


@pytest.mark.parametrize(
    "model", [m for m in admin.site._registry if _sluice(m)], ids=lambda m: m.__name__
)
def test_forged_action_posts_never_break_a_changelist(admin_client, rows, model):
    """Ids that are no primary key at all select nothing, with or without ``index`` (the
    changelist's Go button, or a confirmation/intermediate form posting back)."""
    url = reverse(_name(model, "changelist"))
    actions = list(admin.site._registry[model].get_actions(admin_client.get(url).wsgi_request))
    for action in actions:
        for selected in FORGED_SELECTIONS:
            for extra in ({"index": "0"}, {"apply": "1", "post": "yes"}):
                data = {"action": action, ACTION_CHECKBOX_NAME: selected, **extra}
                status = admin_client.post(url, data).status_code
                assert status < 500, (action, selected, extra, status)


def test_a_forged_id_next_to_a_real_one_leaves_the_real_one_selected(
    admin_client, rows, redis_client, django_capture_on_commit_callbacks
):
    delivery = Delivery.objects.get(status=Delivery.FAILED)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:webhooks_delivery_changelist"),
            {"action": "retry", ACTION_CHECKBOX_NAME: ["not-a-pk", delivery.pk], "index": "0"},
            follow=True,
        )
    assert "Queued 1 deliveries again." in response.content.decode()
    delivery.refresh_from_db()
    assert delivery.status == Delivery.PENDING


def test_forged_ids_alone_select_nothing(admin_client, rows):
    response = admin_client.post(
        reverse("admin:accounts_apikey_changelist"),
        {"action": "revoke", ACTION_CHECKBOX_NAME: ["not-a-pk"], "index": "0"},
        follow=True,
    )
    assert response.status_code == 200
    assert "Items must be selected" in response.content.decode()


def test_custom_admin_urls_with_bad_ids(admin_client, rows):
    top_up = "admin:accounts_account_top_up"
    for bad in ("not-a-pk", "5f0c8a2e-2b1e-4f5e-9a51-2f3a6f1b7c11"):
        assert admin_client.get(reverse(top_up, args=[bad])).status_code == 404
    add_key = reverse("admin:accounts_apikey_add")
    for bad in ("not-a-pk", "\x00", "5f0c8a2e-2b1e-4f5e-9a51-2f3a6f1b7c11"):
        assert admin_client.get(add_key, {"account": bad}).status_code == 200


@pytest.mark.parametrize(
    "model_name", ["accounts.account", "enrichment.contact", "enrichment.bulkjob"]
)
def test_accounts_contacts_and_bulks_cannot_be_deleted_even_by_a_superuser(
    admin_client, rows, model_name
):
    from django.apps import apps

    model = apps.get_model(model_name)
    obj = model._default_manager.first()
    delete = reverse(_name(model, "delete"), args=[obj.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    changelist = reverse(_name(model, "changelist"))
    assert "delete_selected" not in admin_client.get(changelist).content.decode()
    admin_client.post(
        changelist, {"action": "delete_selected", ACTION_CHECKBOX_NAME: [obj.pk], "post": "yes"}
    )
    assert model._default_manager.filter(pk=obj.pk).exists()


# Values a forged or careless form post carries into the editable change forms.
BAD_VALUES = ("\x00", "x" * 5000, "-1", "99999999999999999999", "1e400", "nan", "[]", "{")


def test_editable_change_forms_answer_bad_input_with_form_errors(admin_client, rows):
    from apps.accounts.models import Account, ApiKey, Plan

    account = Account.objects.get(name="Sweep Inc")
    forms = {
        reverse("admin:accounts_account_change", args=[account.pk]): {
            "name": account.name,
            "plan": account.plan_id,
            "provider_order": "{}",
            "api_keys-TOTAL_FORMS": "1",
            "api_keys-INITIAL_FORMS": "1",
        },
        reverse("admin:accounts_apikey_change", args=[ApiKey.objects.first().pk]): {
            "name": "k",
            "ip_allowlist": "",
        },
        reverse("admin:accounts_plan_change", args=[Plan.objects.first().pk]): {
            "code": "x",
            "name": "x",
        },
        reverse("admin:providers_providerconfig_change", args=[ProviderConfig.objects.get().pk]): {
            "name": "sandbox",
            "enabled": "on",
        },
        reverse("admin:accounts_account_add"): {"name": "n", "plan": "pro", "mode": "test"},
        reverse("admin:accounts_apikey_add"): {"account": account.pk, "name": "n", "mode": "test"},
        reverse("admin:providers_providerconfig_add"): {"name": "sandbox"},
    }
    problems = []
    for url, valid in forms.items():
        form = admin_client.get(url).context["adminform"].form if "/add/" not in url else None
        fields = list(form.fields) if form else []
        fields += [k for k in valid if k not in fields]
        fields += ["credits", "default_phone_country_codes", "scopes", "provider_order"]
        for field in fields:
            for value in BAD_VALUES:
                status = admin_client.post(url, {**valid, field: value}).status_code
                if status >= 500:
                    problems.append(f"{status} {url} {field}={value[:20]!r}")
    assert problems == []
    account.refresh_from_db()
    assert account.credits == 10


def _change_page_cases():
    from apps.accounts.models import Account

    def account(n):
        obj = Account.objects.get(name="Sweep Inc")
        ApiKeyFactory.create_batch(n, account=obj)
        return obj

    def delivery(n):
        obj = Delivery.objects.get(status=Delivery.FAILED)
        DeliveryAttempt.objects.bulk_create(
            DeliveryAttempt(delivery=obj, at=timezone.now(), status_code=500) for _ in range(n)
        )
        return obj

    def event(n):
        obj = Delivery.objects.get(status=Delivery.FAILED).event
        for _ in range(n):
            DeliveryFactory(event=obj, endpoint=Delivery.objects.first().endpoint)
        return obj

    return {"account": account, "delivery": delivery, "event": event}


@pytest.mark.parametrize("case", ["account", "delivery", "event"])
def test_change_page_query_count_does_not_grow_with_inline_rows(admin_client, rows, case):
    from tests.support.querycount import page_queries

    make = _change_page_cases()[case]
    obj = make(2)
    url = reverse(_name(type(obj), "change"), args=[obj.pk])
    few = page_queries(admin_client, url)
    make(40)
    assert page_queries(admin_client, url) == few


@pytest.mark.parametrize(
    "model", [m for m in admin.site._registry if _sluice(m)], ids=lambda m: m.__name__
)
def test_no_changelist_filter_scans_its_table_for_distinct_values(admin_client, rows, model):
    """Django's filter on a field without choices lists its values with a DISTINCT over the
    whole table on every page load (attempts, deliveries: millions of rows). Only the date
    drill-down's DATE_TRUNC DISTINCT is left, on an indexed column."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        assert admin_client.get(reverse(_name(model, "changelist"))).status_code == 200
    scans = [
        q["sql"]
        for q in ctx.captured_queries
        if "SELECT DISTINCT" in q["sql"] and "DATE_TRUNC" not in q["sql"].upper()
    ]
    assert scans == []


def test_status_class_and_kind_filters(admin_client, rows):
    attempts = reverse("admin:webhooks_deliveryattempt_changelist")
    delivery = Delivery.objects.get(status=Delivery.FAILED)
    DeliveryAttempt.objects.create(delivery=delivery, at=timezone.now(), status_code=204)
    DeliveryAttempt.objects.create(delivery=delivery, at=timezone.now(), error="timeout")

    def codes(params):
        listed = admin_client.get(attempts, params).context["cl"].result_list
        return sorted(a.status_code or 0 for a in listed)

    assert codes({"status": "5xx"}) == [500]
    assert codes({"status": "2xx"}) == [204]
    assert codes({"status": "none"}) == [0]
    assert codes({"status": "bogus"}) == [0, 204, 500]
    records = reverse("admin:core_idempotencyrecord_changelist")
    for params, count in (({"response_status": "2xx"}, 1), ({"response_status": "4xx"}, 0)):
        assert len(admin_client.get(records, params).context["cl"].result_list) == count
    assert len(admin_client.get(records, {"method": "POST"}).context["cl"].result_list) == 1
    provider_attempts = reverse("admin:enrichment_providerattempt_changelist")
    for kind, count in (("email", 1), ("phone", 0)):
        listed = admin_client.get(provider_attempts, {"kind": kind}).context["cl"].result_list
        assert len(listed) == count, kind


@pytest.mark.parametrize("forged_id", ["not-a-pk", "99999999999999999999", "\x00", ""])
def test_forged_list_editable_posts_are_form_errors(admin_client, rows, forged_id):
    config = ProviderConfig.objects.get()
    data = {
        "form-TOTAL_FORMS": "1",
        "form-INITIAL_FORMS": "1",
        "form-MIN_NUM_FORMS": "0",
        "form-MAX_NUM_FORMS": "1000",
        "form-0-id": forged_id,
        "form-0-enabled": "",
        "form-0-priority_email": "3",
        "_save": "Save",
    }
    url = reverse("admin:providers_providerconfig_changelist")
    assert admin_client.post(url, data).status_code < 500
    data["form-0-id"] = str(config.pk)
    assert admin_client.post(url, data).status_code == 302
    config.refresh_from_db()
    assert (config.enabled, config.priority_email) == (False, 3)


def test_custom_filters_with_forged_values(admin_client, rows):
    cases = {
        "admin:enrichment_contact_changelist": ["provider"],
        "admin:enrichment_providerattempt_changelist": ["provider", "kind"],
        "admin:webhooks_delivery_changelist": ["event_type"],
        "admin:webhooks_deliveryattempt_changelist": ["status"],
        "admin:accounts_apikey_changelist": ["state"],
        "admin:accounts_account_changelist": ["provider_order"],
        "admin:core_idempotencyrecord_changelist": ["method", "response_status"],
    }
    problems = []
    for name, params in cases.items():
        for param in params:
            for value in ("\x00", "x" * 3000, "sandbox:\x00", ":", "%"):
                status = admin_client.get(reverse(name), {param: value}).status_code
                if status >= 500:
                    problems.append((name, param, value[:10], status))
    # Django's own filters too: a value its field cannot take, a NUL, an integer too large.
    for name, param in (
        ("admin:enrichment_contact_changelist", "status__exact"),
        ("admin:enrichment_contact_changelist", "account__id__exact"),
        ("admin:enrichment_contact_changelist", "created_at__gte"),
        ("admin:accounts_account_changelist", "plan__id__exact"),
        ("admin:webhooks_delivery_changelist", "endpoint__id__exact"),
        ("admin:webhooks_delivery_changelist", "event__id__exact"),
    ):
        for value in ("\x00", "99999999999999999999", "nope"):
            response = admin_client.get(reverse(name), {param: value}, follow=True)
            if response.status_code >= 500:
                problems.append((name, param, value[:10], response.status_code))
    assert problems == []
    # Reported the way Django reports any lookup it cannot run: back to the bare list.
    response = admin_client.get(
        reverse("admin:enrichment_contact_changelist"), {"provider": "\x00"}
    )
    assert (response.status_code, response["Location"]) == (302, "/admin/enrichment/contact/?e=1")


@pytest.mark.parametrize("bad", ["\x00", "99999999999999999999", "x" * 300, "-1"])
def test_object_pages_with_forged_ids_redirect_to_the_list(admin_client, rows, bad):
    """Whatever the primary key type (UUID, integer, the event's text id)."""
    problems = []
    for model in admin.site._registry:
        for view in ("change", "history", "delete"):
            url = reverse(_name(model, view), args=["placeholder"]).replace("placeholder", "{}")
            status = admin_client.get(url.format(quote(bad, safe=""))).status_code
            if status >= 500:
                problems.append((model.__name__, view, status))
    assert problems == []
