"""Helpers for import tests: CSV bytes, uploads in both forms."""

from __future__ import annotations

import base64
import csv
import io
import json

from django.core.files.uploadedfile import SimpleUploadedFile


def csv_bytes(rows: list[list[str]], *, delimiter: str = ",", encoding: str = "utf-8") -> bytes:
    text = io.StringIO()
    csv.writer(text, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    return text.getvalue().encode(encoding)


def upload(client, data: bytes, *, name: str = "contacts.csv", kind: str = "text/csv", **fields):
    """POST /imports as multipart/form-data (what a browser or ``curl -F`` sends)."""
    form = {
        "file": SimpleUploadedFile(name, data, content_type=kind),
        "enrichment_type": "email",
        **fields,
    }
    return client.post("/api/v1/imports", form, format="multipart")


def upload_json(client, data: bytes, *, name: str = "contacts.csv", **fields):
    body = {
        "file_name": name,
        "file_data": base64.b64encode(data).decode(),
        "enrichment_type": ["email"],
        **fields,
    }
    return client.post("/api/v1/imports", json.dumps(body), content_type="application/json")


def people(n: int, *, bad_every: int = 0) -> list[list[str]]:
    """A header and ``n`` rows; every ``bad_every``-th row has no last name."""
    rows = [["First Name", "Last Name", "Company", "Website", "CRM id"]]
    for i in range(n):
        last = "" if bad_every and i % bad_every == 0 else f"Lovelace{i}"
        rows.append([f"Ada{i}", last, "Analytical Engines", f"engine{i}.io", str(1000 + i)])
    return rows
