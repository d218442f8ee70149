"""The client against the real API (live server, real worker, PostgreSQL, Redis)."""

from __future__ import annotations

import csv
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from sluice_client import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    RateLimitError,
    Sluice,
    verify_webhook,
)
from sluice_client.errors import AuthenticationError

from apps.accounts.models import Plan
from apps.enrichment.models import Contact
from apps.enrichment.services import waiting
from apps.imports.models import Import
from tests.support.api import make_client
from tests.support.worker import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

ADA = {"first_name": "Ada", "last_name": "Lovelace", "domain": "engines.io"}


@pytest.fixture(autouse=True, scope="module")
def _stop_the_sync_listener():
    """POST /enrich/sync's LISTEN connection (one per web process, here the test's) would
    keep the test database from being dropped at the end."""
    yield
    waiting.listener.stop()


def unkept() -> requests.Session:
    """A session that does not keep connections alive: Django's live server holds a
    kept-alive connection's thread, with its database connection, past the test (and the
    test database could then not be dropped)."""
    session = requests.Session()
    session.headers["Connection"] = "close"
    return session


@pytest.fixture
def client(live_server, account_key):
    with Sluice(account_key[1], base_url=live_server.url, session=unkept()) as sluice:
        yield sluice


def test_enrich_wait_and_read_back(client, worker):
    accepted = client.enrich(**ADA, custom={"crm": "42"})
    assert accepted["status"] == "pending"
    contact = client.wait(accepted["enrichment_id"], timeout=30, interval=0.2)
    assert contact["result"]["email"] == "ada.lovelace@engines.io"
    assert contact["custom"] == {"crm": "42"}
    assert client.get_contact(accepted["enrichment_id"]) == contact
    assert client.last_headers["X-Request-ID"].startswith("req_")
    sync = client.enrich_sync(first_name="Grace", last_name="Hopper", domain="navy.mil", timeout=20)
    assert sync["status"] == "finished" and sync["result"]["status"] == "VERIFIED"


def test_bulk_wait_bulk_and_paging_through_every_contact(client, worker):
    contacts = [{"first_name": f"P{i}", "last_name": "Ng", "domain": f"d{i}.io"} for i in range(7)]
    accepted = client.enrich_bulk(contacts, enrichment_type=["email"])
    seen: list[int] = []
    bulk = client.wait_bulk(
        accepted["bulk_id"],
        timeout=60,
        interval=0.2,
        on_progress=lambda b: seen.append(b["finished"]),
    )
    assert bulk["status"] == "completed" and bulk["verified"] == 7 and seen[-1] == 7
    # Pages of 3: the iterator follows the cursor to the end, each contact once.
    listed = list(client.iter_contacts(bulk_id=accepted["bulk_id"], page_size=3))
    assert sorted(c["enrichment_id"] for c in listed) == sorted(
        c["enrichment_id"] for c in accepted["contacts"]
    )
    page = client.list_contacts(bulk_id=accepted["bulk_id"], limit=3)
    assert len(page["data"]) == 3 and page["pagination"]["has_more"] is True


def test_errors_carry_the_envelope(client, live_server):
    with pytest.raises(NotFoundError) as missing:
        client.get_contact("00000000-0000-4000-8000-000000000000")
    assert missing.value.status == 404 and missing.value.code == "not_found"
    assert missing.value.request_id.startswith("req_")
    with pytest.raises(InvalidRequestError) as invalid:
        client.enrich(first_name="Ada", last_name="Lovelace", linkedin_url="https://x.io/ada")
    assert invalid.value.status == 422 and "linkedin_url" in invalid.value.details
    with (
        pytest.raises(AuthenticationError),
        Sluice("sk_test_nope", base_url=live_server.url, session=unkept()) as bad,
    ):
        bad.credits()
    assert client.credits()["plan"] == "pro"


def test_webhooks_crud_test_delivery_and_events(client, worker, receiver):
    endpoint = client.create_webhook(receiver.url(), events=["contact.enriched"])
    assert client.get_webhook(endpoint["id"])["url"] == receiver.url()
    assert [e["id"] for e in client.iter_webhooks()] == [endpoint["id"]]
    assert client.update_webhook(endpoint["id"], description="crm")["description"] == "crm"
    client.test_webhook(endpoint["id"])
    wait_for(lambda: receiver.received(), timeout=30, message="no test delivery")
    delivered = receiver.received()[0]
    event = verify_webhook(delivered.body, delivered.headers, endpoint["secret"])
    assert event["type"] == "contact.enriched" and event["_test"] is True
    deliveries = list(client.iter_deliveries(endpoint["id"]))
    assert client.get_delivery(endpoint["id"], deliveries[0]["id"])["status"] in (
        "succeeded",
        "pending",
    )
    accepted = client.enrich(**ADA)
    client.wait(accepted["enrichment_id"], timeout=30, interval=0.2)
    events = list(client.iter_events(type="contact.enriched"))
    assert [e["data"]["enrichment_id"] for e in events] == [accepted["enrichment_id"]]
    client.delete_webhook(endpoint["id"])
    with pytest.raises(NotFoundError):
        client.get_webhook(endpoint["id"])


def test_lists(client, worker):
    q2 = client.create_list("Q2 targets", color="indigo")
    assert client.get_list(q2["id"])["color"] == "indigo"
    assert [x["id"] for x in client.iter_lists()] == [q2["id"]]
    accepted = client.enrich_bulk(
        [{"first_name": f"L{i}", "last_name": "Ng", "domain": f"l{i}.io"} for i in range(3)],
        enrichment_type=["email"],
        list_id=q2["id"],
    )
    one = client.enrich(**ADA)
    entry = client.add_to_list(q2["id"], one["enrichment_id"])
    assert entry["list_id"] == q2["id"]
    with pytest.raises(ConflictError) as again:
        client.add_to_list(q2["id"], one["enrichment_id"])
    assert again.value.code == "already_in_list"
    members = {c["enrichment_id"] for c in client.iter_list_contacts(q2["id"], page_size=2)}
    assert members == {c["enrichment_id"] for c in accepted["contacts"]} | {one["enrichment_id"]}
    client.remove_from_list(q2["id"], one["enrichment_id"])
    assert client.update_list(q2["id"], is_pinned=True)["contact_count"] == 3
    assert len(client.list_list_contacts(q2["id"], limit=2)["data"]) == 2
    client.delete_list(q2["id"])
    with pytest.raises(NotFoundError):
        client.get_list(q2["id"])


def _people_csv(count: int, *, bad: int) -> bytes:
    """A spreadsheet's CSV: its own header spellings, a CRM column; row ``bad`` has no last
    name."""
    lines = ["First Name,Last Name,Website,CRM id"]
    for i in range(count):
        lines.append(f"Ann{i},{'' if i == bad else 'Lee'},co{i}.io,crm-{i}")
    return ("\r\n".join(lines) + "\r\n").encode()


def test_imports_and_exports(client, worker, tmp_path):
    (tmp_path / "people.csv").write_bytes(_people_csv(12, bad=4))
    imported = client.create_list("Imported")
    job = client.create_import(
        tmp_path / "people.csv", enrichment_type=["email"], list_id=imported["id"], name="Q3"
    )
    assert (job["status"], job["file_name"], job["name"]) == ("processing", "people.csv", "Q3")
    seen: list[str] = []
    done = client.wait_import(
        job["import_id"], timeout=120, interval=0.3, on_progress=lambda j: seen.append(j["stage"])
    )
    assert done["status"] == "completed", done
    assert (done["total_rows"], done["imported_rows"], done["error_count"]) == (12, 11, 1)
    assert (done["finished"], done["verified"]) == (11, 11)
    assert seen[-1] == "done"
    (skipped,) = client.iter_import_errors(job["import_id"], page_size=1)
    assert (skipped["row"], skipped["field"], skipped["column"]) == (6, "last_name", "Last Name")
    assert [i["import_id"] for i in client.iter_imports()] == [job["import_id"]]
    assert client.get_list(imported["id"])["contact_count"] == 11

    export = client.create_export(import_id=job["import_id"])
    ready = client.wait_export(export["export_id"], timeout=60, interval=0.3)
    assert ready["download_ready"] and ready["row_count"] == 11, ready
    client.download_export(export["export_id"], to=tmp_path / "out.csv")
    assert client.download_export(export["export_id"]) == (tmp_path / "out.csv").read_bytes()
    with (tmp_path / "out.csv").open(newline="", encoding="utf-8-sig") as f:
        header, *written = list(csv.reader(f))
    assert header[:4] == ["First Name", "Last Name", "Website", "CRM id"]
    assert header[4:7] == ["status", "email", "email_status"]
    kept = [i for i in range(12) if i != 4]
    assert [row[3] for row in written] == [f"crm-{i}" for i in kept]  # the file's order
    assert [row[5] for row in written] == [f"ann{i}.lee@co{i}.io" for i in kept]
    assert [e["export_id"] for e in client.iter_exports()] == [export["export_id"]]


def test_a_lost_upload_answer_is_resent_and_imports_once(live_server, account_key):
    """The resend is framed with a new multipart boundary; the server still takes it as the
    same request and answers with the first upload's import."""
    proxy = _DropFirstAnswers(live_server.url, drop=1)
    waits: list[float] = []
    client = Sluice(account_key[1], base_url=proxy.url, sleep=waits.append, session=unkept())
    try:
        job = client.create_import(_people_csv(5, bad=-1), file_name="five.csv")
    finally:
        client.close()
        proxy.stop()
    assert len(proxy.forwarded) == 2 and len(waits) == 1
    first, resent = proxy.forwarded
    assert first["Idempotency-Key"] == resent["Idempotency-Key"]
    assert first["Content-Type"] != resent["Content-Type"]  # another boundary
    assert client.last_headers.get("Idempotent-Replayed") == "true"
    assert [str(pk) for pk in Import.objects.values_list("pk", flat=True)] == [job["import_id"]]


class _DropFirstAnswers:
    """An HTTP proxy in front of the live server that forwards each request but, for the
    first ``drop`` requests, hangs up instead of answering: the request ran, the client
    never heard (a lost connection)."""

    def __init__(self, upstream: str, drop: int) -> None:
        self.upstream = upstream
        self.drop = drop
        self.forwarded: list[dict[str, str]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                proxy.forwarded.append(headers)
                answer = requests.post(proxy.upstream + self.path, data=body, headers=headers)
                if len(proxy.forwarded) <= proxy.drop:
                    self.close_connection = True
                    self.connection.shutdown(2)  # no answer at all
                    return
                self.send_response(answer.status_code)
                for key in ("Content-Type", "Idempotent-Replayed", "X-Request-ID"):
                    if key in answer.headers:
                        self.send_header(key, answer.headers[key])
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_lost_answer_is_retried_with_the_same_key_and_enqueues_once(live_server, account_key):
    proxy = _DropFirstAnswers(live_server.url, drop=2)
    waits: list[float] = []
    client = Sluice(account_key[1], base_url=proxy.url, sleep=waits.append, session=unkept())
    try:
        accepted = client.enrich(**ADA)
    finally:
        client.close()
        proxy.stop()
    assert len(proxy.forwarded) == 3 and len(waits) == 2
    assert len({h["Idempotency-Key"] for h in proxy.forwarded}) == 1
    assert client.last_headers.get("Idempotent-Replayed") == "true"
    assert [str(pk) for pk in Contact.objects.values_list("pk", flat=True)] == [
        accepted["enrichment_id"]
    ]


def test_429_is_retried_after_retry_after_then_raised(live_server, caplog):
    tiny, _ = Plan.objects.get_or_create(
        code="tiny", defaults={"name": "Tiny", "api_access": True, "per_minute": 1, "bulk_max": 5}
    )
    api = make_client(plan_code="pro")
    api.account.plan = tiny
    api.account.save(update_fields=["plan"])
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        # Recorded, not slept; but a moment passes, as it would: Django's live server
        # closes each connection after its answer without saying so in the headers, and a
        # request sent at once could go out on that socket before it is seen closed.
        waits.append(seconds)
        time.sleep(0.05)

    client = Sluice(
        api.key.raw_key,
        base_url=live_server.url,
        max_retries=2,
        sleep=sleep,
        session=unkept(),
    )
    caplog.set_level(logging.INFO, logger="sluice_client")
    # Three calls: a minute boundary can fall between two of them, not twice in a row.
    with client, pytest.raises(RateLimitError) as limited:
        for _ in range(3):
            client.credits()
    assert limited.value.code == "rate_limited"
    retry_after = limited.value.retry_after
    assert retry_after is not None and 0 < retry_after <= 60
    # Each retry of a 429 waited its answer's Retry-After: the header's value, not a guess.
    # (A retry may also follow a connection the live server dropped: that one backs off.)
    retries = [r for r in caplog.records if r.name == "sluice_client"]
    assert [r.sluice_wait for r in retries] == waits
    limited_retries = [r for r in retries if r.sluice_status == 429]
    assert limited_retries, waits
    for record in limited_retries:
        assert record.sluice_wait == float(record.sluice_retry_after) > 0
    assert waits and all(0 < w <= 60 for w in waits)


def test_enrich_csv_rechunks_to_a_smaller_plan_bulk_max(live_server, worker, tmp_path):
    from sluice_client import enrich_csv

    api = make_client(plan_code="growth")  # bulks of 50
    rows = ["first_name,last_name,domain", *(f"Bo{i},Kim,k{i}.io" for i in range(120))]
    (tmp_path / "in.csv").write_text("\n".join(rows) + "\n")
    with Sluice(api.key.raw_key, base_url=live_server.url, session=unkept()) as client:
        summary = enrich_csv.run(
            client,
            input_path=tmp_path / "in.csv",
            output_path=tmp_path / "out.csv",
            enrichment_type=["email"],
            via="bulks",
            sleep=lambda s: time.sleep(min(s, 0.5)),
        )
    assert (
        summary["via"] == "bulks" and len(summary["bulk_ids"]) == 3 and summary["verified"] == 120
    )
    assert Contact.objects.count() == 120
    out = (tmp_path / "out.csv").read_text().splitlines()
    assert out[1].startswith("Bo0,Kim,k0.io,") and "bo0.kim@k0.io" in out[1]
    assert "bo119.kim@k119.io" in out[120]


class _WithoutImports(requests.Session):
    """A server from before imports, for the client: ``/imports`` goes to a route this
    server does not have, so the 404 is the real server's own."""

    def __init__(self) -> None:
        super().__init__()
        self.headers["Connection"] = "close"
        self.refused = 0

    def request(self, method, url, *args, **kwargs):
        if url.endswith("/api/v1/imports"):
            self.refused += 1
            url = url.replace("/api/v1/imports", "/api/v1/no-such-route")
        return super().request(method, url, *args, **kwargs)


def test_enrich_csv_falls_back_to_bulks_where_the_server_has_no_imports(
    live_server, worker, tmp_path
):
    from sluice_client import enrich_csv

    api = make_client(plan_code="pro")
    rows = ["first_name,last_name,domain", *(f"Cy{i},Po,p{i}.io" for i in range(3))]
    (tmp_path / "in.csv").write_text("\n".join(rows) + "\n")
    session = _WithoutImports()
    with Sluice(api.key.raw_key, base_url=live_server.url, session=session) as client:
        summary = enrich_csv.run(
            client,
            input_path=tmp_path / "in.csv",
            output_path=tmp_path / "out.csv",
            enrichment_type=["email"],
            sleep=lambda s: time.sleep(min(s, 0.5)),
        )
    assert session.refused == 1  # asked once, before uploading anything
    assert summary["via"] == "bulks" and summary["import_id"] is None
    assert summary["verified"] == 3 and not Import.objects.exists()
    assert not (tmp_path / "out.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    with (tmp_path / "out.csv").open(newline="", encoding="utf-8") as f:
        written = list(csv.DictReader(f))
    assert [(r["first_name"], r["status"], r["email"]) for r in written] == [
        (f"Cy{i}", "VERIFIED", f"cy{i}.po@p{i}.io") for i in range(3)
    ]
