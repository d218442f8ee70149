"""The admin's list pages: what staff see and may change, and what they may not."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.enrichment.models import List, ListEntry
from apps.enrichment.services.lists import contacts_add_to_list
from tests.factories import AccountFactory, ContactFactory
from tests.support.querycount import page_queries

pytestmark = pytest.mark.django_db


@pytest.fixture
def filled():
    account = AccountFactory(name="Northwind")
    targets = List.objects.create(account=account, sandbox=True, name="Targets", color="amber")
    other = List.objects.create(account=account, sandbox=True, name="Other")
    contacts = [ContactFactory(account=account, first_name=f"Ada{i}") for i in range(3)]
    contacts_add_to_list(list_obj=targets, contacts=contacts)
    contacts_add_to_list(list_obj=other, contacts=contacts[:1])
    return targets, contacts


def test_a_lists_page_links_to_exactly_its_entries(admin_client, filled):
    targets, contacts = filled
    page = admin_client.get(reverse("admin:enrichment_list_change", args=[targets.pk]))
    assert page.status_code == 200
    link = reverse("admin:enrichment_listentry_changelist") + f"?list_id__exact={targets.pk}"
    assert link in page.content.decode()
    assert "The 3 contacts of this list" in page.content.decode()
    entries = admin_client.get(link)
    assert entries.status_code == 200
    shown = list(entries.context["cl"].result_list)
    assert {e.contact_id for e in shown} == {c.pk for c in contacts}
    assert {e.list_id for e in shown} == {targets.pk}


def test_staff_rename_recolour_and_pin_without_touching_the_count(admin_client, filled):
    targets, _ = filled
    url = reverse("admin:enrichment_list_change", args=[targets.pk])
    # A concurrent add happens after the page was read: the save must not undo it.
    form = {"name": "Renamed", "description": "", "color": "rose", "is_pinned": "on"}
    admin_client.get(url)
    contacts_add_to_list(list_obj=targets, contacts=[ContactFactory(account=targets.account)])
    response = admin_client.post(url, form)
    assert response.status_code == 302
    targets.refresh_from_db()
    assert (targets.name, targets.color, targets.is_pinned) == ("Renamed", "rose", True)
    assert targets.description is None
    assert targets.contact_count == 4 == ListEntry.objects.filter(list=targets).count()


def test_a_colour_outside_the_palette_is_a_form_error(admin_client, filled):
    targets, _ = filled
    url = reverse("admin:enrichment_list_change", args=[targets.pk])
    response = admin_client.post(url, {"name": "x", "color": "#ff0000"})
    assert response.status_code == 200
    assert "color" in response.context["adminform"].form.errors
    targets.refresh_from_db()
    assert targets.color == "amber"


def test_lists_cannot_be_added_or_deleted_and_entries_are_read_only(admin_client, filled):
    targets, _ = filled
    assert admin_client.get(reverse("admin:enrichment_list_add")).status_code == 403
    delete = reverse("admin:enrichment_list_delete", args=[targets.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert List.objects.filter(pk=targets.pk).exists()
    entry = ListEntry.objects.filter(list=targets).first()
    change = reverse("admin:enrichment_listentry_change", args=[entry.pk])
    assert admin_client.post(change, {}).status_code == 403


def test_the_changelists_cost_the_same_queries_for_2_or_30_rows(admin_client, filled):
    targets, _ = filled
    lists_url = reverse("admin:enrichment_list_changelist")
    entries_url = reverse("admin:enrichment_listentry_changelist")
    few = page_queries(admin_client, lists_url), page_queries(admin_client, entries_url)
    for i in range(28):
        extra = List.objects.create(account=targets.account, sandbox=True, name=f"L{i}")
        contacts_add_to_list(list_obj=extra, contacts=[ContactFactory(account=targets.account)])
    many = page_queries(admin_client, lists_url), page_queries(admin_client, entries_url)
    assert many == few


def test_searching_by_list_or_account_id(admin_client, filled):
    targets, _ = filled
    url = reverse("admin:enrichment_list_changelist")
    for term in (str(targets.pk), str(targets.account_id), "Targets"):
        shown = admin_client.get(url, {"q": term}).context["cl"].result_list
        assert targets in list(shown), term
    entries = reverse("admin:enrichment_listentry_changelist")
    shown = admin_client.get(entries, {"q": str(targets.pk)}).context["cl"].result_list
    assert {e.list_id for e in shown} == {targets.pk}
