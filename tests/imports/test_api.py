"""POST /imports, GET /imports/{id}(/errors), exports: the API's answers and refusals, with the
worker's passes run in-process (end to end through a real worker: test_e2e.py)."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.enrichment.models import Contact
from apps.imports.models import Export, Import, ImportRowError
from apps.imports.services import export_create, export_write, import_process
from tests.support.api import make_client

from .support import csv_bytes, people, upload, upload_json

pytestmark = pytest.mark.django_db


def test_a_multipart_upload_answers_202_at_once_and_creates_no_contact_yet(api):
    response = upload(api, csv_bytes(people(3)), name="q3 leads.csv")
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["status"] == "processing" and body["stage"] == "validating"
    assert body["file_name"] == "q3 leads.csv"
    assert body["columns"] == ["First Name", "Last Name", "Company", "Website", "CRM id"]
    assert body["mapping"] == {
        "First Name": "first_name",
        "Last Name": "last_name",
        "Company": "company_name",
        "Website": "domain",
    }
    assert response["Location"] == f"/api/v1/imports/{body['import_id']}"
    assert Contact.objects.count() == 0
    assert api.get(f"/api/v1/imports/{body['import_id']}").json()["status"] == "processing"


def test_the_json_form_with_base64(api):
    response = upload_json(api, csv_bytes(people(2), delimiter=";"), name="x.csv")
    assert response.status_code == 202, response.json()
    job = Import.objects.get(pk=response.json()["import_id"])
    assert (job.delimiter, job.encoding, job.file_name) == (";", "utf-8", "x.csv")


def _processed(api, data: bytes, **fields) -> dict:
    response = upload(api, data, **fields)
    assert response.status_code == 202, response.json()
    import_id = response.json()["import_id"]
    import_process(import_id)
    return api.get(f"/api/v1/imports/{import_id}").json()


def test_a_file_with_30_percent_bad_rows_records_exactly_those(api, settings):
    settings.IMPORT_CHUNK_SIZE = 7
    rows = people(20)
    for i in (1, 4, 7, 10, 13, 16):  # 6 of 20: no last name, or a bad website
        rows[i][1 if i % 2 else 3] = "" if i % 2 else "not a domain!"
    body = _processed(api, csv_bytes(rows))
    assert (body["total_rows"], body["valid_rows"], body["imported_rows"]) == (20, 14, 14)
    assert body["error_count"] == 6 and body["stage"] == "enriching"
    errors = api.get(f"/api/v1/imports/{body['import_id']}/errors?limit=4").json()
    page2 = api.get(
        f"/api/v1/imports/{body['import_id']}/errors?cursor={errors['pagination']['next_cursor']}"
    ).json()
    assert errors["pagination"]["has_more"] and not page2["pagination"]["has_more"]
    found = [(e["row"], e["field"], e["column"]) for e in errors["data"] + page2["data"]]
    assert found == [
        (2, "last_name", "Last Name"),
        (5, "domain", "Website"),
        (8, "last_name", "Last Name"),
        (11, "domain", "Website"),
        (14, "last_name", "Last Name"),
        (17, "domain", "Website"),
    ]
    assert errors["data"][0]["message"] == "This field is required."
    contacts = list(Contact.objects.filter(bulk_id=body["bulk_id"]).order_by("position"))
    assert len(contacts) == 14 and len({c.position for c in contacts}) == 14
    assert contacts[0].position == 3 and contacts[0].first_name == "Ada1"
    assert contacts[0].custom == {"CRM id": "1001"}
    assert contacts[0].bulk.total == 14


def test_latin1_and_bom_files_import_their_accents(api):
    rows = [["prénom", "nom", "société"], ["José", "Müller", "Café Ltd"]]
    for data in (csv_bytes(rows, encoding="latin-1"), b"\xef\xbb\xbf" + csv_bytes(rows)):
        body = _processed(api, data)
        assert body["imported_rows"] == 1, body
        contact = Contact.objects.get(bulk_id=body["bulk_id"])
        assert (contact.first_name, contact.last_name, contact.company_name) == (
            "José",
            "Müller",
            "Café Ltd",
        )


def test_quoted_fields_with_line_breaks_and_an_explicit_mapping(api):
    data = b'Given,Family,Org,Notes\nAda,Lovelace,Engines,"two\nlines"\n'
    body = _processed(
        api,
        data,
        mapping=json.dumps({"Given": "first_name", "Family": "last_name", "Org": "company_name"}),
    )
    contact = Contact.objects.get(bulk_id=body["bulk_id"])
    assert contact.company_name == "Engines" and contact.custom == {"Notes": "two\nlines"}


def test_options_apply_to_every_row(api):
    body = _processed(
        api,
        csv_bytes(
            [
                ["first_name", "last_name", "company", "linkedin"],
                ["a", "b", "Acme", "https://linkedin.com/in/ab"],
            ]
        ),
        enrichment_type=["email", "phone"],  # a repeated field
        phone_country_codes='["fr", "DE"]',
        webhook_url="https://hooks.example.com/sluice",
    )
    contact = Contact.objects.get(bulk_id=body["bulk_id"])
    assert contact.enrichment_type == ["email", "phone"]
    assert contact.phone_country_codes == ["FR", "DE"]
    assert contact.webhook_url == "https://hooks.example.com/sluice"


def test_a_file_whose_rows_are_all_bad_completes_at_once(api):
    body = _processed(api, csv_bytes([["first_name", "last_name"], ["", "x"], ["y", ""]]))
    assert (body["status"], body["error_count"], body["bulk_id"]) == ("completed", 2, None)
    from apps.webhooks.models import Event

    event = Event.objects.get(type="import.completed")
    assert event.payload["data"]["import_id"] == body["import_id"]


@pytest.mark.parametrize(
    ("send", "status", "field"),
    [
        (lambda c: upload(c, b"first_name,last_name\n"), 422, "file"),  # header only
        (lambda c: upload(c, b""), 422, "file"),
        (lambda c: upload(c, b"\x89PNG\r\n\x1a\n\x00\x00"), 422, "file"),  # not CSV
        (lambda c: upload(c, b"a,b\n1,2\n", kind="image/png"), 422, "file"),  # content type
        (lambda c: upload(c, b"name,email\nx,y\n"), 422, "file"),  # no name columns
        (
            lambda c: upload(c, b"first_name,last_name\na,b\n", enrichment_type=""),
            422,
            "enrichment_type",
        ),
        (lambda c: upload(c, b"first_name,last_name\na,b\n", bogus="1"), 422, "bogus"),
        (
            lambda c: upload(c, b"first_name,last_name\na,b\n", mapping='{"x": "first_name"}'),
            422,
            "mapping.x",
        ),
        (lambda c: upload_json(c, b"x", file_data="***"), 422, "file_data"),
        (
            lambda c: c.post("/api/v1/imports", "<csv/>", content_type="application/xml"),
            415,
            None,
        ),
    ],
)
def test_refusals(api, send, status, field):
    response = send(api)
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] and body["request_id"]
    if field:
        assert field in body["details"], body
    assert Import.objects.count() == 0


def test_too_many_rows_is_a_422_before_the_202(api, settings):
    settings.IMPORT_MAX_ROWS = 3
    response = upload(api, csv_bytes(people(4)))
    assert response.status_code == 422
    assert "at most 3 per import" in response.json()["details"]["file"]
    # Quoted line breaks make more lines than rows: still accepted.
    data = b"first_name,last_name,n\n" + b'a,b,"1\n2\n3\n4"\n' * 3
    assert upload(api, data).status_code == 202


def test_too_many_bytes_is_a_413(api, settings):
    settings.IMPORT_MAX_BYTES = 100
    response = upload(api, csv_bytes(people(10)))
    assert response.status_code == 413 and response.json()["code"] == "file_too_large"
    response = upload_json(api, csv_bytes(people(10)))
    assert response.status_code == 413


def _multipart(data: bytes, boundary: str) -> bytes:
    return (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="enrichment_type"\r\n\r\n'
            f"email\r\n--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="big.csv"\r\n'
            "Content-Type: text/csv\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )


def test_a_keyed_upload_over_the_memory_limit_is_replayed_whatever_its_boundary(api, settings):
    """A resent upload (same key, same file) gets the first answer, however large the file and
    whichever boundary the resend's multipart framing uses; another file of another size is
    a 422 ``idempotency_key_reused``."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000
    data = csv_bytes(people(200))
    assert len(data) > 5_000

    def send(body: bytes, boundary: str):
        return api.post(
            "/api/v1/imports",
            body,
            content_type=f"multipart/form-data; boundary={boundary}",
            HTTP_IDEMPOTENCY_KEY="upload-1",
        )

    first = send(_multipart(data, "a" * 32), "a" * 32)
    assert first.status_code == 202, first.json()
    again = send(_multipart(data, "b" * 32), "b" * 32)
    assert again.status_code == 202, again.json()
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["import_id"] == first.json()["import_id"]
    assert Import.objects.count() == 1
    other = send(_multipart(csv_bytes(people(3)), "c" * 32), "c" * 32)
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"


def test_a_refused_keyed_upload_is_not_kept_so_its_resend_runs(api):
    """An upload cut short reaches the view as a form without its file: that 422 is not
    stored, so the client's resend with the same key imports the file."""
    cut = api.post(
        "/api/v1/imports",
        {"enrichment_type": "email"},
        format="multipart",
        HTTP_IDEMPOTENCY_KEY="upload-2",
    )
    assert cut.status_code == 422 and "file" in cut.json()["details"]
    form = {"file": SimpleUploadedFile("a.csv", csv_bytes(people(2))), "enrichment_type": "email"}
    whole = api.post("/api/v1/imports", form, format="multipart", HTTP_IDEMPOTENCY_KEY="upload-2")
    assert whole.status_code == 202, whole.json()
    assert "Idempotent-Replayed" not in whole


def test_a_multipart_body_elsewhere_is_compared_by_its_bytes(api):
    """Only a view that takes uploads compares a multipart body by its length: a JSON body
    sent as multipart to POST /lists is compared as usual, so another body of the same
    length under the same key is refused, not answered with the first one's list."""

    def send(body: str):
        return api.post(
            "/api/v1/lists",
            body,
            content_type="multipart/form-data; boundary=x",
            HTTP_IDEMPOTENCY_KEY="list-1",
        )

    first = send('{"name": "Alpha"}')
    assert first.status_code == 201, first.json()
    other = send('{"name": "Bravo"}')
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"


def test_a_live_key_without_credits_is_402(db):
    client = make_client(mode="live", credits=0)
    assert upload(client, csv_bytes(people(1))).status_code == 402


def test_personal_email_needs_consent(api):
    response = upload(api, csv_bytes(people(1)), enrichment_type="personal_email")
    assert response.status_code == 422 and "consenting" in response.json()["error"]


def test_another_accounts_or_modes_import_and_export_are_404(api):
    body = _processed(api, csv_bytes(people(2)))
    other = make_client()
    live = make_client(mode="live", account=api.account)
    for client in (other, live):
        assert client.get(f"/api/v1/imports/{body['import_id']}").status_code == 404
        assert client.get(f"/api/v1/imports/{body['import_id']}/errors").status_code == 404
        response = client.post(
            "/api/v1/exports",
            json.dumps({"import_id": body["import_id"]}),
            content_type="application/json",
        )
        assert response.status_code == 404
        assert client.get("/api/v1/imports").json()["data"] == []
    export = api.post(
        "/api/v1/exports",
        json.dumps({"import_id": body["import_id"]}),
        content_type="application/json",
    ).json()
    for client in (other, live):
        assert client.get(f"/api/v1/exports/{export['export_id']}").status_code == 404
        assert client.get(f"/api/v1/exports/{export['export_id']}/download").status_code == 404
    assert api.get("/api/v1/imports/not-a-uuid").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "non_field_errors"),
        ({"bulk_id": "x", "filters": {}}, "non_field_errors"),
        ({"filters": {"status": "done"}}, "status"),
        ({"filters": {"color": "red"}}, "filters.color"),
        ({"format": "xlsx", "filters": {}}, "format"),
    ],
)
def test_export_refusals(api, body, field):
    response = api.post("/api/v1/exports", json.dumps(body), content_type="application/json")
    assert response.status_code == 422 and field in response.json()["details"], response.json()


def test_an_export_downloads_only_once_written(api):
    body = _processed(api, csv_bytes(people(3)))
    export = api.post(
        "/api/v1/exports",
        json.dumps({"import_id": body["import_id"]}),
        content_type="application/json",
    ).json()
    assert (export["status"], export["download_ready"]) == ("processing", False)
    response = api.get(f"/api/v1/exports/{export['export_id']}/download")
    assert response.status_code == 409 and response.json()["code"] == "export_not_ready"
    assert export_write(export["export_id"]) == 3
    state = api.get(f"/api/v1/exports/{export['export_id']}").json()
    assert (state["status"], state["row_count"], state["download_ready"]) == ("completed", 3, True)
    response = api.get(f"/api/v1/exports/{export['export_id']}/download")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    lines = text.splitlines()
    assert lines[0] == (
        "First Name,Last Name,Company,Website,CRM id,status,email,email_status,personal_email,"
        "phone,phone_type,job_title,company_domain,confidence,credits_charged,enrichment_id"
    )
    assert lines[1].startswith("Ada0,Lovelace0,Analytical Engines,engine0.io,1000,pending,")
    assert len(lines) == 4


def test_an_expired_export_is_410(api, settings):
    from apps.imports.services import exports_purge

    settings.EXPORT_RETENTION_SECONDS = -1
    export = export_create(account=api.account, api_key=api.key, source="filters", value={})
    export_write(str(export.pk))
    assert exports_purge() == 1
    response = api.get(f"/api/v1/exports/{export.pk}/download")
    assert response.status_code == 410 and Export.objects.get().status == "expired"


@pytest.mark.parametrize("into_list", [False, True])
def test_a_chunk_costs_a_constant_number_of_queries(api, settings, into_list):
    """Pass 2 costs the same queries per chunk whatever the chunk's size, and pass 1 the
    same per batch of errors: 40 rows cost what 20 do plus two more chunks (with a list too:
    its entries, counter and events are a constant number more)."""
    settings.IMPORT_CHUNK_SIZE = 10
    fields = {"list_id": _list(api)} if into_list else {}

    def queries(n: int) -> int:
        response = upload(api, csv_bytes(people(n, bad_every=3)), **fields)
        with CaptureQueriesContext(connection) as ctx:
            import_process(response.json()["import_id"])
        return len(ctx.captured_queries)

    q10, q20, q40 = queries(10), queries(20), queries(40)
    per_chunk = q20 - q10
    assert per_chunk <= (13 if into_list else 6), per_chunk
    # 40 rows with every third bad: 26 valid = 3 chunks; 20: 13 = 2; 10: 6 = 1.
    assert q40 - q20 == per_chunk, (q10, q20, q40)
    assert ImportRowError.objects.count() == 4 + 7 + 14
    if into_list:
        assert Contact.objects.filter(list_entries__isnull=False).count() == 6 + 13 + 26


def test_exports_of_a_bulk_and_of_filters_have_the_contact_columns(api):
    body = _processed(api, csv_bytes(people(3)))
    Contact.objects.filter(bulk_id=body["bulk_id"], first_name="Ada1").update(
        status="finished",
        result_status="VERIFIED",
        result={
            "email": "ada1@engine1.io",
            "phones": [{"number": "+14155550100", "type": "mobile"}],
        },
    )
    by_bulk = export_create(
        account=api.account, api_key=api.key, source="bulk", value=body["bulk_id"]
    )
    by_filter = export_create(
        account=api.account, api_key=api.key, source="filters", value={"result_status": "VERIFIED"}
    )
    assert export_write(str(by_bulk.pk)) == 3 and export_write(str(by_filter.pk)) == 1
    text = b"".join(api.get(f"/api/v1/exports/{by_filter.pk}/download").streaming_content)
    header, row = text.decode("utf-8-sig").splitlines()
    assert header.startswith("first_name,last_name,company_name,domain,linkedin_url,custom,status")
    assert row.startswith(
        'Ada1,Lovelace1,Analytical Engines,engine1.io,,"{""CRM id"": ""1001""}",'
        "VERIFIED,ada1@engine1.io"
    )
    assert ",+14155550100,mobile," in row  # a phone number is not taken for a formula


def test_the_sweep_publishes_again_a_job_whose_lease_lapsed(api, settings):
    from datetime import timedelta

    from django.utils import timezone

    from apps.imports.services import jobs_sweep

    response = upload(api, csv_bytes(people(2)))
    job = Import.objects.get(pk=response.json()["import_id"])
    assert jobs_sweep() == 0  # just published: not lost yet
    Import.objects.filter(pk=job.pk).update(
        lease_owner=job.pk, lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert jobs_sweep() == 1
    assert Import.objects.get(pk=job.pk).published_at is not None
    # Another worker's claim takes the lapsed lease over and finishes the passes.
    assert import_process(str(job.pk)) == 2
    assert Import.objects.get(pk=job.pk).stage == "enriching"


def _list(client, name: str = "Hannover leads") -> str:
    response = client.post(
        "/api/v1/lists", json.dumps({"name": name}), content_type="application/json"
    )
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def test_an_import_adds_every_contact_to_its_list_and_a_list_exports(api, settings):
    settings.IMPORT_CHUNK_SIZE = 2
    list_id = _list(api)
    body = _processed(api, csv_bytes(people(5, bad_every=4)), list_id=list_id)
    assert body["list_id"] == list_id and body["imported_rows"] == 3
    listed = api.get(f"/api/v1/lists/{list_id}/contacts").json()["data"]
    bulk_ids = set(Contact.objects.filter(bulk_id=body["bulk_id"]).values_list("pk", flat=True))
    assert {str(pk) for pk in bulk_ids} == {c["enrichment_id"] for c in listed}
    export = export_create(account=api.account, api_key=api.key, source="list", value=list_id)
    assert export_write(str(export.pk)) == 3


def test_another_accounts_list_is_404_for_an_import_and_an_export(api):
    theirs = _list(make_client())
    response = upload(api, csv_bytes(people(1)), list_id=theirs)
    assert response.status_code == 404 and Import.objects.count() == 0
    response = api.post(
        "/api/v1/exports", json.dumps({"list_id": theirs}), content_type="application/json"
    )
    assert response.status_code == 404


def test_a_list_deleted_during_an_import_leaves_its_rows_imported(api):
    list_id = _list(api)
    response = upload(api, csv_bytes(people(3)), list_id=list_id)
    assert api.delete(f"/api/v1/lists/{list_id}").status_code == 204
    import_process(response.json()["import_id"])
    assert Import.objects.get().imported_rows == 3


def test_an_import_that_fails_half_way_closes_its_bulk_on_the_contacts_it_got(api, settings):
    from apps.enrichment.models import BulkJob

    body = _processed(api, csv_bytes(people(5)))
    BulkJob.objects.filter(pk=body["bulk_id"]).update(total=8)  # 3 rows still to come
    Import.objects.filter(pk=body["import_id"]).update(
        stage="enqueueing", run_count=settings.IMPORT_MAX_RUNS
    )
    assert import_process(body["import_id"]) == 0
    state = api.get(f"/api/v1/imports/{body['import_id']}").json()
    assert state["status"] == "failed" and "after 5 attempts" in state["error_message"]
    assert BulkJob.objects.get(pk=body["bulk_id"]).total == 5
