"""Ops services: re-running FAILED contacts."""

from __future__ import annotations

import pytest
from django.utils import timezone

from apps.enrichment.models import BulkJob, Contact, ProviderAttempt
from apps.enrichment.services import contacts_run
from apps.ops.services import contacts_rerun
from tests.factories import BulkJobFactory, ContactFactory

pytestmark = pytest.mark.django_db


def _failed(**fields) -> Contact:
    contact = ContactFactory(
        status=Contact.FINISHED,
        result_status=Contact.FAILED,
        result={"status": "FAILED"},
        finished_at=timezone.now(),
        run_count=1,
        **fields,
    )
    ProviderAttempt.objects.create(
        contact=contact, provider="sandbox", kind="email", outcome="error"
    )
    return contact


def test_rerun_resets_only_failed_contacts_and_publishes_once_committed(
    redis_client, django_capture_on_commit_callbacks
):
    failed = _failed()
    verified = ContactFactory(status=Contact.FINISHED, result_status=Contact.VERIFIED)
    pending = ContactFactory()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        ids = contacts_rerun(contact_ids=[failed.pk, verified.pk, pending.pk])
    assert ids == [str(failed.pk)]
    assert redis_client.llen("enrichment") == 0  # nothing before the commit
    for callback in callbacks:
        callback()
    assert redis_client.llen("enrichment") == 1
    failed.refresh_from_db()
    assert failed.status == Contact.PENDING
    assert (failed.result, failed.result_status, failed.finished_at) == (None, None, None)
    assert not failed.attempts.exists()
    verified.refresh_from_db()
    assert verified.result_status == Contact.VERIFIED


def test_rerun_of_a_bulk_contact_steps_its_counters_back_and_finishes_again(
    django_capture_on_commit_callbacks,
):
    bulk = BulkJobFactory(total=1, finished=1, failed=1, completed_at=timezone.now())
    contact = _failed(account=bulk.account, bulk=bulk, first_name="Ada", last_name="Lovelace")
    with django_capture_on_commit_callbacks(execute=False):
        contacts_rerun(contact_ids=[contact.pk])
    bulk.refresh_from_db()
    assert (bulk.finished, bulk.failed) == (0, 0)
    assert bulk.completed_at is not None  # bulk.completed is never emitted twice

    assert contacts_run(contact_ids=[str(contact.pk)]) == 1  # the sandbox waterfall
    contact.refresh_from_db()
    bulk.refresh_from_db()
    assert contact.status == Contact.FINISHED
    assert contact.result_status != Contact.FAILED
    assert bulk.finished == 1 and bulk.failed == 0
    assert BulkJob.objects.get(pk=bulk.pk).finished == bulk.total


def test_rerun_of_nothing_failed_does_nothing(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        assert contacts_rerun(contact_ids=[ContactFactory().pk]) == []
    assert callbacks == []
