"""The options of ``POST /imports`` (the whole file's enrichment_type, phone countries,
webhook_url, mapping, name, list_id) and the body of ``POST /exports``: field -> message."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from apps.enrichment.validation import (
    CONSENT_MESSAGE,
    Problems,
    check_webhook_urls,
    clean_country_codes,
    clean_enrichment_type,
    clean_webhook_url,
    invalid,
)

IMPORT_OPTIONS = frozenset(
    {"enrichment_type", "phone_country_codes", "webhook_url", "mapping", "name", "list_id"}
)
NAME_MAX_LENGTH = 200


@dataclass
class ImportOptions:
    enrichment_type: list[str]
    phone_country_codes: list[str] = field(default_factory=list)
    webhook_url: str = ""
    mapping: dict[str, Any] | None = None
    name: str = ""
    list_id: uuid.UUID | None = None

    def batch(self) -> dict[str, Any]:
        """What every row inherits (``clean_contact``'s ``batch``)."""
        return {
            "enrichment_type": self.enrichment_type,
            "phone_country_codes": self.phone_country_codes,
            "webhook_url": self.webhook_url,
        }


def form_value(raw: str, *, listed: bool) -> Any:
    """A multipart field's text as the JSON form's value: JSON when it parses as an array or
    an object, else (``listed``) a comma-separated list, else the text."""
    text = raw.strip()
    if text.startswith(("[", "{")):
        try:
            return json.loads(text)
        except ValueError:
            return text
    if listed:
        return [part.strip() for part in text.split(",") if part.strip()]
    return text


def import_options(data: dict[str, Any], *, consent: bool, known: frozenset[str]) -> ImportOptions:
    """The validated options; the 422 names every problem. ``known``: the other fields the
    form carries (the file's)."""
    problems = Problems()
    kinds = clean_enrichment_type(data.get("enrichment_type"), "enrichment_type", problems)
    if "personal_email" in kinds and not consent:
        problems.add("enrichment_type", CONSENT_MESSAGE)
    codes = clean_country_codes(data.get("phone_country_codes"), "phone_country_codes", problems)
    webhook_url = clean_webhook_url(data.get("webhook_url"), "webhook_url", problems)
    mapping = data.get("mapping")
    if mapping is not None and (
        not isinstance(mapping, dict)
        or not all(isinstance(v, str | type(None)) for v in mapping.values())
    ):
        problems.add("mapping", "Must be an object of column name -> contact field (or null).")
        mapping = None
    name = data.get("name") or ""
    if not isinstance(name, str) or len(name) > NAME_MAX_LENGTH:
        problems.add("name", f"Must be a string of at most {NAME_MAX_LENGTH} characters.")
        name = ""
    list_id = None
    if data.get("list_id") not in (None, ""):
        try:
            list_id = uuid.UUID(str(data["list_id"]))
        except ValueError:
            problems.add("list_id", "Must be a UUID.")
    unknown = sorted(set(data) - IMPORT_OPTIONS - known)
    if unknown:
        problems.add(unknown[0], "Unknown field.")
    check_webhook_urls(problems)
    if problems.errors:
        raise invalid(problems.errors)
    return ImportOptions(
        enrichment_type=kinds,
        phone_country_codes=codes,
        webhook_url=webhook_url,
        mapping=mapping,
        name=name.strip(),
        list_id=list_id,
    )


EXPORT_SOURCES = ("import_id", "bulk_id", "list_id", "filters")
EXPORT_FILTERS = frozenset({"status", "result_status", "bulk_id", "updated_after"})


def export_source(data: dict[str, Any]) -> tuple[str, Any]:
    """(source, its id or filters) of ``POST /exports``: exactly one of import_id, bulk_id,
    list_id, filters (the ``GET /contacts`` query parameters, as an object)."""
    given = [key for key in EXPORT_SOURCES if key in data]
    unknown = sorted(set(data) - set(EXPORT_SOURCES))
    if unknown:
        raise invalid({unknown[0]: "Unknown field."})
    if len(given) != 1:
        raise invalid(
            {"non_field_errors": "Give exactly one of import_id, bulk_id, list_id, filters."}
        )
    key = given[0]
    value = data[key]
    if key == "filters":
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise invalid({"filters": "Must be an object of GET /contacts filters (strings)."})
        extra = sorted(set(value) - EXPORT_FILTERS)
        if extra:
            raise invalid({f"filters.{extra[0]}": "Unknown filter."})
        return "filters", value
    return key.removesuffix("_id"), value
