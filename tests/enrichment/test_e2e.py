"""End to end through a real Celery worker on the real Redis broker."""

from __future__ import annotations

import json

import pytest

from apps.enrichment.models import BulkJob, Contact
from tests.support.worker import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def test_bulk_of_20_sandbox_contacts_finishes_through_a_worker(api, worker):
    contacts = [
        {
            "first_name": f"Ada{i}",
            "last_name": "Lovelace",
            "company_name": "Analytical Engines",
            "domain": f"engine{i}.io",
            "custom": {"crm_id": i, "tags": ["a", {"b": i}]},
        }
        for i in range(20)
    ]
    response = api.post(
        "/api/v1/enrich/bulk",
        json.dumps({"contacts": contacts, "enrichment_type": ["email"]}),
        content_type="application/json",
    )
    assert response.status_code == 202
    bulk_id = response.json()["bulk_id"]

    wait_for(
        lambda: BulkJob.objects.get(pk=bulk_id).completed_at,
        timeout=60,
        message="bulk did not complete",
    )
    for i, accepted in enumerate(response.json()["contacts"]):
        body = api.get(f"/api/v1/contacts/{accepted['enrichment_id']}").json()
        assert body["status"] == "finished"
        assert body["result"]["status"] == "VERIFIED"
        assert body["result"]["email"] == f"ada{i}.lovelace@engine{i}.io"
        assert body["custom"] == {"crm_id": i, "tags": ["a", {"b": i}]}
        assert body["sandbox"] is True
    bulk = api.get(f"/api/v1/bulk/{bulk_id}").json()
    assert bulk["status"] == "completed"
    assert (bulk["finished"], bulk["verified"]) == (20, 20)
    assert Contact.objects.filter(status="pending").count() == 0
