"""The `sluice` command as a user runs it (a subprocess) against the real API: a live server
on the test PostgreSQL, real Celery workers, a real local receiver."""

from __future__ import annotations

import csv
import json
import queue
import signal
import subprocess
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from apps.enrichment.models import Contact, List
from apps.imports.models import Import
from apps.webhooks.models import Endpoint
from tests.support.simulator import free_port
from tests.support.sluice_cli import SLUICE
from tests.support.worker import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def write_csv(path: Path, count: int) -> list[dict[str, str]]:
    """``count`` people; every 10th is one the sandbox does not find."""
    rows = [
        {
            "first_name": f"Ann{i}",
            "last_name": "Notfound" if i % 10 == 9 else "Lee",
            "domain": f"co{i}.io",
            "crm_id": f"crm-{i}",
        }
        for i in range(count)
    ]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


def check_output(path: Path, rows: list[dict[str, str]]) -> None:
    assert not path.read_bytes().startswith(b"\xef\xbb\xbf")  # plain UTF-8, for scripts
    with path.open(newline="", encoding="utf-8") as f:
        written = list(csv.DictReader(f))
    assert len(written) == len(rows)
    for i, (row, out) in enumerate(zip(rows, written, strict=True)):
        assert {k: out[k] for k in row} == row, i  # the input's columns, unchanged, in order
        if row["last_name"] == "Notfound":
            assert (out["status"], out["email"]) == ("NOT_FOUND", ""), i
        else:
            assert out["status"] == "VERIFIED", i
            assert out["email"] == f"ann{i}.lee@co{i}.io", i
            assert out["email_status"] == "valid", i
        assert out["enrichment_id"], i
    ids = [out["enrichment_id"] for out in written]
    assert len(set(ids)) == len(ids)


def test_a_500_row_csv_is_enriched_end_to_end(run_sluice, worker, tmp_path):
    rows = write_csv(tmp_path / "contacts.csv", 500)
    done = run_sluice(
        *("enrich", str(tmp_path / "contacts.csv"), "-o", str(tmp_path / "out.csv")),
        *("--list", "Q2 leads", "--json"),
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    q2 = List.objects.get(name="Q2 leads")
    assert summary["list_id"] == str(q2.pk) and q2.contact_count == 500
    assert summary["rows"] == summary["finished"] == 500
    assert summary["verified"] == 450 and summary["found_rate"] == 0.9
    assert summary["credits_used"] == 0  # sandbox
    assert summary["via"] == "imports" and summary["skipped"] == 0
    (job,) = Import.objects.all()  # the file, uploaded once
    assert summary["import_id"] == str(job.pk) and summary["bulk_ids"] == [str(job.bulk_id)]
    check_output(tmp_path / "out.csv", rows)
    assert Contact.objects.count() == 500
    assert not (tmp_path / "out.csv.sluice.json").exists()


def _interrupted(args: list[str], env: dict[str, str], state: Path, started) -> None:
    """Run ``args`` until ``started(job state)``, then Ctrl-C it."""
    first = subprocess.Popen(args, env=env, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(
            lambda: state.exists() and started(json.loads(state.read_text())),
            timeout=60,
            message="the run did not get there",
        )
        first.send_signal(signal.SIGINT)
        assert first.wait(timeout=30) == 130
    finally:
        first.kill()
    assert "run the same command again to resume" in first.stderr.read()


def test_an_interrupted_import_resumes_without_importing_anything_twice(
    sluice_env, run_sluice, worker_factory, tmp_path
):
    rows = write_csv(tmp_path / "contacts.csv", 250)
    state = tmp_path / "out.csv.sluice.json"
    args = [str(SLUICE), "enrich", str(tmp_path / "contacts.csv"), "-o", str(tmp_path / "out.csv")]
    args += ["--list", "Resumed"]
    # No worker yet: the run uploads the file, then waits for it; Ctrl-C it there.
    _interrupted(args, sluice_env, state, lambda job: job["import_id"])
    assert Import.objects.count() == 1 and Contact.objects.count() == 0
    # As if the run had been killed right after the upload, before recording its answer:
    # the key is known, the import id is not.
    job = json.loads(state.read_text())
    job["import_id"] = None
    state.write_text(json.dumps(job))

    worker_factory()
    done = run_sluice(*args[1:])
    assert done.returncode == 0, done.stderr
    assert "resuming" in done.stderr
    assert Import.objects.count() == 1  # the upload replayed, not imported again
    assert Contact.objects.count() == 250
    (resumed,) = List.objects.all()  # one list, made once
    assert resumed.contact_count == 250
    check_output(tmp_path / "out.csv", rows)
    assert not state.exists()


def test_an_interrupted_bulks_run_resumes_without_enqueueing_anything_twice(
    sluice_env, run_sluice, worker_factory, tmp_path
):
    rows = write_csv(tmp_path / "contacts.csv", 250)
    state = tmp_path / "out.csv.sluice.json"
    args = [str(SLUICE), "enrich", str(tmp_path / "contacts.csv"), "-o", str(tmp_path / "out.csv")]
    args += ["--list", "Resumed", "--via", "bulks"]
    # No worker yet: the run sends its three bulks, then waits; Ctrl-C it there.
    _interrupted(
        args,
        sluice_env,
        state,
        lambda job: len(job["chunks"]) == 3 and all(c["bulk_id"] for c in job["chunks"]),
    )
    assert Contact.objects.count() == 250
    # As if the run had been killed right after sending the second bulk, before recording
    # its answer: the key is known, the bulk id is not.
    job = json.loads(state.read_text())
    job["chunks"][1]["bulk_id"] = None
    state.write_text(json.dumps(job))

    worker_factory()
    done = run_sluice(*args[1:])
    assert done.returncode == 0, done.stderr
    assert "resuming" in done.stderr
    assert Contact.objects.count() == 250  # the second bulk replayed, not sent again
    (resumed,) = List.objects.all()  # one list, made once
    assert resumed.contact_count == 250
    check_output(tmp_path / "out.csv", rows)
    assert not Import.objects.exists()


def _lines(stream) -> queue.Queue:
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in stream], daemon=True).start()
    return lines


def test_listen_forwards_a_signed_delivery_and_removes_its_endpoint(
    sluice_env, run_sluice, worker, receiver, account_key
):
    listen = subprocess.Popen(
        [
            str(SLUICE),
            "listen",
            "--forward-to",
            receiver.url("/hooks"),
            "--events",
            "contact.enriched",
            "--json",
        ],
        env=sluice_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out = _lines(listen.stdout)
        ready = json.loads(out.get(timeout=30))
        assert ready["ready"] is True and ready["events"] == ["contact.enriched"]
        assert Endpoint.objects.filter(pk=ready["endpoint_id"]).exists()

        enriched = run_sluice("contacts", "get", "x")  # a 404 is an error line, exit 1
        assert enriched.returncode == 1 and "404 not_found" in enriched.stderr
        api = account_key[0]
        accepted = api.post(
            "/api/v1/enrich",
            {
                "first_name": "Ada",
                "last_name": "Lovelace",
                "domain": "engines.io",
                "enrichment_type": ["email"],
            },
            format="json",
        ).json()
        wait_for(lambda: receiver.received(path="/hooks"), timeout=30, message="not forwarded")
        forwarded = receiver.received(path="/hooks")[0]
        # The very bytes and signature headers Sluice sent: the local app can verify them.
        event = Webhook(ready["secret"]).verify(forwarded.body, forwarded.headers)
        assert event["data"]["enrichment_id"] == accepted["enrichment_id"]
        report = json.loads(out.get(timeout=30))
        assert report["type"] == "contact.enriched" and report["id"] == event["id"]
        assert report["status"] == 200 and report["verified"] is True

        listen.send_signal(signal.SIGINT)
        assert listen.wait(timeout=30) == 0
    finally:
        listen.kill()
    assert not Endpoint.objects.exists()


def test_contacts_get_credits_and_events_tail(run_sluice, worker, account_key):
    api = account_key[0]
    accepted = api.post(
        "/api/v1/enrich",
        {
            "first_name": "Ada",
            "last_name": "Lovelace",
            "domain": "engines.io",
            "enrichment_type": ["email"],
        },
        format="json",
    ).json()
    wait_for(
        lambda: Contact.objects.filter(pk=accepted["enrichment_id"], status="finished").exists(),
        timeout=30,
        message="not finished",
    )
    contact = run_sluice("contacts", "get", accepted["enrichment_id"], "--json")
    assert json.loads(contact.stdout)["result"]["email"] == "ada.lovelace@engines.io"
    pretty = run_sluice("contacts", "get", accepted["enrichment_id"])
    assert "ada.lovelace@engines.io (valid)" in pretty.stdout and "VERIFIED" in pretty.stdout

    credits = run_sluice("credits", "--json")
    assert json.loads(credits.stdout)["plan"] == "pro"
    assert "credits · plan pro" in run_sluice("credits").stdout

    tail = run_sluice(
        "events",
        "tail",
        "--type",
        "contact.verified",
        "--since",
        "2020-01-01T00:00:00Z",
        "--count",
        "1",
        "--json",
        timeout=60,
    )
    assert tail.returncode == 0, tail.stderr
    event = json.loads(tail.stdout)
    assert event["type"] == "contact.verified"
    assert event["data"]["enrichment_id"] == accepted["enrichment_id"]

    # Tailing from now on: the next two events, each once, then exit.
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    tail_args = ["--type", "contact.enriched", "--since", now, "--count", "2", "--interval", "0.3"]
    follow = subprocess.Popen(
        [str(SLUICE), "events", "tail", *tail_args, "--json"],
        env=run_sluice.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        later = [
            api.post(
                "/api/v1/enrich",
                {
                    "first_name": name,
                    "last_name": "Lovelace",
                    "domain": "engines.io",
                    "enrichment_type": ["email"],
                },
                format="json",
            ).json()["enrichment_id"]
            for name in ("Ada2", "Ada3")
        ]
        stdout, _ = follow.communicate(timeout=60)
    finally:
        follow.kill()
    tailed = [json.loads(line)["data"]["enrichment_id"] for line in stdout.splitlines()]
    assert sorted(tailed) == sorted(later)


def test_listen_on_an_existing_endpoint_keeps_it(sluice_env, worker, receiver, account_key):
    api = account_key[0]
    port = free_port()
    endpoint = api.post(
        "/api/v1/webhooks", {"url": f"http://127.0.0.1:{port}/"}, format="json"
    ).json()
    listen = subprocess.Popen(
        [
            *(str(SLUICE), "listen", "--forward-to", receiver.url("/mine")),
            *("--port", str(port), "--endpoint", endpoint["id"], "--json"),
        ],
        env=sluice_env | {"SLUICE_WEBHOOK_SECRET": endpoint["secret"]},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        out = _lines(listen.stdout)
        assert json.loads(out.get(timeout=30))["endpoint_id"] == endpoint["id"]
        test = api.post(f"/api/v1/webhooks/{endpoint['id']}/test", {}, format="json")
        assert test.status_code == 202
        report = json.loads(out.get(timeout=30))
        assert report["verified"] is True and report["status"] == 200
        assert receiver.received(path="/mine")
        listen.send_signal(signal.SIGINT)
        assert listen.wait(timeout=30) == 0
    finally:
        listen.kill()
    assert Endpoint.objects.filter(pk=endpoint["id"]).exists()
