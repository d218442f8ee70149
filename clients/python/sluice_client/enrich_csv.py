"""``sluice enrich``: a CSV through the imports API (or the bulk API where the server has no
imports), resumable, into an enriched CSV.

**Imports** (the default): the file is uploaded as it is (``POST /imports``); the server maps
its header, skips invalid rows (listed in the summary) and enriches the rest; then the run
asks for the import's export and downloads it as the output: the file's own columns in their
order, then the result's (``status``, ``email``, … ``enrichment_id``), one row per imported
row, in the file's order. **Bulks** (``--via bulks``, or when ``GET /imports`` is a 404): the
rows go in chunks of the plan's bulk max, the input needs ``first_name`` and ``last_name``
columns, and the output (every row, the same result columns) is written from the contacts.

The job's state lives in ``<output>.sluice.json`` beside the output: the input's digest, and
the ``Idempotency-Key`` of each request that creates something (the list, the import, the
export, each bulk chunk) with the id it got. A key is written *before* its request goes out,
so a run cut off at any point (Ctrl-C, a lost connection, a killed process) resends that
request with the same key on the next run: the server replays its first answer instead of
importing or enqueueing the rows again (``Idempotency-Key``s are kept 24 h,
``IDEMPOTENCY_KEY_TTL_SECONDS``). What has an id is never sent again. The state file is
removed when the output is written.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import os
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from .client import Sluice
from .errors import InvalidRequestError, NotFoundError
from .types import Import

# Input columns that are contact fields; every column (these and any other) is copied to the
# output unchanged, followed by the result's.
CONTACT_COLUMNS = ("first_name", "last_name", "company_name", "domain", "linkedin_url")
# What the output adds after the input's own columns: the export's (``GET
# /exports/{id}/download``), prefixed ``sluice_`` when the input has a column of that name.
RESULT_COLUMNS = (
    "status",
    "email",
    "email_status",
    "personal_email",
    "phone",
    "phone_type",
    "job_title",
    "company_domain",
    "confidence",
    "credits_charged",
    "enrichment_id",
)
DEFAULT_CHUNK = 100
_AT_MOST = re.compile(r"At most (\d+) contacts")
# Reads of GET /bulk/{id} per second at most while waiting (a growth plan allows 100 requests
# a minute for the whole account).
_POLLS_PER_SECOND = 1.25
# How many skipped rows the summary lists (all of them: GET /imports/{id}/errors).
ERRORS_SHOWN = 20
# A cell a spreadsheet would run as a formula (OWASP "CSV injection") gets a leading quote,
# as in the server's exports; a phone number such as +33 1 23 45 67 89 is left alone.
_NUMBERISH = re.compile(r"^[+-][\d\s().-]*$")


@dataclass
class Progress:
    total: int
    finished: int = 0
    verified: int = 0
    credits_used: int = 0
    submitted: int = 0

    @property
    def found_rate(self) -> float:
        return self.verified / self.finished if self.finished else 0.0


@dataclass
class Job:
    """The state file's content."""

    input_sha256: str
    enrichment_type: list[str]
    chunk_size: int
    chunks: list[dict[str, Any]] = field(default_factory=list)
    list_name: str | None = None
    list_id: str | None = None
    list_key: str | None = None  # the Idempotency-Key of the list's creation, if it was made
    mode: str | None = None  # "imports" or "bulks", once chosen
    import_key: str | None = None
    import_id: str | None = None
    export_key: str | None = None
    export_id: str | None = None

    @classmethod
    def load(cls, path: Path) -> Job | None:
        if not path.exists():
            return None
        return cls(**json.loads(path.read_text()))

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.__dict__, indent=1))
        os.replace(tmp, path)  # never a half-written state file


def state_path(output: Path) -> Path:
    return output.with_name(output.name + ".sluice.json")


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        columns = list(reader.fieldnames or [])
    missing = {"first_name", "last_name"} - set(columns)
    if missing:
        raise SystemExit(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    return columns, rows


def contact_of(row: dict[str, str], index: int) -> dict[str, Any]:
    contact: dict[str, Any] = {k: row[k].strip() for k in CONTACT_COLUMNS if row.get(k, "").strip()}
    # The row number comes back in ``custom``: how results find their row, whatever the order.
    contact["custom"] = {"row": index}
    return contact


def run(
    client: Sluice,
    *,
    input_path: Path,
    output_path: Path,
    enrichment_type: Sequence[str],
    list_name: str | None = None,
    via: str = "auto",
    on_progress: Callable[[Progress], None] = lambda p: None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Enrich ``input_path`` into ``output_path``; resumes the job of an earlier run.
    ``via``: ``"imports"``, ``"bulks"``, or ``"auto"`` (imports, else bulks). ``list_name``:
    every contact goes into the list of that name (created if there is none; the first one if
    there are several)."""
    if via not in ("auto", "imports", "bulks"):
        raise ValueError(f"via: auto, imports or bulks, not {via!r}")
    digest = hashlib.sha256(input_path.read_bytes()).hexdigest()
    state = state_path(output_path)
    job = Job.load(state)
    if job is not None and (
        job.input_sha256 != digest
        or job.enrichment_type != list(enrichment_type)
        or job.list_name != list_name
    ):
        raise SystemExit(
            f"{state} belongs to another input, --type or --list; remove it to start over "
            "(rows it already sent are enriched and charged already)."
        )
    if job is None:
        job = Job(
            input_sha256=digest,
            enrichment_type=list(enrichment_type),
            chunk_size=DEFAULT_CHUNK,
            list_name=list_name,
        )
        job.save(state)
    if job.mode is None and job.chunks:  # a state file from before imports: bulks
        job.mode = "bulks"
    if job.mode is not None and via not in ("auto", job.mode):
        # An upload or a chunk may have reached the server already: the other way would
        # enrich (and charge) the rows a second time.
        raise SystemExit(
            f"{state} is a job sent as {job.mode}; run it again with --via {job.mode} "
            "(or auto), or remove it to start over."
        )
    if job.list_name and not job.list_id:
        if job.list_key is None:
            job.list_key = str(uuid.uuid4())
            job.save(state)  # before creating: a resumed run never makes a second list
        job.list_id = _list_named(client, job.list_name, idempotency_key=job.list_key)
        job.save(state)
    if job.mode is None:
        imports = via == "imports" or (via == "auto" and _has_imports(client))
        job.mode = "imports" if imports else "bulks"
        job.save(state)  # before anything is sent: a rerun goes the same way
    if job.mode == "imports":
        return _run_import(client, job, state, input_path, output_path, on_progress, sleep)
    return _run_bulks(client, job, state, input_path, output_path, on_progress, sleep)


def _has_imports(client: Sluice) -> bool:
    """Whether the server has the imports API: a server from before it has no such route
    (asked with a read, before uploading anything)."""
    try:
        client.list_imports(limit=1)
    except NotFoundError as exc:
        if exc.code != "not_found":
            raise
        return False
    return True


def _run_import(
    client: Sluice,
    job: Job,
    state: Path,
    input_path: Path,
    output_path: Path,
    on_progress: Callable[[Progress], None],
    sleep: Callable[[float], None],
) -> dict[str, Any]:
    if job.import_id is None:
        if job.import_key is None:
            job.import_key = str(uuid.uuid4())
            job.save(state)  # before sending: a resend is answered with the same import
        created = client.create_import(
            input_path,
            enrichment_type=job.enrichment_type,
            list_id=job.list_id,
            name=input_path.name,
            idempotency_key=job.import_key,
        )
        job.import_id = created["import_id"]
        job.save(state)
    progress = Progress(total=0)

    def seen(imported: Import) -> None:
        # The rows it will enrich, once the first pass has counted them.
        progress.total = imported["valid_rows"] if imported["stage"] != "validating" else 0
        progress.submitted = imported["imported_rows"]
        progress.finished = imported["finished"]
        progress.verified = imported["verified"]
        progress.credits_used = imported["credits_used"]
        on_progress(progress)

    while True:
        done = client.get_import(job.import_id)
        seen(done)
        if done["status"] in ("completed", "failed"):
            break
        sleep(1 / _POLLS_PER_SECOND)
    if done["status"] == "failed":
        raise SystemExit(
            f"import {job.import_id} failed: {done['error_message']}\n"
            f"remove {state} to start over (rows it imported are enriched and charged already)."
        )
    errors = list(itertools.islice(client.iter_import_errors(job.import_id), ERRORS_SHOWN))
    for _ in range(2):
        if job.export_id is None:
            if job.export_key is None:
                job.export_key = str(uuid.uuid4())
                job.save(state)
            job.export_id = client.create_export(
                import_id=job.import_id, idempotency_key=job.export_key
            )["export_id"]
            job.save(state)
        export = client.wait_export(job.export_id, timeout=float("inf"))
        if export["download_ready"]:
            break
        # Expired (a rerun after EXPORT_RETENTION_SECONDS) or failed: a new export of the
        # same import; nothing is imported or charged again.
        job.export_id = job.export_key = None
        job.save(state)
    else:
        raise SystemExit(
            f"the export of import {job.import_id} {export['status']}: "
            f"{export['error_message'] or ''} (run the same command again to retry)"
        )
    tmp = output_path.with_name(output_path.name + ".tmp")
    with tmp.open("wb") as out:
        plain = _WithoutBom(out)
        client.download_export(job.export_id, to=plain)
        plain.close()
    os.replace(tmp, output_path)
    state.unlink()
    return {
        "input": str(input_path),
        "output": str(output_path),
        "via": "imports",
        "rows": done["total_rows"],
        "imported": done["imported_rows"],
        "skipped": done["error_count"],
        "errors": [
            {"row": e["row"], "column": e["column"], "message": e["message"]} for e in errors
        ],
        "finished": done["finished"],
        "verified": done["verified"],
        "found_rate": round(done["verified"] / done["finished"], 4) if done["finished"] else 0.0,
        "credits_used": done["credits_used"],
        "import_id": job.import_id,
        "export_id": job.export_id,
        "bulk_ids": [done["bulk_id"]] if done["bulk_id"] else [],
        "list_id": job.list_id,
    }


class _WithoutBom:
    """Writes what it is given but the export's leading byte order mark: the output is
    plain UTF-8, as a script's ``open(path)`` and ``csv`` expect (a spreadsheet imports it
    as UTF-8; ``sluice_client.Sluice.download_export`` keeps the export as it is)."""

    BOM = b"\xef\xbb\xbf"

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.head: bytes | None = b""  # the first bytes, until there are enough to tell

    def write(self, data: bytes) -> int:
        if self.head is not None:
            self.head += data
            if len(self.head) < len(self.BOM) and self.BOM.startswith(self.head):
                return len(data)
            data = self.head.removeprefix(self.BOM)
            self.head = None
        self.out.write(data)
        return len(data)

    def close(self) -> None:
        if self.head:  # a file shorter than a BOM, that began like one
            self.out.write(self.head)
        self.head = None


def _run_bulks(
    client: Sluice,
    job: Job,
    state: Path,
    input_path: Path,
    output_path: Path,
    on_progress: Callable[[Progress], None],
    sleep: Callable[[float], None],
) -> dict[str, Any]:
    columns, rows = read_rows(input_path)
    progress = Progress(total=len(rows))
    _submit(client, job, state, rows, progress, on_progress)
    bulks = _wait(client, job, progress, on_progress, sleep)
    results = _results(client, [c["bulk_id"] for c in job.chunks])
    _write(output_path, columns, rows, results)
    state.unlink()
    return {
        "input": str(input_path),
        "output": str(output_path),
        "via": "bulks",
        "rows": len(rows),
        "imported": len(rows),
        "skipped": 0,
        "errors": [],
        "finished": progress.finished,
        "verified": progress.verified,
        "found_rate": round(progress.found_rate, 4),
        "credits_used": progress.credits_used,
        "import_id": None,
        "export_id": None,
        "bulk_ids": [b["bulk_id"] for b in bulks],
        "list_id": job.list_id,
    }


def _list_named(client: Sluice, name: str, *, idempotency_key: str) -> str:
    for existing in client.iter_lists():
        if existing["name"] == name:
            return existing["id"]
    return client.create_list(name, idempotency_key=idempotency_key)["id"]


def _submit(
    client: Sluice,
    job: Job,
    state: Path,
    rows: list[dict[str, str]],
    progress: Progress,
    on_progress: Callable[[Progress], None],
) -> None:
    while True:
        count = -(-len(rows) // job.chunk_size)
        while len(job.chunks) < count:
            job.chunks.append({"idempotency_key": None, "bulk_id": None})
        for index, chunk in enumerate(job.chunks):
            start = index * job.chunk_size
            part = rows[start : start + job.chunk_size]
            if chunk["bulk_id"] is None:
                if chunk["idempotency_key"] is None:
                    chunk["idempotency_key"] = str(uuid.uuid4())
                    job.save(state)  # before sending: a resend reuses it
                try:
                    accepted = client.enrich_bulk(
                        [contact_of(row, start + i) for i, row in enumerate(part)],
                        enrichment_type=job.enrichment_type,
                        list_id=job.list_id,
                        idempotency_key=chunk["idempotency_key"],
                    )
                except InvalidRequestError as exc:
                    smaller = _AT_MOST.search(str(exc.details.get("contacts", "")))
                    if smaller is None or any(c["bulk_id"] for c in job.chunks):
                        raise
                    # The plan's bulk max is smaller: nothing was stored (all or nothing),
                    # so start over in smaller chunks with fresh keys.
                    job.chunk_size = int(smaller.group(1))
                    job.chunks = []
                    job.save(state)
                    break
                chunk["bulk_id"] = accepted["bulk_id"]
                job.save(state)
            progress.submitted = min(len(rows), start + len(part))
            on_progress(progress)
        else:
            return


def _wait(
    client: Sluice,
    job: Job,
    progress: Progress,
    on_progress: Callable[[Progress], None],
    sleep: Callable[[float], None],
) -> list[dict[str, Any]]:
    bulks: dict[str, dict[str, Any]] = {}
    while True:
        for chunk in job.chunks:
            bulk_id = chunk["bulk_id"]
            if bulk_id not in bulks or bulks[bulk_id]["status"] != "completed":
                bulks[bulk_id] = client.get_bulk(bulk_id)
        progress.finished = sum(b["finished"] for b in bulks.values())
        progress.verified = sum(b["verified"] for b in bulks.values())
        progress.credits_used = sum(b["credits_used"] for b in bulks.values())
        on_progress(progress)
        pending = [b for b in bulks.values() if b["status"] != "completed"]
        if not pending:
            return [bulks[c["bulk_id"]] for c in job.chunks]
        sleep(max(1.0, len(pending) / _POLLS_PER_SECOND))


def _results(client: Sluice, bulk_ids: list[str]) -> dict[int, dict[str, Any]]:
    by_row: dict[int, dict[str, Any]] = {}
    for bulk_id in bulk_ids:
        for contact in client.iter_contacts(bulk_id=bulk_id):
            custom = contact.get("custom") or {}
            by_row[int(custom["row"])] = contact
    return by_row


def result_fields(contact: dict[str, Any] | None) -> dict[str, Any]:
    """The result columns of one contact, as the server's export writes them."""
    if contact is None:
        return dict.fromkeys(RESULT_COLUMNS, "")
    result = contact.get("result") or {}
    phones = result.get("phones") or []
    phone = phones[0] if phones else {}
    confidence = result.get("confidence")
    finished = contact.get("status") == "finished"
    values = {
        "status": result.get("status", "") if finished else "pending",
        "email": result.get("email"),
        "email_status": result.get("email_status"),
        "personal_email": result.get("personal_email"),
        "phone": phone.get("number"),
        "phone_type": phone.get("type"),
        "job_title": result.get("job_title"),
        "company_domain": result.get("company_domain"),
        "confidence": "" if confidence is None else confidence,
        "credits_charged": contact.get("credits_charged", 0),
        "enrichment_id": contact["enrichment_id"],
    }
    return {k: _cell(v) for k, v in values.items()}


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if (
        isinstance(value, str)
        and value[:1] in ("=", "+", "-", "@", "\t", "\r")
        and not _NUMBERISH.match(value)
    ):
        return "'" + value
    return value


def output_columns(columns: Sequence[str]) -> list[str]:
    """The result columns' names beside ``columns``: ``sluice_``-prefixed, all of them, if
    the input has one of those names already (as the server's export does)."""
    if set(columns) & set(RESULT_COLUMNS):
        return [f"sluice_{c}" for c in RESULT_COLUMNS]
    return list(RESULT_COLUMNS)


def _write(
    path: Path,
    columns: list[str],
    rows: list[dict[str, str]],
    results: dict[int, dict[str, Any]],
) -> None:
    added = output_columns(columns)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:  # as the imports way writes it
        writer = csv.writer(f)
        writer.writerow([*columns, *added])
        for index, row in enumerate(rows):
            fields = result_fields(results.get(index))
            writer.writerow([*(row.get(c, "") for c in columns), *fields.values()])
    os.replace(tmp, path)
