"""Live keys end to end: a real worker process, the real adapters, the simulator process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import requests
from django.db.models import Sum

from apps.accounts.models import LedgerEntry
from apps.enrichment import services
from apps.enrichment.models import BulkJob, Contact, ProviderAttempt
from tests.support.worker import ROOT, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def simulator_process():
    """``manage.py provider_simulator`` on a free loopback port, as the Procfile runs it."""
    port = _free_port()
    log_path = Path(os.environ.get("SLUICE_VAR_DIR", "/tmp")) / f"simulator-e2e-{port}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "provider_simulator", "--port", str(port)],
            cwd=ROOT,
            env=os.environ | {"SIMULATOR_LATENCY_MS": "5", "SIMULATOR_ERROR_RATE": "0.02"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return requests.get(f"{url}/healthz", timeout=0.5).ok
            except requests.RequestException:
                return proc.poll() is not None  # exited: stop waiting, fail below

        try:
            wait_for(up, timeout=20, message="simulator did not start")
            assert proc.poll() is None, f"simulator exited; see {log_path}"
            yield url
        finally:
            proc.terminate()
            proc.wait(10)


def test_bulk_of_50_live_contacts_through_worker_and_simulator(
    client_factory, worker_factory, simulator_process
):
    api = client_factory(mode="live", credits=2000)
    people = requests.get(f"{simulator_process}/_simulator/people?limit=50", timeout=5).json()
    contacts = [
        {
            "first_name": p["first_name"],
            "last_name": p["last_name"],
            "company_name": p["company_name"],
            "domain": p["domain"],
            "linkedin_url": p["linkedin_url"],
            "custom": {"row": i},
        }
        for i, p in enumerate(people["people"])
    ]
    assert len(contacts) == 50
    worker_factory(
        env={
            "PROVIDER_SIMULATOR_URL": simulator_process,
            "ENRICHMENT_CONCURRENCY": "8",
            "PROVIDER_RETRY_BACKOFF_SECONDS": "0.01",
        },
        queues="enrichment",
    )
    response = api.post(
        "/api/v1/enrich/bulk",
        json.dumps(
            {
                "contacts": contacts,
                "enrichment_type": ["email", "phone"],
                "phone_country_codes": ["US", "GB", "DE", "FR"],
            }
        ),
        content_type="application/json",
    )
    assert response.status_code == 202, response.content
    bulk_id = response.json()["bulk_id"]
    wait_for(
        lambda: BulkJob.objects.get(pk=bulk_id).completed_at,
        timeout=90,
        message="bulk did not complete",
    )

    finished = Contact.objects.filter(bulk_id=bulk_id)
    assert finished.filter(status=Contact.FINISHED).count() == 50
    statuses = Counter(finished.values_list("result_status", flat=True))
    assert statuses[Contact.VERIFIED] >= 25, statuses

    # Hits are spread over several providers, and the order shows in who answered.
    answered = Counter()
    for result in finished.filter(result_status=Contact.VERIFIED).values_list("result", flat=True):
        for kind, provider in result["providers"].items():
            answered[(kind, provider)] += 1
        assert result["email"] is None or result["email"] == result["email"].lower()
        for phone in result["phones"]:
            assert phone["number"].startswith("+") and phone["country"] in {"US", "GB", "DE", "FR"}
    assert len({provider for _, provider in answered}) >= 2, answered
    assert answered[("email", "hunter")] > 0 and answered[("email", "hunter")] < 50

    # Every provider call is recorded: the simulator's own count matches our attempts.
    attempts = ProviderAttempt.objects.filter(contact__bulk_id=bulk_id)
    calls = attempts.filter(outcome__in=["hit", "miss", "error"]).count()
    simulated = requests.get(f"{simulator_process}/healthz", timeout=5).json()["calls"]
    assert calls == sum(simulated.values())
    assert attempts.filter(outcome="hit").count() >= statuses[Contact.VERIFIED]

    # Charged once per VERIFIED contact, exactly what the contacts say they were charged.
    charges = LedgerEntry.objects.filter(account=api.account, entry_type="charge")
    assert charges.count() == statuses[Contact.VERIFIED]
    charged = finished.aggregate(total=Sum("credits_charged"))["total"]
    assert -charges.aggregate(total=Sum("amount"))["total"] == charged
    api.account.refresh_from_db()
    assert api.account.credits == 2000 - charged
    bulk = api.get(f"/api/v1/bulk/{bulk_id}").json()
    assert (bulk["finished"], bulk["verified"], bulk["credits_used"]) == (
        50,
        statuses[Contact.VERIFIED],
        charged,
    )

    # A redelivered message changes nothing.
    assert (
        services.contacts_run(contact_ids=[str(pk) for pk in finished.values_list("pk", flat=True)])
        == 0
    )
    assert charges.count() == statuses[Contact.VERIFIED]
    one = api.get(f"/api/v1/contacts/{response.json()['contacts'][0]['enrichment_id']}").json()
    assert one["status"] == "finished" and one["custom"] == {"row": 0}
    assert one["attempts"], "attempts are visible on the contact"
