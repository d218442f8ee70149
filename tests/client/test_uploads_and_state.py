"""Client-side rules that need no server: what a resent upload sends, and which state files
``sluice enrich`` refuses."""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading

import pytest
import requests
from sluice_client import Sluice, enrich_csv

CSV = b"first_name,last_name\r\nAda,Lovelace\r\n"


class FlakySession:
    """Drops the first request's connection, answers the next 202; keeps what each
    attempt's file part carried."""

    headers: dict[str, str]

    def __init__(self) -> None:
        self.headers = {}
        self.sent: list[bytes] = []

    def request(self, method, url, **kwargs):
        _, data, _ = kwargs["files"]["file"]
        self.sent.append(data if isinstance(data, bytes) else data.read())
        if len(self.sent) == 1:
            raise requests.ConnectionError("connection reset")

        class Answer:
            status_code = 202
            content = b'{"import_id": "i-1"}'
            headers: dict[str, str] = {}

            def json(self):
                return json.loads(self.content)

        return Answer()


def _client(session: FlakySession) -> Sluice:
    return Sluice(
        "sk_test_x", base_url="http://sluice.invalid", session=session, sleep=lambda s: None
    )


def test_a_resent_upload_sends_the_file_from_where_it_stood():
    session = FlakySession()
    data = io.BytesIO(b"junk before" + CSV)
    data.seek(len(b"junk before"))
    assert _client(session).create_import(data)["import_id"] == "i-1"
    assert session.sent == [CSV, CSV]


def test_an_upload_from_a_pipe_is_read_once_and_resent_whole():
    read_end, write_end = os.pipe()

    def feed() -> None:
        with os.fdopen(write_end, "wb") as w:
            w.write(CSV)

    threading.Thread(target=feed).start()
    session = FlakySession()
    with os.fdopen(read_end, "rb") as pipe:
        assert not pipe.seekable()
        _client(session).create_import(pipe)
    assert session.sent == [CSV, CSV]


@pytest.mark.parametrize(("started", "asked"), [("imports", "bulks"), ("bulks", "imports")])
def test_a_job_started_one_way_is_not_resumed_the_other(tmp_path, started, asked):
    """The other way would enrich (and charge) rows the first may have sent already."""
    (tmp_path / "in.csv").write_bytes(CSV)
    output = tmp_path / "out.csv"
    job = enrich_csv.Job(
        input_sha256=hashlib.sha256(CSV).hexdigest(),
        enrichment_type=["email"],
        chunk_size=100,
        mode=started,
        import_key="k-1" if started == "imports" else None,
    )
    job.save(enrich_csv.state_path(output))
    nothing = FlakySession()
    with pytest.raises(SystemExit, match=f"--via {started}"):
        enrich_csv.run(
            _client(nothing),
            input_path=tmp_path / "in.csv",
            output_path=output,
            enrichment_type=["email"],
            via=asked,
        )
    assert nothing.sent == []  # refused before anything was sent


@pytest.mark.parametrize("sizes", [[64], [1, 1, 1, 61], [2, 62]])
def test_the_output_drops_the_exports_byte_order_mark_however_it_arrives(sizes):
    exported = b"\xef\xbb\xbffirst_name,status\r\nAda,VERIFIED\r\n"
    out = io.BytesIO()
    plain = enrich_csv._WithoutBom(out)
    at = 0
    for size in sizes:
        plain.write(exported[at : at + size])
        at += size
    plain.close()
    assert out.getvalue() == exported[3:]


def test_a_file_without_a_byte_order_mark_is_written_as_it_is():
    out = io.BytesIO()
    plain = enrich_csv._WithoutBom(out)
    for part in (b"\xef", b"x,y\r\n"):  # begins like a BOM, is not one
        plain.write(part)
    plain.close()
    assert out.getvalue() == b"\xefx,y\r\n"
