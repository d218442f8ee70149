"""Imports and exports end to end: a real Celery worker on the real broker, the sandbox
provider, a real HTTP receiver for the webhook; and a worker SIGKILLed mid-import."""

from __future__ import annotations

import csv
import io
import json
import time

import pytest

from apps.enrichment.models import Contact
from apps.imports.models import Import
from apps.imports.services import jobs_sweep
from tests.support.receiver import Receiver
from tests.support.worker import wait_for

from .support import csv_bytes, people, upload

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


def test_import_enrich_export_through_a_worker(api, worker, receiver):
    rows = people(30, bad_every=10)  # rows 0, 10, 20 lack a last name: 27 valid
    rows[5][4] = "=HYPERLINK(1)"  # a formula in a custom column is exported inert
    made = api.post("/api/v1/lists", json.dumps({"name": "Fair"}), content_type="application/json")
    list_id = made.json()["id"]
    response = upload(api, csv_bytes(rows), webhook_url=receiver.url("/hook"), list_id=list_id)
    assert response.status_code == 202, response.json()
    import_id = response.json()["import_id"]

    done = wait_for(
        lambda: (
            (body := api.get(f"/api/v1/imports/{import_id}").json())["status"] == "completed"
            and body
        ),
        timeout=90,
        message="import did not complete",
    )
    assert (done["total_rows"], done["imported_rows"], done["error_count"]) == (30, 27, 3)
    assert (done["finished"], done["verified"], done["credits_used"]) == (27, 27, 0)
    assert api.get(f"/api/v1/lists/{list_id}").json()["contact_count"] == 27
    errors = api.get(f"/api/v1/imports/{import_id}/errors").json()["data"]
    assert [e["row"] for e in errors] == [2, 12, 22]

    # import.completed to the webhook_url, once, instead of bulk.completed.
    wait_for(lambda: receiver.received("import.completed"), timeout=30, message="no webhook")
    time.sleep(0.5)
    (event,) = receiver.received("import.completed")
    assert json.loads(event.body)["data"]["import_id"] == import_id
    assert receiver.received("bulk.completed") == []
    assert len(receiver.received("contact.enriched")) == 27

    export = api.post(
        "/api/v1/exports", json.dumps({"import_id": import_id}), content_type="application/json"
    ).json()
    wait_for(
        lambda: api.get(f"/api/v1/exports/{export['export_id']}").json()["download_ready"],
        timeout=60,
        message="export not written",
    )
    response = api.get(f"/api/v1/exports/{export['export_id']}/download")
    assert response.status_code == 200
    table = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    header, data = table[0], table[1:]
    assert header[:5] == rows[0] and header[5:7] == ["status", "email"]
    contacts = {
        str(c.pk): c for c in Contact.objects.filter(bulk_id=done["bulk_id"]).order_by("position")
    }
    expected = [r for i, r in enumerate(rows[1:]) if i % 10]
    assert len(data) == len(expected) == 27
    for line, source in zip(data, expected, strict=True):
        contact = contacts[line[header.index("enrichment_id")]]
        own = source[:]
        if own[4].startswith("="):
            own[4] = "'" + own[4]
        assert line[:5] == own
        assert line[5] == "VERIFIED"
        assert line[6] == contact.result["email"] == f"{own[0].lower()}.{own[1].lower()}@{own[3]}"
        assert line[header.index("credits_charged")] == "0"


def test_a_worker_killed_mid_import_loses_and_duplicates_no_row(api, worker_factory):
    """SIGKILL while contacts are being created; once its lease lapses, the sweep publishes
    the import again and another worker goes on from the last committed chunk."""
    settings_env = {"IMPORT_CHUNK_SIZE": "20", "IMPORT_LEASE_SECONDS": "2"}
    first = worker_factory(queues="enrichment", env=settings_env)
    response = upload(api, csv_bytes(people(4000, bad_every=7)))
    assert response.status_code == 202
    import_id = response.json()["import_id"]
    wait_for(
        lambda: Import.objects.filter(pk=import_id, imported_rows__gt=0).exists(),
        timeout=60,
        interval=0.01,
        message="no chunk committed",
    )
    first.kill()
    job = Import.objects.get(pk=import_id)
    assert job.stage == Import.ENQUEUEING and 0 < job.imported_rows < job.valid_rows, (
        job.stage,
        job.imported_rows,
    )
    worker_factory(queues="enrichment", env=settings_env)
    time.sleep(2.5)  # the dead worker's lease lapses
    assert jobs_sweep() >= 1
    job = wait_for(
        lambda: Import.objects.filter(pk=import_id, stage__in=("enriching", "done")).first(),
        timeout=120,
        message="import not resumed",
    )
    contacts = Contact.objects.filter(bulk_id=job.bulk_id)
    positions = list(contacts.values_list("position", flat=True))
    valid = [i + 2 for i in range(4000) if i % 7]  # file rows (header = 1) of the valid ones
    assert job.imported_rows == job.valid_rows == len(valid)
    assert sorted(positions) == valid  # every valid row once, none twice
    assert job.run_count == 2
