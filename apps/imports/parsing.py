"""Reading an uploaded CSV: its encoding and delimiter, the header's columns mapped to contact
fields, and each row as a contact (or the problems that keep it out).

Everything here streams: the file is read in blocks (``scan``) or record by record
(``records``), so memory does not grow with the file. Pure functions over binary streams,
used by the web process (checks before the 202) and by the worker (the two passes).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from apps.enrichment.validation import CleanContact, Problems, clean_contact

BLOCK = 1 << 20
HEAD_BYTES = 64 * 1024
DELIMITERS = (",", ";", "\t")
MAX_COLUMNS = 200
# Contact fields a column may fill; every other column goes to the contact's ``custom``.
FIELDS = ("first_name", "last_name", "company_name", "domain", "linkedin_url")
_ALIASES = {
    "first_name": "firstname first givenname forename prenom vorname nombre",
    "last_name": "lastname last surname familyname nom nachname apellido",
    "company_name": "company companyname organization organisation organizationname "
    "organisationname employer accountname account business entreprise societe firma",
    "domain": "domain website companywebsite companydomain web site url websiteurl "
    "companyurl homepage domainname emaildomain",
    "linkedin_url": "linkedin linkedinurl linkedinprofile linkedinprofileurl "
    "personlinkedinurl linkedinlink profileurl li liurl",
}
ALIASES = {alias: field for field, names in _ALIASES.items() for alias in names.split()}


class FileProblem(Exception):
    """The file as a whole cannot be imported: a 422 at upload, a failed import on a worker."""

    def __init__(self, message: str, *, field: str = "file") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class Scan:
    encoding: str  # "utf-8-sig", "utf-8" or "latin-1"
    size: int
    newlines: int


def scan(binary: IO[bytes]) -> Scan:
    """One pass in blocks: size, newlines (an upper bound of the records, less one), and the
    encoding: UTF-8 when every byte decodes as UTF-8 (a BOM is dropped), else Latin-1."""
    binary.seek(0)
    decoder = codecs.getincrementaldecoder("utf-8")()
    utf8, size, newlines, first = True, 0, 0, True
    bom = False
    while block := binary.read(BLOCK):
        if first:
            if block.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                raise FileProblem(
                    "UTF-16 files are not supported: save the file as CSV UTF-8 (or Latin-1)."
                )
            bom = block.startswith(codecs.BOM_UTF8)
            first = False
        if b"\x00" in block:
            raise FileProblem("The file is not a CSV text file (it contains binary data).")
        size += len(block)
        newlines += block.count(b"\n")
        if utf8:
            try:
                decoder.decode(block)
            except UnicodeDecodeError:
                utf8 = False
    if utf8:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            utf8 = False
    if size == 0 or (bom and size == len(codecs.BOM_UTF8)):
        raise FileProblem("The file is empty.")
    encoding = ("utf-8-sig" if bom else "utf-8") if utf8 else "latin-1"
    return Scan(encoding=encoding, size=size, newlines=newlines)


def delimiter_detect(binary: IO[bytes], encoding: str) -> str:
    """The delimiter the header line uses most outside quotes (``,`` when none)."""
    binary.seek(0)
    head = binary.read(HEAD_BYTES).decode(encoding, errors="replace")
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for char in head:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in "\r\n":
            break
        elif not quoted and char in counts:
            counts[char] += 1
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def records(binary: IO[bytes], encoding: str, delimiter: str) -> Iterator[list[str]]:
    """The file's records from its start, the header first; ``csv.Error`` as FileProblem."""
    binary.seek(0)
    text = io.TextIOWrapper(
        io.BufferedReader(_Unclosing(binary), BLOCK), encoding=encoding, newline=""
    )
    reader = csv.reader(text, delimiter=delimiter)
    try:
        yield from reader
    except csv.Error as exc:
        raise FileProblem(f"The file is not valid CSV near line {reader.line_num}: {exc}.")
    finally:
        text.detach()


class _Unclosing(io.RawIOBase):
    """A readable view of a binary file (a Django ``File`` included) for ``TextIOWrapper``."""

    def __init__(self, binary: IO[bytes]) -> None:
        self._binary = binary

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._binary.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def blank(cells: list[str]) -> bool:
    return not any(cell.strip() for cell in cells)


def columns_clean(header: list[str]) -> list[str]:
    """The header's names, stripped; an empty one becomes ``column_<n>``; 422 for duplicates."""
    if len(header) > MAX_COLUMNS:
        raise FileProblem(f"The file has {len(header)} columns; at most {MAX_COLUMNS}.")
    columns = [name.strip() or f"column_{i + 1}" for i, name in enumerate(header)]
    seen: set[str] = set()
    for name in columns:
        if name in seen:
            raise FileProblem(f"The header names the column '{name}' twice.")
        seen.add(name)
    return columns


def _normalized(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]", "", ascii_name.casefold())


def mapping_resolve(columns: list[str], explicit: dict[str, Any] | None) -> dict[str, str]:
    """Column name -> contact field. ``explicit`` (column -> field, or null to keep a column in
    ``custom``) wins; other columns are matched by their common spellings (``First Name``,
    ``firstname``, ``Company``, ``Website``, ``LinkedIn``, …); the first column found for a
    field takes it. first_name and last_name must be filled."""
    explicit = explicit or {}
    mapping: dict[str, str] = {}
    for column, field in explicit.items():
        if column not in columns:
            raise FileProblem("No such column in the file's header.", field=f"mapping.{column}")
        if field is None or field == "":
            continue
        if field not in FIELDS:
            raise FileProblem(
                f"Must be one of {', '.join(FIELDS)}, or null to keep the column in custom.",
                field=f"mapping.{column}",
            )
        if field in mapping.values():
            raise FileProblem(f"Two columns map to {field}.", field=f"mapping.{column}")
        mapping[column] = field
    for column in columns:
        if column in explicit:
            continue
        field = ALIASES.get(_normalized(column))
        if field and field not in mapping.values():
            mapping[column] = field
    for field in ("first_name", "last_name"):
        if field not in mapping.values():
            found = ", ".join(columns[:20])
            raise FileProblem(
                f"No column for {field}: name one 'First Name'/'Last Name' (or first_name, "
                f"…), or give a mapping. The header has: {found}."
            )
    return mapping


@dataclass(frozen=True)
class RowError:
    row: int
    field: str | None
    column: str | None
    message: str


class RowReader:
    """Turns records into contacts: the header's columns, their mapping and the values the
    whole file shares (``batch``: enrichment_type, phone_country_codes, webhook_url)."""

    def __init__(
        self, *, columns: list[str], mapping: dict[str, str], batch: dict[str, Any], consent: bool
    ) -> None:
        self.columns = columns
        self.batch = batch
        self.consent = consent
        self._fields = [mapping.get(name) for name in columns]
        self._column_of = {field: column for column, field in mapping.items()}

    def contact(self, row: int, cells: list[str]) -> tuple[CleanContact | None, list[RowError]]:
        if len(cells) > len(self.columns):
            return None, [
                RowError(
                    row,
                    None,
                    None,
                    f"The row has {len(cells)} cells; the header has {len(self.columns)}.",
                )
            ]
        data: dict[str, Any] = {}
        custom: dict[str, str] = {}
        for i, column in enumerate(self.columns):
            value = cells[i] if i < len(cells) else ""
            field = self._fields[i]
            if field is None:
                custom[column] = value
            elif value.strip():
                data[field] = value
        if custom:
            data["custom"] = custom
        problems = Problems()
        clean = clean_contact(
            data, problems=problems, consent=self.consent, batch=self.batch, resolve_later=True
        )
        if clean is not None:
            return clean, []
        return None, [
            RowError(row, path, self._column_of.get(path), message)
            for path, message in problems.errors.items()
        ]
