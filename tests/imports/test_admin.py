"""The imports admin pages: every one opens, read-only, at a query cost that does not grow."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.imports.models import Export, Import, ImportRowError
from tests.factories import AccountFactory, ApiKeyFactory, BulkJobFactory
from tests.support.querycount import MAX_CHANGELIST_QUERIES, page_queries

from .factories import import_rows

pytestmark = pytest.mark.django_db


@pytest.fixture
def rows():
    account = AccountFactory(name="Northwind Traders International")
    key = ApiKeyFactory(account=account)
    return import_rows(account=account, key=key, bulk=BulkJobFactory(account=account, total=3))


@pytest.mark.parametrize("model", [Import, ImportRowError, Export])
def test_changelists_and_change_pages_open_read_only(admin_client, rows, model):
    name = f"admin:imports_{model._meta.model_name}"
    assert page_queries(admin_client, reverse(f"{name}_changelist")) <= MAX_CHANGELIST_QUERIES
    obj = model.objects.get()
    page = admin_client.get(reverse(f"{name}_change", args=[obj.pk]))
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert admin_client.get(reverse(f"{name}_add")).status_code == 403


def test_the_import_page_links_its_bulk_and_its_row_errors(admin_client, rows):
    page = admin_client.get(reverse("admin:imports_import_change", args=[rows.pk])).content
    assert reverse("admin:enrichment_bulkjob_change", args=[rows.bulk_id]).encode() in page
    assert f"?import_job__id__exact={rows.pk}".encode() in page
    listed = admin_client.get(
        reverse("admin:imports_importrowerror_changelist"), {"import_job__id__exact": rows.pk}
    )
    assert b"1207" in listed.content
