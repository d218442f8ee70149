"""The read-only "support" group: view on every Sluice model, nothing else, kept up to date."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Group, Permission
from django.core.management.sql import emit_post_migrate_signal
from django.urls import reverse

from apps.accounts.models import Account
from apps.enrichment.models import Contact
from apps.ops.services import SUPPORT_GROUP
from tests.factories import AccountFactory, ApiKeyFactory, ContactFactory
from tests.webhooks.factories import DeliveryFactory

pytestmark = pytest.mark.django_db


def _sluice_models() -> list:
    return [m for m in apps.get_models() if m.__module__.startswith("apps.")]


@pytest.fixture
def support_client(client, django_user_model):
    user = django_user_model.objects.create_user(
        "support", password="support-pw-123", is_staff=True
    )
    user.groups.add(Group.objects.get(name=SUPPORT_GROUP))
    client.force_login(user)
    return client


def test_group_has_view_permission_on_every_sluice_model_and_nothing_else():
    group = Group.objects.get(name=SUPPORT_GROUP)
    granted = set(group.permissions.values_list("content_type__app_label", "codename"))
    expected = {(m._meta.app_label, f"view_{m._meta.model_name}") for m in _sluice_models()}
    assert expected
    assert granted == expected


def test_post_migrate_grants_view_permissions_again_for_models_added_later():
    group = Group.objects.get(name=SUPPORT_GROUP)
    group.permissions.clear()
    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")
    assert group.permissions.count() == len(_sluice_models())
    assert not group.permissions.exclude(codename__startswith="view_").exists()


def test_support_user_can_view_every_sluice_changelist(support_client):
    for model in _sluice_models():
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        assert support_client.get(url).status_code == 200, url
    assert support_client.get("/admin/dashboard/").status_code == 200


def test_support_user_can_open_but_not_change_an_account(support_client):
    account = AccountFactory(name="Readonly Inc")
    url = reverse("admin:accounts_account_change", args=[account.pk])
    page = support_client.get(url)
    assert page.status_code == 200
    assert "Readonly Inc" in page.content.decode()
    assert 'name="_save"' not in page.content.decode()
    response = support_client.post(
        url, {"name": "Changed", "plan": account.plan_id, "provider_order": "{}"}
    )
    assert response.status_code == 403
    account.refresh_from_db()
    assert account.name == "Readonly Inc"


def test_support_user_gets_no_actions_and_cannot_add_or_delete(support_client):
    account = AccountFactory()
    key = ApiKeyFactory(account=account)
    contact = ContactFactory(account=account)
    listing = support_client.get(reverse("admin:accounts_account_changelist"))
    assert 'name="action"' not in listing.content.decode()
    # Posting an action anyway does nothing: the action is not offered to this user.
    support_client.post(
        reverse("admin:accounts_apikey_changelist"),
        {"action": "revoke", ACTION_CHECKBOX_NAME: [key.pk]},
    )
    key.refresh_from_db()
    assert key.revoked_at is None
    assert support_client.get(reverse("admin:accounts_account_add")).status_code == 403
    assert support_client.get(reverse("admin:accounts_apikey_add")).status_code == 403
    delete = reverse("admin:enrichment_contact_delete", args=[contact.pk])
    assert support_client.post(delete, {"post": "yes"}).status_code == 403
    assert Contact.objects.filter(pk=contact.pk).exists()
    assert Account.objects.filter(pk=account.pk).exists()


def test_support_user_cannot_retry_deliveries_or_see_auth_admin(support_client):
    delivery = DeliveryFactory(status="failed")
    support_client.post(
        reverse("admin:webhooks_delivery_changelist"),
        {"action": "retry", ACTION_CHECKBOX_NAME: [delivery.pk]},
    )
    delivery.refresh_from_db()
    assert delivery.status == "failed"
    assert support_client.get(reverse("admin:auth_user_changelist")).status_code == 403
    assert not Permission.objects.filter(group__name=SUPPORT_GROUP, content_type__app_label="auth")


def test_every_sluice_model_is_registered_in_the_admin():
    from django.contrib import admin

    missing = [m.__name__ for m in _sluice_models() if not admin.site.is_registered(m)]
    assert missing == []


def test_the_data_migration_itself_creates_the_group_and_its_reverse_removes_it():
    """Without any post_migrate help: run the ops migration backwards and forwards."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.migrate([("ops", None)])
    assert not Group.objects.filter(name=SUPPORT_GROUP).exists()
    executor.loader.build_graph()
    executor.migrate([("ops", "0001_support_group")])
    group = Group.objects.get(name=SUPPORT_GROUP)
    codenames = set(group.permissions.values_list("codename", flat=True))
    assert {"view_account", "view_contact", "view_ledgerentry"} <= codenames
    assert all(c.startswith("view_") for c in codenames)
