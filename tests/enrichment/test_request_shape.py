"""One description of a contact's request fields (validation.CONTACT_REQUEST) serves the
validation, the OpenAPI schema and the admin."""

from __future__ import annotations

import pytest
from drf_spectacular.generators import SchemaGenerator

from apps.enrichment.validation import (
    BULK_FIELDS,
    CONTACT_FIELDS,
    CONTACT_REQUEST,
    LIST_ID,
    Problems,
    clean_contact,
)

NAMES = [f.name for f in CONTACT_REQUEST]


@pytest.fixture(scope="module")
def components():
    return SchemaGenerator().get_schema(request=None, public=True)["components"]["schemas"]


def test_the_schema_shows_exactly_the_described_fields_and_required_ones(components):
    enrich = components["EnrichRequest"]
    # list_id is the request's, not the contact's (never per contact of a bulk).
    assert list(enrich["properties"]) == [*NAMES, LIST_ID.name]
    assert sorted(enrich["required"]) == sorted(f.name for f in CONTACT_REQUEST if f.required)
    for spec in CONTACT_REQUEST:
        for key, value in spec.schema.items():
            assert enrich["properties"][spec.name][key] == value, (spec.name, key)
    bulk = components["BulkRequest"]
    assert set(bulk["properties"]) == set(BULK_FIELDS)
    assert bulk["required"] == ["contacts"]
    # In a bulk, a per-batch field may come from the batch instead.
    contact = components["BulkContactRequest"]
    assert list(contact["properties"]) == NAMES
    assert sorted(contact["required"]) == ["first_name", "last_name"]


def test_validation_requires_and_accepts_what_the_description_says():
    problems = Problems()
    assert clean_contact({}, problems=problems, consent=True) is None
    required = {path for path, message in problems.errors.items() if "required" in message}
    assert required == {f.name for f in CONTACT_REQUEST if f.required}
    assert set(NAMES) == CONTACT_FIELDS
    problems = Problems()
    clean_contact(dict.fromkeys(NAMES) | {"x": 1}, problems=problems, consent=True)
    assert problems.errors.get("x") == "Unknown field."
    assert not any(
        message == "Unknown field." for path, message in problems.errors.items() if path != "x"
    )


def test_the_admin_shows_every_described_field():
    from apps.ops.admin.enrichment import ContactAdmin

    fieldsets = dict(ContactAdmin.fieldsets)
    request_fields = [*fieldsets["Request"]["fields"], "custom"]
    assert sorted(request_fields) == sorted(NAMES)
    assert "custom_json" in fieldsets["Custom (client correlation data)"]["fields"]
