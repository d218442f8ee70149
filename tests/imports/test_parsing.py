"""Reading CSV files: encodings, a BOM, delimiters, quoted line breaks, header mapping, rows."""

from __future__ import annotations

import codecs
import io

import pytest

from apps.imports import parsing
from apps.imports.parsing import FileProblem, RowReader

BATCH = {"enrichment_type": ["email"], "phone_country_codes": [], "webhook_url": ""}


def _read(data: bytes) -> tuple[parsing.Scan, str, list[list[str]]]:
    binary = io.BytesIO(data)
    scan = parsing.scan(binary)
    delimiter = parsing.delimiter_detect(binary, scan.encoding)
    return scan, delimiter, list(parsing.records(binary, scan.encoding, delimiter))


def test_utf8_with_and_without_bom_and_latin1():
    text = "First Name,Last Name,Company\nJosé,Müller,Café Ltd\n"
    for data, encoding in (
        (text.encode(), "utf-8"),
        (codecs.BOM_UTF8 + text.encode(), "utf-8-sig"),
        (text.encode("latin-1"), "latin-1"),
    ):
        scan, delimiter, rows = _read(data)
        assert (scan.encoding, delimiter) == (encoding, ",")
        assert rows == [["First Name", "Last Name", "Company"], ["José", "Müller", "Café Ltd"]]


def test_a_utf8_sequence_split_across_blocks_is_still_utf8():
    data = b"first_name,last_name\n" + ("é" * (parsing.BLOCK // 2 + 7)).encode() + b",x\n"
    assert parsing.scan(io.BytesIO(data)).encoding == "utf-8"


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_the_delimiter_is_the_headers(delimiter):
    data = (
        delimiter.join(["first_name", "last_name", "notes"])
        + "\nA"
        + delimiter
        + "B"
        + (delimiter + '"x, y; z"\n')
    )
    _, found, rows = _read(data.encode())
    assert found == delimiter
    assert rows[1] == ["A", "B", "x, y; z"]


def test_a_quoted_delimiter_in_the_header_does_not_count():
    _, found, _ = _read(b'"a;b";first_name;last_name\n1;2;3\n')
    assert found == ";"


def test_quoted_fields_with_line_breaks_stay_one_record():
    _, _, rows = _read(b'first_name,last_name,notes\nAda,Lovelace,"line one\nline two"\nB,C,d\n')
    assert rows[1] == ["Ada", "Lovelace", "line one\nline two"]
    assert len(rows) == 3


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The file is empty."),
        (codecs.BOM_UTF8, "The file is empty."),
        (b"PK\x03\x04\x14\x00\x00\x00", "binary data"),
        ("first_name\n".encode("utf-16"), "UTF-16"),
    ],
)
def test_files_that_are_not_csv_text(data, message):
    with pytest.raises(FileProblem) as caught:
        parsing.scan(io.BytesIO(data))
    assert message in caught.value.message


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            ["First Name", "Last Name", "Company", "Website", "LinkedIn"],
            {
                "First Name": "first_name",
                "Last Name": "last_name",
                "Company": "company_name",
                "Website": "domain",
                "LinkedIn": "linkedin_url",
            },
        ),
        (["firstname", "lastname"], {"firstname": "first_name", "lastname": "last_name"}),
        (
            ["first_name", "last_name", "domain"],
            {"first_name": "first_name", "last_name": "last_name", "domain": "domain"},
        ),
        (
            ["Prénom", "Nom", "Société"],
            {"Prénom": "first_name", "Nom": "last_name", "Société": "company_name"},
        ),
        (
            ["FIRST-NAME", "Surname", "LinkedIn URL", "Company Website"],
            {
                "FIRST-NAME": "first_name",
                "Surname": "last_name",
                "LinkedIn URL": "linkedin_url",
                "Company Website": "domain",
            },
        ),
    ],
)
def test_common_spellings_are_mapped(header, expected):
    assert parsing.mapping_resolve(header, None) == expected


def test_an_explicit_mapping_wins_and_null_keeps_a_column_in_custom():
    columns = ["Given", "Family", "Company", "Website"]
    mapping = parsing.mapping_resolve(
        columns, {"Given": "first_name", "Family": "last_name", "Website": None}
    )
    assert mapping == {"Given": "first_name", "Family": "last_name", "Company": "company_name"}


@pytest.mark.parametrize(
    ("explicit", "field", "message"),
    [
        ({"Nope": "first_name"}, "mapping.Nope", "No such column"),
        ({"a": "email"}, "mapping.a", "Must be one of"),
        ({"a": "first_name", "b": "first_name"}, "mapping.b", "Two columns map to first_name"),
        ({}, "file", "No column for first_name"),
    ],
)
def test_bad_mappings(explicit, field, message):
    with pytest.raises(FileProblem) as caught:
        parsing.mapping_resolve(["a", "b", "last_name"], explicit)
    assert caught.value.field == field and message in caught.value.message


def test_duplicate_and_empty_column_names():
    assert parsing.columns_clean([" a ", "", "b"]) == ["a", "column_2", "b"]
    with pytest.raises(FileProblem, match="twice"):
        parsing.columns_clean(["a", "b", "a"])


def _reader(columns):
    return RowReader(
        columns=columns,
        mapping=parsing.mapping_resolve(columns, None),
        batch=BATCH,
        consent=False,
    )


def test_a_row_becomes_a_contact_and_other_columns_its_custom():
    reader = _reader(["First Name", "Last Name", "Website", "CRM id", "Owner"])
    clean, errors = reader.contact(2, ["Ada", "Lovelace", "https://www.Engine.io/x", "42", ""])
    assert errors == []
    assert (clean.first_name, clean.last_name, clean.domain) == ("Ada", "Lovelace", "engine.io")
    assert clean.custom == {"CRM id": "42", "Owner": ""}
    assert clean.enrichment_type == ["email"]


def test_row_problems_name_the_field_and_its_column():
    reader = _reader(["First Name", "Last Name", "Website", "LinkedIn"])
    clean, errors = reader.contact(7, ["", "Lovelace", "not a domain!", "https://example.com/x"])
    assert clean is None
    found = {(e.row, e.field, e.column) for e in errors}
    assert (7, "first_name", "First Name") in found
    assert (7, "linkedin_url", "LinkedIn") in found
    assert (7, "domain", "Website") in found


def test_a_row_longer_than_the_header_is_refused_and_a_shorter_one_padded():
    reader = _reader(["first_name", "last_name", "domain"])
    _, errors = reader.contact(3, ["a", "b", "c.io", "extra"])
    assert errors[0].message == "The row has 4 cells; the header has 3."
    clean, errors = reader.contact(4, ["a", "b"])
    assert clean is None and errors[0].field == "domain"  # email needs a domain or a company


def test_custom_is_limited_as_for_the_api():
    reader = _reader(["first_name", "last_name", "domain", "notes"])
    _, errors = reader.contact(2, ["a", "b", "c.io", "x" * 5000])
    assert [(e.field, e.column) for e in errors] == [("custom", None)]
    assert "4096 bytes" in errors[0].message


@pytest.mark.parametrize(
    ("raw", "listed", "value"),
    [
        ("email, phone", True, ["email", "phone"]),
        ('["email"]', True, ["email"]),
        ('{"First": "first_name"}', False, {"First": "first_name"}),
        (" https://hooks.example.com/x ", False, "https://hooks.example.com/x"),
        ("[not json", True, "[not json"),
    ],
)
def test_form_fields_read_as_the_json_forms_values(raw, listed, value):
    from apps.imports.validation import form_value

    assert form_value(raw, listed=listed) == value
