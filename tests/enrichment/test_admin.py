"""Admin for enrichments, bulk jobs and provider attempts: search, filters, re-run, query counts."""

from __future__ import annotations

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse
from django.utils import timezone

from apps.enrichment.models import Contact, ProviderAttempt
from tests.factories import AccountFactory, BulkJobFactory, ContactFactory, leased_contact
from tests.support.querycount import MAX_CHANGELIST_QUERIES, page_queries

pytestmark = pytest.mark.django_db


def _finished(contact: Contact, status: str, email: str | None = None, **attempt) -> Contact:
    contact.status = Contact.FINISHED
    contact.result_status = status
    contact.finished_at = timezone.now()
    contact.result = {"status": status, "email": email, "phones": []}
    contact.save()
    if attempt:
        ProviderAttempt.objects.create(contact=contact, **attempt)
    return contact


def _contacts(n: int) -> None:
    account = AccountFactory()
    bulk = BulkJobFactory(account=account, total=n)
    for i in range(n):
        c = ContactFactory(account=account, bulk=bulk, position=i)
        _finished(
            c, Contact.VERIFIED, f"p{i}@acme.com", provider="sandbox", kind="email", outcome="hit"
        )


def _attempts(n: int) -> None:
    contact = ContactFactory()
    ProviderAttempt.objects.bulk_create(
        ProviderAttempt(
            contact=contact, provider="sandbox", kind="email", outcome="miss", position=i
        )
        for i in range(n)
    )


@pytest.mark.parametrize(
    ("url_name", "make"),
    [
        ("admin:enrichment_contact_changelist", _contacts),
        ("admin:enrichment_bulkjob_changelist", lambda n: BulkJobFactory.create_batch(n, total=3)),
        ("admin:enrichment_providerattempt_changelist", _attempts),
    ],
)
def test_changelist_query_count_does_not_grow_with_rows(admin_client, url_name, make):
    url = reverse(url_name)
    make(5)
    few = page_queries(admin_client, url)
    make(45)
    many = page_queries(admin_client, url)
    assert few == many
    assert many <= MAX_CHANGELIST_QUERIES


def test_contact_change_page_query_count_does_not_grow_with_attempts(admin_client):
    contact = ContactFactory()
    url = reverse("admin:enrichment_contact_change", args=[contact.pk])
    _add = lambda n: ProviderAttempt.objects.bulk_create(  # noqa: E731
        ProviderAttempt(contact=contact, provider="sandbox", kind="email", outcome="error")
        for _ in range(n)
    )
    _add(2)
    few = page_queries(admin_client, url)
    _add(30)
    assert page_queries(admin_client, url) == few


def test_find_an_enrichment_by_found_email_name_domain_id_or_custom(admin_client):
    account = AccountFactory(name="Wayne Enterprises")
    wanted = _finished(
        ContactFactory(
            account=account,
            first_name="Sarah",
            last_name="Chen",
            domain="stripe.com",
            custom={"hubspot_id": "4447901"},
        ),
        Contact.VERIFIED,
        "sarah.chen@stripe.com",
    )
    other = ContactFactory(first_name="Bob", last_name="Other", domain="other.com")
    url = reverse("admin:enrichment_contact_changelist")
    for term in (
        "sarah.chen@stripe.com",
        "Sarah Chen",
        "stripe.com",
        str(wanted.pk),
        "4447901",
        "Wayne",
    ):
        body = admin_client.get(url, {"q": term}).content.decode()
        assert reverse("admin:enrichment_contact_change", args=[wanted.pk]) in body, term
        assert reverse("admin:enrichment_contact_change", args=[other.pk]) not in body, term


def test_filters_by_status_result_provider_sandbox_and_account(admin_client):
    account = AccountFactory()
    hit = _finished(
        ContactFactory(account=account, sandbox=False),
        Contact.VERIFIED,
        "a@x.com",
        provider="sandbox",
        kind="email",
        outcome="hit",
    )
    failed = _finished(
        ContactFactory(sandbox=True),
        Contact.FAILED,
        provider="sandbox",
        kind="email",
        outcome="error",
    )
    pending = ContactFactory(sandbox=True)
    url = reverse("admin:enrichment_contact_changelist")

    def listed(params: dict) -> set:
        response = admin_client.get(url, params)
        assert response.status_code == 200
        return {str(c.pk) for c in response.context["cl"].result_list}

    assert listed({"status__exact": "pending"}) == {str(pending.pk)}
    assert listed({"result_status__exact": "FAILED"}) == {str(failed.pk)}
    assert listed({"provider": "sandbox"}) == {str(hit.pk), str(failed.pk)}
    assert listed({"provider": "sandbox:hit"}) == {str(hit.pk)}
    assert listed({"sandbox__exact": "0"}) == {str(hit.pk)}
    assert listed({"account__id__exact": str(account.pk)}) == {str(hit.pk)}


def test_contact_page_shows_attempts_result_and_custom_read_only(admin_client):
    contact = _finished(
        ContactFactory(custom={"crm": "row-77"}),
        Contact.FAILED,
        provider="sandbox",
        kind="email",
        outcome="error",
        error="upstream 503",
        duration_ms=321,
    )
    url = reverse("admin:enrichment_contact_change", args=[contact.pk])
    body = admin_client.get(url).content.decode()
    assert "upstream 503" in body
    assert "321" in body
    assert "row-77" in body
    assert "FAILED" in body
    assert 'name="_save"' not in body


@pytest.mark.parametrize("model", ["contact", "bulkjob"])
def test_a_posted_change_form_writes_nothing(admin_client, model):
    """Workers update these rows; a save from a stale form would undo their writes."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    obj = ContactFactory() if model == "contact" else BulkJobFactory(total=2)
    url = reverse(f"admin:enrichment_{model}_change", args=[obj.pk])
    with CaptureQueriesContext(connection) as ctx:
        admin_client.post(url, {"first_name": "Changed", "finished": "2"})
    assert not [q for q in ctx.captured_queries if q["sql"].startswith("UPDATE")]


def test_rerun_action_resets_failed_contacts_and_publishes_them(
    admin_client, redis_client, django_capture_on_commit_callbacks
):
    failed = _finished(
        ContactFactory(), Contact.FAILED, provider="sandbox", kind="email", outcome="error"
    )
    verified = _finished(ContactFactory(), Contact.VERIFIED, "v@acme.com")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:enrichment_contact_changelist"),
            {"action": "rerun_failed", ACTION_CHECKBOX_NAME: [failed.pk, verified.pk]},
            follow=True,
        )
    assert "Re-running 1 enrichment(s). Skipped 1 that are not FAILED." in response.content.decode()
    failed.refresh_from_db()
    verified.refresh_from_db()
    assert (failed.status, failed.result, failed.result_status) == ("pending", None, None)
    assert verified.result_status == Contact.VERIFIED
    assert redis_client.llen("enrichment") == 1


def test_bulk_list_shows_progress_and_links_to_its_contacts(admin_client):
    bulk = BulkJobFactory(total=4, finished=1, verified=1)
    mine = ContactFactory(account=bulk.account, bulk=bulk)
    ContactFactory()
    body = admin_client.get(reverse("admin:enrichment_bulkjob_changelist")).content.decode()
    assert "1/4 (25%)" in body
    page = admin_client.get(reverse("admin:enrichment_bulkjob_change", args=[bulk.pk]))
    link = reverse("admin:enrichment_contact_changelist") + f"?bulk__id__exact={bulk.pk}"
    assert link in page.content.decode()
    listed = admin_client.get(link).context["cl"].result_list
    assert [c.pk for c in listed] == [mine.pk]


def test_attempts_are_read_only(admin_client):
    contact = ContactFactory()
    attempt = ProviderAttempt.objects.create(
        contact=contact, provider="sandbox", kind="email", outcome="hit"
    )
    assert admin_client.get(reverse("admin:enrichment_providerattempt_add")).status_code == 403
    url = reverse("admin:enrichment_providerattempt_change", args=[attempt.pk])
    assert admin_client.get(url).status_code == 200
    assert admin_client.post(url, {"outcome": "miss"}).status_code == 403


def test_a_uuid_the_client_put_in_custom_is_found_when_no_id_matches(admin_client):
    crm_id = "3d1f0a3e-8a51-4c2e-9f0a-6b7c8d9e0f12"
    wanted = ContactFactory(custom={"crm_id": crm_id})
    by_id = ContactFactory()
    url = reverse("admin:enrichment_contact_changelist")
    for term, expected in ((crm_id, wanted), (str(by_id.pk), by_id)):
        listed = admin_client.get(url, {"q": term}).context["cl"].result_list
        assert [c.pk for c in listed] == [expected.pk], term


def test_find_an_enrichment_by_its_webhook_url(admin_client):
    wanted = ContactFactory(webhook_url="https://crm.example/sluice-callback")
    ContactFactory(webhook_url="https://other.example/hook")
    url = reverse("admin:enrichment_contact_changelist")
    listed = admin_client.get(url, {"q": "crm.example/sluice"}).context["cl"].result_list
    assert [c.pk for c in listed] == [wanted.pk]


# --- Leases: the filter, and releasing pending contacts ---------------------------------------


def _listed(client, params: dict) -> set[str]:
    response = client.get(reverse("admin:enrichment_contact_changelist"), params)
    assert response.status_code == 200
    return {str(c.pk) for c in response.context["cl"].result_list}


def test_lease_filter_tells_live_lapsed_and_unclaimed_pending_contacts_apart(admin_client):
    live = leased_contact(lease=10)
    lapsed = leased_contact(lease=-1)
    unclaimed = leased_contact(lease=None)
    # A finished contact's old lease means nothing: it is in no lease choice.
    leased_contact(lease=-60, status=Contact.FINISHED, result_status=Contact.VERIFIED)
    assert _listed(admin_client, {"lease": "live"}) == {str(live.pk)}
    assert _listed(admin_client, {"lease": "lapsed"}) == {str(lapsed.pk)}
    assert _listed(admin_client, {"lease": "none"}) == {str(unclaimed.pk)}
    body = admin_client.get(reverse("admin:enrichment_contact_changelist")).content.decode()
    for label in ("held by a live worker", "lapsed (worker gone)", "not claimed"):
        assert label in body


def test_recovery_filter_lists_stuck_and_rerun_contacts(admin_client, settings):
    settings.ENRICHMENT_STUCK_AFTER_SECONDS = 120
    stuck_live = leased_contact(lease=10, age=600)
    stuck_unclaimed = leased_contact(lease=None, age=300)
    leased_contact(lease=None, age=30)  # waiting, not for long
    rerun = leased_contact(lease=-1, runs=2)
    rerun_done = leased_contact(lease=-60, runs=3, status=Contact.FINISHED, result_status="FAILED")
    rerun_old = leased_contact(lease=-60, runs=2, age=30 * 3600, status=Contact.FINISHED)
    assert _listed(admin_client, {"recovery": "stuck"}) == {
        str(stuck_live.pk),
        str(stuck_unclaimed.pk),
    }
    assert _listed(admin_client, {"recovery": "rerun_24h"}) == {str(rerun.pk), str(rerun_done.pk)}
    assert _listed(admin_client, {"recovery": "rerun"}) == {
        str(rerun.pk),
        str(rerun_done.pk),
        str(rerun_old.pk),
    }


@pytest.mark.parametrize("params", ["?lease=lapsed", "?recovery=stuck", "?recovery=rerun_24h"])
def test_lease_and_recovery_filters_cost_no_query_per_row(admin_client, params):
    url = reverse("admin:enrichment_contact_changelist") + params

    def add(n: int) -> None:
        for i in range(n):
            leased_contact(lease=-1 if i % 2 else None, age=600, runs=2)

    add(4)
    few = page_queries(admin_client, url)
    add(40)
    assert page_queries(admin_client, url) == few
    assert few <= MAX_CHANGELIST_QUERIES


def _release(client, contacts: list[Contact]):
    return client.post(
        reverse("admin:enrichment_contact_changelist"),
        {"action": "release_pending", ACTION_CHECKBOX_NAME: [c.pk for c in contacts]},
        follow=True,
    )


def test_release_publishes_orphaned_and_unclaimed_contacts_and_skips_live_ones(
    admin_client, redis_client, django_capture_on_commit_callbacks
):
    from django.contrib.admin.models import LogEntry

    from tests.support.queues import queued_contact_ids

    orphaned = leased_contact(lease=-1)
    unclaimed = leased_contact(lease=None, age=600)
    live = leased_contact(lease=10)
    done = _finished(ContactFactory(), Contact.VERIFIED, "v@acme.com")
    with django_capture_on_commit_callbacks(execute=True):
        response = _release(admin_client, [orphaned, unclaimed, live, done])
    body = response.content.decode()
    assert "Published 2 pending enrichment(s) again." in body
    assert "Skipped 1 held by a live worker" in body
    assert "Ignored 1 that are finished" in body
    queued = [pk for message in queued_contact_ids(redis_client) for pk in message]
    assert sorted(queued) == sorted([str(orphaned.pk), str(unclaimed.pk)])
    orphaned_before = orphaned.lease_owner
    for contact in (orphaned, unclaimed):
        contact.refresh_from_db()
        assert contact.status == Contact.PENDING
        assert contact.lease_expires_at is None and contact.published_at is not None
    # Cleared with the lease: the old holder's late renewal or finish no longer matches.
    assert orphaned_before is not None and orphaned.lease_owner is None
    live_before = live.lease_expires_at
    live.refresh_from_db()
    assert live.lease_expires_at == live_before and live.published_at is None
    logged = set(LogEntry.objects.values_list("object_id", flat=True))
    assert logged == {str(orphaned.pk), str(unclaimed.pk)}


def test_release_with_only_live_or_finished_contacts_publishes_nothing_and_says_so(
    admin_client, redis_client, django_capture_on_commit_callbacks
):
    live = leased_contact(lease=10)
    done = _finished(ContactFactory(), Contact.FAILED)
    with django_capture_on_commit_callbacks(execute=True):
        response = _release(admin_client, [live, done])
    messages = [(m.level_tag, str(m)) for m in response.context["messages"]]
    assert len(messages) == 1
    level, text = messages[0]
    assert level == "warning"
    assert text.startswith("Published 0 pending enrichment(s) again. Skipped 1 held by a live")
    assert redis_client.llen("enrichment") == 0


def _staff_client(client, django_user_model, *perms: str, group: str | None = None):
    from django.contrib.auth.models import Group, Permission

    user = django_user_model.objects.create_user("ops", password="pw-12345-long", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=perms))
    if group:
        user.groups.add(Group.objects.get(name=group))
    client.force_login(user)
    return client


def _offered_actions(client) -> set[str]:
    response = client.get(reverse("admin:enrichment_contact_changelist"))
    assert response.status_code == 200
    form = response.context["action_form"]
    return {value for value, _ in form.fields["action"].choices} if form else set()


def test_read_only_support_staff_neither_see_nor_run_the_release(
    client, django_user_model, redis_client, django_capture_on_commit_callbacks
):
    from apps.ops.services import SUPPORT_GROUP

    support = _staff_client(client, django_user_model, group=SUPPORT_GROUP)
    orphaned = leased_contact(lease=-1)
    assert "release_pending" not in _offered_actions(support)
    with django_capture_on_commit_callbacks(execute=True):
        _release(support, [orphaned])
    assert redis_client.llen("enrichment") == 0
    before = orphaned.lease_expires_at
    orphaned.refresh_from_db()
    assert orphaned.lease_expires_at == before and orphaned.published_at is None


def test_the_release_is_offered_with_the_change_permission_like_the_rerun(
    client, django_user_model, redis_client, django_capture_on_commit_callbacks
):
    ops = _staff_client(client, django_user_model, "view_contact", "change_contact")
    assert {"release_pending", "rerun_failed"} <= _offered_actions(ops)
    orphaned = leased_contact(lease=-1)
    with django_capture_on_commit_callbacks(execute=True):
        response = _release(ops, [orphaned])
    assert "Published 1 pending enrichment(s) again." in response.content.decode()
    assert redis_client.llen("enrichment") == 1
