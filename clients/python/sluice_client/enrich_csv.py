"""``sluice enrich``: a CSV through the bulk API, resumable, into an enriched CSV.

The job's state lives in ``<output>.sluice.json`` beside the output: the input's digest, the
chunk size and, per chunk of rows, the ``Idempotency-Key`` it is (or was) sent with and the
``bulk_id`` it got. The key is written *before* the request goes out, so a run cut off at any
point (Ctrl-C, a lost connection, a killed process) resends that chunk with the same key on
the next run: the server replays its first answer instead of enqueueing the rows again
(``Idempotency-Key``s are kept 24 h, ``IDEMPOTENCY_KEY_TTL_SECONDS``). Chunks that have a
``bulk_id`` are never sent again. The state file is removed when the output is written.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .client import Sluice
from .errors import InvalidRequestError

# Input columns that are contact fields; every column (these and any other) is copied to the
# output unchanged, followed by the result's.
CONTACT_COLUMNS = ("first_name", "last_name", "company_name", "domain", "linkedin_url")
# What the output adds after the input's own columns.
RESULT_COLUMNS = (
    "enrichment_id",
    "result_status",
    "email",
    "email_status",
    "phone",
    "personal_email",
    "job_title",
    "confidence",
    "credits_charged",
)
DEFAULT_CHUNK = 100
_AT_MOST = re.compile(r"At most (\d+) contacts")
# Reads of GET /bulk/{id} per second at most while waiting (a growth plan allows 100 requests
# a minute for the whole account).
_POLLS_PER_SECOND = 1.25


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
    on_progress: Callable[[Progress], None] = lambda p: None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Enrich ``input_path`` into ``output_path``; resumes the job of an earlier run.
    ``list_name``: every contact goes into the list of that name (created if there is none;
    the first one if there are several)."""
    columns, rows = read_rows(input_path)
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
    if job.list_name and not job.list_id:
        if job.list_key is None:
            job.list_key = str(uuid.uuid4())
            job.save(state)  # before creating: a resumed run never makes a second list
        job.list_id = _list_named(client, job.list_name, idempotency_key=job.list_key)
        job.save(state)

    progress = Progress(total=len(rows))
    _submit(client, job, state, rows, progress, on_progress)
    bulks = _wait(client, job, progress, on_progress, sleep)
    results = _results(client, [c["bulk_id"] for c in job.chunks])
    _write(output_path, columns, rows, results)
    state.unlink()
    return {
        "input": str(input_path),
        "output": str(output_path),
        "rows": len(rows),
        "finished": progress.finished,
        "verified": progress.verified,
        "found_rate": round(progress.found_rate, 4),
        "credits_used": progress.credits_used,
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
    if contact is None:
        return dict.fromkeys(RESULT_COLUMNS, "")
    result = contact.get("result") or {}
    phones = result.get("phones") or []
    return {
        "enrichment_id": contact["enrichment_id"],
        "result_status": result.get("status", ""),
        "email": result.get("email") or "",
        "email_status": result.get("email_status") or "",
        "phone": phones[0]["number"] if phones else "",
        "personal_email": result.get("personal_email") or "",
        "job_title": result.get("job_title") or "",
        "confidence": "" if result.get("confidence") is None else result["confidence"],
        "credits_charged": contact.get("credits_charged", 0),
    }


def _write(
    path: Path,
    columns: list[str],
    rows: list[dict[str, str]],
    results: dict[int, dict[str, Any]],
) -> None:
    added = [c for c in RESULT_COLUMNS if c not in columns]
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=[*columns, *added], extrasaction="ignore")
        writer.writeheader()
        for index, row in enumerate(rows):
            writer.writerow({**row, **result_fields(results.get(index))})
    os.replace(tmp, path)
